"""One mixture source's training windows, read shard by shard as training goes.

A source is a list of shards (a prepared folder's ``train-*.tar``, or one in-memory "shard"
holding raw files' samples) and one of three kinds, which decide how a window of ``data_len``
bytes is cut from it:

- ``stream`` (text): the records are consecutive pieces of one byte stream; a window starts at
  any offset of one shard's stream (and runs on into the next shards only when that shard holds
  less than a window);
- ``whole`` (a 64x64 image: a sample that is used whole or not at all): a window starts at the
  first byte of a sample; when the sample is shorter than the window, the next samples follow it
  (the window holds one whole sample and the start of the next);
- ``cut`` (an audio clip of any length): a window is any ``data_len`` bytes of one sample, at an
  offset that is a multiple of ``frame`` (an audio sample's bytes), so a longer clip gives many.

Which shard a window comes from is the caller's choice (``multibyte.data.mixing``: one shard per
source for a span of batches, so that a reader keeps one decoded shard per source in memory);
the position inside it is drawn from the generator the caller passes in. Shards are checked
against their manifest when read (``iter_tar_samples``); a bad one stops the run or, with
``on_bad_shard="skip"``, is skipped for the next good one and counted for this source.
"""

from __future__ import annotations

import os
from collections import OrderedDict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from multibyte.data.iterable import BadShards
from multibyte.data.shards import (
    ShardError,
    iter_tar_samples,
    read_shard_bytes,
    shard_infos,
)
from multibyte.data.windows import as_array

STREAM, WHOLE, CUT = "stream", "whole", "cut"
KINDS = (STREAM, WHOLE, CUT)
CACHED_SHARDS = 2  # decoded shards kept per source and reader: the current one and a neighbour
BLOCK = 512  # a tar block


@dataclass(frozen=True)
class Shard:
    """One shard of a source: its file (None: the samples are in memory) and its size on disk."""

    url: str | None
    size: int


@dataclass
class SourceSpec:
    """What a reader needs to know about one source (plain data: it travels to workers)."""

    where: str  # the source's path(s), for messages
    kind: str
    shards: tuple[Shard, ...]
    data_len: int
    frame: int = 1
    on_bad_shard: str = "stop"
    memory: tuple[bytes, ...] = ()  # an in-memory source's samples (its one shard)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"a source's kind is one of {KINDS}, got {self.kind!r}")
        if not self.shards:
            raise ValueError(f"{self.where}: no training shards")

    @property
    def shard_weights(self) -> np.ndarray:
        """The chance of drawing each shard: its share of the source's bytes."""
        sizes = np.asarray([max(s.size, 1) for s in self.shards], dtype=np.float64)
        return sizes / sizes.sum()


def shard_list(folder: str | os.PathLike, split: str, manifest: dict | None) -> tuple[Shard, ...]:
    """A folder's ``split`` shards with their sizes: the manifest's record (nothing is read), or
    the files' sizes on disk for shards the manifest does not record."""
    folder = Path(folder)
    infos = shard_infos(manifest) or {}
    names = sorted(p.name for p in folder.glob(f"{split}-*.tar"))
    shards = []
    for name in names:
        info = infos.get(name)
        size = int(info["size"]) if info else (folder / name).stat().st_size
        shards.append(Shard(str(folder / name), size))
    return tuple(shards)


def read_shard(url: str) -> list[np.ndarray]:
    """The ``.bin`` of every sample of one shard, checked against its manifest (ShardError):
    views into the shard's bytes, read once (no copy per sample)."""
    data, info = read_shard_bytes(url)
    parsed = _ustar_bins(data, url)
    if parsed is None:  # members this reader does not parse (pax headers...): the general one
        return [as_array(s["bin"]) for s in iter_tar_samples(url) if s.get("bin")]
    bins, count = parsed
    if info is not None and count != info["samples"]:
        raise ShardError(
            f"shard {url} is short: it holds {count} samples; the manifest expects "
            f"{info['samples']} samples"
        )
    return bins


