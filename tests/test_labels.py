"""Training labels: the aligner's targets and span-CTC spans from word timings."""

import pytest
import torch

from voxlm.labels import alignment_targets, span_targets
from voxlm.llm import char_tokenizer
from voxlm.results import WordTiming
from voxlm.text import TokenText


def test_span_targets():
    target, mask = span_targets(
        token_word_index=[[0, 0, 1, -1], [0]],
        word_frames=[[(1, 3), (3, 3)], [(8, 20)]],
        n_frames=10,
    )
    assert target.shape == (2, 4, 10)
    assert mask.tolist() == [[True, True, True, False], [True, False, False, False]]
    assert target[0, 0].tolist() == [0, 0.5, 0.5] + [0] * 7
    assert target[0, 2, 3] == 1.0  # an empty word still gets one frame
    assert target[1, 0, 8:].tolist() == [0.5, 0.5]  # clipped to n_frames
    torch.testing.assert_close(target[mask].sum(-1), torch.ones(4))
    assert target[~mask].abs().sum() == 0


def test_span_targets_valid_frames_and_errors():
    target, _ = span_targets([[0]], [[(4, 9)]], n_frames=10, valid_frames=[6])
    assert target[0, 0].nonzero().flatten().tolist() == [4, 5]
    with pytest.raises(ValueError, match="word index 2"):
        span_targets([[2]], [[(0, 1)]], n_frames=5)
    with pytest.raises(ValueError, match="utterances"):
        span_targets([[0], [0]], [[(0, 1)]], n_frames=5)


def test_alignment_targets_put_a_space_just_before_its_word():
    token_text = TokenText(char_tokenizer())
    ids = token_text.tokenizer("hi yo", add_special_tokens=False).input_ids
    words = [WordTiming("hi", 0.1, 0.3), WordTiming("yo", 0.3, 0.5)]
    target, mask, lengths = alignment_targets(token_text, [ids], [words], 40, [40])
    assert lengths == [6] and mask[0].all()  # the prefix space, h i ' ' y o
    frames = [torch.nonzero(target[0, j]).flatten().tolist() for j in range(6)]
    assert frames[0] == [3, 4]  # a space: the two frames before its word starts
    assert frames[1] == frames[2] == list(range(5, 15))  # "hi": 0.1-0.3 s
    assert frames[3] == [13, 14]
    assert frames[4] == frames[5] == list(range(15, 25))
    assert torch.allclose(target[0].sum(-1), torch.ones(6))
