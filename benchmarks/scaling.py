"""Scaling benchmark (issue 6): the longest sequence that trains (forward + backward at batch 1,
activation checkpointing on, chunked loss) within a memory budget, for MEGABYTE and a
ByteTransformer with the closest non-embedding parameter count.

    python -m benchmarks.scaling                  # audio-tiny-like MEGABYTE, 20 GB budget
    python -m benchmarks.scaling --budget-gb 8    # another budget
    python -m benchmarks.scaling --smoke          # tiny sizes, seconds; leaves the doc alone

Each attempt runs in its own subprocess (`--attempt`), so running out of memory cannot kill the
benchmark: the parent polls the child's resident size and kills it above the budget; the child
reports its own peak (`VmHWM`) and step time. T doubles from `start` until an attempt fails
(over budget, killed, or over the per-attempt time limit: then time, not memory, is what stops
it, and the table says so) or `max` is reached.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from benchmarks.common import (
    REPO,
    SMOKE_MEGABYTE,
    common_args,
    describe_machine,
    finish,
    header,
    log,
    markdown_table,
    utc_now,
)

NAME = "scaling"
COMMAND = "python -m benchmarks.scaling"

# audio-tiny (recipes/audio-tiny.yaml) with a long max_seq_len: P=32, global 256x2, local 96x2.
MEGABYTE = dict(
    patch_size=32,
    global_dim=256,
    global_layers=2,
    global_heads=4,
    local_dim=96,
    local_layers=2,
    local_heads=4,
    activation="gelu",
)
SMOKE_SCALING = dict(SMOKE_MEGABYTE, patch_size=8, activation="gelu")


def build(name: str, seq_len: int, smoke: bool):
    from benchmarks.train_step import closest_transformer
    from multibyte.flops import non_embedding_parameters
    from multibyte.model import ByteTransformer, ByteTransformerConfig, Megabyte, MegabyteConfig

    megabyte = MegabyteConfig(
        max_seq_len=seq_len,
        activation_checkpointing=True,
        **(SMOKE_SCALING if smoke else MEGABYTE),
    )
    if name == "megabyte":
        return Megabyte(megabyte)
    shape = closest_transformer(non_embedding_parameters(megabyte), head_dim=16 if smoke else 64)
    return ByteTransformer(
        ByteTransformerConfig(
            max_seq_len=seq_len, activation="gelu", activation_checkpointing=True, **shape
        )
    )


def attempt(name: str, seq_len: int, smoke: bool, gpu: bool = False) -> dict:
    """In the child: one training step at T=seq_len; its peak memory (resident, or allocated
    GPU memory with `gpu`: bf16 autocast on CUDA) and time."""
    import torch

    from multibyte.flops import non_embedding_parameters
    from multibyte.loss import cross_entropy_sum

    torch.manual_seed(0)
    device = "cuda" if gpu and torch.cuda.is_available() else "cpu"
    model = build(name, seq_len, smoke).train().to(device)
    x = torch.randint(0, 256, (1, seq_len), device=device)
    start = time.perf_counter()
    with torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
        loss = cross_entropy_sum(model.hidden(x), model.head, x) / seq_len
    loss.backward()
    if device == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated()
    seconds = time.perf_counter() - start
    if device == "cpu":
        status = Path("/proc/self/status").read_text()
        peak = int(re.search(r"^VmHWM:\s+(\d+) kB", status, re.M).group(1)) * 1024
    return {
        "seq_len": seq_len,
        "seconds": seconds,
        "peak_rss_bytes": peak,
        "loss": loss.item(),
        "config": model.config.to_dict(),
        "non_embedding_parameters": non_embedding_parameters(model.config),
        "device": device,
        "peak_is": "cuda max_memory_allocated" if device == "cuda" else "VmHWM",
    }


def _rss(pid: int) -> int:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    match = re.search(r"^VmRSS:\s+(\d+) kB", text, re.M)
    return int(match.group(1)) * 1024 if match else 0


def run_attempt(
    name: str, seq_len: int, budget: float, limit_s: float, smoke: bool, gpu: bool = False
) -> dict:
    command = (
        [sys.executable, "-m", "benchmarks.scaling", "--attempt", name, "--seq-len", str(seq_len)]
        + (["--smoke"] if smoke else [])
        + (["--gpu"] if gpu else [])
    )
    child = subprocess.Popen(
        command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    start, peak, why = time.monotonic(), 0, None
    while child.poll() is None:
        peak = max(peak, _rss(child.pid))
        if peak > budget and not gpu:
            why = "over memory budget (killed)"
        elif time.monotonic() - start > limit_s:
            why = f"over the {limit_s:.0f} s time limit (killed)"
        if why:
            child.kill()
            break
        time.sleep(0.1)
    out, err = child.communicate()
    wall = time.monotonic() - start
    if why is None and child.returncode != 0:
        why = f"failed (exit {child.returncode}): " + (err.strip().splitlines() or ["?"])[-1]
    result = {
        "seq_len": seq_len,
        "ok": why is None,
        "why": why,
        "wall_s": wall,
        "polled_peak_rss_bytes": peak,
    }
    if why is None:
        result.update(json.loads(out.strip().splitlines()[-1]))
        if result["peak_rss_bytes"] > budget:
            result.update(ok=False, why="over memory budget (peak after the step)")
    return result


def scan(
    name: str, start: int, stop: int, budget: float, limit_s: float, smoke: bool, gpu: bool
) -> list:
    results, seq_len = [], start
    while seq_len <= stop:
        log(f"{name}: T={seq_len:,}")
        result = run_attempt(name, seq_len, budget, limit_s, smoke, gpu)
        log(
            f"  {'ok' if result['ok'] else result['why']}, {result['wall_s']:.1f} s, peak "
            f"{max(result.get('peak_rss_bytes', 0), result['polled_peak_rss_bytes']) / 2**30:.2f} GiB"  # noqa: E501
        )  # noqa: E501
        results.append(result)
        if not result["ok"]:
            break
        seq_len *= 2
    return results


def run(smoke: bool, budget_gb: float, limit_s: float, ranges: dict, gpu: bool = False) -> dict:
    machine = describe_machine()
    budget = budget_gb * 1e9
    scans = {
        name: scan(name, lo, hi, budget, limit_s, smoke, gpu) for name, (lo, hi) in ranges.items()
    }
    longest = {}
    for name, results in scans.items():
        ok = [r for r in results if r["ok"]]
        failed = [r for r in results if not r["ok"]]
        longest[name] = {
            "seq_len": ok[-1]["seq_len"] if ok else None,
            "peak_rss_bytes": ok[-1]["peak_rss_bytes"] if ok else None,
            "stopped_by": failed[0]["why"] if failed else "reached the largest T tried",
        }
    return {
        "benchmark": NAME,
        "command": COMMAND,
        "date": utc_now(),
        "machine": machine,
        "budget_bytes": budget,
        "attempt_time_limit_s": limit_s,
        "ranges": ranges,
        "attempts": scans,
        "longest": longest,
        "gpu": gpu,
    }


LABELS = {
    "megabyte": "MEGABYTE (audio-tiny: P=32, global 256x2, local 96x2)",
    "byte_transformer": "ByteTransformer (closest non-emb. params)",
}


def render(results: dict) -> str:
    out = [
        header(results["machine"], results["command"]),
        f"Batch 1, fp32 forward + backward of the chunked loss, activation checkpointing on, one "
        f"subprocess per attempt; memory budget {results['budget_bytes'] / 1e9:.0f} GB resident, "
        f"{results['attempt_time_limit_s']:.0f} s per attempt.",
        "",
    ]
    rows = []
    for name, attempts in results["attempts"].items():
        for a in attempts:
            peak = a.get("peak_rss_bytes") or a["polled_peak_rss_bytes"]
            rows.append(
                [
                    LABELS[name] if a is attempts[0] else "",
                    f"{a['seq_len']:,}",
                    "yes" if a["ok"] else a["why"],
                    f"{peak / 2**30:.2f}",
                    f"{a.get('seconds', a['wall_s']):.1f}",
                ]
            )
    out.append(markdown_table(["model", "T (bytes)", "trains", "peak RSS GiB", "step s"], rows))
    out += [
        "",
        "Longest T within the budget: "
        + "; ".join(
            f"{LABELS[n].split(' (')[0]} **{(v['seq_len'] or 0):,}** (stopped by: {v['stopped_by']})"  # noqa: E501
            for n, v in results["longest"].items()
        )
        + ".",
    ]
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> dict | None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common_args(parser)
    parser.add_argument("--budget-gb", type=float, default=20.0, help="resident memory budget")
    parser.add_argument("--time-limit", type=float, default=240.0, help="seconds per attempt")
    parser.add_argument("--megabyte-range", type=int, nargs=2, default=(65536, 1048576))
    parser.add_argument("--transformer-range", type=int, nargs=2, default=(4096, 65536))
    parser.add_argument(
        "--gpu",
        action="store_true",
        help="attempts on CUDA in bf16 autocast (peak: max_memory_allocated)",
    )
    parser.add_argument("--attempt", help=argparse.SUPPRESS)
    parser.add_argument("--seq-len", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.attempt:
        print(json.dumps(attempt(args.attempt, args.seq_len, args.smoke, args.gpu)))
        return None
    ranges = (
        {"megabyte": (64, 64), "byte_transformer": (64, 64)}
        if args.smoke
        else {
            "megabyte": tuple(args.megabyte_range),
            "byte_transformer": tuple(args.transformer_range),
        }
    )
    limit = 60.0 if args.smoke else args.time_limit
    results = run(args.smoke, args.budget_gb, limit, ranges, args.gpu)
    finish(NAME, results, render, args)
    return results


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
