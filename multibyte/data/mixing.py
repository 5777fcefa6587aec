"""A mixture of byte sources for one multimodal model: which source each sequence comes from.

Every training sequence is ``header + data_len`` bytes: the source's header (``header.py``), then
a window of ``data_len`` bytes (a stream: any start offset; samples: a full-length piece of one
sample). The source of each sequence is drawn with probability

    p_i ∝ weight_i · n_i ** alpha      (n_i: the source's training bytes)

so ``alpha = 0`` follows the weights alone and ``alpha = 1`` also scales them by size; values
between temper the big sources (the "temperature" of multilingual sampling, alpha = 1/T).

Resume and ranks as for one source (``StepBatchSampler`` with replacement): batch number b of
rank r is a pure function of (seed, b, r), so a run resumed at step s reads exactly the batches
the uninterrupted run read after step s, and ranks draw independent batches.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from multibyte.data.windows import as_array, fixed_windows, pieces


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


@dataclass
class SourceWindows:
    """One source's training data as ``count`` windows of ``data_len`` bytes."""

    arrays: list[np.ndarray]  # a stream: one array; samples: full-length pieces
    data_len: int
    stream: bool

    @classmethod
    def build(cls, sequences: Sequence[bytes], data_len: int, stream: bool) -> SourceWindows:
        """A stream joined into one array, or samples cut into pieces of exactly data_len."""
        if stream:
            joined = as_array(b"".join(bytes(s) for s in sequences))
            return cls([joined], data_len, True)
        full = [p for s in sequences for p in pieces(s, data_len) if len(p) == data_len]
        return cls(full, data_len, False)

    @property
    def count(self) -> int:
        if self.stream:
            return max(0, len(self.arrays[0]) - self.data_len + 1)
        return len(self.arrays)

    @property
    def size(self) -> int:
        """Training bytes (the n of p ∝ n^alpha)."""
        return int(sum(len(a) for a in self.arrays))

    def window(self, index: int) -> np.ndarray:
        if self.stream:
            return self.arrays[0][index : index + self.data_len]
        return self.arrays[index]


class MixtureDataset(Dataset):
    """Item ``(source, index)`` is that source's header followed by its window ``index``."""

    def __init__(self, sources: Sequence[SourceWindows], headers: Sequence[bytes]) -> None:
        self.sources = list(sources)
        self.headers = [as_array(h) for h in headers]

    def __getitem__(self, item: tuple[int, int]) -> torch.Tensor:
        source, index = item
        data = np.concatenate([self.headers[source], self.sources[source].window(index)])
        return torch.from_numpy(data.astype(np.int64))

    def __len__(self) -> int:
        return sum(s.count for s in self.sources)


class MixtureBatchSampler(Sampler[list[tuple[int, int]]]):
    """Batches of ``(source, index)``; batch b is a pure function of (seed, b, rank).

    Each sequence picks its source with ``probabilities``, then a window of it uniformly.
    Numbering starts at ``start_batch`` and continues across Lightning's epochs.
    """

    def __init__(
        self,
        counts: Sequence[int],
        probabilities: Sequence[float],
        batch_size: int,
        seed: int = 0,
        rank: int = 0,
        start_batch: int = 0,
        batches_per_epoch: int = 1000,
    ) -> None:
        self.counts = [int(c) for c in counts]
        if min(self.counts, default=0) <= 0:
            raise ValueError(f"every source needs at least one full-length window: {counts}")
        self.probabilities = np.asarray(probabilities, dtype=np.float64)
        self.batch_size, self.seed, self.rank = batch_size, seed, rank
        self.next_batch, self.batches_per_epoch = start_batch, batches_per_epoch

    def batch(self, number: int) -> list[tuple[int, int]]:
        rng = np.random.default_rng([self.seed, number, self.rank])
        sources = rng.choice(len(self.counts), size=self.batch_size, p=self.probabilities)
        return [(int(s), int(rng.integers(0, self.counts[s]))) for s in sources]

    def __iter__(self) -> Iterator[list[tuple[int, int]]]:
        for _ in range(self.batches_per_epoch):
            yield self.batch(self.next_batch)
            self.next_batch += 1

    def __len__(self) -> int:
        return self.batches_per_epoch


def validation_sequences(
    sequences: Sequence[bytes], header: bytes, data_len: int, stream: bool
) -> list[np.ndarray]:
    """Every byte of a source's validation data exactly once, as header + at most data_len."""
    head = as_array(header)
    if stream:
        cut = fixed_windows([bytes(s) for s in sequences], data_len, keep_tail=True)
    else:
        cut = (p for s in sequences for p in pieces(s, data_len))
    return [np.concatenate([head, w]) for w in cut if len(w)]


__all__ = [
    "MixtureBatchSampler",
    "MixtureDataset",
    "SourceWindows",
    "mixture_probabilities",
    "validation_sequences",
]
