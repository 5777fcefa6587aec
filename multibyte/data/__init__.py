"""Format-agnostic byte datasets: shards on disk, splitting across ranks and workers, windows.

This package knows only bytes. It never imports ``modalities``; adapters turn files into bytes.
"""

from __future__ import annotations

import importlib
from typing import Any

# Lazy, so that `multibyte prepare` (which writes shards) does not pay for importing torch.
_HOMES = {
    "batch_by_length": "batching",
    "collate": "batching",
    "Slot": "distributed",
    "current_slot": "distributed",
    "take_every": "distributed",
    "BadShards": "iterable",
    "ShardDataset": "iterable",
    "LengthBatchSampler": "mapstyle",
    "RandomWindowDataset": "mapstyle",
    "SequenceDataset": "mapstyle",
    "WindowDataset": "mapstyle",
    "MANIFEST": "shards",
    "SPLITS": "shards",
    "iter_tar_samples": "shards",
    "list_shards": "shards",
    "load_manifest": "shards",
    "read_samples": "shards",
    "shard_name": "shards",
    "ShardError": "shards",
    "shard_infos": "shards",
    "expected_info": "shards",
    "check_shard_bytes": "shards",
    "fixed_windows": "windows",
    "pieces": "windows",
    "random_windows": "windows",
    "ShardSink": "writer",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        return getattr(importlib.import_module(f"multibyte.data.{_HOMES[name]}"), name)
    raise AttributeError(f"module 'multibyte.data' has no attribute {name!r}")


__all__ = [
    "MANIFEST",
    "SPLITS",
    "BadShards",
    "ShardError",
    "check_shard_bytes",
    "expected_info",
    "shard_infos",
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
