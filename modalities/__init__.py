"""Format adapters: bytes in, objects out. ``get(name, **options)`` returns one.

Built-in names are ``text``, ``image`` and ``audio``. Third-party packages add adapters through
the entry-point group ``multibyte.modalities``: the entry point's name is the adapter name and
its object is a callable taking the options as keywords (usually a ``BaseAdapter`` subclass).
This registry is the one place where a modality is looked up by name.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Callable, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from modalities.base import Adapter, BaseAdapter, BitsMap, Flag, Prompt, Record, Unit

ENTRY_POINT_GROUP = "multibyte.modalities"
CLASH_MESSAGE = (
    "The unrelated PyPI distribution 'modalities' is installed in this environment ({where}). "
    "It uses the same top-level import name as multibyte's own 'modalities' package, so one "
    "overwrites the other. Uninstall it (pip uninstall modalities) or use a separate "
    "virtual environment for multibyte."
)


def check_name_clash() -> None:
    """Fail clearly if PyPI's unrelated `modalities` distribution shares this environment."""
    try:
        foreign = metadata.distribution("modalities")
    except metadata.PackageNotFoundError:
        return
    raise ImportError(CLASH_MESSAGE.format(where=f"version {foreign.version}"))


check_name_clash()

# Built-ins are imported lazily so `import modalities` stays cheap (audio pulls in torchaudio).
BUILTIN: dict[str, str] = {
    "text": "modalities.text:TextAdapter",
    "image": "modalities.image:ImageAdapter",
    "audio": "modalities.audio:AudioAdapter",
}

_registered: dict[str, Callable[..., Adapter]] = {}


def register(name: str, factory: Callable[..., Adapter]) -> None:
    """Register ``factory(**options)`` under ``name`` for this process (overrides entry points)."""
    _registered[name] = factory


def _entry_points() -> dict[str, metadata.EntryPoint]:
    return {ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}


def available() -> list[str]:
    """All adapter names: built-in, registered in-process, and from entry points."""
    return sorted(set(BUILTIN) | set(_registered) | set(_entry_points()))


def factory(name: str) -> Callable[..., Adapter]:
    """What builds adapter ``name`` (usually its class, whose ``flags`` a command can read)."""
    if name in _registered:
        return _registered[name]
    if name in BUILTIN:
        module, attr = BUILTIN[name].split(":")
        return getattr(importlib.import_module(module), attr)
    entry_points = _entry_points()
    if name in entry_points:
        return entry_points[name].load()
    raise ValueError(f"unknown modality {name!r}; available: {', '.join(available())}")


def get(name: str, **options: Any) -> Adapter:
    """The adapter ``name`` built with ``options``; bad names or options raise ValueError."""
    if not isinstance(name, str):
        raise ValueError(f"modality name must be a string, got {name!r}")
    build = factory(name)
    try:
        return build(**options)
    except TypeError as error:
        # An unexpected keyword is a bad option, reported like the adapters' own checks.
        if "unexpected keyword" not in str(error):
            raise
        raise ValueError(f"unknown option for modality {name!r}: {error}") from error


def _default_adapters() -> list[Adapter]:
    adapters = []
    for name in available():
        try:
            adapters.append(get(name))
        except (TypeError, ValueError):
            continue  # an adapter without usable defaults cannot claim files by their names
    return adapters


def guess(paths: Sequence[str | os.PathLike]) -> str | None:
    """The one modality whose adapter recognises the files under ``paths``, if exactly one does.

    Files no adapter recognises are ignored; files of two modalities give None.
    """
    adapters = _default_adapters()
    names = set()
    for root in map(Path, paths):
        files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
        for file in files:
            names.update(adapter.name for adapter in adapters if adapter.recognises(file))
    return names.pop() if len(names) == 1 else None


__all__ = [
    "ENTRY_POINT_GROUP",
    "Adapter",
    "BaseAdapter",
    "BitsMap",
    "Flag",
    "Prompt",
    "Record",
    "Unit",
    "available",
    "factory",
    "get",
    "guess",
    "register",
]