def _ustar_bins(data: bytes, url: str) -> tuple[list[np.ndarray], int] | None:
    """(the ``.bin`` members as views, the number of samples) of a plain ustar archive, as
    ``ShardSink`` writes them; None for a member type other than a regular file."""
    array, size, position, bins, count, key = as_array(data), len(data), 0, [], 0, None
    while position + BLOCK <= size:
        header = data[position : position + BLOCK]
        if not any(header):  # the end-of-archive blocks
            return bins, count
        if header[156:157] not in (b"0", b"\0"):
            return None
        try:
            length = int(header[124:136].strip(b"\0 ") or b"0", 8)
            checksum = int(header[148:156].strip(b"\0 "), 8)
        except ValueError:
            checksum, length = -1, 0
        if checksum != sum(header[:148]) + 8 * 32 + sum(header[156:]):
            raise ShardError(f"shard {url} is truncated or corrupt (a bad tar header)")
        name = header[:100].split(b"\0", 1)[0].decode("utf-8", "replace")
        prefix = header[345:500].split(b"\0", 1)[0] if header[257:262] == b"ustar" else b""
        if prefix:
            name = f"{prefix.decode('utf-8', 'replace')}/{name}"
        start = position + BLOCK
        if start + length > size:
            raise ShardError(f"shard {url} is truncated or corrupt (a member runs past its end)")
        directory, _, base = name.rpartition("/")
        stem, _, extension = base.partition(".")
        member_key = f"{directory}/{stem}" if directory else stem
        if member_key != key:
            count, key = count + 1, member_key
        if extension == "bin" and length:
            bins.append(array[start : start + length])
        position = start + -(-length // BLOCK) * BLOCK
    if position != size:
        raise ShardError(f"shard {url} is truncated or corrupt (it ends inside a tar header)")
    return bins, count


class SourceReader:
    """Windows of one source for one reader process; keeps its last decoded shards."""

    def __init__(self, spec: SourceSpec) -> None:
        self.spec = spec
        self.bad = BadShards(spec.on_bad_shard, len(spec.shards))
        self.cache: OrderedDict[int, list[np.ndarray]] = OrderedDict()

    # -- shards --------------------------------------------------------------------------------

    def _decode(self, index: int) -> list[np.ndarray]:
        shard = self.spec.shards[index]
        if shard.url is None:
            return [as_array(s) for s in self.spec.memory if len(s)]
        return read_shard(shard.url)

    def load(self, index: int) -> tuple[int, list[np.ndarray]]:
        """(the shard used, its samples): ``index``, or the next good shard after a bad one."""
        count = len(self.spec.shards)
        for step in range(count):
            current = (index + step) % count
            if current in self.cache:
                self.cache.move_to_end(current)
                return current, self.cache[current]
            url = self.spec.shards[current].url
            if url in self.bad.bad:
                continue
            try:
                samples = self._decode(current)
            except ShardError as error:
                self.bad.handle(url, error)  # raises unless skipping; counts for this source
                continue
            self.cache[current] = samples
            while len(self.cache) > CACHED_SHARDS:
                self.cache.popitem(last=False)
            return current, samples
        raise ShardError(f"{self.spec.where}: every shard is bad, nothing left to read")

    def _following(self, index: int, first: int) -> Iterator[np.ndarray]:
        """Samples from sample ``first`` of shard ``index`` on, into the next shards, once round."""
        count = len(self.spec.shards)
        for step in range(count + 1):
            used, samples = self.load((index + step) % count)
            start = first if step == 0 else 0
            stop = len(samples) if step < count else first  # back where it began
            yield from samples[start:stop]
            if step == 0:
                index = used

    def _filled(self, index: int, first: int) -> np.ndarray:
        length, parts, size = self.spec.data_len, [], 0
        for sample in self._following(index, first):
            parts.append(sample)
            size += len(sample)
            if size >= length:
                return np.concatenate(parts)[:length]
        raise ShardError(
            f"{self.spec.where} holds fewer than {length} bytes: not one training window"
        )

    # -- windows -------------------------------------------------------------------------------

    def window(self, shard: int, rng: np.random.Generator) -> np.ndarray:
        """One window of ``data_len`` bytes from shard ``shard`` (or the next good one)."""
        kind, length = self.spec.kind, self.spec.data_len
        index, samples = self.load(shard)
        if kind == STREAM:  # the records are consecutive pieces of one stream
            ends = np.cumsum([len(s) for s in samples])
            total = int(ends[-1]) if len(ends) else 0
            if total < length:
                return self._filled(index, 0)
            start = int(rng.integers(0, total - length + 1))
            first = int(np.searchsorted(ends, start, side="right"))
            offset = start - (int(ends[first - 1]) if first else 0)
            parts = [samples[first][offset : offset + length]]
            size = len(parts[0])
            for sample in samples[first + 1 :]:
                if size >= length:
                    break
                parts.append(sample[: length - size])
                size += len(parts[-1])
            return parts[0] if len(parts) == 1 else np.concatenate(parts)
        if kind == WHOLE:
            if not samples:
                return self._filled(index, 0)
            first = int(rng.integers(0, len(samples)))
            if len(samples[first]) > length:
                raise ShardError(
                    f"{self.spec.where}: a sample of {len(samples[first])} bytes is longer "
                    f"than a {length}-byte window and is only used whole"
                )
            if len(samples[first]) == length:
                return samples[first]
            return self._filled(index, first)
        return self._cut(index, samples, rng)

    def _cut(self, index: int, samples: list[np.ndarray], rng: np.random.Generator) -> np.ndarray:
        length, frame, count = self.spec.data_len, self.spec.frame, len(self.spec.shards)
        for step in range(count):
            if step:
                index, samples = self.load((index + 1) % count)
            for _ in range(8 if samples else 0):  # most samples hold a window: draw directly
                sample = samples[int(rng.integers(0, len(samples)))]
                if len(sample) >= length:
                    return _piece(sample, length, frame, rng)
            long_enough = [s for s in samples if len(s) >= length]
            if long_enough:
                return _piece(
                    long_enough[int(rng.integers(0, len(long_enough)))], length, frame, rng
                )
        raise ShardError(f"{self.spec.where}: no sample holds a full {length}-byte window")


def _piece(sample: np.ndarray, length: int, frame: int, rng: np.random.Generator) -> np.ndarray:
    starts = (len(sample) - length) // frame + 1
    start = int(rng.integers(0, starts)) * frame
    return sample[start : start + length]


@dataclass
class ValidationSpec:
    """One source's validation data: shards read in order, or in-memory samples."""

    urls: tuple[str, ...] = ()
    memory: tuple[bytes, ...] = ()
    on_bad_shard: str = "stop"
    stream: bool = False
    skipped: list[str] = field(default_factory=list)

    def samples(self) -> Iterator[np.ndarray]:
        """Every validation sample in order (one shard in memory at a time)."""
        yield from (as_array(s) for s in self.memory if len(s))
        bad = BadShards(self.on_bad_shard)
        for url in self.urls:
            try:
                yield from read_shard(url)
            except ShardError as error:
                bad.handle(url, error)


def sizes_on_disk(shards: Sequence[Shard]) -> int:
    return int(sum(s.size for s in shards))


__all__ = [
    "CUT",
    "KINDS",
    "STREAM",
    "WHOLE",
    "Shard",
    "SourceReader",
    "SourceSpec",
    "ValidationSpec",
    "read_shard",
    "shard_list",
    "sizes_on_disk",
]
