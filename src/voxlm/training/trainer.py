"""One training phase: a loop that reads top to bottom, under HF accelerate.

config -> trainable parts -> data (length-bucketed batches) -> AdamW -> warm-up + cosine ->
loop (accumulation, clipping, logging, dev evaluation, best model, checkpoint) -> result.

The same code runs on one CPU and under ``accelerate launch`` (DDP on any backend): the model,
optimizer and data loader go through ``accelerator.prepare``; only the main process evaluates
and writes files. Phase 1 (transcription) keeps the model with the lowest dev WER, phase 2
(timestamps, no cross-entropy) the one with the lowest dev alignment loss. What trains and at
what rate is ``training.optimizer``; the dev metrics are ``training.evaluation``.
"""

from __future__ import annotations

import logging
import math
import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from accelerate import Accelerator, DistributedDataParallelKwargs
from accelerate.utils import broadcast, set_seed
from torch.utils.data import DataLoader, Dataset
from tqdm.auto import tqdm

from voxlm.config import PhaseConfig
from voxlm.data.batching import LengthBucketSampler, collate
from voxlm.model import VoxLM
from voxlm.training.checkpoint import (
    BEST_DIR,
    CHECKPOINT_FILE,
    TrainState,
    load_checkpoint,
    save_best,
    save_checkpoint,
    set_rng_state,
)
from voxlm.training.evaluation import dev_metrics, format_metrics, load_items, selection_metric
from voxlm.training.logs import TrainingLog
from voxlm.training.optimizer import param_groups, phase_lr_factor, set_trainable

logger = logging.getLogger("voxlm")

# A step-budgeted phase that the time cap stopped below this share of its steps is reported.
SHORT_RUN_SHARE = 0.9


@dataclass(frozen=True)
class PhaseResult:
    """What a phase did. ``best_metric`` is dev WER (phase 1) or dev alignment loss (phase 2)."""

    steps: int
    minutes: float
    best_metric: float | None
    best_dir: Path | None
    history: tuple[dict[str, float], ...]  # the rows of log.csv


def make_accelerator(phase: PhaseConfig) -> Accelerator:
    """The accelerator a phase asks for (``accelerate launch`` settings fill in the rest)."""
    return Accelerator(
        mixed_precision=phase.mixed_precision,
        gradient_accumulation_steps=phase.gradient_accumulation_steps,
        kwargs_handlers=[
            DistributedDataParallelKwargs(find_unused_parameters=may_skip_gradients(phase))
        ],
    )


def may_skip_gradients(phase: PhaseConfig) -> bool:
    """Whether a trainable part can get no gradient from the phase's loss in some step.

    DDP then has to search the graph for unused weights every step, so it is asked to only
    when needed: the aligner without its loss, the CTC head without CTC, the LLM's output
    head without cross-entropy, and encoders (Wav2Vec2's masking vector is used only on
    the steps that mask).
    """
    reached = {
        "encoder": False,
        "projector": phase.ce_weight > 0 or phase.alignment_weight > 0,
        "llm": phase.ce_weight > 0,
        "lora": phase.ce_weight > 0 or phase.alignment_weight > 0,
        "aligner": phase.alignment_weight > 0,
        "ctc": phase.ctc_weight > 0,
    }
    if phase.ctc_only_steps:
        reached = {**reached, "projector": False, "llm": False, "lora": False, "aligner": False}
    return not all(reached[m] for m in phase.train_modules)


def has_word_timings(dataset: Dataset) -> bool:
    """Whether any utterance of ``dataset`` has word timings (True where it cannot tell)."""
    utterances = getattr(dataset, "utterances", None)
    return utterances is None or any(u.words for u in utterances)


