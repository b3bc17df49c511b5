"""Closed-vocabulary decoding: transcripts made only of the words of a given list.

Where every word a user can say is known in advance (commands, a product catalogue, a corpus
whose test sentences reuse its training words), decoding can refuse any token that would spell
a word outside the list, as lexicon-constrained decoders of CTC and hybrid systems do. A model
that has not finished learning to spell then cannot write "onest" for "honest": the search
must find the listed word that the LLM and CTC score best. Words are compared lowercased;
letters, digits and apostrophes make words, every other character separates them.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from pathlib import Path

from voxlm.text import normalize_text, split_words

WORDFREQ_PREFIX = "wordfreq:"


class Lexicon:
    """A sorted word list that answers "can this text still become listed words?"."""

    def __init__(self, words: Iterable[str]) -> None:
        ranks: dict[str, int] = {}
        for text in words:
            for word in normalize_text(text).split():
                ranks.setdefault(word, len(ranks))
        if not ranks:
            raise ValueError("a lexicon needs at least one word")
        self.ranks = ranks  # each word's place at its first appearance: a word list's order
        self.words = tuple(sorted(ranks))

    @classmethod
    def from_file(cls, path: str | Path) -> Lexicon:
        """Words separated by whitespace or newlines (a word list, or plain sentences)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"lexicon file {path} does not exist")
        return cls(path.read_text(encoding="utf-8").split())

    @classmethod
    def from_wordfreq(cls, language: str, n_words: int) -> Lexicon:
        """The ``n_words`` most frequent words of ``language`` by the ``wordfreq`` package,
        most frequent first: an open-vocabulary list for letters-first decoding."""
        try:
            from wordfreq import top_n_list
        except ImportError:
            raise ValueError(
                "a wordfreq lexicon needs the wordfreq package: pip install wordfreq"
            ) from None
        words = top_n_list(language, n_words)
        if not words:
            raise ValueError(f"wordfreq has no word list for language {language!r}")
        return cls(words)

    @classmethod
    def load(cls, source: str | Path) -> Lexicon:
        """A word-list file, or ``wordfreq:LANGUAGE:N`` (``from_wordfreq``)."""
        if not str(source).startswith(WORDFREQ_PREFIX):
            return cls.from_file(source)
        language, _, n = str(source).removeprefix(WORDFREQ_PREFIX).partition(":")
        if not language or not n.isdigit() or int(n) < 1:
            raise ValueError(
                f"expected {WORDFREQ_PREFIX}LANGUAGE:N (e.g. wordfreq:en:50000), got {source!r}"
            )
        return cls.from_wordfreq(language, int(n))

    def __len__(self) -> int:
        return len(self.words)

    def __contains__(self, word: str) -> bool:
        return word in self.ranks

    def is_prefix(self, partial: str) -> bool:
        """Whether some listed word starts with ``partial``."""
        i = bisect.bisect_left(self.words, partial)
        return i < len(self.words) and self.words[i].startswith(partial)

    def extend(self, partial: str, piece: str) -> str | None:
        """The unfinished word after ``piece`` is appended to text ending in ``partial``.

        None when the piece finishes an unlisted word or starts one no listed word begins
        with. A piece that is not text yet (part of a multi-byte character) changes nothing.
        """
        finished, partial = split_words(partial, piece)
        return partial if self.accepts(finished, partial) else None

    def accepts(self, finished: list[str], partial: str) -> bool:
        """Whether every finished word is listed and the unfinished one can still become one."""
        if any(word not in self.ranks for word in finished):
            return False
        return not partial or self.is_prefix(partial)

    def can_end(self, partial: str) -> bool:
        """Whether a transcript whose unfinished word is ``partial`` may end here."""
        return not partial or partial in self.ranks
