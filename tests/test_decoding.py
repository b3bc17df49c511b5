import pytest
import torch
from conftest import tiny_config, tone

from voxlm.decoding import (
    STOP_LOW_CONFIDENCE,
    STOP_MAX_TOKENS,
    STOP_REPETITION,
    DecodingOptions,
    Transcript,
    Word,
    generate,
    stop_rule,
)
from voxlm.model import VoxLM

OPTIONS = DecodingOptions()


def test_repetition_keeps_one_copy():
    tokens = [5, 6, 7] + [1, 2] * 4
    assert stop_rule(tokens, [0.9] * len(tokens), OPTIONS) == (STOP_REPETITION, 5)


def test_three_copies_are_allowed():
    tokens = [5] + [1, 2] * 3
    assert stop_rule(tokens, [0.9] * len(tokens), OPTIONS) is None


def test_confidence_floor_cuts_from_the_first_unsure_token():
    probs = [0.9] * 5 + [0.5, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]
    tokens = list(range(len(probs)))
    assert stop_rule(tokens, probs, OPTIONS) == (STOP_LOW_CONFIDENCE, 6)


def test_rules_switch_off_with_zero():
    off = DecodingOptions(min_confidence=0, max_repeats=0)
    assert stop_rule([1] * 20, [0.01] * 20, off) is None


@pytest.mark.parametrize("field", ["min_confidence", "max_repeats", "max_tokens_per_second"])
def test_negative_options_are_rejected(field):
    with pytest.raises(ValueError, match=field):
        DecodingOptions(**{field: -1})


def test_unknown_confidence_method_is_rejected():
    with pytest.raises(ValueError, match="word_confidence"):
        DecodingOptions(word_confidence="median")


def test_token_budget_bounds_a_model_that_never_stops():
    model = VoxLM.from_config(tiny_config()).eval()
    eos = model.tokenizer.eos_token_id
    # A model that can never say EOS: only the budget can end it.
    model.llm.get_output_embeddings().register_forward_hook(
        lambda module, args, out: out.index_fill(-1, torch.tensor([eos]), -1e9)
    )
    options = DecodingOptions(
        min_confidence=0, max_repeats=0, no_speech_check=False, max_tokens_per_second=5
    )
    result = model.transcribe(tone(1.0), sample_rate=16000, options=options)
    assert result.stop_reason == STOP_MAX_TOKENS
    audio = torch.from_numpy(tone(1.0))[None]
    rows = generate(
        model, model.encode(audio, torch.tensor([16000])), [model.prompt()], [13], options
    )
    assert len(rows[0].tokens) == 13 and rows[0].stop_reason == STOP_MAX_TOKENS


def test_transcript_to_dict_is_the_documented_format():
    t = Transcript(
        "hi there", (Word("hi", 0.1, 0.3, 0.9), Word("there", 0.3, 0.7, 0.8)), 1.0, "eos"
    )
    assert t.to_dict() == {
        "text": "hi there",
        "words": [
            {"word": "hi", "start": 0.1, "end": 0.3, "confidence": 0.9},
            {"word": "there", "start": 0.3, "end": 0.7, "confidence": 0.8},
        ],
        "audio_duration": 1.0,
        "stop_reason": "eos",
    }


def spelling_ctc_head(model: VoxLM, text: str) -> None:
    """Make the CTC head spell ``text`` with certainty: each token for 2 frames, then a blank."""
    tokens = model.tokenizer(text, add_special_tokens=False).input_ids
    blank = model.ctc_head.out_features - 1

    def spell(module, args, out):
        symbols = torch.full(out.shape[:2], blank, dtype=torch.long)
        for k, token in enumerate(tokens):
            symbols[:, 3 * k : 3 * k + 2] = token
        return torch.nn.functional.one_hot(symbols, out.shape[-1]).to(out.dtype) * 30.0

    model.ctc_head.register_forward_hook(spell)


@pytest.mark.parametrize("text", ["all ok", "see me"])
def test_with_full_ctc_weight_the_transcript_is_what_ctc_hears(text):
    torch.manual_seed(0)
    model = VoxLM.from_config(tiny_config(ctc_embeddings=False, ctc_positions=False)).eval()
    spelling_ctc_head(model, text)
    vocabulary = len(model.tokenizer)
    joint = DecodingOptions(ctc_weight=1.0, ctc_candidates=vocabulary, no_speech_check=False)
    result = model.transcribe(tone(1.0), sample_rate=16000, options=joint)
    assert result.text == text and result.stop_reason == "eos"
    assert min(w.confidence for w in result.words) > 0.99  # the LLM has no say: CTC is sure
    alone = DecodingOptions(ctc_weight=0.0, no_speech_check=False, min_confidence=0)
    assert model.transcribe(tone(1.0), sample_rate=16000, options=alone).text != text


@pytest.mark.parametrize(("field", "value"), [("ctc_weight", 1.5), ("ctc_candidates", 0)])
def test_joint_decoding_options_are_checked(field, value):
    with pytest.raises(ValueError, match=field):
        DecodingOptions(**{field: value})
