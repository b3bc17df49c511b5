"""CTranslate2 (faster-whisper) Whisper directories -> Hugging Face Whisper directories.

faster-whisper users hold Whisper as a CTranslate2 directory (``model.bin``, ``config.json``,
``tokenizer.json``), and that is also how some packages ship Whisper weights. transformers cannot
read that format, so this module reads ``model.bin`` itself and renames its variables one-to-one
to ``WhisperForConditionalGeneration`` names. No ctranslate2 install is needed.

Format facts (CTranslate2 ``src/models/model.cc``, ``python/ctranslate2/specs/model_spec.py``):
little-endian; ``u32`` binary version, spec name, ``u32`` spec revision, ``u32`` variable count;
per variable its name, ``u8`` rank, ``u32`` dims, ``u8`` dtype id, ``u32`` byte count, raw bytes;
then (version >= 3) ``u32`` alias count and (alias, target) name pairs. Strings are a ``u16``
length that counts a trailing NUL. Variable names follow ``specs/whisper_spec.py`` and
``specs/transformer_spec.py`` (``encoder/layer_0/self_attention/linear_0/weight`` ...).
"""

from __future__ import annotations

import json
import logging
import math
import re
import shutil
import struct
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import (
    AddedToken,
    GenerationConfig,
    WhisperConfig,
    WhisperFeatureExtractor,
    WhisperForConditionalGeneration,
    WhisperTokenizer,
)

logger = logging.getLogger("voxlm")

MODEL_FILE = "model.bin"
# Dtype ids in the order of CTranslate2's DataType enum (include/ctranslate2/types.h).
_CT2_DTYPES = (torch.float32, torch.int8, torch.int16, torch.int32, torch.float16, torch.bfloat16)
_MAX_BINARY_VERSION = 6  # the newest layout this reader was checked against


@dataclass(frozen=True)
class CT2Model:
    """The variables of one CTranslate2 ``model.bin``, aliases resolved, quantised weights kept."""

    spec: str
    revision: int
    variables: dict[str, torch.Tensor]


def model_files(directory: str | Path) -> list[Path]:
    """The ``model.bin`` of a CTranslate2 directory, or its parts ``model.bin.part1 .. partN``.

    Some packages split a large ``model.bin`` in pieces to stay under upload limits; the pieces
    concatenated in order are the original file.
    """
    directory = Path(directory)
    if (directory / MODEL_FILE).is_file():
        return [directory / MODEL_FILE]
    parts = sorted(directory.glob(MODEL_FILE + ".part*"), key=_part_number)
    if not parts:
        raise ValueError(f"{directory}: no {MODEL_FILE} (nor {MODEL_FILE}.part1, ...) found")
    numbers = [_part_number(p) for p in parts]
    if numbers != list(range(1, len(parts) + 1)):
        raise ValueError(f"{directory}: {MODEL_FILE} parts are not numbered 1..N: {numbers}")
    return parts


def _part_number(path: Path) -> int:
    suffix = path.name.rsplit(".part", 1)[-1]
    return int(suffix) if suffix.isdigit() else -1


def is_ctranslate2_dir(path: str | Path) -> bool:
    """True for a directory holding a CTranslate2 model (``model.bin`` or its parts)."""
    path = Path(path)
    return path.is_dir() and (
        (path / MODEL_FILE).is_file() or (path / (MODEL_FILE + ".part1")).is_file()
    )


