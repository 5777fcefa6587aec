"""Map-style datasets over byte sequences held in memory, for small local data."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Dataset, Sampler

from multibyte.data.windows import as_array


class SequenceDataset(Dataset):
    """One item per sample (an image, an audio clip): item ``i`` is a LongTensor [len_i]."""

    def __init__(self, samples: Sequence[bytes | np.ndarray]) -> None:
        self.samples = [as_array(s) for s in samples]

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.from_numpy(self.samples[index].astype(np.int64))

    def lengths(self) -> list[int]:
        return [len(s) for s in self.samples]


class WindowDataset(Dataset):
    """Fixed non-overlapping windows of ``seq_len`` over one byte stream (validation).

    Window ``i`` is ``stream[i*seq_len : (i+1)*seq_len]``; the last is shorter unless
    ``keep_tail`` is False, so every byte is in exactly one window.
    """

    def __init__(self, stream: bytes | np.ndarray, seq_len: int, keep_tail: bool = True) -> None:
        if seq_len <= 0:
            raise ValueError(f"seq_len must be positive, got {seq_len}")
        self.stream = as_array(stream)
        self.seq_len = seq_len
        full, tail = divmod(len(self.stream), seq_len)
        self.count = full + (1 if keep_tail and tail else 0)

    def __len__(self) -> int:
        return self.count

    def __getitem__(self, index: int) -> torch.Tensor:
        if not 0 <= index < self.count:
            raise IndexError(index)
        start = index * self.seq_len
        return torch.from_numpy(self.stream[start : start + self.seq_len].astype(np.int64))

    def lengths(self) -> list[int]:
        return [min(self.seq_len, len(self.stream) - i * self.seq_len) for i in range(self.count)]


class RandomWindowDataset(Dataset):
    """``num_windows`` windows of ``seq_len`` at random offsets of one stream (training).

    Offsets depend on (seed, epoch, index) only, so they are reproducible and differ per epoch
    once ``set_epoch`` is called.
    """

    def __init__(
        self,
        stream: bytes | np.ndarray,
        seq_len: int,
        num_windows: int | None = None,
        seed: int = 0,
    ) -> None:
        self.stream = as_array(stream)
        if seq_len <= 0 or len(self.stream) < seq_len:
            raise ValueError(f"seq_len must be in 1..{len(self.stream)} (stream length)")
        self.seq_len = seq_len
        self.num_windows = num_windows or max(1, len(self.stream) // seq_len)
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_windows

    def __getitem__(self, index: int) -> torch.Tensor:
        rng = np.random.default_rng([self.seed, self.epoch, index])
        start = int(rng.integers(0, len(self.stream) - self.seq_len + 1))
        window = self.stream[start : start + self.seq_len]
        return torch.from_numpy(window.astype(np.int64))


class LengthBatchSampler(Sampler[list[int]]):
    """Batches of indices whose items have equal length, for ``DataLoader(batch_sampler=...)``.

    Pair it with ``multibyte.data.collate`` so a short tail item never gets padded.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        drop_last: bool = False,
    ) -> None:
        if batch_size <= 0:
            raise ValueError(f"batch_size must be positive, got {batch_size}")
        self.lengths = list(lengths)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.seed = seed
        self.drop_last = drop_last
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def _batches(self) -> list[list[int]]:
        order = np.arange(len(self.lengths))
        if self.shuffle:
            order = np.random.default_rng([self.seed, self.epoch]).permutation(order)
        groups: dict[int, list[int]] = {}
        for i in order.tolist():
            groups.setdefault(self.lengths[i], []).append(i)
        batches = []
        for length in sorted(groups, reverse=True):
            group = groups[length]
            for start in range(0, len(group), self.batch_size):
                batch = group[start : start + self.batch_size]
                if len(batch) == self.batch_size or not self.drop_last:
                    batches.append(batch)
        if self.shuffle:
            perm = np.random.default_rng([self.seed, self.epoch, 1]).permutation(len(batches))
            batches = [batches[i] for i in perm]
        return batches

    def __iter__(self) -> Iterator[list[int]]:
        return iter(self._batches())

    def __len__(self) -> int:
        return len(self._batches())
