"""Does cutting long audio into windows cost accuracy? A long file against its utterances.

Concatenates a `voxlm demo` run's test utterances (seeded order) with pauses of 0.3–2 s of
digital silence into one file of about three minutes, transcribes it once, as a user would a
long recording (the speech detector cuts it into windows), and each utterance on its own, both
with the demo's decoding. Prints WER of both, and how far each word's time in the long file
lies from its time in its utterance plus the utterance's offset, over the words both decodings
agree on. Run on an idle machine.

    python benchmarks/long_audio.py demo [--minutes 3] [--vad silero] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

import numpy as np

from voxlm.audio import SAMPLE_RATE, load_audio
from voxlm.data.manifest import Utterance, read_manifest
from voxlm.decoding import DecodingOptions
from voxlm.demo import DemoOptions
from voxlm.evaluate import evaluate, word_error_rate
from voxlm.lexicon import Lexicon
from voxlm.model import VoxLM
from voxlm.ngram import NGramLM
from voxlm.results import Transcript
from voxlm.text import matched_words
from voxlm.transcribe import window_settings

PAUSE_SECONDS = (0.3, 2.0)


def long_file(
    utterances: list[Utterance], minutes: float, seed: int
) -> tuple[np.ndarray, list[Utterance], list[float]]:
    """The concatenation: its samples, the utterances in it and each one's offset in seconds."""
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(utterances))
    pieces, chosen, offsets, length = [], [], [], 0
    for i in order:
        if length >= minutes * 60 * SAMPLE_RATE:
            break
        pause = np.zeros(round(rng.uniform(*PAUSE_SECONDS) * SAMPLE_RATE), dtype=np.float32)
        wave = load_audio(utterances[i].audio_path)
        pieces += [pause, wave]
        length += len(pause)
        offsets.append(length / SAMPLE_RATE)
        chosen.append(utterances[i])
        length += len(wave)
    pieces.append(np.zeros(round(PAUSE_SECONDS[0] * SAMPLE_RATE), dtype=np.float32))
    return np.concatenate(pieces), chosen, offsets


def time_shifts(
    alone: list[Transcript | None], offsets: list[float], together: Transcript
) -> list[float]:
    """For each word both decodings agree on: long-file start minus (utterance start + offset).

    A long-file word belongs to the utterance whose span (offset to offset + duration, widened
    by half the shortest pause) holds its start.
    """
    margin = PAUSE_SECONDS[0] / 2
    shifts = []
    for transcript, offset in zip(alone, offsets, strict=True):
        if transcript is None:
            continue
        end = offset + transcript.audio_duration
        inside = [w for w in together.words if offset - margin <= w.start < end + margin]
        pairs = matched_words([w.word for w in transcript.words], [w.word for w in inside])
        shifts += [inside[j].start - (transcript.words[i].start + offset) for i, j in pairs]
    return shifts


def demo_options(run: Path) -> DecodingOptions:
    """The demo's test decoding: its DemoOptions fields, lexicon and trigram of the training set."""
    demo = DemoOptions()
    texts = [u.text for u in read_manifest(run / "data" / "train.jsonl")]
    return DecodingOptions(
        beam_size=demo.beam_size,
        ctc_candidates=demo.ctc_candidates,
        confidence_temperature=demo.confidence_temperature,
        ngram_weight=demo.ngram_weight,
        lexicon=Lexicon(texts),
        ngram=NGramLM(texts),
    )


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a `voxlm demo --output-dir` folder")
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--vad", default="silero", choices=("silero", "energy"))
    parser.add_argument("--split", default="test")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--window-seconds", type=float, default=None, help="default: the model's")
    args = parser.parse_args(argv)

    model = VoxLM.from_pretrained(args.run / "model").eval()
    options = replace(demo_options(args.run), vad=args.vad, window_seconds=args.window_seconds)
    audio, chosen, offsets = long_file(
        read_manifest(args.run / "data" / f"{args.split}.jsonl"), args.minutes, args.seed
    )
    report, alone = evaluate(model, chosen, batch_size=16, options=options, progress=False)
    together = model.transcribe(audio, options=options, sample_rate=SAMPLE_RATE)
    refs = [" ".join(u.text for u in chosen)]
    shifts = np.abs(time_shifts(alone, offsets, together)) * 1000
    result = {
        "utterances": len(chosen),
        "seconds": len(audio) / SAMPLE_RATE,
        "vad": args.vad,
        "window_seconds": window_settings(model, options)[0],
        "wer_utterances": report.wer,
        "wer_long_file": word_error_rate(refs, [together.text]),
        "matched_words": int(len(shifts)),
        "shift_mean_ms": float(shifts.mean()) if len(shifts) else None,
        "shift_median_ms": float(np.median(shifts)) if len(shifts) else None,
        "shift_max_ms": float(shifts.max()) if len(shifts) else None,
        "share_within_20ms": float((shifts <= 20).mean()) if len(shifts) else None,
    }
    print(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
