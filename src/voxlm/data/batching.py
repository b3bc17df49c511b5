"""Batches: length-bucketed sampling (less padding) and collation into the batch dict.

Batch dict (what `VoxLM.forward` consumes):
    audio          float32 [B, S]  mono 16 kHz, right-padded with zeros
    audio_lengths  long [B]        valid samples per row
    texts          list[str]       B transcripts
    words          list[list[WordTiming] | None] | None  per word (word, start, end) in seconds
    ids            list[str]       B utterance ids
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
import torch.utils.data


class LengthBucketSampler(torch.utils.data.Sampler[list[int]]):
    """Yields batches of indices of similar duration, in a random but reproducible order.

    Each epoch shuffles all indices, cuts them into pools of `batch_size *
    bucket_size_multiplier`, sorts each pool by duration and cuts it into batches, then
    shuffles the batches: padding shrinks while batch composition still varies per epoch.
    The order depends only on (seed, epoch), so a resumed run replays the epoch's order and
    the trainer skips the batches it has already consumed (accelerate's skip_first_batches).

    `sorted_first_epoch` plays epoch 0 from the shortest batches to the longest ("SortaGrad",
    Amodei et al. 2016, Deep Speech 2): a model from scratch meets short, easy utterances
    first, and early steps are cheaper.
    """

    def __init__(
        self,
        durations: Sequence[float],
        batch_size: int,
        seed: int,
        shuffle: bool = True,
        bucket_size_multiplier: int = 50,
        sorted_first_epoch: bool = False,
    ) -> None:
        if batch_size < 1 or bucket_size_multiplier < 1:
            raise ValueError(
                f"batch_size and bucket_size_multiplier must be >= 1, got {batch_size}, "
                f"{bucket_size_multiplier}"
            )
        self.durations = np.asarray(durations, dtype=np.float64)
        self.batch_size = batch_size
        self.seed = seed
        self.shuffle = shuffle
        self.bucket_size_multiplier = bucket_size_multiplier
        self.epoch = 0
        self.sorted_first_epoch = sorted_first_epoch

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch whose order the next iteration yields."""
        self.epoch = epoch

    def batches(self) -> list[list[int]]:
        """All batches of the current epoch, in order."""
        rng = np.random.default_rng([self.seed, self.epoch])
        n = len(self.durations)
        order = rng.permutation(n) if self.shuffle else np.arange(n)
        pool_size = self.batch_size * self.bucket_size_multiplier
        batches = []
        for begin in range(0, n, pool_size):
            pool = order[begin : begin + pool_size]
            pool = pool[np.argsort(self.durations[pool], kind="stable")]
            batches += [
                pool[i : i + self.batch_size].tolist() for i in range(0, len(pool), self.batch_size)
            ]
        if self.shuffle:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        if self.sorted_first_epoch and self.epoch == 0:
            batches.sort(key=lambda batch: float(self.durations[batch].max()))
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        yield from self.batches()

    def __len__(self) -> int:
        full_pools, rest = divmod(
            len(self.durations), self.batch_size * self.bucket_size_multiplier
        )
        n_batches = full_pools * self.bucket_size_multiplier + -(-rest // self.batch_size)
        return n_batches


def collate(items: list[dict[str, Any] | None]) -> dict[str, Any] | None:
    """Build the batch dict from dataset items; None items (unreadable audio) are dropped.

    Returns None when every item failed, so the training loop can skip the step.
    """
    items = [item for item in items if item is not None]
    if not items:
        return None
    lengths = [len(item["audio"]) for item in items]
    audio = torch.zeros(len(items), max(lengths), dtype=torch.float32)  # [B, S]
    for row, item in enumerate(items):
        audio[row, : lengths[row]] = torch.as_tensor(item["audio"], dtype=torch.float32)
    words = [item.get("words") for item in items]
    return {
        "audio": audio,
        "audio_lengths": torch.tensor(lengths, dtype=torch.long),
        "texts": [item["text"] for item in items],
        "words": None if all(w is None for w in words) else words,
        "ids": [item["id"] for item in items],
    }
