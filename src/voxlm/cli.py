"""The ``voxlm`` command line: transcribe, train, synth, timestamps, evaluate, demo, bench.

Each subcommand is a small function over the library; decoding flags are generated from
``DecodingOptions`` so their defaults live in one place.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import sys
from pathlib import Path

from voxlm.decoding import DecodingOptions

logger = logging.getLogger("voxlm")


class UserError(Exception):
    """A problem with the user's input: reported in one line, without a traceback."""


def _add_decoding_flags(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("decoding and hallucination stops (0 disables a rule)")
    for field in dataclasses.fields(DecodingOptions):
        flag = "--" + field.name.replace("_", "-")
        if field.type in ("bool", bool):
            group.add_argument(
                flag, dest=field.name, action=argparse.BooleanOptionalAction, default=field.default
            )
        else:
            kind = {"float": float, "int": int}.get(str(field.type), str)
            group.add_argument(
                flag,
                dest=field.name,
                type=kind,
                default=field.default,
                help=f"default: {field.default}",
            )


def _decoding_options(args: argparse.Namespace) -> DecodingOptions:
    return DecodingOptions(
        **{f.name: getattr(args, f.name) for f in dataclasses.fields(DecodingOptions)}
    )


# ---- transcribe ---------------------------------------------------------------------------------
def _transcribe_parser(sub) -> None:
    from voxlm.formats import FORMATS

    p = sub.add_parser(
        "transcribe",
        help="transcribe audio files to text with word times and confidence",
        description="Transcribe audio files (wav, flac, ogg, mp3, m4a, webm). A file that fails "
        "is reported and the others still run; the exit code is 1 if any failed.",
    )
    p.add_argument("files", nargs="+", type=Path, help="audio files")
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
        help="write <file stem>.<format> here instead of printing",
    )
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, mps ...")
    _add_decoding_flags(p)
    p.set_defaults(run=_run_transcribe)


def _run_transcribe(args: argparse.Namespace) -> int:
    from voxlm.formats import write_result

    options = _decoding_options(args)
    model = _load_model(args.model).to(args.device)
    failed = 0
    for path in args.files:
        try:
            result = model.transcribe(path, instruction=args.instruction, options=options)
        except (ValueError, FileNotFoundError, TypeError) as error:
            print(f"error: {error}", file=sys.stderr)
            failed += 1
            continue
        text = write_result(result, args.format)
        if args.output_dir is None:
            sys.stdout.write(text)
        else:
            args.output_dir.mkdir(parents=True, exist_ok=True)
            suffix = "json" if args.format == "verbose_json" else args.format
            (args.output_dir / f"{path.stem}.{suffix}").write_text(text, encoding="utf-8")
    if failed:
        print(f"{failed} of {len(args.files)} files failed", file=sys.stderr)
    return 1 if failed else 0


def _load_model(name: str):
    from voxlm.model import VoxLM

    try:
        return VoxLM.from_pretrained(name)
    except (ValueError, FileNotFoundError) as error:
        raise UserError(str(error)) from None


# ---- entry point --------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="voxlm",
        description="VoxLM: speech recognition on any audio encoder + any decoder-only LLM, "
        "with word timestamps, per-word confidence and hallucination stops.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in _PARSERS:
        add(sub)
    return parser


_PARSERS = [_transcribe_parser]


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return args.run(args)
    except UserError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
