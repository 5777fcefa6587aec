from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from multibyte.data import (
    LengthBatchSampler,
    RandomWindowDataset,
    SequenceDataset,
    WindowDataset,
    batch_by_length,
    collate,
    fixed_windows,
    pieces,
    random_windows,
)


def test_fixed_windows_cover_stream_once():
    stream = bytes(range(256)) * 3
    chunks = [stream[i : i + 50] for i in range(0, len(stream), 50)]
    windows = list(fixed_windows(chunks, 100))
    assert [len(w) for w in windows] == [100] * 7 + [68]
    assert b"".join(w.tobytes() for w in windows) == stream
    assert [len(w) for w in fixed_windows(chunks, 100, keep_tail=False)] == [100] * 7


def test_random_windows():
    stream = np.arange(100, dtype=np.uint8)
    rng = np.random.default_rng(0)
    windows = list(random_windows(stream, 10, rng))
    assert len(windows) == 10
    for w in windows:
        assert (np.diff(w.astype(int)) == 1).all() and len(w) == 10
    assert list(random_windows(stream[:5], 10, rng)) == []


def test_pieces():
    assert [p.tobytes() for p in pieces(b"abcdefg", 3)] == [b"abc", b"def", b"g"]
    assert [p.tobytes() for p in pieces(b"abc", None)] == [b"abc"]


def test_collate_and_length_batches():
    batch = collate([b"\x00\xff", np.array([1, 2], np.uint8)])
    assert batch.dtype == torch.int64 and batch.tolist() == [[0, 255], [1, 2]]
    with pytest.raises(ValueError, match="different lengths"):
        collate([b"ab", b"c"])
    seqs = [np.zeros(n, np.uint8) for n in [4, 4, 2, 4, 4, 2, 3]]
    shapes = [tuple(b.shape) for b in batch_by_length(seqs, 2)]
    assert shapes == [(2, 4), (2, 4), (2, 2), (1, 3)]
    assert [tuple(b.shape) for b in batch_by_length(seqs, 3, drop_last=True)] == [(3, 4)]


def test_map_style_datasets():
    stream = bytes(range(100))
    val = WindowDataset(stream, 30)
    assert len(val) == 4 and val.lengths() == [30, 30, 30, 10]
    assert torch.cat([val[i] for i in range(4)]).tolist() == list(range(100))
    with pytest.raises(IndexError):
        val[4]
    train = RandomWindowDataset(stream, 30, num_windows=8, seed=1)
    first = [train[i].tolist() for i in range(8)]
    assert all(len(w) == 30 and w == list(range(w[0], w[0] + 30)) for w in first)
    assert [train[i].tolist() for i in range(8)] == first
    train.set_epoch(1)
    assert [train[i].tolist() for i in range(8)] != first


def test_length_batch_sampler_with_dataloader():
    samples = [bytes([i]) * n for i, n in enumerate([8, 8, 8, 3, 8, 5])]
    dataset = SequenceDataset(samples)
    sampler = LengthBatchSampler(dataset.lengths(), batch_size=2, shuffle=True, seed=0)
    batches = list(DataLoader(dataset, batch_sampler=sampler, collate_fn=collate))
    assert len(batches) == len(sampler) == 4
    rows = sorted(bytes(r) for b in batches for r in b.to(torch.uint8).tolist())
    assert rows == sorted(samples)
    val = WindowDataset(bytes(range(70)), 32)
    loader = DataLoader(val, batch_sampler=LengthBatchSampler(val.lengths(), 4), collate_fn=collate)
    assert [tuple(b.shape) for b in loader] == [(2, 32), (1, 6)]
