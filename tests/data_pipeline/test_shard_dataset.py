from __future__ import annotations

import itertools

import pytest
import torch
from torch.utils.data import DataLoader

from multibyte.data import ShardDataset


def _simulate(monkeypatch, dataset, world_size, num_workers):
    """Batches per (rank, worker), using the env variables webdataset's splitters read."""
    out = {}
    for rank, worker in itertools.product(range(world_size), range(num_workers)):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", str(world_size))
        monkeypatch.setenv("WORKER", str(worker))
        monkeypatch.setenv("NUM_WORKERS", str(num_workers))
        out[rank, worker] = list(dataset)
    return out


def _rows(batches):
    return [bytes(row.to(torch.uint8).tolist()) for batch in batches for row in batch]


@pytest.mark.parametrize("val_split", ["auto", "shard", "sample"])
def test_val_exactly_once_2_ranks_2_workers(monkeypatch, sample_shards, val_split):
    folder, samples = sample_shards
    dataset = ShardDataset(folder, split="val", batch_size=3, val_split=val_split)
    per_slot = _simulate(monkeypatch, dataset, world_size=2, num_workers=2)
    seen = []
    for batches in per_slot.values():
        for batch in batches:
            assert batch.dtype == torch.int64 and batch.ndim == 2
            assert 1 <= batch.shape[0] <= 3
        seen += _rows(batches)
    assert sorted(seen) == sorted(samples)
    assert sum(1 for b in per_slot.values() if b) >= 3  # the work is actually spread


def test_val_single_reader_in_order(sample_shards):
    folder, samples = sample_shards
    batches = list(ShardDataset(folder, split="val", batch_size=4))
    assert [tuple(b.shape) for b in batches] == [(4, 16)] * 4 + [(1, 16), (1, 9), (2, 5)]
    assert _rows(batches[:4]) == samples[:16]


def test_val_with_real_dataloader_workers(monkeypatch, sample_shards):
    folder, samples = sample_shards
    for var in ("RANK", "WORLD_SIZE", "WORKER", "NUM_WORKERS"):
        monkeypatch.delenv(var, raising=False)
    seen = []
    for rank in range(2):
        monkeypatch.setenv("RANK", str(rank))
        monkeypatch.setenv("WORLD_SIZE", "2")
        dataset = ShardDataset(folder, split="val", batch_size=2)
        seen += _rows(DataLoader(dataset, batch_size=None, num_workers=2))
    assert sorted(seen) == sorted(samples)


def test_stream_val_windows_exactly_once(monkeypatch, stream_shards):
    folder, stream = stream_shards
    dataset = ShardDataset(folder, split="val", seq_len=64, batch_size=2)
    assert dataset.stream
    per_slot = _simulate(monkeypatch, dataset, world_size=2, num_workers=2)
    windows = sorted(_rows(sum(per_slot.values(), [])), key=lambda w: stream.index(w))
    assert b"".join(windows) == stream
    assert [len(w) for w in windows] == [64] * 15 + [40]


def test_train_random_windows_resampled(monkeypatch, stream_shards):
    folder, stream = stream_shards
    monkeypatch.delenv("RANK", raising=False)
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    dataset = ShardDataset(folder, split="train", seq_len=32, batch_size=4, batches_per_epoch=25)
    batches = list(dataset)
    assert len(batches) == 25  # with_epoch: a fixed epoch although shards are resampled forever
    for batch in batches:
        assert batch.shape == (4, 32) and batch.dtype == torch.int64
        for row in _rows([batch]):
            assert row in stream  # any window of a shard's records is a piece of the stream
    starts = {stream.index(row) for row in _rows(batches)}
    assert len(starts) > 50  # random offsets, not a fixed grid
    assert _rows(list(dataset)) == _rows(batches)  # same seed and epoch -> same windows
    dataset.set_epoch(1)
    assert _rows(list(dataset)) != _rows(batches)


def test_train_samples_shuffled_batches(sample_shards):
    folder, samples = sample_shards
    dataset = ShardDataset(folder, split="train", batch_size=4, batches_per_epoch=10)
    batches = list(dataset)
    assert len(batches) == 10
    for row in _rows(batches):
        assert row in samples
    for batch in batches:
        assert batch.shape[0] == 4  # partial (tail) groups wait for more of their length


def test_bad_arguments(tmp_path, stream_shards):
    folder, _ = stream_shards
    with pytest.raises(ValueError, match="seq_len"):
        ShardDataset(folder, split="val")
    with pytest.raises(ValueError, match="val_split"):
        ShardDataset(folder, split="val", seq_len=8, val_split="rows")
    with pytest.raises(FileNotFoundError):
        ShardDataset(tmp_path / "nothing", split="val")
