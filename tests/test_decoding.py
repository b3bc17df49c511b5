from dataclasses import replace

import pytest
import torch
from conftest import spelling_ctc_head, tiny_config, tone

from voxlm.decoding import (
    STOP_LOW_CONFIDENCE,
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


@pytest.mark.parametrize(
    ("field", "value"), [("ctc_weight", 1.5), ("ctc_candidates", 0), ("beam_size", 0)]
)
def test_joint_decoding_options_are_checked(field, value):
    with pytest.raises(ValueError, match=field):
        DecodingOptions(**{field: value})


def _only_tokens(model: VoxLM, allowed: list[int]) -> None:
    """Let the LLM say nothing but ``allowed``: a search space small enough to enumerate."""
    blocked = torch.ones(len(model.tokenizer), dtype=torch.bool)
    blocked[allowed] = False
    model.llm.get_output_embeddings().register_forward_hook(
        lambda module, args, out: out.masked_fill(blocked[: out.shape[-1]], -1e9)
    )


@torch.no_grad()
def _joint_score(model: VoxLM, audio, tokens: list[int], ctc_weight: float) -> float:
    """(1 - w) log p_LLM(tokens + EOS) + w log p_CTC(tokens), each by its own full pass."""
    eos = model.tokenizer.eos_token_id
    seq = model.assemble(audio, [model.prompt()], [[*tokens, eos]])
    logits = model.llm(
        inputs_embeds=seq.embeds, attention_mask=seq.attention_mask, position_ids=seq.position_ids
    ).logits[0, -len(tokens) - 2 : -1]
    llm = logits.float().log_softmax(-1).gather(1, torch.tensor([*tokens, eos])[:, None]).sum()
    log_probs = audio.ctc_log_probs  # [1, T, V + 1]
    ctc = -torch.nn.functional.ctc_loss(
        log_probs.transpose(0, 1),
        torch.tensor([tokens]),
        audio.mask.sum(1),
        torch.tensor([len(tokens)]),
        blank=log_probs.shape[-1] - 1,
        reduction="sum",
    )
    return float((1 - ctc_weight) * llm + ctc_weight * ctc)


@pytest.mark.parametrize("ctc_weight", [0.0, 0.5])
def test_a_beam_as_wide_as_the_search_space_finds_the_best_transcript(ctc_weight):
    """Tokens {a, b} and at most 2 before EOS: 7 transcripts, all scored by full passes."""
    greedy_missed = 0
    for seed in range(6):
        torch.manual_seed(seed)
        model = VoxLM.from_config(tiny_config()).eval()
        a, b = model.tokenizer("ab", add_special_tokens=False).input_ids[-2:]
        _only_tokens(model, [a, b, model.tokenizer.eos_token_id])
        audio = model.encode(torch.from_numpy(tone(1.0, seed=seed))[None], torch.tensor([16000]))
        options = DecodingOptions(
            ctc_weight=ctc_weight, min_confidence=0, max_repeats=0, beam_size=8
        )
        found = generate(model, audio, [model.prompt()], [3], options)[0]
        scores = {
            (): _joint_score(model, audio, [], ctc_weight),
            **{
                tuple(t): _joint_score(model, audio, list(t), ctc_weight)
                for t in ([a], [b], [a, a], [a, b], [b, a], [b, b])
            },
        }
        best = max(scores, key=scores.get)
        assert found.stop_reason == "eos" and tuple(found.tokens) == best, (seed, scores)
        greedy = generate(model, audio, [model.prompt()], [3], replace(options, beam_size=1))[0]
        greedy_missed += tuple(greedy.tokens) != best
    assert greedy_missed > 0  # the test has teeth: greedy decoding misses the best at times


def test_beam_search_decodes_a_batch_as_it_decodes_each_row():
    torch.manual_seed(0)
    model = VoxLM.from_config(tiny_config()).eval()
    clips = [tone(1.0, seed=1), tone(1.6, seed=2), tone(0.7, seed=3)]
    options = DecodingOptions(beam_size=3, no_speech_check=False, max_tokens_per_second=12)
    together = model.transcribe(clips, sample_rate=16000, options=options)
    alone = [model.transcribe(c, sample_rate=16000, options=options) for c in clips]
    assert [t.text for t in together] == [t.text for t in alone]
    assert [t.stop_reason for t in together] == [t.stop_reason for t in alone]
    for x, y in zip(together, alone, strict=True):
        assert [w.confidence for w in x.words] == pytest.approx(
            [w.confidence for w in y.words], rel=1e-4
        )  # padding changes float sums in the last digits