class _Reader:
    """Little-endian reads over one in-memory buffer, naming the file when it runs short."""

    def __init__(self, buffer: bytearray, name: str) -> None:
        self.buffer, self.name, self.offset = buffer, name, 0

    def take(self, size: int) -> int:
        """Advance past ``size`` bytes and return where they start."""
        start = self.offset
        if start + size > len(self.buffer):
            raise ValueError(
                f"{self.name}: file is incomplete: needed {size} bytes at offset {start}, "
                f"the file has {len(self.buffer)}"
            )
        self.offset += size
        return start

    def unpack(self, fmt: str) -> tuple:
        return struct.unpack_from("<" + fmt, self.buffer, self.take(struct.calcsize("<" + fmt)))

    def string(self) -> str:
        (length,) = self.unpack("H")
        start = self.take(length)
        return bytes(self.buffer[start : start + length]).rstrip(b"\0").decode("utf-8")

    def tensor(self, shape: tuple[int, ...], dtype: torch.dtype, size: int) -> torch.Tensor:
        start = self.take(size)
        count = size // dtype.itemsize
        if count != (expected := math.prod(shape)):
            raise ValueError(
                f"{self.name}: variable of shape {shape} holds {count} values, expected {expected}"
            )
        # A view into the writable buffer: no copy of the (large) weights.
        return torch.frombuffer(self.buffer, dtype=dtype, count=count, offset=start).view(shape)


def read_ctranslate2(files: str | Path | Sequence[str | Path]) -> CT2Model:
    """Read a CTranslate2 ``model.bin`` (or its parts, concatenated in the order given)."""
    paths = [Path(files)] if isinstance(files, (str, Path)) else [Path(f) for f in files]
    name = " + ".join(str(p) for p in paths)
    buffer = bytearray(sum(p.stat().st_size for p in paths))
    offset = 0
    for path in paths:
        with path.open("rb") as handle:
            offset += handle.readinto(memoryview(buffer)[offset:])
    if paths[-1].name.startswith(MODEL_FILE + ".part"):
        name += f" (are there parts after {paths[-1].name}?)"
    reader = _Reader(buffer, name)
    (version,) = reader.unpack("I")
    if not 2 <= version <= _MAX_BINARY_VERSION:
        raise ValueError(
            f"{name}: CTranslate2 binary version {version}, expected 2..{_MAX_BINARY_VERSION}"
        )
    spec = reader.string()
    (revision,) = reader.unpack("I")
    (count,) = reader.unpack("I")
    variables: dict[str, torch.Tensor] = {}
    for _ in range(count):
        var_name = reader.string()
        (rank,) = reader.unpack("B")
        shape = reader.unpack("I" * rank)
        if version >= 4:
            type_id, size = reader.unpack("BI")
        else:  # older files store the item width and the item count
            width, items = reader.unpack("BI")
            type_id, size = {4: 0, 2: 2, 1: 1}.get(width, 255), width * items
        if type_id >= len(_CT2_DTYPES):
            raise ValueError(f"{name}: variable {var_name} has unknown dtype id {type_id}")
        variables[var_name] = reader.tensor(shape, _CT2_DTYPES[type_id], size)
    if version >= 3:
        (aliases,) = reader.unpack("I")
        for _ in range(aliases):
            alias, target = reader.string(), reader.string()
            if target in variables:
                variables[alias] = variables[target]
    if reader.offset != len(buffer):
        raise ValueError(f"{name}: {len(buffer) - reader.offset} bytes left after the last entry")
    return CT2Model(spec=spec, revision=revision, variables=variables)


