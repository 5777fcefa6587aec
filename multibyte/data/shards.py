"""Reading webdataset shards in memory: listing, manifests and tar iteration.

Nothing here ever writes a file, and member names are only used as dictionary keys, so a
hostile tar cannot place files on disk.
"""

from __future__ import annotations

import io
import json
import os
import tarfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, BinaryIO

SPLITS = ("train", "val", "test")
MANIFEST = "manifest.json"

Sample = dict[str, Any]


def shard_name(split: str) -> str:
    """The ShardWriter pattern for one split, e.g. ``train-%06d.tar``."""
    return f"{split}-%06d.tar"


def list_shards(source: str | os.PathLike | Sequence[str | os.PathLike], split: str) -> list[str]:
    """Shard paths for ``split``: a prepared folder, one tar, or a list of tars, sorted."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir():
            return sorted(str(p) for p in path.glob(f"{split}-*.tar"))
        if path.is_file():
            return [str(path)]
        raise FileNotFoundError(f"no shard folder or tar file at {path}")
    paths = [str(p) for p in source]
    for p in paths:
        if not Path(p).is_file():
            raise FileNotFoundError(f"no shard at {p}")
    return paths


def load_manifest(folder: str | os.PathLike) -> dict[str, Any] | None:
    """The folder's ``manifest.json`` as a dict, or None when there is none."""
    path = Path(folder) / MANIFEST
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def _split_name(name: str) -> tuple[str, str]:
    # webdataset convention: key is everything up to the first dot of the base name.
    directory, _, base = name.rpartition("/")
    stem, dot, ext = base.partition(".")
    key = f"{directory}/{stem}" if directory else stem
    return key, ext if dot else ""


def iter_tar_samples(source: str | os.PathLike | bytes | BinaryIO) -> Iterator[Sample]:
    """Yield webdataset samples (``{"__key__", "__url__", ext: bytes}``) from one tar, in memory."""
    if isinstance(source, bytes):
        stream: BinaryIO = io.BytesIO(source)
        url = "<bytes>"
        close = False
    elif isinstance(source, (str, os.PathLike)):
        url = str(source)
        if "://" in url or url.startswith("pipe:"):
            # Refuse URL schemes: webdataset's "pipe:" would run a shell command.
            raise ValueError(f"only local shard files are read, not {url!r}")
        stream = open(url, "rb")  # noqa: SIM115 - closed below
        close = True
    else:
        stream, url, close = source, getattr(source, "name", "<stream>"), False
    try:
        current: Sample | None = None
        with tarfile.open(fileobj=stream, mode="r|") as archive:
            for member in archive:
                if not member.isfile():
                    continue
                key, ext = _split_name(member.name)
                handle = archive.extractfile(member)
                data = handle.read() if handle is not None else b""
                if current is None or current["__key__"] != key:
                    if current is not None:
                        yield current
                    current = {"__key__": key, "__url__": url}
                current[ext] = data
        if current is not None:
            yield current
    finally:
        if close:
            stream.close()


def read_samples(
    source: str | os.PathLike | Sequence[str | os.PathLike], split: str
) -> list[Sample]:
    """All samples of one split, in shard order (for small data and tests)."""
    return [s for url in list_shards(source, split) for s in iter_tar_samples(url)]
