"""Data benchmark (issues 3 and 6): `multibyte prepare image` on a synthetic Chrabaszcz npz, and
the shard reader's bytes/s against what a tiny model's training step consumes.

    python -m benchmarks.data            # 20,000 images (~1 minute)
    python -m benchmarks.data --smoke    # 200 images, seconds; leaves the doc alone

Prepare: a synthetic npz in the Chrabaszcz layout (`data` uint8 N x 12288 channel-planar,
1-based `labels`) is written to a temporary folder, then `multibyte prepare image --src NPZ
--out DIR` runs as a subprocess. Two rates are reported: the job's own (images / the manifest's
`seconds`, which starts after argument parsing and imports) and the end-to-end command wall time
(including interpreter start-up and imports: the console script imports torch through
webdataset, a fixed ~1.5-2 s).

Reader: `multibyte.data.ShardDataset` over the prepared train shards (training mode: resampled
shards, shuffle buffer, batching), in this process, no DataLoader workers: bytes/s of the
batches it yields. Consumption: the imagenet64-tiny recipe's model (`recipes/*-tiny` sizes) at
its batch size and T=12288, one fp32 forward + backward of the chunked loss plus an AdamW step,
on this machine's default threads: bytes per step / step time.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch

from benchmarks.common import (
    REPO,
    common_args,
    describe_machine,
    finish,
    header,
    log,
    markdown_table,
    si,
    time_call,
    utc_now,
)

NAME = "data"
COMMAND = "python -m benchmarks.data"
TARGET_IMAGES_PER_S = 5000
TARGET_READER_RATIO = 10.0


def write_npz(path: Path, count: int, seed: int = 0) -> Path:
    """A Chrabaszcz-format batch: `data` uint8 [count, 12288] (R plane, G plane, B plane),
    `labels` 1-based ints."""
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, size=(count, 3 * 64 * 64), dtype=np.uint8)
    labels = rng.integers(1, 1001, size=count).tolist()
    np.savez(path, data=data, labels=labels)
    return path


def prepare_command() -> list[str]:
    script = Path(sys.executable).parent / "multibyte"
    if script.exists():
        return [str(script), "prepare"]
    return [sys.executable, "-m", "multibyte.cli", "prepare"]


def bench_prepare(folder: Path, count: int, workers: int | None) -> dict:
    npz = write_npz(folder / "train_data_batch_1.npz", count)
    out = folder / "shards"
    command = [
        *prepare_command(),
        "image",
        "--src",
        str(npz),
        "--out",
        str(out),
        "--quiet",
        "--overwrite",
    ] + (["--workers", str(workers)] if workers else [])
    log("prepare: " + " ".join(command[1:]))
    start = time.perf_counter()
    subprocess.run(command, check=True, cwd=REPO, capture_output=True)
    wall = time.perf_counter() - start
    manifest = json.loads((out / "manifest.json").read_text())
    images = sum(manifest["counts"].values())
    return {
        "command": " ".join(["multibyte", *command[1:]]),
        "images": images,
        "npz_bytes": npz.stat().st_size,
        "shard_bytes": manifest["total_bytes"],
        "job_seconds": manifest["seconds"],
        "wall_seconds": wall,
        "job_images_per_s": images / manifest["seconds"],
        "wall_images_per_s": images / wall,
        "skipped": manifest["inputs"]["skipped"],
        "shards": out,
    }


def bench_reader(shards: Path, batch: int, seq_len: int, batches: int) -> dict:
    from multibyte.data import ShardDataset

    dataset = ShardDataset(
        shards,
        split="train",
        seq_len=seq_len,
        batch_size=batch,
        batches_per_epoch=batches,
        shuffle_buffer=256,
    )
    iterator = iter(dataset)
    next(iterator)  # open the first shard
    total = 0
    start = time.perf_counter()
    for item in iterator:
        total += item.numel()
    seconds = time.perf_counter() - start
    return {
        "batch": batch,
        "seq_len": seq_len,
        "batches": batches - 1,
        "bytes": total,
        "seconds": seconds,
        "bytes_per_s": total / seconds,
    }


def bench_consumption(smoke: bool, repeats: int) -> dict:
    import yaml

    from multibyte.loss import cross_entropy_sum
    from multibyte.model import Megabyte, MegabyteConfig

    recipe = yaml.safe_load((REPO / "recipes" / "imagenet64-tiny.yaml").read_text())
    config = dict(recipe["model"]["model"]["init_args"]["config"])
    batch, seq_len = recipe["data"]["batch_size"], config["max_seq_len"]
    if smoke:
        config.update(global_dim=24, global_layers=1, local_dim=16, local_layers=1, max_seq_len=96)
        batch, seq_len = 2, 96
    torch.manual_seed(0)
    model = Megabyte(MegabyteConfig(**config))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    x = torch.randint(0, 256, (batch, seq_len))

    def full_step() -> None:
        model.zero_grad(set_to_none=True)
        (cross_entropy_sum(model.hidden(x), model.head, x) / x.numel()).backward()
        optimizer.step()

    full_step()  # warm-up (optimizer state)
    seconds = sorted(time_call(full_step) for _ in range(repeats))
    median = seconds[len(seconds) // 2]
    return {
        "recipe": "imagenet64-tiny",
        "config": config,
        "batch": batch,
        "seq_len": seq_len,
        "step_seconds": seconds,
        "median_s": median,
        "bytes_per_s": batch * seq_len / median,
        "threads": torch.get_num_threads(),
    }


def run(smoke: bool, workers: int | None) -> dict:
    machine = describe_machine()
    count = 200 if smoke else 20_000
    with tempfile.TemporaryDirectory(prefix="bench-data-") as tmp:
        prepare = bench_prepare(Path(tmp), count, workers)
        log(
            f"prepare: {prepare['job_images_per_s']:,.0f} images/s (job), "
            f"{prepare['wall_images_per_s']:,.0f} (wall)"
        )
        consumption = bench_consumption(smoke, 2 if smoke else 5)
        log(f"tiny-model step consumes {consumption['bytes_per_s']:,.0f} bytes/s")
        reader = bench_reader(
            prepare.pop("shards"),
            consumption["batch"],
            12288 if not smoke else 96,
            40 if smoke else 2000,
        )
        log(f"reader: {reader['bytes_per_s']:,.0f} bytes/s")
    return {
        "benchmark": NAME,
        "command": COMMAND,
        "date": utc_now(),
        "machine": machine,
        "load_average_1min_end": os.getloadavg()[0],
        "prepare": prepare,
        "reader": reader,
        "consumption": consumption,
        "reader_vs_consumption": reader["bytes_per_s"] / consumption["bytes_per_s"],
        "targets": {
            "prepare_images_per_s": TARGET_IMAGES_PER_S,
            "reader_vs_consumption": TARGET_READER_RATIO,
        },
    }


def render(results: dict) -> str:
    p, r, c = results["prepare"], results["reader"], results["consumption"]
    ratio = results["reader_vs_consumption"]
    met = lambda ok: "yes" if ok else "**no**"  # noqa: E731
    out = [
        header(
            results["machine"],
            results["command"],
            f"1-minute load average at end {results['load_average_1min_end']:.2f}.",
        ),
        f"`{p['command']}` on a synthetic Chrabaszcz npz of {p['images']:,} images "
        f"({p['npz_bytes'] / 2**20:,.0f} MiB): job {p['job_seconds']:.2f} s (manifest "
        f"`seconds`), command wall time {p['wall_seconds']:.2f} s (with interpreter start-up and "
        "imports).",
        "",
        markdown_table(
            ["figure", "measured", "target", "met"],
            [
                [
                    "prepare image, images/s (job, manifest `seconds`)",
                    f"{p['job_images_per_s']:,.0f}",
                    f"≥ {TARGET_IMAGES_PER_S:,}",
                    met(p["job_images_per_s"] >= TARGET_IMAGES_PER_S),
                ],
                [
                    "prepare image, images/s (whole command, wall)",
                    f"{p['wall_images_per_s']:,.0f}",
                    f"≥ {TARGET_IMAGES_PER_S:,}",
                    met(p["wall_images_per_s"] >= TARGET_IMAGES_PER_S),
                ],
                [
                    f"shard reader bytes/s (batch {r['batch']} x {r['seq_len']}, in-process)",
                    si(r["bytes_per_s"], "B/s"),
                    "",
                    "",
                ],
                [
                    f"{c['recipe']} train step consumption (batch {c['batch']} x {c['seq_len']}, "
                    f"fwd+bwd+AdamW, {c['threads']} threads, {c['median_s']:.2f} s/step)",
                    si(c["bytes_per_s"], "B/s"),
                    "",
                    "",
                ],
                [
                    "reader ÷ consumption",
                    f"{ratio:,.0f}×",
                    f"≥ {TARGET_READER_RATIO:.0f}×",
                    met(ratio >= TARGET_READER_RATIO),
                ],
            ],
        ),
    ]
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common_args(parser)
    parser.add_argument("--workers", type=int, help="prepare's --workers (default: its own)")
    args = parser.parse_args(argv)
    results = run(args.smoke, args.workers)
    finish(NAME, results, render, args)
    return results


if __name__ == "__main__":
    main()
