"""The language model half: any decoder-only causal LM, its tokenizer, LoRA, and the prompt."""

from __future__ import annotations

import logging
import string
from dataclasses import dataclass
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers
from torch import nn
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
    PreTrainedTokenizerFast,
)

from voxlm.config import ModelConfig

logger = logging.getLogger("voxlm")

AUDIO_PLACEHOLDER = "<|voxlm_audio|>"
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
CHAR_SPECIAL_TOKENS = ("<pad>", "</s>", "<unk>")
CHAR_ALPHABET = "▁" + string.ascii_lowercase + string.digits + "'.,?!-:;\""
BYTE_EOS = "<|endoftext|>"


def torch_dtype(name: str) -> torch.dtype:
    return _DTYPES[name]


def char_tokenizer() -> PreTrainedTokenizerFast:
    """A character tokenizer built deterministically, so ``voxlm-tiny`` needs no files.

    Words start with "▁" as in SentencePiece, so word boundaries survive a round trip and the
    aligner can merge characters back into words like any sub-word tokenizer's pieces.
    """
    vocab = {token: i for i, token in enumerate((*CHAR_SPECIAL_TOKENS, *CHAR_ALPHABET))}
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<unk>"))
    tok.normalizer = normalizers.Lowercase()
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always")
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="always")
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>"
    )


def byte_tokenizer(vocab_size: int | None = None) -> PreTrainedTokenizerFast:
    """A byte-level stand-in for an LLM's tokenizer, padded with fillers to ``vocab_size``.

    An LLM built at random at a published shape (``random_weights=True``) has no tokenizer files,
    yet any text must encode and every id its head can produce must decode: the 256 byte symbols
    encode any text, one end-of-text token ends transcripts, and ``<|filler_N|>`` entries take the
    remaining ids (vocabulary entries with no merge reaching them, so encoding never yields one).
    """
    names = [*sorted(pre_tokenizers.ByteLevel.alphabet()), BYTE_EOS]
    size = len(names) if vocab_size is None else vocab_size
    if size < len(names):
        raise ValueError(
            f"vocab_size {vocab_size} is below the byte tokenizer's {len(names)} tokens"
        )
    vocab = {token: i for i, token in enumerate(names)}
    vocab.update({f"<|filler_{i}|>": i for i in range(len(names), size)})
    tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token=BYTE_EOS, pad_token=BYTE_EOS)


def load_tokenizer(config: ModelConfig, path: str | Path | None = None) -> PreTrainedTokenizerBase:
    """The tokenizer saved at ``path``, else the built-in one, else the LLM's own."""
    if path is not None and Path(path, "tokenizer_config.json").is_file():
        tokenizer = AutoTokenizer.from_pretrained(path)
    elif config.tokenizer == "char":
        tokenizer = char_tokenizer()
    elif config.tokenizer == "byte":
        tokenizer = byte_tokenizer((config.llm_config or {}).get("vocab_size"))
    else:
        source, extra = _llm_source(config.llm_model)
        tokenizer = AutoTokenizer.from_pretrained(source, **extra)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def _llm_source(name: str) -> tuple[str, dict[str, str]]:
    """Where transformers loads ``llm_model`` from: (name or directory, extra keyword arguments).

    A ``.gguf`` file (llama.cpp's format, with the tokenizer and chat template inside) loads
    through transformers' GGUF support, which wants the folder and the file name apart. Packaged
    hub names resolve to their packaged copies when the hub is out of reach (``voxlm.assets``).
    """
    from voxlm.assets import resolve

    path = resolve(name)
    if not path.lower().endswith(".gguf"):
        return path, {}
    if not Path(path).is_file():
        raise ValueError(f"llm_model {path}: GGUF file not found")
    return str(Path(path).parent), {"gguf_file": Path(path).name}


def build_llm(config: ModelConfig, tokenizer: PreTrainedTokenizerBase) -> PreTrainedModel:
    """The causal LM: random weights from ``llm_config`` or pretrained from ``llm_model``."""
    if config.llm_config is not None:
        values = dict(config.llm_config)
        model_type = values.pop("model_type")
        values.setdefault("vocab_size", len(tokenizer))
        values.setdefault("pad_token_id", tokenizer.pad_token_id)
        values.setdefault("eos_token_id", tokenizer.eos_token_id)
        values.setdefault("bos_token_id", tokenizer.bos_token_id)
        llm_config = AutoConfig.for_model(model_type, **values)
        model = AutoModelForCausalLM.from_config(llm_config, dtype=torch_dtype(config.dtype))
    else:
        source, extra = _llm_source(config.llm_model)
        try:
            # GGUF weights are dequantised on load, then cast to the configured dtype.
            model = AutoModelForCausalLM.from_pretrained(
                source, dtype=torch_dtype(config.dtype), **extra
            )
        except OSError as error:
            raise ValueError(
                f"cannot load LLM {config.llm_model!r}: not a local checkpoint directory and not "
                f"reachable on the model hub ({error})"
            ) from None
    if model.get_input_embeddings().num_embeddings < len(tokenizer):
        model.resize_token_embeddings(len(tokenizer))
    return model


def apply_lora(model: PreTrainedModel, config: ModelConfig) -> nn.Module:
    """Wrap the LLM in peft LoRA adapters; the base weights are frozen by peft."""
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        r=config.lora_r,
        lora_alpha=config.lora_alpha,
        lora_dropout=config.lora_dropout,
        target_modules=list(config.lora_target_modules),
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, lora)


@dataclass(frozen=True)
class Prompt:
    """Token ids around the audio: [prefix][audio embeddings][suffix][transcript]."""

    prefix: tuple[int, ...]
    suffix: tuple[int, ...]


def build_prompt(
    tokenizer: PreTrainedTokenizerBase, instruction: str, layout: str = "plain"
) -> Prompt:
    """Token ids around the audio, in the given layout (``ModelConfig.prompt_format``).

    "plain": the instruction and a newline, the audio, a newline: the fewest tokens, and what a
    base LLM expects. "chat": the LLM's chat template (where it has one) is rendered around a
    placeholder and split there, so the audio embeddings sit exactly where a user turn's content
    would be and the transcript is the assistant's reply.
    """
    if layout == "chat" and getattr(tokenizer, "chat_template", None):
        content = f"{instruction}\n{AUDIO_PLACEHOLDER}" if instruction else AUDIO_PLACEHOLDER
        text = tokenizer.apply_chat_template(
            [{"role": "user", "content": content}], tokenize=False, add_generation_prompt=True
        )
        before, after = text.split(AUDIO_PLACEHOLDER, 1)
    else:
        before, after = (f"{instruction}\n" if instruction else ""), "\n"
    prefix = tokenizer(before, add_special_tokens=True).input_ids if before else []
    suffix = tokenizer(after, add_special_tokens=False).input_ids if after.strip() else []
    if not prefix and tokenizer.bos_token_id is not None:
        prefix = [tokenizer.bos_token_id]
    return Prompt(prefix=tuple(prefix), suffix=tuple(suffix))
