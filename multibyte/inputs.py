"""Raw inputs: find an adapter's files, encode each into split-tagged records, split by seed.

A task is one input file. What a file yields (one image, the rows of an npz batch, an audio
file's clips, a text document) is the adapter's ``units``; every unit goes to one split, drawn
from (seed, the file's path relative to its ``--src`` root, the unit's name). Files that cannot
be used become skips with a reason, so a job can list them instead of aborting.

``multibyte prepare`` writes the records to shards; ``encode_in_memory`` keeps them in memory
for fit and evaluate on raw files, split exactly as ``prepare`` would split them.

Two rules keep the splits honest:

- An input reachable from both ``--src`` and ``--val-src`` goes to validation only (the user
  named it as validation data); ``find_all_tasks`` says how many there were.
- When there is one input and it yields one unit (one book, one recording), drawing whole units
  would leave train or val empty, so the unit is cut inside: its last ``val_fraction`` of bytes
  go to val (``cut_unit``; the cut falls on a multiple of the adapter's ``bytes_per_unit``, so
  audio is cut on a sample boundary, and a fixed-size sample such as an image is never cut).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from modalities import Adapter, Record, Unit

STREAM_CHUNK = 1 << 20  # bytes per shard record of a stream (prepare's --chunk-size)
# Inputs given with --val-src carry this prefix in their ident: always validation.
HELD_OUT = "\0val/"
CUT_NOTE = "the only input: its last {:g}% of bytes go to validation, the rest to training"

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
        files = [root] if named else _files(root, skips)
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


def _files(root: Path, skips: list[Skip]) -> list[Path]:
    """The files under ``root``, sorted (symbolic links to folders are not followed). A folder
    that cannot be read and a symbolic link whose target is missing become skips with the
    reason, instead of vanishing from the job unsaid."""

    def unreadable(error: OSError) -> None:
        skips.append(Skip(str(error.filename), f"folder cannot be read: {error.strerror}"))

    files = []
    for folder, _, names in os.walk(root, onerror=unreadable):
        for name in names:
            path = Path(folder) / name
            if path.is_file():
                files.append(path)
            elif path.is_symlink() and not path.exists():
                target = os.readlink(path)
                skips.append(Skip(str(path), f"dangling symbolic link: {target} does not exist"))
    return sorted(files)


def find_all_tasks(
    adapter: Adapter,
    sources: Sequence[str | os.PathLike],
    val_sources: Sequence[str | os.PathLike] = (),
    notes: list[str] | None = None,
) -> tuple[list[Task], list[Skip]]:
    """Tasks of --src and of --val-src (whose idents are marked as held out).

    A file found under both goes to validation only; ``notes`` gets one line saying so.
    """
    tasks, skips = find_tasks(adapter, sources)
    if val_sources:
        held_tasks, held_skips = find_tasks(adapter, val_sources)
        held = {os.path.realpath(t.path) for t in held_tasks}
        both = [t for t in tasks if os.path.realpath(t.path) in held]
        if both:
            tasks = [t for t in tasks if os.path.realpath(t.path) not in held]
            skips = [s for s in skips if os.path.realpath(s.source) not in held]
            if notes is not None:
                notes.append(
                    f"{len(both)} inputs under --val-src are also under --src (first: "
                    f"{both[0].path}): they go to validation only"
                )
        tasks += [replace(t, ident=HELD_OUT + t.ident) for t in held_tasks]
        skips += held_skips
    return tasks, skips


def cut_unit(adapter: Adapter, unit: Unit, fraction: float) -> tuple[Unit, Unit] | None:
    """(train part, val part) of one unit: its last ``fraction`` of bytes go to val.

    The cut is a multiple of ``adapter.bytes_per_unit`` bytes; records before it stay whole, the
    record it falls in is cut in two. None when nothing can be cut: a fixed-size sample (a
    record of exactly ``seq_len`` bytes of a sample modality) is never cut, nor a unit too
    short to give both sides a step. An adapter may define its own ``cut_unit(unit, fraction)``.
    """
    own = getattr(adapter, "cut_unit", None)
    if own is not None:
        return own(unit, fraction)
    if (
        not adapter.stream
        and len(unit.records) == 1
        and len(unit.records[0].data) == (adapter.seq_len)
    ):
        return None
    step = max(1, int(getattr(adapter, "bytes_per_unit", 1) or 1))
    total = sum(len(r.data) for r in unit.records)
    cut = int(total * (1.0 - fraction)) // step * step
    if cut <= 0 or cut >= total:
        return None
    train: list[Record] = []
    val: list[Record] = []
    start = 0
    for record in unit.records:
        end = start + len(record.data)
        if end <= cut:
            train.append(record)
        elif start >= cut:
            val.append(record)
        else:
            at = cut - start
            train.append(Record(record.data[:at], {**record.meta, "cut": "head"}))
            val.append(Record(record.data[at:], {**record.meta, "cut": "tail", "cut_at": at}))
        start = end
    return replace(unit, records=train, split="train"), replace(unit, records=val, split="val")


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
    cut_inside: bool = False  # one input: cut its only unit instead of drawing its split

    def split(self, ident: str) -> str:
        if ident.startswith(HELD_OUT):
            return "val"
        return "val" if val_draw(self.seed, ident) < self.val_fraction else "train"

    def encode(self, task: Task) -> list[Encoded]:
        """Every record of one file with its split; a stream's records are cut into chunks."""
        if os.path.getsize(task.path) == 0:
            raise ValueError("empty file")
        out = []
        units = self.adapter.units(Path(task.path), **(self.reading or {}))
        if self.cut_inside and len(units) == 1 and units[0].split is None:
            parts = cut_unit(self.adapter, units[0], self.val_fraction)
            units = list(parts) if parts else units
        for unit in units:
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
    notes: list[str] = []
    tasks, skips = find_all_tasks(adapter, sources, val_sources, notes)
    encoder = Encoder(adapter, seed, val_fraction, cut_inside=cuts_inside(tasks, val_fraction))
    splits: dict[str, list[bytes]] = {"train": [], "val": [], "test": []}
    for task, records, reason in map(encoder, tasks):
        if reason is not None:
            skips.append(Skip(task.path, reason))
        if any(extra.get("cut") for _, _, extra in records):
            notes.append(f"{task.path}: {CUT_NOTE.format(100 * val_fraction)}")
        for split, data, _ in records:
            splits.setdefault(split, []).append(data)
    if adapter.stream:  # one stream per split, in input order
        splits = {name: [b"".join(parts)] if parts else [] for name, parts in splits.items()}
    skipped = [{"source": s.source, "reason": s.reason} for s in skips]
    return {**splits, "skipped": skipped, "notes": notes}


def cuts_inside(tasks: Sequence[Task], val_fraction: float) -> bool:
    """One input and a validation share, none held out: its unit is cut, not drawn."""
    held = any(t.ident.startswith(HELD_OUT) for t in tasks)
    return len(tasks) == 1 and val_fraction > 0 and not held


__all__ = [
    "HELD_OUT",
    "STREAM_CHUNK",
    "Encoder",
    "Skip",
    "Task",
    "cut_unit",
    "cuts_inside",
    "encode_in_memory",
    "find_all_tasks",
    "find_tasks",
    "val_draw",
]
