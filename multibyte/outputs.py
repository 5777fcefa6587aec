"""Where commands write: one policy for every file a command writes.

- An existing output file is refused unless the user passes ``--overwrite`` (``check_new_file``).
- Output folders are checked before any work starts: the folder, or the nearest parent that
  exists when it does not exist yet, must be a folder this process can create files in
  (``check_folder``: a real file is created and removed, so permissions, ACLs and read-only
  mounts all count).
- Files appear only complete: each is written under a temporary name in its own folder and then
  renamed into place (``replacing``, ``write_bytes``, ``write_text``; several files at once:
  ``staging`` and ``move_into_place``). A failure removes the temporary files and any folder it
  created, so nothing is left behind.
- A command deletes only files it wrote itself: ``multibyte prepare`` deletes the shards its own
  manifest lists, never a file it did not write.

Plain ``os``/``pathlib`` only, so every layer may use it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

PARTIAL = ".partial-"  # temporary names: ".STEM.partial-PID.SUFFIX", hidden, never a final name


class OutputError(ValueError):
    """An output that cannot or must not be written; the message names it and says why."""


def _reason(error: OSError) -> str:
    return error.strerror or str(error)


def nearest_existing(path: str | os.PathLike) -> Path:
    """``path`` itself if it exists, else its nearest parent that does."""
    probe = Path(os.path.abspath(path))
    while not os.path.lexists(probe) and probe.parent != probe:
        probe = probe.parent
    return probe


def check_folder(
    folder: str | os.PathLike, option: str = "--out", shown: str | os.PathLike | None = None
) -> Path:
    """Refuse, before any work, a ``folder`` that cannot be written: it (or the nearest parent
    that exists, when it does not exist yet) must be a folder that takes a new file. The message
    names ``shown`` (default: the folder), the path the user gave."""
    folder = Path(folder)
    shown = folder if shown is None else shown
    base = nearest_existing(folder)
    if not base.is_dir():
        raise OutputError(f"{option} {shown} is not writable: {base} is a file, not a folder")
    try:
        handle, probe = tempfile.mkstemp(prefix=".multibyte-write-test-", dir=base)
        os.close(handle)
        os.unlink(probe)
    except OSError as error:
        where = "" if base == Path(os.path.abspath(folder)) else f" (in {base})"
        reason = _reason(error).lower()
        raise OutputError(f"{option} {shown} is not writable{where}: {reason}") from error
    return folder


def check_new_file(path: str | os.PathLike, overwrite: bool, option: str = "--out") -> Path:
    """Refuse, before any work, an output file that exists (unless ``overwrite``), that is a
    folder, or whose folder cannot be written."""
    path = Path(path)
    if path.is_dir():
        raise OutputError(f"{option} {path} is a folder; give a file name")
    if os.path.lexists(path) and not overwrite:
        raise OutputError(f"{option} {path} already exists; pass --overwrite to replace it")
    check_folder(path.parent, option, shown=path)
    return path


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """Whether two paths name one file (the same inode if both exist, else the same path)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return Path(os.path.abspath(a)).resolve() == Path(os.path.abspath(b)).resolve()


def check_distinct(paths: Mapping[str, str | os.PathLike | None]) -> None:
    """Refuse two options that name the same output file (one would overwrite the other)."""
    given = [(option, Path(p)) for option, p in paths.items() if p is not None]
    for i, (option, path) in enumerate(given):
        for other, other_path in given[i + 1 :]:
            if same_file(path, other_path):
                raise OutputError(
                    f"{option} {path} and {other} {other_path} are the same file: one would "
                    "overwrite the other; give two names"
                )


def temporary_name(path: str | os.PathLike) -> Path:
    """The hidden name ``path`` is written under before it is renamed into place."""
    path = Path(path)  # the suffix stays last: writers pick the format by it (PNG, WAV, ...)
    return path.with_name(f".{path.stem}{PARTIAL}{os.getpid()}{path.suffix}")


def _make_folder(folder: Path) -> list[Path]:
    """Create ``folder`` and its missing parents; returns the ones created, deepest first."""
    created = []
    probe = Path(os.path.abspath(folder))
    while not os.path.lexists(probe) and probe.parent != probe:
        created.append(probe)
        probe = probe.parent
    folder.mkdir(parents=True, exist_ok=True)
    return created


def _remove_created(created: Iterable[Path]) -> None:
    for folder in created:  # deepest first; a folder that something else filled stays
        try:
            folder.rmdir()
        except OSError:
            return


@contextmanager
def replacing(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on a clean exit it is renamed to ``path``.

    On any exception the temporary file, and the folders created for it, are removed.
    """
    path = Path(path)
    created = _make_folder(path.parent)
    temporary = temporary_name(path)
    try:
        yield temporary
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        _remove_created(created)
        raise


def write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` through a temporary name."""
    with replacing(path) as temporary:
        temporary.write_bytes(data)
    return Path(path)


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` through a temporary name."""
    return write_bytes(path, text.encode("utf-8"))


@contextmanager
def staging(folder: str | os.PathLike) -> Iterator[Path]:
    """A temporary folder inside ``folder`` (created if needed) for files written by code that
    takes a path of its own choosing; removed with whatever is left in it. Move the finished
    files out with ``move_into_place``."""
    folder = Path(folder)
    created = _make_folder(folder)
    stage = Path(tempfile.mkdtemp(prefix=f".multibyte{PARTIAL}", dir=folder))
    try:
        yield stage
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        _remove_created(created)
        raise
    shutil.rmtree(stage, ignore_errors=True)


def move_into_place(
    files: Iterable[str | os.PathLike],
    folder: str | os.PathLike,
    overwrite: bool,
    option: str = "--out",
) -> list[Path]:
    """Rename finished files (from ``staging``) to the same names in ``folder``.

    Every target is checked first, so an existing file refused without ``overwrite`` leaves
    all of them unmoved."""
    files = [Path(f) for f in files]
    targets = [Path(folder) / f.name for f in files]
    for target in targets:
        if target.is_dir() or (os.path.lexists(target) and not overwrite):
            raise OutputError(f"{option}: {target} already exists; pass --overwrite to replace it")
    for source, target in zip(files, targets):
        os.replace(source, target)
    return targets


__all__ = [
    "PARTIAL",
    "OutputError",
    "check_distinct",
    "check_folder",
    "check_new_file",
    "move_into_place",
    "nearest_existing",
    "replacing",
    "same_file",
    "staging",
    "temporary_name",
    "write_bytes",
    "write_text",
]
