"""``multibyte prepare NAME``: encode raw files of one modality into webdataset shards.

Output: ``OUT/{train,val}-%06d.tar`` (and any fixed split an adapter names, such as enwik8's
``test-``), samples ``s%09d`` holding ``.bin`` (the encoded bytes) and ``.json`` (source,
modality, options, position), and ``OUT/manifest.json``. Bad inputs are skipped and listed; bad
configuration fails before any work. NAME is any registered adapter; its options on the command
line are the ones it declares in ``flags``.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from tqdm import tqdm

import modalities
from modalities import Adapter, Flag
from multibyte.data.shards import MANIFEST
from multibyte.data.writer import PARTIAL, ShardSink
from multibyte.inputs import STREAM_CHUNK, Encoded, Encoder, Skip, Task, find_all_tasks


class ConfigError(ValueError):
    """Bad configuration: reported before any work starts."""


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
        "--val-src", nargs="+", default=[],
        help="inputs that all go to validation (e.g. a dataset's own validation folder)",
    )  # fmt: skip
    parser.add_argument("--seed", type=int, default=0, help="seed of the train/val split")
    parser.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1))
    parser.add_argument("--shard-size", type=int, default=10_000, help="max samples per shard")
    parser.add_argument("--shard-bytes", type=int, default=1 << 28, help="max bytes per shard")
    parser.add_argument(
        "--chunk-size", type=int, default=None,
        help=f"streams (text): bytes per record (default {STREAM_CHUNK})",
    )  # fmt: skip
    parser.add_argument("--overwrite", action="store_true", help="replace existing shards in --out")
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
    existing = sorted(out.glob("*.tar")) + sorted(out.glob(MANIFEST)) if out.is_dir() else []
    if existing and not args.overwrite:
        raise ConfigError(f"--out {out} already holds shards; pass --overwrite to replace them")
    return adapter, reading


# -- the job ---------------------------------------------------------------------------------

_WORKER: dict[str, Encoder] = {}


def _init_worker(encoder: Encoder) -> None:
    import torch  # only in pool workers: one process per core already

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


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run a checked configuration and return the manifest it wrote."""
    adapter, reading = check_config(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.overwrite:
        for old in [*out.glob("*.tar"), *out.glob(f"*{PARTIAL}"), out / MANIFEST]:
            old.unlink(missing_ok=True)
    tasks, skips = find_all_tasks(adapter, args.src, args.val_src)
    options = adapter.options
    chunk = args.chunk_size or STREAM_CHUNK
    encoder = Encoder(adapter, args.seed, args.val_fraction, chunk, reading)
    sinks = {s: ShardSink(out, s, args.shard_size, args.shard_bytes) for s in ("train", "val")}
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
    }
    manifest.update(adapter.manifest_extras(**reading))
    key = 0
    started = time.perf_counter()
    try:
        with tqdm(total=len(tasks), unit="file", disable=args.quiet, desc="prepare") as bar:
            for task, records, reason in _results(tasks, encoder, args.workers):
                bar.update(1)
                if reason is not None:
                    skips.append(Skip(task.path, reason))
                    continue
                for split, data, extra in records:
                    if split not in sinks:  # a fixed split the adapter names (enwik8's test)
                        sinks[split] = ShardSink(out, split, args.shard_size, args.shard_bytes)
                    meta = {"source": task.path, "modality": args.modality, "options": options}
                    sinks[split].write(f"s{key:09d}", data, {**meta, **extra})
                    key += 1
        manifest["complete"] = True
    finally:
        # Close shards even on an interrupt, so everything finished so far stays readable.
        for sink in sinks.values():
            sink.close()
        manifest.update(
            counts={s: sink.count for s, sink in sinks.items()},
            bytes={s: sink.bytes for s, sink in sinks.items()},
            total_bytes=sum(sink.bytes for sink in sinks.values()),
            shards={s: sink.shards for s, sink in sinks.items()},
            inputs={"tasks": len(tasks), "skipped": len(skips)},
            skipped=[{"source": s.source, "reason": s.reason} for s in skips],
            seconds=round(time.perf_counter() - started, 3),
        )
        (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``multibyte prepare``; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:
        return int(exit_.code or 0)
    try:
        manifest = run(args)
    except ConfigError as error:
        print(f"multibyte prepare: error: {error}", file=sys.stderr)
        return 2
    counts = ", ".join(f"{s}={n}" for s, n in manifest["counts"].items())
    print(
        f"wrote {counts} samples ({manifest['total_bytes']} bytes) to {args.out}; "
        f"skipped {len(manifest['skipped'])} inputs (see {Path(args.out) / MANIFEST})"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