def train_phase(
    model: VoxLM,
    phase: PhaseConfig,
    name: str,
    train_set: Dataset,
    dev_set: Dataset,
    out_dir: Path,
    *,
    seed: int,
    resume: bool = False,
    log_every: int = 25,
    dev_limit: int = 200,
    progress: bool = True,
    num_workers: int = 0,
    accelerator: Accelerator | None = None,
) -> PhaseResult:
    """Train ``model`` in place for one phase; files go to ``out_dir``.

    Writes ``last.pt`` (resumable), ``best/`` (``VoxLM.from_pretrained``), ``log.csv``,
    ``curves.png`` and TensorBoard events. Stops at ``phase.max_steps``, ``phase.max_minutes``
    or after ``phase.epochs``, whichever comes first. With ``resume`` the phase continues from
    ``last.pt`` exactly where it stopped (a missing file starts it afresh).
    """
    out_dir = Path(out_dir)
    n_trainable = set_trainable(model, phase.train_modules)
    _warn_if_untimed(phase, name, train_set)
    accelerator = _checked(accelerator or make_accelerator(phase), phase, name)
    main = accelerator.is_main_process
    set_seed(seed)
    sampler, loader = _train_loader(train_set, phase, seed, num_workers)
    optimizer = torch.optim.AdamW(param_groups(model, phase.weight_decay), lr=phase.learning_rate)
    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    total_steps = _total_steps(phase, len(loader))
    # Not prepared, and stepped by hand after each optimizer step: accelerate's wrapper steps a
    # scheduler num_processes times per optimizer step, and this one counts optimizer steps.
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: phase_lr_factor(phase, s, total_steps)
    )
    state, rng = TrainState(), None
    if resume:
        state, rng = _restore(out_dir / CHECKPOINT_FILE, accelerator, model, optimizer, scheduler)
        # The schedule may have been lengthened (a larger max_steps): its rate, not the file's.
        _set_lr(optimizer, scheduler, phase_lr_factor(phase, state.step, total_steps))
    log = TrainingLog(out_dir, name, state.step if rng is not None else None, enabled=main)
    dev_items = load_items(dev_set, dev_limit) if main else []
    if main:
        logger.info(
            "%s: %d processes, %d trainable weights (%s), %d steps, %d batches per epoch, "
            "%d dev utterances",
            name,
            accelerator.num_processes, n_trainable, ", ".join(phase.train_modules), total_steps, len(loader),
            len(dev_items),
        )  # fmt: skip
    if rng is not None:
        set_rng_state(rng)  # last: nothing may draw random numbers between here and the loop
    loop = _Loop(accelerator, model, optimizer, scheduler, phase, name, out_dir, log, dev_items)
    loop.run(loader, sampler, state, total_steps, log_every, progress)
    log.close()
    return _phase_result(state, log, out_dir / BEST_DIR if main else None)


def _phase_result(state: TrainState, log: TrainingLog, best_dir: Path | None) -> PhaseResult:
    """The phase's result; ``best_dir`` only where this process wrote it (the main one)."""
    return PhaseResult(
        steps=state.step,
        minutes=state.elapsed / 60,
        best_metric=state.best_metric,
        best_dir=best_dir if best_dir is not None and best_dir.is_dir() else None,
        history=tuple(log.rows),
    )


def _warn_if_cut_short(phase: PhaseConfig, name: str, state: TrainState) -> None:
    """Say so when the time cap ended a step-budgeted phase well short of its steps.

    A recipe's published results are for its ``max_steps``; a slower or busier machine reaches
    fewer within ``max_minutes`` and scores worse, which the user should hear about.
    """
    if phase.max_steps is None or state.step >= SHORT_RUN_SHARE * phase.max_steps:
        return
    logger.warning(
        "%s: the %.1f-minute time cap stopped training at step %d of %d; expect worse results "
        "than those published for %d steps (raise max_minutes, or free the machine)",
        name, phase.max_minutes or 0.0, state.step, phase.max_steps, phase.max_steps,
    )  # fmt: skip


