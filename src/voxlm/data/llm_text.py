"""Training sentences written by the LLM itself.

Fine-tuned on the sentences of one small grammar, an LLM takes that grammar as its prior: on real
speech it writes grammar sentences where the letters it hears do not fit them (BENCHMARKS.md,
"voxlm-smol reads its own letters"). Sentences the pretrained LLM writes itself are already
likely under its own prior, so fine-tuning on them spends its updates on listening and leaves
its language where pretraining put it; they also span the LLM's vocabulary rather than the
grammar's ~800 words. An instruct model is asked for a few short sentences about a topic (the
grammar's nouns, so that topics vary without a word list of their own) and sampled; replies are
cut into sentences and kept when they are what a synthesiser can speak and a transcript can
hold: ASCII letters, no digits, ``min_words`` to ``max_words`` words.
"""

from __future__ import annotations

import dataclasses
import logging
import random
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from voxlm.data.sentences import NOUNS
from voxlm.data.synth import spoken_text

logger = logging.getLogger("voxlm")

PROMPT = "Write {n} short, simple sentences about {topic}, one per line."
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+|\n+")
_LIST_MARK = re.compile(r"^\s*(?:[-*\u2022]|\(?[a-z0-9]{1,2}[.)])\s+", re.IGNORECASE)


@dataclass(frozen=True)
class LLMTextOptions:
    """How ``sample_sentences`` asks the LLM for text."""

    llm_model: str = "HuggingFaceTB/SmolLM2-135M-Instruct"
    n_sentences: int = 3600
    seed: int = 0
    per_prompt: int = 5  # sentences asked for in each prompt
    batch_size: int = 64  # prompts sampled together
    max_new_tokens: int = 120
    temperature: float = 1.0
    top_p: float = 0.95
    min_words: int = 3
    max_words: int = 15

    def verify(self) -> None:
        """Raise ValueError naming the first invalid field."""
        for name in ("n_sentences", "per_prompt", "batch_size", "max_new_tokens", "min_words"):
            if getattr(self, name) < 1:
                raise ValueError(f"LLMTextOptions.{name} must be >= 1, got {getattr(self, name)}")
        if self.max_words < self.min_words:
            raise ValueError(
                f"LLMTextOptions.max_words ({self.max_words}) must be >= min_words "
                f"({self.min_words})"
            )
        if not 0 < self.top_p <= 1 or self.temperature <= 0:
            raise ValueError(
                f"LLMTextOptions needs temperature > 0 and 0 < top_p <= 1, got "
                f"{self.temperature} and {self.top_p}"
            )


def sentences_from_reply(reply: str, min_words: int = 3, max_words: int = 15) -> list[str]:
    """An LLM's reply -> the transcripts of its speakable sentences.

    A sentence with a digit (spoken "3" is "three": the transcript would not say what is
    heard), a letter outside ASCII ("café" would lose its "é"), or a word count outside the
    bounds is dropped, and so is a line that introduces a list ("Here are five sentences:");
    list markers ("1.", "-") are not part of a sentence.
    """
    kept = []
    for part in _SENTENCE_END.split(reply):
        part = _LIST_MARK.sub("", part).strip()
        if not part or part.endswith(":") or re.search(r"\d|[^\x00-\x7f]", part):
            continue
        text = spoken_text(part)
        if min_words <= len(text.split()) <= max_words:
            kept.append(text)
    return kept


def _topics(seed: int) -> list[str]:
    """The grammar's nouns in a seeded order: what each prompt asks about."""
    nouns = list(NOUNS)
    random.Random(seed).shuffle(nouns)
    return nouns


@torch.no_grad()
def sample_sentences(llm, tokenizer, options: LLMTextOptions, progress: bool = True) -> list[str]:
    """``options.n_sentences`` unique sentences sampled from ``llm`` (seeded, in order)."""
    from tqdm import tqdm

    options.verify()
    torch.manual_seed(options.seed)
    topics = _topics(options.seed)
    tokenizer = _left_padded(tokenizer)
    sentences: dict[str, None] = {}
    bar = tqdm(total=options.n_sentences, desc="sentences", unit="", disable=not progress)
    start = 0
    while len(sentences) < options.n_sentences:
        batch = [topics[(start + i) % len(topics)] for i in range(options.batch_size)]
        start += options.batch_size
        replies = _sample(llm, tokenizer, batch, options)
        before = len(sentences)
        for reply in replies:
            for text in sentences_from_reply(reply, options.min_words, options.max_words):
                sentences.setdefault(text)
        bar.update(min(len(sentences), options.n_sentences) - min(before, options.n_sentences))
        if len(sentences) == before:
            raise RuntimeError(
                f"{options.llm_model} wrote no usable sentence in {len(batch)} replies "
                f"(e.g. {replies[0][:120]!r}): is it an instruct model?"
            )
    bar.close()
    return list(sentences)[: options.n_sentences]


def _left_padded(tokenizer):
    """A copy that pads on the left: generation appends to every row at the same index."""
    if tokenizer.padding_side == "left":
        return tokenizer
    import copy

    tokenizer = copy.copy(tokenizer)
    tokenizer.padding_side = "left"
    return tokenizer


def _sample(llm, tokenizer, topics: list[str], options: LLMTextOptions) -> list[str]:
    """One reply per topic, sampled together."""
    prompts = [
        tokenizer.apply_chat_template(
            [{"role": "user", "content": PROMPT.format(n=options.per_prompt, topic=topic)}],
            tokenize=False,
            add_generation_prompt=True,
        )
        for topic in topics
    ]
    inputs = tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False)
    output = llm.generate(
        **inputs.to(llm.device),
        do_sample=True,
        temperature=options.temperature,
        top_p=options.top_p,
        max_new_tokens=options.max_new_tokens,
        pad_token_id=tokenizer.pad_token_id,
    )
    return tokenizer.batch_decode(output[:, inputs.input_ids.shape[1] :], skip_special_tokens=True)


def write_llm_sentences(options: LLMTextOptions, path: str | Path, progress: bool = True) -> Path:
    """Sample sentences from ``options.llm_model`` into ``path``, one a line (written
    atomically, so an interrupted run leaves no half file for ``SynthOptions.text_file``)."""
    from voxlm.config import ModelConfig
    from voxlm.llm import build_llm, load_tokenizer

    options.verify()
    config = dataclasses.replace(ModelConfig(), llm_model=options.llm_model)
    tokenizer = load_tokenizer(config)
    llm = build_llm(config, tokenizer).eval()
    sentences = sample_sentences(llm, tokenizer, options, progress)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(path.name + ".partial")
    partial.write_text("".join(s + "\n" for s in sentences), encoding="utf-8")
    partial.replace(path)
    logger.info("%d sentences from %s written to %s", len(sentences), options.llm_model, path)
    return path
