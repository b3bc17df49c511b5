"""Word timings for a corpus that has none (LibriSpeech), so it can train the aligner (phase 2).

Both timestampers force-align the *known* transcript: the model is run teacher-forced on the
reference tokens and only has to say where each token is, never what was said. That is more
reliable than transcribing and matching, which loses every word the model would misrecognise.

- ``WhisperTimestamper``: a pretrained Whisper's cross-attention, as in openai/whisper's
  ``timing.py`` (alignment heads -> normalise -> median filter -> DTW), with the text forced.
- ``VoxLMTimestamper``: a trained VoxLM's own aligner, as at inference, with the text forced.

``add_timestamps`` fills a manifest's missing ``words`` with either (``voxlm timestamps``).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import torch
from tqdm.auto import tqdm

from voxlm.audio import SAMPLE_RATE, load_audio
from voxlm.data.manifest import Utterance, WordTiming, read_manifest, write_manifest
from voxlm.encoder import ENCODER_FRAME_SECONDS, SAMPLES_PER_ENCODER_FRAME, encoder_frames
from voxlm.labels import token_word_index
from voxlm.precision import widen
from voxlm.spelling import word_seconds
from voxlm.text import TokenText, piece_word_index
from voxlm.timing import median_filter, timing_tokens, token_spans
from voxlm.vad import VadOptions, frame_energy_db, speech_bounds

if TYPE_CHECKING:
    from voxlm.model import VoxLM

logger = logging.getLogger("voxlm")

# openai/whisper's timing.py smooths the attention with a 7-frame (140 ms) median filter.
WHISPER_MEDIAN_FILTER_WIDTH = 7
# Word onsets move to the quietest frame within this many 20 ms frames (snap_onsets); chosen
# on synthetic speech with exact timings (BENCHMARKS.md).
ONSET_SNAP_FRAMES = 3
TIME_DECIMALS = 3  # times are written in milliseconds; frames are 20 ms


class Timestamper(Protocol):
    """Anything that times a known transcript's words in 16 kHz mono audio."""

    def __call__(self, audio: np.ndarray, text: str) -> list[WordTiming]: ...


def word_timings(
    words: Sequence[str],
    token_word: Sequence[int],
    pieces: Sequence[str],
    spans: np.ndarray,
    duration: float,
) -> list[WordTiming]:
    """Tokens' spans (N, 2) in seconds -> each word's (word, start, end), clipped to duration.

    A word's time comes from its tokens as ``timing.timing_tokens`` picks them, as at
    inference. The spans come from one monotonic DTW path, so the times never go backwards.
    """
    out = []
    for w, word in enumerate(words):
        tokens = [j for j, k in enumerate(token_word) if k == w]
        timed = timing_tokens(tokens, list(pieces)) if tokens else []
        if not timed:
            raise ValueError(f"word {w} ({word!r}) has no tokens; cannot time it")
        start = float(np.clip(spans[timed[0], 0], 0.0, duration))
        end = float(np.clip(spans[timed[-1], 1], start, duration))
        out.append((word, round(start, TIME_DECIMALS), round(end, TIME_DECIMALS)))
    return out


def _check_text(text: str) -> list[str]:
    words = text.split()
    if not words:
        raise ValueError("empty transcript: nothing to align")
    return words


