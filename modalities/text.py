"""Text: UTF-8 bytes. Files are read as raw bytes, so invalid UTF-8 reaches the model unchanged.

Readers: one file, a folder of ``.txt`` files (PG-19: one book per file) and raw enwik8.
In a prepared stream every document is followed by ``SEPARATOR``.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from modalities.base import (
    BaseAdapter,
    Flag,
    Prompt,
    Record,
    Unit,
    check_positive_int,
    read_bytes,
)

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


class TextAdapter(BaseAdapter):
    """``str`` <-> UTF-8 bytes. Text is a stream, so ``seq_len`` is None."""

    name = "text"
    seq_len = None
    unit = "bits/byte"
    suffixes = TEXT_SUFFIXES
    flags = (
        Flag("--patch-size", "patch_size", int),
        Flag("--enwik8", "enwik8", bool, "raw enwik8, its fixed 90/5/5 split", reading=True),
    )

    def __init__(self, patch_size: int = 8) -> None:
        check_positive_int("patch_size", patch_size)
        self.default_patch_size = patch_size

    @property
    def options(self) -> dict[str, Any]:
        return {"name": self.name, "patch_size": self.default_patch_size}

    @property
    def stream(self) -> bool:
        return True

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

    # -- inputs ---------------------------------------------------------------------------------

    def accepts(self, path: Path, named: bool) -> bool:
        # A file named directly is text whatever its name (enwik8 has no extension).
        return named or self.recognises(path)

    def describe_inputs(self) -> str:
        return ".txt (or any file named directly)"

    def check_reading(
        self, sources: Sequence[Path], val_sources: Sequence[Path], enwik8: bool = False
    ) -> None:
        if enwik8 and val_sources:
            raise ValueError("--val-src does not apply to --enwik8 (it has a fixed split)")
        if enwik8 and not all(Path(src).is_file() for src in sources):
            raise ValueError("--enwik8 needs the raw enwik8 file, not a folder")

    def units(self, path: Path, enwik8: bool = False) -> list[Unit]:
        """A document followed by ``SEPARATOR``; raw enwik8: its three fixed splits, as they are."""
        if enwik8:
            data = read_bytes(path)
            units = []
            for split in ENWIK8_SPLITS:
                start, stop = enwik8_range(len(data), split)
                part = data[start:stop]
                units.append(Unit([Record(part, {"document_bytes": len(part)})], split=split))
            return units
        document = self.encode_file(path)
        return [Unit([Record(self.join([document]), {"document_bytes": len(document)})])]

    def manifest_extras(self, enwik8: bool = False) -> dict[str, Any]:
        if enwik8:
            return {"split": "enwik8 90/5/5"}
        return {"separator_hex": SEPARATOR.hex()}

    # -- metrics --------------------------------------------------------------------------------

    def count_words(self, data: bytes) -> int:
        """Whitespace-separated words (ASCII whitespace), document separators removed first."""
        return len(bytes(data).replace(SEPARATOR, b" ").split())

    # -- sampling -------------------------------------------------------------------------------

    def render(self, samples: Sequence[bytes], out: Path, prompt: Prompt) -> list[Path]:
        """Each sample saved as raw bytes and printed."""
        paths = super().render(samples, out, prompt)
        for i, data in enumerate(samples):
            print(f"--- sample {i} ---")
            print(self.decode(data))
        return paths

    # -- exact (lossless) coding --

    def encode_exact(self, path: str | os.PathLike) -> bytes:
        """The file's bytes, exactly (an empty file is fine: it is coded as no bytes)."""
        return Path(path).read_bytes()

    def save_exact(self, data: bytes, path: str | os.PathLike) -> None:
        """Write the bytes as they are: `encode_exact` of the file gives `data` back."""
        Path(path).write_bytes(bytes(data))


def enwik8_range(total: int, split: str) -> tuple[int, int]:
    """Byte range [start, stop) of ``split`` in an enwik8 file of ``total`` bytes."""
    if split not in ENWIK8_SPLITS:
        raise ValueError(f"enwik8 split must be one of {', '.join(ENWIK8_SPLITS)}, got {split!r}")
    lo, hi = ENWIK8_SPLITS[split]
    return round(total * lo), round(total * hi)
