"""Format-agnostic byte datasets: shards on disk, splitting across ranks and workers, windows.

This package knows only bytes. It never imports ``modalities``; adapters turn files into bytes.
"""

from __future__ import annotations

from multibyte.data.batching import batch_by_length, collate
from multibyte.data.distributed import Slot, current_slot, take_every
from multibyte.data.iterable import ShardDataset
from multibyte.data.mapstyle import (
    LengthBatchSampler,
    RandomWindowDataset,
    SequenceDataset,
    WindowDataset,
)
from multibyte.data.shards import (
    MANIFEST,
    SPLITS,
    iter_tar_samples,
    list_shards,
    load_manifest,
    read_samples,
    shard_name,
)
from multibyte.data.windows import fixed_windows, pieces, random_windows
from multibyte.data.writer import ShardSink

__all__ = [
    "MANIFEST",
    "SPLITS",
    "LengthBatchSampler",
    "RandomWindowDataset",
    "SequenceDataset",
    "ShardDataset",
    "ShardSink",
    "Slot",
    "WindowDataset",
    "batch_by_length",
    "collate",
    "current_slot",
    "fixed_windows",
    "iter_tar_samples",
    "list_shards",
    "load_manifest",
    "pieces",
    "random_windows",
    "read_samples",
    "shard_name",
    "take_every",
]
