from dataclasses import replace

import pytest
import torch
from conftest import spelling_ctc_head, tiny_config, tone

from voxlm.decoding import DecodingOptions
from voxlm.decoding.words import WordScorer, WordState
from voxlm.lexicon import Lexicon
from voxlm.llm import char_tokenizer
from voxlm.model import VoxLM
from voxlm.ngram import NGramLM
from voxlm.text import TokenText


def test_a_word_grows_only_along_listed_words():
    lexicon = Lexicon(["honest", "hot", "On"])
    assert lexicon.extend("", "H") == "h"
    assert lexicon.extend("h", "on") == "hon"
    assert lexicon.extend("", "x") is None  # no listed word starts with x
    assert lexicon.extend("hon", " ") is None  # "hon" is not a word
    assert lexicon.extend("on", " ") == ""
    assert lexicon.extend("", " hot, on") == "on"  # a piece may hold whole words
    assert lexicon.extend("", "") == ""  # part of a multi-byte character: nothing yet


def test_a_transcript_may_end_only_after_a_whole_word():
    lexicon = Lexicon(["hot"])
    assert lexicon.can_end("") and lexicon.can_end("hot")
    assert not lexicon.can_end("ho")


@pytest.mark.parametrize(
    ("load", "empty_error"),
    [(Lexicon.from_file, "at least one word"), (NGramLM.from_file, "at least one non-empty text")],
)
def test_word_file_errors_name_the_problem(tmp_path, load, empty_error):
    with pytest.raises(FileNotFoundError, match="missing.txt"):
        load(tmp_path / "missing.txt")
    empty = tmp_path / "empty.txt"
    empty.write_text("\n  \n")
    with pytest.raises(ValueError, match=empty_error):
        load(empty)


def test_a_lexicon_file_holds_words_or_sentences(tmp_path):
    words = tmp_path / "words.txt"
    words.write_text("See me\nall OK, see\n")
    assert Lexicon.from_file(words).words == ("all", "me", "ok", "see")


@pytest.mark.parametrize("beam_size", [1, 3])
def test_a_lexicon_turns_what_ctc_hears_into_listed_words(beam_size):
    torch.manual_seed(0)
    model = VoxLM.from_config(tiny_config(ctc_embeddings=False, ctc_positions=False)).eval()
    spelling_ctc_head(model, "sea me")  # CTC is sure of "sea", which is not listed
    options = DecodingOptions(
        ctc_weight=0.9,
        ctc_candidates=len(model.tokenizer),
        beam_size=beam_size,
        no_speech_check=False,
        min_confidence=0,
    )
    free = model.transcribe(tone(1.0), sample_rate=16000, options=options)
    assert free.text == "sea me"
    lexicon = Lexicon(["see", "me", "all"])
    listed = model.transcribe(
        tone(1.0),
        sample_rate=16000,
        options=replace(options, lexicon=lexicon),
    )
    assert listed.text == "see me" and listed.stop_reason == "eos"


def test_a_beam_the_lexicon_cannot_serve_keeps_its_word_in_progress():
    """Where no candidate spells a listed word, all are allowed, and the unfinished word
    stays as written (it was reset to nothing, so the next words were checked from scratch)."""
    tokenizer = char_tokenizer()
    scorer = WordScorer(
        DecodingOptions(lexicon=Lexicon(["cat"])), TokenText(tokenizer), tokenizer.eos_token_id
    )
    z, q, space = tokenizer.convert_tokens_to_ids(["z", "q", "▁"])
    assert scorer.steps(WordState("xy"), [z, q]) == [([], "xyz"), ([], "xyq")]
    assert scorer.steps(WordState("xy"), [space]) == [(["xy"], "")]
    assert scorer.steps(WordState("ca"), [z, q]) == [([], "caz"), ([], "caq")]
    assert scorer.steps(WordState("ca"), [tokenizer.convert_tokens_to_ids("t")]) == [([], "cat")]
