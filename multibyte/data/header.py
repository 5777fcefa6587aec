"""The header of a multimodal model's sequences: plain bytes naming a modality and its options.

Every sequence of a model trained on several modalities starts with ``length`` header bytes,
then the data. The header is the modality's *tag* in ASCII, padded with 0x00 bytes:

    tag = name + "".join(f" {key}={value}" for key, value in sorted(options) if key != "name")
    e.g. b"image order=raster size=64" + b"\\x00" * 10   (length 36 at patch size 12)

``length`` is the longest tag of the model's modalities rounded up to whole patches, so the
header fills whole patches and the data starts on a patch boundary; it is the same for every
modality of one model. The model learns nothing from header bytes as targets: they are context
(training and evaluation score data bytes only) and the prompt that selects a modality when
sampling. docs/modalities.md ("Headers") documents this byte for byte.

A multimodal checkpoint's plain-data ``modality`` entry (``mixture_entry``) is
``{"name": "mixture", "patch_size": P, "header_length": H, "seq_len": T, "modalities": [...],
"windows": [...]}``, with one adapter-options dict per modality in the model's order and each
modality's trained data length (its evaluation window; at most T - H). An entry without
``windows`` trained every modality on T - H data bytes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

MIXTURE = "mixture"  # the ``name`` of a multimodal checkpoint's modality entry
PAD = 0x00


def header_tag(options: Mapping[str, Any]) -> bytes:
    """The ASCII tag of one modality's options: its name, then ``key=value`` sorted by key."""
    name = options.get("name")
    if not name:
        raise ValueError(f"modality options without a name: {dict(options)}")
    parts = [str(name)] + [f"{k}={options[k]}" for k in sorted(options) if k != "name"]
    text = " ".join(parts)
    if not text.isascii() or "\x00" in text:
        raise ValueError(f"a header tag must be ASCII without NUL bytes: {text!r}")
    return text.encode("ascii")


def header_length(modalities: Sequence[Mapping[str, Any]], patch_size: int) -> int:
    """The longest tag rounded up to whole patches (at least one patch)."""
    if patch_size <= 0:
        raise ValueError(f"patch_size must be positive, got {patch_size}")
    longest = max(len(header_tag(m)) for m in modalities)
    return max(1, -(-longest // patch_size)) * patch_size


def make_header(options: Mapping[str, Any], length: int) -> bytes:
    """``options``' tag padded with 0x00 to ``length`` bytes."""
    tag = header_tag(options)
    if len(tag) > length:
        raise ValueError(f"the tag {tag!r} is longer than the header ({length} bytes)")
    return tag + bytes([PAD]) * (length - len(tag))


def is_mixture(entry: Any) -> bool:
    """True for a multimodal checkpoint's (or data module's) modality entry."""
    return isinstance(entry, Mapping) and entry.get("name") == MIXTURE


@dataclass(frozen=True)
class HeaderTable:
    """The modalities of one multimodal model and their headers, in the model's order."""

    modalities: tuple[dict[str, Any], ...]
    patch_size: int
    length: int
    seq_len: int  # header + the longest data length: the model's sequences
    windows: tuple[int, ...] = ()  # each modality's data length; empty: all data_len

    def __post_init__(self) -> None:
        if not self.windows:
            object.__setattr__(self, "windows", (self.data_len,) * len(self.modalities))
        if len(self.windows) != len(self.modalities):
            raise ValueError(f"one window per modality, got {list(self.windows)}")
        if any(not 0 < w <= self.data_len for w in self.windows):
            raise ValueError(f"windows must be in 1..{self.data_len}, got {list(self.windows)}")

    @classmethod
    def build(
        cls,
        modalities: Sequence[Mapping[str, Any]],
        patch_size: int,
        data_len: int,
        windows: Sequence[int] = (),
    ) -> HeaderTable:
        """The table for ``modalities`` at ``patch_size``, with ``data_len`` data bytes at most
        and ``windows`` (default: all ``data_len``) for each modality."""
        if not modalities:
            raise ValueError("a mixture needs at least one modality")
        tags = [header_tag(m) for m in modalities]
        if len(set(tags)) != len(tags):
            raise ValueError(f"two sources have the same modality and options: {tags}")
        length = header_length(modalities, patch_size)
        options = tuple(dict(m) for m in modalities)
        return cls(options, patch_size, length, length + data_len, tuple(windows))

    @classmethod
    def from_entry(cls, entry: Mapping[str, Any]) -> HeaderTable:
        """The table stored in a checkpoint's plain-data modality entry (``mixture_entry``)."""
        if not is_mixture(entry):
            raise ValueError(f"not a mixture entry: {entry!r}")
        table = cls(
            tuple(dict(m) for m in entry["modalities"]),
            int(entry["patch_size"]),
            int(entry["header_length"]),
            int(entry["seq_len"]),
            tuple(int(w) for w in entry.get("windows") or ()),
        )
        for options in table.modalities:
            make_header(options, table.length)  # a tag that does not fit is a broken entry
        return table

    def entry(self) -> dict[str, Any]:
        """Plain data for the checkpoint (see the module docstring)."""
        return {
            "name": MIXTURE,
            "patch_size": self.patch_size,
            "header_length": self.length,
            "seq_len": self.seq_len,
            "modalities": [dict(m) for m in self.modalities],
            "windows": list(self.windows),
        }

    @property
    def data_len(self) -> int:
        """The longest data length (every modality's, unless ``windows`` say otherwise)."""
        return self.seq_len - self.length

    @property
    def headers(self) -> list[bytes]:
        return [make_header(m, self.length) for m in self.modalities]

    @property
    def labels(self) -> list[str]:
        """Metric names: the modality's name, with its index where two share a name."""
        names = [str(m["name"]) for m in self.modalities]
        return [n if names.count(n) == 1 else f"{n}{i}" for i, n in enumerate(names)]

    def index(self, options: Mapping[str, Any]) -> int:
        """Position of ``options`` in the table (its tag must match); ValueError if absent."""
        tag = header_tag(options)
        for i, m in enumerate(self.modalities):
            if header_tag(m) == tag:
                return i
        raise ValueError(f"the model has no modality {tag.decode()!r}")

    def find(self, name: str) -> list[int]:
        """Indices of the modalities called ``name``."""
        return [i for i, m in enumerate(self.modalities) if m.get("name") == name]

    def identify(self, batch: torch.Tensor) -> torch.Tensor:
        """The modality index of every row of ``batch`` [B, T] from its header; -1 if none."""
        known = torch.tensor(
            [list(h) for h in self.headers], dtype=batch.dtype, device=batch.device
        )  # [M, H]
        match = (batch[:, None, : self.length] == known[None]).all(dim=-1)  # [B, M]
        found = match.long().argmax(dim=-1)
        return torch.where(match.any(dim=-1), found, torch.full_like(found, -1))


__all__ = [
    "MIXTURE",
    "PAD",
    "HeaderTable",
    "header_length",
    "header_tag",
    "is_mixture",
    "make_header",
]
