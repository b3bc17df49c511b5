"""CTC prefix scores, so the CTC head can vote on each token the LLM writes.

Joint CTC/attention decoding (Watanabe et al., "Hybrid CTC/Attention Architecture for End-to-End
Speech Recognition", IEEE JSTSP 2017) adds, for every candidate next token c, the CTC log
probability of all alignments whose labelling starts with the transcript so far followed by c.
CTC is monotonic over the audio, so it cannot skip or repeat a stretch of speech: it keeps the
LLM on the audio where the LLM alone would drop words at the end of an utterance or continue
with plausible text. Only the LLM's best few candidates are scored, as ESPnet's partial scoring
does, because a real LLM's vocabulary has ~150k tokens.

The recursions over frames, x_t = a_t (x_{t-1} + b_t), are solved in closed form with a
cumulative log-sum-exp, so one decoding step costs a few tensor operations over
[batch, candidates, frames] rather than a Python loop over frames.

Training adds ``span_ctc_loss``: CTC confined to each timed word's frames, which gets a
from-scratch CTC head off its all-blank start.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
from torch import nn

from voxlm.spelling import SPACE, SpellingHead, letter_token_ids, spell, spell_piece

NEG_INF = float("-inf")
# The CTC head spans the LLM's vocabulary plus a blank, and the prefix scorer keeps float64
# tables of [rows, frames, vocabulary]: 8 beam rows x 30 s (1,500 frames) x 8,192 tokens is
# 0.8 GB, while an LLM's 49k-151k tokens would need 5-15 GB. Above this the head is refused.
MAX_CTC_VOCAB = 8192


def check_ctc_vocabulary(size: int) -> None:
    """Refuse a CTC head over a vocabulary too large to decode with (see MAX_CTC_VOCAB)."""
    if size > MAX_CTC_VOCAB:
        raise ValueError(
            f"model.ctc: true needs a tokenizer of at most {MAX_CTC_VOCAB} tokens, this one has "
            f"{size}: joint CTC decoding keeps [rows, frames, tokens] tables (~{size * 1500 * 8 / 1e9:.1f} "
            "GB per beam row and 30 s of audio); set model.ctc: false for this LLM"
        )


def build_ctc_head(units: str, dim: int, tokenizer) -> tuple[nn.Module, torch.Tensor]:
    """The CTC head over encoder states of width ``dim`` (``ModelConfig.ctc_units``; blank
    last), and the LLM token id of each unit, for ``ctc_embeddings``."""
    if units == "characters":
        return SpellingHead(dim), torch.tensor(letter_token_ids(tokenizer))
    check_ctc_vocabulary(len(tokenizer))
    return nn.Linear(dim, len(tokenizer) + 1), torch.arange(len(tokenizer))


def ctc_targets(units: str, texts: list[str], tokens: list[list[int]]) -> list[list[int]]:
    """What the CTC head spells: each transcript's tokens (``tokens`` end in EOS) or letters."""
    if units == "characters":
        return [spell(t) for t in texts]
    return [t[:-1] for t in tokens]


