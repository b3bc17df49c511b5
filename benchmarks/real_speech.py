"""Real speech: the pretrained Whisper decoders, faster-whisper and VoxLM models, beside ANCHORS.md.

On the English clips of ``../shared/real-speech`` (real people, reference transcripts, three with
human word timings), with the Whisper weights that ship in packages (``voxlm[real]``):

1. Transcription, greedy, English: Whisper base's and tiny.en's own decoders (transformers
   ``generate`` on the converted weights), faster-whisper (CTranslate2) on the same package files
   in int8 and float32, and every ``--model`` (``VoxLM.transcribe``). WER per clip and pooled,
   after ``voxlm.text.normalize_english`` (numbers spelled either way score the same); pooled
   with the plain ``normalize_text`` too, which is what ANCHORS.md's figures use.
2. Speed: every system runs on each clip in turn (interleaved, so load from other processes on a
   shared machine falls on all alike), after one untimed warm-up clip. RTFx = audio seconds /
   wall seconds; "vs baseline" = the baseline's wall time / the system's, the baseline being
   Whisper base's own decoder (tiny.en's with ``--quick``) in the same process.
3. Word onsets on the clips with human timings: forced alignment of the reference words with
   ``WhisperTimestamper`` (Whisper base's cross-attention + DTW) and each ``--model``'s own
   aligner (``VoxLMTimestamper``); faster-whisper's and VoxLM's word times from transcription
   (matched words only); and the proportional split of the clip (``proportional_onsets``).
   MAE and share within 50 ms, per clip and pooled over words.

    python benchmarks/real_speech.py [--data ../shared/real-speech/manifest.jsonl] [--model DIR ...]
        [--output-dir runs/real_speech] [--quick]

``--quick`` runs the two shortest human-timed clips with tiny.en only (a smoke test).
Writes ``real_speech.json`` (every hypothesis and number) and ``real_speech.md`` (the tables).
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.resources
import json
import platform
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from voxlm import assets
from voxlm.audio import SAMPLE_RATE, load_audio
from voxlm.data.manifest import Utterance, WordTiming, read_manifest
from voxlm.evaluate import proportional_onsets, word_error_rate
from voxlm.text import matched_words, normalize_english

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "real-speech" / "manifest.jsonl"
BASE, TINY = "openai/whisper-base", "openai/whisper-tiny.en"
COMPUTE_TYPES = ("int8", "float32")
QUICK_CLIPS = 2

Words = tuple[WordTiming, ...]


class Clip(NamedTuple):
    """One manifest line, its audio (16 kHz mono) and whether its word times are human.

    (A NamedTuple, not a dataclass: benchmarks are loaded as files, outside ``sys.modules``.)
    """

    utterance: Utterance
    language: str
    human_timed: bool
    audio: np.ndarray

    @property
    def id(self) -> str:
        return self.utterance.id

    @property
    def seconds(self) -> float:
        return len(self.audio) / SAMPLE_RATE


def read_clips(manifest: Path, quick: bool) -> list[Clip]:
    """The English clips of a real-speech manifest (``--quick``: the two shortest human-timed)."""
    if not manifest.is_file():
        raise ValueError(f"{manifest}: no such manifest; pass --data PATH/manifest.jsonl")
    extra = [json.loads(line) for line in manifest.read_text("utf-8").splitlines() if line.strip()]
    chosen = [
        (u, record.get("timings") == "human" and bool(u.words))
        for u, record in zip(read_manifest(manifest), extra, strict=True)
        if record.get("language", "en") == "en"
    ]
    if quick:
        chosen = sorted(chosen, key=lambda c: (not c[1], c[0].duration))[:QUICK_CLIPS]
    return [Clip(u, "en", human, load_audio(u.audio_path)) for u, human in chosen]


# --- systems: audio -> (text, word times or None) -------------------------------------------


class WhisperDecoder:
    """A Whisper checkpoint's own decoder: transformers ``generate``, greedy, English."""

    def __init__(self, path: str) -> None:
        from transformers import WhisperForConditionalGeneration, WhisperProcessor

        self.processor = WhisperProcessor.from_pretrained(path)
        self.model = WhisperForConditionalGeneration.from_pretrained(path).eval()
        multilingual = getattr(self.model.generation_config, "is_multilingual", True)
        self.language = {"language": "en", "task": "transcribe"} if multilingual else {}

    @torch.no_grad()
    def __call__(self, audio: np.ndarray) -> tuple[str, Words | None]:
        features = self.processor.feature_extractor(
            audio, sampling_rate=SAMPLE_RATE, return_tensors="pt"
        ).input_features  # [1, n_mels, 3000]
        ids = self.model.generate(features, do_sample=False, num_beams=1, **self.language)
        return self.processor.tokenizer.decode(ids[0], skip_special_tokens=True).strip(), None


