import numpy as np
import torch

from voxlm.data.batching import LengthBucketSampler, collate
from voxlm.results import WordTiming


def _durations(n=230, seed=0):
    return np.random.default_rng(seed).uniform(0.5, 15.0, n).tolist()


def test_sampler_covers_every_index_once_and_is_deterministic():
    sampler = LengthBucketSampler(_durations(), batch_size=8, seed=3, bucket_size_multiplier=5)
    batches = list(sampler)
    assert sorted(i for b in batches for i in b) == list(range(230))
    assert len(batches) == len(sampler)
    again = LengthBucketSampler(_durations(), batch_size=8, seed=3, bucket_size_multiplier=5)
    assert list(again) == batches
    sampler.set_epoch(1)
    assert list(sampler) != batches
    sampler.set_epoch(0)
    assert list(sampler) == batches


def test_sampler_cuts_padding():
    durations = np.asarray(_durations(1000))

    def padding(batches):
        return sum(durations[b].max() * len(b) - durations[b].sum() for b in batches)

    bucketed = list(LengthBucketSampler(durations, batch_size=16, seed=0))
    rng = np.random.default_rng(0).permutation(1000)
    random_batches = [rng[i : i + 16] for i in range(0, 1000, 16)]
    assert padding(bucketed) < 0.2 * padding(random_batches)


def test_an_epoch_order_depends_on_seed_and_epoch_alone():
    """What resuming relies on: a new sampler replays the interrupted epoch's order."""
    full = LengthBucketSampler(_durations(), batch_size=8, seed=1, bucket_size_multiplier=4)
    full.set_epoch(2)
    expected = list(full)
    resumed = LengthBucketSampler(_durations(), batch_size=8, seed=1, bucket_size_multiplier=4)
    resumed.set_epoch(2)
    assert list(resumed) == expected and len(resumed) == len(expected)
    resumed.set_epoch(3)
    assert list(resumed) != expected


def test_sampler_without_shuffle_is_sorted_within_pools():
    durations = _durations(40)
    batches = list(
        LengthBucketSampler(durations, 4, seed=0, shuffle=False, bucket_size_multiplier=10)
    )
    flat = [durations[i] for b in batches for i in b]
    assert flat == sorted(flat)


def _item(uid, n, words=True):
    return {
        "id": uid,
        "audio": np.full(n, 0.5, dtype=np.float32),
        "text": f"text {uid}",
        "words": [WordTiming("text", 0.0, 0.1)] if words else None,
    }


def test_collate_pads_and_drops_failed_items():
    batch = collate([_item("a", 5), None, _item("b", 3, words=False)])
    assert batch["audio"].shape == (2, 5) and batch["audio"].dtype == torch.float32
    assert batch["audio_lengths"].tolist() == [5, 3]
    assert batch["audio"][1, 3:].abs().sum() == 0 and batch["audio"][1, :3].eq(0.5).all()
    assert batch["ids"] == ["a", "b"] and batch["texts"] == ["text a", "text b"]
    assert batch["words"][0][0].word == "text" and batch["words"][1] is None
    assert collate([_item("c", 2, words=False)])["words"] is None
    assert collate([None, None]) is None


def test_sortagrad_plays_the_first_epoch_short_to_long_then_shuffles():
    durations = _durations()
    sampler = LengthBucketSampler(durations, batch_size=8, seed=3, sorted_first_epoch=True)
    longest = [max(durations[i] for i in b) for b in sampler]
    assert longest == sorted(longest)
    assert sorted(i for b in sampler for i in b) == list(range(230))
    sampler.set_epoch(1)
    later = [max(durations[i] for i in b) for b in sampler]
    assert later != sorted(later)
