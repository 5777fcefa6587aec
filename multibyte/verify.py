"""``multibyte verify DIR``: check a shard folder against its manifest, shard by shard.

Each shard the manifest lists must exist with the recorded size and sha256 and hold the recorded
number of samples; a shard file (``{split}-*.tar``, what readers open) the manifest does not
list, per-split totals that disagree with ``counts``, a manifest that lists no sample at all,
and an incomplete prepare are problems too. Other files are the user's: named in a note only.
Every problem is one line naming the shard. Exit status: 0 when everything agrees, 1 when a
problem was found, 2 when DIR cannot be verified at all (no folder, no or unreadable
manifest). A manifest written before shards were recorded cannot be verified: each shard is
then only read through, and the command says so.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from multibyte.data.shards import (
    MANIFEST,
    SPLITS,
    ShardError,
    check_shard_bytes,
    iter_tar_samples,
    list_shards,
    shard_infos,
)
from multibyte.prepared import resume_command


class VerifyError(ValueError):
    """A folder that cannot be verified at all."""


def _count(path: Path) -> int:
    return sum(1 for _ in iter_tar_samples(path, check=False))


def verify(folder: str | Path) -> tuple[list[str], list[str]]:
    """(problems, notes) of one shard folder; raises VerifyError if it cannot be checked."""
    folder = Path(folder)
    if not folder.is_dir():
        raise VerifyError(f"{folder} is not a folder")
    path = folder / MANIFEST
    if not path.is_file():
        raise VerifyError(f"{folder} has no {MANIFEST}: it was not written by `multibyte prepare`")
    try:
        manifest: dict[str, Any] = json.loads(path.read_text())
    except (OSError, ValueError) as error:
        raise VerifyError(f"{path} cannot be read as JSON ({error})") from error
    problems: list[str] = []
    notes: list[str] = []
    if manifest.get("complete") is False:
        problems.append(
            f"{folder}: prepare did not complete; finish it with `{resume_command(manifest)}`"
        )
    infos = shard_infos(manifest)
    on_disk = {Path(p).name for s in SPLITS for p in list_shards(folder, s)}
    others = sorted({p.name for p in folder.glob("*.tar")} - on_disk)
    if others:
        notes.append(
            f"{len(others)} other .tar files (first: {folder / others[0]}) are not shards: no "
            "reader opens them"
        )
    if manifest.get("complete") and not any((manifest.get("counts") or {}).values()):
        problems.append(f"{path} lists no samples: nothing was prepared")
    if infos is None:
        notes.append(
            f"{path} records no per-shard sizes or checksums (an older prepare): the shards "
            "cannot be verified, only read through"
        )
        for name in sorted(on_disk):
            try:
                _count(folder / name)
            except ShardError as error:
                problems.append(str(error))
        return problems, notes
    for name in sorted(on_disk - set(infos)):
        problems.append(f"shard {folder / name} is not listed in {path}")
    for split, split_infos in manifest["shard_info"].items():
        samples = 0
        for info in split_infos:
            shard = folder / info["name"]
            if not shard.is_file():
                problems.append(f"shard {shard} is missing ({info['samples']} samples expected)")
                continue
            try:
                check_shard_bytes(str(shard), shard.read_bytes(), info)
                count = _count(shard)
            except (ShardError, OSError) as error:
                problems.append(str(error))
                continue
            if count != info["samples"]:
                problems.append(f"shard {shard} holds {count} samples, expected {info['samples']}")
            samples += info["samples"]
        expected = (manifest.get("counts") or {}).get(split)
        if expected is not None and samples != expected and not problems:
            problems.append(
                f"{split}: the shards hold {samples} samples, {MANIFEST} counts {expected}"
            )
    shards = sum(len(v) for v in manifest["shard_info"].values())
    notes.append(f"checked {shards} shards against {path}")
    return problems, notes


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``multibyte verify``; returns the exit status."""
    parser = argparse.ArgumentParser(
        prog="multibyte verify",
        description="Check a shard folder against its manifest (per-shard samples, size, sha256).",
    )
    parser.add_argument("folder", help="a folder written by `multibyte prepare`")
    args = parser.parse_args(argv)
    try:
        problems, notes = verify(args.folder)
    except VerifyError as error:
        print(f"multibyte verify: error: {error}", file=sys.stderr)
        return 2
    for note in notes:
        print(f"multibyte verify: {note}")
    for problem in problems:
        print(f"multibyte verify: problem: {problem}", file=sys.stderr)
    if problems:
        print(f"multibyte verify: {args.folder}: {len(problems)} problems", file=sys.stderr)
        return 1
    print(f"multibyte verify: {args.folder}: ok")
    return 0


__all__ = ["VerifyError", "main", "verify"]
