"""Synthetic speech with exact word timings, from espeak-ng, in LibriSpeech layout.

Every utterance gets each word's onset from espeak-ng's word events, so the whole pipeline
(training, alignment, evaluation of timestamps) can run and be measured offline.

Output under `output_dir`:
    <split>/<speaker>/<chapter>/<speaker>-<chapter>-<utt>.flac   16 kHz 16-bit FLAC
    <split>/<speaker>/<chapter>/<speaker>-<chapter>.trans.txt    "<id> UPPERCASE TEXT" lines
    <split>.jsonl                                                manifest (see data/manifest.py)
    SPEAKERS.TXT                                                 speaker id -> espeak-ng voice
Speaker = index of the voice in `voices` (the held-out voice comes last, test only); chapter =
split (train 1, dev 2, test 3). Splits have disjoint sentences.

Why the details below:
- espeak-ng keeps synthesis state between utterances inside one process (measured: the same
  text gives different samples depending on what was spoken before, even after
  espeak_Terminate/espeak_Initialize). So utterances are synthesised in fixed shards, each in a
  fresh worker process: the same seed gives identical audio whatever the number of workers.
- Word events carry `sample`, an index at espeak-ng's 22,050 Hz: onsets are scaled by 320/441
  along with the audio. About 5% of utterances lack an event for an unstressed "the"/"a"
  (measured: "in the", "on the" are spoken as one word, and the article's phonemes are reported
  under the preceding word). Such an onset is recovered from the phoneme events: the article's
  phonemes are the last ones of the preceding word (`_MERGED_WORDS`). Any other mismatch is
  synthesised again at another rate, then dropped and counted, never misaligned.
- A word's span is trimmed to voiced energy: its start moves forward over silence after the
  onset, its end back to the last voiced frame before the next onset.
- Accents. espeak-ng has eight English accents, so a model trained on them meets any other
  accent as noise: on the held-out voice, word error was ten times that of the training voices
  (BENCHMARKS.md). A share of training utterances (`accent_prob`) is therefore spoken with one
  to three well-known features of English accents (`ACCENT_FEATURES`, after J. C. Wells,
  "Accents of English", 1982), applied as phoneme replacements, espeak-ng's own mechanism for
  its accents (the `replace` lines of a voice file), through a private voice variant. Dev and
  test are spoken as the voices speak, so scores measure the plain voices.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import re
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import espeakng_loader
import numpy as np
import soundfile as sf
import soxr
from tqdm import tqdm

from voxlm.audio import SAMPLE_RATE
from voxlm.data.manifest import Utterance, write_manifest
from voxlm.data.sentences import generate_sentences, sentence_words, split_disjoint

ESPEAK_SAMPLE_RATE = 22_050  # espeak-ng's fixed output rate; 16000/22050 = 320/441
SPLITS = ("train", "dev", "test")
CHAPTERS = {"train": 1, "dev": 2, "test": 3}
SHARD_SIZE = 128  # utterances per fresh worker process: fixed, so output never depends on workers
FRAME = SAMPLE_RATE // 100  # 10 ms energy frames, 160 samples

DEFAULT_VOICES = (
    "en",
    "en-us",
    "en-gb-scotland",
    "en-gb-x-rp",
    "en-gb-x-gbclan",
    "en-us-nyc",
    "en-029",
    "en+m3",
    "en+f2",
    "en-us+f4",
    "en-gb-x-rp+m5",
    "en+klatt",
)
DEFAULT_HELD_OUT_VOICE = "en-gb-x-gbcwmd"

# Features of English accents as espeak-ng `replace` lines ("<flags> <phoneme> <replacement>";
# flags: 1 = only at the end of a word, 2 = only unstressed; NULL deletes). Every replacement is
# a phoneme of the English tables: espeak-ng silently drops an unknown one (tested).
ACCENT_FEATURES: dict[str, tuple[str, ...]] = {
    "h-dropping": ("00 h NULL",),  # 'ouse: most urban accents of England, Wales
    "g-dropping": ("03 N n",),  # walkin': widespread, informal
    "th-fronting": ("00 T f",),  # fink: London, Estuary
    "th-stopping": ("00 T t", "00 D d"),  # tink, dis: Irish, Caribbean, New York
    "t-glottalling": ("01 t ?",),  # wha': British urban accents
    "foot-strut": ("00 V U",),  # no FOOT-STRUT split: north of England, Midlands
    "trap-raising": ("00 a E",),  # New Zealand, South Africa, New York
    "price-backing": ("00 aI OI",),  # London, Australia
    "price-monophthong": ("00 aI A:",),  # southern United States
    "face-monophthong": ("00 eI e:",),  # Scotland, north of England, Wales
    "goat-monophthong": ("00 oU o:",),  # Scotland, north of England, Wales
    "happy-laxing": ("03 i I",),  # conservative RP, north of England
}

# Words espeak-ng merges into the preceding word: (first phoneme names, phoneme count).
_MERGED_WORDS = {"the": (("D", "d"), 2), "a": (("",), 1), "an": (("",), 2)}

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


@dataclass(frozen=True)
class SynthOptions:
    """What `synthesize_corpus` makes. Ranges are inclusive (low, high) pairs."""

    output_dir: str | Path
    n_train: int = 5000
    n_dev: int = 200
    n_test: int = 500
    seed: int = 0
    voices: tuple[str, ...] = DEFAULT_VOICES
    held_out_voice: str | None = DEFAULT_HELD_OUT_VOICE  # test-only voice; None for none
    rate_wpm: tuple[int, int] = (140, 210)
    pitch: tuple[int, int] = (35, 70)  # espeak-ng pitch, 0-100
    noise_prob: float = 0.3  # chance of added white or pink noise
    noise_snr_db: tuple[float, float] = (10.0, 30.0)
    reverb_prob: float = 0.2  # chance of a synthetic room (exponentially decaying noise IR)
    reverb_rt60_s: tuple[float, float] = (0.1, 0.5)
    accent_prob: float = 0.5  # chance a training utterance is spoken with accent features
    accents: tuple[str, ...] = tuple(ACCENT_FEATURES)  # the features drawn from, 1 to 3 each
    min_words: int = 3
    max_words: int = 15
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    text_file: str | Path | None = None  # one sentence per line instead of the built-in grammar
    edge_silence_s: float = 0.15  # silence kept before the first and after the last word
    voiced_db: float = 40.0  # frames within this many dB of the loudest frame count as voiced
    max_attempts: int = 3  # syntheses (at different rates) before an utterance is dropped

    @property
    def held_out_speaker(self) -> str | None:
        """The speaker id of the held-out voice: it comes after the training voices."""
        return str(len(self.voices)) if self.held_out_voice else None

    def verify(self) -> None:
        """Raise ValueError naming the first invalid field."""
        for name in ("n_train", "n_dev", "n_test"):
            if getattr(self, name) < 0:
                raise ValueError(f"SynthOptions.{name} must be >= 0, got {getattr(self, name)}")
        if not self.voices:
            raise ValueError("SynthOptions.voices must name at least one espeak-ng voice")
        if self.held_out_voice in self.voices:
            raise ValueError(f"SynthOptions.held_out_voice {self.held_out_voice!r} is in voices")
        for voice in (*self.voices, *([self.held_out_voice] if self.held_out_voice else [])):
            if not voice_exists(voice):
                raise ValueError(f"SynthOptions: espeak-ng has no voice {voice!r}")
        for name in ("rate_wpm", "pitch", "noise_snr_db", "reverb_rt60_s"):
            low, high = getattr(self, name)
            if low > high:
                raise ValueError(f"SynthOptions.{name} needs low <= high, got {(low, high)}")
        if not (self.rate_wpm[0] >= 80 and self.rate_wpm[1] <= 450):
            raise ValueError(f"SynthOptions.rate_wpm must lie in 80..450, got {self.rate_wpm}")
        if not (self.pitch[0] >= 0 and self.pitch[1] <= 100):
            raise ValueError(f"SynthOptions.pitch must lie in 0..100, got {self.pitch}")
        unknown = sorted(set(self.accents) - set(ACCENT_FEATURES))
        if unknown:
            raise ValueError(
                f"SynthOptions.accents: unknown features {unknown}; known: {sorted(ACCENT_FEATURES)}"
            )
        for name in ("noise_prob", "reverb_prob", "accent_prob"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"SynthOptions.{name} must be in [0, 1]")
        if not 1 <= self.min_words <= self.max_words:
            raise ValueError("SynthOptions needs 1 <= min_words <= max_words")
        if self.workers < 1 or self.max_attempts < 1:
            raise ValueError("SynthOptions.workers and max_attempts must be >= 1")


@dataclass(frozen=True)
class SynthReport:
    """What was made: utterances and audio seconds per split, and what was dropped and why."""

    output_dir: str
    utterances: dict[str, int]
    seconds: dict[str, float]
    dropped: dict[str, int]  # reason -> count
    dropped_ids: tuple[str, ...]
    voices: dict[str, str]  # speaker id -> espeak-ng voice
    wall_seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def voice_exists(voice: str) -> bool:
    """True when espeak-ng's shipped data has the language (and variant) of `voice`."""
    data = Path(espeakng_loader.get_data_path())
    language, _, variant = voice.partition("+")
    if variant and not (data / "voices" / "!v" / variant).is_file():
        return False
    return any(
        p.name.lower() == language.lower() for p in (data / "lang").rglob("*") if p.is_file()
    )


