"""Transcription: audio in any form -> windows -> batched decoding -> aligned, timed words."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from voxlm import silero, vad
from voxlm.audio import SAMPLE_RATE, load_audio
from voxlm.decoding import Decoded, DecodingOptions
from voxlm.decoding.letters import LetterSearch
from voxlm.decoding.search import BeamSearch
from voxlm.encoder import ENCODER_FRAME_SECONDS
from voxlm.precision import widen
from voxlm.results import STOP_EOS, STOP_NO_SPEECH, Transcript, Word
from voxlm.timer import stage
from voxlm.timing import token_spans, tokens_to_words, word_posteriors

if TYPE_CHECKING:
    from voxlm.model import VoxLM

logger = logging.getLogger("voxlm")

MIN_NEW_TOKENS = 8  # token budget floor, so a very short clip can still say a word or two
# The budget with max_tokens_per_second off: the LLM's context, where its config states one.
DEFAULT_CONTEXT = 4096


@dataclass(frozen=True)
class Window:
    """A stretch of one input's audio, decoded on its own."""

    source: int  # index of the input it came from
    offset: float  # seconds from the start of that input
    audio: np.ndarray  # float32 [samples] at 16 kHz
    speech: bool = True  # whether the speech detector found speech in it


def transcribe(
    model: VoxLM,
    audio: Any,
    instruction: str | None = None,
    options: DecodingOptions | None = None,
    sample_rate: int | None = None,
) -> Transcript | list[Transcript]:
    """Transcribe one input or a list of inputs, returning a ``Transcript`` for each.

    ``audio`` is a path, bytes, a file object or an array (with ``sample_rate``), or a list of
    them; a list is decoded in batches. Audio longer than the encoder's window is cut at quiet
    points and the word times are offset back to the whole input. A model with a confidence
    calibration (``voxlm.calibration``) applies it to the words unless ``options.calibrate`` is
    off. Without ``options`` the model's own decoding (``model.decoding``, from a saved
    model's decoding.json) fills in the defaults.
    """
    options = options or DecodingOptions(**model.decoding)
    single = not isinstance(audio, list)
    inputs = [audio] if single else audio
    with stage("audio decode"):
        waves = [load_audio(x, sample_rate) for x in inputs]
    with stage("speech detection"):
        windows = [
            w for i, wave in enumerate(waves) for w in speech_windows(i, wave, model, options)
        ]
    results = decode_windows(model, windows, instruction, options)
    transcripts = [
        _join([r for w, r in zip(windows, results, strict=True) if w.source == i], len(wave))
        for i, wave in enumerate(waves)
    ]
    if options.calibrate and model.calibration is not None:
        transcripts = [model.calibration.apply(t) for t in transcripts]
    return transcripts[0] if single else transcripts


def window_settings(model: VoxLM, options: DecodingOptions) -> tuple[float, bool]:
    """The longest window in seconds (within the encoder's span) and whether speech regions are
    packed into windows: the options' where they say, else the model's (``ModelConfig``)."""
    seconds = min(options.window_seconds or model.window_seconds, model.encoder.max_seconds)
    pack = model.config.pack_windows if options.pack_windows is None else options.pack_windows
    return seconds, pack


def speech_windows(
    source: int, wave: np.ndarray, model: VoxLM, options: DecodingOptions
) -> list[Window]:
    """One input's windows, by the detector ``options.vad`` chooses, none longer than
    ``window_settings`` allows. Silero's hold only speech, its regions packed together or each
    alone; where it finds none, the input is covered as the energy detector cuts it and marked
    as holding no speech."""
    max_seconds, pack = window_settings(model, options)
    if options.vad == "silero":
        cuts = silero.split_points(wave, max_seconds, options.silero, pack)
        if cuts:
            return [Window(source, s / SAMPLE_RATE, wave[s:e]) for s, e in cuts]
    return [
        Window(
            source,
            s / SAMPLE_RATE,
            wave[s:e],
            options.vad == "energy" and vad.has_speech(wave[s:e]),
        )
        for s, e in vad.split_points(wave, max_seconds=max_seconds)
    ]


def decode_windows(
    model: VoxLM, windows: list[Window], instruction: str | None, options: DecodingOptions
) -> list[Transcript]:
    """Decode windows in length-sorted batches (less padding); results in input order."""
    results: list[Transcript | None] = [None] * len(windows)
    speech = []
    for i, window in enumerate(windows):
        if options.no_speech_check and not window.speech:
            duration = len(window.audio) / SAMPLE_RATE
            results[i] = Transcript("", (), duration, STOP_NO_SPEECH)
        else:
            speech.append(i)
    speech.sort(key=lambda i: len(windows[i].audio))
    for start in range(0, len(speech), options.batch_size):
        batch = speech[start : start + options.batch_size]
        for i, result in zip(
            batch,
            _decode_batch(model, [windows[i] for i in batch], instruction, options),
            strict=True,
        ):
            results[i] = result
    return results  # type: ignore[return-value]


