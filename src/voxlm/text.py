"""What a word is, for every stage: normalisation, token pieces, tokens -> words, word matching.

Scoring, lexicons, n-gram models, training labels, word timing and forced alignment all ask
"which word is this token in?" and "are these the same word?"; this module answers both once.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Sequence
from typing import Any

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


_ONES = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
    "nineteen",
)  # fmt: skip
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_SCALES = ((10**12, "trillion"), (10**9, "billion"), (10**6, "million"), (1000, "thousand"))
_ORDINALS = {  # the number words whose ordinal is not the word + "th"
    "one": "first",
    "two": "second",
    "three": "third",
    "five": "fifth",
    "eight": "eighth",
    "nine": "ninth",
    "twelve": "twelfth",
}
# A written number: digits (thousands may be grouped by commas), then a decimal part or an
# ordinal suffix. Digits inside a word ("mp3", "4x4") are no number and are left alone.
_NUMBER = re.compile(
    r"(?<![\w.,])(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d+)|(st|nd|rd|th))?(?![\w]|[.,]\d)"
)
# "one hundred and five" is said; the spelled-out digits say "one hundred five".
_NUMBER_AND = re.compile(
    r"\b(hundred|thousand|million|billion|trillion) and (?=("
    + "|".join((*_ONES[1:], *_TENS[2:]))
    + r")\b)"
)


def _spell_integer(n: int) -> str:
    """American English words of a non-negative integer, without "and" (105: one hundred five)."""
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    if n < 1000:
        rest = n % 100
        return _ONES[n // 100] + " hundred" + (" " + _spell_integer(rest) if rest else "")
    for value, name in _SCALES:
        if n >= value:
            rest = n % value
            head = _spell_integer(n // value) + " " + name
            return head + (" " + _spell_integer(rest) if rest else "")
    raise AssertionError("unreachable: n >= 1000 has a scale")


def _ordinal(words: str) -> str:
    """The ordinal of spelled-out number words: "twenty one" -> "twenty first"."""
    *head, last = words.split()
    if last in _ORDINALS:
        last = _ORDINALS[last]
    elif last.endswith("y"):
        last = last[:-1] + "ieth"
    else:
        last += "th"
    return " ".join([*head, last])


def _spell_number(match: re.Match) -> str:
    digits, decimals, suffix = match.group(1).replace(",", ""), match.group(2), match.group(3)
    if len(digits) > 15 or (len(digits) > 1 and digits.startswith("0")):
        words = " ".join(_ONES[int(d)] for d in digits)  # a code or an id: said digit by digit
    else:
        words = _spell_integer(int(digits))
        if suffix:
            words = _ordinal(words)
    if decimals:
        words += " point " + " ".join(_ONES[int(d)] for d in decimals)
    return f" {words} "


def normalize_english(text: str) -> str:
    """``normalize_text`` with numbers written in words, so digits and words score the same.

    Speech recognisers write "1 2 3" where a reference says "one two three" (and the other way
    round); whisper's English normaliser exists so that WER does not count those as errors. This
    one goes from digits to words: integers ("42" -> "forty two", "1,000" -> "one thousand"),
    ordinals ("2nd" -> "second", "21st" -> "twenty first"), simple decimals ("3.14" -> "three
    point one four"), "%" -> "percent"; other digit groups ("2.0.1") number by number; a number
    with a leading zero or over 15 digits is read digit by digit. In written-out numbers "and"
    after a scale word is dropped ("one hundred and five" -> "one hundred five"), as the digits
    are spelled without it. Not handled: years read in pairs ("1999" is "one thousand nine
    hundred ninety nine", not "nineteen ninety nine"), currencies, fractions, British/American
    spellings and filler words.
    """
    text = unicodedata.normalize("NFKC", text).lower().replace("%", " percent ")
    text = normalize_text(_NUMBER.sub(_spell_number, text))
    # Digits the first pass left in punctuation it does not read ("2.0.1", "9,5") stand alone now.
    text = " ".join(_NUMBER.sub(_spell_number, text).split())
    return _NUMBER_AND.sub(r"\1 ", text)


def normalize_word(word: str) -> str:
    """One word's comparison form: normalised, with any inner split closed ("well-known")."""
    return normalize_text(word).replace(" ", "")


def is_punctuation(text: str) -> bool:
    """Whether ``text`` is non-empty and made only of punctuation (Unicode category P*)."""
    return bool(text) and all(unicodedata.category(ch).startswith("P") for ch in text)


def opens_word(text: str) -> bool:
    """Opening punctuation (``(``, ``"``, ``¿``) belongs to the word after it."""
    return all(unicodedata.category(ch) in ("Ps", "Pi") or ch in "\"'¿¡" for ch in text)


def is_lexical(piece: str) -> bool:
    """Whether a token's text carries sound: not only whitespace, not only punctuation."""
    stripped = piece.strip()
    return bool(stripped) and not is_punctuation(stripped)


class TokenText:
    """The text each token adds to a transcript, for every tokenizer family.

    A token is decoded after an anchor letter, because SentencePiece and Metaspace decoders
    drop a token's leading space at the start of a text: after the anchor, " cat" keeps the
    space that says a new word starts. Pieces are cached per token, so a beam can ask for
    thousands of candidates cheaply. A token that ends inside a multi-byte character (byte-level
    BPE) adds "" on its own; in a sequence (``pieces``) the character lands on the token that
    completes it.
    """

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self._anchor = tokenizer("a", add_special_tokens=False).input_ids[-1:]
        self._anchor_text = self._decode([])
        self._special = set(tokenizer.all_special_ids)
        self._cache: dict[int, str | None] = {}

    def _decode(self, tokens: list[int]) -> str:
        return self.tokenizer.decode([*self._anchor, *tokens], clean_up_tokenization_spaces=False)

    def _after_anchor(self, tokens: list[int]) -> str:
        text = self._decode(tokens)
        return text[len(self._anchor_text) :] if text.startswith(self._anchor_text) else text

    def piece(self, token: int) -> str | None:
        """The token's text; None for a special token (padding, a role marker), which writes
        no transcript text; "" for a token that is part of a multi-byte character."""
        if token not in self._cache:
            piece = self._after_anchor([token])
            self._cache[token] = (
                None if token in self._special else "" if "\ufffd" in piece else piece
            )
        return self._cache[token]

    def pieces(self, tokens: list[int]) -> list[str]:
        """The text each token of a sequence adds; special tokens add ""."""
        out: list[str] = []
        pending: list[int] = []  # tokens of a multi-byte character not yet complete
        for token in tokens:
            piece = self.piece(token)
            if piece is None:
                out.append("")
                continue
            if pending or not piece:
                pending.append(token)
                joined = self._after_anchor(pending)
                complete = "\ufffd" not in joined
                out.append(joined if complete else "")
                if complete:
                    pending = []
                continue
            out.append(piece)
        return out


def piece_word_index(pieces: Sequence[str]) -> tuple[list[int], int]:
    """Which whitespace-separated word of the joined text each token is in, and how many words.

    A token belongs to the word of its first non-space character; a token of only whitespace
    (or no text) belongs to the word after it (the last word at the end), because a space
    token is the decoder's decision that the next word starts.
    """
    text = "".join(pieces)
    char_word, word, previous_space = [], -1, True
    for ch in text:
        if ch.isspace():
            char_word.append(-1)
        else:
            word += previous_space
            char_word.append(word)
        previous_space = ch.isspace()
    n_words = word + 1
    index, position = [], 0
    for piece in pieces:
        index.append(next((w for w in char_word[position:] if w >= 0), n_words - 1))
        position += len(piece)
    return index, n_words


def group_words(pieces: Sequence[str]) -> list[list[int]]:
    """Token indices of each written word, punctuation attached (see ``timing.tokens_to_words``).

    A piece starting with whitespace starts a new word, as does the first piece. Pure
    punctuation joins the word before it, except opening marks after a space, which join the
    word after. Pure whitespace pieces join the word after them.
    """
    groups: list[list[int]] = []
    has_content = False  # whether the last group holds anything but spaces / opening marks
    for i, piece in enumerate(pieces):
        stripped = piece.strip()
        starts_word = i == 0 or piece[:1].isspace()
        if not stripped or (starts_word and is_punctuation(stripped) and opens_word(stripped)):
            if not groups or has_content:
                groups.append([])
            groups[-1].append(i)
            has_content = False
        elif is_punctuation(stripped) and groups:
            groups[-1].append(i)
        elif starts_word and has_content:
            groups.append([i])
        else:
            if not groups:
                groups.append([])
            groups[-1].append(i)
            has_content = True
    return groups


def split_words(partial: str, piece: str) -> tuple[list[str], str]:
    """The words that ``piece`` finishes when appended to text ending in the unfinished word
    ``partial``, and the unfinished word after it (lowercased, as lexicons compare).

    Letters, digits and apostrophes make words; every other character separates them.
    """
    finished = []
    for ch in piece.lower():
        if ch.isalnum() or ch == "'":
            partial += ch
        elif partial:
            finished.append(partial)
            partial = ""
    return finished, partial


def align_words(ref_words: Sequence[str], hyp_words: Sequence[str]) -> list[tuple[int, int]]:
    """(reference index, hypothesis index) of every word the minimum-edit alignment calls equal.

    Words are compared exactly as given (normalise them first); each must be non-empty and
    without whitespace. The alignment is rapidfuzz's Levenshtein opcodes over the word
    sequences, the one jiwer scores WER with, so a matched word here is a hit there.
    """
    from rapidfuzz.distance import Levenshtein

    for name, words in (("ref_words", ref_words), ("hyp_words", hyp_words)):
        bad = [w for w in words if not w or any(ch.isspace() for ch in w)]
        if bad:
            raise ValueError(f"{name}: words must be non-empty without whitespace, got {bad[:3]}")
    if not ref_words or not hyp_words:
        return []
    ids: dict[str, int] = {}
    ref = [ids.setdefault(w, len(ids)) for w in ref_words]
    hyp = [ids.setdefault(w, len(ids)) for w in hyp_words]
    pairs = []
    for tag, r1, r2, h1, _ in Levenshtein.opcodes(ref, hyp):
        if tag == "equal":
            pairs.extend((r1 + k, h1 + k) for k in range(r2 - r1))
    return pairs


def matched_words(ref_words: Sequence[str], hyp_words: Sequence[str]) -> list[tuple[int, int]]:
    """``align_words`` on normalised words; words that normalise to nothing are left out."""
    ref = [(i, normalize_word(w)) for i, w in enumerate(ref_words)]
    hyp = [(j, normalize_word(w)) for j, w in enumerate(hyp_words)]
    ref, hyp = [x for x in ref if x[1]], [x for x in hyp if x[1]]
    pairs = align_words([w for _, w in ref], [w for _, w in hyp])
    return [(ref[i][0], hyp[j][0]) for i, j in pairs]
