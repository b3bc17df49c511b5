import dataclasses

import pytest
import torch
from conftest import tiny_config, tone
from test_model import OPEN, batch

from voxlm import VoxLM
from voxlm.config import CONFIG_DIR as CONFIGS
from voxlm.config import load_config
from voxlm.ctc import SpellingPrefixScorer
from voxlm.decoding.search import BeamSearch
from voxlm.spelling import ALPHABET, SpellingHead, letter_token_ids, read_spelling, spell

BLANK = len(ALPHABET)


def chars_model(**overrides) -> VoxLM:
    config = tiny_config(ctc=True, ctc_units="characters", ctc_positions=False, **overrides)
    return VoxLM.from_config(config)


def test_spell_normalises_then_indexes_each_character():
    assert spell("Don't, Stop!") == [ALPHABET.index(c) for c in "don't stop"]
    assert spell("x 2 ü") == [ALPHABET.index("x")]  # digits and letters outside it are dropped


def test_read_spelling_collapses_repeats_and_drops_blanks():
    h, i, space = ALPHABET.index("h"), ALPHABET.index("i"), ALPHABET.index(" ")
    path = [BLANK, h, h, BLANK, i, i, space, space, BLANK, i, BLANK, i, BLANK, space]
    assert read_spelling(path) == "hi ii"  # a blank between two i's keeps both


def test_a_tokenizer_without_one_token_per_letter_is_refused():
    class Pairs:
        def __call__(self, text, add_special_tokens):
            return type("Encoded", (), {"input_ids": [1, 2] if text == "q" else [9]})

    with pytest.raises(ValueError, match=r"one LLM token per character; 'q' encodes to 2"):
        letter_token_ids(Pairs())


def test_the_character_head_spells_the_alphabet_and_its_loss_is_ctc_over_characters():
    model = chars_model().eval()  # no dropout: the two passes below must agree
    assert isinstance(model.ctc_head, SpellingHead)
    data = batch(("The cat!", "hello"))
    out = model(data, ce_weight=0.0, ctc_weight=1.0)
    audio = model.encode(data["audio"], data["audio_lengths"])
    assert audio.ctc_log_probs.shape[-1] == len(ALPHABET) + 1
    targets = [spell(t) for t in data["texts"]]
    expected = torch.nn.functional.ctc_loss(
        audio.ctc_log_probs.detach().transpose(0, 1),
        torch.tensor([c for t in targets for c in t]),
        audio.mask.sum(1),
        torch.tensor([len(t) for t in targets]),
        blank=BLANK,
        zero_infinity=True,
    )
    assert out.losses["ctc"] == pytest.approx(expected.item(), rel=1e-5)


def test_ctc_embeddings_hand_the_llm_its_own_letter_embeddings():
    model = chars_model(ctc_embeddings=True)
    c = ALPHABET.index("c")
    probs = torch.zeros(1, 8, len(ALPHABET))
    probs[0, 5, c] = 1.0  # "c" heard in the second stack of 4 frames
    letters = model._ctc_token_embeddings(probs, 2)
    table = model.llm.get_input_embeddings().weight
    token = model.tokenizer.convert_tokens_to_ids("c")  # the built-in tokenizer writes "▁", "c"
    assert model.ctc_token_ids[c] == token
    scale = table.shape[-1] ** 0.5  # a from-scratch LLM's embeddings are scaled up
    torch.testing.assert_close(letters[0, 1], table[token] * scale)
    assert not letters[0, 0].any()


def test_a_character_head_trains_with_the_llm_and_votes_on_its_tokens_letter_by_letter():
    model = chars_model(ctc_embeddings=True)
    out = model(batch(), ce_weight=1.0, ctc_weight=0.5)
    assert set(out.losses) == {"ce", "ctc"} and torch.isfinite(out.loss)
    out.loss.backward()
    assert model.ctc_head.out.weight.grad.abs().sum() > 0
    model.eval()
    audio = model.encode(torch.from_numpy(tone(1.0))[None], torch.tensor([16000]))
    search = BeamSearch(model, audio, [model.prompt()], dataclasses.replace(OPEN, ctc_weight=0.5))
    assert isinstance(search.ctc, SpellingPrefixScorer) and search.w == 0.5
    greedy = dataclasses.replace(OPEN, ctc_weight=0.0)
    assert BeamSearch(model, audio, [model.prompt()], greedy).ctc is None
    assert model.transcribe(tone(1.2), sample_rate=16000, options=OPEN).words


def test_character_units_are_checked_in_the_config():
    with pytest.raises(ValueError, match="model.ctc_units must be 'tokens' or 'characters'"):
        tiny_config(ctc=True, ctc_units="bytes")
    with pytest.raises(ValueError, match="ctc_positions needs model.ctc_units: tokens"):
        tiny_config(ctc=True, ctc_units="characters", ctc_positions=True)
    with pytest.raises(ValueError, match="phase1.span_ctc_weight needs model.ctc_units: tokens"):
        load_config(
            CONFIGS / "voxlm-tiny-demo.yaml",
            overrides=["model.ctc_units=characters", "model.ctc_positions=false"],
        )


def test_a_saved_character_model_reloads_its_head(tmp_path):
    model = chars_model(ctc_embeddings=True).eval()
    model.save_pretrained(tmp_path / "m")
    again = VoxLM.from_pretrained(tmp_path / "m")
    for name, value in model.ctc_head.state_dict().items():
        torch.testing.assert_close(again.ctc_head.state_dict()[name], value)
