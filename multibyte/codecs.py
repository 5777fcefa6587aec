"""General-purpose lossless codecs on raw bytes, the baselines every bits-per-byte figure needs.

A codec is anything with ``name``, ``compress(bytes) -> bytes`` and ``decompress(bytes) ->
bytes``. The rate of a codec on a list of sequences is ``8 * sum(len(compress(s))) /
sum(len(s))`` bits per byte: every sequence is compressed on its own (as the model scores it),
and container headers count, since they are part of the file a user would store.

Format-aware codecs (PNG, WebP, FLAC) need to know what the bytes mean, so each adapter gives
its own (``codecs()`` in ``modalities``); this module knows only bytes.
"""

from __future__ import annotations

import bz2
import gzip
import importlib
import lzma
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Codec:
    """A named lossless compressor: ``decompress(compress(data)) == data``."""

    name: str
    compress: Callable[[bytes], bytes]
    decompress: Callable[[bytes], bytes]


class CodecUnavailable(ValueError):
    """The codec cannot encode these bytes (wrong layout or encoding); the reason says why."""


def _zstd() -> Codec | None:
    # zstd is optional: the standard library has it from Python 3.14, else the zstandard wheel.
    try:
        module = importlib.import_module("compression.zstd")
        return Codec("zstd", lambda d: module.compress(d, level=19), module.decompress)
    except ImportError:
        pass
    try:
        zstandard = importlib.import_module("zstandard")
    except ImportError:
        return None
    return Codec(
        "zstd",
        lambda d: zstandard.ZstdCompressor(level=19).compress(d),
        lambda d: zstandard.ZstdDecompressor().decompress(d),
    )


def byte_codecs() -> dict[str, Codec]:
    """gzip -9, bz2 -9, xz (lzma preset 9), and zstd -19 when a zstd module is importable."""
    codecs = {
        # mtime=0 keeps gzip output deterministic (the header would hold the time).
        "gzip": Codec("gzip", lambda d: gzip.compress(d, 9, mtime=0), gzip.decompress),
        "bz2": Codec("bz2", lambda d: bz2.compress(d, 9), bz2.decompress),
        "xz": Codec("xz", lambda d: lzma.compress(d, preset=9), lzma.decompress),
    }
    zstd = _zstd()
    if zstd is not None:
        codecs["zstd"] = zstd
    return codecs


def compressed_bits(codec: Codec, sequences: Iterable[bytes], check: bool = False) -> int:
    """Total size in bits of every sequence compressed on its own (round-trip checked if asked)."""
    total = 0
    for data in sequences:
        data = bytes(data)
        blob = codec.compress(data)
        if check and codec.decompress(blob) != data:
            raise AssertionError(f"codec {codec.name} does not round-trip")
        total += 8 * len(blob)
    return total


def codec_rates(
    codecs: dict[str, Codec], sequences: Sequence[bytes], check: bool = False
) -> tuple[dict[str, float], dict[str, str]]:
    """(codec name -> bits per byte, codec name -> reason it does not apply) on ``sequences``."""
    num_bytes = sum(len(s) for s in sequences)
    rates: dict[str, float] = {}
    notes: dict[str, str] = {}
    if num_bytes == 0:
        return rates, {name: "n/a: no bytes" for name in codecs}
    for name, codec in codecs.items():
        try:
            rates[name] = compressed_bits(codec, sequences, check) / num_bytes
        except CodecUnavailable as error:
            notes[name] = f"n/a: {error}"
    return rates, notes


__all__ = ["Codec", "CodecUnavailable", "byte_codecs", "codec_rates", "compressed_bits"]