class CTCPrefixScorer:
    """The CTC forward variables of each row's transcript so far, advanced one token at a time.

    log_probs [B, T, V + 1] (blank last) and lengths [B]. For the prefix g, ``r_nonblank[b, t]``
    and ``r_blank[b, t]`` are the log probabilities of emitting exactly g within frames 0..t,
    ending in a non-blank or a blank frame.
    """

    def __init__(self, log_probs: torch.Tensor, lengths: torch.Tensor) -> None:
        self.log_probs = log_probs.double()  # [B, T, V + 1]
        self.lengths = lengths.long().to(log_probs.device)  # [B]
        b, t, v = log_probs.shape
        self.vocab = v - 1
        frames = torch.arange(t, device=log_probs.device)
        self.valid = frames[None, :] < self.lengths[:, None]  # [B, T]
        self.r_nonblank = torch.full((b, t), NEG_INF, dtype=torch.float64, device=frames.device)
        self.r_blank = self.log_probs[..., -1].cumsum(-1)  # [B, T] only blanks so far
        self.last = torch.full((b,), -1, dtype=torch.long, device=frames.device)
        self.empty = torch.ones(b, dtype=torch.bool, device=frames.device)

    def select(self, index: torch.Tensor) -> None:
        """Keep rows ``index`` [B'] (repeats allowed): beam search's copy and reorder."""
        for name in ("log_probs", "lengths", "valid", "r_nonblank", "r_blank", "last", "empty"):
            setattr(self, name, getattr(self, name)[index])

    def score(self, candidates: torch.Tensor, eos: int) -> torch.Tensor:
        """candidates [B, K] token ids -> [B, K] log prefix probabilities of g + c.

        ``eos`` scores the whole transcript: every alignment of g over all the frames.
        Tokens outside the CTC head's vocabulary score -inf.
        """
        phi = self._phi(candidates)  # [B, K, T]
        y = self._token_log_probs(candidates)  # [B, K, T]
        psi = torch.where(self.valid[:, None], phi + y, NEG_INF).logsumexp(-1)  # [B, K]
        end = (self.lengths - 1).clamp(min=0)[:, None]  # [B, 1]
        whole = torch.logaddexp(
            self.r_nonblank.gather(1, end), self.r_blank.gather(1, end)
        )  # [B, 1]
        return torch.where(candidates == eos, whole, psi)

    def advance(self, tokens: torch.Tensor) -> None:
        """Extend each row's prefix by its chosen token [B] (EOS rows may be left as they are)."""
        c = tokens[:, None]  # [B, 1]
        phi = self._phi(c)[:, 0]  # [B, T]
        y = self._token_log_probs(c)[:, 0]  # [B, T]
        r_nonblank = _linear_recurrence(y, phi)
        blank = self.log_probs[..., -1]
        shifted = torch.nn.functional.pad(r_nonblank[:, :-1], (1, 0), value=NEG_INF)
        self.r_blank = _linear_recurrence(blank, shifted)
        self.r_nonblank = r_nonblank
        self.last = tokens.clone()
        self.empty = torch.zeros_like(self.empty)

    def _phi(self, candidates: torch.Tensor) -> torch.Tensor:
        """[B, K] -> [B, K, T]: log probability that g is complete just before frame t.

        A repeated token needs a blank between the two, so only paths ending in blank count
        for it. Frame 0 has no frame before it: g is complete there only if it is empty.
        """
        same = (candidates == self.last[:, None])[..., None]  # [B, K, 1]
        nonblank = torch.where(same, NEG_INF, self.r_nonblank[:, None])  # [B, K, T]
        complete = torch.logaddexp(self.r_blank[:, None], nonblank)  # [B, K, T] at t
        start = torch.where(self.empty, 0.0, NEG_INF).to(complete.dtype)  # [B]
        start = start[:, None, None].expand(-1, candidates.shape[1], 1)
        return torch.cat([start, complete[..., :-1]], dim=-1)  # [B, K, T] before t

    def _token_log_probs(self, candidates: torch.Tensor) -> torch.Tensor:
        """[B, K] -> [B, K, T] log posterior of each candidate at each frame."""
        inside = candidates < self.vocab
        index = torch.where(inside, candidates, 0)
        y = self.log_probs.gather(
            2, index[:, None, :].expand(-1, self.log_probs.shape[1], -1)
        ).transpose(1, 2)  # [B, K, T]
        return torch.where(inside[..., None], y, NEG_INF)


class SpellingPrefixScorer:
    """CTC prefix scores of LLM tokens under a character head (``ctc_units: characters``).

    An LLM token is a piece of text, so its prefix score is that of the transcript's
    characters so far followed by the piece's characters (``voxlm.spelling.spell_piece``): a
    character scorer (``CTCPrefixScorer`` over ALPHABET) is walked through them. A space is
    held back until a letter follows it, as ``spell`` strips and collapses spaces: " the" at
    the start adds "the", and EOS never has to be heard after a trailing space. A piece with
    no letters (punctuation, a special token) leaves the prefix, and its score, as they are.
    Same interface as ``CTCPrefixScorer``.
    """

    def __init__(
        self, log_probs: torch.Tensor, lengths: torch.Tensor, piece: Callable[[int], str | None]
    ) -> None:
        self.chars = CTCPrefixScorer(log_probs, lengths)
        self.piece = piece
        b = log_probs.shape[0]
        self.pending = torch.zeros(b, dtype=torch.bool)  # a space waits for the next letter
        self.prefix = torch.zeros(b, dtype=torch.float64)  # log prefix probability so far
        self._units: dict[int, tuple[int, ...]] = {}

    def select(self, index: torch.Tensor) -> None:
        self.chars.select(index)
        cpu = index.cpu()
        self.pending, self.prefix = self.pending[cpu], self.prefix[cpu]

    def score(self, candidates: torch.Tensor, eos: int) -> torch.Tensor:
        """candidates [R, C] token ids -> [R, C] log prefix probabilities (EOS: the whole)."""
        rows, n = candidates.shape
        out = self.prefix[:, None].repeat(1, n)  # [R, C] a piece without letters
        tokens = candidates.tolist()
        todo = [(r, c) for r in range(rows) for c in range(n) if tokens[r][c] != eos]
        spelled = [self._spelled(tokens[r][c], r)[0] for r, c in todo]
        scored = [(rc, u) for rc, u in zip(todo, spelled, strict=True) if u]
        if scored:
            index = torch.tensor([r for (r, _), _ in scored])
            out[index, torch.tensor([c for (_, c), _ in scored])] = self._extended(
                index, [u for _, u in scored]
            ).cpu()
        ended = candidates.cpu() == eos
        if ended.any():
            marker = self.chars.vocab + 1  # not a character: score() reads it as the whole
            marked = torch.full((rows, 1), marker, device=self.chars.lengths.device)
            whole = self.chars.score(marked, marker).cpu()  # [R, 1]
            out = torch.where(ended, whole, out)
        return out.to(candidates.device)

    def advance(self, tokens: torch.Tensor) -> None:
        """Extend each row's transcript by its chosen token [R] (EOS adds nothing)."""
        spelled, pending = zip(
            *(self._spelled(t, r) for r, t in enumerate(tokens.tolist())), strict=True
        )
        rows = [r for r, u in enumerate(spelled) if u]
        if rows:
            index = torch.tensor(rows)
            self.prefix[index] = self._extended(index, [spelled[r] for r in rows]).cpu()
            _walk(self.chars, [list(u) for u in spelled])
        self.pending = torch.tensor(pending, dtype=torch.bool)

    def _spelled(self, token: int, row: int) -> tuple[tuple[int, ...], bool]:
        """The characters ``token`` adds to ``row``'s transcript, and whether a space then waits."""
        if token not in self._units:
            self._units[token] = spell_piece(self.piece(token))
        started = not bool(self.chars.empty[row])
        pending, units = bool(self.pending[row]), []
        for unit in self._units[token]:
            if unit == SPACE:
                pending = started or bool(units)
            else:
                units += [SPACE, unit] if pending else [unit]
                pending = False
        return tuple(units), pending

    def _extended(self, rows: torch.Tensor, spelled: list[tuple[int, ...]]) -> torch.Tensor:
        """[N] log prefix probabilities of rows ``rows``' transcripts + ``spelled`` [N]."""
        walker = copy.copy(self.chars)
        walker.select(rows.to(self.chars.lengths.device))
        _walk(walker, [list(u[:-1]) for u in spelled])
        last = torch.tensor([u[-1] for u in spelled], device=walker.lengths.device)
        return walker.score(last[:, None], self.chars.vocab + 1)[:, 0]


