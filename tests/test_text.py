"""What a word is: normalisation, token pieces, tokens -> words, word matching."""

import jiwer
import pytest
from tokenizers import Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from voxlm.llm import char_tokenizer
from voxlm.text import (
    TokenText,
    align_words,
    group_words,
    matched_words,
    normalize_english,
    normalize_text,
    piece_word_index,
    split_words,
)


def byte_level_tokenizer() -> PreTrainedTokenizerFast:
    """A GPT-2-style byte-level BPE whose vocabulary has no merges: "é" is two byte tokens."""
    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {"<|endoftext|>": 0, **{ch: i + 1 for i, ch in enumerate(sorted(alphabet))}}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>")


def test_normalize_text():
    assert normalize_text("Don't  STOP, well-known 'quote'") == "don't stop well known quote"


def test_character_pieces_keep_the_space_that_starts_a_word():
    text = TokenText(char_tokenizer())
    ids = text.tokenizer("hi yo", add_special_tokens=False).input_ids
    assert text.pieces(ids) == [" ", "h", "i", " ", "y", "o"]
    assert "".join(text.pieces(ids)).strip() == text.tokenizer.decode(ids)


def test_a_multi_byte_character_lands_on_the_token_that_completes_it():
    text = TokenText(byte_level_tokenizer())
    ids = text.tokenizer(" café au", add_special_tokens=False).input_ids
    pieces = text.pieces(ids)
    assert len(pieces) == len(ids) == 9  # " ", "c", "a", "f", two bytes of "é", " ", "a", "u"
    assert pieces[4] == "" and pieces[5] == "é"
    assert "".join(pieces) == " café au"
    assert text.piece(ids[4]) == ""  # alone, the first byte is no text yet


def test_special_tokens_write_nothing():
    text = TokenText(char_tokenizer())
    eos = text.tokenizer.eos_token_id
    assert text.piece(eos) is None
    assert text.pieces([eos]) == [""]


def test_piece_word_index():
    # a lone space token belongs to the word after it, punctuation to the word it ends
    index, n = piece_word_index(["", "a", "b", ",", " ", "c", " ", " d"])
    assert index == [0, 0, 0, 0, 1, 1, 2, 2] and n == 3


def test_group_words_attaches_punctuation():
    assert group_words([" Hello", ",", " wor", "ld", ".", " (", "x", ")"]) == [
        [0, 1],
        [2, 3, 4],
        [5, 6, 7],
    ]


def test_split_words():
    assert split_words("ca", "t sa") == (["cat"], "sa")
    assert split_words("", "Don't") == ([], "don't")


@pytest.mark.parametrize(
    "ref, hyp",
    [
        ("the cat sat on the mat", "the cat sat on mat"),
        ("a b c d", "x a c c d y"),
        ("one two three", "three two one"),
        ("the the the", "the"),
    ],
)
def test_align_words_agrees_with_jiwer(ref, hyp):
    expected = []
    for chunk in jiwer.process_words(ref, hyp).alignments[0]:
        if chunk.type == "equal":
            n = chunk.ref_end_idx - chunk.ref_start_idx
            expected += [(chunk.ref_start_idx + k, chunk.hyp_start_idx + k) for k in range(n)]
    assert align_words(ref.split(), hyp.split()) == expected


def test_matched_words_skips_punctuation():
    assert matched_words(["Hello,", "world"], ["hello", "—", "world."]) == [(0, 0), (1, 2)]


@pytest.mark.parametrize(
    "written, spoken",
    [
        ("1 2 3", "one two three"),
        ("It's 42.", "it's forty two"),
        ("13, 15, 19", "thirteen fifteen nineteen"),
        ("1,000 people", "one thousand people"),
        ("105 and 2,500,017", "one hundred five and two million five hundred thousand seventeen"),
        ("the 2nd, 3rd, 21st and 100th", "the second third twenty first and one hundredth"),
        ("12th 20th 8th", "twelfth twentieth eighth"),
        ("3.14 and 0.5", "three point one four and zero point five"),
        ("50%", "fifty percent"),
        ("call 007", "call zero zero seven"),
        ("version 2.0.1", "version two zero one"),
    ],
)
def test_normalize_english_spells_numbers(written, spoken):
    assert normalize_english(written) == spoken
    assert normalize_english(spoken) == spoken  # words are already the normal form


def test_normalize_english_is_normalize_text_without_numbers():
    text = "Well-known  \u201cquotes\u201d, don't DROP it!"
    assert normalize_english(text) == normalize_text(text) == "well known quotes don't drop it"


def test_normalize_english_leaves_digits_inside_words_and_drops_and_in_spoken_numbers():
    assert normalize_english("mp3 4x4 COVID-19") == "mp3 4x4 covid nineteen"
    assert normalize_english("One hundred and five") == normalize_english("105")
    assert normalize_english("rock and roll") == "rock and roll"
