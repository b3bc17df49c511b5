"""Text normalisation shared by scoring, lexicons and n-gram models: one idea of a word."""

from __future__ import annotations

import unicodedata

_APOSTROPHES = "'\u2019\u02bc"  # ASCII, right single quotation mark, modifier letter apostrophe


def normalize_text(text: str) -> str:
    """Lowercase, punctuation replaced by spaces, whitespace collapsed to single spaces.

    An apostrophe between two letters or digits is part of the word and kept as "'" ("don't",
    "o'clock"); any other apostrophe (a quotation mark) is dropped like the rest of the
    punctuation (Unicode category P*). Replacing punctuation by a space, not by nothing, keeps
    "well-known" and "well known" the same and never glues two words together. Symbols ($, %)
    and digits are kept as they are: they are words, not punctuation.
    """
    text = unicodedata.normalize("NFKC", text).lower()
    chars = []
    for i, ch in enumerate(text):
        if ch in _APOSTROPHES:
            inside = 0 < i < len(text) - 1 and text[i - 1].isalnum() and text[i + 1].isalnum()
            chars.append("'" if inside else " ")
        elif unicodedata.category(ch).startswith("P"):
            chars.append(" ")
        else:
            chars.append(ch)
    return " ".join("".join(chars).split())
