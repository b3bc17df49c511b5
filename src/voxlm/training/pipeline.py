"""The whole training sequence behind ``voxlm train``: data -> word timings -> phase 1 -> phase 2.

Each step is a function that can run alone (``voxlm data``, ``voxlm timestamps``,
``voxlm train --phase 1``, ``--phase 2``) and the sequence skips what is already done: a
downloaded corpus, manifests that exist, a phase whose best model is on disk (unless resumed).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from accelerate import PartialState

from voxlm import weights
from voxlm.config import VoxLMConfig
from voxlm.data.manifest import UtteranceDataset, read_manifest, write_manifest
from voxlm.model import VoxLM
from voxlm.training.trainer import PhaseResult, train_phase

logger = logging.getLogger("voxlm")

SPLITS = ("train", "dev", "test")


@dataclass(frozen=True)
class TrainingResult:
    model_dir: Path
    phase1: PhaseResult | None
    phase2: PhaseResult | None


def split_names(config: VoxLMConfig) -> dict[str, str]:
    data = config.data
    return {"train": data.train_split, "dev": data.val_split, "test": data.test_split}


def prepare_data(config: VoxLMConfig, progress: bool = True) -> dict[str, Path]:
    """Manifests for train/dev/test, making them first where the corpus needs it.

    ``librispeech``: download (resumable, checksummed) and index each split;
    ``synthetic``: ``data_dir/{train,dev,test}.jsonl``, synthesised (espeak-ng, or the
    config's ``data.voices``) when missing
    (the corpus names its own splits, so the config's split names do not apply);
    ``manifest``: ``data_dir/<split>.jsonl`` (or a path given as the split) must exist.
    """
    root = Path(config.data.data_dir)
    if config.data.dataset == "synthetic":
        synthetic = {key: root / f"{key}.jsonl" for key in SPLITS}
        if not all(p.is_file() for p in synthetic.values()):
            from voxlm.data.synth import SynthOptions, synthesize_corpus

            voices = {"voices": config.data.voices} if config.data.voices else {}
            report = synthesize_corpus(
                SynthOptions(output_dir=root, seed=config.training.seed, **voices),
                progress=progress,
            )
            logger.info("synthesised %s", report.utterances)
        return synthetic
    paths = {}
    for key, split in split_names(config).items():
        path = Path(split) if split.endswith(".jsonl") else root / f"{split}.jsonl"
        paths[key] = path
    missing = [p for p in paths.values() if not p.is_file()]
    if not missing:
        return paths
    if config.data.dataset == "manifest":
        raise FileNotFoundError(
            f"data.dataset is 'manifest' but {', '.join(map(str, missing))} does not exist"
        )
    from voxlm.data.librispeech import download_librispeech, read_librispeech

    for key, split in split_names(config).items():
        if not paths[key].is_file():
            folder = download_librispeech(split, root, progress=progress)
            write_manifest(paths[key], read_librispeech(folder))
    return paths


def ensure_timestamps(
    config: VoxLMConfig, manifest: Path, model: VoxLM | None = None, progress: bool = True
) -> Path:
    """The manifest itself if every utterance has word timings, else a timed copy.

    ``data.timestamps: whisper`` times words with ``data.timestamp_model`` (forced alignment
    of the known transcript with Whisper's cross-attention); ``voxlm`` uses ``model``'s aligner.
    """
    if all(u.words is not None for u in read_manifest(manifest)):
        return manifest
    from voxlm.timestamps import VoxLMTimestamper, WhisperTimestamper, add_timestamps

    if config.data.timestamps == "voxlm":
        if model is None:
            raise ValueError("data.timestamps is 'voxlm' but no trained VoxLM model was given")
        timestamper = VoxLMTimestamper(model)
    else:
        timestamper = WhisperTimestamper.from_pretrained(config.data.timestamp_model)
    timed = manifest.with_name(manifest.stem + ".timed.jsonl")
    summary = add_timestamps(manifest, timed, timestamper, progress=progress)
    logger.info("word timings for %s: %s", manifest, summary)
    return timed


def load_split(path: Path, max_duration: float) -> UtteranceDataset:
    utterances = read_manifest(path)
    kept = [u for u in utterances if u.duration <= max_duration]
    if len(kept) < len(utterances):
        logger.info(
            "%s: skipping %d utterances longer than %.0f s",
            path,
            len(utterances) - len(kept),
            max_duration,
        )
    if not kept:
        raise ValueError(f"{path}: no utterances of at most {max_duration} s")
    return UtteranceDataset(kept)


def run_phase(
    config: VoxLMConfig,
    phase: int,
    model: VoxLM,
    manifests: dict[str, Path],
    *,
    resume: bool = False,
    progress: bool = True,
) -> PhaseResult:
    """Train one phase and return with ``model`` holding that phase's best weights."""
    settings = config.training.phase1 if phase == 1 else config.training.phase2
    out_dir = Path(config.output.checkpoint_dir) / config.model.name / f"phase{phase}"
    result = train_phase(
        model,
        settings,
        f"phase{phase}",
        load_split(manifests["train"], config.data.max_duration),
        load_split(manifests["dev"], config.data.max_duration),
        out_dir,
        seed=config.training.seed,
        resume=resume,
        log_every=config.training.log_every,
        progress=progress,
        num_workers=config.training.num_workers,
    )
    if result.best_dir is not None:  # the best weights into this model: no second copy in memory
        _, state = weights.read_model_directory(Path(result.best_dir))
        model.load_trained_state(state, source=str(result.best_dir))
    return result


def run_training(
    config: VoxLMConfig,
    *,
    phases: tuple[int, ...] = (1, 2),
    resume: bool = False,
    init: str | Path | None = None,
    progress: bool = True,
) -> TrainingResult:
    """Data, timings, the requested phases, and the final model in ``final_model_dir/<name>``.

    Phase 2 alone starts from ``init`` or else phase 1's best model of the same config.
    """
    manifests = prepare_data(config, progress=progress)
    if init is not None:
        model = VoxLM.from_pretrained(init)
    elif phases[0] == 2:
        phase1_best = Path(config.output.checkpoint_dir) / config.model.name / "phase1" / "best"
        if not phase1_best.is_dir():
            raise FileNotFoundError(f"phase 2 needs phase 1's model: {phase1_best} (or --init DIR)")
        model = VoxLM.from_pretrained(phase1_best)
    else:
        model = VoxLM.from_config(config.model)
    results: dict[int, PhaseResult] = {}
    for phase in phases:
        if phase == 2:
            manifests = dict(manifests)
            for key in ("train", "dev"):
                manifests[key] = ensure_timestamps(config, manifests[key], model, progress)
        results[phase] = run_phase(
            config, phase, model, manifests, resume=resume, progress=progress
        )
    model_dir = Path(config.output.final_model_dir) / config.model.name
    state = PartialState()
    if state.is_main_process:  # one writer: every process holds the same weights
        model.save_pretrained(model_dir)  # swapped in whole, like the checkpoints' best model
        logger.info("final model: %s", model_dir)
    state.wait_for_everyone()
    return TrainingResult(model_dir, results.get(1), results.get(2))