def _walk(scorer: CTCPrefixScorer, spelled: list[list[int]]) -> None:
    """Advance each row of ``scorer`` through its own characters; a row with fewer waits."""
    device = scorer.lengths.device
    for j in range(max(map(len, spelled), default=0)):
        active = torch.tensor([len(u) > j for u in spelled], device=device)
        units = torch.tensor([u[j] if len(u) > j else 0 for u in spelled], device=device)
        before = (scorer.r_nonblank, scorer.r_blank, scorer.last, scorer.empty)
        scorer.advance(units)
        scorer.r_nonblank = torch.where(active[:, None], scorer.r_nonblank, before[0])
        scorer.r_blank = torch.where(active[:, None], scorer.r_blank, before[1])
        scorer.last = torch.where(active, scorer.last, before[2])
        scorer.empty = torch.where(active, scorer.empty, before[3])


def _linear_recurrence(log_a: torch.Tensor, log_b: torch.Tensor) -> torch.Tensor:
    """x_t = a_t (x_{t-1} + b_t) with x_{-1} = 0, in log space over the last dimension.

    x_t = sum_{s<=t} b_s prod_{u=s..t} a_u = A_t sum_{s<=t} b_s / A_{s-1}, with A the
    cumulative product of a, hence one cumulative sum and one cumulative log-sum-exp.
    """
    log_cum = log_a.clamp(min=-1e4).cumsum(-1)  # log A_t; a token CTC cannot emit stays finite
    before = torch.nn.functional.pad(log_cum[..., :-1], (1, 0))  # log A_{t-1}, A_{-1} = 1
    return log_cum + torch.logcumsumexp(log_b - before, dim=-1)


def span_ctc_loss(
    log_probs: torch.Tensor, spans: list[tuple[int, int, int, list[int]]]
) -> torch.Tensor:
    """Mean CTC loss of each span's tokens over its own frames only.

    log_probs [B, T, V + 1] (blank last); a span is (row, first frame, end frame, tokens).
    Confined to a word's frames, a from-scratch CTC head gets a sharp gradient toward where
    each letter is; over a whole utterance every alignment looks alike to it at first, and it
    may emit blanks for hundreds of steps before it finds one (``PhaseConfig.span_ctc_weight``).
    """
    if not spans:
        return log_probs.sum() * 0.0
    frames = torch.nn.utils.rnn.pad_sequence([log_probs[b, s:e] for b, s, e, _ in spans])
    device = log_probs.device
    return torch.nn.functional.ctc_loss(
        frames,  # [L, N, V + 1]
        torch.tensor([t for *_, tokens in spans for t in tokens], dtype=torch.long, device=device),
        torch.tensor([e - s for _, s, e, _ in spans], dtype=torch.long, device=device),
        torch.tensor([len(tokens) for *_, tokens in spans], dtype=torch.long, device=device),
        blank=log_probs.shape[-1] - 1,
        zero_infinity=True,
    )