class WhisperTimestamper:
    """Times a known transcript with a Whisper model's cross-attention (forced alignment).

    The decoder is run once on [prefix][" " + transcript][EOS]. The rows of cross-attention
    that predict each transcript token (and EOS, which takes the trailing silence) are taken
    from the alignment heads (``generation_config.alignment_heads``, found by openai to track
    time; without them every head of the last half of the decoder layers), normalised per
    head over the tokens, median filtered over frames, averaged over heads, and DTW gives each
    token its frames, as in openai/whisper's word timestamps.

    Two steps go beyond that. A DTW path runs from its first frame to its last, so silence
    before the first word would go to that word (a first word at 0.00 s): with
    ``trim_silence`` the path covers only the frames from the first to the last that the voice
    activity detector (``voxlm.vad``) calls speech. And each later word's onset moves to the
    quietest frame within ``onset_snap_frames`` (``snap_onsets``).

    Audio must fit Whisper's 30 s window; longer audio raises ValueError.
    """

    def __init__(
        self,
        model: Any,
        tokenizer: Any,
        feature_extractor: Any,
        prefix: Sequence[int] | None = None,
        median_filter_width: int = WHISPER_MEDIAN_FILTER_WIDTH,
        trim_silence: bool = True,
        onset_snap_frames: int = ONSET_SNAP_FRAMES,
    ) -> None:
        """model: a ``WhisperForConditionalGeneration``; prefix: the decoder's start tokens
        (default: the tokenizer's ``prefix_tokens``, else the model's decoder start token)."""
        if hasattr(model, "set_attn_implementation"):
            model.set_attn_implementation("eager")  # fused attention returns no weights
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.token_text = TokenText(tokenizer)
        self.feature_extractor = feature_extractor
        if prefix is None:
            prefix = getattr(tokenizer, "prefix_tokens", None) or [
                model.config.decoder_start_token_id
            ]
        self.prefix = list(prefix)
        self.median_filter_width = median_filter_width
        self.trim_silence = trim_silence
        self.onset_snap_frames = onset_snap_frames
        self.heads = self._alignment_heads()

    @classmethod
    def from_pretrained(
        cls, name_or_path: str | Path, language: str | None = "en", **kwargs: Any
    ) -> WhisperTimestamper:
        """Load a Whisper checkpoint (hub name or local directory) and its processor.

        ``language`` is forced in the prefix of multilingual checkpoints (ignored by English-only
        ones); a wrong language makes the attention, and so the times, worse.
        """
        from transformers import WhisperForConditionalGeneration, WhisperProcessor

        try:
            processor = WhisperProcessor.from_pretrained(name_or_path)
            model = WhisperForConditionalGeneration.from_pretrained(
                name_or_path, attn_implementation="eager"
            )
        except OSError as error:
            raise ValueError(
                f"cannot load Whisper {str(name_or_path)!r}: not a local checkpoint directory and "
                f"not reachable on the model hub ({error})"
            ) from None
        tokenizer = processor.tokenizer
        multilingual = getattr(model.generation_config, "is_multilingual", True)
        tokenizer.set_prefix_tokens(
            language=language if multilingual else None, task="transcribe", predict_timestamps=False
        )
        return cls(model, tokenizer, processor.feature_extractor, **kwargs)

    def _alignment_heads(self) -> list[tuple[int, int]]:
        heads = getattr(self.model.generation_config, "alignment_heads", None)
        if heads:
            return [(int(layer), int(head)) for layer, head in heads]
        logger.warning(
            "this Whisper checkpoint's generation_config has no alignment_heads: timing with every "
            "head of the upper half of the decoder, which places words less well"
        )
        config = self.model.config
        layers = config.decoder_layers
        return [
            (layer, head)
            for layer in range(layers // 2, layers)
            for head in range(config.decoder_attention_heads)
        ]

    @torch.no_grad()
    def __call__(self, audio: np.ndarray, text: str) -> list[WordTiming]:
        """(word, start s, end s) for each whitespace-separated word of ``text``."""
        words = _check_text(text)
        duration = len(audio) / SAMPLE_RATE
        max_seconds = self.feature_extractor.chunk_length
        if duration > max_seconds:
            raise ValueError(f"audio is {duration:.1f} s, longer than Whisper's {max_seconds} s")
        tokens = self.tokenizer(" " + text.strip(), add_special_tokens=False).input_ids
        pieces = self.token_text.pieces(tokens)
        token_word, n_words = piece_word_index(pieces)
        if n_words != len(words):
            raise ValueError(f"tokenizer gives {n_words} words for {len(words)}: {text!r}")
        device = next(self.model.parameters()).device
        features = self.feature_extractor(
            audio, sampling_rate=SAMPLE_RATE, return_tensors="pt"
        ).input_features.to(device, self.model.dtype)  # [1, n_mels, 3000]
        ids = [*self.prefix, *tokens, self.model.config.eos_token_id]
        out = self.model(
            input_features=features,
            decoder_input_ids=torch.tensor([ids], device=device),
            output_attentions=True,
            use_cache=False,
        )
        n_frames = max(1, min(int(encoder_frames(len(audio))), out.cross_attentions[0].shape[-1]))
        rows = slice(len(self.prefix) - 1, len(ids) - 1)  # positions predicting text and EOS
        maps = [out.cross_attentions[layer][0, head, rows, :n_frames] for layer, head in self.heads]
        weights = widen(torch.stack(maps))  # [heads, tokens + 1, frames]
        std, mean = torch.std_mean(weights, dim=-2, keepdim=True, unbiased=False)
        weights = ((weights - mean) / std.clamp(min=1e-8)).cpu().numpy()
        matrix = median_filter(weights, self.median_filter_width).mean(0)  # [tokens + 1, frames]
        first, last = self._speech_frames(audio, n_frames)
        spans = token_spans(matrix[:, first:last], last - first, median_width=1) + first
        if self.onset_snap_frames:
            onsets = [token_word.index(w) for w in range(1, n_words)]  # each later word's first
            spans = snap_onsets(spans, onsets, audio, self.onset_snap_frames)
        spans = spans * ENCODER_FRAME_SECONDS
        return word_timings(words, token_word, pieces, spans[: len(tokens)], duration)

    def _speech_frames(self, audio: np.ndarray, n_frames: int) -> tuple[int, int]:
        """The encoder frames from the first to the last speech frame (all of them without
        ``trim_silence``, or where the detector finds no speech)."""
        bounds = speech_bounds(audio, VadOptions(frame_seconds=ENCODER_FRAME_SECONDS))
        if not self.trim_silence or bounds is None:
            return 0, n_frames
        first, last = min(bounds[0], n_frames - 1), min(bounds[1], n_frames)
        return first, max(last, first + 1)


def snap_onsets(spans: np.ndarray, onsets: list[int], audio: np.ndarray, radius: int) -> np.ndarray:
    """Move the start of each token in ``onsets`` to the quietest encoder frame within
    ``radius`` frames, between the starts of its neighbours so times stay in order.

    A word boundary in speech is mostly a dip in loudness (a stop's closure, the pause between
    words), and cross-attention places it only to within a few frames.
    """
    energy = frame_energy_db(audio, SAMPLES_PER_ENCODER_FRAME)  # [frames] dBFS
    spans = spans.copy()
    for k, j in enumerate(onsets):
        low = max(spans[j, 0] - radius, spans[onsets[k - 1], 0] + 1 if k else 0)
        high = min(spans[j, 0] + radius + 1, len(energy))
        if k + 1 < len(onsets):
            high = min(high, spans[onsets[k + 1], 0])
        if high > low:
            spans[j, 0] = low + int(np.argmin(energy[low:high]))
            spans[j, 1] = max(spans[j, 1], spans[j, 0] + 1)
    return spans


class VoxLMTimestamper:
    """Times a known transcript with a trained VoxLM's aligner (forced alignment).

    The same pass as inference (``VoxLM.aligner_attention``) with the reference tokens in
    place of generated ones, and the tokens mapped to words as in training
    (``labels.token_word_index``), so the times are what phase 2 would learn from. With
    ``letters``, a model with a character head times the words by the letters it hears
    instead (``voxlm.spelling.word_seconds``), as letters-first decoding does.
    """

    def __init__(self, model: VoxLM, median_filter_width: int = 3, letters: bool = False) -> None:
        if letters and model.config.ctc_units != "characters":
            raise ValueError("letters timing needs a model with a character CTC head")
        self.model = model.eval()
        self.median_filter_width = median_filter_width
        self.letters = letters

    @torch.no_grad()
    def __call__(self, audio: np.ndarray, text: str) -> list[WordTiming]:
        """(word, start s, end s) for each whitespace-separated word of ``text``."""
        model = self.model
        words = _check_text(text)
        duration = len(audio) / SAMPLE_RATE
        if duration > model.encoder.max_seconds:
            raise ValueError(
                f"audio is {duration:.1f} s, longer than the encoder's {model.encoder.max_seconds} s"
            )
        wave = torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32))[None]  # [1, S]
        features = model.encode(
            wave.to(model.device), torch.tensor([wave.shape[1]], device=model.device)
        )
        n_frames = int(features.mask[0].sum())
        if self.letters:
            log_probs = widen(features.ctc_log_probs[0, :n_frames]).cpu().numpy()
            spans = word_seconds(log_probs, text)
            if len(spans) != len(words):
                raise ValueError(f"{text!r} spells {len(spans)} words for {len(words)}")
            return [
                WordTiming(w, float(a), float(b)) for w, (a, b) in zip(words, spans, strict=True)
            ]
        ids = model.tokenize([text])[0]  # transcript tokens then EOS
        pieces = model.token_text.pieces(ids[:-1])
        token_word = token_word_index(pieces, [{"word": w} for w in words])
        if min(token_word, default=-1) < 0:
            raise ValueError(f"cannot map the tokens of {text!r} to its {len(words)} words")
        log_attn = model.aligner_attention(features, [model.prompt()], [ids[:-1]])  # [[X, T]]
        spans = token_spans(
            widen(log_attn[0]).cpu().numpy(),
            n_frames,
            self.median_filter_width,
            edge_silence=True,
        )
        return word_timings(words, token_word, pieces, spans * ENCODER_FRAME_SECONDS, duration)


