"""The adapter protocol every modality implements, and option checks shared by adapters."""

from __future__ import annotations

import os
from typing import Any, Protocol, runtime_checkable


@runtime_checkable
class Adapter(Protocol):
    """Turns one kind of object or file into the bytes a model sees, and back.

    ``options`` is plain data (JSON-able) such that ``modalities.get(**adapter.options)``
    rebuilds an equal adapter, which is how a checkpoint stores its modality.
    """

    name: str
    seq_len: int | None
    default_patch_size: int
    unit: str

    @property
    def options(self) -> dict[str, Any]: ...

    def encode(self, obj: Any) -> bytes: ...

    def decode(self, data: bytes) -> Any: ...

    def encode_file(self, path: str | os.PathLike) -> bytes: ...

    def save(self, data: bytes, path: str | os.PathLike) -> None: ...


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