@torch.no_grad()
def _decode_batch(
    model: VoxLM, windows: list[Window], instruction: str | None, options: DecodingOptions
) -> list[Transcript]:
    lengths = torch.tensor([len(w.audio) for w in windows])
    audio = torch.zeros(len(windows), int(lengths.max()))
    for i, w in enumerate(windows):
        audio[i, : len(w.audio)] = torch.from_numpy(w.audio)
    features = model.encode(audio.to(model.device), lengths.to(model.device))
    prompts = [model.prompt(instruction)] * len(windows)
    budgets = [token_budget(model, len(w.audio) / SAMPLE_RATE, options) for w in windows]
    with stage("prefill"):
        search = (LetterSearch if options.letters_beam else BeamSearch)(
            model, features, prompts, options
        )
    decoded = search.run(budgets)
    log_attn: list[torch.Tensor | None] = [None] * len(decoded)
    if any(d.spans is None for d in decoded):  # the search did not time its own tokens
        with stage("aligner pass"):
            tokens = [d.tokens for d in decoded]
            log_attn = model.aligner_attention(features, prompts, tokens, search.prefix())
    return [
        _words(model, d, a, int(n), w, options)
        for d, a, n, w in zip(decoded, log_attn, features.mask.sum(1), windows, strict=True)
    ]


def token_budget(model: VoxLM, seconds: float, options: DecodingOptions) -> int:
    """The most tokens a window may take: ``max_tokens_per_second`` of its audio (and a few
    for very short clips), or with that rule off (0) whatever the LLM's context holds."""
    if options.max_tokens_per_second > 0:
        return math.ceil(options.max_tokens_per_second * seconds) + MIN_NEW_TOKENS
    return getattr(model.llm.config, "max_position_embeddings", None) or DEFAULT_CONTEXT


def _words(
    model: VoxLM,
    decoded: Decoded,
    log_attn: torch.Tensor | None,
    n_frames: int,
    window: Window,
    options: DecodingOptions,
) -> Transcript:
    """One window's tokens -> timed words: the search's own times (``Decoded.spans``), else
    DTW over the aligner's attention ``log_attn`` [tokens, frames]."""
    duration = len(window.audio) / SAMPLE_RATE
    if not decoded.tokens:
        return Transcript("", (), duration, decoded.stop_reason)
    if decoded.spans is not None:
        spans = decoded.spans
    else:
        with stage("DTW"):
            attn = widen(log_attn).cpu().numpy()
            spans = token_spans(attn, n_frames, options.median_filter_width, edge_silence=True)
        spans = spans * ENCODER_FRAME_SECONDS
    spans = np.clip(spans, 0.0, duration) + window.offset
    with stage("words + confidence"):
        words = tokens_to_words(
            model.token_text.pieces(decoded.tokens),
            decoded.probs,
            [tuple(s) for s in spans.tolist()],
            options.word_confidence,
        )
        if len(decoded.alternatives) > 1:  # beam search: how much of the n-best list agrees
            texts = [(model.tokenizer.decode(t), score) for t, score in decoded.alternatives]
            posteriors = word_posteriors([w.word for w in words], texts)
            words = [
                replace(w, confidence=w.confidence * p)
                for w, p in zip(words, posteriors, strict=True)
            ]
    return Transcript(" ".join(w.word for w in words), tuple(words), duration, decoded.stop_reason)


def _join(parts: list[Transcript], n_samples: int) -> Transcript:
    """Windows of one input -> its transcript; the first rule other than EOS is reported."""
    duration = n_samples / SAMPLE_RATE
    words: tuple[Word, ...] = tuple(
        Word(w.word, min(w.start, duration), min(w.end, duration), w.confidence)
        for part in parts
        for w in part.words
    )
    fired = [p.stop_reason for p in parts if p.stop_reason not in (STOP_EOS, STOP_NO_SPEECH)]
    if fired:
        reason = fired[0]
    elif all(p.stop_reason == STOP_NO_SPEECH for p in parts):
        reason = STOP_NO_SPEECH
    else:
        reason = STOP_EOS
    return Transcript(" ".join(w.word for w in words), words, duration, reason)
