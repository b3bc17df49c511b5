"""Letters-first decoding: the character head writes, the lexicon keeps it to words."""

import dataclasses

import pytest
import torch
from conftest import tone
from test_spelling import chars_model
from torch import nn

from voxlm import VoxLM
from voxlm.decoding import DecodingOptions
from voxlm.decoding.letters import lexicon_beam, word_log_prior
from voxlm.lexicon import Lexicon
from voxlm.spelling import (
    ALPHABET,
    ONSET_LAG_SECONDS,
    letter_frames,
    read_spelling,
    spell,
    word_seconds,
)
from voxlm.timestamps import VoxLMTimestamper

BLANK = len(ALPHABET)


def heard(text: str, frames: int | None = None, confusions: dict[int, str] | None = None):
    """Log-probabilities [T, 29] of a head that hears ``text`` one character per two frames
    (the second a blank), 0.9 sure, blanks after it up to ``frames``; ``confusions`` makes the
    character at an index sound more like another (0.55 against 0.4)."""
    rows = []
    for i, ch in enumerate(text):
        row = torch.full((BLANK + 1,), 0.1 / BLANK)
        if confusions and i in confusions:
            row[ALPHABET.index(confusions[i])], row[ALPHABET.index(ch)] = 0.55, 0.4
        else:
            row[ALPHABET.index(ch)] = 0.9
        rows += [row, torch.full((BLANK + 1,), 0.1 / BLANK).index_fill(0, torch.tensor(BLANK), 0.9)]
    rows += rows[-1:] * ((frames or len(rows)) - len(rows))
    return torch.stack(rows).log()


def test_the_lexicon_beam_keeps_to_listed_words():
    log_probs = heard("the cat sat", confusions={5: "s"})
    assert read_spelling(log_probs.argmax(-1).tolist()) == "the cst sat"
    listed = Lexicon(["the", "sat", "cat", "cst"])
    assert (
        lexicon_beam(log_probs, listed, word_log_prior(listed), 0.5, 0.0, 8)[0][0] == "the cst sat"
    )
    listed = Lexicon(["the", "sat", "cat"])
    nbest = lexicon_beam(log_probs, listed, word_log_prior(listed), 0.5, 0.0, 8)
    assert nbest[0][0] == "the cat sat"
    assert all(w in {"the", "sat", "cat"} for text, _ in nbest for w in text.split())
    assert [s for _, s in nbest] == sorted((s for _, s in nbest), reverse=True)
    assert len({text for text, _ in nbest}) == len(nbest)  # a trailing space is the same text


def test_the_word_prior_follows_the_lists_order():
    listed = Lexicon(["The", "cat", "sat", "the"])
    assert listed.ranks == {"the": 0, "cat": 1, "sat": 2}
    prior = word_log_prior(listed)
    assert prior["the"] > prior["cat"] > prior["sat"]
    assert sum(torch.tensor(list(prior.values())).exp()) == pytest.approx(1.0)
    # A frequent word wins where the letters are torn between two: "cat" (rank 1) over "cst".
    log_probs = heard("the cat", confusions={5: "s"})
    listed = Lexicon(["the", "cat", *[f"w{i}" for i in range(1000)], "cst"])
    assert lexicon_beam(log_probs, listed, word_log_prior(listed), 1.0, 0.0, 8)[0][0] == "the cat"


class Hears(nn.Module):
    """A character head that hears the same text whatever the audio."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return heard(self.text, x.shape[1], confusions={5: "s"})[None].expand(x.shape[0], -1, -1)


def test_letters_first_transcribes_what_the_head_hears_with_times_and_confidence():
    model = chars_model().eval()
    model.ctc_head = Hears("the cat")
    options = DecodingOptions(
        letters_beam=8, lexicon=Lexicon(["the", "cat", "sat"]), no_speech_check=False
    )
    result = model.transcribe(tone(1.0), sample_rate=16000, options=options)
    assert result.text.lower() == "the cat" and result.stop_reason == "eos"
    assert [w.word.lower() for w in result.words] == ["the", "cat"]
    for w in result.words:
        assert 0 <= w.start <= w.end <= 1.0 and 0 <= w.confidence <= 1
    # The words are timed by the letters the head hears: "cat"'s c 8 frames (160 ms) after t.
    the, cat = result.words
    assert cat.start - the.start == pytest.approx(0.16 - ONSET_LAG_SECONDS, abs=1e-6)
    assert cat.end - the.start == pytest.approx(0.26 - ONSET_LAG_SECONDS, abs=1e-6)
    # The LLM writing instead (its weights are random) does not say it.
    writing = model.transcribe(
        tone(1.0), sample_rate=16000, options=dataclasses.replace(options, letters_beam=0)
    )
    assert writing.text.lower() != "the cat"


def test_letters_first_needs_a_character_head_and_a_lexicon():
    with pytest.raises(ValueError, match="letters_beam needs a lexicon"):
        DecodingOptions(letters_beam=4)
    with pytest.raises(ValueError, match="letters_beam must be >= 0"):
        DecodingOptions(letters_beam=-1, lexicon=Lexicon(["a"]))
    options = DecodingOptions(letters_beam=4, lexicon=Lexicon(["a"]), no_speech_check=False)
    with pytest.raises(ValueError, match="needs a model with a character CTC head"):
        VoxLM.from_pretrained("voxlm-tiny").transcribe(
            tone(1.0), sample_rate=16000, options=options
        )


def test_letter_frames_follow_the_heads_path_and_words_take_off_the_lag():
    log_probs = heard("the cat", frames=20).numpy()
    frames = letter_frames(log_probs, spell("the cat"))
    assert frames.tolist() == [[2 * k, 2 * k + 1] for k in range(7)]  # one frame each, 2 apart
    lag = ONSET_LAG_SECONDS
    expected = [[0.0, 0.1 - lag], [0.16 - lag, 0.26 - lag]]  # "the" clipped at 0
    assert word_seconds(log_probs, "The cat.").ravel().tolist() == pytest.approx(sum(expected, []))
    # A doubled letter needs a blank between its two: "see" spelt in 3 frames cannot be.
    see = heard("see").numpy()
    assert letter_frames(see, spell("see")).tolist() == [[0, 1], [2, 3], [4, 5]]
    with pytest.raises(ValueError, match="too few"):
        letter_frames(see[:3], spell("see"))
    assert letter_frames(see, []).shape == (0, 2)


def test_forced_timing_by_letters():
    model = chars_model().eval()
    model.ctc_head = Hears("the cat")
    times = VoxLMTimestamper(model, letters=True)(tone(1.0), "the cat")
    assert [w[0] for w in times] == ["the", "cat"]
    assert times[1][1] == pytest.approx(0.16 - ONSET_LAG_SECONDS)
    with pytest.raises(ValueError, match="spells 1 words for 2"):
        VoxLMTimestamper(model, letters=True)(tone(1.0), "the 42")
