"""A mixture of byte sources for one multimodal model: which source each sequence comes from.

Every training sequence is the source's header (``header.py``), then a window of the source's
``data_len`` bytes (``sourcedata.py`` says how each kind of source is cut). The source of each
sequence is drawn with probability

    p_i ∝ weight_i · n_i ** alpha      (n_i: the source's training bytes)

so ``alpha = 0`` follows the weights alone and ``alpha = 1`` also scales them by size; values
between temper the big sources (the "temperature" of multilingual sampling, alpha = 1/T).

The draw is made per sequence (``mix_by="sequence"``: a batch mixes sources row by row, every
row ``data_len`` long) or per batch (``mix_by="batch"``: the whole batch is one source's, in that
source's own shape: its rows and its window length). Per batch, a weight counts optimizer
updates rather than sequences, so a mixture can give each modality the updates and the batch
shape its specialist would get.

Sources are streamed: a reader holds one decoded shard per source, whatever the data's size.
Batch number b of rank r is a pure function of (seed, b, r), so a run resumed at step s reads
exactly the batches the uninterrupted run read after step s:

- the batch's sources (one per row, or one for the batch) come from a generator keyed by
  (seed, b, r);
- the shard of source i is the same for a *span* of batches (about one shard's worth of that
  source's windows), drawn by its share of the source's bytes from a generator keyed by
  (seed, r, i, b // span). With at least as many shards as ranks, rank r draws only from shards
  r, r + world_size, ... (shards are split by rank);
- the window inside that shard comes from a generator keyed by (seed, b, r, row).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, IterableDataset, Sampler

from multibyte.data.batching import batch_by_length
from multibyte.data.distributed import current_slot, take_every
from multibyte.data.sourcedata import SourceReader, SourceSpec, ValidationSpec
from multibyte.data.windows import as_array, fixed_windows, pieces

SHARD_SALT, WINDOW_SALT = 0x5A4D, 0x71E3  # keep the three generators' streams apart


def mixture_probabilities(
    sizes: Sequence[float], weights: Sequence[float], alpha: float = 0.0
) -> np.ndarray:
    """p_i ∝ weight_i · size_i ** alpha, as float64 summing to 1."""
    sizes = np.asarray(sizes, dtype=np.float64)
    weights = np.asarray(weights, dtype=np.float64)
    if len(sizes) != len(weights) or not len(sizes):
        raise ValueError("one weight per source, and at least one source")
    if (weights < 0).any() or not np.isfinite(weights).all() or weights.sum() <= 0:
        raise ValueError(f"weights must be non-negative and not all zero, got {weights.tolist()}")
    if (sizes <= 0).any():
        raise ValueError(f"every source needs training data, got sizes {sizes.tolist()}")
    raw = weights * sizes**alpha
    return raw / raw.sum()


MIX_BY = ("sequence", "batch")


def shard_spans(specs: Sequence[SourceSpec], windows_per_batch: Sequence[float]) -> list[int]:
    """Batches that one shard of each source serves: about its windows over the source's
    expected windows per batch, so that a shard is left once it has given roughly its worth."""
    spans = []
    for spec, per_batch in zip(specs, windows_per_batch, strict=True):
        mean_bytes = sum(s.size for s in spec.shards) / len(spec.shards)
        windows = max(1.0, mean_bytes / spec.data_len)
        spans.append(max(1, math.ceil(windows / per_batch)) if per_batch > 0 else 1)
    return spans


class MixtureBatchSampler(Sampler[list[tuple[int, int, int]]]):
    """Batches of ``(source, batch number, row)``; batch b is a pure function of (seed, b, rank).

    With ``rows`` None each of the ``batch_size`` rows picks its source with ``probabilities``;
    with ``rows`` (one count per source) the batch picks one source and has that source's count
    of rows. ``MixtureDataset`` turns the triple into that source's header and window.
    Numbering starts at ``start_batch`` and continues across Lightning's epochs.
    """

    def __init__(
        self,
        probabilities: Sequence[float],
        batch_size: int,
        seed: int = 0,
        rank: int = 0,
        start_batch: int = 0,
        batches_per_epoch: int = 1000,
        rows: Sequence[int] | None = None,
    ) -> None:
        self.probabilities = np.asarray(probabilities, dtype=np.float64)
        counts = [batch_size] if rows is None else list(rows)
        if any(count <= 0 for count in counts):
            raise ValueError(f"batch sizes must be positive, got {counts}")
        if rows is not None and len(counts) != len(self.probabilities):
            raise ValueError(f"one batch size per source, got {counts}")
        self.batch_size, self.seed, self.rank = batch_size, seed, rank
        self.rows = None if rows is None else counts
        self.next_batch, self.batches_per_epoch = start_batch, batches_per_epoch

    def sources(self, number: int) -> list[int]:
        """The source of each row of batch ``number``."""
        rng = np.random.default_rng([self.seed, number, self.rank])
        if self.rows is not None:
            source = int(rng.choice(len(self.probabilities), p=self.probabilities))
            return [source] * self.rows[source]
        drawn = rng.choice(len(self.probabilities), size=self.batch_size, p=self.probabilities)
        return [int(s) for s in drawn]

    def windows_per_batch(self) -> list[float]:
        """Each source's expected windows in one batch (for ``shard_spans``)."""
        counts = self.rows or [self.batch_size] * len(self.probabilities)
        return [float(p) * n for p, n in zip(self.probabilities, counts, strict=True)]

    def batch(self, number: int) -> list[tuple[int, int, int]]:
        return [(source, number, row) for row, source in enumerate(self.sources(number))]

    def __iter__(self) -> Iterator[list[tuple[int, int, int]]]:
        for _ in range(self.batches_per_epoch):
            yield self.batch(self.next_batch)
            self.next_batch += 1

    def __len__(self) -> int:
        return self.batches_per_epoch


