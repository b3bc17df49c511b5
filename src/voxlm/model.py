"""VoxLM: audio encoder -> projector -> LLM, with an aligner for word times.

The model composes the network and is the one place that runs the LLM: ``assemble`` lays out
[prompt][audio][transcript] sequences, ``prefill`` / ``step`` serve decoding, ``forward`` is the
training loss (cross-entropy on transcript tokens, optional CTC on the encoder output, optional
aligner loss toward word spans) and ``aligner_attention`` the timing pass. What its labels are
(``voxlm.labels``), how it searches (``voxlm.decoding``), how attention becomes word times
(``voxlm.timing``) and what a saved model holds (``voxlm.weights``) live in their own modules.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn
from transformers import AutoConfig, PreTrainedTokenizerBase

from voxlm import weights
from voxlm.aligner import Aligner, alignment_loss
from voxlm.architectures import random_weight_config
from voxlm.calibration import Calibration
from voxlm.config import ModelConfig, get_config, resolve_variant
from voxlm.ctc import build_ctc_head, ctc_targets, span_ctc_loss
from voxlm.encoder import AudioEncoder
from voxlm.labels import alignment_targets, span_ctc_spans
from voxlm.llm import Prompt, apply_lora, build_llm, build_prompt, load_tokenizer, torch_dtype
from voxlm.precision import widen
from voxlm.projector import Projector
from voxlm.text import TokenText
from voxlm.timer import stage

if TYPE_CHECKING:
    from voxlm.decoding.search import Prefix

logger = logging.getLogger("voxlm")

# Kept importable from here for code written against earlier versions.
CONFIG_FILE, WEIGHTS_FILE = weights.CONFIG_FILE, weights.WEIGHTS_FILE
check_weight_names = weights.check_weight_names


@dataclass
class AudioFeatures:
    """The audio path before the LLM. T encoder frames (20 ms), N audio embeddings (80 ms)."""

    hidden: torch.Tensor  # [B, T, D] encoder output: the aligner's keys come from here
    mask: torch.Tensor  # [B, T] True = valid frame
    embeds: torch.Tensor  # [B, N, E] projected audio, the LLM's audio input
    embed_mask: torch.Tensor  # [B, N]
    token_index: torch.Tensor | None = None  # [B, N] transcript token heard at each (ctc_positions)
    ctc_log_probs: torch.Tensor | None = None  # [B, T, V + 1] the CTC head's, blank last (ctc)


@dataclass
class Sequence:
    """Left-padded LLM input: [pad][prefix][audio][suffix][text]. L = longest sequence."""

    embeds: torch.Tensor  # [B, L, E]
    attention_mask: torch.Tensor  # [B, L]
    position_ids: torch.Tensor  # [B, L]
    labels: torch.Tensor  # [B, L] token id at transcript positions, -100 elsewhere
    text_start: torch.Tensor  # [B] index of the first transcript token
    text_position: torch.Tensor  # [B] position id of the first transcript token


@dataclass
class VoxLMOutput:
    loss: torch.Tensor
    losses: dict[str, float]  # each term, for logging


class VoxLM(nn.Module):
    """Speech recognition on any audio encoder joined to any decoder-only LLM."""

    def __init__(
        self,
        config: ModelConfig,
        encoder: AudioEncoder,
        llm: nn.Module,
        tokenizer: PreTrainedTokenizerBase,
    ) -> None:
        super().__init__()
        self.config = config
        self.tokenizer = tokenizer
        self.token_text = TokenText(tokenizer)
        self.encoder = encoder
        d_llm = llm.get_input_embeddings().embedding_dim
        self.projector = Projector(
            encoder.hidden_size,
            d_llm,
            config.projector_stack,
            config.projector_hidden,
            config.projector_activation,
            zero_output=config.ctc_embeddings and config.llm_config is None,
        )
        self.llm = apply_lora(llm, config) if config.use_lora else llm
        self.aligner = Aligner(d_llm, encoder.hidden_size, config.aligner_dim)
        # CTC at 50 frames/s: from scratch the LLM ignores the audio until the encoder has
        # learned to spell (voxlm.ctc.build_ctc_head: over tokens or characters).
        self.ctc_head = None
        if config.ctc:
            self.ctc_head, ids = build_ctc_head(config.ctc_units, encoder.hidden_size, tokenizer)
            self.register_buffer("ctc_token_ids", ids, persistent=False)
        if config.freeze_encoder:
            encoder.requires_grad_(False)
        self._prompts: dict[str, Prompt] = {}
        # A saved model's calibration.json (raw word confidence -> probability of being right;
        # voxlm.calibration) and decoding.json (transcribe's default DecodingOptions fields).
        self.calibration: Calibration | None = None
        self.decoding: dict[str, Any] = {}

    # ---- construction and saving ----------------------------------------------------------------
    @classmethod
    def from_config(
        cls,
        config: ModelConfig | str,
        tokenizer_path: str | Path | None = None,
        random_weights: bool = False,
    ) -> VoxLM:
        """Build a model: backbones from hub names / local paths, or random from their configs.

        ``random_weights=True`` builds hub-named backbones at their published architectures
        with random weights and a stand-in tokenizer (``voxlm.architectures``): no download,
        for sizing, speed and memory work; inside ``torch.device("meta")`` it costs no memory.
        """
        if isinstance(config, str):
            config = get_config(config).model
        if random_weights:
            config = random_weight_config(config)
        tokenizer = load_tokenizer(config, tokenizer_path)
        dtype = torch_dtype(config.dtype)
        if config.audio_encoder_config is not None:
            values = dict(config.audio_encoder_config)
            encoder = AudioEncoder.from_config(
                AutoConfig.for_model(values.pop("model_type"), **values)
            )
        else:
            encoder = AudioEncoder.from_pretrained(config.audio_encoder, dtype=dtype)
        return cls(config, encoder, build_llm(config, tokenizer), tokenizer)

    @classmethod
    def from_pretrained(cls, name_or_path: str | Path, config: ModelConfig | None = None) -> VoxLM:
        """Load a saved model directory, a ``best.pt`` checkpoint, or a named variant: its
        trained parts where the package ships them (``voxlm.weights.model_path``),
        else fresh projector/aligner weights over its pretrained backbones (as ``from_config``).
        A ``.pt`` file must hold ``model_state_dict`` (and ``config`` unless ``config`` is given).
        """
        path = weights.model_path(name_or_path)
        if path.is_dir():
            config, state = weights.read_model_directory(path)
            model = cls.from_config(config, tokenizer_path=path)
            model.calibration = weights.read_calibration(path, state)
            model.decoding = weights.read_decoding(path)
        elif path.suffix in (".pt", ".pth", ".bin"):
            config, state = weights.read_checkpoint_file(path, config)
            model = cls.from_config(config)
        else:
            try:
                variant = resolve_variant(str(name_or_path))
            except ValueError:
                raise ValueError(
                    f"{name_or_path!r} is neither a model directory, a .pt checkpoint, nor a variant"
                ) from None
            return cls.from_config(config or get_config(variant).model).eval()
        model.load_trained_state(state, source=str(path))
        return model.eval()

    def trained_state_dict(self) -> dict[str, torch.Tensor]:
        """The weights a saved model holds (``voxlm.weights.is_saved``)."""
        return weights.trained_state_dict(self)

    def load_trained_state(self, state: dict[str, torch.Tensor], source: str) -> None:
        weights.load_trained_state(self, state, source)

    def save_pretrained(self, directory: str | Path) -> None:
        """Write config, trained weights (safetensors) and tokenizer; the directory reloads."""
        weights.save_pretrained(self, directory)

    # ---- the audio path ---------------------------------------------------------------------------
    @property
    def window_seconds(self) -> float:
        """The longest window of audio decoded at once (``ModelConfig.window_seconds``), within
        the encoder's span."""
        return min(self.config.window_seconds or self.encoder.max_seconds, self.encoder.max_seconds)

    @property
    def device(self) -> torch.device:
        return self.projector.down.weight.device

    def encode(self, audio: torch.Tensor, audio_lengths: torch.Tensor) -> AudioFeatures:
        """audio [B, S] at 16 kHz, audio_lengths [B] -> the audio path before the LLM."""
        with stage("encoder"):
            hidden, mask = self.encoder(audio, audio_lengths)  # [B, T, D], [B, T]
        with stage("projector"):
            return self._project(hidden, mask)

    def _project(self, hidden: torch.Tensor, mask: torch.Tensor) -> AudioFeatures:
        """Encoder output -> the LLM's audio embeddings, and the CTC head's view of it."""
        embeds, embed_mask = self.projector(hidden.to(self.projector.down.weight.dtype), mask)
        token_index = ctc_log_probs = None
        if self.ctc_head is not None:  # once, for the CTC loss, decoding and the options below
            ctc_log_probs = widen(self.ctc_head(hidden)).log_softmax(-1)  # [B, T, V + 1]
        if self.config.ctc_embeddings or self.config.ctc_positions:
            probs = ctc_log_probs.exp()[..., :-1] * mask[..., None]  # [B, T, V] no blank
            if self.config.ctc_embeddings:
                embeds = embeds + self._ctc_token_embeddings(probs, embeds.shape[1])
            if self.config.ctc_positions:
                token_index = self._ctc_token_index(probs.detach(), embeds.shape[1])
        return AudioFeatures(hidden, mask, embeds, embed_mask, token_index, ctc_log_probs)

    def _ctc_token_index(self, probs: torch.Tensor, n: int) -> torch.Tensor:
        """Which transcript token each audio embedding holds, by CTC: [B, T, V] -> [B, N].

        The expected number of tokens CTC emits before an embedding's middle frame is the index
        of the token spoken there. A token is emitted where a frame holds it and the frame
        before did not (a token held over 3 frames counts once): summing non-blank mass instead
        overcounts by about 40%. Giving the embedding that token's position makes the monotonic
        alignment a matter of relative position, which attention finds at once; a from-scratch
        LLM otherwise has to discover where it is in the audio by content.
        """
        k = self.config.projector_stack
        previous = nn.functional.pad(probs[:, :-1], (0, 0, 1, 0))  # [B, T, V] frame t - 1
        emitted = (probs * (1 - previous)).sum(-1)  # [B, T] expected new tokens per frame
        emitted = nn.functional.pad(emitted, (0, n * k - emitted.shape[1]))  # [B, N*K]
        before = emitted.cumsum(-1) - emitted  # [B, N*K] tokens emitted before each frame
        return before[:, k // 2 :: k].round().long()  # [B, N]

    def _ctc_token_embeddings(self, probs: torch.Tensor, n: int) -> torch.Tensor:
        """The LLM's own token embeddings, weighted by the CTC head's non-blank posteriors,
        summed per projector stack: [B, T, V] -> [B, N, E].

        Each audio embedding then carries the embeddings of the tokens CTC hears in its 80 ms
        (blank frames add ~nothing), so the LLM can copy from the audio as it would from text.
        A from-scratch LLM's are scaled by sqrt(E), as Transformers scale input embeddings
        (unscaled, norm ~1, they drown in the projector's output, norm ~40 once trained, and
        the LLM is much slower to read them: BENCHMARKS.md); a pretrained LLM's are not.
        """
        weight = self.llm.get_input_embeddings().weight[self.ctc_token_ids]  # [V, E] per CTC unit
        tokens = probs.to(weight.dtype) @ weight  # [B, T, E]
        k = self.config.projector_stack
        tokens = nn.functional.pad(tokens, (0, 0, 0, n * k - tokens.shape[1]))  # [B, N*K, E]
        scale = tokens.shape[-1] ** 0.5 if self.config.llm_config is not None else 1.0
        return tokens.reshape(tokens.shape[0], n, k, -1).sum(2) * scale

    def prompt(self, instruction: str | None = None) -> Prompt:
        instruction = self.config.instruction if instruction is None else instruction
        if instruction not in self._prompts:
            prompt = build_prompt(self.tokenizer, instruction, self.config.prompt_format)
            self._prompts[instruction] = prompt
        return self._prompts[instruction]

    def assemble(
        self, audio: AudioFeatures, prompts: list[Prompt], texts: list[list[int]]
    ) -> Sequence:
        """Lay out [prefix][audio][suffix][text] per example, left-padded into one batch.

        Left padding keeps every sequence's end aligned, so generation appends to all rows at
        the same index and the transcript logits are the last positions of every row.
        Positions count up through the row, except with ``audio.token_index``: then the suffix
        and text follow the prefix, and each audio embedding takes the position of the token
        that predicts the one it holds, so the two meet at relative position 0.
        """
        rows = [
            self._row(audio, i, prompt, text)
            for i, (prompt, text) in enumerate(zip(prompts, texts, strict=True))
        ]
        length = max(r[0].shape[0] for r in rows)
        b, e = len(rows), rows[0][0].shape[-1]
        embeds = rows[0][0].new_zeros(b, length, e)
        mask = torch.zeros(b, length, dtype=torch.long, device=self.device)
        label_out = torch.full((b, length), -100, dtype=torch.long, device=self.device)
        position_ids = torch.zeros(b, length, dtype=torch.long, device=self.device)
        text_start = torch.empty(b, dtype=torch.long, device=self.device)
        text_position = torch.tensor([r[3] for r in rows], dtype=torch.long, device=self.device)
        for i, (row, label, pos, _) in enumerate(rows):
            embeds[i, length - row.shape[0] :] = row
            mask[i, length - row.shape[0] :] = 1
            label_out[i, length - row.shape[0] :] = label
            position_ids[i, length - row.shape[0] :] = pos
            text_start[i] = length - len(texts[i])
        return Sequence(embeds, mask, position_ids, label_out, text_start, text_position)

    def _row(
        self, audio: AudioFeatures, i: int, prompt: Prompt, text: list[int]
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, int]:
        """One example's embeddings [P + N + Q + X, E], labels, position ids, and the position
        of its first transcript token."""
        n_audio = int(audio.embed_mask[i].sum())
        ids = torch.tensor(
            [*prompt.prefix, *prompt.suffix, *text], dtype=torch.long, device=self.device
        )
        tokens = self.llm.get_input_embeddings()(ids)  # [P + Q + X, E]
        n_prefix, n_suffix = len(prompt.prefix), len(prompt.suffix)
        row = torch.cat(
            [tokens[:n_prefix], audio.embeds[i, :n_audio].to(tokens.dtype), tokens[n_prefix:]]
        )  # [P + N + Q + X, E]
        if audio.token_index is None:
            positions = torch.arange(row.shape[0], device=self.device)
            text_position = row.shape[0] - len(text)
        else:
            order = torch.arange(n_prefix + n_suffix + len(text), device=self.device)
            heard = audio.token_index[i, :n_audio] + n_prefix + n_suffix - 1
            positions = torch.cat([order[:n_prefix], heard.clamp(min=0), order[n_prefix:]])
            text_position = n_prefix + n_suffix
        label = torch.full((row.shape[0],), -100, dtype=torch.long, device=self.device)
        if text:
            label[-len(text) :] = torch.tensor(text, device=self.device)
        return row, label, positions, text_position

    # ---- running the LLM ---------------------------------------------------------------------------
    def _run_llm(self, seq: Sequence, **kwargs: Any) -> Any:
        """The LLM over an assembled sequence, in the Hugging Face call convention."""
        return self.llm(
            inputs_embeds=seq.embeds,
            attention_mask=seq.attention_mask,
            position_ids=seq.position_ids,
            **kwargs,
        )

    def prefill(self, seq: Sequence) -> tuple[Any, torch.Tensor]:
        """Run the prompt and audio of a sequence with no transcript yet: (KV cache, the
        next-token logits [B, V])."""
        out = self._run_llm(seq, use_cache=True, logits_to_keep=1)
        return out.cache, out.logits[:, -1]

    def step(
        self,
        tokens: torch.Tensor,
        attention_mask: torch.Tensor,
        positions: torch.Tensor,
        cache: Any,
    ) -> tuple[Any, torch.Tensor]:
        """Feed one token per row (tokens [B], attention mask [B, L + 1], positions [B, 1]) on top
        of ``cache``: (the grown cache, next-token logits [B, V])."""
        out = self.llm(
            inputs_embeds=self.llm.get_input_embeddings()(tokens[:, None]),
            attention_mask=attention_mask,
            position_ids=positions,
            cache=cache,
            use_cache=True,
        )
        return out.cache, out.logits[:, -1]

    @torch.no_grad()
    def aligner_attention(
        self,
        audio: AudioFeatures,
        prompts: list[Prompt],
        tokens: list[list[int]],
        prefix: Prefix | None = None,
    ) -> list[torch.Tensor]:
        """Each row's transcript tokens (no EOS) -> the aligner's log-attention [n_i, T].

        The aligner queries with the LLM's last hidden state at each transcript token, in the
        training layout, whether the tokens were generated or given. With the ``prefix`` the
        decoding left behind, only the transcript runs through the LLM, on that cache; without,
        one teacher-forced pass over the whole sequence. Causal attention makes the two equal.
        """
        lengths = [len(t) for t in tokens]
        if prefix is None:
            seq = self.assemble(audio, prompts, [[*t, self.tokenizer.eos_token_id] for t in tokens])
            out = self._run_llm(seq, output_hidden_states=True, use_cache=False, logits_to_keep=1)
            queries = text_states(out.hidden_states[-1], [max(n, 1) for n in lengths])  # [B, X, E]
        else:
            queries = self._transcript_states(prefix, tokens)
        log_attn = self.aligner(queries, audio.hidden, audio.mask)  # [B, X, T]
        return [a[:n] for a, n in zip(log_attn, lengths, strict=True)]

    def _transcript_states(self, prefix: Prefix, tokens: list[list[int]]) -> torch.Tensor:
        """The LLM's last hidden states [B, X, E] at each row's transcript tokens, fed after the
        cached prefix; rows right-padded (a causal LM's real tokens never see the padding)."""
        width = max(1, *(len(t) for t in tokens))
        ids = torch.full((len(tokens), width), self.tokenizer.eos_token_id, device=self.device)
        mask = torch.zeros(len(tokens), width, dtype=torch.long, device=self.device)
        for i, row in enumerate(tokens):
            ids[i, : len(row)] = torch.tensor(row, dtype=torch.long)
            mask[i, : len(row)] = 1
        out = self.llm(
            inputs_embeds=self.llm.get_input_embeddings()(ids),
            attention_mask=torch.cat([prefix.attention_mask, mask], dim=1),
            position_ids=prefix.text_position[:, None] + torch.arange(width, device=self.device),
            cache=prefix.cache,
            use_cache=True,
            output_hidden_states=True,
            logits_to_keep=1,
        )
        return out.hidden_states[-1] * mask[..., None]  # zeros past each row's end, as text_states

    # ---- training ------------------------------------------------------------------------------------
    def tokenize(self, texts: list[str]) -> list[list[int]]:
        """Transcript token ids, each followed by EOS (what the model learns to stop with)."""
        ids = self.tokenizer(list(texts), add_special_tokens=False).input_ids
        return [[*row, self.tokenizer.eos_token_id] for row in ids]

    def forward(
        self,
        batch: dict[str, Any],
        ce_weight: float = 1.0,
        ctc_weight: float = 0.0,
        alignment_weight: float = 0.0,
        span_ctc_weight: float = 0.0,
    ) -> VoxLMOutput:
        """The training loss on a batch (the batch dict of ``voxlm.data.batching``)."""
        audio = self.encode(batch["audio"].to(self.device), batch["audio_lengths"].to(self.device))
        texts = self.tokenize(batch["texts"])
        words = batch.get("words") or [None] * len(texts)
        terms: dict[str, torch.Tensor] = {}
        if ce_weight or alignment_weight:
            seq = self.assemble(audio, [self.prompt()] * len(texts), texts)
            keep = max(len(t) for t in texts) + 1  # text positions and the one before them
            out = self._run_llm(
                seq,
                output_hidden_states=alignment_weight > 0,
                logits_to_keep=keep,
                use_cache=False,
            )
            if ce_weight:
                logits = widen(out.logits[:, :-1])  # [B, keep - 1, V] predicts the next token
                target = seq.labels[:, -keep + 1 :]  # [B, keep - 1]
                terms["ce"] = nn.functional.cross_entropy(
                    logits.reshape(-1, logits.shape[-1]), target.reshape(-1), ignore_index=-100
                )
            if alignment_weight:
                terms["alignment"] = self._alignment_loss(
                    out.hidden_states[-1], audio, texts, words
                )
        if ctc_weight:
            terms["ctc"] = self._ctc_loss(audio, batch["texts"], texts)
        if span_ctc_weight:
            assert audio.ctc_log_probs is not None, "config.ctc is off: this model has no CTC head"
            spans = span_ctc_spans(
                self.token_text, [t[:-1] for t in texts], words, audio.mask.sum(1).tolist()
            )
            terms["span_ctc"] = span_ctc_loss(audio.ctc_log_probs, spans)
        weights_of = {
            "ce": ce_weight,
            "ctc": ctc_weight,
            "alignment": alignment_weight,
            "span_ctc": span_ctc_weight,
        }
        loss = sum(weights_of[k] * v for k, v in terms.items())
        return VoxLMOutput(loss, {k: float(v.detach()) for k, v in terms.items()})

    def _alignment_loss(
        self,
        hidden: torch.Tensor,
        audio: AudioFeatures,
        texts: list[list[int]],
        words: list[Any],
    ) -> torch.Tensor:
        """Cross-entropy of the aligner's attention toward each token's word frames."""
        target, token_mask, lengths = alignment_targets(
            self.token_text,
            [t[:-1] for t in texts],
            words,
            audio.hidden.shape[1],
            audio.mask.sum(1).tolist(),
        )
        if not token_mask.any():
            return hidden.sum() * 0.0
        queries = text_states(hidden, lengths)  # [B, X, E]
        log_attn = self.aligner(queries, audio.hidden, audio.mask)  # [B, X, T]
        return alignment_loss(log_attn, target.to(log_attn.device), token_mask.to(log_attn.device))

    def _ctc_loss(
        self, audio: AudioFeatures, texts: list[str], tokens: list[list[int]]
    ) -> torch.Tensor:
        assert audio.ctc_log_probs is not None, "config.ctc is off: this model has no CTC head"
        targets = ctc_targets(self.config.ctc_units, texts, tokens)
        return nn.functional.ctc_loss(
            audio.ctc_log_probs.transpose(0, 1),  # [T, B, V + 1]
            torch.tensor([i for t in targets for i in t], dtype=torch.long, device=self.device),
            audio.mask.sum(1),
            torch.tensor([len(t) for t in targets], dtype=torch.long, device=self.device),
            blank=audio.ctc_log_probs.shape[-1] - 1,
            zero_infinity=True,
        )

    def transcribe(self, audio: Any, **kwargs: Any) -> Any:
        """See ``voxlm.transcribe.transcribe``."""
        from voxlm.transcribe import transcribe

        return transcribe(self, audio, **kwargs)


def text_states(hidden: torch.Tensor, lengths: list[int]) -> torch.Tensor:
    """Hidden states [B, L, E] of left-padded rows -> each row's transcript tokens [B, X, E].

    Row i's transcript (then EOS) ends every row, so its tokens sit at L-1-n_i .. L-2; the state
    at a token's own position has seen that token, which is what the aligner queries with.
    """
    b, length, e = hidden.shape
    out = hidden.new_zeros(b, max(lengths), e)
    for i, n in enumerate(lengths):
        out[i, :n] = hidden[i, length - 1 - n : length - 1]
    return out