class BudgetBar:
    """A progress bar over the budget that ends the phase: its steps, or else its minutes.

    A time-boxed phase whose step total is its epochs (a million steps) would otherwise show
    that total and an ETA of days; its bar counts elapsed seconds of the budget instead.
    """

    def __init__(
        self, phase: PhaseConfig, name: str, total_steps: int, state: TrainState, enabled: bool
    ) -> None:
        self.by_time = phase.max_steps is None and phase.max_minutes is not None
        if self.by_time:
            budget = round(phase.max_minutes * 60)
            self.bar = tqdm(
                total=budget,
                initial=min(budget, round(state.elapsed)),
                desc=f"{name} ({phase.max_minutes:g}-minute budget)",
                unit="s",
                bar_format="{desc}: {percentage:3.0f}%|{bar}| {n:.0f}/{total} s {postfix}",
                disable=not enabled,
            )
        else:
            cap = f", cap {phase.max_minutes:g} min" if phase.max_minutes is not None else ""
            self.bar = tqdm(
                total=total_steps, initial=state.step, desc=f"{name}{cap}", disable=not enabled
            )

    def advance(self, state: TrainState, loss: float) -> None:
        if self.by_time:
            self.bar.update(min(self.bar.total, state.elapsed) - self.bar.n)
            self.bar.set_postfix(step=state.step, loss=f"{loss:.3f}")
        else:
            self.bar.update(state.step - self.bar.n)
            self.bar.set_postfix(loss=f"{loss:.3f}")

    def close(self) -> None:
        self.bar.close()


def _warn_if_untimed(phase: PhaseConfig, name: str, train_set: Dataset) -> None:
    """Span CTC needs word timings: say so when the phase asks for it on a corpus without."""
    if phase.span_ctc_weight and not has_word_timings(train_set):
        logger.warning(
            "%s: span_ctc_weight is %s but no training utterance has word timings, so span CTC "
            "does nothing (`voxlm timestamps` adds them)", name, phase.span_ctc_weight
        )  # fmt: skip


def _checked(accelerator: Accelerator, phase: PhaseConfig, name: str) -> Accelerator:
    """``accelerator``, once its accumulation agrees with the phase's."""
    if accelerator.gradient_accumulation_steps != phase.gradient_accumulation_steps:
        raise ValueError(
            f"{name}: the accelerator accumulates {accelerator.gradient_accumulation_steps} "
            f"batches but gradient_accumulation_steps is {phase.gradient_accumulation_steps}"
        )
    return accelerator


def _train_loader(
    train_set: Dataset, phase: PhaseConfig, seed: int, num_workers: int
) -> tuple[LengthBucketSampler, DataLoader]:
    """Length-bucketed batches of the training set, in an order fixed by (seed, epoch)."""
    sampler = LengthBucketSampler(
        train_set.durations(), phase.batch_size, seed=seed, sorted_first_epoch=phase.sortagrad
    )
    loader = DataLoader(
        train_set, batch_sampler=sampler, collate_fn=collate, num_workers=num_workers
    )
    return sampler, loader


def _total_steps(phase: PhaseConfig, n_batches: int) -> int:
    """Optimizer steps in the phase: its epochs of ``n_batches``, capped by ``max_steps``."""
    total_steps = phase.epochs * math.ceil(n_batches / phase.gradient_accumulation_steps)
    if phase.max_steps is not None:
        total_steps = min(total_steps, phase.max_steps)
    return total_steps


def _set_lr(
    optimizer: torch.optim.Optimizer, scheduler: torch.optim.lr_scheduler.LRScheduler, factor: float
) -> None:
    """Set every group's rate to ``factor`` times its peak, outside the scheduler's own steps."""
    for group, base in zip(optimizer.param_groups, scheduler.base_lrs, strict=True):
        group["lr"] = base * factor


def _restore(
    checkpoint: Path,
    accelerator: Accelerator,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
) -> tuple[TrainState, dict[str, Any] | None]:
    """Load ``checkpoint`` if it exists: the state to continue from and the RNG states."""
    if not checkpoint.is_file():
        logger.warning("no %s to resume from; starting afresh", checkpoint)
        return TrainState(), None
    state, rng = load_checkpoint(checkpoint, accelerator.unwrap_model(model), optimizer, scheduler)
    logger.info("resuming from %s at step %d", checkpoint, state.step)
    return state, rng


