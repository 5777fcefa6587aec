"""Opening data for training, evaluation and sampling: one answer to four questions.

1. Shards or raw files? A folder written by ``multibyte prepare`` (it holds ``manifest.json``
   or ``{split}-*.tar``), or ``.tar`` files, is shards; anything else is raw files or folders,
   encoded in memory exactly as ``prepare`` would encode them.
2. Which split? Shards: that split's tars. Raw files: split by ``val_fraction`` and ``seed``
   with ``prepare``'s rule (``val_fraction=0`` puts every input in ``train``).
3. Which modality? The caller's override (``--modality``), else the shards' manifest, else what
   the caller expects (the checkpoint's or the recipe's options), else the one modality whose
   adapter recognises the raw files' suffixes.
4. Does the data agree? A manifest, or raw files whose suffixes belong to another modality than
   the one expected, is an error (``ModalityMismatch``) unless the caller overrides it.
5. Is it whole? A folder whose manifest says ``"complete": false`` (an interrupted prepare) is
   refused (``IncompleteShards``) unless the caller allows it, and a shard the manifest lists
   but the folder lacks is a ShardError. Each shard is checked against the manifest when it is
   read (``multibyte.data.shards.iter_tar_samples``).
6. Can it be checked at all? Shards without a manifest that records each shard's size and
   sha256 (no manifest, an old one, or bare ``.tar`` files that no manifest lists) are refused
   (``UnverifiedShards``) unless the caller allows them; then one warning says so.
7. Is it laid out as the model expects? A checkpoint's options and the manifest's are compared
   by the adapter's ``layout`` (``LayoutMismatch``), and the manifest's options must be the ones
   its shards' samples were written with (an edited manifest is an error).
"""

from __future__ import annotations

import os
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import modalities
from modalities import Adapter
from multibyte.data.shards import (
    MANIFEST,
    SPLITS,
    ShardError,
    first_sample_meta,
    list_shards,
    load_manifest,
    read_samples,
    shard_infos,
    unverifiable,
)
from multibyte.inputs import encode_in_memory


class PreparedError(ValueError):
    """Data that cannot be opened as asked (a missing path or split, an unknown modality)."""


class ModalityMismatch(PreparedError):
    """The data holds another modality than the one expected, and nobody said to override it."""

    def __init__(self, found: str, expected: str, where: str, shards: bool) -> None:
        self.found, self.expected, self.where, self.shards = found, expected, where, shards
        what = f"the shards in {where} hold" if shards else f"the files {where} look like"
        super().__init__(f"{what} {found}, not {expected}")


class ModalityUnknown(PreparedError):
    """Neither the caller, nor a manifest, nor the files' suffixes say which modality it is."""


class IncompleteShards(PreparedError):
    """A shard folder whose prepare did not complete, and nobody said to use it anyway."""

    def __init__(self, folder: Path, manifest: dict[str, Any], allow: str) -> None:
        self.folder = folder
        counts = manifest.get("counts") or {}
        written = ", ".join(f"{s}={n}" for s, n in counts.items()) or "nothing"
        super().__init__(
            f'{folder} is an incomplete prepare ({folder / MANIFEST} says "complete": false; '
            f"written so far: {written} samples): finish it with `{resume_command(manifest)}`, "
            f"or pass {allow} to use it as it is"
        )


class UnverifiedShards(PreparedError):
    """Shards that no manifest records checksums for, and nobody said to read them anyway."""

    def __init__(self, reason: str, allow: str) -> None:
        super().__init__(
            f"{reason}: its shards cannot be verified, so a damaged one would go unnoticed; "
            f"prepare the data again with `multibyte prepare`, or pass {allow} to read them "
            "unverified"
        )


class LayoutMismatch(PreparedError):
    """Shards of the expected modality whose bytes are laid out otherwise (other options)."""

    def __init__(self, found: dict[str, Any], expected: dict[str, Any], where: str) -> None:
        self.found, self.expected, self.where = found, expected, where
        super().__init__(f"the shards in {where} hold {describe(found)}, not {describe(expected)}")


def describe(layout: dict[str, Any]) -> str:
    """``image (size=64, order=raster)``: a layout in one phrase."""
    rest = ", ".join(f"{k}={v}" for k, v in layout.items() if k != "name")
    return f"{layout.get('name')} ({rest})" if rest else str(layout.get("name"))


def layout_of(options: dict[str, Any]) -> dict[str, Any]:
    """The adapter's ``layout`` of these options (the options themselves if they build none)."""
    try:
        return dict(modalities.get(**options).layout)
    except (KeyError, TypeError, ValueError):
        return dict(options)


_warned_unverified: set[str] = set()


