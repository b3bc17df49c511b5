import dataclasses

import numpy as np
import pytest
import torch
from conftest import TINY_ENCODERS, TINY_LLMS, check_transcript, tiny_config, tone
from transformers import WhisperConfig

from voxlm import QwenSTT, VoxLM
from voxlm.decoding import DecodingOptions, generate
from voxlm.encoder import AudioEncoder
from voxlm.results import WordTiming

# Random weights: keep every rule that could silence the output off, so words come out.
OPEN = DecodingOptions(min_confidence=0.0, no_speech_check=False, max_tokens_per_second=10.0)


def batch(texts=("the cat sat", "hello")):
    lengths = torch.tensor([16000, 11000])
    audio = torch.stack([torch.from_numpy(tone(1.0, seed=i)) for i in range(2)])
    audio[1, 11000:] = 0
    words = [
        [
            WordTiming("the", 0.1, 0.3),
            WordTiming("cat", 0.3, 0.6),
            WordTiming("sat", 0.6, 0.9),
        ],
        None,
    ]
    return {
        "audio": audio,
        "audio_lengths": lengths,
        "texts": list(texts),
        "words": words,
        "ids": ["a", "b"],
    }


@pytest.mark.parametrize("llm", TINY_LLMS)
@pytest.mark.parametrize("encoder", TINY_ENCODERS)
def test_every_family_trains_and_transcribes(encoder, llm):
    model = VoxLM.from_config(tiny_config(encoder, llm, use_lora=llm != "qwen2"))
    out = model(batch(), ce_weight=1.0, ctc_weight=0.5, alignment_weight=0.2)
    assert torch.isfinite(out.loss) and set(out.losses) == {"ce", "ctc", "alignment"}
    out.loss.backward()
    model.eval()
    result = model.transcribe(tone(1.2), sample_rate=16000, options=OPEN)
    assert result.words, result
    check_transcript(result)


def test_lora_trains_adapters_only():
    model = VoxLM.from_config(tiny_config(use_lora=True, lora_target_modules=("q_proj", "v_proj")))
    llm_trainable = [n for n, p in model.llm.named_parameters() if p.requires_grad]
    assert llm_trainable and all("lora_" in n for n in llm_trainable)


def test_whisper_short_clip_matches_full_window_for_valid_frames():
    """Slicing the position table must give what a 30 s window gives on the clip's frames."""
    values = {k: v for k, v in TINY_ENCODERS["whisper"].items() if k != "model_type"}
    encoder = AudioEncoder.from_config(WhisperConfig(**values)).eval()
    clip = torch.from_numpy(tone(2.0))[None]
    short, mask = encoder(clip, torch.tensor([clip.shape[1]]))
    assert short.shape[1] == 100 and mask.all()  # 2 s at 50 frames/s
    padded = torch.nn.functional.pad(clip, (0, 3 * 16000))
    long, long_mask = encoder(padded, torch.tensor([clip.shape[1]]))
    assert long_mask.sum() == 100
    # The last frame's convolution reaches past the clip end (padding vs. the next samples).
    torch.testing.assert_close(long[:, :99], short[:, :99], atol=1e-4, rtol=1e-4)


def test_ctc_token_index_counts_each_emission_once():
    """Frames (4 per audio embedding): _ a a _ | b _ c c | _ _ d _ -> a, b, c, d emitted at
    frames 1, 4, 6, 10; before the middle frames 2, 6, 10 come 1, 2 and 3 tokens."""
    model = VoxLM.from_config(tiny_config(ctc_positions=True))
    frames = [None, 0, 0, None, 1, None, 2, 2, None, None, 3, None]
    probs = torch.zeros(1, len(frames), len(model.tokenizer))  # non-blank posteriors
    for t, token in enumerate(frames):
        if token is not None:
            probs[0, t, token] = 1.0
    assert model._ctc_token_index(probs, 3).tolist() == [[1, 2, 3]]


def test_ctc_positions_meet_audio_and_text_at_the_same_position():
    """Each audio embedding takes the position of the token predicting the one it holds, text
    counts on from the prompt, and generation continues the teacher-forced layout."""
    model = VoxLM.from_config(tiny_config(ctc_positions=True)).eval()
    with torch.no_grad():
        audio = model.encode(torch.from_numpy(tone(1.0))[None], torch.tensor([16000]))
        prompt = model.prompt()
        seq = model.assemble(audio, [prompt], [[5, 6, 7]])
    p, q, n = len(prompt.prefix), len(prompt.suffix), audio.embeds.shape[1]
    positions = seq.position_ids[0].tolist()
    assert positions[:p] == list(range(p))
    heard = (audio.token_index[0] + p + q - 1).clamp(min=0).tolist()
    assert positions[p : p + n] == heard
    assert positions[p + n :] == list(range(p, p + q + 3))
    assert int(seq.text_position[0]) == p + q
    # Generation gives its tokens the probabilities of a teacher-forced pass over them (the
    # LLM alone: joint CTC decoding would change the probabilities).
    with torch.no_grad():
        decoded = generate(model, audio, [prompt], [20], dataclasses.replace(OPEN, ctc_weight=0.0))[
            0
        ]
        assert decoded.tokens
        seq = model.assemble(audio, [prompt], [decoded.tokens])
        logits = model.llm(
            inputs_embeds=seq.embeds,
            attention_mask=seq.attention_mask,
            position_ids=seq.position_ids,
        ).logits[0, -len(decoded.tokens) - 1 : -1]
    forced = logits.softmax(-1).gather(-1, torch.tensor(decoded.tokens)[:, None])[:, 0]
    np.testing.assert_allclose(forced.numpy(), decoded.probs, atol=1e-4)


