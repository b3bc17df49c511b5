"""What does fusing a word n-gram model of the training transcripts buy a trained demo model?

Decodes a `voxlm demo` run's test split with the demo's decoding (8 beams, 16 candidates,
the training lexicon, confidence temperature 2) once per n-gram weight, the first usually 0
(no n-gram), all in one process, and prints WER overall, on the training voices and on the
voice heard only in test (from the corpus' SPEAKERS.TXT), CER, confidence AUROC and the
real-time factor. Run on an idle machine.

    python benchmarks/ngram_fusion.py demo [--weights 0,0.5] [--order 3] [--split test]
"""

from __future__ import annotations

import argparse
from pathlib import Path

from voxlm.data.manifest import read_manifest
from voxlm.decoding import DecodingOptions
from voxlm.evaluate import evaluate, word_error_rate
from voxlm.lexicon import Lexicon
from voxlm.model import VoxLM
from voxlm.ngram import NGramLM


def test_only_speakers(data: Path) -> set[str]:
    """Speaker ids whose SPLITS column in SPEAKERS.TXT is "test"."""
    lines = (data / "SPEAKERS.TXT").read_text(encoding="utf-8").splitlines()
    rows = [[f.strip() for f in line.split("|")] for line in lines if not line.startswith(";")]
    return {row[0] for row in rows if len(row) == 3 and row[2] == "test"}


def _auroc(value: float | None) -> str:
    """AUROC is undefined (None) when every word is right or every word is wrong."""
    return "  n/a" if value is None else f"{value:.3f}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a `voxlm demo --output-dir` folder")
    parser.add_argument("--weights", default="0,0.5", help="n-gram weights, comma-separated")
    parser.add_argument("--order", type=int, default=3)
    parser.add_argument("--split", default="test")
    args = parser.parse_args(argv)

    data = args.run / "data"
    model = VoxLM.from_pretrained(args.run / "model").eval()
    utterances = read_manifest(data / f"{args.split}.jsonl")
    training_texts = [u.text for u in read_manifest(data / "train.jsonl")]
    lexicon, ngram = Lexicon(training_texts), NGramLM(training_texts, order=args.order)
    unseen = test_only_speakers(data)
    print(f"{args.run}: {len(utterances)} {args.split} clips, unseen voice(s) {sorted(unseen)}")
    print("weight | WER    | training voices | unseen voice | CER    | AUROC | RTF")
    for weight in (float(w) for w in args.weights.split(",")):
        options = DecodingOptions(
            beam_size=8,
            ctc_candidates=16,
            lexicon=lexicon,
            ngram=ngram if weight > 0 else None,
            ngram_weight=weight,
            confidence_temperature=2.0,
        )
        report, transcripts = evaluate(
            model, utterances, batch_size=32, options=options, progress=False
        )
        pairs = [
            (u.speaker in unseen, u.text, t.text)
            for u, t in zip(utterances, transcripts, strict=True)
            if t is not None
        ]
        split_wer = [
            word_error_rate(
                [r for s, r, _ in pairs if s == side], [h for s, _, h in pairs if s == side]
            )
            if any(s == side for s, _, _ in pairs)
            else float("nan")
            for side in (False, True)
        ]
        print(
            f"{weight:<6} | {report.wer:6.2%} | {split_wer[0]:15.2%} | {split_wer[1]:12.2%} | "
            f"{report.cer:6.2%} | {_auroc(report.confidence_auroc)} | {report.real_time_factor:.3f}"
        )


if __name__ == "__main__":
    main()
