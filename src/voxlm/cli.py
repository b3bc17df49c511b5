"""The ``voxlm`` command line: transcribe, synth, data, timestamps, convert, train, evaluate,
demo, serve.

Each subcommand is a small function over the library; decoding flags are generated from
``DecodingOptions`` and the demo's from ``DemoOptions``, so their defaults live in one place
(``voxlm.cli_flags``). Building the parser imports neither torch nor transformers
(``voxlm --help`` is instant): the modules that do are imported where a subcommand runs, and
flags generated from their dataclasses are added when that subcommand parses its arguments or
prints its help (``LazyFlagsParser``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
from pathlib import Path

from voxlm.cli_bench import bench_parser
from voxlm.cli_calibrate import calibrate_parser
from voxlm.cli_flags import (
    LazyFlagsParser,
    add_decoding_flags,
    add_option_flags,
    decoding_options,
    options_from_args,
)
from voxlm.cli_synth import synth_parser

logger = logging.getLogger("voxlm")


class UserError(Exception):
    """A problem with the user's input: reported in one line, without a traceback."""


# ---- transcribe ---------------------------------------------------------------------------------
def _transcribe_parser(sub) -> None:
    from voxlm.formats import FORMATS

    p = sub.add_parser(
        "transcribe",
        help="transcribe audio files to text with word times and confidence",
        description="Transcribe audio files (wav, flac, ogg, mp3, m4a, webm), folders of them or "
        ".jsonl manifests; under `accelerate launch` the processes share the files. A file that "
        "fails is listed at the end and the others still run; the exit code is 1 if any failed.",
    )
    p.add_argument("files", nargs="+", type=Path, help="audio files, folders, .jsonl manifests")
    p.add_argument(
        "--model",
        default="voxlm-tiny",
        help="a saved model directory, a .pt checkpoint, or a variant name "
        "(voxlm-tiny runs anywhere, with random weights)",
    )
    p.add_argument("--instruction", default=None, help="instruction/context prompt for the LLM")
    p.add_argument("--format", default="json", choices=FORMATS)
    p.add_argument(
        "--output-dir",
        type=Path,
        default=None,
        help="write <file stem>.<format> here (a folder's or manifest's files: their path "
        "below it) instead of printing; files whose output exists are skipped",
    )
    p.add_argument("--overwrite", action="store_true", help="transcribe files already written")
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, mps ...")
    p.add_argument("--quantize", choices=["int8"], help="int8 LLM and encoder linear layers (CPU)")
    add_decoding_flags(p)
    p.set_defaults(run=_run_transcribe)


def _run_transcribe(args: argparse.Namespace) -> int:
    from voxlm.bulk import BulkOptions, launch_state, list_inputs, transcribe_sharded

    bulk = BulkOptions(args.output_dir, args.format, args.instruction, args.overwrite)
    inputs = list_inputs(args.files, unique_names=args.output_dir is not None)
    state, device = launch_state(args.device)
    model = _load_model(args.model, device, args.quantize)
    options = decoding_options(args, model.decoding)
    report = transcribe_sharded(model, inputs, options, bulk, state, sys.stdout)
    if state.is_main_process:
        print(report.describe(), file=sys.stderr)
    return 1 if report.failures else 0


def _load_model(name: str, device: str = "cpu", quantization: str | None = None):
    """A saved model or variant on ``device``, its linear layers quantised where asked."""
    from voxlm.model import VoxLM

    model = VoxLM.from_pretrained(name).to(device)
    if quantization:
        from voxlm.quantize import quantize

        model = quantize(model, quantization)
    return model