class FasterWhisper:
    """faster-whisper (CTranslate2): greedy (beam 1, temperature 0 only), English, word times."""

    def __init__(self, directory: Path, compute_type: str, threads: int) -> None:
        from faster_whisper import WhisperModel

        self.model = WhisperModel(
            str(directory), device="cpu", compute_type=compute_type, cpu_threads=threads
        )

    def __call__(self, audio: np.ndarray) -> tuple[str, Words | None]:
        segments, _ = self.model.transcribe(
            audio, language="en", beam_size=1, temperature=0.0, word_timestamps=True
        )
        segments = list(segments)  # the transcription runs as the iterator is consumed
        text = "".join(s.text for s in segments).strip()
        words = tuple((w.word.strip(), w.start, w.end) for s in segments for w in s.words or ())
        return text, words


class VoxLMSystem:
    """A VoxLM model's ``transcribe`` with its default decoding options."""

    def __init__(self, model) -> None:
        self.model = model

    def __call__(self, audio: np.ndarray) -> tuple[str, Words | None]:
        t = self.model.transcribe(audio, sample_rate=SAMPLE_RATE)
        return t.text, tuple((w.word, w.start, w.end) for w in t.words)


def faster_whisper_dir(name: str, scratch: Path) -> Path:
    """The packaged CTranslate2 directory of ``name``; a split model.bin is joined in ``scratch``."""
    packaged = assets.PACKAGED[name]
    module, folder = packaged.directory
    source = Path(str(importlib.resources.files(module) / folder))
    parts = packaged.paths()
    if len(parts) == 1:
        return source
    target = scratch / name.replace("/", "--")
    target.mkdir(parents=True)
    with (target / "model.bin").open("wb") as out:
        for part in parts:
            with part.open("rb") as f:
                shutil.copyfileobj(f, out)
    for extra in ("config.json", "tokenizer.json", "vocabulary.txt", "preprocessor_config.json"):
        if (source / extra).is_file():
            (target / extra).symlink_to(source / extra)
    return target


def build_systems(args: argparse.Namespace, scratch: Path) -> tuple[dict, dict, str]:
    """name -> transcriber, name -> forced timestamper, and the baseline's name."""
    from voxlm.timestamps import VoxLMTimestamper, WhisperTimestamper

    whispers = (TINY,) if args.quick else (BASE, TINY)
    systems: dict[str, Callable] = {}
    for name in whispers:
        systems[f"{short(name)} (transformers)"] = WhisperDecoder(assets.resolve(name))
    for name in whispers:
        directory = faster_whisper_dir(name, scratch)
        for compute_type in COMPUTE_TYPES:
            label = f"{short(name)} faster-whisper {compute_type}"
            systems[label] = FasterWhisper(directory, compute_type, args.threads)
    timer_whisper = whispers[0]
    timestampers: dict[str, Callable] = {
        f"{short(timer_whisper)} cross-attention DTW (forced)": WhisperTimestamper.from_pretrained(
            assets.resolve(timer_whisper)
        )
    }
    for path in args.model:
        from voxlm.model import VoxLM

        model = VoxLM.from_pretrained(path).eval()
        label = f"voxlm {Path(path).name}"
        systems[label] = VoxLMSystem(model)
        timestampers[f"{label} aligner (forced)"] = VoxLMTimestamper(model)
        if model.config.ctc_units == "characters":
            timestampers[f"{label} letters (forced)"] = VoxLMTimestamper(model, letters=True)
    return systems, timestampers, f"{short(whispers[0])} (transformers)"