def dequantize(variables: dict[str, torch.Tensor], dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """Float copies of every tensor variable; int8/int16 weights divided by their ``_scale``.

    CTranslate2 quantises a weight ``w`` to ``round(w * scale)`` with one scale per output row
    (int8) or per layer (int16), stored beside it as ``<name>_scale``.
    """
    out = {}
    for name, value in variables.items():
        if name.endswith("_scale") or value.dim() == 0:
            continue
        if not value.is_floating_point():
            scale = variables.get(name + "_scale")
            if scale is None:
                raise ValueError(f"quantised variable {name} has no {name}_scale")
            scale = scale.float().reshape(-1, *([1] * (value.dim() - 1))) if scale.dim() else scale
            value = value.float() / scale.float()
        out[name] = value.to(dtype)
    return out


# ---- Whisper names -------------------------------------------------------------------------------
_PARAMS = {"gamma": "weight", "beta": "bias", "weight": "weight", "bias": "bias"}
_WHOLE = {
    "encoder/position_encodings/encodings": "model.encoder.embed_positions.weight",
    "decoder/position_encodings/encodings": "model.decoder.embed_positions.weight",
    "decoder/embeddings/weight": "model.decoder.embed_tokens.weight",
}
_MODULES = {
    "encoder/conv1": "model.encoder.conv1",
    "encoder/conv2": "model.encoder.conv2",
    "encoder/layer_norm": "model.encoder.layer_norm",
    "decoder/layer_norm": "model.decoder.layer_norm",
}
_LAYER = re.compile(r"(encoder|decoder)/layer_(\d+)/(self_attention|attention|ffn)/(\w+)/(\w+)")
# (block, part) -> the transformers modules inside one layer. Several names mean one fused tensor,
# split in equal pieces along the output dimension (query, key, value order).
_LAYER_PARTS = {
    ("self_attention", "layer_norm"): ("self_attn_layer_norm",),
    ("self_attention", "linear_0"): ("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"),
    ("self_attention", "linear_1"): ("self_attn.out_proj",),
    ("attention", "layer_norm"): ("encoder_attn_layer_norm",),
    ("attention", "linear_0"): ("encoder_attn.q_proj",),
    ("attention", "linear_1"): ("encoder_attn.k_proj", "encoder_attn.v_proj"),
    ("attention", "linear_2"): ("encoder_attn.out_proj",),
    ("ffn", "layer_norm"): ("final_layer_norm",),
    ("ffn", "linear_0"): ("fc1",),
    ("ffn", "linear_1"): ("fc2",),
}


def whisper_state_dict(variables: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """CTranslate2 Whisper variables (float) -> ``WhisperForConditionalGeneration`` tensors.

    The output projection is tied to the token embeddings in both formats, so CTranslate2's
    ``decoder/projection/weight`` alias has no tensor of its own here.
    """
    state: dict[str, torch.Tensor] = {}
    unknown = []
    for name, value in variables.items():
        if name == "decoder/projection/weight":
            if not torch.equal(value, variables["decoder/embeddings/weight"]):
                raise ValueError("decoder/projection/weight differs from the token embeddings")
            continue
        if name in _WHOLE:
            state[_WHOLE[name]] = value
            continue
        prefix, param = name.rsplit("/", 1)
        match = _LAYER.fullmatch(name)
        if prefix in _MODULES and param in _PARAMS:
            state[f"{_MODULES[prefix]}.{_PARAMS[param]}"] = value
        elif match and (match[3], match[4]) in _LAYER_PARTS and param in _PARAMS:
            modules = _LAYER_PARTS[match[3], match[4]]
            layer = f"model.{match[1]}.layers.{match[2]}"
            for module, piece in zip(modules, value.chunk(len(modules)), strict=True):
                # transformers' Whisper key projections have no bias: a key bias adds the same
                # q.b to every score of a query, which softmax cancels, so dropping it is exact.
                if not (module.endswith("k_proj") and param == "bias"):
                    state[f"{layer}.{module}.{_PARAMS[param]}"] = piece.contiguous()
        else:
            unknown.append(name)
    if unknown:
        raise ValueError(f"CTranslate2 variables with no Whisper counterpart: {sorted(unknown)}")
    return state


def special_tokens(tokenizer_file: Path) -> dict[str, int]:
    """``<|...|>`` token -> id, from the added tokens of a ``tokenizer.json``."""
    added = _read_json(tokenizer_file).get("added_tokens", [])
    return {token["content"]: token["id"] for token in added}


def whisper_config(
    variables: dict[str, torch.Tensor], special: dict[str, int], ct2_config: dict | None = None
) -> WhisperConfig:
    """A ``WhisperConfig`` with the dimensions read off the variables' shapes."""
    for needed in ("encoder/conv1/weight", "decoder/embeddings/weight", "encoder/num_heads"):
        if needed not in variables:
            raise ValueError(f"not a CTranslate2 Whisper model: no variable {needed}")
    layers = {
        side: 1 + max(int(m[2]) for n in variables if (m := _LAYER.fullmatch(n)) and m[1] == side)
        for side in ("encoder", "decoder")
    }
    embeddings = variables["decoder/embeddings/weight"]
    # Without a tokenizer.json, openai/whisper's ids: <|endoftext|> is 50257 in the multilingual
    # vocabulary (51,865 and up) and 50256 in the English one; <|startoftranscript|> follows it.
    end = special.get("<|endoftext|>", 50257 if embeddings.shape[0] >= 51865 else 50256)
    start = special.get("<|startoftranscript|>", end + 1)
    ids: dict[str, int | None] = {"pad_token_id": end, "bos_token_id": end, "eos_token_id": end}
    ids["decoder_start_token_id"] = start
    begin_suppress: list[int] | None = [220, end]  # a space, or the end, as the first token
    if start >= embeddings.shape[0]:  # not Whisper's own vocabulary: no ids to guess
        ids, begin_suppress = {"pad_token_id": None}, None
    ct2_config = ct2_config or {}
    return WhisperConfig(
        vocab_size=embeddings.shape[0],
        num_mel_bins=variables["encoder/conv1/weight"].shape[1],
        d_model=embeddings.shape[1],
        encoder_layers=layers["encoder"],
        decoder_layers=layers["decoder"],
        encoder_attention_heads=int(variables["encoder/num_heads"]),
        decoder_attention_heads=int(variables["decoder/num_heads"]),
        encoder_ffn_dim=variables["encoder/layer_0/ffn/linear_0/weight"].shape[0],
        decoder_ffn_dim=variables["decoder/layer_0/ffn/linear_0/weight"].shape[0],
        max_source_positions=variables["encoder/position_encodings/encodings"].shape[0],
        max_target_positions=variables["decoder/position_encodings/encodings"].shape[0],
        suppress_tokens=list(ct2_config.get("suppress_ids", [])),
        begin_suppress_tokens=ct2_config.get("suppress_ids_begin", begin_suppress),
        **ids,
    )


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(f"{path}: cannot read JSON ({error})") from None


def read_whisper(
    src: str | Path, files: Sequence[Path] | None = None, dtype: torch.dtype = torch.float32
) -> tuple[WhisperConfig, dict[str, torch.Tensor]]:
    """A CTranslate2 Whisper directory -> (``WhisperConfig``, transformers state dict)."""
    src = Path(src)
    model = read_ctranslate2(files or model_files(src))
    if model.spec != "WhisperSpec":
        raise ValueError(f"{src}: holds a CTranslate2 {model.spec!r}, expected 'WhisperSpec'")
    tokenizer_file, config_file = src / "tokenizer.json", src / "config.json"
    special = special_tokens(tokenizer_file) if tokenizer_file.is_file() else {}
    ct2_config = _read_json(config_file) if config_file.is_file() else {}
    config = whisper_config(model.variables, special, ct2_config)
    state = whisper_state_dict(dequantize(model.variables, dtype))
    _check_names(config, state, src)
    return config, state


def _check_names(config: WhisperConfig, state: dict[str, torch.Tensor], src: Path) -> None:
    """The converted tensors must be exactly the model's, shape for shape (built on meta)."""
    with torch.device("meta"):
        expected = WhisperForConditionalGeneration(config).state_dict()
    expected.pop("proj_out.weight")  # tied to the token embeddings
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(n for n in set(state) & set(expected) if state[n].shape != expected[n].shape)
    if missing or unexpected or wrong:
        raise ValueError(
            f"{src}: converted Whisper tensors do not match the model: missing {missing}, "
            f"unexpected {unexpected}, wrong shape {wrong}"
        )


# ---- Hugging Face directory ----------------------------------------------------------------------
def whisper_tokenizer(src: Path, vocab_size: int) -> WhisperTokenizer:
    """The directory's ``tokenizer.json`` as a Whisper tokenizer, timestamp tokens added.

    faster-whisper's ``tokenizer.json`` stops at ``<|notimestamps|>``; the model's vocabulary goes
    on with 1,501 timestamp tokens ``<|0.00|>`` .. ``<|30.00|>`` (20 ms apart), which transformers'
    Whisper tokenizers carry as added tokens, so they are added here too.
    """
    tokens = sorted(special_tokens(src / "tokenizer.json").items(), key=lambda item: item[1])
    end = "<|endoftext|>"
    tokenizer = WhisperTokenizer.from_pretrained(
        src,
        pad_token=end,
        extra_special_tokens=[token for token, _ in tokens if token != end],
        model_max_length=448,
    )
    missing = vocab_size - len(tokenizer)
    timestamps = [
        AddedToken(f"<|{i * 0.02:.2f}|>", lstrip=False, rstrip=False, normalized=False)
        for i in range(missing)
    ]
    tokenizer.add_tokens(timestamps)
    if len(tokenizer) != vocab_size:
        raise ValueError(
            f"{src}/tokenizer.json: {len(tokenizer)} tokens, the model has {vocab_size} embeddings"
        )
    return tokenizer


def whisper_generation_config(
    config: WhisperConfig, ct2_config: dict, special: dict[str, int]
) -> GenerationConfig:
    """Whisper's generation settings: prompt tokens, suppressed tokens, alignment heads.

    The alignment heads (the cross-attention heads that track time, for word timings) and the
    suppressed tokens come from the CTranslate2 ``config.json``; the rest follow from the
    vocabulary as in openai/whisper, where a vocabulary of 51,865 or more is multilingual.
    """
    multilingual = config.vocab_size >= 51865
    id_to_token = {i: t for t, i in special.items()}
    settings = {
        "decoder_start_token_id": config.decoder_start_token_id,
        "bos_token_id": config.bos_token_id,
        "eos_token_id": config.eos_token_id,
        "pad_token_id": config.pad_token_id,
        "max_length": config.max_target_positions,
        "no_timestamps_token_id": special["<|notimestamps|>"],
        "prev_sot_token_id": special.get("<|startofprev|>"),
        "max_initial_timestamp_index": 50,  # openai/whisper: a first timestamp of at most 1 s
        "return_timestamps": False,
        "is_multilingual": multilingual,
        "alignment_heads": [list(head) for head in ct2_config.get("alignment_heads", [])],
        "suppress_tokens": list(ct2_config.get("suppress_ids", [])),
        "begin_suppress_tokens": list(ct2_config.get("suppress_ids_begin", [])),
    }
    if multilingual:
        settings["lang_to_id"] = {id_to_token[i]: i for i in ct2_config.get("lang_ids", [])}
        settings["task_to_id"] = {
            "transcribe": special["<|transcribe|>"],
            "translate": special["<|translate|>"],
        }
    return GenerationConfig(**settings)


def convert_whisper(
    src: str | Path,
    dst: str | Path,
    files: Sequence[Path] | None = None,
    dtype: torch.dtype = torch.float32,
) -> Path:
    """Write a Hugging Face Whisper directory at ``dst`` from a CTranslate2 directory ``src``.

    ``files`` overrides where ``model.bin`` is read from (parts kept in other folders). The
    directory is written beside ``dst`` and renamed into place, so a reader never sees half of it.
    """
    from safetensors.torch import save_file

    src, dst = Path(src), Path(dst)
    if dst.exists():
        raise ValueError(f"{dst}: already exists; remove it or choose another destination")
    config, state = read_whisper(src, files, dtype)
    special = special_tokens(src / "tokenizer.json")
    ct2_config = _read_json(src / "config.json") if (src / "config.json").is_file() else {}
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{dst.name}.", dir=dst.parent))
    try:
        config.save_pretrained(tmp)
        save_file(state, tmp / "model.safetensors", metadata={"format": "pt"})
        whisper_generation_config(config, ct2_config, special).save_pretrained(tmp)
        # Saved apart (preprocessor_config.json + tokenizer files): WhisperProcessor and the
        # older loaders that read only one of them both find what they need.
        WhisperFeatureExtractor(feature_size=config.num_mel_bins).save_pretrained(tmp)
        whisper_tokenizer(src, config.vocab_size).save_pretrained(tmp)
        tmp.rename(dst)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    logger.info("converted %s -> %s (%d tensors)", src, dst, len(state))
    return dst