class MixtureDataset(Dataset):
    """Item ``(source, number, row)``: that source's header, then a window of it (see module)."""

    def __init__(
        self,
        specs: Sequence[SourceSpec],
        headers: Sequence[bytes],
        spans: Sequence[int],
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        self.specs, self.spans = list(specs), list(spans)
        self.headers = [as_array(h) for h in headers]
        self.seed, self.rank, self.world_size = seed, rank, world_size
        self.shards = [self._my_shards(spec) for spec in self.specs]
        self._readers: dict[int, SourceReader] = {}  # per process: made on first use

    def _my_shards(self, spec: SourceSpec) -> tuple[np.ndarray, np.ndarray]:
        """The shards this rank draws from and their chances (split by rank when it can be)."""
        count = len(spec.shards)
        mine = np.arange(count)
        if self.world_size > 1 and count >= self.world_size:
            mine = mine[self.rank :: self.world_size]
        weights = spec.shard_weights[mine]
        return mine, weights / weights.sum()

    def reader(self, source: int) -> SourceReader:
        if source not in self._readers:
            self._readers[source] = SourceReader(self.specs[source])
        return self._readers[source]

    def shard(self, source: int, number: int) -> int:
        """The shard that ``source`` reads for batch ``number`` on this rank."""
        span = number // self.spans[source]
        rng = np.random.default_rng([self.seed, self.rank, source, span, SHARD_SALT])
        mine, weights = self.shards[source]
        return int(mine[rng.choice(len(mine), p=weights)])

    def window(self, source: int, number: int, row: int) -> np.ndarray:
        rng = np.random.default_rng([self.seed, number, self.rank, row, WINDOW_SALT])
        return self.reader(source).window(self.shard(source, number), rng)

    def __getitem__(self, item: tuple[int, int, int]) -> torch.Tensor:
        source, number, row = item
        data = np.concatenate([self.headers[source], self.window(source, number, row)])
        return torch.from_numpy(data.astype(np.int64))

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        state["_readers"] = {}  # a worker decodes its own shards
        return state


class MixtureValidation(IterableDataset):
    """Every byte of every source's validation data once across ranks and workers.

    Each source gives header + at most its data length (``data_len``: one for all sources, or
    one per source) per sequence (a stream: fixed windows, the last shorter; samples: pieces, a
    sample shorter than the window whole), batched with sequences of its own length; the sources
    take turns batch by batch, so that ``limit_val_batches`` still sees every modality. One shard
    per source is in memory at a time.
    """

    def __init__(
        self,
        sources: Sequence[ValidationSpec],
        headers: Sequence[bytes],
        data_len: int | Sequence[int],
        batch_size: int,
    ) -> None:
        self.sources, self.headers = list(sources), [bytes(h) for h in headers]
        lengths = [data_len] * len(self.sources) if isinstance(data_len, int) else list(data_len)
        if len(lengths) != len(self.sources):
            raise ValueError(f"one data length per source, got {lengths}")
        self.data_lens, self.batch_size = lengths, batch_size

    def sequences(self, index: int) -> Iterator[np.ndarray]:
        """Source ``index``'s validation sequences for the calling reader."""
        source, head = self.sources[index], as_array(self.headers[index])
        length = self.data_lens[index]
        if source.stream:
            cut = fixed_windows(source.samples(), length, keep_tail=True)
        else:
            cut = (p for s in source.samples() for p in pieces(s, length))
        for window in take_every(cut, current_slot()):
            if len(window):
                yield np.concatenate([head, window])

    def __iter__(self) -> Iterator[torch.Tensor]:
        turns = [
            iter(batch_by_length(self.sequences(i), self.batch_size))
            for i in range(len(self.sources))
        ]
        while turns:
            for turn in list(turns):
                batch = next(turn, None)
                if batch is None:
                    turns.remove(turn)
                else:
                    yield batch


def validation_sequences(
    sequences: Sequence[bytes], header: bytes, data_len: int, stream: bool
) -> list[np.ndarray]:
    """Every byte of a source's validation data exactly once, as header + at most data_len."""
    source = ValidationSpec(memory=tuple(bytes(s) for s in sequences), stream=stream)
    return list(MixtureValidation([source], [header], data_len, 1).sequences(0))


__all__ = [
    "MIX_BY",
    "MixtureBatchSampler",
    "MixtureDataset",
    "MixtureValidation",
    "mixture_probabilities",
    "shard_spans",
    "validation_sequences",
]