@dataclass(frozen=True)
class TimestampSummary:
    """What ``add_timestamps`` did: utterances timed now, already timed, and failed."""

    n_utterances: int
    n_added: int
    n_kept: int
    n_failed: int


def add_timestamps(
    manifest_in: str | Path,
    manifest_out: str | Path,
    timestamper: Timestamper,
    progress: bool = True,
) -> TimestampSummary:
    """Fill ``words`` for every utterance of a JSONL manifest that lacks them.

    Utterances that already have words are kept as they are. A file that cannot be read or
    aligned is logged, counted and written without words (phase 2 skips it). The output is
    written atomically, so ``manifest_out`` may be ``manifest_in``.
    """
    utterances = read_manifest(manifest_in)
    out: list[Utterance] = []
    added = failed = 0
    for u in tqdm(utterances, desc="timestamps", unit="utt", disable=not progress):
        if u.words is not None:
            out.append(u)
            continue
        try:
            words = timestamper(load_audio(u.audio_path), u.text)
        except (ValueError, OSError) as error:
            logger.warning("no word times for %s (%s): %s", u.id, u.audio_path, error)
            failed += 1
            out.append(u)
            continue
        out.append(replace(u, words=tuple(words)))
        added += 1
    write_manifest(manifest_out, out)
    return TimestampSummary(len(utterances), added, len(utterances) - added - failed, failed)
