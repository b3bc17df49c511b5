"""Word-level scorers for the beam: a lexicon that allows only listed words, and an n-gram
model fused in as each word is finished (shallow fusion).

Both work on whole words, so for every live hypothesis and candidate token they need the words
the token finishes and the unfinished word after it (``text.split_words`` over the token's
text). ``WordSteps`` computes that once per search step and both use it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from voxlm.ngram import EOS as END_OF_SENTENCE
from voxlm.text import TokenText, split_words

if TYPE_CHECKING:
    from voxlm.decoding.options import DecodingOptions

# What a candidate token does to a hypothesis's words: (words it finishes, the unfinished word
# after it), or None where the lexicon forbids it.
WordStep = tuple[list[str], str] | None


@dataclass(frozen=True)
class WordState:
    """The words of a hypothesis so far, as the word scorers see them."""

    partial: str = ""  # the unfinished last word
    words: tuple[str, ...] = ()  # the finished words


class WordScorer:
    """The lexicon constraint and n-gram fusion of ``DecodingOptions`` over token candidates."""

    def __init__(self, options: DecodingOptions, token_text: TokenText, eos: int) -> None:
        self.lexicon, self.ngram = options.lexicon, options.ngram
        self.ngram_weight, self.word_bonus = options.ngram_weight, options.word_bonus
        self.token_text, self.eos = token_text, eos

    @classmethod
    def create(cls, options: DecodingOptions, token_text: TokenText, eos: int) -> WordScorer | None:
        """A scorer, or None when there is neither a lexicon nor an n-gram model to serve."""
        if options.lexicon is None and options.ngram is None:
            return None
        return cls(options, token_text, eos)

    def step(self, partial: str, token: int, constrained: bool = True) -> WordStep:
        """What ``token`` does after the unfinished word ``partial``. EOS finishes the last
        word; a special token writes nothing. With ``constrained``, None where the lexicon
        forbids the result."""
        lexicon = self.lexicon if constrained else None
        if token == self.eos:
            if lexicon is not None and not lexicon.can_end(partial):
                return None
            return ([partial] if partial else []), ""
        piece = self.token_text.piece(token)
        if piece is None:
            return None if lexicon is not None else ([], partial)
        finished, partial = split_words(partial, piece)
        if lexicon is not None and not lexicon.accepts(finished, partial):
            return None
        return finished, partial

    def steps(self, state: WordState, candidates: list[int]) -> list[WordStep]:
        """The step of each candidate. Where the lexicon allows none of them, all are taken
        unconstrained (the word in progress kept as written), so decoding never dead-ends
        on a word the LLM does not rank among its best."""
        allowed = [self.step(state.partial, token) for token in candidates]
        if all(a is None for a in allowed):
            allowed = [self.step(state.partial, token, constrained=False) for token in candidates]
        return allowed

    def ngram_score(self, history: tuple[str, ...], token: int, step: WordStep) -> float:
        """What a candidate adds to its hypothesis's n-gram share, given the n-gram context of
        the hypothesis's words: ``ngram_weight`` log P(word | words before) + ``word_bonus`` per
        finished word, and at EOS the log probability of the sentence's end."""
        lm = self.ngram
        if lm is None or step is None:
            return 0.0
        added = 0.0
        for word in step[0]:
            added += self.ngram_weight * lm.log_prob(history, word) + self.word_bonus
            history = lm.context((*history, word))
        if token == self.eos:
            added += self.ngram_weight * lm.log_prob(history, END_OF_SENTENCE)
        return added

    def table(
        self, states: list[list[WordState]], k: int, candidates: torch.Tensor
    ) -> tuple[list[list[WordStep]], torch.Tensor, torch.Tensor]:
        """For every beam slot [B*K] and candidate [C]: its step, whether it is blocked
        [B*K, C] bool, and its n-gram share [B*K, C] float64 (empty slots are blocked)."""
        n_slots, n_candidates = candidates.shape
        steps: list[list[WordStep]] = [[None] * n_candidates for _ in range(n_slots)]
        added = torch.zeros(candidates.shape, dtype=torch.float64)
        for i, row_states in enumerate(states):
            for j, state in enumerate(row_states):
                slot = i * k + j
                row = candidates[slot].tolist()
                steps[slot] = self.steps(state, row)
                if self.ngram is None:
                    continue
                history = self.ngram.context(state.words)
                for c, step in enumerate(steps[slot]):
                    added[slot, c] = self.ngram_score(history, row[c], step)
        blocked = torch.tensor([[s is None for s in row] for row in steps])
        return steps, blocked, added


def after(state: WordState, step: WordStep) -> WordState:
    """The hypothesis's words once a candidate with this step is taken."""
    assert step is not None, "a blocked candidate cannot be taken"
    finished, partial = step
    return WordState(partial, (*state.words, *finished))