def short(name: str) -> str:
    return name.split("/")[-1]


# --- running and scoring ----------------------------------------------------------------------


def transcribe_all(systems: dict, clips: Sequence[Clip]) -> dict[str, dict[str, dict]]:
    """system -> clip id -> {hypothesis, words, seconds}; systems interleaved clip by clip."""
    for system in systems.values():
        system(clips[0].audio)  # warm-up: first-call allocations and kernel choices
    out: dict[str, dict[str, dict]] = {name: {} for name in systems}
    for clip in clips:
        for name, system in systems.items():
            began = time.perf_counter()
            text, words = system(clip.audio)
            seconds = time.perf_counter() - began
            out[name][clip.id] = {"hypothesis": text, "words": words, "seconds": seconds}
    return out


def wer(refs: Sequence[str], hyps: Sequence[str], normalize: Callable | None) -> float:
    """Corpus WER, after ``normalize`` when given (``word_error_rate`` applies normalize_text)."""
    if normalize is not None:
        refs, hyps = [normalize(r) for r in refs], [normalize(h) for h in hyps]
    return word_error_rate(list(refs), list(hyps))


def score_transcripts(clips: Sequence[Clip], runs: dict, baseline: str) -> dict[str, dict]:
    """WER per clip and pooled (English normaliser; pooled plain too), RTFx, speed vs baseline."""
    refs = [c.utterance.text for c in clips]
    audio_seconds = sum(c.seconds for c in clips)
    base_wall = sum(r["seconds"] for r in runs[baseline].values())
    scores = {}
    for name, per_clip in runs.items():
        hyps = [per_clip[c.id]["hypothesis"] for c in clips]
        wall = sum(r["seconds"] for r in per_clip.values())
        scores[name] = {
            "wer": wer(refs, hyps, normalize_english),
            "wer_plain_normaliser": wer(refs, hyps, None),
            "audio_seconds": audio_seconds,
            "wall_seconds": wall,
            "rtfx": audio_seconds / wall,
            "speed_vs_baseline": base_wall / wall,
            "clips": {
                c.id: {
                    "hypothesis": h,
                    "wer": wer([c.utterance.text], [h], normalize_english),
                    "seconds": per_clip[c.id]["seconds"],
                }
                for c, h in zip(clips, hyps, strict=True)
            },
        }
    return scores


def onset_stats(errors: Sequence[float], n_words: int) -> dict:
    """MAE (ms) and share within 50 ms of signed onset errors (s), with how many words counted."""
    a = np.abs(np.asarray(errors, dtype=np.float64)) * 1000.0
    return {
        "n_words": n_words,
        "n_matched": len(a),
        "mae_ms": float(a.mean()) if len(a) else None,
        "within_50ms": float((a <= 50.0).mean()) if len(a) else None,
    }


def forced_errors(timings: Sequence[WordTiming], reference: Words) -> list[float]:
    if len(timings) != len(reference):
        raise AssertionError(f"{len(timings)} timed words for {len(reference)} reference words")
    return [t[1] - r[1] for t, r in zip(timings, reference, strict=True)]


def matched_errors(words: Words, reference: Words) -> list[float]:
    """Onset errors of the transcribed words the edit alignment matches to reference words."""
    pairs = matched_words([w for w, _, _ in reference], [w for w, _, _ in words])
    return [words[j][1] - reference[i][1] for i, j in pairs]


