"""A word n-gram language model of a text corpus, for shallow fusion in beam search.

A pretrained LLM brings years of text; a model trained from scratch on a few thousand
transcripts does not, and it writes "too questions" or "cook is" where the audio cannot tell
"two" from "too" or "cookies" from "cook is". Counting the words of the transcripts (or of any
text of the domain) gives the missing prior: where a beam finishes a word, the search adds
``ngram_weight * log P(word | the words before it)`` to its score (see ``voxlm.decoding``),
the shallow fusion of wav2letter and of KenLM with CTC decoders. Probabilities are interpolated
Kneser-Ney (Chen & Goodman, 1998, with one discount per order), so a word pair never seen in
the text still gets the probability its lower orders give it.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

from voxlm.text import normalize_text

BOS, EOS = "<s>", "</s>"


class NGramLM:
    """Interpolated Kneser-Ney probabilities of the next word given the ones before it.

    Text is normalised as for WER (``voxlm.text.normalize_text``): lowercase words.
    A word the text never holds gets the share a uniform distribution over the vocabulary
    (plus one unknown word) gives it at the lowest order, so it is unlikely, not impossible.
    """

    def __init__(self, texts: Iterable[str], order: int = 3, discount: float = 0.75) -> None:
        if order < 1:
            raise ValueError(f"order must be >= 1, got {order}")
        if not 0 < discount < 1:
            raise ValueError(f"discount must be in (0, 1), got {discount}")
        self.order, self.discount = order, discount
        # followers[n][history of n words][word]: raw counts at the top order, and at lower
        # orders the number of distinct words seen before (history, word) (continuation counts).
        self._followers: list[dict[tuple[str, ...], Counter[str]]] = [
            defaultdict(Counter) for _ in range(order)
        ]
        n_sentences = 0
        for text in texts:
            words = normalize_text(text).split()
            if not words:
                continue
            n_sentences += 1
            padded = [BOS] * (order - 1) + words + [EOS]
            for i in range(order - 1, len(padded)):
                self._followers[order - 1][tuple(padded[i - order + 1 : i])][padded[i]] += 1
        if n_sentences == 0:
            raise ValueError("an n-gram model needs at least one non-empty text")
        for n in range(order - 1, 0, -1):
            for history, words in self._followers[n].items():
                for word in words:
                    self._followers[n - 1][history[1:]][word] += 1
        self._totals = [{h: sum(c.values()) for h, c in level.items()} for level in self._followers]
        vocabulary = {w for level in self._followers for c in level.values() for w in c}
        self.vocabulary = frozenset(vocabulary - {EOS})
        self._uniform = 1.0 / (len(vocabulary) + 1)  # + one unknown word
        self.log_prob = lru_cache(maxsize=1 << 20)(self._log_prob)

    @classmethod
    def from_file(cls, path: str | Path, order: int = 3) -> NGramLM:
        """One text (a sentence, a transcript) per line."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"n-gram text file {path} does not exist")
        return cls(path.read_text(encoding="utf-8").splitlines(), order=order)

    def context(self, words: tuple[str, ...]) -> tuple[str, ...]:
        """The words the model conditions on: the last ``order - 1`` (keys ``log_prob``'s cache)."""
        return words[-(self.order - 1) :] if self.order > 1 else ()

    def _log_prob(self, history: tuple[str, ...], word: str) -> float:
        """Natural log P(word | history); ``history`` ends with the word just before ``word``
        (``BOS`` pads the start of a sentence), ``EOS`` as ``word`` asks for the end."""
        context = ((BOS,) * (self.order - 1) + history)[len(history) :]
        return math.log(self._prob(context, word))

    def _prob(self, history: tuple[str, ...], word: str) -> float:
        lower = self._uniform if not history else self._prob(history[1:], word)
        n = len(history)
        followers = self._followers[n].get(history)
        if followers is None:
            return lower
        total = self._totals[n][history]
        seen = max(followers.get(word, 0) - self.discount, 0.0) / total
        return seen + self.discount * len(followers) / total * lower

    def sentence_log_prob(self, text: str) -> float:
        """Natural log probability of a whole sentence, its end included."""
        words = normalize_text(text).split()
        history: tuple[str, ...] = ()
        total = 0.0
        for word in [*words, EOS]:
            total += self.log_prob(history, word)
            history = self.context((*history, word))
        return total
