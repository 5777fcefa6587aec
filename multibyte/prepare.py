"""``multibyte prepare NAME``: encode raw files of one modality into webdataset shards.

Output: ``OUT/{train,val}-%06d.tar`` (and any fixed split an adapter names, such as enwik8's
``test-``), samples ``s%09d`` holding ``.bin`` (the encoded bytes) and ``.json`` (source,
modality, options, position), and ``OUT/manifest.json``. Bad inputs are skipped and listed; bad
configuration fails before any work. NAME is any registered adapter; its options on the command
line are the ones it declares in ``flags``.

Outputs follow ``multibyte.outputs``: ``--out`` is checked for writing before any work; a folder
that already holds a prepare is refused unless ``--overwrite`` (start again) or ``--resume``; and
prepare deletes only files it wrote itself, the shards its own manifest lists (with their
temporary ``.partial`` names). Any other file in ``--out`` stays, and a file named like one of
its shards that the manifest does not list is refused rather than replaced. A prepare that
wrote no sample is an error and leaves no manifest behind, so it is never marked complete.
"""

from __future__ import annotations

import argparse
import fnmatch
import json
import multiprocessing
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

import modalities
from modalities import Adapter, Flag
from multibyte.data.shards import (
    MANIFEST,
    SPLITS,
    ShardError,
    check_shard_bytes,
    iter_tar_samples,
    load_manifest,
    shard_name,
)
from multibyte.data.writer import PARTIAL, ShardSink
from multibyte.inputs import (
    CUT_NOTE,
    STREAM_CHUNK,
    Encoded,
    Encoder,
    Skip,
    Task,
    cuts_inside,
    find_all_tasks,
)
from multibyte.outputs import OutputError, check_folder
from multibyte.prepared import resume_command

SHOWN_SKIPS = 10  # skipped inputs named on stderr; the manifest lists them all


class ConfigError(ValueError):
    """Bad configuration: reported before any work starts."""


class NothingWritten(ValueError):
    """Every input was skipped: no sample to write, so no shard folder either."""

    def __init__(self, message: str, skipped: list[dict[str, str]]) -> None:
        super().__init__(message)
        self.skipped = skipped


# The names prepare gives its shards (``{split}-%06d.tar``); anything else in --out is not its.
SHARD_FILE = re.compile(r"[A-Za-z0-9_]+-\d{6}\.tar")


def shard_like(name: str) -> bool:
    """A name prepare could write, or that readers would take for a shard (``{split}-*.tar``)."""
    name = name.removesuffix(PARTIAL)
    return bool(SHARD_FILE.fullmatch(name)) or any(
        fnmatch.fnmatchcase(name, f"{split}-*.tar") for split in SPLITS
    )


def own_files(manifest: dict[str, Any] | None) -> set[str]:
    """The files in --out that the prepare which wrote ``manifest`` wrote itself: the shards it
    lists, the next shard of each split (a kill can land between a shard's rename and the
    manifest's update), their temporary names and the manifest. Names come from the file, so
    only plain shard names count: never a path."""
    if not manifest:
        return set()
    listed: dict[str, list[Any]] = {}
    for key in ("shards", "shard_info"):
        table = manifest.get(key)
        for split, entries in table.items() if isinstance(table, dict) else ():
            names = [e.get("name") if isinstance(e, dict) else e for e in entries or ()]
            listed.setdefault(str(split), []).extend(names)
    names = set()
    for split, entries in listed.items():
        names.update(entries)
        names.add(shard_name(split) % len(set(entries)))
    names = {n for n in names if isinstance(n, str) and SHARD_FILE.fullmatch(n)}
    return names | {n + PARTIAL for n in names} | {MANIFEST + PARTIAL}


