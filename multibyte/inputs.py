"""Raw inputs: find an adapter's files, encode each into split-tagged records, split by seed.

A task is one input file. What a file yields (one image, the rows of an npz batch, an audio
file's clips, a text document) is the adapter's ``units``; every unit goes to one split, drawn
from (seed, the file's path relative to its ``--src`` root, the unit's name). Files that cannot
be used become skips with a reason, so a job can list them instead of aborting.

``multibyte prepare`` writes the records to shards; ``encode_in_memory`` keeps them in memory
for fit and evaluate on raw files, split exactly as ``prepare`` would split them.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from modalities import Adapter

STREAM_CHUNK = 1 << 20  # bytes per shard record of a stream (prepare's --chunk-size)
# Inputs given with --val-src carry this prefix in their ident: always validation.
HELD_OUT = "\0val/"

# (split, encoded bytes, metadata) for each record a task produces.
Encoded = tuple[str, bytes, dict[str, Any]]


@dataclass(frozen=True)
class Task:
    """One input file; ``ident`` names it stably (its path relative to its ``--src`` root)."""

    path: str
    ident: str


@dataclass(frozen=True)
class Skip:
    source: str
    reason: str


def find_tasks(
    adapter: Adapter, sources: Sequence[str | os.PathLike]
) -> tuple[list[Task], list[Skip]]:
    """(tasks, skips) for every source path (sorted within folders, so runs repeat exactly)."""
    tasks: list[Task] = []
    skips: list[Skip] = []
    for src in sources:
        root = Path(src)
        named = root.is_file()
        files = [root] if named else sorted(p for p in root.rglob("*") if p.is_file())
        for file in files:
            if adapter.accepts(file, named):
                ident = file.name if named else file.relative_to(root).as_posix()
                tasks.append(Task(str(file), ident))
            else:
                reason = (
                    f"unsupported extension {file.suffix or '(none)'!r}; "
                    f"expected {adapter.describe_inputs()}"
                )
                skips.append(Skip(str(file), reason))
    return tasks, skips


def find_all_tasks(
    adapter: Adapter,
    sources: Sequence[str | os.PathLike],
    val_sources: Sequence[str | os.PathLike] = (),
) -> tuple[list[Task], list[Skip]]:
    """Tasks of --src and of --val-src (whose idents are marked as held out)."""
    tasks, skips = find_tasks(adapter, sources)
    if val_sources:
        held_tasks, held_skips = find_tasks(adapter, val_sources)
        tasks += [replace(t, ident=HELD_OUT + t.ident) for t in held_tasks]
        skips += held_skips
    return tasks, skips


def val_draw(seed: int, ident: str) -> float:
    """A uniform number in [0, 1) fixed by (seed, ident): below val_fraction means val."""
    digest = hashlib.blake2b(f"{seed}\0{ident}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2.0**64


@dataclass(frozen=True)
class Encoder:
    """How every task of one job is encoded: the adapter, the split and the reading options."""

    adapter: Adapter
    seed: int = 0
    val_fraction: float = 0.0
    chunk: int = STREAM_CHUNK
    reading: dict[str, Any] | None = None

    def split(self, ident: str) -> str:
        if ident.startswith(HELD_OUT):
            return "val"
        return "val" if val_draw(self.seed, ident) < self.val_fraction else "train"

    def encode(self, task: Task) -> list[Encoded]:
        """Every record of one file with its split; a stream's records are cut into chunks."""
        if os.path.getsize(task.path) == 0:
            raise ValueError("empty file")
        out = []
        for unit in self.adapter.units(Path(task.path), **(self.reading or {})):
            split = unit.split or self.split(task.ident + unit.name)
            for record in unit.records:
                if not self.adapter.stream:
                    out.append((split, record.data, record.meta))
                    continue
                data = record.data
                for i in range(0, len(data), self.chunk):
                    out.append((split, data[i : i + self.chunk], {"offset": i, **record.meta}))
        if not out:
            raise ValueError("no samples")
        return out

    def __call__(self, task: Task) -> tuple[Task, list[Encoded], str | None]:
        """Encode one task; any failure becomes a reason string instead of an exception."""
        try:
            return task, self.encode(task), None
        except Exception as error:  # noqa: BLE001 - any bad input is a skip, never an abort
            return task, [], f"{type(error).__name__}: {error}"


def encode_in_memory(
    adapter: Adapter,
    sources: Sequence[str | os.PathLike],
    val_fraction: float,
    seed: int = 0,
    val_sources: Sequence[str | os.PathLike] = (),
) -> dict[str, Any]:
    """Encode raw inputs without writing shards, split exactly as ``prepare`` would.

    Returns ``{"train": [bytes, ...], "val": [...], "test": [...], "skipped": [{"source",
    "reason"}, ...]}``; for a stream each split is one joined stream in a one-element list.
    """
    tasks, skips = find_all_tasks(adapter, sources, val_sources)
    encoder = Encoder(adapter, seed, val_fraction)
    splits: dict[str, list[bytes]] = {"train": [], "val": [], "test": []}
    for task, records, reason in map(encoder, tasks):
        if reason is not None:
            skips.append(Skip(task.path, reason))
        for split, data, _ in records:
            splits.setdefault(split, []).append(data)
    if adapter.stream:  # one stream per split, in input order
        splits = {name: [b"".join(parts)] if parts else [] for name, parts in splits.items()}
    return {**splits, "skipped": [{"source": s.source, "reason": s.reason} for s in skips]}


__all__ = [
    "HELD_OUT",
    "STREAM_CHUNK",
    "Encoder",
    "Skip",
    "Task",
    "encode_in_memory",
    "find_all_tasks",
    "find_tasks",
    "val_draw",
]
