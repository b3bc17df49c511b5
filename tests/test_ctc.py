"""CTC prefix scores against a brute-force sum over every alignment."""

import itertools
import math

import pytest
import torch
from conftest import tiny_config

from voxlm.ctc import CTCPrefixScorer, SpellingPrefixScorer, span_ctc_loss
from voxlm.model import VoxLM
from voxlm.spelling import ALPHABET, spell

V, T, BLANK = 3, 5, 3  # tokens 0..2, blank last; 4^5 = 1024 alignments
EOS = 7  # outside the CTC vocabulary, as an LLM's EOS may be


def collapse(path: tuple[int, ...]) -> tuple[int, ...]:
    out, previous = [], None
    for s in path:
        if s != previous and s != BLANK:
            out.append(s)
        previous = s
    return tuple(out)


def brute_force(
    log_probs: torch.Tensor, length: int, prefix: tuple[int, ...], whole: bool
) -> float:
    """log sum of p(path) over alignments whose labelling starts with (or, whole, is) prefix."""
    total = 0.0
    for path in itertools.product(range(V + 1), repeat=length):
        label = collapse(path)
        if label == prefix if whole else label[: len(prefix)] == prefix:
            total += math.exp(sum(float(log_probs[t, s]) for t, s in enumerate(path)))
    return math.log(total) if total > 0 else float("-inf")


@pytest.mark.parametrize("transcript", [(0, 1, 2), (1, 1, 0), (2, 2, 2)])
def test_prefix_scores_equal_the_sum_over_alignments(transcript):
    torch.manual_seed(len(transcript) + sum(transcript))
    log_probs = torch.randn(2, T, V + 1).log_softmax(-1)
    lengths = torch.tensor([T, T - 1])  # the second row is padded by one frame
    scorer = CTCPrefixScorer(log_probs, lengths)
    candidates = torch.tensor([[0, 1, 2, EOS]] * 2)
    prefix: tuple[int, ...] = ()
    for token in transcript:
        scores = scorer.score(candidates, eos=EOS)
        for row in range(2):
            n = int(lengths[row])
            for k, c in enumerate(candidates[row].tolist()):
                expected = (
                    brute_force(log_probs[row], n, prefix, whole=True)
                    if c == EOS
                    else brute_force(log_probs[row], n, (*prefix, c), whole=False)
                )
                assert float(scores[row, k]) == pytest.approx(expected, abs=1e-6)
        scorer.advance(torch.tensor([token, token]))
        prefix = (*prefix, token)


def test_a_token_outside_the_vocabulary_scores_minus_infinity():
    scorer = CTCPrefixScorer(torch.randn(1, T, V + 1).log_softmax(-1), torch.tensor([T]))
    scores = scorer.score(torch.tensor([[0, V + 2]]), eos=EOS)
    assert torch.isfinite(scores[0, 0]) and scores[0, 1] == float("-inf")


def test_span_ctc_is_the_mean_ctc_loss_of_each_span_on_its_own_frames():
    torch.manual_seed(0)
    log_probs = torch.randn(2, 12, V + 1).log_softmax(-1)
    spans = [(0, 0, 5, [0, 1]), (0, 4, 12, [2, 2]), (1, 3, 7, [1])]
    each = [
        torch.nn.functional.ctc_loss(
            log_probs[b, s:e, None], torch.tensor([tokens]), [e - s], [len(tokens)], blank=BLANK
        )
        for b, s, e, tokens in spans
    ]  # "mean" reduction: each loss divided by its target length
    assert span_ctc_loss(log_probs, spans) == pytest.approx(float(sum(each) / len(each)), rel=1e-5)


def test_span_ctc_rewards_letters_inside_their_spans_only():
    peaked = torch.full((1, 10, V + 1), -9.0)
    peaked[0, :, BLANK] = 0.0
    peaked[0, 2, 0] = peaked[0, 7, 1] = 5.0  # token 0 at frame 2, token 1 at frame 7
    log_probs = peaked.log_softmax(-1)
    right = span_ctc_loss(log_probs, [(0, 0, 5, [0]), (0, 5, 10, [1])])
    swapped = span_ctc_loss(log_probs, [(0, 0, 5, [1]), (0, 5, 10, [0])])
    whole = span_ctc_loss(log_probs, [(0, 0, 10, [1, 0])])  # wrong order over the whole clip
    assert float(right) < 0.1 < 5.0 < float(swapped)
    assert float(whole) > 5.0


