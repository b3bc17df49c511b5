"""Flite through ctypes: text in, samples and each word's start and end sample out.

Flite's CMU voices speak more like people than espeak-ng's formant voices: `slt`, `awb` and
`rms` are statistical parametric (clustergen) voices trained on recordings of one US woman, one
Scottish man and one US man, `kal16` a diphone voice of a US man. A model that learned to
listen only to espeak-ng carries little of it to human speech, so the corpus can mix them in
(`SynthOptions.voices` entries named ``flite:<voice>``).

Word times come from Flite's own utterance structure: a word starts where the segment before
its first phoneme ends and ends with its last phoneme. Flite is Debian's `flite` package
(`libflite.so.1` and `libflite_cmu_us_<voice>.so.1`); without it these voices are unavailable
and `voice_exists` says so.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from functools import cache

import numpy as np

PREFIX = "flite:"
VOICES = ("slt", "awb", "rms", "kal16")  # the 16 kHz English voices Debian's flite ships

_P = ctypes.c_void_p
# A word starts where the segment before its first phoneme ends, and ends with its last one.
_WORD_START = b"R:SylStructure.daughter1.daughter1.R:Segment.p.end"
_WORD_END = b"R:SylStructure.daughtern.daughtern.R:Segment.end"
_F0_MEAN = b"int_f0_target_mean"  # diphone voices' pitch; clustergen voices read f0_shift


class _Wave(ctypes.Structure):
    """cst_wave from cst_wave.h."""

    _fields_ = [
        ("type", ctypes.c_char_p),
        ("sample_rate", ctypes.c_int),
        ("num_samples", ctypes.c_int),
        ("num_channels", ctypes.c_int),
        ("samples", ctypes.POINTER(ctypes.c_short)),
    ]


class _Voice(ctypes.Structure):
    """The head of cst_voice from cst_voice.h: its features are what synthesis reads."""

    _fields_ = [("name", ctypes.c_char_p), ("features", _P)]


def is_flite(voice: str) -> bool:
    return voice.startswith(PREFIX)


@cache
def _library() -> ctypes.CDLL | None:
    try:
        lib = ctypes.CDLL("libflite.so.1")
    except OSError:
        return None
    for name in ("flite_synth_text", "utt_relation", "relation_head", "item_next", "utt_wave"):
        getattr(lib, name).restype = _P
    lib.flite_synth_text.argtypes = [ctypes.c_char_p, _P]
    lib.utt_relation.argtypes = [_P, ctypes.c_char_p]
    lib.relation_head.argtypes = [_P]
    lib.item_next.argtypes = [_P]
    lib.utt_wave.argtypes = [_P]
    lib.ffeature_float.restype = ctypes.c_float
    lib.ffeature_float.argtypes = [_P, ctypes.c_char_p]
    lib.feat_set_float.argtypes = [_P, ctypes.c_char_p, ctypes.c_float]
    lib.feat_float.restype = ctypes.c_float
    lib.feat_float.argtypes = [_P, ctypes.c_char_p]
    lib.feat_present.argtypes = [_P, ctypes.c_char_p]
    lib.delete_utterance.argtypes = [_P]
    lib.flite_init()
    return lib


@cache
def _voice(name: str) -> tuple[ctypes._Pointer, float | None] | None:
    """The registered voice and its diphone pitch mean (None for clustergen voices)."""
    lib = _library()
    try:
        voice_lib = ctypes.CDLL(f"libflite_cmu_us_{name}.so.1")
    except OSError:
        return None
    if lib is None:
        return None
    register = getattr(voice_lib, f"register_cmu_us_{name}")
    register.restype = ctypes.POINTER(_Voice)
    register.argtypes = [ctypes.c_char_p]
    handle = register(None)
    features = handle.contents.features
    mean = lib.feat_float(features, _F0_MEAN) if lib.feat_present(features, _F0_MEAN) else None
    return handle, mean


@cache
def _libc() -> ctypes.CDLL:
    return ctypes.CDLL(ctypes.util.find_library("c"))


def voice_exists(voice: str) -> bool:
    """True for ``flite:<name>`` when Flite and that voice's library load."""
    name = voice.removeprefix(PREFIX)
    return is_flite(voice) and name in VOICES and _voice(name) is not None


def synthesize(
    text: str, voice: str, stretch: float, f0_scale: float, seed: int
) -> tuple[np.ndarray, int, list[tuple[int, int]]]:
    """(int16 samples, sample rate, (start, end) sample of each word Flite spoke).

    `stretch` scales every duration (2.0 speaks at half the rate); `f0_scale` multiplies the
    pitch (the `rms` voice ignores it). The clustergen voices draw their excitation noise from
    the C library's `rand()`, seeded here with `seed` so that the same seed gives the same
    samples. The caller checks the word count against its text: Flite expands some tokens.
    """
    lib, loaded = _library(), _voice(voice.removeprefix(PREFIX))
    if lib is None or loaded is None:
        raise RuntimeError(f"Flite voice {voice!r} is not installed (Debian package `flite`)")
    handle, f0_mean = loaded
    features = handle.contents.features
    lib.feat_set_float(features, b"duration_stretch", stretch)
    if f0_mean is None:
        lib.feat_set_float(features, b"f0_shift", f0_scale)
    else:
        lib.feat_set_float(features, _F0_MEAN, f0_mean * f0_scale)
    _libc().srand(seed & 0x7FFFFFFF)
    utterance = lib.flite_synth_text(text.encode(), ctypes.cast(handle, _P))
    try:
        wave = ctypes.cast(lib.utt_wave(utterance), ctypes.POINTER(_Wave)).contents
        samples = np.ctypeslib.as_array(wave.samples, (wave.num_samples,)).copy()
        rate = wave.sample_rate
        words = []
        item = lib.relation_head(lib.utt_relation(utterance, b"Word"))
        while item:
            start = lib.ffeature_float(item, _WORD_START)
            end = lib.ffeature_float(item, _WORD_END)
            words.append((round(start * rate), round(end * rate)))
            item = lib.item_next(item)
    finally:
        lib.delete_utterance(utterance)
    return samples, rate, words
