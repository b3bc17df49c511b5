"""Configuration: frozen dataclasses, the variant registry, and YAML files with inheritance.

A config is four sections, each a frozen dataclass: ``model`` (which backbones and how they are
joined), ``training`` (phase 1 transcription, phase 2 timestamp alignment), ``data`` and ``output``.
YAML files name their parent with ``inherits:`` and are merged key by key; ``key.path=value``
overrides come last. Every key is checked against the dataclasses so that a typo fails loudly with
its dotted path and the closest valid name instead of being silently ignored.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DEFAULT_VARIANT = "voxlm-2b"
DEFAULT_INSTRUCTION = "Transcribe the audio."
PROMPT_FORMATS = ("plain", "chat")


@dataclass(frozen=True)
class ModelConfig:
    """Which encoder and LLM, and how they are joined.

    ``audio_encoder`` / ``llm_model`` are hub names or local paths. When ``audio_encoder_config`` /
    ``llm_config`` are given (a transformers config as a dict, with ``model_type``), the backbone is
    built from it with random weights instead: that is how ``voxlm-tiny`` and the tests run offline.
    """

    name: str = DEFAULT_VARIANT
    audio_encoder: str = "openai/whisper-small"
    llm_model: str = "Qwen/Qwen2-1.5B"
    audio_encoder_config: dict | None = None
    llm_config: dict | None = None
    # None: the LLM's own; "char": the built-in character tokenizer; "byte": a byte-level stand-in
    # padded to llm_config's vocab_size (what random_weights=True gives a hub-named LLM)
    tokenizer: str | None = None
    freeze_encoder: bool = True
    projector_stack: int = 4  # encoder frames per LLM audio token: 4 x 20 ms = 80 ms
    projector_hidden: int | None = None  # None: the LLM's hidden size
    projector_activation: str = "gelu"  # "gelu" or "swiglu"
    use_lora: bool = True
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    lora_target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    aligner_dim: int = 256
    ctc: bool = False  # an auxiliary CTC head on the encoder output (needed from scratch)
    # What the CTC head spells: "tokens", the LLM's own (joint CTC decoding can then vote on
    # each token); "characters", the 28 of voxlm.spelling (an LLM whose vocabulary is too large
    # for a token head; its letters reach the LLM through ctc_embeddings)
    ctc_units: str = "tokens"
    ctc_embeddings: bool = False  # add CTC-posterior-weighted token embeddings to the audio input
    ctc_positions: bool = False  # audio embeddings take the positions of the tokens CTC hears
    instruction: str = DEFAULT_INSTRUCTION
    # "plain": [instruction + newline][audio][newline][transcript], the shortest layout; "chat":
    # the LLM's own chat template around it (an instruct model's default system prompt included:
    # SmolLM2's adds ~20 tokens to every sequence).
    prompt_format: str = "plain"
    dtype: str = "float32"  # "float32", "bfloat16" or "float16" for the LLM and encoder weights
    # The longest stretch of audio transcribe decodes at once: long audio is cut into windows of
    # speech of at most this. None: the encoder's span (Whisper's 30 s, what it was trained on).
    # A model trained only on short clips writes much worse on windows longer than those.
    window_seconds: float | None = None
    # Pack speech regions (Silero's) together into windows up to window_seconds, as Whisper was
    # trained on continuous 30 s windows; off, each region is decoded alone, as a model trained
    # on single utterances heard them.
    pack_windows: bool = True

    def __post_init__(self) -> None:
        if self.window_seconds is not None and self.window_seconds <= 0:
            raise ValueError(f"model.window_seconds must be > 0, got {self.window_seconds}")
        if self.projector_stack < 1:
            raise ValueError(f"model.projector_stack must be >= 1, got {self.projector_stack}")
        if self.projector_activation not in ("gelu", "swiglu"):
            raise ValueError(
                f"model.projector_activation must be 'gelu' or 'swiglu', "
                f"got {self.projector_activation!r}"
            )
        if self.ctc_embeddings and not self.ctc:
            raise ValueError("model.ctc_embeddings needs model.ctc: true (it reads the CTC head)")
        if self.ctc_positions and not self.ctc:
            raise ValueError("model.ctc_positions needs model.ctc: true (it reads the CTC head)")
        if self.ctc_units not in ("tokens", "characters"):
            raise ValueError(
                f"model.ctc_units must be 'tokens' or 'characters', got {self.ctc_units!r}"
            )
        if self.ctc_positions and self.ctc_units != "tokens":
            raise ValueError(
                "model.ctc_positions needs model.ctc_units: tokens (it counts the LLM's tokens)"
            )
        if self.prompt_format not in PROMPT_FORMATS:
            raise ValueError(
                f"model.prompt_format must be one of {', '.join(PROMPT_FORMATS)}, "
                f"got {self.prompt_format!r}"
            )
        if self.tokenizer not in (None, "char", "byte"):
            raise ValueError(
                f"model.tokenizer must be null, 'char' or 'byte', got {self.tokenizer!r}"
            )
        if self.dtype not in ("float32", "bfloat16", "float16"):
            raise ValueError(
                f"model.dtype must be float32, bfloat16 or float16, got {self.dtype!r}"
            )


@dataclass(frozen=True)
class PhaseConfig:
    """One training phase. Loss = ce_weight*CE + ctc_weight*CTC + alignment_weight*alignment."""

    epochs: int = 3
    batch_size: int = 8
    learning_rate: float = 1e-4
    weight_decay: float = 0.01
    warmup_steps: int = 500
    max_steps: int | None = None  # stop after this many optimizer steps (None: epochs decide)
    max_minutes: float | None = None  # stop after this much wall time
    gradient_accumulation_steps: int = 1
    clip_grad_norm: float = 1.0
    ce_weight: float = 1.0
    ctc_weight: float = 0.0
    alignment_weight: float = 0.0
    train_modules: tuple[str, ...] = ("projector", "lora")  # see trainer.set_trainable
    eval_every: int = 500
    save_every: int = 500
    mixed_precision: str = "no"  # accelerate's: "no", "bf16", "fp16"
    sortagrad: bool = False  # first epoch from the shortest utterances to the longest
    # The first N optimizer steps train CTC alone (cross-entropy and alignment off): an encoder
    # trained from scratch learns to spell ~2x sooner without the LLM's cost per step, and the
    # LLM then learns to read its audio within a few hundred steps (BENCHMARKS.md). The learning
    # rate warms up again where they end.
    ctc_only_steps: int = 0
    # CTC inside each timed word's frames, added with this weight at step 0 and fading linearly
    # to nothing at step span_ctc_steps. From scratch, CTC over whole utterances may stay on its
    # all-blank plateau for hundreds of steps (4 seeds of 4 left it at steps 129-149 with this,
    # against 152-166 and one never without it; BENCHMARKS.md). Needs word timings in the data.
    span_ctc_weight: float = 0.0
    span_ctc_steps: int = 0

    def __post_init__(self) -> None:
        if self.span_ctc_weight < 0 or self.span_ctc_steps < 0:
            raise ValueError(
                f"span_ctc_weight and span_ctc_steps must be >= 0, got "
                f"{self.span_ctc_weight} and {self.span_ctc_steps}"
            )
        if self.span_ctc_weight and not self.span_ctc_steps:
            raise ValueError(
                f"span_ctc_weight is {self.span_ctc_weight} but span_ctc_steps is 0: "
                "say over how many steps the span CTC loss fades out"
            )
        if self.ctc_only_steps < 0:
            raise ValueError(f"ctc_only_steps must be >= 0, got {self.ctc_only_steps}")
        if self.ctc_only_steps and self.ctc_weight <= 0:
            raise ValueError(
                f"ctc_only_steps is {self.ctc_only_steps} but ctc_weight is {self.ctc_weight}: "
                "CTC-only steps need ctc_weight > 0"
            )


def _phase2_default() -> PhaseConfig:
    return PhaseConfig(
        epochs=1,
        learning_rate=1e-3,
        warmup_steps=100,
        ce_weight=0.0,
        alignment_weight=1.0,
        train_modules=("aligner",),
    )


@dataclass(frozen=True)
class TrainingConfig:
    phase1: PhaseConfig = field(default_factory=PhaseConfig)
    phase2: PhaseConfig = field(default_factory=_phase2_default)
    seed: int = 42
    num_workers: int = 2
    log_every: int = 25


@dataclass(frozen=True)
class DataConfig:
    """Where the speech comes from: LibriSpeech splits, JSONL manifests, or synthetic speech."""

    dataset: str = "librispeech"  # "librispeech", "manifest" or "synthetic"
    data_dir: str = "data"
    train_split: str = "train-clean-100"
    val_split: str = "dev-clean"
    test_split: str = "test-clean"
    max_duration: float = 30.0  # seconds; longer utterances are skipped in training
    timestamps: str = "whisper"  # how a corpus without word timings gets them: "whisper" or "voxlm"
    timestamp_model: str = "openai/whisper-small"
    # synthetic only: the voices to speak with (espeak-ng names or flite:<voice>); () = the
    # synthesiser's own (voxlm.data.synth.DEFAULT_VOICES)
    voices: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.dataset not in ("librispeech", "manifest", "synthetic"):
            raise ValueError(
                f"data.dataset must be librispeech, manifest or synthetic, got {self.dataset!r}"
            )


@dataclass(frozen=True)
class OutputConfig:
    output_dir: str = "output"
    checkpoint_dir: str = "output/checkpoints"
    final_model_dir: str = "output/models"  # the model lands in <final_model_dir>/<model.name>
    log_dir: str = "output/logs"


@dataclass(frozen=True)
class VoxLMConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    data: DataConfig = field(default_factory=DataConfig)
    output: OutputConfig = field(default_factory=OutputConfig)

    def __post_init__(self) -> None:
        for name in ("phase1", "phase2"):
            if getattr(self.training, name).span_ctc_weight and self.model.ctc_units != "tokens":
                raise ValueError(
                    f"training.{name}.span_ctc_weight needs model.ctc_units: tokens "
                    f"(span CTC counts the LLM's tokens in each word), got {self.model.ctc_units!r}"
                )

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# The variant registry is the YAML files shipped in the package: a variant is a file that names
# itself (its own ``model.name`` is its file name); the other files are the shared defaults
# (base.yaml) and training recipes that inherit a variant.
CONFIG_DIR = Path(__file__).parent / "configs"
_LEGACY_PREFIX = "qwen-stt-"


@functools.cache
def variant_names() -> tuple[str, ...]:
    """The names of the variants, from the package's config files."""
    names = []
    for path in sorted(CONFIG_DIR.glob("*.yaml")):
        with open(path, encoding="utf-8") as f:
            values = yaml.safe_load(f) or {}
        if (values.get("model") or {}).get("name") == path.stem:
            names.append(path.stem)
    return tuple(names)


