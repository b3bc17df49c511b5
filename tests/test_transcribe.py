"""Transcription: windows, batches, the speech check, token budgets and result assembly."""

import numpy as np
import pytest
import torch
from conftest import check_transcript, tiny_config, tone

from voxlm.decoding import STOP_MAX_TOKENS, DecodingOptions, generate
from voxlm.model import VoxLM

# Random weights: keep every rule that could silence the output off, so words come out.
OPEN = DecodingOptions(min_confidence=0.0, no_speech_check=False, max_tokens_per_second=10.0)


@pytest.mark.parametrize("ctc_positions", [False, True])
def test_batched_transcription_equals_single(ctc_positions):
    model = VoxLM.from_config(tiny_config(ctc_positions=ctc_positions)).eval()
    clips = [tone(1.0, seed=1), tone(1.6, seed=2)]
    together = model.transcribe(clips, sample_rate=16000, options=OPEN)
    alone = [model.transcribe(c, sample_rate=16000, options=OPEN) for c in clips]
    for a, b in zip(together, alone, strict=True):
        assert a.text == b.text
        np.testing.assert_allclose(
            [w.confidence for w in a.words], [w.confidence for w in b.words], atol=1e-4
        )


def test_long_audio_is_windowed_with_offsets():
    model = VoxLM.from_config(tiny_config()).eval()
    model.encoder.max_seconds = 2.0  # a short window, so a 5 s input needs three windows
    result = model.transcribe(tone(5.0), sample_rate=16000, options=OPEN)
    check_transcript(result)
    assert result.audio_duration == pytest.approx(5.0)
    assert max(w.end for w in result.words) > 2.0  # words from later windows carry the offset


def test_silence_returns_nothing():
    model = VoxLM.from_config(tiny_config()).eval()
    result = model.transcribe(np.zeros(16000, dtype=np.float32), sample_rate=16000)
    assert result.text == "" and result.words == () and result.stop_reason == "no_speech"


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


def test_max_tokens_per_second_zero_switches_the_budget_off():
    model = VoxLM.from_config(tiny_config()).eval()
    eos = model.tokenizer.eos_token_id
    model.llm.get_output_embeddings().register_forward_hook(
        lambda module, args, out: out.index_fill(-1, torch.tensor([eos]), -1e9)
    )
    model.llm.config.max_position_embeddings = 40  # the budget left when the rule is off
    options = DecodingOptions(
        min_confidence=0, max_repeats=0, no_speech_check=False, max_tokens_per_second=0
    )
    result = model.transcribe(tone(0.5), sample_rate=16000, options=options)
    tokens = model.tokenizer(result.text, add_special_tokens=False).input_ids
    # 0.5 s at any per-second rate would allow 8 + a few tokens; with the rule off, 40.
    assert len(tokens) >= 38


def test_transcript_invariants_for_a_batch_of_clips():
    model = VoxLM.from_config(tiny_config()).eval()
    results = model.transcribe(
        [tone(0.7, seed=3), tone(1.3, seed=4)], sample_rate=16000, options=OPEN
    )
    assert len(results) == 2
    for result in results:
        check_transcript(result)
