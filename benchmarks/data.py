"""data (issues 3 and 6): `multibyte prepare image` on a synthetic Chrabaszcz npz of 20,000
images (as a subprocess: the job's own rate from the manifest's `seconds`, and the command's wall
time with interpreter start-up), and the shard reader's bytes/s (`ShardDataset` in training mode,
in this process) against what the imagenet64-tiny recipe's training step consumes.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from benchmarks import harness as h
from multibyte.model import Megabyte

TARGETS = {"images_per_s": 5000, "reader_vs_consumption": 10.0}


def prepare(folder: Path, count: int, workers: int | None) -> dict:
    """A Chrabaszcz batch (`data` uint8 [count, 12288], R, G, B planes; 1-based `labels`),
    then `multibyte prepare image` on it."""
    rng, npz, out = np.random.default_rng(0), folder / "train_data_batch_1.npz", folder / "shards"
    data = rng.integers(0, 256, size=(count, 3 * 64 * 64), dtype=np.uint8)
    np.savez(npz, data=data, labels=rng.integers(1, 1001, size=count))
    script = Path(sys.executable).parent / "multibyte"
    program = [str(script)] if script.exists() else [sys.executable, "-m", "multibyte.cli"]
    args = ["prepare", "image", "--src", str(npz), "--out", str(out), "--quiet", "--overwrite"]
    args += ["--workers", str(workers)] if workers else []
    h.log("multibyte " + " ".join(args))
    wall = h.once(lambda: subprocess.run(program + args, check=True, capture_output=True))
    manifest = json.loads((out / "manifest.json").read_text())
    images = sum(manifest["counts"].values())
    return {"command": " ".join(["multibyte", *args]), "images": images, "wall_seconds": wall,
            "npz_bytes": npz.stat().st_size, "job_seconds": manifest["seconds"],
            "job_images_per_s": images / manifest["seconds"], "wall_images_per_s": images / wall,
            "skipped": manifest["inputs"]["skipped"]}  # fmt: skip


def read(shards: Path, batch: int, seq_len: int, batches: int) -> dict:
    """bytes/s of the batches the shard reader yields (after the first, which opens a shard)."""
    from multibyte.data import ShardDataset  # here: webdataset is not on the GPU machines

    dataset = ShardDataset(shards, split="train", seq_len=seq_len, batch_size=batch,
                           batches_per_epoch=batches, shuffle_buffer=256)  # fmt: skip
    iterator, total = iter(dataset), []
    next(iterator)
    seconds = h.once(lambda: total.extend(item.numel() for item in iterator))
    return {"batch": batch, "seq_len": seq_len, "batches": len(total), "bytes": sum(total),
            "seconds": seconds, "bytes_per_s": sum(total) / seconds}  # fmt: skip


def consume(smoke: bool) -> dict:
    """bytes/s that the imagenet64-tiny recipe's training step consumes, on torch's threads."""
    spec = h.recipe("imagenet64-tiny")
    config, batch = spec["config"], spec["batch_size"]
    if smoke:
        config = replace(config, global_dim=24, global_layers=1, local_dim=16, local_layers=1,
                         max_seq_len=96)  # fmt: skip
    torch.manual_seed(0)
    step = h.training_step(Megabyte(config), h.random_bytes(batch, config.max_seq_len))
    timing = h.measure(step, repeats=2 if smoke else 5)
    return {"recipe": "imagenet64-tiny", "config": config.to_dict(), "batch": batch,
            "seq_len": config.max_seq_len, "step": timing.to_dict(), "median_s": timing.median,
            "bytes_per_s": batch * config.max_seq_len / timing.median,
            "threads": torch.get_num_threads()}  # fmt: skip


def render(r: dict) -> str:
    p, rd, c, ratio = r["prepare"], r["reader"], r["consumption"], r["reader_vs_consumption"]
    images, least = TARGETS["images_per_s"], TARGETS["reader_vs_consumption"]
    met = {True: "yes", False: "**no**"}
    rows = [
        ["prepare image, images/s (job, manifest `seconds`)", f"{p['job_images_per_s']:,.0f}",
         f"≥ {images:,}", met[p["job_images_per_s"] >= images]],
        ["prepare image, images/s (whole command, wall)", f"{p['wall_images_per_s']:,.0f}",
         f"≥ {images:,}", met[p["wall_images_per_s"] >= images]],
        [f"shard reader bytes/s (batch {rd['batch']} x {rd['seq_len']}, in-process)",
         h.si(rd["bytes_per_s"], "B/s"), "", ""],
        [f"{c['recipe']} training step consumption (batch {c['batch']} x {c['seq_len']}, "
         f"{c['threads']} threads, {c['median_s']:.2f} s/step)", h.si(c["bytes_per_s"], "B/s"),
         "", ""],
        ["reader ÷ consumption", f"{ratio:,.0f}×", f"≥ {least:.0f}×", met[ratio >= least]],
    ]  # fmt: skip
    return (f"`{p['command']}` on a synthetic Chrabaszcz npz of {p['images']:,} images "
            f"({p['npz_bytes'] / 2**20:,.0f} MiB): job {p['job_seconds']:.2f} s (manifest "
            f"`seconds`), command wall time {p['wall_seconds']:.2f} s (with interpreter start-up "
            f"and imports). Consumption: the {h.STEP}.\n\n"
            + h.markdown_table(["figure", "measured", "target", "met"], rows))  # fmt: skip


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--workers", type=int, help="prepare's --workers (default: its own)")


@h.case("data", render, options)
def run(args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-data-") as tmp:
        prepared = prepare(Path(tmp), 200 if args.smoke else 20_000, args.workers)
        h.log(f"prepare: {prepared['job_images_per_s']:,.0f} images/s (job)")
        consumption = consume(args.smoke)
        h.log(f"the training step consumes {consumption['bytes_per_s']:,.0f} bytes/s")
        reader = read(Path(tmp) / "shards", consumption["batch"], consumption["seq_len"],
                      40 if args.smoke else 2000)  # fmt: skip
    return {"prepare": prepared, "reader": reader, "consumption": consumption,
            "reader_vs_consumption": reader["bytes_per_s"] / consumption["bytes_per_s"],
            "targets": TARGETS}  # fmt: skip