@dataclass
class _Loop:
    """The loop's fixed parts, so that each stage is a short method."""

    accelerator: Accelerator
    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    phase: PhaseConfig
    name: str
    out_dir: Path
    log: TrainingLog
    dev_items: list[dict[str, Any]]

    def weights(self, step: int) -> dict[str, float]:
        """The loss weights of optimizer step ``step`` (0-based)."""
        p = self.phase
        ctc_only = step < p.ctc_only_steps
        fading = max(0.0, 1 - step / p.span_ctc_steps) if p.span_ctc_steps else 0.0
        return {
            "ce_weight": 0.0 if ctc_only else p.ce_weight,
            "ctc_weight": p.ctc_weight,
            "alignment_weight": 0.0 if ctc_only else p.alignment_weight,
            "span_ctc_weight": p.span_ctc_weight * fading,
        }

    def run(
        self,
        loader: DataLoader,
        sampler: LengthBucketSampler,
        state: TrainState,
        total_steps: int,
        log_every: int,
        progress: bool,
    ) -> None:
        acc, phase = self.accelerator, self.phase
        started = time.monotonic() - state.elapsed
        bar = BudgetBar(phase, self.name, total_steps, state, progress and acc.is_main_process)
        window: dict[str, list[float]] = defaultdict(list)  # loss terms since the last log row
        last_eval = last_save = -1
        self.model.train()
        stop = state.step >= total_steps
        while not stop and state.epoch < phase.epochs:
            for batch in self._epoch(loader, sampler, state):
                state.batch_in_epoch += 1
                if self._all_empty(batch) or not self._train_step(batch, window, state.step):
                    continue  # skipped, or a micro-batch of gradient accumulation
                state.step += 1
                state.elapsed = time.monotonic() - started
                self._follow_time_budget(state, total_steps)
                bar.advance(state, loss=float(np.mean(window["loss"])))
                if _every(state.step, log_every):
                    self._log_train(state, window)
                if _every(state.step, phase.eval_every):
                    self._evaluate(state)
                    last_eval = state.step
                if _every(state.step, phase.save_every):
                    self._save(state)
                    last_save = state.step
                stop = state.step >= total_steps or self._out_of_time(state)
                if stop:
                    break
            if not stop:
                state.epoch, state.batch_in_epoch = state.epoch + 1, 0
        bar.close()
        state.elapsed = time.monotonic() - started
        if acc.is_main_process:
            _warn_if_cut_short(phase, self.name, state)
        if window:
            self._log_train(state, window)
        if last_eval != state.step:
            self._evaluate(state)
        if last_save != state.step:
            self._save(state)

    def _epoch(self, loader: DataLoader, sampler: LengthBucketSampler, state: TrainState):
        """This epoch's batches, without those a resumed run already trained on."""
        sampler.set_epoch(state.epoch)  # the order is a function of (seed, epoch) alone
        loader.set_epoch(state.epoch)
        if state.batch_in_epoch:
            return self.accelerator.skip_first_batches(loader, state.batch_in_epoch)
        return loader

    def _all_empty(self, batch: dict[str, Any] | None) -> bool:
        """True when any process's batch is None (all its files corrupt): all skip this step.

        Processes must agree, or the others would wait forever for this one's gradients.
        """
        empty = torch.tensor([batch is None], device=self.accelerator.device)
        if self.accelerator.num_processes > 1:
            empty = self.accelerator.gather(empty)
        if bool(empty.any()):
            logger.warning("%s: skipping a batch with no readable audio", self.name)
            return True
        return False

    def _train_step(self, batch: dict[str, Any], window: dict[str, list[float]], step: int) -> bool:
        """Forward and backward one batch; return True when the optimizer stepped."""
        acc = self.accelerator
        with acc.accumulate(self.model):
            out = self.model(batch, **self.weights(step))
            acc.backward(out.loss)
            if acc.sync_gradients and self.phase.clip_grad_norm > 0:
                trainable = [p for p in self.model.parameters() if p.requires_grad]
                norm = acc.clip_grad_norm_(trainable, self.phase.clip_grad_norm)
                window["grad_norm"].append(float(norm))
            self.optimizer.step()
            self.optimizer.zero_grad(set_to_none=True)
        window["loss"].append(float(out.loss.detach()))
        for term, value in out.losses.items():
            window[term].append(value)
        if not acc.sync_gradients:
            return False
        if not acc.optimizer_step_was_skipped:  # fp16 overflow: the step did not happen
            self.scheduler.step()
        return True

    def _follow_time_budget(self, state: TrainState, total_steps: int) -> None:
        """With ``max_minutes``, set the rate from the share of the time budget used."""
        if self.phase.max_minutes is None:
            return
        used = torch.tensor([min(1.0, state.elapsed / (self.phase.max_minutes * 60))])
        if self.accelerator.num_processes > 1:  # one clock for all, or the weights drift apart
            used = broadcast(used.to(self.accelerator.device), from_process=0)
        factor = phase_lr_factor(self.phase, state.step, total_steps, float(used))
        _set_lr(self.optimizer, self.scheduler, factor)

    def _out_of_time(self, state: TrainState) -> bool:
        if self.phase.max_minutes is None:
            return False
        over = torch.tensor(
            [state.elapsed >= self.phase.max_minutes * 60], device=self.accelerator.device
        )
        # The main process's clock decides for all, so every process stops at the same step.
        return bool(broadcast(over, from_process=0).item())

    def _log_train(self, state: TrainState, window: dict[str, list[float]]) -> None:
        """One CSV row of the loss terms averaged since the last row (and over processes)."""
        means = {
            k: torch.tensor(np.mean(v), device=self.accelerator.device) for k, v in window.items()
        }
        if self.accelerator.num_processes > 1:
            means = {k: self.accelerator.reduce(v, "mean") for k, v in sorted(means.items())}
        window.clear()
        self.log.write(
            {
                "step": state.step,
                "epoch": state.epoch,
                "lr": self.optimizer.param_groups[0]["lr"],
                **{k: float(v) for k, v in means.items()},
                "elapsed_s": state.elapsed,
            }
        )

    def _evaluate(self, state: TrainState) -> None:
        """Dev metrics on the main process; a better selection metric replaces best/.

        Without dev utterances there is nothing to select by, and best/ is the latest model.
        """
        acc = self.accelerator
        if acc.is_main_process:
            model = acc.unwrap_model(self.model)
            metric = math.inf
            if self.dev_items:
                with acc.autocast():
                    transcribes = state.step > self.phase.ctc_only_steps
                    metrics = dev_metrics(model, self.phase, self.dev_items, transcribes)
                self.model.train()
                row = {"step": state.step, "epoch": state.epoch, **metrics}
                self.log.write({**row, "elapsed_s": state.elapsed})
                logger.info("%s step %d: %s", self.name, state.step, format_metrics(metrics))
                metric = metrics.get(selection_metric(self.phase), math.inf)
                metric = metric if math.isfinite(metric) else math.inf
            self.log.plot()
            if state.best_metric is None or metric < state.best_metric or not self.dev_items:
                state.best_metric = metric if self.dev_items else None
                save_best(model, self.out_dir / BEST_DIR)
        acc.wait_for_everyone()

    def _save(self, state: TrainState) -> None:
        acc = self.accelerator
        if acc.is_main_process:
            save_checkpoint(
                self.out_dir / CHECKPOINT_FILE,
                acc.unwrap_model(self.model),
                self.optimizer,
                self.scheduler,
                state,
            )
        acc.wait_for_everyone()


def _every(step: int, interval: int) -> bool:
    """Whether ``step`` is on the interval; 0 or less means only at the end of the phase."""
    return interval > 0 and step % interval == 0
