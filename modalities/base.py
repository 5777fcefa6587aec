"""The adapter protocol every modality implements, a base class with defaults, and option checks.

An adapter owns everything about its modality, so that the workflows (prepare, fit on raw files,
evaluate, sample) loop over adapters and never name one:

- the byte layout: ``encode``/``decode``, ``encode_file``, ``save``, ``seq_len``, ``stream``;
- its inputs: the file ``suffixes`` it reads, which files it ``accepts``, and the ``units`` one
  file yields (records that must go to one split together: an image, an npz row, one audio
  file's clips, a text document);
- its command-line ``flags`` for ``multibyte prepare``;
- its metric: ``unit`` and ``bytes_per_unit`` (value in unit = bits per byte × bytes_per_unit),
  ``count_words`` when words make sense, format-aware ``codecs`` and a ``bits_map`` for plots;
- sampling: how a prompt is read from a file (``read_prompt``, ``prompt_fraction``), how many
  bytes to generate (``plan_sample``) and how samples are written (``render``);
- training: the data ``augmentations`` it offers (``--data.augment``), by name.

A new modality is one small class: subclass ``BaseAdapter``, set ``name`` (and ``suffixes``),
implement ``encode``, and register it (``modalities.register`` or the entry-point group).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, ClassVar, Protocol, runtime_checkable

import numpy as np

from multibyte.codecs import Codec

# One training sample's bytes -> bytes of the same length and layout, its random draws taken from
# the generator (so the caller decides what they depend on).
Augmentation = Callable[[bytes, np.random.Generator], bytes]


@dataclass(frozen=True)
class Flag:
    """A ``multibyte prepare`` option an adapter declares: ``--flag VALUE`` -> ``keyword``.

    ``kind`` is int, float, str or bool (a switch). An adapter option (``reading=False``) is a
    constructor keyword and part of ``options``; a reading option (``reading=True``) only says
    how files are read (e.g. text's ``--enwik8``) and goes to ``units`` and ``check_reading``.
    """

    flag: str
    keyword: str
    kind: type = int
    help: str = "adapter option (see docs/modalities.md)"
    reading: bool = False


@dataclass
class Record:
    """One sample's bytes (or one stream's document) and plain metadata for its ``.json``."""

    data: bytes
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class Unit:
    """Records that go to one split together (an image, an npz row, a file's clips, a document).

    ``name`` is appended to the file's identity for the split draw (``#3``: row 3 of a batch);
    ``split`` fixes the split instead of drawing it (enwik8's standard split).
    """

    records: list[Record]
    name: str = ""
    split: str | None = None


@dataclass
class Prompt:
    """The bytes a model continues, and the whole encoded prompt file for renderers that show it."""

    data: bytes = b""
    whole: bytes | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class BitsMap:
    """Mean bits of one sample's bytes laid out in the modality's own 2-D space (a heat map)."""

    values: np.ndarray
    name: str  # file stem of the plot, e.g. "pixel_bits"
    title: str
    label: str  # colour-bar label


@runtime_checkable
class Adapter(Protocol):
    """Turns one kind of object or file into the bytes a model sees, and back.

    ``options`` is plain data (JSON-able) such that ``modalities.get(**adapter.options)``
    rebuilds an equal adapter, which is how a checkpoint stores its modality.
    ``BaseAdapter`` implements everything but ``name`` and ``encode`` with defaults.
    """

    name: str
    seq_len: int | None
    default_patch_size: int
    unit: str
    suffixes: tuple[str, ...]
    flags: tuple[Flag, ...]
    prompt_fraction: float

    @property
    def options(self) -> dict[str, Any]: ...

    @property
    def stream(self) -> bool: ...

    @property
    def bytes_per_unit(self) -> int: ...

    def encode(self, obj: Any) -> bytes: ...

    def decode(self, data: bytes) -> Any: ...

    def encode_file(self, path: str | os.PathLike) -> bytes: ...

    def save(self, data: bytes, path: str | os.PathLike) -> None: ...

    def encode_exact(self, path: str | os.PathLike) -> bytes: ...

    def save_exact(self, data: bytes, path: str | os.PathLike) -> None: ...

    def recognises(self, path: Path) -> bool: ...

    def accepts(self, path: Path, named: bool) -> bool: ...

    def describe_inputs(self) -> str: ...

    def check_reading(
        self, sources: Sequence[Path], val_sources: Sequence[Path], **reading: Any
    ) -> None: ...

    def units(self, path: Path, **reading: Any) -> list[Unit]: ...

    def manifest_extras(self, **reading: Any) -> dict[str, Any]: ...

    def count_words(self, data: bytes) -> int | None: ...

    def codecs(self) -> tuple[dict[str, Codec], dict[str, str]]: ...

    def bits_map(self, bits: np.ndarray) -> BitsMap | None: ...

    def read_prompt(self, path: str | os.PathLike, fraction: float) -> Prompt: ...

    def plan_sample(
        self, prompt: Prompt, max_new_bytes: int | None, max_seq_len: int
    ) -> tuple[Prompt, int]: ...

    def render(self, samples: Sequence[bytes], out: Path, prompt: Prompt) -> list[Path]: ...

    def augmentations(self) -> dict[str, Augmentation]: ...


def numbered(out: Path, i: int, n: int) -> Path:
    """``out`` itself for one sample, else ``OUT-i.ext``."""
    return out if n == 1 else out.with_name(f"{out.stem}-{i}{out.suffix}")


class BaseAdapter:
    """Defaults for every part of the protocol, so a modality overrides only what differs.

    The defaults describe raw bytes: one file is one sample (or, for a stream, one document),
    files are read byte for byte and saved back unchanged, the unit is bits/byte, there are no
    format codecs, and sampling continues a prompt by ``--max-new-bytes``.
    """

    name: ClassVar[str]
    unit: ClassVar[str] = "bits/byte"
    suffixes: ClassVar[tuple[str, ...]] = ()
    flags: ClassVar[tuple[Flag, ...]] = ()
    prompt_fraction: ClassVar[float] = 1.0
    seq_len: int | None = None  # bytes per sample; None for a stream
    default_patch_size: int = 8
    # True when a sample means something only whole (an image): a training window never cuts
    # one, so it must fit the window; False when any run of its bytes is data (an audio clip).
    whole_samples: ClassVar[bool] = False

    # -- byte layout ---------------------------------------------------------------------------

    @property
    def options(self) -> dict[str, Any]:
        return {"name": self.name}

    @property
    def stream(self) -> bool:
        """True when the data is one stream cut into windows (text), not separate samples."""
        return self.seq_len is None

    @property
    def bytes_per_unit(self) -> int:
        """Bytes per unit of the metric: value in unit = bits per byte × this."""
        return 1

    @property
    def frame_bytes(self) -> int:
        """The smallest whole piece of the byte layout (an audio sample's 2 bytes in pcm16):
        generated or cut lengths must be multiples of it."""
        return 1

    # Options that only set defaults for the model (a patch size) or how inputs are cut, not how
    # one byte of a sample is laid out: data prepared with other values reads the same.
    layout_free: ClassVar[tuple[str, ...]] = ("patch_size",)

    @property
    def layout(self) -> dict[str, Any]:
        """The options that decide what the bytes mean: a model trained on data of one layout
        cannot be scored on data of another (``evaluate`` compares these)."""
        return {k: v for k, v in self.options.items() if k not in self.layout_free}

    def encode(self, obj: Any) -> bytes:
        raise NotImplementedError(f"{type(self).__name__} does not implement encode")

    def decode(self, data: bytes) -> Any:
        return bytes(data)

    def encode_file(self, path: str | os.PathLike) -> bytes:
        return read_bytes(path)

    def save(self, data: bytes, path: str | os.PathLike) -> None:
        Path(path).write_bytes(bytes(data))

    def encode_exact(self, path: str | os.PathLike) -> bytes:
        """The file's content as this adapter's bytes, losslessly; ValueError if it cannot be."""
        raise ValueError(f"exact (lossless) coding is not supported for {self.name}: {path}")

    def save_exact(self, data: bytes, path: str | os.PathLike) -> None:
        """Write bytes from ``encode_exact`` back in the file's own format (default: ``save``)."""
        self.save(data, path)

    # -- inputs --------------------------------------------------------------------------------

    def recognises(self, path: Path) -> bool:
        """True if ``path`` looks like one of this modality's inputs (by its suffix)."""
        return path.suffix.lower() in self.suffixes

    def accepts(self, path: Path, named: bool) -> bool:
        """True if ``prepare`` reads ``path``; ``named``: given directly, not found in a folder."""
        return self.recognises(path)

    def describe_inputs(self) -> str:
        """What ``accepts`` takes, for the reason a skipped file gives."""
        return ", ".join(self.suffixes) or "(no file suffixes declared)"

    def check_reading(
        self, sources: Sequence[Path], val_sources: Sequence[Path], **reading: Any
    ) -> None:
        """Reject reading options that cannot work with these inputs (ValueError)."""

    def units(self, path: Path, **reading: Any) -> list[Unit]:
        """What one input file yields: by default one unit of one record, the encoded file."""
        return [Unit([Record(self.encode_file(path))])]

    def manifest_extras(self, **reading: Any) -> dict[str, Any]:
        """Keys this modality adds to (or sets in) a shard folder's ``manifest.json``."""
        return {}

    # -- metrics -------------------------------------------------------------------------------

    def count_words(self, data: bytes) -> int | None:
        """Words in ``data`` for word-level perplexity; None where words make no sense."""
        return None

    def codecs(self) -> tuple[dict[str, Codec], dict[str, str]]:
        """Format-aware lossless codecs of one sample's bytes, and why others do not apply."""
        return {}, {}

    def bits_map(self, bits: np.ndarray) -> BitsMap | None:
        """Mean bits per byte of one full sample as a 2-D map, or None (no natural layout)."""
        return None

    # -- sampling ------------------------------------------------------------------------------

    def read_prompt(self, path: str | os.PathLike, fraction: float) -> Prompt:
        """The first ``fraction`` of the encoded file."""
        whole = self.encode_file(path)
        return Prompt(whole[: int(len(whole) * fraction)], whole)

    def plan_sample(
        self, prompt: Prompt, max_new_bytes: int | None, max_seq_len: int
    ) -> tuple[Prompt, int]:
        """(the prompt as the model sees it, bytes to generate); ValueError if nothing fits.

        A sample modality completes one sample (``seq_len`` bytes); a stream continues the
        prompt by 256 bytes by default, keeping the end of a prompt that is too long.
        """
        limit = max_seq_len
        if not self.stream and max_new_bytes is None:
            new = self.seq_len - len(prompt.data)
            if self.seq_len > limit or new <= 0:
                raise ValueError(
                    f"a sample is {self.seq_len} bytes: the prompt must be shorter and the "
                    f"model's max_seq_len {limit} at least that long"
                )
            return prompt, new
        new = max_new_bytes or min(256, limit - 1)
        if new <= 0 or new > limit:
            raise ValueError(f"--max-new-bytes must be in 1..{limit}")
        data = prompt.data
        if len(data) + new > limit:
            data = data[len(data) - (limit - new) :]  # keep the end: it is what is continued
        return replace(prompt, data=data), new

    def render(self, samples: Sequence[bytes], out: Path, prompt: Prompt) -> list[Path]:
        """Save every sample with ``save``: ``out``, or ``OUT-0.ext``, ``OUT-1.ext``, ..."""
        paths = []
        for i, data in enumerate(samples):
            path = numbered(Path(out), i, len(samples))
            self.save(data, path)
            paths.append(path)
        return paths

    # -- training ------------------------------------------------------------------------------

    def augmentations(self) -> dict[str, Augmentation]:
        """Training augmentations by name (``--data.augment``); by default none."""
        return {}

    # -- identity ------------------------------------------------------------------------------

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.options == self.options

    def __hash__(self) -> int:
        return hash((type(self), tuple(sorted(map(str, self.options.items())))))

    def __repr__(self) -> str:
        opts = ", ".join(f"{k}={v!r}" for k, v in self.options.items() if k != "name")
        return f"{type(self).__name__}({opts})"


def check_choice(option: str, value: Any, choices: tuple[str, ...]) -> None:
    """Raise ValueError naming ``option`` unless ``value`` is one of ``choices``."""
    if value not in choices:
        raise ValueError(f"option {option}={value!r} is not one of {', '.join(choices)}")


def check_positive_int(option: str, value: Any) -> None:
    """Raise ValueError naming ``option`` unless ``value`` is an int > 0."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ValueError(f"option {option}={value!r} must be a positive integer")


def read_bytes(path: str | os.PathLike) -> bytes:
    """A file's raw bytes; an empty file is an error (it holds no sample)."""
    data = open(path, "rb").read()  # noqa: SIM115 - short read, closed by refcount
    if not data:
        raise ValueError(f"empty file: {path}")
    return data
