"""espeak-ng through ctypes: text in, 22,050 Hz samples with word and phoneme events out.

One ``Espeak`` per process: espeak-ng keeps synthesis state between utterances (measured: the
same text gives different samples depending on what was spoken before, even after
espeak_Terminate/espeak_Initialize), so ``voxlm.data.synth`` runs each shard of utterances in a
fresh worker process.
"""

from __future__ import annotations

import ctypes
from pathlib import Path
from typing import Any

import espeakng_loader
import numpy as np

from voxlm.data.accents import ACCENT_FEATURES

ESPEAK_SAMPLE_RATE = 22_050  # espeak-ng's fixed output rate; 16000/22050 = 320/441

# speak_lib.h constants
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_PHONEME_EVENTS = 1
_EVENT_LIST_TERMINATED = 0
_EVENT_WORD = 1
_EVENT_PHONEME = 7
_POS_CHARACTER = 1
_CHARS_AUTO = 0
_PARAM_RATE = 1
_PARAM_PITCH = 3


def voice_exists(voice: str) -> bool:
    """True when espeak-ng's shipped data has the language (and variant) of `voice`."""
    data = Path(espeakng_loader.get_data_path())
    language, _, variant = voice.partition("+")
    if variant and not (data / "voices" / "!v" / variant).is_file():
        return False
    return any(
        p.name.lower() == language.lower() for p in (data / "lang").rglob("*") if p.is_file()
    )


class _Event(ctypes.Structure):
    """espeak_EVENT from speak_lib.h."""

    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),  # 1-based character position
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),  # ms
        ("sample", ctypes.c_int),  # sample index at 22,050 Hz
        ("user_data", ctypes.c_void_p),
        ("id", ctypes.c_char * 8),
    ]


_SYNTH_CALLBACK = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


class Espeak:
    """libespeak-ng in synchronous mode: text in, int16 samples and word events out."""

    def __init__(self, data_dir: Path | None = None) -> None:
        """`data_dir`: a writable overlay of espeak-ng's data (`overlay_data`) for accents."""
        self.lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self.data_dir = data_dir
        self._variants: dict[tuple[str, tuple[str, ...]], str] = {}
        data = str(data_dir or espeakng_loader.get_data_path()).encode()
        rate = self.lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS, 0, data, _INITIALIZE_PHONEME_EVENTS
        )
        if rate != ESPEAK_SAMPLE_RATE:
            raise RuntimeError(f"espeak-ng initialisation failed or rate {rate} != 22050")
        self._chunks: list[np.ndarray] = []
        self._words: list[tuple[int, int]] = []  # (0-based char position, sample)
        self._phonemes: list[tuple[int, int, str]] = []  # (char position, sample, name)
        self._callback = _SYNTH_CALLBACK(self._on_audio)  # kept alive while the library calls it
        self.lib.espeak_SetSynthCallback(self._callback)

    def _on_audio(self, wav: Any, n_samples: int, events: Any) -> int:
        if wav and n_samples > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, (n_samples,)).copy())
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            event = events[i]
            if event.type == _EVENT_WORD:
                self._words.append((event.text_position - 1, event.sample))
            elif event.type == _EVENT_PHONEME:
                name = bytes(event.id).split(b"\0")[0].decode("ascii", "replace")
                self._phonemes.append((event.text_position - 1, event.sample, name))
            i += 1
        return 0

    def accent_voice(self, voice: str, features: tuple[str, ...]) -> str:
        """`voice` with accent features: a new variant = its own variant + `replace` lines."""
        if not features:
            return voice
        key = (voice, features)
        if key not in self._variants:
            if self.data_dir is None:
                raise RuntimeError("accent features need Espeak(data_dir=overlay_data(...))")
            language, _, variant = voice.partition("+")
            folder = self.data_dir / "voices" / "!v"
            base = (folder / variant).read_text(encoding="latin-1") if variant else ""
            lines = [f"replace {line}" for f in features for line in ACCENT_FEATURES[f]]
            name = f"voxlm{len(self._variants)}"
            (folder / name).write_text(base + "\n" + "\n".join(lines) + "\n", encoding="latin-1")
            self._variants[key] = f"{language}+{name}"
        return self._variants[key]

    def synthesize(
        self, text: str, voice: str, rate: int, pitch: int, seed: int
    ) -> tuple[np.ndarray, list[tuple[int, int]], list[tuple[int, int, str]]]:
        """(int16 samples at 22,050 Hz, word events, phoneme events).

        Word events are (0-based char position, onset sample); phoneme events are
        (char position of their word, onset sample, phoneme name).
        """
        if self.lib.espeak_SetVoiceByName(voice.encode()) != 0:
            raise RuntimeError(f"espeak-ng could not load voice {voice!r}")
        self.lib.espeak_SetParameter(_PARAM_RATE, rate, 0)
        self.lib.espeak_SetParameter(_PARAM_PITCH, pitch, 0)
        self.lib.espeak_ng_SetRandSeed(seed & 0x7FFFFFFF)  # the Klatt voices' noise source
        self._chunks, self._words, self._phonemes = [], [], []
        data = text.encode()
        self.lib.espeak_Synth(data, len(data) + 1, 0, _POS_CHARACTER, 0, _CHARS_AUTO, None, None)
        self.lib.espeak_Synchronize()
        audio = np.concatenate(self._chunks) if self._chunks else np.zeros(0, np.int16)
        return audio, self._words, self._phonemes


def overlay_data(root: Path) -> Path:
    """espeak-ng's data dir rebuilt under `root` from links, with a writable `voices/!v`.

    Accent variants are written there (``Espeak.accent_voice``); the shipped data stays as is.
    """
    source = Path(espeakng_loader.get_data_path())
    data = root / "espeak-ng-data"
    variants = data / "voices" / "!v"
    variants.mkdir(parents=True)
    for entry in source.iterdir():
        if entry.name != "voices":
            (data / entry.name).symlink_to(entry)
    for entry in (source / "voices").iterdir():
        if entry.name != "!v":
            (data / "voices" / entry.name).symlink_to(entry)
    for entry in (source / "voices" / "!v").iterdir():
        (variants / entry.name).symlink_to(entry)
    return data
