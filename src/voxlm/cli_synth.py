"""``voxlm synth``: a synthetic speech corpus with exact word timings.

The sentences come from the built-in generator, the user's own file, or an instruct LLM asked to
write them (``--text-from-llm``); the voices from espeak-ng and Flite. Building the parser imports
neither torch nor the synthesisers (``voxlm --help`` stays instant).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path


def synth_parser(sub) -> None:
    p = sub.add_parser(
        "synth",
        help="make a synthetic speech corpus with exact word timings (espeak-ng, Flite)",
        description="Synthesise speech with espeak-ng and Flite into the LibriSpeech layout "
        "plus JSONL manifests (train/dev/test with disjoint sentences; one voice held out for "
        "test). Each word's start comes from the synthesiser (espeak-ng's word events, Flite's "
        "segments); its end is the next onset trimmed to the end of voiced energy. Same seed, "
        "same corpus.",
    )
    p.add_argument("--output-dir", type=Path, required=True)
    p.add_argument("--n-train", type=int, default=5000)
    p.add_argument("--n-dev", type=int, default=200)
    p.add_argument("--n-test", type=int, default=500)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument(
        "--text-file",
        type=Path,
        default=None,
        help="your own sentences, one per line (default: the built-in generator)",
    )
    p.add_argument(
        "--text-from-llm",
        metavar="LLM",
        default=None,
        help="sentences written by this instruct LLM (a hub name, directory or .gguf file; "
        "e.g. HuggingFaceTB/SmolLM2-135M-Instruct), sampled once into OUTPUT_DIR/text.txt: "
        "text in the LLM's own language, so fine-tuning it teaches listening rather than a "
        "grammar (voxlm.data.llm_text)",
    )
    p.add_argument(
        "--llm-sentences",
        type=int,
        default=None,
        help="with --text-from-llm: how many (default: n-train + 4 x (n-dev + n-test), since "
        "dev and test keep only sentences whose words all occur in train)",
    )
    _voice_flags(p)
    p.set_defaults(run=_run_synth)


def _voice_flags(p: argparse.ArgumentParser) -> None:
    """Who speaks and how the clips are degraded."""
    p.add_argument(
        "--voices",
        default=None,
        help="comma-separated voices: espeak-ng names (en-us, en+f2, ...) and Flite's "
        "flite:slt, flite:awb, flite:rms, flite:kal16 (Debian package `flite`); default: "
        "voxlm.data.synth.DEFAULT_VOICES",
    )
    p.add_argument(
        "--held-out-voice",
        default=None,
        help="the voice heard only in test (default: voxlm.data.synth.DEFAULT_HELD_OUT_VOICE); "
        "'none' for none",
    )
    p.add_argument("--noise-prob", type=float, default=0.3, help="share of clips with added noise")
    p.add_argument("--reverb-prob", type=float, default=0.2, help="share of clips with reverb")
    p.add_argument(
        "--accent-prob",
        type=float,
        default=0.5,
        help="share of training clips spoken with 1-3 features of English accents "
        "(h-dropping, th-fronting, ...; see voxlm.data.synth.ACCENT_FEATURES); 0 for none",
    )
    p.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")


def _llm_text(args: argparse.Namespace) -> Path:
    """OUTPUT_DIR/text.txt, sampled from ``--text-from-llm`` unless an earlier run left it."""
    from voxlm.data.llm_text import LLMTextOptions, write_llm_sentences

    path = args.output_dir / "text.txt"
    if path.is_file():
        print(f"using the sentences already in {path}", file=sys.stderr)
        return path
    n = args.llm_sentences or args.n_train + 4 * (args.n_dev + args.n_test)
    options = LLMTextOptions(llm_model=args.text_from_llm, n_sentences=n, seed=args.seed)
    return write_llm_sentences(options, path)


def _run_synth(args: argparse.Namespace) -> int:
    from voxlm.data.synth import SynthOptions, synthesize_corpus

    values = {
        k: getattr(args, k)
        for k in (
            "output_dir",
            "n_train",
            "n_dev",
            "n_test",
            "seed",
            "text_file",
            "noise_prob",
            "reverb_prob",
            "accent_prob",
        )
    }
    if args.workers:
        values["workers"] = args.workers
    if args.voices:
        values["voices"] = tuple(v.strip() for v in args.voices.split(",") if v.strip())
    if args.held_out_voice:
        values["held_out_voice"] = None if args.held_out_voice == "none" else args.held_out_voice
    if args.text_from_llm:
        if args.text_file:
            raise SystemExit("voxlm synth: give --text-file or --text-from-llm, not both")
        values["text_file"] = _llm_text(args)
    report = synthesize_corpus(SynthOptions(**values))
    print(json.dumps(report.to_dict(), indent=2))
    return 0
