"""Command-line flags generated from option dataclasses, added only when a subcommand needs them.

One ``--flag`` per field, with the field's default, so defaults live in the dataclass and the
CLI cannot drift from it. ``LazyFlagsParser`` defers adding flags whose dataclass lives in a
module that imports torch, so building the whole parser (and ``voxlm --help``) stays light.
"""

from __future__ import annotations

import argparse
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from voxlm.decoding import DecodingOptions


def file_argument(what: str, load: Callable[[str], Any]) -> Callable[[str], Any]:
    """An argparse type that loads a file, naming it and the problem where that fails."""

    def load_file(path: str) -> Any:
        try:
            return load(path)
        except (OSError, ValueError) as error:
            raise argparse.ArgumentTypeError(f"{what} {path}: {error}") from error

    return load_file


class LazyFlagsParser(argparse.ArgumentParser):
    """An ArgumentParser that runs ``add_later`` functions before it first parses or prints.

    A subcommand whose flags come from a dataclass in a module that imports torch registers
    them here, so that building the whole parser (and ``voxlm --help``) stays light.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.add_later: list[Callable[[argparse.ArgumentParser], None]] = []

    def _complete(self) -> None:
        while self.add_later:
            self.add_later.pop(0)(self)

    def parse_known_args(self, args: Any = None, namespace: Any = None) -> Any:
        self._complete()
        return super().parse_known_args(args, namespace)

    def format_help(self) -> str:
        self._complete()
        return super().format_help()

    def format_usage(self) -> str:
        self._complete()
        return super().format_usage()


def add_option_flags(parser: Any, options: type, helps: dict[str, str] | None = None) -> None:
    """One ``--flag`` per field of an options dataclass, with the field's default."""
    from voxlm.lexicon import Lexicon
    from voxlm.ngram import NGramLM

    kinds = {
        "float": float,
        "int": int,
        "Path": Path,
        "Lexicon": file_argument("lexicon", Lexicon.from_file),
        "NGramLM": file_argument("n-gram text", NGramLM.from_file),
    }
    for field in dataclasses.fields(options):
        flag = "--" + field.name.replace("_", "-")
        type_name = str(field.type).removesuffix(" | None")
        help_ = (helps or {}).get(field.name, f"default: {field.default}")
        if type_name in ("bool", str(bool)):
            parser.add_argument(
                flag,
                dest=field.name,
                action=argparse.BooleanOptionalAction,
                default=field.default,
                help=(helps or {}).get(field.name),
            )
        else:
            kind = kinds.get(type_name, str)
            parser.add_argument(flag, dest=field.name, type=kind, default=field.default, help=help_)


def options_from_args(options: type, args: argparse.Namespace) -> Any:
    return options(**{f.name: getattr(args, f.name) for f in dataclasses.fields(options)})


def add_decoding_flags(parser: LazyFlagsParser) -> None:
    def add(parser: argparse.ArgumentParser) -> None:
        from voxlm.decoding import DecodingOptions

        group = parser.add_argument_group("decoding and hallucination stops (0 disables a rule)")
        add_option_flags(group, DecodingOptions)

    parser.add_later.append(add)


def decoding_options(args: argparse.Namespace) -> DecodingOptions:
    from voxlm.decoding import DecodingOptions

    return options_from_args(DecodingOptions, args)
