"""Who am I among all data readers: (rank, world size) × (DataLoader worker, workers)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TypeVar

from webdataset.utils import pytorch_worker_info

T = TypeVar("T")


@dataclass(frozen=True)
class Slot:
    """One reader: a DataLoader worker on a rank. ``index`` runs over all ``count`` readers."""

    rank: int = 0
    world_size: int = 1
    worker: int = 0
    num_workers: int = 1

    @property
    def index(self) -> int:
        return self.rank * self.num_workers + self.worker

    @property
    def count(self) -> int:
        return self.world_size * self.num_workers


def current_slot() -> Slot:
    """The calling reader's slot, from torch.distributed / RANK, WORLD_SIZE and the worker info.

    Uses webdataset's lookup, so it agrees with ``wds.split_by_node`` and ``wds.split_by_worker``
    (which also honour the WORKER and NUM_WORKERS environment variables).
    """
    rank, world_size, worker, num_workers = pytorch_worker_info()
    return Slot(rank, world_size, worker, num_workers)


def take_every(items: Iterable[T], slot: Slot) -> Iterator[T]:
    """Keep items ``slot.index, slot.index + slot.count, ...``: an exact split of any stream."""
    for i, item in enumerate(items):
        if i % slot.count == slot.index:
            yield item
