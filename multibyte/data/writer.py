"""Writing webdataset shards; a crash never leaves a half-written shard under a final name."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import webdataset as wds

from multibyte.data.shards import shard_name
from multibyte.data.tarwriter import FastTarWriter

PARTIAL = ".partial"
MTIME = 0


class _ShardWriter(wds.ShardWriter):
    """webdataset's ShardWriter (naming, maxcount, maxsize, opener, post) with a fast tar writer."""

    def next_stream(self) -> None:
        self.finish()
        self.fname = self.pattern % self.shard
        self.shard += 1
        # A fixed mtime makes shards byte-for-byte reproducible.
        self.tarstream = FastTarWriter(self.opener(self.fname), mtime=MTIME)
        self.count = 0
        self.size = 0


class ShardSink:
    """Write ``{key, bin, json}`` samples to ``DIR/{split}-%06d.tar``.

    Each shard is written as ``NAME.partial`` and renamed when it is complete, so finished shards
    are always valid tars and readers (which glob ``*.tar``) never see an unfinished one. The first
    shard is only created when the first sample arrives, so an empty split writes no files.
    """

    def __init__(
        self,
        out_dir: str | os.PathLike,
        split: str,
        max_count: int = 10_000,
        max_bytes: float = 2**28,
    ) -> None:
        self.out_dir = Path(out_dir)
        self.split = split
        self.max_count = max_count
        self.max_bytes = max_bytes
        self.shards: list[str] = []
        self.count = 0
        self.bytes = 0
        self._writer: _ShardWriter | None = None

    def _open(self, fname: str):
        return open(fname + PARTIAL, "wb")  # noqa: SIM115 - closed by the tar writer

    def _done(self, fname: str) -> None:
        os.replace(fname + PARTIAL, fname)
        self.shards.append(Path(fname).name)

    def write(self, key: str, data: bytes, meta: dict[str, Any]) -> None:
        """Append one sample: ``data`` goes to ``KEY.bin``, ``meta`` to ``KEY.json``."""
        if "." in key:
            raise ValueError(f"sample key {key!r} contains a dot, which would split the sample")
        if self._writer is None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            self._writer = _ShardWriter(
                str(self.out_dir / shard_name(self.split)),
                maxcount=self.max_count,
                maxsize=self.max_bytes,
                opener=self._open,
                post=self._done,
                verbose=0,
            )
        self._writer.write({"__key__": key, "bin": bytes(data), "json": json.dumps(meta).encode()})
        self.count += 1
        self.bytes += len(data)

    def close(self) -> None:
        """Finish the open shard (rename it to its final name)."""
        if self._writer is not None:
            self._writer.close()
            self._writer = None

    def __enter__(self) -> ShardSink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
