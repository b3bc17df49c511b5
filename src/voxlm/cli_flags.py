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


GIVEN = "given_flags"  # Namespace attribute: the dests of the flags on the command line


def _record(namespace: argparse.Namespace, dest: str) -> None:
    setattr(namespace, GIVEN, getattr(namespace, GIVEN, frozenset()) | {dest})


class _Store(argparse.Action):
    """Store the value and note that the flag was given (``options_from_args``)."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        setattr(namespace, self.dest, values)
        _record(namespace, self.dest)


class _Switch(argparse.BooleanOptionalAction):
    """``--flag`` / ``--no-flag`` that notes it was given."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        super().__call__(parser, namespace, values, option_string)
        _record(namespace, self.dest)


def add_option_flags(parser: Any, options: type, helps: dict[str, str] | None = None) -> None:
    """One ``--flag`` per field of an options dataclass, with the field's default."""
    from voxlm.lexicon import Lexicon
    from voxlm.ngram import NGramLM

    kinds = {
        "float": float,
        "int": int,
        "Path": Path,
        "Lexicon": file_argument("lexicon", Lexicon.load),
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
                action=_Switch,
                default=field.default,
                help=(helps or {}).get(field.name),
            )
        else:
            kind = kinds.get(type_name, str)
            parser.add_argument(
                flag, dest=field.name, action=_Store, type=kind, default=field.default, help=help_
            )


def options_from_args(
    options: type, args: argparse.Namespace, defaults: dict[str, Any] | None = None
) -> Any:
    """The options the flags set; a flag not given takes ``defaults``' value where it has one
    (a model's own decoding), else the field's default."""
    given = getattr(args, GIVEN, frozenset())
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(options)}
    values.update({k: v for k, v in (defaults or {}).items() if k not in given})
    return options(**values)


def add_decoding_flags(parser: LazyFlagsParser) -> None:
    def add(parser: argparse.ArgumentParser) -> None:
        from voxlm.decoding import DecodingOptions

        group = parser.add_argument_group("decoding and hallucination stops (0 disables a rule)")
        add_option_flags(group, DecodingOptions)

    parser.add_later.append(add)


def decoding_options(
    args: argparse.Namespace, defaults: dict[str, Any] | None = None
) -> DecodingOptions:
    """The decoding flags; those not given take ``defaults`` (``VoxLM.decoding``) first."""
    from voxlm.decoding import DecodingOptions

    return options_from_args(DecodingOptions, args, defaults)