# ------------------------------------------------------------------------------------------
# espeak-ng through ctypes (one instance per worker process)
# ------------------------------------------------------------------------------------------
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


class _Espeak:
    """libespeak-ng in synchronous mode: text in, int16 samples and word events out."""

    def __init__(self, data_dir: Path | None = None) -> None:
        """`data_dir`: a writable overlay of espeak-ng's data (`_overlay_data`) for accents."""
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
                raise RuntimeError("accent features need _Espeak(data_dir=_overlay_data(...))")
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


def _overlay_data(root: Path) -> Path:
    """espeak-ng's data dir rebuilt under `root` from links, with a writable `voices/!v`."""
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


# ------------------------------------------------------------------------------------------
# One utterance: synthesis, timings, trimming, augmentation
# ------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Job:
    split: str
    utt_id: str
    path: str  # absolute .flac path
    text: str
    voice: str
    speaker: str
    rate: int
    pitch: int
    seed: int
    accent: tuple[str, ...] = ()  # ACCENT_FEATURES names


def _merged_onset(word: str, phonemes: list[tuple[int, int, str]]) -> int | None:
    """Onset of an article spoken as the tail of the previous word's phonemes, if it fits."""
    if word not in _MERGED_WORDS:
        return None
    firsts, count = _MERGED_WORDS[word]
    spoken = [(sample, name) for sample, name in phonemes if name[:1] not in ("_", ";")]
    if len(spoken) <= count or not spoken[-count][1].startswith(firsts):
        return None
    return spoken[-count][0]


