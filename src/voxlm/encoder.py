"""One interface over Whisper-family and Wav2Vec2-family audio encoders.

Both take 16 kHz waveforms and return hidden states at 50 frames/s with a valid-frame mask, so
everything downstream (projector, aligner, timestamps) sees one frame rate. Whisper's own forward
insists on a 30 s mel window; here the positional table is sliced to the clip's length, so a 3 s
clip costs 3 s of compute, and padding inside a batch is masked out of self-attention.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator

import torch
from torch import nn
from transformers import AutoConfig, AutoModel, PretrainedConfig, Wav2Vec2Model, WhisperConfig
from transformers.models.whisper.modeling_whisper import WhisperEncoder

from voxlm.audio import HOP_LENGTH, SAMPLE_RATE, log_mel_spectrogram

logger = logging.getLogger("voxlm")

ENCODER_FRAMES_PER_SECOND = (
    50  # Whisper: 100 mel frames/s, conv stride 2; Wav2Vec2: 320-sample stride
)
ENCODER_FRAME_SECONDS = 1 / ENCODER_FRAMES_PER_SECOND  # 20 ms
SAMPLES_PER_ENCODER_FRAME = SAMPLE_RATE // ENCODER_FRAMES_PER_SECOND  # 320


def encoder_frames(num_samples: torch.Tensor | int) -> torch.Tensor | int:
    """Encoder frames produced by ``num_samples`` of audio (both families agree to within 1)."""
    return num_samples // SAMPLES_PER_ENCODER_FRAME


class AudioEncoder(nn.Module):
    """Waveforms -> encoder hidden states at 50 frames/s.

    Shapes: B batch, S samples, F mel frames (S / 160), T encoder frames (S / 320), D hidden size.
    """

    def __init__(self, backbone: nn.Module, kind: str) -> None:
        super().__init__()
        if kind not in ("whisper", "wav2vec2"):
            raise ValueError(f"encoder kind must be 'whisper' or 'wav2vec2', got {kind!r}")
        self.backbone = backbone
        self.kind = kind
        config = backbone.config
        self.hidden_size: int = config.d_model if kind == "whisper" else config.hidden_size
        self.max_seconds: float = (
            config.max_source_positions / ENCODER_FRAMES_PER_SECOND if kind == "whisper" else 30.0
        )

    @classmethod
    def from_config(cls, config: PretrainedConfig) -> AudioEncoder:
        """A randomly initialised encoder (tests, from-scratch training)."""
        if isinstance(config, WhisperConfig):
            return cls(WhisperEncoder(config), "whisper")
        if config.model_type in ("wav2vec2", "wav2vec2-conformer", "hubert"):
            return cls(Wav2Vec2Model(config), "wav2vec2")
        raise ValueError(f"unsupported audio encoder type {config.model_type!r}")

    @classmethod
    def from_pretrained(cls, name_or_path: str, dtype: torch.dtype = torch.float32) -> AudioEncoder:
        """Load the encoder half of a checkpoint (Whisper, MMS, wav2vec2, HuBERT).

        Accepts a full model (``WhisperForConditionalGeneration``, ``Wav2Vec2ForCTC``), an
        encoder saved alone, a faster-whisper (CTranslate2) directory, or a hub name; packaged
        hub names resolve to their packaged copies when the hub is out of reach
        (``voxlm.assets``). Every encoder tensor must come from the checkpoint: a missing or
        unexpected tensor raises instead of leaving random weights in a "pretrained" encoder.
        """
        from voxlm.assets import resolve
        from voxlm.convert import is_ctranslate2_dir, read_whisper

        path = resolve(name_or_path)
        if is_ctranslate2_dir(path):
            config, state = read_whisper(path, dtype=dtype)
            encoder = WhisperEncoder(config).to(dtype)
            prefix = "model.encoder."
            part = {k[len(prefix) :]: v for k, v in state.items() if k.startswith(prefix)}
            _check_loaded(path, *_missing_unexpected(encoder.load_state_dict(part, strict=False)))
            return cls(encoder, "whisper")
        try:
            config = AutoConfig.from_pretrained(path)
        except OSError as error:
            raise ValueError(
                f"cannot load audio encoder {path!r}: not a local checkpoint directory and "
                f"not reachable on the model hub ({error})"
            ) from None
        if config.model_type == "whisper":
            # A full Whisper checkpoint names its tensors model.encoder.*, which
            # WhisperEncoder.from_pretrained does not strip: without this mapping every tensor
            # is reported "unexpected" and the encoder keeps its random initialisation.
            mapping = {r"^(model\.)?encoder\.": ""}
            return cls(_load_part(WhisperEncoder, path, dtype, "whisper", mapping), "whisper")
        if config.model_type in ("wav2vec2", "wav2vec2-conformer", "hubert"):
            return cls(_load_part(AutoModel, path, dtype, "wav2vec2"), "wav2vec2")
        raise ValueError(
            f"{path}: unsupported audio encoder type {config.model_type!r} "
            "(expected whisper or wav2vec2)"
        )

    def forward(
        self, audio: torch.Tensor, audio_lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """audio [B, S], audio_lengths [B] -> hidden [B, T, D], mask [B, T] (True = valid)."""
        if self.kind == "whisper":
            return self._whisper(audio, audio_lengths)
        return self._wav2vec2(audio, audio_lengths)

    def _whisper(
        self, audio: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        enc: WhisperEncoder = self.backbone
        n_mels = enc.config.num_mel_bins
        mel = log_mel_spectrogram(audio, n_mels=n_mels, lengths=lengths)  # [B, n_mels, F]
        frames = mel.shape[-1] + (mel.shape[-1] % 2)  # even, so the stride-2 conv gives F/2
        if frames > 2 * enc.config.max_source_positions:
            raise ValueError(
                f"audio of {audio.shape[-1] / SAMPLE_RATE:.1f} s is longer than the encoder's "
                f"{self.max_seconds:.0f} s window; transcribe() cuts long audio into windows"
            )
        mel = nn.functional.pad(mel, (0, frames - mel.shape[-1]))
        dtype = enc.conv1.weight.dtype
        x = nn.functional.gelu(enc.conv1(mel.to(dtype)))
        x = nn.functional.gelu(enc.conv2(x))  # [B, D, T]
        x = x.permute(0, 2, 1)  # [B, T, D]
        t = x.shape[1]
        x = x + enc.embed_positions.weight[:t]
        x = nn.functional.dropout(x, p=enc.dropout, training=self.training)
        mask = (
            torch.arange(t, device=x.device)[None, :] < _ceil_div(lengths, 2 * HOP_LENGTH)[:, None]
        )
        bias = _attention_bias(mask, x.dtype)
        for layer in enc.layers:
            x = layer(x, bias)
        return enc.layer_norm(x), mask

    def _wav2vec2(
        self, audio: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        model: Wav2Vec2Model = self.backbone
        sample_mask = torch.arange(audio.shape[1], device=audio.device)[None, :] < lengths[:, None]
        # Wav2Vec2 feature extractors normalise each utterance to zero mean, unit variance.
        n = lengths.clamp(min=1)[:, None].to(audio.dtype)
        mean = (audio * sample_mask).sum(1, keepdim=True) / n
        var = (((audio - mean) * sample_mask) ** 2).sum(1, keepdim=True) / n
        x = ((audio - mean) / torch.sqrt(var + 1e-7)) * sample_mask
        out = model(
            x.to(model.dtype), attention_mask=sample_mask.long()
        ).last_hidden_state  # [B, T, D]
        out_lengths = model._get_feat_extract_output_lengths(lengths)
        mask = torch.arange(out.shape[1], device=out.device)[None, :] < out_lengths[:, None]
        return out, mask


def _ceil_div(a: torch.Tensor, b: int) -> torch.Tensor:
    return (a + b - 1) // b


def _attention_bias(mask: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """Valid-frame mask [B, T] -> additive self-attention bias [B, 1, 1, T] hiding padded keys."""
    bias = torch.zeros(mask.shape, dtype=dtype, device=mask.device)
    bias = bias.masked_fill(~mask, torch.finfo(dtype).min)
    return bias[:, None, None, :]


# Tensors of the other half of a full checkpoint (the text decoder, the CTC or pre-training
# heads): present in the file, rightly not loaded into the encoder.
_OTHER_HALF = {
    "whisper": ("model.decoder.", "decoder.", "proj_out."),
    "wav2vec2": (
        "lm_head.",
        "quantizer.",
        "project_q.",
        "project_hid.",
        "projector.",
        "classifier.",
    ),
}


def _load_part(
    model_class: type,
    path: str,
    dtype: torch.dtype,
    kind: str,
    key_mapping: dict[str, str] | None = None,
) -> nn.Module:
    """``model_class.from_pretrained`` that raises where tensors are missing or unexpected."""
    extra = {"key_mapping": key_mapping} if key_mapping else {}
    with _quiet_load_report():
        model, info = model_class.from_pretrained(
            path, dtype=dtype, output_loading_info=True, **extra
        )
    unexpected = [k for k in info["unexpected_keys"] if not k.startswith(_OTHER_HALF[kind])]
    _check_loaded(path, sorted(info["missing_keys"]), sorted(unexpected))
    return model


def _missing_unexpected(result: object) -> tuple[list[str], list[str]]:
    return sorted(result.missing_keys), sorted(result.unexpected_keys)


def _check_loaded(path: str, missing: list[str], unexpected: list[str]) -> None:
    if missing or unexpected:
        raise ValueError(
            f"{path}: the audio encoder does not match the checkpoint: missing tensors "
            f"{missing}, unexpected tensors {unexpected}"
        )


@contextlib.contextmanager
def _quiet_load_report() -> Iterator[None]:
    """Hold back transformers' load report while loading: it lists the decoder's tensors of a
    full checkpoint as unexpected on every load, and real problems raise in ``_check_loaded``.

    A filter, not a raised level: transformers runs extra checks when that logger's level is
    at WARNING or above, and they log warnings of their own."""
    report = logging.getLogger("transformers.modeling_utils")
    report.addFilter(_not_a_load_report)
    try:
        yield
    finally:
        report.removeFilter(_not_a_load_report)


def _not_a_load_report(record: logging.LogRecord) -> bool:
    return "LOAD REPORT" not in record.getMessage()
