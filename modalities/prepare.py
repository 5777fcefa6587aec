"""``multibyte prepare {text,image,audio}``: encode raw files into webdataset shards.

Output: ``OUT/{train,val}-%06d.tar`` (and ``test-`` for enwik8), samples ``s%09d`` holding
``.bin`` (the encoded bytes) and ``.json`` (source, modality, options, position), and
``OUT/manifest.json``. Bad inputs are skipped and listed; bad configuration fails before any work.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import multiprocessing
import os
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

import modalities
from modalities.sources import Skip, Task, find_tasks
from multibyte.data.shards import MANIFEST
from multibyte.data.writer import PARTIAL, ShardSink

MODALITIES = ("text", "image", "audio")
# Adapter options each modality accepts on the command line: --flag -> (keyword, type).
ADAPTER_FLAGS: dict[str, dict[str, tuple[str, type]]] = {
    "text": {"--patch-size": ("patch_size", int)},
    "image": {
        "--size": ("size", int),
        "--order": ("order", str),
        "--patch-size": ("patch_size", int),
    },
    "audio": {
        "--sample-rate": ("sample_rate", int),
        "--encoding": ("encoding", str),
        "--seq-len": ("seq_len", int),
        "--tail": ("tail", str),
        "--patch-size": ("patch_size", int),
    },
}
TEXT_CHUNK = 1 << 20

# (split, encoded bytes, metadata) for each sample a task produces.
Record = tuple[str, bytes, dict[str, Any]]


class ConfigError(ValueError):
    """Bad configuration: reported before any work starts."""


def val_draw(seed: int, ident: str) -> float:
    """A uniform number in [0, 1) fixed by (seed, ident): below val_fraction means val."""
    digest = hashlib.blake2b(f"{seed}\0{ident}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2.0**64


# -- the work one task does (runs in worker processes) ---------------------------------------

_STATE: dict[str, Any] = {}


def _init_worker(
    options: dict[str, Any], seed: int, val_fraction: float, chunk: int, pool: bool = True
) -> None:
    if pool:
        import torch

        torch.set_num_threads(1)  # one process per core already; only in pool workers
    _STATE.update(
        adapter=modalities.get(**options), seed=seed, val_fraction=val_fraction, chunk=chunk
    )


# Inputs given with --val-src carry this prefix in their ident: always validation.
HELD_OUT = "\0val/"


def _split(ident: str) -> str:
    if ident.startswith(HELD_OUT):
        return "val"
    return "val" if val_draw(_STATE["seed"], ident) < _STATE["val_fraction"] else "train"


def find_all_tasks(
    modality: str, sources: Sequence[str], val_sources: Sequence[str] = (), enwik8: bool = False
) -> tuple[list[Task], list[Skip]]:
    """Tasks of --src and of --val-src (whose idents are marked as held out)."""
    tasks, skips = find_tasks(modality, list(sources), enwik8=enwik8)
    if val_sources:
        held_tasks, held_skips = find_tasks(modality, list(val_sources))
        tasks += [replace(t, ident=HELD_OUT + t.ident) for t in held_tasks]
        skips += held_skips
    return tasks, skips


def _text_records(task: Task) -> list[Record]:
    adapter = _STATE["adapter"]
    chunk = _STATE["chunk"]
    if task.kind == "enwik8":
        from modalities.text import read_enwik8

        data, split, separator = read_enwik8(task.path, task.split), task.split, False
    else:
        data, split, separator = adapter.encode_file(task.path), _split(task.ident), True
    stream = adapter.join([data]) if separator else data
    return [
        (split, stream[i : i + chunk], {"offset": i, "document_bytes": len(data)})
        for i in range(0, len(stream), chunk)
    ]


def _image_records(task: Task) -> list[Record]:
    adapter = _STATE["adapter"]
    if task.kind == "image":
        return [(_split(task.ident), adapter.encode_file(task.path), {})]
    from modalities.imagenet64 import load_npz_batch

    pixels, labels = load_npz_batch(task.path)
    if pixels.shape[1] != adapter.size:
        from PIL import Image

        # Resizing goes through the same PIL box filter as image files.
        pixels = np.stack([adapter.to_pixels(Image.fromarray(p, "RGB")) for p in pixels])
    rows = adapter.order_pixels(pixels)
    records = []
    for i, row in enumerate(rows):
        meta: dict[str, Any] = {"index": i}
        if labels is not None:
            meta["label"] = int(labels[i])  # 1-based, as in the source file
        records.append((_split(f"{task.ident}#{i}"), row.tobytes(), meta))
    return records


def _audio_records(task: Task) -> list[Record]:
    adapter = _STATE["adapter"]
    # Every clip of a file goes to the same split, so no recording leaks from train into val.
    split = _split(task.ident)
    clips = adapter.clips(adapter.encode_file(task.path))
    return [
        (split, clip, {"clip": i, "offset": i * adapter.seq_len}) for i, clip in enumerate(clips)
    ]


def process(task: Task) -> tuple[Task, list[Record], str | None]:
    """Encode one task; any failure becomes a reason string instead of an exception."""
    try:
        if os.path.getsize(task.path) == 0:
            raise ValueError("empty file")
        kind = (
            "text"
            if task.kind in ("text", "enwik8")
            else "image"
            if task.kind in ("image", "npz")
            else "audio"
        )
        records = {"text": _text_records, "image": _image_records, "audio": _audio_records}[kind](
            task
        )
        if not records:
            raise ValueError("no samples")
        return task, records, None
    except Exception as error:  # noqa: BLE001 - any bad input is a skip, never an abort
        return task, [], f"{type(error).__name__}: {error}"


def encode_in_memory(
    options: dict[str, Any],
    sources: Sequence[str | os.PathLike],
    val_fraction: float,
    seed: int = 0,
    enwik8: bool = False,
    val_sources: Sequence[str | os.PathLike] = (),
) -> dict[str, Any]:
    """Encode raw inputs without writing shards, split exactly as ``prepare`` would.

    Returns ``{"train": [bytes, ...], "val": [...], "skipped": [{"source", "reason"}, ...]}``;
    for a stream modality (text) each split is one joined stream in a one-element list.
    """
    adapter = modalities.get(**options)
    tasks, skips = find_all_tasks(
        adapter.name, [str(s) for s in sources], [str(s) for s in val_sources], enwik8
    )
    _init_worker(adapter.options, seed, val_fraction, TEXT_CHUNK, pool=False)
    splits: dict[str, list[bytes]] = {"train": [], "val": [], "test": []}
    for task, records, reason in map(process, tasks):
        if reason is not None:
            skips.append(Skip(task.path, reason))
        for split, data, _ in records:
            splits[split].append(data)
    if adapter.seq_len is None:  # one stream per split, in input order
        splits = {name: [b"".join(parts)] if parts else [] for name, parts in splits.items()}
    return {**splits, "skipped": [{"source": s.source, "reason": s.reason} for s in skips]}


# -- configuration ---------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="multibyte prepare", description="Encode raw files into webdataset shards."
    )
    parser.add_argument("modality", choices=MODALITIES)
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
    parser.add_argument("--chunk-size", type=int, default=TEXT_CHUNK, help="text: bytes per record")
    parser.add_argument("--enwik8", action="store_true", help="text: raw enwik8, 90/5/5 split")
    parser.add_argument("--overwrite", action="store_true", help="replace existing shards in --out")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    flags = sorted({flag for table in ADAPTER_FLAGS.values() for flag in table})
    for flag in flags:
        parser.add_argument(flag, default=None, help="adapter option (see docs/modalities.md)")
    return parser


def adapter_options(modality: str, args: argparse.Namespace) -> dict[str, Any]:
    """The adapter options given on the command line, checked against the modality."""
    options: dict[str, Any] = {"name": modality}
    for flag in sorted({f for table in ADAPTER_FLAGS.values() for f in table}):
        value = getattr(args, flag[2:].replace("-", "_"))
        if value is None:
            continue
        if flag not in ADAPTER_FLAGS[modality]:
            raise ConfigError(f"option {flag} does not apply to {modality}")
        keyword, kind = ADAPTER_FLAGS[modality][flag]
        try:
            options[keyword] = kind(value)
        except ValueError as error:
            raise ConfigError(f"option {flag}={value!r} is not a valid {kind.__name__}") from error
    return options


def check_config(args: argparse.Namespace) -> modalities.Adapter:
    """Every check that can fail before work starts; returns the adapter."""
    if not 0.0 <= args.val_fraction < 1.0:
        raise ConfigError(f"--val-fraction must be in [0, 1), got {args.val_fraction}")
    for name in ("workers", "shard_size", "shard_bytes", "chunk_size"):
        if getattr(args, name) < 1:
            raise ConfigError(f"--{name.replace('_', '-')} must be at least 1")
    missing = [src for src in [*args.src, *args.val_src] if not Path(src).exists()]
    if missing:
        raise ConfigError(f"--src/--val-src path does not exist: {', '.join(missing)}")
    if args.enwik8 and args.val_src:
        raise ConfigError("--val-src does not apply to --enwik8 (it has a fixed split)")
    if args.enwik8 and args.modality != "text":
        raise ConfigError("--enwik8 applies to text only")
    if args.enwik8 and not all(Path(src).is_file() for src in args.src):
        raise ConfigError("--enwik8 needs the raw enwik8 file, not a folder")
    try:
        adapter = modalities.get(**adapter_options(args.modality, args))
    except ConfigError:
        raise
    except ValueError as error:
        raise ConfigError(str(error)) from error
    out = Path(args.out)
    if out.exists() and not out.is_dir():
        raise ConfigError(f"--out {out} exists and is not a folder")
    existing = sorted(out.glob("*.tar")) + sorted(out.glob(MANIFEST)) if out.is_dir() else []
    if existing and not args.overwrite:
        raise ConfigError(f"--out {out} already holds shards; pass --overwrite to replace them")
    return adapter


# -- the job ---------------------------------------------------------------------------------


def _results(tasks: Sequence[Task], args: argparse.Namespace, options: dict[str, Any]) -> Iterator:
    init = (options, args.seed, args.val_fraction, args.chunk_size)
    if args.workers == 1 or len(tasks) <= 1:
        _init_worker(*init, pool=False)
        yield from map(process, tasks)
        return
    context = multiprocessing.get_context("fork" if sys.platform == "linux" else "spawn")
    with context.Pool(min(args.workers, len(tasks)), _init_worker, init) as pool:
        # imap keeps task order, so keys and shards are the same for any number of workers.
        yield from pool.imap(process, tasks, chunksize=1)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Run a checked configuration and return the manifest it wrote."""
    adapter = check_config(args)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.overwrite:
        for old in [*out.glob("*.tar"), *out.glob(f"*{PARTIAL}"), out / MANIFEST]:
            old.unlink(missing_ok=True)
    tasks, skips = find_all_tasks(args.modality, args.src, args.val_src, enwik8=args.enwik8)
    options = adapter.options
    splits = ("train", "val", "test") if args.enwik8 else ("train", "val")
    sinks = {s: ShardSink(out, s, args.shard_size, args.shard_bytes) for s in splits}
    manifest: dict[str, Any] = {
        "format": "multibyte-shards",
        "version": 1,
        "modality": args.modality,
        "options": options,
        "stream": adapter.seq_len is None,
        "sources": [str(Path(s).resolve()) for s in args.src],
        "val_sources": [str(Path(s).resolve()) for s in args.val_src],
        "val_fraction": args.val_fraction,
        "seed": args.seed,
        "split": "enwik8 90/5/5" if args.enwik8 else "per input, by seed",
        "complete": False,
    }
    if args.modality == "text" and not args.enwik8:
        from modalities.text import SEPARATOR

        manifest["separator_hex"] = SEPARATOR.hex()
    key = 0
    started = time.perf_counter()
    try:
        from tqdm import tqdm

        with tqdm(total=len(tasks), unit="file", disable=args.quiet, desc="prepare") as bar:
            for task, records, reason in _results(tasks, args, options):
                bar.update(1)
                if reason is not None:
                    skips.append(Skip(task.path, reason))
                    continue
                for split, data, extra in records:
                    meta = {"source": task.path, "modality": args.modality, "options": options}
                    sinks[split].write(f"s{key:09d}", data, {**meta, **extra})
                    key += 1
        manifest["complete"] = True
    finally:
        # Close shards even on an interrupt, so everything finished so far stays readable.
        for sink in sinks.values():
            sink.close()
        manifest.update(
            counts={s: sinks[s].count for s in splits},
            bytes={s: sinks[s].bytes for s in splits},
            total_bytes=sum(sink.bytes for sink in sinks.values()),
            shards={s: sinks[s].shards for s in splits},
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