def score_onsets(clips: Sequence[Clip], timestampers: dict, runs: dict) -> dict[str, dict]:
    """timing system -> {clips: clip id -> stats, pooled: stats} on the human-timed clips."""
    timed = [c for c in clips if c.human_timed]
    errors: dict[str, dict[str, list[float]]] = {}
    for clip in timed:
        reference = clip.utterance.words
        text = " ".join(w for w, _, _ in reference)
        for name, timestamper in timestampers.items():
            errors.setdefault(name, {})[clip.id] = forced_errors(
                timestamper(clip.audio, text), reference
            )
        for name, per_clip in runs.items():
            words = per_clip[clip.id]["words"]
            if words is not None:
                label = f"{name} words (matched)"
                errors.setdefault(label, {})[clip.id] = matched_errors(words, reference)
        guess = proportional_onsets(text, clip.seconds)
        errors.setdefault("proportional split", {})[clip.id] = [
            g - r[1] for g, r in zip(guess, reference, strict=True)
        ]
    n_words = {c.id: len(c.utterance.words) for c in timed}
    return {
        name: {
            "clips": {k: onset_stats(e, n_words[k]) for k, e in per_clip.items()},
            "pooled": onset_stats(
                [x for e in per_clip.values() for x in e], sum(n_words[k] for k in per_clip)
            ),
        }
        for name, per_clip in errors.items()
    }


# --- ANCHORS.md and the report ----------------------------------------------------------------


def read_anchors(path: Path) -> dict:
    """ANCHORS.md's figures: WER per clip (base, tiny.en), and base's DTW onset MAE per clip."""
    anchors: dict = {"wer": {}, "onset_mae_ms": {}}
    if not path.is_file():
        return anchors
    percent = re.compile(r"\**(\d+(?:\.\d+)?)%")
    for line in path.read_text("utf-8").splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 4 and all(percent.match(c) for c in cells[2:]):
            clip = cells[0].strip("*")
            anchors["wer"][clip] = [float(percent.match(c).group(1)) / 100 for c in cells[2:]]
        elif len(cells) == 3:
            clip, ms = re.match(r"(\S+) \(\d+\)$", cells[0]), re.match(r"(\d+) ms", cells[1])
            if clip and ms:
                anchors["onset_mae_ms"][clip.group(1)] = float(ms.group(1))
    return anchors


def pct(x: float | None) -> str:
    return "–" if x is None else f"{100 * x:.1f}%"