def test_no_spans_give_a_zero_loss_that_still_backpropagates():
    log_probs = torch.randn(1, 4, V + 1, requires_grad=True).log_softmax(-1)
    loss = span_ctc_loss(log_probs, [])
    loss.backward()
    assert float(loss) == 0.0


def test_a_ctc_head_over_a_vocabulary_too_large_to_decode_is_refused(monkeypatch):
    monkeypatch.setattr("voxlm.ctc.MAX_CTC_VOCAB", 20)
    with pytest.raises(ValueError, match=r"model.ctc: true needs a tokenizer of at most 20"):
        VoxLM.from_config(tiny_config(ctc=True))
    # without the head the same model builds
    VoxLM.from_config(tiny_config(ctc=False, ctc_embeddings=False, ctc_positions=False))


PIECES = {0: " the", 1: "cat", 2: ",", 3: " ", 4: None, 5: " Dog's", 6: "-", 7: "s"}
PIECE_EOS = 4  # a special token: no text


def spelled_prefix_score(log_probs, length, text, whole):
    """The character scorer walked by hand through ``spell(text)``: the reference."""
    units = spell(text)
    scorer = CTCPrefixScorer(log_probs[None], torch.tensor([length]))
    marker = log_probs.shape[-1]  # not a character
    if whole:
        for unit in units:
            scorer.advance(torch.tensor([unit]))
        return float(scorer.score(torch.tensor([[marker]]), marker)[0, 0])
    if not units:
        return 0.0
    for unit in units[:-1]:
        scorer.advance(torch.tensor([unit]))
    return float(scorer.score(torch.tensor([[units[-1]]]), marker)[0, 0])


def test_token_pieces_score_as_the_transcript_spelt_by_hand():
    torch.manual_seed(0)
    frames = 14
    log_probs = torch.randn(2, frames, len(ALPHABET) + 1).log_softmax(-1)
    lengths = [frames, frames - 3]
    scorer = SpellingPrefixScorer(log_probs, torch.tensor(lengths), PIECES.get)
    candidates = torch.tensor([list(PIECES)] * 2)
    texts = ["", ""]
    for chosen in ([0, 5], [2, 6], [3, 3], [1, 7], [7, 1]):
        scores = scorer.score(candidates, eos=PIECE_EOS)
        for row in range(2):
            for k, token in enumerate(PIECES):
                whole = token == PIECE_EOS
                text = texts[row] + ("" if whole else PIECES[token])
                expected = spelled_prefix_score(log_probs[row], lengths[row], text, whole)
                assert float(scores[row, k]) == pytest.approx(expected, abs=1e-6), (text, whole)
        scorer.advance(torch.tensor(chosen))
        texts = [t + PIECES[c] for t, c in zip(texts, chosen, strict=True)]
    assert texts == [" the, cats", " Dog's- scat"]
    whole = scorer.score(torch.tensor([[PIECE_EOS]] * 2), eos=PIECE_EOS)
    for row in range(2):
        expected = spelled_prefix_score(log_probs[row], lengths[row], texts[row], whole=True)
        assert float(whole[row, 0]) == pytest.approx(expected, abs=1e-6)


def test_a_spelling_scorer_follows_beam_reordering():
    torch.manual_seed(1)
    log_probs = torch.randn(2, 10, len(ALPHABET) + 1).log_softmax(-1)
    scorer = SpellingPrefixScorer(log_probs, torch.tensor([10, 10]), PIECES.get)
    scorer.advance(torch.tensor([0, 5]))  # "the", "dog's"
    scorer.select(torch.tensor([1, 1, 0]))
    scores = scorer.score(torch.tensor([[1], [1], [1]]), eos=PIECE_EOS)  # + "cat"
    for row, (source, text) in enumerate([(1, " dog'scat"), (1, " dog'scat"), (0, " thecat")]):
        expected = spelled_prefix_score(log_probs[source], 10, text, whole=False)
        assert float(scores[row, 0]) == pytest.approx(expected, abs=1e-6)