def legacy_names() -> dict[str, str]:
    """Legacy ``qwen-stt-*`` names and the ``voxlm-*`` variant each now is."""
    return {name.replace("voxlm-", _LEGACY_PREFIX): name for name in variant_names()}


def resolve_variant(name: str) -> str:
    """Map a legacy ``qwen-stt-*`` name to its ``voxlm-*`` name; raise on unknown names."""
    name = legacy_names().get(name, name)
    if name not in variant_names():
        raise ValueError(f"unknown variant {name!r}; expected one of: {', '.join(variant_names())}")
    return name


def variant_path(name: str) -> Path:
    """The config file of a variant (legacy names accepted)."""
    return CONFIG_DIR / f"{resolve_variant(name)}.yaml"


def get_config(name: str = DEFAULT_VARIANT) -> VoxLMConfig:
    """The config of a named variant (legacy names accepted), read from its file."""
    name = resolve_variant(name)
    try:
        return _build(VoxLMConfig, _defaults(name), "")
    except ValueError as error:
        raise ValueError(f"{variant_path(name)}: {error}") from None


def _defaults(name: str) -> dict:
    """Every key's starting value for a config whose model is ``name``: the variant's file
    over the dataclass defaults where ``name`` is a variant, the dataclass defaults otherwise."""
    defaults = VoxLMConfig().to_dict()
    if not _is_variant(name):
        return defaults
    return _merge(defaults, _read_yaml(variant_path(name)))