def wer_table(clips: Sequence[Clip], scores: dict, anchors: dict) -> list[str]:
    names = list(scores)
    lines = [
        "| clip | words | " + " | ".join(names) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    for c in clips:
        cells = [pct(scores[n]["clips"][c.id]["wer"]) for n in names]
        words = len(normalize_english(c.utterance.text).split())
        lines.append(f"| {c.id} | {words} | " + " | ".join(cells) + " |")
    n_words = sum(len(normalize_english(c.utterance.text).split()) for c in clips)
    pooled = " | ".join(f"**{pct(scores[n]['wer'])}**" for n in names)
    lines.append(f"| **pooled** | {n_words} | {pooled} |")
    lines.append(
        "| pooled, plain normaliser | | "
        + " | ".join(pct(scores[n]["wer_plain_normaliser"]) for n in names)
        + " |"
    )
    anchor = anchors["wer"].get("pooled")
    if anchor and len(clips) > QUICK_CLIPS:  # ANCHORS.md pools all its English clips
        by_name = {
            f"{short(BASE)} (transformers)": anchor[0],
            f"{short(TINY)} (transformers)": anchor[1],
        }
        cells = " | ".join(pct(by_name.get(n)) for n in names)
        lines.append(f"| ANCHORS.md, plain normaliser | | {cells} |")
    return lines


def speed_table(scores: dict, baseline: str) -> list[str]:
    lines = [
        "| system | audio s | wall s | RTFx | vs baseline |",
        "|---|---|---|---|---|",
    ]
    for name, s in scores.items():
        mark = " (baseline)" if name == baseline else ""
        lines.append(
            f"| {name}{mark} | {s['audio_seconds']:.1f} | {s['wall_seconds']:.2f} | "
            f"{s['rtfx']:.1f} | x{s['speed_vs_baseline']:.2f} |"
        )
    return lines


def onset_cell(stats: dict | None) -> str:
    if not stats or stats["mae_ms"] is None:
        return "–"
    matched = f" ({stats['n_matched']}/{stats['n_words']})"
    return f"{stats['mae_ms']:.0f} ms, {pct(stats['within_50ms'])}" + (
        matched if stats["n_matched"] != stats["n_words"] else ""
    )


def onset_table(onsets: dict, anchors: dict) -> list[str]:
    names = list(onsets)
    clip_ids = list(next(iter(onsets.values()))["clips"]) if onsets else []
    lines = [
        "| clip (words) | " + " | ".join(names) + " | ANCHORS.md base DTW |",
        "|---|" + "---|" * (len(names) + 1),
    ]
    for k in clip_ids:
        n = next(iter(onsets.values()))["clips"][k]["n_words"]
        anchor = anchors["onset_mae_ms"].get(k)
        lines.append(
            f"| {k} ({n}) | "
            + " | ".join(onset_cell(onsets[m]["clips"].get(k)) for m in names)
            + f" | {'–' if anchor is None else f'{anchor:.0f} ms'} |"
        )
    lines.append(
        "| **pooled** | " + " | ".join(onset_cell(onsets[m]["pooled"]) for m in names) + " | |"
    )
    return lines


def report(clips, scores, onsets, anchors, baseline) -> str:
    return "\n".join(
        [
            f"## Transcription: normalised WER (normalize_english), {len(clips)} English clips",
            *wer_table(clips, scores, anchors),
            "",
            f"## Speed: all systems interleaved in one process; baseline {baseline}",
            *speed_table(scores, baseline),
            "",
            "## Word onsets against human timings: MAE, share within 50 ms (matched/words)",
            *onset_table(onsets, anchors),
            "",
        ]
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    # data and models
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="real-speech manifest")
    parser.add_argument("--model", action="append", default=[], help="a VoxLM model (repeatable)")
    parser.add_argument("--quick", action="store_true", help="2 clips, tiny.en only (smoke test)")
    # run and output
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--output-dir", type=Path, default=REPO / "runs" / "real_speech")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> dict:
    args = parse_args(argv)
    torch.set_num_threads(args.threads)
    clips = read_clips(args.data, args.quick)
    anchors = read_anchors(args.data.parent / "ANCHORS.md")
    with contextlib.ExitStack() as stack:
        scratch = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="real_speech_")))
        systems, timestampers, baseline = build_systems(args, scratch)
        runs = transcribe_all(systems, clips)
        scores = score_transcripts(clips, runs, baseline)
        onsets = score_onsets(clips, timestampers, runs)
    result = {
        "command": ["python", "benchmarks/real_speech.py", *(argv or sys.argv[1:])],
        "machine": {"platform": platform.platform(), "threads": args.threads},
        "versions": {"torch": torch.__version__, **_versions()},
        "baseline": baseline,
        "clips": [{"id": c.id, "seconds": c.seconds, "human_timed": c.human_timed} for c in clips],
        "transcription": scores,
        "onsets": onsets,
        "anchors": anchors,
    }
    text = report(clips, scores, onsets, anchors, baseline)
    print(text)
    args.output_dir.mkdir(parents=True, exist_ok=True)
    (args.output_dir / "real_speech.json").write_text(json.dumps(result, indent=1) + "\n")
    (args.output_dir / "real_speech.md").write_text(text)
    return result


def _versions() -> dict[str, str]:
    import importlib.metadata

    names = ("transformers", "faster-whisper", "ctranslate2")
    return {n: importlib.metadata.version(n) for n in names}


if __name__ == "__main__":
    main()
