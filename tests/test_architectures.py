"""The published architectures: every backbone at its published size, every variant built at
random at its real shape (on the meta device, so a 14B model costs no memory), and one small
variant built for real and run end to end."""

import dataclasses
from pathlib import Path

import pytest
import torch
from conftest import check_transcript, tone
from transformers import AutoConfig, AutoModel, AutoModelForCausalLM

from voxlm import VoxLM
from voxlm.architectures import (
    aliases,
    architecture,
    architectures,
    count_parameters,
    random_weight_config,
    size_table,
    variant_size,
)
from voxlm.config import get_config, variant_names
from voxlm.decoding import DecodingOptions
from voxlm.encoder import AudioEncoder
from voxlm.llm import BYTE_EOS, byte_tokenizer

TOLERANCE = 0.02  # published counts are rounded to 3 significant digits
CONFIGS_DOC = Path(__file__).parents[1] / "docs" / "CONFIGS.md"


def meta_backbone(name: str, whole: bool) -> torch.nn.Module:
    """The backbone on the meta device: the whole published model, or the part VoxLM builds."""
    arch = architecture(name)
    values = arch.transformers_config()
    config = AutoConfig.for_model(values.pop("model_type"), **values)
    with torch.device("meta"):
        if arch.kind == "llm":
            return AutoModelForCausalLM.from_config(config)
        return AutoModel.from_config(config) if whole else AudioEncoder.from_config(config)


@pytest.mark.parametrize("name", sorted(architectures()))
def test_every_backbone_has_its_published_size(name):
    arch = architecture(name)
    whole = count_parameters(meta_backbone(name, whole=True))
    assert whole == pytest.approx(arch.published_params.count, rel=TOLERANCE), name
    built = count_parameters(meta_backbone(name, whole=False))
    assert built == pytest.approx(arch.built_params.count, rel=TOLERANCE), name
    assert arch.published_params.basis == "published" and arch.config_source.endswith(
        f"{name}/blob/main/config.json"
    )


@pytest.mark.parametrize("name", sorted(architectures()))
def test_transformers_reads_every_published_number(name):
    """Numbers that change no parameter count (RoPE, norm epsilon, context) arrive too."""
    values = architecture(name).transformers_config()
    config = AutoConfig.for_model(values.pop("model_type"), **values)
    rope = {"rope_theta": values.pop("rope_theta", None), **values.pop("rope_scaling", {})}
    assert {key: getattr(config, key) for key in values} == values
    if rope["rope_theta"] is not None:
        assert {key: config.rope_parameters[key] for key in rope} == rope


@pytest.fixture(scope="module")
def sizes():
    return {name: variant_size(name) for name in variant_names()}


def test_every_variant_builds_at_random_at_its_published_shape(sizes):
    named = set()
    for name, size in sizes.items():
        model = get_config(name).model
        if model.audio_encoder_config is None:
            named.add(aliases().get(model.audio_encoder, model.audio_encoder))
            assert size.encoder_params == architecture(model.audio_encoder).built_params.count
        if model.llm_config is None:
            named.add(model.llm_model)
            expected = architecture(model.llm_model).built_params.count
            assert size.llm_params == pytest.approx(expected, rel=TOLERANCE), name
        assert size.added_params > 0, name  # projector, aligner (and LoRA, CTC head)
    assert named <= set(architectures())


def test_the_configs_doc_holds_the_size_table(sizes):
    assert size_table(sizes.values()) in CONFIGS_DOC.read_text()


def test_a_model_config_builds_at_random_too():
    config = dataclasses.replace(get_config("voxlm-2b").model, llm_model="microsoft/phi-4")
    with torch.device("meta"):
        model = VoxLM.from_config(config, random_weights=True)
    assert model.config.tokenizer == "byte" and len(model.tokenizer) == 100352
    assert model.llm.get_input_embeddings().num_embeddings == 100352
    assert model.encoder.hidden_size == 768  # whisper-small, from voxlm-2b


def test_a_gemma_llm_builds_at_random_with_lora():
    config = dataclasses.replace(get_config("voxlm-2b").model, llm_model="google/gemma-2-2b")
    with torch.device("meta"):
        model = VoxLM.from_config(config, random_weights=True)
    assert model.llm.get_input_embeddings().num_embeddings == len(model.tokenizer) == 256000
    assert any("lora_" in name for name, _ in model.llm.named_parameters())


def test_unknown_or_misplaced_backbones_are_refused():
    base = get_config("voxlm-2b").model
    with pytest.raises(ValueError, match="no published architecture for 'my/llm'.*llm_config"):
        random_weight_config(dataclasses.replace(base, llm_model="my/llm"))
    with pytest.raises(ValueError, match="kind 'llm', expected 'audio_encoder'"):
        random_weight_config(dataclasses.replace(base, audio_encoder="Qwen/Qwen2-0.5B"))
    tiny = get_config("voxlm-tiny").model
    assert random_weight_config(tiny) == tiny  # already random: kept as it is


def test_the_byte_tokenizer_covers_any_text_and_every_id():
    tokenizer = byte_tokenizer(1000)
    text = "héllo wörld, 日本語!"
    assert tokenizer.decode(tokenizer(text).input_ids) == text
    assert len(tokenizer) == 1000 and tokenizer.eos_token == tokenizer.pad_token == BYTE_EOS
    assert tokenizer.all_special_ids == [tokenizer.eos_token_id]
    assert tokenizer.decode([999]) == "<|filler_999|>"
    with pytest.raises(ValueError, match="below the byte tokenizer's 257"):
        byte_tokenizer(100)


def test_a_variant_at_real_shape_trains_and_transcribes_with_random_weights():
    """voxlm-smol is the smallest variant at its real shape: 159M parameters, 0.6 GB."""
    torch.manual_seed(0)
    model = VoxLM.from_config("voxlm-smol", random_weights=True)
    assert count_parameters(model.encoder) == architecture("openai/whisper-base").built_params.count
    assert len(model.tokenizer) == model.llm.get_input_embeddings().num_embeddings == 49152
    batch = {
        "audio": torch.from_numpy(tone(1.0))[None],
        "audio_lengths": torch.tensor([16000]),
        "texts": ["hello world"],
    }
    with torch.no_grad():
        loss = model(batch).loss
    assert torch.isfinite(loss)
    # A fixed budget: 2 tokens per second of audio, plus the floor of 8.
    options = DecodingOptions(
        min_confidence=0.0, no_speech_check=False, max_tokens_per_second=2.0, vad="energy"
    )
    result = model.eval().transcribe(tone(1.0), sample_rate=16000, options=options)
    assert result.audio_duration == pytest.approx(1.0)
    check_transcript(result)