def _old_manifest(out: Path) -> dict[str, Any] | None:
    try:
        return load_manifest(out) if out.is_dir() else None
    except (OSError, ValueError) as error:
        raise ConfigError(
            f"--out {out}: {out / MANIFEST} cannot be read ({error}), so prepare cannot tell "
            "which files in it are its own: remove them yourself to start again"
        ) from error


def _check_source(src: str) -> None:
    """A --src/--val-src path the user named must be readable: never "0 inputs" for a folder
    that cannot be listed."""
    path = Path(src)
    try:
        if path.is_dir():
            with os.scandir(path) as entries:
                next(entries, None)
        else:
            with open(path, "rb"):
                pass
    except OSError as error:
        reason = (error.strerror or str(error)).lower()
        raise ConfigError(f"--src {src} cannot be read: {reason}") from error


def declared_flags() -> dict[str, list[tuple[str, Flag]]]:
    """Every adapter flag on the command line -> the (modality, declaration) pairs using it."""
    table: dict[str, list[tuple[str, Flag]]] = {}
    for name in modalities.available():
        for flag in getattr(modalities.factory(name), "flags", ()):
            table.setdefault(flag.flag, []).append((name, flag))
    return table


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="multibyte prepare", description="Encode raw files into webdataset shards."
    )
    parser.add_argument("modality", choices=modalities.available())
    parser.add_argument("--src", nargs="+", required=True, help="input files or folders")
    parser.add_argument("--out", required=True, help="output folder for shards and manifest")
    parser.add_argument("--val-fraction", type=float, default=0.05, help="in [0, 1); default 0.05")
    parser.add_argument(
        "--val-src",
        nargs="+",
        default=[],
        help="inputs that all go to validation (e.g. a dataset's own validation folder)",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the train/val split")
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1))
    parser.add_argument("--shard-size", type=int, default=10_000, help="max samples per shard")
    parser.add_argument("--shard-bytes", type=int, default=1 << 28, help="max bytes per shard")
    parser.add_argument(
        "--chunk-size",
        type=int,
        default=None,
        help=f"streams (text): bytes per record (default {STREAM_CHUNK})",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace existing shards in --out")
    parser.add_argument(
        "--resume",
        action="store_true",
        help="continue an interrupted prepare in --out (same arguments); the result equals an "
        "uninterrupted run's",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    for flag, users in sorted(declared_flags().items()):
        names = ", ".join(name for name, _ in users)
        help_ = f"{names}: {users[0][1].help}"
        if users[0][1].kind is bool:
            parser.add_argument(flag, action="store_true", default=None, help=help_)
        else:
            parser.add_argument(flag, default=None, help=help_)
    return parser


def adapter_options(
    modality: str, args: argparse.Namespace
) -> tuple[dict[str, Any], dict[str, Any]]:
    """(adapter options, reading options) given on the command line, checked against the
    flags the modality declares."""
    mine = {f.flag: f for f in getattr(modalities.factory(modality), "flags", ())}
    options: dict[str, Any] = {"name": modality}
    reading: dict[str, Any] = {}
    for flag in sorted(declared_flags()):
        value = getattr(args, flag[2:].replace("-", "_"))
        if value is None:
            continue
        if flag not in mine:
            raise ConfigError(f"option {flag} does not apply to {modality}")
        declared = mine[flag]
        try:
            converted = declared.kind(value)
        except ValueError as error:
            raise ConfigError(
                f"option {flag}={value!r} is not a valid {declared.kind.__name__}"
            ) from error
        (reading if declared.reading else options)[declared.keyword] = converted
    return options, reading


def check_config(args: argparse.Namespace) -> tuple[Adapter, dict[str, Any]]:
    """Every check that can fail before work starts; returns (adapter, reading options)."""
    if not 0.0 <= args.val_fraction < 1.0:
        raise ConfigError(f"--val-fraction must be in [0, 1), got {args.val_fraction}")
    for name in ("workers", "shard_size", "shard_bytes", "chunk_size"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be at least 1")
    missing = [src for src in [*args.src, *args.val_src] if not Path(src).exists()]
    if missing:
        raise ConfigError(f"--src/--val-src path does not exist: {', '.join(missing)}")
    for src in [*args.src, *args.val_src]:
        _check_source(src)
    options, reading = adapter_options(args.modality, args)
    try:
        adapter = modalities.get(**options)
        adapter.check_reading(
            [Path(s) for s in args.src], [Path(s) for s in args.val_src], **reading
        )
    except ValueError as error:
        raise ConfigError(str(error)) from error
    if args.chunk_size is not None and not adapter.stream:
        raise ConfigError(f"option --chunk-size does not apply to {args.modality}")
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} exists and is not a folder")
    if args.resume and args.overwrite:
        raise ConfigError("--resume and --overwrite exclude each other")
    try:
        check_folder(out, "--out")
    except OutputError as error:
        raise ConfigError(str(error)) from error
    manifest = _old_manifest(out)
    try:
        held = [p.name for p in out.iterdir()] if out.is_dir() else []
    except OSError as error:
        raise ConfigError(f"--out {out} cannot be read: {error.strerror or error}") from error
    shards = {name for name in held if shard_like(name)}
    foreign = sorted(shards - own_files(manifest))
    if foreign:  # prepare might replace it, and readers would take it for a shard
        raise ConfigError(
            f"--out {out} holds {out / foreign[0]}, named like a shard but not listed in "
            f"{out / MANIFEST}: prepare did not write it and never replaces or mixes in a file "
            f"it did not write; move it away ({len(foreign)} such files)"
        )
    if (manifest is not None or shards) and not (args.overwrite or args.resume):
        raise ConfigError(
            f"--out {out} already holds shards; pass --overwrite to replace them, or --resume "
            "to finish an interrupted prepare"
        )
    return adapter, reading


# -- the job ---------------------------------------------------------------------------------

_WORKER: dict[str, Encoder] = {}


def _init_worker(encoder: Encoder) -> None:
    import torch  # only in pool workers: one process per core already

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    torch.set_num_threads(1)
    _WORKER["encoder"] = encoder


def _encode(task: Task) -> tuple[Task, list[Encoded], str | None]:
    return _WORKER["encoder"](task)


def _results(tasks: Sequence[Task], encoder: Encoder, workers: int) -> Iterator:
    if workers == 1 or len(tasks) <= 1:
        yield from map(encoder, tasks)
        return
    context = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
    with context.Pool(min(workers, len(tasks)), _init_worker, (encoder,)) as pool:
        # imap keeps task order, so keys and shards are the same for any number of workers.
        yield from pool.imap(_encode, tasks, chunksize=1)


class Interrupted(Exception):
    """Ctrl-C, taken between two samples so that every finished shard stays valid."""


class _StopOnSignal:
    """The first SIGINT asks the loop to stop at the next sample; a second one stops at once."""

    def __init__(self) -> None:
        self.asked = False
        self._previous: Any = None

    def _handle(self, signum: int, frame: Any) -> None:
        if self.asked:
            raise KeyboardInterrupt
        self.asked = True

    def check(self) -> None:
        if self.asked:
            raise Interrupted

    def __enter__(self) -> _StopOnSignal:
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)


def canonical_argv(args: argparse.Namespace) -> list[str]:
    """The arguments that decide the output, so the manifest can name the resume command."""
    argv = [args.modality, "--src", *args.src]
    if args.val_src:
        argv += ["--val-src", *args.val_src]
    argv += [
        "--out",
        args.out,
        "--val-fraction",
        f"{args.val_fraction:g}",
        "--seed",
        str(args.seed),
    ]
    argv += ["--shard-size", str(args.shard_size), "--shard-bytes", str(args.shard_bytes)]
    if args.chunk_size is not None:
        argv += ["--chunk-size", str(args.chunk_size)]
    for flag in sorted(declared_flags()):
        value = getattr(args, flag[2:].replace("-", "_"))
        if value is True:
            argv.append(flag)
        elif value is not None and value is not False:
            argv += [flag, str(value)]
    return argv


# Manifest keys a resumed run must find unchanged: they decide every byte of the output.
SAME_ON_RESUME = (
    "modality",
    "options",
    "sources",
    "val_sources",
    "val_fraction",
    "seed",
    "shard_size",
    "shard_bytes",
    "chunk_size",
)


def write_manifest(out: Path, manifest: dict[str, Any]) -> None:
    """Write ``manifest.json`` atomically: a reader (or a kill) never sees half of it."""
    temporary = out / (MANIFEST + PARTIAL)
    temporary.write_text(json.dumps(manifest, indent=2) + "\n")
    os.replace(temporary, out / MANIFEST)


def resume_point(out: Path, manifest: dict[str, Any]) -> tuple[dict[str, Any], dict]:
    """(the progress to restart from, the finished shards kept per split) of an interrupted run.

    Shards closed early by the interrupt, and the shard that was open, are removed: they are
    written again exactly as the uninterrupted run writes them. Files it did not write stay.
    """
    old = load_manifest(out)
    if old is None:
        return {}, {}
    if old.get("complete"):
        raise ConfigError(f"--resume: {out} is already complete; nothing to resume")
    changed = [k for k in SAME_ON_RESUME if old.get(k) != manifest.get(k)]
    if changed or "resume" not in old:
        raise ConfigError(
            f"--resume: {out / MANIFEST} was written with other settings ({', '.join(changed)}); "
            "resume with the same arguments, or start again with --overwrite"
            if changed
            else f"--resume: {out / MANIFEST} records no progress to resume from"
        )
    kept: dict[str, list[dict[str, Any]]] = {}
    points = [old["resume"]["next"], *old["resume"].get("open", {}).values()]
    for split, infos in old.get("shard_info", {}).items():
        kept[split] = []
        for info in infos:
            if info.get("interrupted"):
                points.append(info["start"])
                continue
            path = out / info["name"]
            try:
                check_shard_bytes(str(path), path.read_bytes(), info)
            except OSError as error:
                raise ConfigError(f"--resume: shard {path} cannot be read ({error})") from error
            except ShardError as error:
                raise ConfigError(f"--resume: {error}; start again with --overwrite") from error
            kept[split].append(info)
    names = {info["name"] for infos in kept.values() for info in infos}
    for stale in sorted(own_files(old) - names - {MANIFEST + PARTIAL}):
        (out / stale).unlink(missing_ok=True)
    point = min(points, key=lambda p: p["task"])
    point["skipped_list"] = old.get("skipped", [])[: point["skipped"]]
    return point, kept


def run(args: argparse.Namespace, stop: _StopOnSignal | None = None) -> dict[str, Any]:
    """Run a checked configuration and return the manifest it wrote."""
    adapter, reading = check_config(args)
    out = Path(args.out)
    notes: list[str] = []
    tasks, skips = find_all_tasks(adapter, args.src, args.val_src, notes)
    if not tasks:  # before anything is created or deleted
        where = " ".join(args.src + args.val_src)
        held = (
            f"all {len(skips)} files were skipped (first: {skips[0].source}: {skips[0].reason})"
            if skips
            else "it holds no files"
        )
        raise ConfigError(f"nothing to prepare in --src {where}: {held}")
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    if args.overwrite:  # only what the previous prepare wrote itself
        for name in sorted(own_files(_old_manifest(out))):
            (out / name).unlink(missing_ok=True)
        (out / MANIFEST).unlink(missing_ok=True)
    cut_inside = cuts_inside(tasks, args.val_fraction)
    for note in notes:
        print(f"multibyte prepare: {note}", file=sys.stderr)
    options = adapter.options
    chunk = args.chunk_size or STREAM_CHUNK
    encoder = Encoder(adapter, args.seed, args.val_fraction, chunk, reading, cut_inside)
    manifest: dict[str, Any] = {
        "format": "multibyte-shards",
        "version": 1,
        "modality": args.modality,
        "options": options,
        "stream": adapter.stream,
        "sources": [str(Path(s).resolve()) for s in args.src],
        "val_sources": [str(Path(s).resolve()) for s in args.val_src],
        "val_fraction": args.val_fraction,
        "seed": args.seed,
        "split": "per input, by seed",
        "complete": False,
        "argv": canonical_argv(args),
        "shard_size": args.shard_size,
        "shard_bytes": args.shard_bytes,
        "chunk_size": chunk if adapter.stream else None,
    }
    manifest.update(adapter.manifest_extras(**reading))
    point, kept = resume_point(out, manifest) if args.resume else ({}, {})
    first_task, key = point.get("task", 0), point.get("key", 0)
    if point:
        skips = [Skip(s["source"], s["reason"]) for s in point["skipped_list"]]
    progress = {"task": first_task, "key": key, "counts": {}, "bytes": {}, "skipped": len(skips)}

    def snapshot() -> dict[str, Any]:
        return json.loads(json.dumps(progress))

    sinks: dict[str, ShardSink] = {}

    def save(complete: bool = False) -> None:
        finished = {s: sink.finished_count for s, sink in sinks.items()}
        manifest.update(
            counts={s: sink.count for s, sink in sinks.items()} if complete else finished,
            bytes={s: sink.bytes if complete else sink.finished_bytes for s, sink in sinks.items()},
            shards={s: sink.shards for s, sink in sinks.items()},
            shard_info={s: sink.infos for s, sink in sinks.items()},
            inputs={"tasks": len(tasks), "skipped": len(skips)},
            skipped=[{"source": s.source, "reason": s.reason} for s in skips],
        )
        manifest["total_bytes"] = sum(manifest["bytes"].values())
        manifest["complete"] = complete
        if complete:
            manifest.pop("resume", None)
        else:
            opened = {s: sink.open_start for s, sink in sinks.items() if sink.open_start}
            manifest["resume"] = {"next": snapshot(), "open": opened}
        manifest["seconds"] = round(time.perf_counter() - started, 3)
        write_manifest(out, manifest)

    def sink(split: str) -> ShardSink:
        if split not in sinks:
            infos = kept.get(split, [])
            sinks[split] = ShardSink(
                out,
                split,
                args.shard_size,
                args.shard_bytes,
                first_shard=len(infos),
                durable=sum(i["samples"] for i in infos),
                on_finish=lambda info: save(),
                on_start=snapshot,
            )
            new = sinks[split]
            new.shards, new.infos = [i["name"] for i in infos], list(infos)
            new.finished_count = new.durable
            new.count = point.get("counts", {}).get(split, 0)
            new.bytes = point.get("bytes", {}).get(split, 0)
            progress["counts"][split] = new.count
            progress["bytes"][split] = new.bytes
        return sinks[split]

    for split in ("train", "val", *kept):
        sink(split)
    if args.resume and point:
        # Bytes of kept shards: exact when the restart point is their end, else counted again.
        for split, infos in kept.items():
            sinks[split].finished_bytes = _data_bytes(out, infos)
    started = time.perf_counter()
    stop = stop or _StopOnSignal()
    save()
    try:
        todo = tasks[first_task:]
        with tqdm(
            total=len(tasks), initial=first_task, unit="file", disable=args.quiet, desc="prepare"
        ) as bar:
            for index, (task, records, reason) in enumerate(
                _results(todo, encoder, args.workers), first_task
            ):
                stop.check()
                bar.update(1)
                if reason is not None:
                    skips.append(Skip(task.path, reason))
                if cut_inside and any(extra.get("cut") for _, _, extra in records):
                    note = CUT_NOTE.format(100 * args.val_fraction)
                    print(f"multibyte prepare: {task.path}: {note}", file=sys.stderr)
                for split, data, extra in records:
                    meta = {"source": task.path, "modality": args.modality, "options": options}
                    sink(split).write(f"s{key:09d}", data, {**meta, **extra})
                    key += 1
                progress.update(
                    task=index + 1,
                    key=key,
                    skipped=len(skips),
                    counts={s: k.count for s, k in sinks.items()},
                    bytes={s: k.bytes for s, k in sinks.items()},
                )
        for each in sinks.values():
            each.close()
        if not any(sink.count for sink in sinks.values()):
            raise NothingWritten(
                f"no samples written from {' '.join(args.src)}: all {len(skips)} inputs skipped",
                [{"source": s.source, "reason": s.reason} for s in skips],
            )
        save(complete=True)
    except NothingWritten:
        # Nothing to mark complete: the manifest (and a folder this run created) go again.
        (out / MANIFEST).unlink(missing_ok=True)
        if created:
            _remove_if_empty(out)
        raise
    except BaseException:
        # Close shards on an interrupt, so everything finished so far stays readable; the
        # manifest marks them, and --resume writes them again.
        for each in sinks.values():
            each.close(interrupted=True)
        save()
        raise
    return manifest


def _remove_if_empty(folder: Path) -> None:
    try:
        folder.rmdir()
    except OSError:
        pass  # something else is in it: it stays


def _data_bytes(out: Path, infos: list[dict[str, Any]]) -> int:
    """The encoded bytes (``.bin`` members) held by finished shards."""
    return sum(len(s.get("bin", b"")) for i in infos for s in iter_tar_samples(out / i["name"]))


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``multibyte prepare``; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    with _StopOnSignal() as stop:
        try:
            manifest = run(args, stop)
        except ConfigError as error:
            print(f"multibyte prepare: error: {error}", file=sys.stderr)
            return 2
        except NothingWritten as error:
            _print_skips(error.skipped)
            first = error.skipped[0] if error.skipped else None
            why = f" (first: {first['source']}: {first['reason']})" if first else ""
            print(
                f"multibyte prepare: error: {error}{why}; {args.out} holds no shards and no "
                "manifest",
                file=sys.stderr,
            )
            return 2
        except (Interrupted, KeyboardInterrupt):
            print(interrupted_line(args), file=sys.stderr)
            return 130
    _print_skips(manifest["skipped"])
    counts = ", ".join(f"{s}={n}" for s, n in manifest["counts"].items())
    print(
        f"wrote {counts} samples ({manifest['total_bytes']} bytes) to {args.out}; "
        f"skipped {len(manifest['skipped'])} inputs (see {Path(args.out) / MANIFEST})"
    )
    return 0


def _print_skips(skipped: list[dict[str, str]]) -> None:
    for skip in skipped[:SHOWN_SKIPS]:
        print(f"multibyte prepare: skipped {skip['source']}: {skip['reason']}", file=sys.stderr)
    if len(skipped) > SHOWN_SKIPS:
        more = len(skipped) - SHOWN_SKIPS
        print(f"multibyte prepare: ... and {more} more skipped inputs", file=sys.stderr)


def interrupted_line(args: argparse.Namespace) -> str:
    """One line after Ctrl-C: what was written, that it is valid, and how to resume."""
    manifest = load_manifest(args.out) or {}
    counts = ", ".join(f"{s}={n}" for s, n in (manifest.get("counts") or {}).items())
    shards = sum(len(v) for v in (manifest.get("shards") or {}).values())
    return (
        f"multibyte prepare: interrupted: {shards} finished shards ({counts or 'no'} samples) in "
        f"{args.out} are valid, and the folder is marked incomplete; resume with: "
        f"{resume_command(manifest)}"
    )


if __name__ == "__main__":
    sys.exit(main())