def test_save_load_identical_output(tmp_path):
    model = VoxLM.from_config(tiny_config(use_lora=True)).eval()
    before = model.transcribe(tone(1.0), sample_rate=16000, options=OPEN)
    model.save_pretrained(tmp_path / "m")
    loaded = QwenSTT.from_pretrained(tmp_path / "m")
    after = loaded.transcribe(tone(1.0), sample_rate=16000, options=OPEN)
    assert before == after


def test_seed_style_checkpoint_loads(tmp_path):
    model = VoxLM.from_config(tiny_config()).eval()
    path = tmp_path / "best.pt"
    config = dataclasses.asdict(model.config)
    torch.save(
        {"model_state_dict": model.state_dict(), "config": {"model": config}, "epoch": 3}, path
    )
    loaded = VoxLM.from_pretrained(path)
    assert loaded.transcribe(tone(1.0), sample_rate=16000, options=OPEN) == model.transcribe(
        tone(1.0), sample_rate=16000, options=OPEN
    )


def test_mismatched_weights_are_named(tmp_path):
    model = VoxLM.from_config(tiny_config()).eval()
    state = model.state_dict()
    state.pop("projector.down.weight")
    state["projector.extra"] = torch.zeros(1)
    path = tmp_path / "best.pt"
    torch.save({"model_state_dict": state, "config": dataclasses.asdict(model.config)}, path)
    with pytest.raises(
        ValueError, match=r"1 missing \(e.g. \['projector.down.weight'\]\).*projector.extra"
    ):
        VoxLM.from_pretrained(path)


def test_bad_model_names(tmp_path):
    with pytest.raises(ValueError, match="neither a model directory"):
        VoxLM.from_pretrained("no-such-model")
    with pytest.raises(ValueError, match="not a VoxLM model directory"):
        VoxLM.from_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError):
        VoxLM.from_pretrained(tmp_path / "missing.pt")


def test_instruction_changes_the_prompt():
    model = VoxLM.from_config(tiny_config())
    assert model.prompt("spell it out").prefix != model.prompt(None).prefix


def test_span_ctc_spans_are_each_timed_words_frames_and_tokens(monkeypatch):
    model = VoxLM.from_config(tiny_config())
    seen = []
    monkeypatch.setattr(
        "voxlm.model.span_ctc_loss", lambda log_probs, spans: seen.append(spans) or log_probs.sum()
    )
    data = batch(("the cat sat", "hello"))
    out = model(data, ce_weight=0.0, span_ctc_weight=1.0)
    assert "span_ctc" in out.losses
    (spans,) = seen
    # Frames of 20 ms, from BOUNDARY_FRAMES (2) before each word to 2 after; each word's
    # tokens with the space before it, and no EOS.
    assert [(row, start, end) for row, start, end, _ in spans] == [
        (0, 3, 17),
        (0, 13, 32),
        (0, 28, 47),
    ]
    ids = model.tokenizer(" the cat sat", add_special_tokens=False).input_ids
    assert [tokens for *_, tokens in spans] == [ids[0:4], ids[4:8], ids[8:12]]
    data["words"][0] = data["words"][0][:2]  # timings that do not match the text: left out
    seen.clear()
    model(data, ce_weight=0.0, span_ctc_weight=1.0)
    assert seen == [[]]


@pytest.mark.parametrize("beam_size", [1, 3])
@pytest.mark.parametrize("llm", TINY_LLMS)
def test_the_aligner_pass_on_the_decoding_cache_equals_the_whole_pass(llm, beam_size):
    """Only the transcript runs through the LLM after decoding, on the prefill's cache cut back:
    the same attention as a teacher-forced pass over the whole sequence, for every row of a
    batch (one row finishes first, so its beam slots stop being reordered)."""
    from voxlm.decoding.search import BeamSearch

    model = VoxLM.from_config(tiny_config(llm=llm)).eval()
    b = batch()
    with torch.no_grad():
        features = model.encode(b["audio"], b["audio_lengths"])
    prompts = [model.prompt()] * 2
    options = dataclasses.replace(OPEN, beam_size=beam_size, ignore_eos=True, max_repeats=0)
    search = BeamSearch(model, features, prompts, options)
    with torch.no_grad():
        decoded = search.run([9, 4])
    tokens = [d.tokens for d in decoded]
    assert [len(t) for t in tokens] == [9, 4]
    prefix = search.prefix()
    assert prefix is not None
    cached = model.aligner_attention(features, prompts, tokens, prefix)
    whole = model.aligner_attention(features, prompts, tokens)
    for a, w in zip(cached, whole, strict=True):
        torch.testing.assert_close(a, w, atol=1e-4, rtol=1e-4)