# ---- train / data / timestamps ------------------------------------------------------------------
def _config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--config", type=Path, required=True, help="a YAML config (configs/*.yaml)")
    p.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set training.phase1.epochs=3 (repeatable)",
    )


def _load(args: argparse.Namespace):
    from voxlm.config import load_config

    return load_config(args.config, args.overrides)


def _train_parser(sub) -> None:
    p = sub.add_parser(
        "train",
        help="train: data, word timings, phase 1 (transcription), phase 2 (alignment)",
        description="Run the whole training sequence of a config: prepare the data (download "
        "LibriSpeech, or synthesise), add word timings where missing, phase 1 (cross-entropy "
        "on transcripts), phase 2 (aligner on word timings), and save the final model to "
        "<output.final_model_dir>/<model.name>. Runs under `accelerate launch` unchanged.",
    )
    _config_args(p)
    p.add_argument(
        "--phase",
        type=int,
        choices=(1, 2),
        default=None,
        help="run only this phase (phase 2 starts from phase 1's best model)",
    )
    p.add_argument("--init", type=Path, default=None, help="start from this saved model")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    p.set_defaults(run=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    from voxlm.training.pipeline import run_training

    config = _load(args)
    phases = (args.phase,) if args.phase else (1, 2)
    result = run_training(config, phases=phases, resume=args.resume, init=args.init)
    print(f"final model: {result.model_dir}")
    return 0


def _data_parser(sub) -> None:
    p = sub.add_parser("data", help="prepare a config's data (download / synthesise, manifests)")
    _config_args(p)
    p.set_defaults(run=_run_data)


def _run_data(args: argparse.Namespace) -> int:
    from voxlm.training.pipeline import prepare_data

    paths = prepare_data(_load(args))
    for split, path in paths.items():
        print(f"{split}: {path}")
    return 0


def _timestamps_parser(sub) -> None:
    p = sub.add_parser(
        "timestamps",
        help="add word timings to a JSONL manifest that lacks them",
        description="Time each utterance's known transcript: with a Whisper model (hub name or "
        "local path; forced alignment on its cross-attention) or with a trained VoxLM's aligner.",
    )
    p.add_argument("manifest", type=Path)
    p.add_argument("--output", type=Path, default=None, help="default: overwrite the manifest")
    p.add_argument("--whisper", default=None, help="Whisper model name or path")
    p.add_argument("--model", default=None, help="a trained VoxLM model directory")
    p.set_defaults(run=_run_timestamps)


def _run_timestamps(args: argparse.Namespace) -> int:
    from voxlm.timestamps import VoxLMTimestamper, WhisperTimestamper, add_timestamps

    if (args.whisper is None) == (args.model is None):
        raise UserError("give exactly one of --whisper NAME_OR_PATH and --model DIR")
    if args.whisper:
        timestamper = WhisperTimestamper.from_pretrained(args.whisper)
    else:
        timestamper = VoxLMTimestamper(_load_model(args.model))
    summary = add_timestamps(args.manifest, args.output or args.manifest, timestamper)
    print(json.dumps(dataclasses.asdict(summary)))
    return 0


# ---- convert ------------------------------------------------------------------------------------
def _convert_parser(sub) -> None:
    p = sub.add_parser(
        "convert",
        help="convert a faster-whisper (CTranslate2) Whisper directory to Hugging Face format",
        description="Read a CTranslate2 Whisper directory (model.bin or model.bin.part1..N, "
        "config.json, tokenizer.json) and write a Hugging Face Whisper directory: weights, "
        "config, tokenizer, feature extractor and generation config with the alignment heads.",
    )
    p.add_argument("format", choices=["whisper"], help="what the source holds")
    p.add_argument("src", type=Path, help="the CTranslate2 directory")
    p.add_argument("dst", type=Path, help="the Hugging Face directory to write (must not exist)")
    p.add_argument(
        "--model-files",
        type=Path,
        nargs="+",
        default=None,
        help="model.bin parts in order, where they are not all in SRC",
    )
    p.add_argument("--dtype", choices=["float32", "float16", "bfloat16"], default="float32")
    p.set_defaults(run=_run_convert)


def _run_convert(args: argparse.Namespace) -> int:
    import torch

    from voxlm.convert import convert_whisper

    dtype = getattr(torch, args.dtype)
    print(convert_whisper(args.src, args.dst, files=args.model_files, dtype=dtype))
    return 0


# ---- evaluate -----------------------------------------------------------------------------------
_EVALUATION_HELPS = {
    "normalizer": "text normalisation before WER/CER: english (case, punctuation, numbers in "
    "words, default) or plain (case and punctuation only)",
    "collar_ms": "word-segment F1: tolerance on a word's start and end (default: 50)",
    "worst": "list this many utterances with the highest WER (default: 10)",
    "nonspeech_seconds": "seconds of each generated non-speech signal for the hallucination "
    "rate; 0 skips it (default: 60)",
}


def _evaluate_parser(sub) -> None:
    p = sub.add_parser(
        "evaluate",
        help="the evaluation report: WER/CER, word timing, confidence, hallucination, speed",
        description="Transcribe every utterance of a JSONL manifest (or a LibriSpeech-layout "
        "folder) and score text (per speaker, worst utterances), word starts and ends (where "
        "the manifest has word times), confidence, words written on generated non-speech, speed "
        "and memory. Prints a table; --output-dir writes metrics.json and report.md with plots.",
    )
    data_help = "a .jsonl manifest or a LibriSpeech-layout folder"
    p.add_argument("data", type=Path, nargs="?", default=None, help=data_help)
    p.add_argument(
        "--data", type=Path, default=None, dest="data_option", metavar="DATA", help=data_help
    )
    p.add_argument("--model", required=True, help="a saved model directory or variant")
    p.add_argument("--limit", type=int, default=None, help="only the first N utterances")
    p.add_argument(
        "--output-dir", type=Path, default=None, help="write metrics.json, report.md, plots here"
    )
    p.add_argument("--output", type=Path, default=None, help="write metrics.json's JSON here")
    p.add_argument("--device", default="cpu")
    p.add_argument("--quantize", choices=["int8"], help="int8 LLM and encoder linear layers (CPU)")

    def add_evaluation_flags(parser: argparse.ArgumentParser) -> None:
        from voxlm.evaluate import EvaluationOptions

        group = parser.add_argument_group("the report")
        add_option_flags(group, EvaluationOptions, helps=_EVALUATION_HELPS)

    p.add_later.append(add_evaluation_flags)
    add_decoding_flags(p)
    p.set_defaults(run=_run_evaluate)


def _run_evaluate(args: argparse.Namespace) -> int:
    from voxlm.calibration import decoding_settings
    from voxlm.data.librispeech import read_librispeech
    from voxlm.data.manifest import read_manifest
    from voxlm.evaluate import EvaluationOptions, evaluate
    from voxlm.report import metrics_json, summary_table, write_report

    if (args.data is None) == (args.data_option is None):
        raise UserError("evaluate: give the data once, as DATA or --data MANIFEST|DIR")
    path = args.data if args.data is not None else args.data_option
    data = read_manifest(path) if path.is_file() else read_librispeech(path)
    evaluation = options_from_args(EvaluationOptions, args)
    model = _load_model(args.model, args.device, args.quantize)
    options = decoding_options(args, model.decoding)
    report, _ = evaluate(
        model, data[: args.limit], options.batch_size, options, evaluation=evaluation
    )
    run = {"model": args.model, "data": str(path), "device": args.device}
    run["quantize"] = args.quantize
    run["decoding"] = decoding_settings(options)
    if args.output:
        args.output.write_text(metrics_json(report, run))
    if args.output_dir:
        print(f"report: {write_report(report, args.output_dir, run)}", file=sys.stderr)
    print(summary_table(report))
    return 0


# ---- demo ---------------------------------------------------------------------------------------
def _demo_parser(sub) -> None:
    p = sub.add_parser(
        "demo",
        help="synthesise speech, train voxlm-tiny from scratch, evaluate, show one result",
        description="The whole product on a CPU in about twelve minutes: espeak-ng speech with exact "
        "word timings, phase 1 and phase 2 training of voxlm-tiny from random weights, "
        "evaluation on held-out sentences and a held-out voice, and one transcript with its "
        "JSON, SRT and an alignment picture. Leaves DIR/model/ and DIR/metrics.json. The "
        "training recipe is voxlm-tiny-demo.yaml (configs/); the flags change its values.",
    )
    p.add_later.append(_add_demo_flags)
    p.set_defaults(run=_run_demo)


def _add_demo_flags(parser: argparse.ArgumentParser) -> None:
    from voxlm.demo import RECIPE, DemoOptions, recipe_defaults

    helps = {name: f"default: {value} ({RECIPE})" for name, value in recipe_defaults().items()}
    helps["steps"] = f"phase 1 steps; {helps['steps']}"
    helps["minutes"] = f"phase 1 time cap (alone: a time budget); {helps['minutes']}"
    add_option_flags(parser, DemoOptions, helps=helps)


def _run_demo(args: argparse.Namespace) -> int:
    from voxlm.demo import DemoOptions, decoding_command, run_demo, summary_table

    options = options_from_args(DemoOptions, args)
    metrics = run_demo(options)
    out = args.output_dir
    print((out / "example.txt").read_text(), end="")
    print((out / "example.json").read_text())
    print(
        f"wrote {out / 'example.srt'}, {out / 'alignment.png'}, {out / 'metrics.json'}, "
        f"{out / 'model'}/\n"
    )
    print(f"the demo's decoding: {decoding_command(options)}\n")
    print(summary_table(metrics))
    return 0


# ---- serve --------------------------------------------------------------------------------------
def _serve_parser(sub) -> None:
    p = sub.add_parser(
        "serve",
        help="serve a model over HTTP (OpenAI-compatible /v1/audio/transcriptions)",
        description="Serve a model over HTTP: POST /v1/audio/transcriptions with a multipart "
        "'file' (and optionally model, prompt, language, response_format "
        "json|text|srt|vtt|verbose_json, timestamp_granularities[]). Binds to 127.0.0.1 "
        "unless --host says otherwise.",
    )
    p.add_argument("--model", default="voxlm-tiny", help="a saved model directory or variant")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=8000)
    p.set_defaults(run=_run_serve)


def _run_serve(args: argparse.Namespace) -> int:
    try:
        import fastapi  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError as error:
        raise UserError(
            f"voxlm serve needs the server extra ({error.name} is missing): "
            'pip install "voxlm[server]"'
        ) from None
    from voxlm.server import serve

    model = _load_model(args.model)  # fails with a one-line error before the server starts
    serve(model, args.model, host=args.host, port=args.port)
    return 0


# ---- ship ---------------------------------------------------------------------------------------
def _ship_parser(sub) -> None:
    p = sub.add_parser(
        "ship",
        help="package a saved model's trained parts (float16) and decoding as a named model",
        description="Write src/voxlm/trained/NAME (package data): the model's config, its "
        "trained weights in float16 and the decoding it was measured with, so that "
        "--model NAME loads it on any machine with its backbones (voxlm.weights.ship).",
    )
    p.add_argument("model", type=Path, help="a saved model directory")
    p.add_argument("--name", required=True, help="the name it loads by, e.g. voxlm-smol")
    p.add_argument(
        "--decoding",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="a DecodingOptions field for decoding.json, e.g. letters_beam=16 or "
        "lexicon=wordfreq:en:50000 (repeatable)",
    )
    p.set_defaults(run=_run_ship)


def _run_ship(args: argparse.Namespace) -> int:
    from voxlm.weights import ship

    decoding = {}
    for item in args.decoding:
        field, sep, value = item.partition("=")
        if not sep:
            raise UserError(f"--decoding {item!r}: expected FIELD=VALUE")
        try:
            decoding[field] = json.loads(value)
        except json.JSONDecodeError:
            decoding[field] = value  # a string: a lexicon source, a VAD name
    print(ship(args.model, args.name, decoding))
    return 0


# ---- entry point --------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="voxlm",
        description="VoxLM: speech recognition on any audio encoder + any decoder-only LLM, "
        "with word timestamps, per-word confidence and hallucination stops.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=LazyFlagsParser
    )
    for add in _PARSERS:
        add(sub)
    return parser


_PARSERS = [
    _transcribe_parser,
    synth_parser,
    _data_parser,
    _timestamps_parser,
    _convert_parser,
    _train_parser,
    _evaluate_parser,
    calibrate_parser,
    _demo_parser,
    _serve_parser,
    _ship_parser,
    bench_parser,
]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return args.run(args)
    except (UserError, ValueError, OSError) as error:
        # Bad input (a file, a key, a value) is the user's to fix: one line, no traceback,
        # unless --verbose asks for it.
        if args.verbose:
            raise
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
