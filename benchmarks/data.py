"""data (issues 3 and 6): `multibyte prepare image` on a synthetic Chrabaszcz npz of 20,000
images, and the shard reader's bytes/s against what a tiny model's training step consumes.

Prepare runs as a subprocess; two rates: the job's own (images / the manifest's `seconds`, after
argument parsing and imports) and the command's wall time (with interpreter start-up). Reader:
`multibyte.data.ShardDataset` over the train shards in training mode (resampled, shuffled,
batched), in this process. Consumption: the imagenet64-tiny recipe's model at its batch size and
T = 12,288, the training step on this machine's default threads: bytes per step / step time.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from benchmarks import harness as h
from multibyte.model import Megabyte

TARGET_IMAGES_PER_S = 5000
TARGET_READER_RATIO = 10.0


def write_npz(path: Path, count: int, seed: int = 0) -> Path:
    """A Chrabaszcz batch: `data` uint8 [count, 12288] (R, G, B planes), 1-based `labels`."""
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, size=(count, 3 * 64 * 64), dtype=np.uint8)
    np.savez(path, data=data, labels=rng.integers(1, 1001, size=count))
    return path


def bench_prepare(folder: Path, count: int, workers: int | None) -> dict:
    npz, out = write_npz(folder / "train_data_batch_1.npz", count), folder / "shards"
    script = Path(sys.executable).parent / "multibyte"
    program = [str(script)] if script.exists() else [sys.executable, "-m", "multibyte.cli"]
    command = [*program, "prepare", "image", "--src", str(npz), "--out", str(out), "--quiet",
               "--overwrite"] + (["--workers", str(workers)] if workers else [])  # fmt: skip
    h.log("prepare: " + " ".join(command[len(program) :]))
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=h.REPO, capture_output=True)
    wall = time.perf_counter() - start
    manifest = json.loads((out / "manifest.json").read_text())
    images = sum(manifest["counts"].values())
    return {
        "command": " ".join(["multibyte", *command[len(program) :]]), "images": images,
        "npz_bytes": npz.stat().st_size, "shard_bytes": manifest["total_bytes"],
        "job_seconds": manifest["seconds"], "wall_seconds": wall,
        "job_images_per_s": images / manifest["seconds"], "wall_images_per_s": images / wall,
        "skipped": manifest["inputs"]["skipped"],
    }  # fmt: skip


def bench_reader(shards: Path, batch: int, seq_len: int, batches: int) -> dict:
    from multibyte.data import ShardDataset

    dataset = ShardDataset(shards, split="train", seq_len=seq_len, batch_size=batch,
                           batches_per_epoch=batches, shuffle_buffer=256)  # fmt: skip
    iterator = iter(dataset)
    next(iterator)  # opens the first shard
    total = 0

    def read() -> None:
        nonlocal total
        total = sum(item.numel() for item in iterator)

    seconds = h.measure(read, repeats=1, warmup=0).best
    return {"batch": batch, "seq_len": seq_len, "batches": batches - 1, "bytes": total,
            "seconds": seconds, "bytes_per_s": total / seconds}  # fmt: skip


def bench_consumption(smoke: bool) -> dict:
    spec = h.recipe("imagenet64-tiny")
    config, batch = spec["config"], spec["batch_size"]
    if smoke:
        config, batch = replace(config, global_dim=24, global_layers=1, local_dim=16,
                                local_layers=1, max_seq_len=96), 2  # fmt: skip
    torch.manual_seed(0)
    model = Megabyte(config)
    step = h.training_step(model, h.random_bytes(batch, config.max_seq_len))
    timing = h.measure(step, repeats=2 if smoke else 5)
    return {"recipe": "imagenet64-tiny", "config": config.to_dict(), "batch": batch,
            "seq_len": config.max_seq_len, "step": timing.to_dict(), "median_s": timing.median,
            "bytes_per_s": batch * config.max_seq_len / timing.median,
            "threads": torch.get_num_threads()}  # fmt: skip


def render(r: dict) -> str:
    p, rd, c, ratio = r["prepare"], r["reader"], r["consumption"], r["reader_vs_consumption"]

    def met(ok: bool) -> str:
        return "yes" if ok else "**no**"

    rows = [
        ["prepare image, images/s (job, manifest `seconds`)", f"{p['job_images_per_s']:,.0f}",
         f"≥ {TARGET_IMAGES_PER_S:,}", met(p["job_images_per_s"] >= TARGET_IMAGES_PER_S)],
        ["prepare image, images/s (whole command, wall)", f"{p['wall_images_per_s']:,.0f}",
         f"≥ {TARGET_IMAGES_PER_S:,}", met(p["wall_images_per_s"] >= TARGET_IMAGES_PER_S)],
        [f"shard reader bytes/s (batch {rd['batch']} x {rd['seq_len']}, in-process)",
         h.si(rd["bytes_per_s"], "B/s"), "", ""],
        [f"{c['recipe']} training consumption (batch {c['batch']} x {c['seq_len']}, "
         f"{c['threads']} threads, {c['median_s']:.2f} s/step)", h.si(c["bytes_per_s"], "B/s"), "", ""],
        ["reader ÷ consumption", f"{ratio:,.0f}×", f"≥ {TARGET_READER_RATIO:.0f}×",
         met(ratio >= TARGET_READER_RATIO)],
    ]  # fmt: skip
    return "\n".join([
        f"`{p['command']}` on a synthetic Chrabaszcz npz of {p['images']:,} images "
        f"({p['npz_bytes'] / 2**20:,.0f} MiB): job {p['job_seconds']:.2f} s (manifest `seconds`), "
        f"command wall time {p['wall_seconds']:.2f} s (with interpreter start-up and imports). "
        f"Consumption: {h.STEP}.", "", h.markdown_table(["figure", "measured", "target", "met"], rows),
    ])  # fmt: skip


def options(parser) -> None:
    parser.add_argument("--workers", type=int, help="prepare's --workers (default: its own)")


@h.case("data", render, options)
def run(args) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-data-") as tmp:
        prepare = bench_prepare(Path(tmp), 200 if args.smoke else 20_000, args.workers)
        h.log(f"prepare: {prepare['job_images_per_s']:,.0f} images/s (job)")
        consumption = bench_consumption(args.smoke)
        h.log(f"the tiny model's step consumes {consumption['bytes_per_s']:,.0f} bytes/s")
        reader = bench_reader(Path(tmp) / "shards", consumption["batch"],
                              consumption["seq_len"], 40 if args.smoke else 2000)  # fmt: skip
    return {
        "prepare": prepare, "reader": reader, "consumption": consumption,
        "reader_vs_consumption": reader["bytes_per_s"] / consumption["bytes_per_s"],
        "targets": {"prepare_images_per_s": TARGET_IMAGES_PER_S,
                    "reader_vs_consumption": TARGET_READER_RATIO},
    }  # fmt: skip