def warn_unverified(reason: str) -> None:
    """Say once per process that these shards are read without any check."""
    if reason not in _warned_unverified:
        _warned_unverified.add(reason)
        print(f"multibyte: warning: {reason}: reading its shards unverified", file=sys.stderr)


def check_manifest_options(folder: Path, manifest: dict[str, Any]) -> None:
    """PreparedError if the manifest's options are not those its shards' samples were written
    with (an edited manifest would make the bytes be read with another layout)."""
    infos = shard_infos(manifest)
    stored = manifest.get("options")
    if not infos or not isinstance(stored, dict):
        return
    meta = first_sample_meta(folder / sorted(infos)[0])
    written = meta.get("options") if meta else None
    if not isinstance(written, dict):
        return
    if full_options(written) != full_options(stored):
        raise PreparedError(
            f"{folder / MANIFEST} says the shards hold {describe(full_options(stored))}, but "
            f"their samples were written as {describe(full_options(written))}: the manifest "
            "was edited; prepare the data again"
        )


def resume_command(manifest: dict[str, Any]) -> str:
    """The command that finishes an interrupted prepare (its own arguments and --resume)."""
    argv = manifest.get("argv")
    if not argv:
        return "multibyte prepare ... --resume"
    return " ".join(["multibyte", "prepare", *map(shlex.quote, argv), "--resume"])


def check_listed_shards(folder: Path, manifest: dict[str, Any] | None) -> None:
    """ShardError if the manifest lists a shard that the folder does not hold."""
    infos = shard_infos(manifest)
    if not infos:
        return
    missing = sorted(name for name in infos if not (folder / name).is_file())
    if missing:
        raise ShardError(
            f"shard {folder / missing[0]} is missing ({len(missing)} of the {len(infos)} shards "
            f"that {folder / MANIFEST} lists are missing)"
        )


def is_shards(paths: Sequence[Path]) -> bool:
    """``.tar`` files, or one folder that ``multibyte prepare`` wrote."""
    if paths and all(p.is_file() and p.suffix == ".tar" for p in paths):
        return True
    if len(paths) != 1 or not paths[0].is_dir():
        return False
    folder = paths[0]
    return (folder / MANIFEST).is_file() or any(list_shards(folder, s) for s in SPLITS)


def full_options(stored: dict[str, Any]) -> dict[str, Any]:
    """Stored adapter options with every option the adapter has (defaults filled in)."""
    try:
        return dict(modalities.get(**stored).options)
    except (KeyError, TypeError, ValueError):  # an unknown name or option fails where it is used
        return dict(stored)


def resolve_options(expected: dict[str, Any] | None, override: str | None) -> dict[str, Any] | None:
    """The adapter options to use: ``expected`` unless ``override`` names another modality,
    which then gets its defaults."""
    if override is None or (expected and expected.get("name") == override):
        return dict(expected) if expected else None
    return {"name": override}


@dataclass
class Prepared:
    """Opened data: its adapter, whether it is shards, and its sequences by split."""

    paths: list[Path]
    adapter: Adapter | None  # None only for bare .tar files of an unknown modality
    shards: bool
    stream: bool
    manifest: dict[str, Any] | None = None
    val_fraction: float = 0.0
    seed: int = 0
    skipped: list[dict[str, str]] = field(default_factory=list)
    _encoded: dict[str, Any] | None = None

    @property
    def folder(self) -> Path | None:
        """The shard folder (None for raw files or bare .tar files)."""
        return self.paths[0] if self.shards and self.paths[0].is_dir() else None

    def require_split(self, split: str) -> None:
        """Raise PreparedError unless a shard folder has ``split`` (raw files always do)."""
        folder = self.folder
        if folder is None or list_shards(folder, split):
            return
        found = [s for s in SPLITS if list_shards(folder, s)]
        raise PreparedError(
            f"no {split!r} shards in {folder} (splits found: {', '.join(found) or 'none'})"
        )

    def encode(self) -> dict[str, list[bytes]]:
        """Raw files encoded and split (once; later calls reuse it). Skips land in ``skipped``."""
        if self._encoded is None:
            encoded = encode_in_memory(self.adapter, self.paths, self.val_fraction, self.seed)
            self.skipped = encoded.pop("skipped")
            for note in encoded.pop("notes"):
                print(f"multibyte: {note}", file=sys.stderr)
            self._encoded = encoded
        return self._encoded

    def sequences(self, split: str) -> list[bytes]:
        """The non-empty sequences of ``split``; a stream is one joined sequence."""
        if not self.shards:
            return [s for s in self.encode().get(split, []) if s]
        self.require_split(split)
        source = self.folder or [str(p) for p in self.paths]
        sequences = [s["bin"] for s in read_samples(source, split) if s.get("bin")]
        if self.stream:  # a stream's records are consecutive chunks of it
            sequences = [b"".join(sequences)] if sequences else []
        return sequences