def _coerce(value: Any, hint: Any, path: str) -> Any:
    """Check a YAML value against a field's type hint, converting lists to tuples."""
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(value, arg, path)
            except ValueError as error:
                errors.append(str(error))
        raise ValueError(errors[0])
    if dataclasses.is_dataclass(hint):
        return _build(hint, value, path)
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ValueError(f"{path}: expected a list, got {value!r}")
        return tuple(_coerce(v, args[0], f"{path}[{i}]") for i, v in enumerate(value))
    if origin is dict or hint is dict:
        if not isinstance(value, dict):
            raise ValueError(f"{path}: expected a mapping, got {value!r}")
        return value
    if hint is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if hint is float and isinstance(value, str):
        try:  # YAML reads 1e-3 (no dot) as a string
            return float(value)
        except ValueError:
            pass
    if hint in (int, float, str, bool) and not (
        isinstance(value, hint) and not (hint is int and isinstance(value, bool))
    ):
        raise ValueError(f"{path}: expected {hint.__name__}, got {value!r}")
    return value


def _build(cls: type, values: Any, path: str) -> Any:
    if not isinstance(values, dict):
        raise ValueError(f"{path or 'config'}: expected a mapping, got {values!r}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    kwargs = {}
    for key, value in values.items():
        dotted = f"{path}.{key}" if path else str(key)
        if key not in names:
            close = difflib.get_close_matches(str(key), names, n=1)
            suggestion = f"{path}.{close[0]}" if path else (close[0] if close else "")
            hint = f"; did you mean {suggestion!r}?" if close else ""
            raise ValueError(f"unknown config key {dotted!r}{hint} (valid: {', '.join(names)})")
        kwargs[key] = _coerce(value, hints[key], dotted)
    try:
        return cls(**kwargs)
    except ValueError as error:
        raise ValueError(f"{path or 'config'}: {error}") from None


def config_from_dict(values: dict) -> VoxLMConfig:
    """Build a config from nested dicts, starting from the named variant's defaults."""
    name = (values.get("model") or {}).get("name", DEFAULT_VARIANT)
    return _build(VoxLMConfig, _merge(_defaults(name), values), "")


def _is_variant(name: str) -> bool:
    return name in variant_names() or name in legacy_names()


def _merge(base: dict, update: dict) -> dict:
    merged = dict(base)
    for key, value in update.items():
        if (
            isinstance(value, dict)
            and isinstance(merged.get(key), dict)
            and key
            not in (
                "audio_encoder_config",
                "llm_config",
            )
        ):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def _read_yaml(path: Path, seen: tuple[Path, ...] = ()) -> dict:
    """Read a YAML file and the chain of files it ``inherits:`` (paths relative to it)."""
    path = path.resolve()
    if path in seen:
        raise ValueError(f"{path}: circular 'inherits:' chain")
    if not path.is_file():
        raise FileNotFoundError(f"config file not found: {path}")
    with open(path, encoding="utf-8") as f:
        values = yaml.safe_load(f) or {}
    if not isinstance(values, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    parent = values.pop("inherits", None)
    if parent is None:
        return values
    parent_path = (path.parent / parent) if not Path(parent).is_absolute() else Path(parent)
    if parent_path.suffix == "":
        parent_path = parent_path.with_suffix(".yaml")
    return _merge(_read_yaml(parent_path, (*seen, path)), values)


def apply_overrides(values: dict, overrides: list[str] | Mapping[str, Any]) -> dict:
    """Set dotted keys: ``key.path=value`` strings, values parsed as YAML (``3``, ``true``,
    ``[a, b]``), or a mapping from dotted key to value, taken as given (for callers in Python)."""
    values = _merge({}, values)
    if isinstance(overrides, Mapping):
        pairs = list(overrides.items())
    else:
        pairs = []
        for override in overrides:
            if "=" not in override:
                raise ValueError(f"override {override!r} must look like 'section.key=value'")
            dotted, raw = override.split("=", 1)
            pairs.append((dotted.strip(), yaml.safe_load(raw)))
    for dotted, value in pairs:
        *sections, key = dotted.split(".")
        node = values
        for section in sections:
            node = node.setdefault(section, {})
            if not isinstance(node, dict):
                raise ValueError(f"override {dotted!r}: {section!r} is not a section")
        node[key] = value
    return values


def load_config(
    path: str | Path, overrides: list[str] | Mapping[str, Any] | None = None
) -> VoxLMConfig:
    """Load a YAML config (following ``inherits:``) and apply overrides (see apply_overrides)."""
    values = apply_overrides(_read_yaml(Path(path)), overrides or [])
    try:
        return config_from_dict(values)
    except ValueError as error:
        raise ValueError(f"{path}: {error}") from None
