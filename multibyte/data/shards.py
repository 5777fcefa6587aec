"""Reading webdataset shards in memory: listing, manifests and tar iteration.

Nothing here ever writes a file, and member names are only used as dictionary keys, so a
hostile tar cannot place files on disk.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
from collections.abc import Iterator, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, BinaryIO

SPLITS = ("train", "val", "test")
MANIFEST = "manifest.json"

Sample = dict[str, Any]


class ShardError(ValueError):
    """A shard that is short, truncated or corrupt, or missing from / unknown to its manifest."""


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


def shard_infos(manifest: dict[str, Any] | None) -> dict[str, dict[str, Any]] | None:
    """Shard name -> ``{"name", "samples", "size", "sha256"}`` from a manifest, or None for a
    manifest written before shards were recorded (such shards cannot be verified)."""
    if not manifest or not isinstance(manifest.get("shard_info"), dict):
        return None
    return {info["name"]: info for infos in manifest["shard_info"].values() for info in infos}


@lru_cache(maxsize=64)
def _cached_infos(folder: str, stamp: tuple[int, int]) -> dict[str, dict[str, Any]] | None:
    try:
        return shard_infos(load_manifest(folder))
    except (OSError, ValueError):
        return None


def expected_info(path: str | os.PathLike) -> dict[str, Any] | None:
    """What the manifest next to ``path`` says about that shard; None when it says nothing.

    Raises ShardError for a shard in a folder whose manifest records its shards but not this one.
    """
    path = Path(path)
    manifest = path.parent / MANIFEST
    try:
        stat = manifest.stat()
    except OSError:
        return None
    infos = _cached_infos(str(path.parent), (stat.st_mtime_ns, stat.st_size))
    if infos is None:
        return None
    if path.name not in infos:
        raise ShardError(f"shard {path} is not listed in {manifest}: it was not written by prepare")
    return infos[path.name]


def unverifiable(
    paths: Sequence[str | os.PathLike], manifest: dict[str, Any] | None = None
) -> str | None:
    """Why these shards cannot be checked before they are read, or None when they can.

    ``paths`` is one shard folder (``manifest``: its manifest, already loaded) or ``.tar``
    files; a tar can be checked when the manifest next to it records its size and sha256.
    Raises ShardError for a tar that a manifest recording its folder's shards does not list.
    """
    paths = [Path(p) for p in paths]
    if len(paths) == 1 and paths[0].is_dir():
        folder = paths[0]
        if manifest is None:
            return f"{folder} has no {MANIFEST} recording its shards' checksums"
        if shard_infos(manifest) is None:
            return f"{folder / MANIFEST} records no per-shard checksums (no shard_info)"
        return None
    for path in paths:
        if expected_info(path) is None:
            return f"{path} is not listed with its checksum in a {MANIFEST} next to it"
    return None


def first_sample_meta(path: str | os.PathLike) -> dict[str, Any] | None:
    """The ``.json`` of a shard's first sample (read up to it only), or None if there is none
    or it cannot be read (reading the shard later reports the damage)."""
    try:
        with tarfile.open(path, mode="r|") as archive:
            for member in archive:
                if member.isfile() and member.name.endswith(".json"):
                    handle = archive.extractfile(member)
                    meta = json.loads(handle.read()) if handle is not None else None
                    return meta if isinstance(meta, dict) else None
    except (tarfile.TarError, EOFError, OSError, ValueError):
        return None
    return None


def check_shard_bytes(path: str, data: bytes, info: dict[str, Any]) -> None:
    """Raise ShardError unless ``data`` has the size and sha256 the manifest recorded."""
    if len(data) != info["size"]:
        what = "truncated" if len(data) < info["size"] else "longer than written"
        raise ShardError(
            f"shard {path} is {what}: {len(data)} bytes, the manifest expects {info['size']} "
            f"({info['samples']} samples)"
        )
    if hashlib.sha256(data).hexdigest() != info["sha256"]:
        raise ShardError(
            f"shard {path} is corrupt: its sha256 differs from the manifest's "
            f"({info['samples']} samples, {info['size']} bytes expected)"
        )


def _tar_samples(stream: BinaryIO, url: str) -> Iterator[Sample]:
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


def read_shard_bytes(url: str, check: bool = True) -> tuple[bytes, dict[str, Any] | None]:
    """A local shard file's bytes and what its manifest records of it, checked against that
    record (size, sha256) when ``check`` and the manifest has one; ShardError otherwise."""
    if "://" in url or url.startswith("pipe:"):
        # Refuse URL schemes: webdataset's "pipe:" would run a shell command.
        raise ValueError(f"only local shard files are read, not {url!r}")
    info = expected_info(url) if check else None
    try:
        data = Path(url).read_bytes()
    except OSError as error:
        raise ShardError(f"shard {url} cannot be read: {error.strerror or error}") from error
    if info is not None:
        check_shard_bytes(url, data, info)
    return data, info


def iter_tar_samples(
    source: str | os.PathLike | bytes | BinaryIO, check: bool = True
) -> Iterator[Sample]:
    """Yield webdataset samples (``{"__key__", "__url__", ext: bytes}``) from one tar, in memory.

    A shard file is read whole and, when its folder's manifest records it (``check``), its size
    and sha256 are checked before any sample is yielded and its sample count at its end. A
    truncated or unreadable tar, or one that disagrees with the manifest, raises ShardError
    naming the shard and what was expected.
    """
    info = None
    if isinstance(source, bytes):
        stream: BinaryIO = io.BytesIO(source)
        url = "<bytes>"
    elif isinstance(source, (str, os.PathLike)):
        url = str(source)
        data, info = read_shard_bytes(url, check)
        stream = io.BytesIO(data)
    else:
        stream, url = source, getattr(source, "name", "<stream>")
    expected = f"; the manifest expects {info['samples']} samples" if info else ""
    count = 0
    try:
        for sample in _tar_samples(stream, url):
            count += 1
            yield sample
    except (tarfile.TarError, EOFError, OSError) as error:
        raise ShardError(f"shard {url} is truncated or corrupt ({error}){expected}") from error
    if info is not None and count != info["samples"]:
        raise ShardError(f"shard {url} is short: it holds {count} samples{expected}")


def read_samples(
    source: str | os.PathLike | Sequence[str | os.PathLike], split: str
) -> list[Sample]:
    """All samples of one split, in shard order (for small data and tests)."""
    return [s for url in list_shards(source, split) for s in iter_tar_samples(url)]
