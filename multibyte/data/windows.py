"""Cutting byte sequences into model-sized windows."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np


def as_array(data: bytes | bytearray | memoryview | np.ndarray) -> np.ndarray:
    """A read-only uint8 view of ``data`` (no copy for bytes)."""
    if isinstance(data, np.ndarray):
        if data.dtype != np.uint8:
            raise ValueError(f"byte arrays must be uint8, got {data.dtype}")
        return data.reshape(-1)
    return np.frombuffer(data, dtype=np.uint8)


def fixed_windows(
    chunks: Iterable[bytes | np.ndarray], seq_len: int, keep_tail: bool = True
) -> Iterator[np.ndarray]:
    """Non-overlapping windows of ``seq_len`` over the concatenation of ``chunks``.

    Every byte lands in exactly one window. The final window is shorter when the stream length
    is not a multiple of ``seq_len``; it is dropped when ``keep_tail`` is False.
    """
    if seq_len <= 0:
        raise ValueError(f"seq_len must be positive, got {seq_len}")
    pending: list[np.ndarray] = []
    size = 0
    for chunk in chunks:
        pending.append(as_array(chunk))
        size += len(pending[-1])
        if size < seq_len:
            continue
        buffer = np.concatenate(pending)
        full = len(buffer) // seq_len * seq_len
        for start in range(0, full, seq_len):
            yield buffer[start : start + seq_len]
        pending = [buffer[full:]]
        size = len(pending[0])
    if keep_tail and size:
        yield np.concatenate(pending)


def random_windows(
    buffer: bytes | np.ndarray, seq_len: int, rng: np.random.Generator, count: int | None = None
) -> Iterator[np.ndarray]:
    """``count`` windows (default ``len // seq_len``) at uniform random offsets in ``buffer``.

    A buffer shorter than ``seq_len`` gives nothing: training windows always have full length.
    """
    array = as_array(buffer)
    if len(array) < seq_len:
        return
    n = len(array) // seq_len if count is None else count
    starts = rng.integers(0, len(array) - seq_len + 1, size=n)
    for start in starts:
        yield array[start : start + seq_len]


def pieces(sample: bytes | np.ndarray, seq_len: int | None) -> list[np.ndarray]:
    """One sample as sequences of at most ``seq_len`` bytes (the whole sample when None)."""
    array = as_array(sample)
    if seq_len is None or len(array) <= seq_len:
        return [array]
    return [array[i : i + seq_len] for i in range(0, len(array), seq_len)]