def open_prepared(
    paths: Sequence[str | os.PathLike],
    expected: dict[str, Any] | None = None,
    override: str | None = None,
    *,
    val_fraction: float = 0.0,
    seed: int = 0,
    allow_incomplete: bool = False,
    allow_flag: str = "--allow-incomplete",
    name_unmet: bool = False,
    allow_unverified: bool = False,
    unverified_flag: str = "--allow-unverified",
    same_layout: bool = False,
) -> Prepared:
    """Open shards or raw files (or, with no paths, only resolve the modality).

    ``expected`` are the adapter options the caller has (a checkpoint's or a recipe's);
    ``override`` is a modality name the user gave to read the data as, whatever it holds.
    A folder whose prepare did not complete raises IncompleteShards (naming ``allow_flag``, the
    caller's way to allow it) unless ``allow_incomplete``. With ``name_unmet`` (a recipe's
    options, which the user wrote), options that the shards' manifest sets otherwise are named in
    one stderr line: the bytes are laid out as the shards say, so those cannot apply. With
    ``same_layout`` (a checkpoint's options), shards of another layout raise LayoutMismatch.
    Shards that cannot be verified raise UnverifiedShards (naming ``unverified_flag``) unless
    ``allow_unverified``, which warns once instead.
    Raises PreparedError (ModalityMismatch, ModalityUnknown, IncompleteShards, UnverifiedShards,
    LayoutMismatch), ShardError for a listed shard that is missing, or ValueError for bad
    options.
    """
    roots = [Path(p) for p in paths]
    for root in roots:
        if not root.exists():
            raise PreparedError(f"data path not found: {root}")
    options = resolve_options(expected, override)
    if options is not None:
        modalities.factory(options.get("name"))  # an unknown name fails before anything else
    shards = is_shards(roots)
    try:
        manifest = load_manifest(roots[0]) if shards and roots[0].is_dir() else None
    except ValueError as error:  # json.JSONDecodeError
        raise PreparedError(f"{roots[0] / MANIFEST} is not valid JSON ({error})") from error
    if manifest is not None:
        if manifest.get("complete") is False and not allow_incomplete:
            raise IncompleteShards(roots[0], manifest, allow_flag)
        check_listed_shards(roots[0], manifest)
    if shards:
        reason = unverifiable(roots, manifest)
        if reason is not None and not allow_unverified:
            raise UnverifiedShards(reason, unverified_flag)
        if reason is not None:
            warn_unverified(reason)
        elif manifest is not None:
            check_manifest_options(roots[0], manifest)
    stored = (manifest or {}).get("options")
    if stored:
        if options is None:
            options = stored
        elif stored.get("name") == options.get("name"):
            if same_layout and override is None:
                found, wanted = layout_of(stored), layout_of(options)
                if found != wanted:
                    raise LayoutMismatch(found, wanted, str(roots[0]))
            held_options = full_options(stored)  # an option older shards lack is its default
            unmet = {k: v for k, v in options.items() if k in held_options and held_options[k] != v}
            if unmet and name_unmet:  # said, not dropped silently: bytes cannot be re-laid out
                given = ", ".join(f"{k}={v}" for k, v in unmet.items())
                held = ", ".join(f"{k}={held_options[k]}" for k in unmet)
                print(
                    f"multibyte: {roots[0]}: the shards hold {held}; {given} does not apply "
                    f"(prepare them with those options to use it)",
                    file=sys.stderr,
                )
            options = stored  # the bytes are laid out as the shards say
        elif override is None:
            raise ModalityMismatch(stored.get("name"), options.get("name"), str(roots[0]), True)
    elif roots and not shards:
        guessed = modalities.guess(roots)
        if options is None and guessed is not None:
            options = {"name": guessed}
        elif guessed is not None and guessed != options.get("name") and override is None:
            where = " ".join(map(str, roots))
            raise ModalityMismatch(guessed, options.get("name"), where, False)
    if options is None and not shards:
        raise ModalityUnknown(
            f"cannot tell the modality of {' '.join(map(str, roots)) or 'the data'}"
        )
    adapter = modalities.get(**options) if options else None
    if manifest and "stream" in manifest:
        stream = bool(manifest["stream"])
    else:
        stream = adapter is not None and adapter.stream
    skipped = list((manifest or {}).get("skipped", []))
    return Prepared(roots, adapter, shards, stream, manifest, val_fraction, seed, skipped)


__all__ = [
    "IncompleteShards",
    "LayoutMismatch",
    "ModalityMismatch",
    "ModalityUnknown",
    "Prepared",
    "PreparedError",
    "UnverifiedShards",
    "is_shards",
    "open_prepared",
    "resolve_options",
    "resume_command",
]
