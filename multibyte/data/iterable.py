"""An iterable dataset over prepared shards, for DDP and DataLoader workers."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Sequence
from functools import partial
from pathlib import Path

import numpy as np
import torch
import webdataset as wds
from torch.utils.data import IterableDataset

from multibyte.data.batching import batch_by_length
from multibyte.data.distributed import current_slot, take_every
from multibyte.data.shards import ShardError, iter_tar_samples, list_shards, load_manifest
from multibyte.data.windows import as_array, fixed_windows, pieces, random_windows

VAL_SPLITS = ("auto", "shard", "sample")


ON_BAD_SHARD = ("stop", "skip")


class BadShards:
    """What to do with a bad shard: ``stop`` raises its ShardError, ``skip`` drops the shard,
    counts it and says so on stderr (per reader process: each worker counts its own)."""

    def __init__(self, policy: str = "stop", total: int = 0) -> None:
        if policy not in ON_BAD_SHARD:
            raise ValueError(f"on_bad_shard must be one of {ON_BAD_SHARD}, got {policy!r}")
        self.policy, self.total = policy, total
        self.bad: set[str] = set()
        self.skipped = 0

    def handle(self, url: str, error: ShardError) -> None:
        if self.policy == "stop":
            raise error
        self.skipped += 1
        self.bad.add(url)
        print(f"multibyte: skipping bad shard ({self.skipped} so far): {error}", file=sys.stderr)
        if self.total and len(self.bad) >= self.total:
            raise ShardError(f"every shard is bad, nothing left to read; last: {error}") from error


def _samples(url: str, bad: BadShards | None) -> list[dict]:
    # A whole shard, checked to its end, before any of it is used: a bad one yields nothing.
    try:
        return list(iter_tar_samples(url))
    except ShardError as error:
        (bad or BadShards()).handle(url, error)
        return []


def _open_shards(
    src: Iterator[dict], key: str = "bin", bad: BadShards | None = None
) -> Iterator[np.ndarray]:
    for item in src:
        for sample in _samples(item["url"], bad):
            if key in sample:
                yield as_array(sample[key])


def _shard_windows(
    src: Iterator[dict],
    seq_len: int,
    rng: np.random.Generator,
    key: str = "bin",
    bad: BadShards | None = None,
) -> Iterator[np.ndarray]:
    # One shard at a time in memory: random windows over its concatenated records.
    for item in src:
        chunks = [s[key] for s in _samples(item["url"], bad) if key in s]
        if chunks:
            yield from random_windows(b"".join(chunks), seq_len, rng)


def _shuffle(src: Iterator[np.ndarray], size: int, rng: np.random.Generator):
    buffer: list[np.ndarray] = []
    for item in src:
        buffer.append(item)
        if len(buffer) >= size:
            i = int(rng.integers(len(buffer)))
            buffer[i], buffer[-1] = buffer[-1], buffer[i]
            yield buffer.pop()
    rng.shuffle(buffer)
    yield from buffer


def _pieces(src: Iterator[np.ndarray], seq_len: int | None) -> Iterator[np.ndarray]:
    for sample in src:
        yield from pieces(sample, seq_len)


class ShardDataset(IterableDataset):
    """Batches (LongTensor [B, T]) from ``{split}-*.tar`` shards written by ``multibyte prepare``.

    - ``stream=True`` (text): records are concatenated into one byte stream. Training takes
      random windows of ``seq_len``; validation takes fixed non-overlapping windows of the whole
      split's stream, the last one shorter.
    - ``stream=False`` (image, audio): each record is one sequence (cut into pieces of
      ``seq_len`` if longer). Sequences are batched with others of the same length, so a short
      audio tail clip ends up in its own, smaller batch; nothing is padded.
    - ``train=True``: shards are resampled with replacement (``wds.ResampledShards``), so every
      rank and worker streams forever; ``batches_per_epoch`` sets the epoch (``with_epoch``).
    - ``train=False``: an exact split, every sample (or stream window) is yielded exactly once
      across all ranks and workers. ``val_split="shard"`` uses ``wds.split_by_node`` and
      ``wds.split_by_worker``; ``"sample"`` reads every shard and keeps every n-th item;
      ``"auto"`` picks shards when there are at least as many as readers (never for streams,
      whose windows must follow the global stream).
    - Every shard is checked against the manifest before it is used (``iter_tar_samples``):
      ``on_bad_shard="stop"`` raises the ShardError, ``"skip"`` drops the shard and counts it.

    Use it with ``DataLoader(dataset, batch_size=None)``: it batches itself.
    """

    def __init__(
        self,
        source: str | os.PathLike | Sequence[str | os.PathLike],
        split: str = "train",
        seq_len: int | None = None,
        batch_size: int = 8,
        train: bool | None = None,
        stream: bool | None = None,
        batches_per_epoch: int = 1000,
        shuffle_buffer: int = 1000,
        seed: int = 0,
        val_split: str = "auto",
        drop_last: bool = False,
        on_bad_shard: str = "stop",
    ) -> None:
        super().__init__()
        self.urls = list_shards(source, split)
        if not self.urls:
            raise FileNotFoundError(f"no {split}-*.tar shards in {source}")
        if stream is None:
            manifest = load_manifest(source) if isinstance(source, (str, os.PathLike)) else None
            if manifest is None and isinstance(source, (str, os.PathLike)):
                manifest = load_manifest(Path(source).parent)
            stream = bool(manifest and manifest.get("stream", False))
        if stream and (seq_len is None or seq_len <= 0):
            raise ValueError("seq_len must be a positive window length for stream data")
        if val_split not in VAL_SPLITS:
            raise ValueError(f"val_split must be one of {VAL_SPLITS}, got {val_split!r}")
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.split = split
        self.seq_len = seq_len
        self.batch_size = batch_size
        self.train = split == "train" if train is None else train
        self.stream = stream
        self.batches_per_epoch = batches_per_epoch
        self.shuffle_buffer = shuffle_buffer
        self.seed = seed
        self.val_split = val_split
        self.drop_last = drop_last
        self.on_bad_shard = on_bad_shard
        BadShards(on_bad_shard)  # checks the name now, not in a worker
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        """Reseed training for ``epoch`` (call it like DistributedSampler.set_epoch)."""
        self.epoch = epoch

    def _rng(self) -> np.random.Generator:
        slot = current_slot()
        return np.random.default_rng([self.seed, self.epoch, slot.rank, slot.worker])

    def pipeline(self) -> wds.DataPipeline:
        """The webdataset pipeline for the calling rank and worker."""
        if self.train:
            return self._train_pipeline()
        return self._val_pipeline()

    def _train_pipeline(self) -> wds.DataPipeline:
        rng = self._rng()
        bad = BadShards(self.on_bad_shard, len(self.urls))
        shards = wds.ResampledShards(
            self.urls, seed=self.seed * 1_000_003 + self.epoch, deterministic=True
        )
        if self.stream:
            sequences = [partial(_shard_windows, seq_len=self.seq_len, rng=rng, bad=bad)]
        else:
            sequences = [
                partial(_open_shards, bad=bad),
                partial(_shuffle, size=self.shuffle_buffer, rng=rng),
            ]
            sequences.append(partial(_pieces, seq_len=self.seq_len))
        stages = [shards, *sequences, partial(batch_by_length, batch_size=self.batch_size)]
        return wds.DataPipeline(*stages).with_epoch(self.batches_per_epoch)

    def _val_pipeline(self) -> wds.DataPipeline:
        slot = current_slot()
        by_shard = self.val_split == "shard" or (
            self.val_split == "auto" and not self.stream and len(self.urls) >= slot.count
        )
        stages: list = [wds.SimpleShardList(self.urls)]
        opener = partial(_open_shards, bad=BadShards(self.on_bad_shard))
        if by_shard:
            stages += [wds.split_by_node, wds.split_by_worker, opener]
            stages.append(partial(_pieces, seq_len=self.seq_len))
        elif self.stream:
            stages += [opener, partial(fixed_windows, seq_len=self.seq_len)]
            stages.append(partial(take_every, slot=slot))
        else:
            stages += [opener, partial(take_every, slot=slot)]
            stages.append(partial(_pieces, seq_len=self.seq_len))
        stages.append(
            partial(batch_by_length, batch_size=self.batch_size, drop_last=self.drop_last)
        )
        return wds.DataPipeline(*stages)

    def __iter__(self) -> Iterator[torch.Tensor]:
        return iter(self.pipeline())