def _match_events(
    text: str, events: list[tuple[int, int]], phonemes: list[tuple[int, int, str]]
) -> list[int] | None:
    """Onset sample of each word, or None unless every word is accounted for exactly once."""
    starts = [m.start() for m in re.finditer(r"\S+", text)]
    onsets: dict[int, int] = {}
    for position, sample in events:
        if position not in starts or position in onsets:
            return None
        onsets[position] = sample
    for i, start in enumerate(starts):
        if start not in onsets and i > 0 and starts[i - 1] in onsets:
            previous = [(s, name) for p, s, name in phonemes if p == starts[i - 1]]
            onset = _merged_onset(text.split()[i], previous)
            if onset is not None:
                onsets[start] = onset
    if len(onsets) != len(starts):
        return None
    samples = [onsets[s] for s in starts]
    return samples if samples == sorted(samples) else None


def _voiced_frames(audio: np.ndarray, voiced_db: float) -> np.ndarray:
    """Bool [frames]: 10 ms frames whose energy is within `voiced_db` of the loudest one."""
    n = len(audio) // FRAME
    energy = (audio[: n * FRAME].reshape(n, FRAME) ** 2).mean(axis=1)  # [frames]
    db = 10 * np.log10(energy + 1e-12)
    return db > db.max() - voiced_db


