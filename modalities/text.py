"""Text: UTF-8 bytes. Files are read as raw bytes, so invalid UTF-8 reaches the model unchanged.

Readers: one file, a folder of ``.txt`` files (PG-19: one book per file) and raw enwik8.
In a prepared stream every document is followed by ``SEPARATOR``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from modalities.base import check_positive_int, read_bytes

# ASCII "record separator" (0x1E) then a newline. It is ordinary data, not a special token: the
# model predicts it like any byte. 0x1E almost never occurs in real text, so it marks a document
# boundary unambiguously in practice, and the newline lets the next document start a line.
SEPARATOR = b"\x1e\n"

# The standard enwik8 split (first 90M / next 5M / last 5M bytes), as fractions of the file so
# that truncated copies used in tests split the same way.
ENWIK8_SPLITS: dict[str, tuple[float, float]] = {
    "train": (0.0, 0.9),
    "val": (0.9, 0.95),
    "test": (0.95, 1.0),
}

TEXT_SUFFIXES = (".txt",)


class TextAdapter:
    """``str`` <-> UTF-8 bytes. Text is a stream, so ``seq_len`` is None."""

    name = "text"
    seq_len = None
    unit = "bits/byte"

    def __init__(self, patch_size: int = 8) -> None:
        check_positive_int("patch_size", patch_size)
        self.default_patch_size = patch_size

    @property
    def options(self) -> dict[str, Any]:
        return {"name": self.name, "patch_size": self.default_patch_size}

    def encode(self, obj: str) -> bytes:
        if not isinstance(obj, str):
            raise TypeError(f"text adapter encodes str, got {type(obj).__name__}")
        return obj.encode("utf-8")

    def decode(self, data: bytes) -> str:
        return bytes(data).decode("utf-8", errors="replace")

    def encode_file(self, path: str | os.PathLike) -> bytes:
        """The file's raw bytes, byte for byte (no decoding, no newline translation)."""
        return read_bytes(path)

    def save(self, data: bytes, path: str | os.PathLike) -> None:
        """Write the raw bytes (not re-encoded), so saving never loses a byte."""
        Path(path).write_bytes(bytes(data))

    def join(self, documents: Iterable[bytes]) -> bytes:
        """The stream a model sees: every document followed by ``SEPARATOR``."""
        return b"".join(bytes(d) + SEPARATOR for d in documents)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, TextAdapter) and other.options == self.options

    def __repr__(self) -> str:
        return f"TextAdapter(patch_size={self.default_patch_size})"

    # -- exact (lossless) coding --

    def encode_exact(self, path: str | os.PathLike) -> bytes:
        """The file's bytes, exactly (an empty file is fine: it is coded as no bytes)."""
        return Path(path).read_bytes()

    def save_exact(self, data: bytes, path: str | os.PathLike) -> None:
        """Write the bytes as they are: `encode_exact` of the file gives `data` back."""
        Path(path).write_bytes(bytes(data))


def text_files(path: str | os.PathLike) -> list[Path]:
    """A file itself, or every ``.txt`` under a folder (recursively), sorted."""
    path = Path(path)
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix in TEXT_SUFFIXES)
    if path.is_file():
        return [path]
    raise FileNotFoundError(f"no such file or folder: {path}")


def iter_documents(paths: Iterable[str | os.PathLike]) -> Iterator[tuple[Path, bytes]]:
    """(path, raw bytes) for every document under ``paths`` (files or PG-19 style folders)."""
    for root in paths:
        for file in text_files(root):
            yield file, file.read_bytes()


def enwik8_range(total: int, split: str) -> tuple[int, int]:
    """Byte range [start, stop) of ``split`` in an enwik8 file of ``total`` bytes."""
    if split not in ENWIK8_SPLITS:
        raise ValueError(f"enwik8 split must be one of {', '.join(ENWIK8_SPLITS)}, got {split!r}")
    lo, hi = ENWIK8_SPLITS[split]
    return round(total * lo), round(total * hi)


def read_enwik8(path: str | os.PathLike, split: str) -> bytes:
    """One split of raw enwik8: for the 10^8-byte file, 90M / 5M / 5M bytes."""
    data = read_bytes(path)
    start, stop = enwik8_range(len(data), split)
    return data[start:stop]
