"""Writing webdataset shards; a crash never leaves a half-written shard under a final name.

Every finished shard is described by a ``ShardInfo`` (name, samples, size, sha256) that
``multibyte prepare`` stores in the manifest, so readers and ``multibyte verify`` can tell a
short, truncated or corrupt shard from a good one.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from multibyte.data.shards import shard_name
from multibyte.data.tarwriter import FastTarWriter

PARTIAL = ".partial"
MTIME = 0


class _HashingFile:
    """A write-only file that keeps the sha256 and size of everything written to it."""

    def __init__(self, path: str) -> None:
        self.file = open(path, "wb")  # noqa: SIM115 - closed by close()
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        self.size += len(data)
        return self.file.write(data)

    def close(self) -> None:
        self.file.close()


class ShardSink:
    """Write ``{key, bin, json}`` samples to ``DIR/{split}-%06d.tar``.

    Each shard is written as ``NAME.partial`` and renamed when it is complete, so finished shards
    are always valid tars and readers (which glob ``*.tar``) never see an unfinished one. The first
    shard is only created when the first sample arrives, so an empty split writes no files.
    A new shard starts before a sample once the open one holds ``max_count`` samples or
    ``max_bytes`` bytes (webdataset's ShardWriter rule, so shard boundaries are the same).

    Resuming: ``first_shard`` numbers the first new shard and the first ``durable`` writes are
    counted but not written (they are already in finished shards). ``on_finish(info)`` runs
    after each shard is renamed; ``on_start()`` returns plain data stored as the new shard's
    ``start`` (``prepare`` stores where to resume from).
    """

    def __init__(
        self,
        out_dir: str | os.PathLike,
        split: str,
        max_count: int = 10_000,
        max_bytes: float = 2**28,
        *,
        first_shard: int = 0,
        durable: int = 0,
        on_finish: Callable[[dict[str, Any]], None] | None = None,
        on_start: Callable[[], Any] | None = None,
    ) -> None:
        self.out_dir = Path(out_dir)
        self.split = split
        self.max_count = max_count
        self.max_bytes = max_bytes
        self.shards: list[str] = []
        self.infos: list[dict[str, Any]] = []
        self.count = 0
        self.bytes = 0
        self.finished_count = 0  # samples and data bytes in finished shards
        self.finished_bytes = 0
        self.next_shard = first_shard
        self.durable = durable
        self.on_finish = on_finish
        self.on_start = on_start
        self.open_start: Any = None  # on_start() of the shard being written
        self._file: _HashingFile | None = None
        self._tar: FastTarWriter | None = None
        self._name = ""
        self._samples = 0
        self._size = 0
        self._data_bytes = 0
        self._writing = False

    def _next_shard(self) -> None:
        self._finish()
        self.out_dir.mkdir(parents=True, exist_ok=True)
        self._name = (shard_name(self.split) % self.next_shard).rsplit("/", 1)[-1]
        self.next_shard += 1
        self._file = _HashingFile(str(self.out_dir / self._name) + PARTIAL)
        # A fixed mtime makes shards byte-for-byte reproducible.
        self._tar = FastTarWriter(self._file, mtime=MTIME)
        self._samples = self._size = self._data_bytes = 0
        self.open_start = self.on_start() if self.on_start else None

    def _finish(self, interrupted: bool = False) -> None:
        if self._tar is None:
            return
        if self._writing:  # stopped inside a sample: this shard is not valid, drop it
            self._tar = None
            self._file.close()
            Path(str(self.out_dir / self._name) + PARTIAL).unlink(missing_ok=True)
            self._file = self.open_start = None
            return
        self._tar.close()
        final = self.out_dir / self._name
        os.replace(str(final) + PARTIAL, final)
        info = {
            "name": self._name,
            "samples": self._samples,
            "size": self._file.size,
            "sha256": self._file.sha256.hexdigest(),
        }
        if self.open_start is not None:
            info["start"] = self.open_start
        if interrupted:
            info["interrupted"] = True
        self._tar = self._file = None
        self.open_start = None
        self.shards.append(self._name)
        self.infos.append(info)
        self.finished_count += self._samples
        self.finished_bytes += self._data_bytes
        if self.on_finish is not None:
            self.on_finish(info)

    def write(self, key: str, data: bytes, meta: dict[str, Any]) -> None:
        """Append one sample: ``data`` goes to ``KEY.bin``, ``meta`` to ``KEY.json``."""
        if "." in key:
            raise ValueError(f"sample key {key!r} contains a dot, which would split the sample")
        if self.count < self.durable:  # resuming: already in a finished shard
            self.count += 1
            self.bytes += len(data)
            return
        if self._tar is None or self._samples >= self.max_count or self._size >= self.max_bytes:
            self._next_shard()
        sample = {"__key__": key, "bin": bytes(data), "json": json.dumps(meta).encode()}
        self._writing = True
        self._size += self._tar.write(sample)
        self._writing = False
        self._samples += 1
        self._data_bytes += len(data)
        self.count += 1
        self.bytes += len(data)

    def close(self, interrupted: bool = False) -> None:
        """Finish the open shard (rename it to its final name); ``interrupted`` marks a shard
        that a stopped job closed early, which ``prepare --resume`` writes again."""
        self._finish(interrupted)

    def __enter__(self) -> ShardSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