def _word_spans(onsets: np.ndarray, n_samples: int, voiced: np.ndarray) -> list[tuple[int, int]]:
    """(start, end) samples per word from onsets, trimmed to the voiced frames between them."""
    bounds = np.append(onsets, n_samples)
    spans = []
    for begin, limit in zip(bounds[:-1], bounds[1:], strict=True):
        frames = np.flatnonzero(voiced[begin // FRAME : max(begin // FRAME + 1, limit // FRAME)])
        if len(frames) == 0:
            spans.append((int(begin), int(max(begin, limit))))
            continue
        first = begin // FRAME + frames[0]
        last = begin // FRAME + frames[-1]
        start = max(int(begin), int(first) * FRAME)
        end = min(int(limit), (int(last) + 1) * FRAME)
        spans.append((start, max(start, end)))
    return spans


def _augment(audio: np.ndarray, rng: np.random.Generator, options: SynthOptions) -> np.ndarray:
    """Optional room reverb then additive white/pink noise at a random SNR; timings unchanged."""
    if rng.random() < options.reverb_prob:
        rt60 = rng.uniform(*options.reverb_rt60_s)
        t = np.arange(int(rt60 * SAMPLE_RATE)) / SAMPLE_RATE
        ir = rng.standard_normal(len(t)) * np.exp(-6.9 * t / rt60)  # -60 dB at rt60
        ir[0] = 1.0  # direct path at delay 0, so onsets do not move
        size = 1 << (len(audio) + len(ir) - 2).bit_length()  # a power of two: fast FFTs
        wet = np.fft.irfft(np.fft.rfft(audio, size) * np.fft.rfft(ir, size), size)
        audio = wet[: len(audio)] * (np.abs(audio).max() / (np.abs(wet).max() + 1e-9))
    if rng.random() < options.noise_prob:
        size = 1 << (len(audio) - 1).bit_length()
        noise = rng.standard_normal(size)
        if rng.random() < 0.5:  # pink: 1/f power
            spectrum = np.fft.rfft(noise)
            spectrum /= np.sqrt(np.maximum(np.arange(len(spectrum)), 1))
            noise = np.fft.irfft(spectrum, size)
        noise = noise[: len(audio)]
        snr_db = rng.uniform(*options.noise_snr_db)
        signal_power = np.mean(audio**2)
        noise *= np.sqrt(signal_power / (np.mean(noise**2) + 1e-12) / 10 ** (snr_db / 10))
        audio = audio + noise
    return audio


def _render(job: _Job, engine: _Espeak, options: SynthOptions) -> dict[str, Any]:
    """Synthesise one job and write its FLAC; returns its manifest fields or a drop reason."""
    rng = np.random.default_rng(job.seed)
    voice = engine.accent_voice(job.voice, job.accent)
    rate, onsets = job.rate, None
    for attempt in range(options.max_attempts):
        if attempt:
            rate = int(rng.integers(options.rate_wpm[0], options.rate_wpm[1] + 1))
        seed = job.seed + attempt
        pcm, events, phonemes = engine.synthesize(job.text, voice, rate, job.pitch, seed)
        onsets = _match_events(job.text, events, phonemes)
        if onsets is not None and len(pcm):
            break
    if onsets is None or not len(pcm):
        return {"id": job.utt_id, "dropped": "word events did not match the words"}
    audio = soxr.resample(pcm.astype(np.float32) / 32768, ESPEAK_SAMPLE_RATE, SAMPLE_RATE)
    onsets16 = np.minimum(np.asarray(onsets) * SAMPLE_RATE // ESPEAK_SAMPLE_RATE, len(audio))
    voiced = _voiced_frames(audio, options.voiced_db)
    spans = _word_spans(onsets16, len(audio), voiced)
    # Exactly `edge` silence before the first and after the last word: pad, then cut.
    edge = int(options.edge_silence_s * SAMPLE_RATE)
    padded = np.pad(audio.astype(np.float64), edge)
    cut_start = spans[0][0]  # = first word start - edge, in padded samples
    audio = _augment(padded[cut_start : spans[-1][1] + 2 * edge], rng, options)
    audio *= rng.uniform(0.3, 0.95) / (np.abs(audio).max() + 1e-9)  # level variety, no clipping
    pcm16 = np.round(audio * 32767).astype(np.int16)
    Path(job.path).parent.mkdir(parents=True, exist_ok=True)
    sf.write(job.path, pcm16, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
    words = [
        (
            word,
            round((s + edge - cut_start) / SAMPLE_RATE, 3),
            round((e + edge - cut_start) / SAMPLE_RATE, 3),
        )
        for word, (s, e) in zip(job.text.split(), spans, strict=True)
    ]
    return {"id": job.utt_id, "duration": len(pcm16) / SAMPLE_RATE, "words": words}


def _synthesize_shard(task: tuple[list[_Job], SynthOptions]) -> list[dict[str, Any]]:
    """Runs in a fresh process (see module docstring): one espeak-ng instance per shard."""
    jobs, options = task
    with tempfile.TemporaryDirectory(prefix="voxlm-espeak-") as tmp:
        engine = _Espeak(_overlay_data(Path(tmp)) if any(job.accent for job in jobs) else None)
        return [_render(job, engine, options) for job in jobs]


# ------------------------------------------------------------------------------------------
# The corpus
# ------------------------------------------------------------------------------------------
def read_text_file(path: str | Path) -> list[str]:
    """Sentences from a file, one per line: lowercased, punctuation removed, duplicates dropped.

    Digits raise ValueError (file:line): espeak-ng would speak "3" as "three", and the transcript
    must be what is spoken.
    """
    sentences = []
    with Path(path).open(encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if re.search(r"\d", line):
                raise ValueError(f"{path}:{number}: spell out numbers as words, got {line!r}")
            text = " ".join(re.sub(r"[^a-z' ]+", " ", line.lower()).replace(" '", " ").split())
            if text.strip("' "):
                sentences.append(text)
    return list(dict.fromkeys(sentences))


def _split_sentences(options: SynthOptions) -> dict[str, list[str]]:
    """Disjoint sentences per split; dev/test use only words that occur in train."""
    if options.text_file is not None:
        train, dev, test = split_disjoint(
            read_text_file(options.text_file),
            options.n_train,
            options.n_dev,
            options.n_test,
            options.seed,
        )
        return {"train": train, "dev": dev, "test": test}
    lengths = (options.min_words, options.max_words)
    train = generate_sentences(options.n_train, options.seed, *lengths)
    held_out = generate_sentences(
        options.n_dev + options.n_test,
        options.seed + 1,
        *lengths,
        vocabulary=sentence_words(train),
        exclude=train,
    )
    return {"train": train, "dev": held_out[: options.n_dev], "test": held_out[options.n_dev :]}


def _plan(options: SynthOptions, sentences: dict[str, list[str]]) -> list[_Job]:
    """One job per sentence, with voice, rate, pitch and a seed drawn per utterance."""
    root = Path(options.output_dir).resolve()
    voices = list(options.voices)
    jobs = []
    for split_index, split in enumerate(SPLITS):
        allowed = list(range(len(voices)))
        if split == "test" and options.held_out_voice:
            allowed.append(len(voices))
        counters: Counter[int] = Counter()
        for i, text in enumerate(sentences[split]):
            seq = np.random.SeedSequence([options.seed, split_index, i])
            rng = np.random.default_rng(seq)
            speaker = int(rng.choice(allowed))
            chapter = CHAPTERS[split]
            utt_id = f"{speaker}-{chapter}-{counters[speaker]:04d}"
            counters[speaker] += 1
            rate = int(rng.integers(options.rate_wpm[0], options.rate_wpm[1] + 1))
            pitch = int(rng.integers(options.pitch[0], options.pitch[1] + 1))
            accent: tuple[str, ...] = ()
            if split == "train" and options.accents and rng.random() < options.accent_prob:
                k = int(rng.integers(1, min(3, len(options.accents)) + 1))
                accent = tuple(sorted(str(f) for f in rng.choice(options.accents, k, False)))
            jobs.append(
                _Job(
                    split=split,
                    utt_id=utt_id,
                    path=str(root / split / str(speaker) / str(chapter) / f"{utt_id}.flac"),
                    text=text,
                    voice=(voices + [options.held_out_voice])[speaker],
                    speaker=str(speaker),
                    rate=rate,
                    pitch=pitch,
                    seed=int(seq.generate_state(1)[0]),
                    accent=accent,
                )
            )
    return jobs


def _write_transcripts(root: Path, utterances: dict[str, list[Utterance]]) -> None:
    """LibriSpeech `<speaker>-<chapter>.trans.txt` files, ids sorted."""
    groups: dict[Path, list[str]] = {}
    for split, items in utterances.items():
        for u in items:
            speaker, chapter, _ = u.id.split("-")
            folder = root / split / speaker / chapter
            groups.setdefault(folder / f"{speaker}-{chapter}.trans.txt", []).append(
                f"{u.id} {u.text.upper()}"
            )
    for path, lines in groups.items():
        path.write_text("\n".join(sorted(lines)) + "\n", encoding="utf-8")


def synthesize_corpus(options: SynthOptions, progress: bool = True) -> SynthReport:
    """Synthesise train/dev/test (see the module docstring for the layout); reproducible by seed.

    Workers start through multiprocessing's forkserver, so a script calling this needs the
    usual `if __name__ == "__main__":` guard.
    """
    options.verify()
    began = time.perf_counter()
    root = Path(options.output_dir).resolve()
    root.mkdir(parents=True, exist_ok=True)
    jobs = _plan(options, _split_sentences(options))
    shards = [(jobs[i : i + SHARD_SIZE], options) for i in range(0, len(jobs), SHARD_SIZE)]
    # forkserver: each shard's process starts from a clean interpreter (no espeak-ng state from
    # the caller) and maxtasksperchild=1 gives every shard a fresh library.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([__name__])
    results: list[dict[str, Any]] = []
    with (
        context.Pool(min(options.workers, max(1, len(shards))), maxtasksperchild=1) as pool,
        tqdm(total=len(jobs), desc="synth", unit="utt", disable=not progress) as bar,
    ):
        for shard_results in pool.imap(_synthesize_shard, shards):
            results += shard_results
            bar.update(len(shard_results))
    return _finish(options, root, jobs, results, time.perf_counter() - began)


def _finish(
    options: SynthOptions,
    root: Path,
    jobs: list[_Job],
    results: list[dict[str, Any]],
    wall_seconds: float,
) -> SynthReport:
    """Write manifests, transcripts and SPEAKERS.TXT; count what was made and dropped."""
    utterances: dict[str, list[Utterance]] = {split: [] for split in SPLITS}
    dropped: Counter[str] = Counter()
    dropped_ids = []
    for job, result in zip(jobs, results, strict=True):
        if "dropped" in result:
            dropped[result["dropped"]] += 1
            dropped_ids.append(job.utt_id)
            continue
        utterances[job.split].append(
            Utterance(
                id=job.utt_id,
                audio_path=job.path,
                text=job.text,
                duration=result["duration"],
                words=tuple(result["words"]),
                speaker=job.speaker,
            )
        )
    for split, items in utterances.items():
        write_manifest(root / f"{split}.jsonl", items)
    _write_transcripts(root, utterances)
    names = list(options.voices) + ([options.held_out_voice] if options.held_out_voice else [])
    voices = {str(i): name for i, name in enumerate(names)}
    speakers = [
        f"{i:<4}| {name:<20}| {'test' if str(i) == options.held_out_speaker else 'all'}"
        for i, name in enumerate(names)
    ]
    (root / "SPEAKERS.TXT").write_text(
        "; ID | VOICE | SPLITS\n" + "\n".join(speakers) + "\n", encoding="utf-8"
    )
    return SynthReport(
        output_dir=str(root),
        utterances={s: len(u) for s, u in utterances.items()},
        seconds={s: round(sum(x.duration for x in u), 3) for s, u in utterances.items()},
        dropped=dict(dropped),
        dropped_ids=tuple(dropped_ids),
        voices=voices,
        wall_seconds=round(wall_seconds, 3),
    )
