import math

import pytest
import torch
from conftest import spelling_ctc_head, tiny_config, tone

from voxlm.decoding import DecodingOptions
from voxlm.model import VoxLM
from voxlm.ngram import EOS, NGramLM

TEXTS = ["the cat sat", "the dog sat", "a cat ran", "San Francisco is far", "San Francisco is big"]


@pytest.mark.parametrize("order", [1, 2, 3])
@pytest.mark.parametrize("history", [(), ("the",), ("the", "cat"), ("never", "seen")])
def test_probabilities_of_the_next_word_sum_to_one(order, history):
    lm = NGramLM(TEXTS, order=order)
    words = [*lm.vocabulary, EOS, "an-unknown-word"]
    assert math.fsum(math.exp(lm.log_prob(history, w)) for w in words) == pytest.approx(1.0)


@pytest.mark.parametrize("order", [1, 2, 3, 4])
def test_the_context_is_the_last_order_minus_one_words(order):
    lm = NGramLM(TEXTS, order=order)
    words = ("san", "francisco", "is", "far")
    for n in range(len(words) + 1):
        assert lm.context(words[:n]) == words[max(0, n - order + 1) : n]
    by_hand = sum(
        lm.log_prob(words[:n], w) for n, w in enumerate([*words, EOS])
    )  # log_prob trims a longer history itself
    assert lm.sentence_log_prob("San Francisco is far") == pytest.approx(by_hand)


def test_seen_continuations_beat_unseen_ones_and_unknown_words_stay_possible():
    lm = NGramLM(TEXTS)
    assert lm.log_prob(("the",), "cat") > lm.log_prob(("the",), "ran")
    assert lm.log_prob(("the", "cat"), "sat") > lm.log_prob(("the", "cat"), "ran")
    assert lm.log_prob((), "zebra") > -math.inf
    assert lm.sentence_log_prob("the cat sat") > lm.sentence_log_prob("sat cat the")


def test_kneser_ney_backs_off_to_how_many_contexts_a_word_follows():
    # "francisco" is as frequent as "cat" but only ever follows "san": after a new word,
    # the lower order prefers the word seen in more contexts.
    lm = NGramLM(TEXTS, order=2)
    assert lm.log_prob(("big",), "cat") > lm.log_prob(("big",), "francisco")


def test_n_gram_input_errors_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="order"):
        NGramLM(TEXTS, order=0)
    with pytest.raises(ValueError, match="discount"):
        NGramLM(TEXTS, discount=1.0)
    with pytest.raises(ValueError, match="ngram_weight"):
        DecodingOptions(ngram_weight=-1.0)
    lines = tmp_path / "texts.txt"
    lines.write_text("The cat, sat.\nthe dog sat\n")
    assert NGramLM.from_file(lines).vocabulary == {"the", "cat", "dog", "sat"}


@pytest.mark.parametrize("beam_size", [2, 4])
def test_the_n_gram_model_decides_what_the_audio_cannot(beam_size):
    # The n-gram scores whole words: a beam keeps both spellings until the word ends.
    torch.manual_seed(0)
    model = VoxLM.from_config(tiny_config(ctc_embeddings=False, ctc_positions=False)).eval()
    spelling_ctc_head(model, "see me", undecided=(3, "a"))  # the third letter: "e" or "a"
    options = DecodingOptions(
        ctc_weight=0.9,
        ctc_candidates=len(model.tokenizer),
        beam_size=beam_size,
        no_speech_check=False,
        min_confidence=0,
    )
    heard = {model.transcribe(tone(1.0), sample_rate=16000, options=options).text}
    assert heard <= {"see me", "sea me"}
    for text in ("see me", "sea me"):
        lm = NGramLM([text, f"you {text}", "me too"])
        fused = model.transcribe(
            tone(1.0),
            sample_rate=16000,
            options=DecodingOptions(**{**options.__dict__, "ngram": lm, "ngram_weight": 1.0}),
        )
        assert fused.text == text and fused.stop_reason == "eos"
