"""Finding the input files of ``multibyte prepare`` and turning them into units of work.

A task is one input file (or one split of enwik8). Files that cannot be used are reported as
skips with a reason instead of tasks, so the job can list them in its manifest.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

from modalities.audio import AUDIO_SUFFIXES
from modalities.image import IMAGE_SUFFIXES
from modalities.text import TEXT_SUFFIXES


@dataclass(frozen=True)
class Task:
    """One unit of work: ``kind`` says how to read ``path``; ``ident`` names it stably."""

    kind: str  # "text", "enwik8", "image", "npz", "audio"
    path: str
    ident: str  # path relative to its --src root, used for the deterministic split
    split: str | None = None  # enwik8 only: which fixed range


@dataclass(frozen=True)
class Skip:
    source: str
    reason: str


def _kind(modality: str, path: Path, explicit: bool) -> str | None:
    suffix = path.suffix.lower()
    if modality == "text":
        # Explicit files are text whatever their name (enwik8 has no extension).
        return "text" if explicit or suffix in TEXT_SUFFIXES else None
    if modality == "image":
        if suffix == ".npz" or (suffix == "" and zipfile.is_zipfile(path)):
            return "npz"
        return "image" if suffix in IMAGE_SUFFIXES else None
    if modality == "audio":
        return "audio" if suffix in AUDIO_SUFFIXES else None
    raise ValueError(f"unknown modality {modality!r}")


def _expected(modality: str) -> str:
    return {
        "text": ".txt (or any file named directly)",
        "image": ", ".join((".npz", *IMAGE_SUFFIXES)),
        "audio": ", ".join(AUDIO_SUFFIXES),
    }[modality]


def find_tasks(
    modality: str, sources: list[str], enwik8: bool = False
) -> tuple[list[Task], list[Skip]]:
    """Tasks and skips for every ``--src`` path (sorted within folders, so runs repeat exactly)."""
    tasks: list[Task] = []
    skips: list[Skip] = []
    for src in sources:
        root = Path(src)
        if enwik8:
            for split in ("train", "val", "test"):
                tasks.append(Task("enwik8", str(root), f"{root.name}:{split}", split))
            continue
        explicit = root.is_file()
        files = [root] if explicit else sorted(p for p in root.rglob("*") if p.is_file())
        for file in files:
            ident = file.name if explicit else file.relative_to(root).as_posix()
            kind = _kind(modality, file, explicit)
            if kind is None:
                suffix = file.suffix or "(none)"
                reason = f"unsupported extension {suffix!r}; expected {_expected(modality)}"
                skips.append(Skip(str(file), reason))
            else:
                tasks.append(Task(kind, str(file), ident))
    return tasks, skips
