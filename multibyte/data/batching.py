"""Batches of equal-length byte sequences as LongTensor [B, T], with no padding byte."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

import numpy as np
import torch


def collate(sequences: Sequence[np.ndarray | bytes | torch.Tensor]) -> torch.Tensor:
    """Stack equal-length byte sequences into a LongTensor [B, T].

    Sequences of different lengths are an error rather than padded: every byte value is data,
    so there is no byte that could stand for "padding".
    """
    arrays = [
        s.numpy()
        if isinstance(s, torch.Tensor)
        else np.frombuffer(s, np.uint8)
        if isinstance(s, (bytes, bytearray))
        else s
        for s in sequences
    ]
    lengths = {len(a) for a in arrays}
    if len(lengths) != 1:
        raise ValueError(f"cannot batch sequences of different lengths {sorted(lengths)}")
    return torch.from_numpy(np.stack(arrays).astype(np.int64))


def batch_by_length(
    sequences: Iterable[np.ndarray], batch_size: int, drop_last: bool = False
) -> Iterator[torch.Tensor]:
    """Group sequences of equal length into batches of ``batch_size``.

    Full-length sequences form full batches as they come; shorter ones (an audio file's last
    clip, a text stream's last window) wait for others of their length. At the end the partial
    batches are flushed, shortest last, unless ``drop_last``.
    """
    if batch_size <= 0:
        raise ValueError(f"batch_size must be positive, got {batch_size}")
    waiting: dict[int, list[np.ndarray]] = {}
    for seq in sequences:
        group = waiting.setdefault(len(seq), [])
        group.append(seq)
        if len(group) == batch_size:
            yield collate(group)
            waiting[len(seq)] = []
    if not drop_last:
        for length in sorted(waiting, reverse=True):
            if waiting[length]:
                yield collate(waiting[length])
