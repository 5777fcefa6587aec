"""scaling: the longest T at which audio-tiny MEGABYTE and the matched ByteTransformer train
(one step, batch 1, activation checkpointing) within a memory budget; T doubles until an attempt
fails. Each attempt is a child process (`python -m benchmarks.scaling NAME T`), killed over the
budget or the time limit."""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import torch

from benchmarks import harness as h

LABELS = {"megabyte": "MEGABYTE (audio-tiny: P=32, global 256x2, local 96x2)"}
LABELS["byte_transformer"] = "ByteTransformer (closest non-emb. params)"


def attempt(name: str, seq_len: int, smoke: bool, gpu: bool) -> dict:
    """In the child: one training step of model `name` at T = seq_len; peak memory and time."""
    smoke_shape = h.SMOKE_PAIR["megabyte"] | {"patch_size": 8}
    shape = smoke_shape if smoke else h.recipe("audio-tiny")["config"]
    config = h.megabyte_config(shape, seq_len, activation="gelu", activation_checkpointing=True)
    device = "cuda" if gpu and torch.cuda.is_available() else "cpu"
    model = h.build_pair(config, only=[name], head_dim=16 if smoke else 64)[name].to(device)
    x = h.random_bytes(1, seq_len, device=device)
    step = h.training_step(model, x, torch.bfloat16 if device == "cuda" else None)
    with h.peak_memory(device) as memory:
        seconds = h.once(step)
    return {"seq_len": seq_len, "seconds": seconds, **memory, "device": device}


def run_attempt(name: str, seq_len: int, budget: float | None, args: argparse.Namespace) -> dict:
    """One attempt in a child process, killed over the (host) memory budget or time limit."""
    command = [sys.executable, "-m", "benchmarks.scaling", name, str(seq_len)]
    command += ["--smoke"] * args.smoke + ["--gpu"] * args.gpu
    pipes = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE}
    child = subprocess.Popen(command, cwd=h.REPO, text=True, **pipes)
    start, peak, why, status = time.monotonic(), 0, None, Path(f"/proc/{child.pid}/status")
    while child.poll() is None:
        found = re.search(r"^VmRSS:\s+(\d+) kB", status.read_text(errors="ignore"), re.M)
        peak = max(peak, int(found[1]) * 1024 if found else 0)
        if budget and peak > budget and not args.gpu:  # GPU memory is the child's to report
            why = "over memory budget (killed)"
        elif time.monotonic() - start > args.time_limit:
            why = f"over the {args.time_limit:.0f} s time limit (killed)"
        if why:
            child.kill()
            break
        time.sleep(0.1)
    out, err = child.communicate()
    if why is None and child.returncode != 0:
        why = f"failed (exit {child.returncode}): " + (err.strip().splitlines() or ["?"])[-1]
    result = {"seq_len": seq_len, "ok": why is None, "why": why, "polled_peak_rss_bytes": peak}
    result["wall_s"] = time.monotonic() - start
    if why is None:
        result |= json.loads(out.strip().splitlines()[-1])
        if budget and result["peak_bytes"] > budget:
            result.update(ok=False, why="over memory budget (peak after the step)")
    return result


def render(r: dict) -> str:
    rows = []
    for name, attempts in r["attempts"].items():
        for a in attempts:
            peak = (a.get("peak_bytes") or a["polled_peak_rss_bytes"]) / 2**30
            seconds = a.get("seconds", a["wall_s"])
            label = LABELS[name] if a is attempts[0] else ""
            trains = "yes" if a["ok"] else a["why"]
            rows.append([label, f"{a['seq_len']:,}", trains, f"{peak:.2f}", f"{seconds:.1f}"])
    longest = "; ".join(
        f"{h.LABELS[n]} **{v['seq_len'] or 0:,}** (stopped by: {v['stopped_by']})"
        for n, v in r["longest"].items()
    )
    budget = f"{r['budget_bytes'] / 1e9:.0f} GB" if r["budget_bytes"] else "the device's own"
    return (
        f"Batch 1, the {h.STEP}, {'bf16 on CUDA' if r['device'] == 'cuda' else 'fp32'}, "
        f"activation checkpointing on, one subprocess per attempt; memory budget {budget}, "
        f"{r['attempt_time_limit_s']:.0f} s per attempt.\n\n"
        + h.markdown_table(["model", "T (bytes)", "trains", "peak GiB", "step s"], rows)
        + f"\n\nLongest T within the budget: {longest}."
    )


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--budget-gb", type=float, help="memory budget (20; with --gpu: none)")
    parser.add_argument("--time-limit", type=float, default=240.0, help="seconds per attempt")
    parser.add_argument("--megabyte-range", type=int, nargs=2, default=(65536, 1048576))
    parser.add_argument("--transformer-range", type=int, nargs=2, default=(4096, 65536))
    parser.add_argument("--gpu", action="store_true", help="attempts on CUDA, bf16 autocast")


@h.case("scaling", render, options)
def run(args: argparse.Namespace) -> dict:
    ranges = {"megabyte": args.megabyte_range, "byte_transformer": args.transformer_range}
    if args.smoke:
        ranges, args.time_limit = {"megabyte": (64, 64), "byte_transformer": (64, 64)}, 60.0
    budget = args.budget_gb * 1e9 if args.budget_gb else (None if args.gpu else 20e9)
    attempts, longest = {}, {}
    for name, (seq_len, stop) in ranges.items():
        attempts[name] = []
        while seq_len <= stop:
            h.log(f"{name}: T={seq_len:,}")
            attempts[name].append(result := run_attempt(name, seq_len, budget, args))
            h.log(f"  {'ok' if result['ok'] else result['why']}, {result['wall_s']:.1f} s")
            seq_len = seq_len * 2 if result["ok"] else stop + 1
        ok, last = [a["seq_len"] for a in attempts[name] if a["ok"]], attempts[name][-1]
        why = "reached the largest T tried" if last["ok"] else last["why"]
        longest[name] = {"seq_len": (ok or [None])[-1], "stopped_by": why}
    device = "cuda" if args.gpu and torch.cuda.is_available() else "cpu"
    found = {"budget_bytes": budget, "attempt_time_limit_s": args.time_limit, "device": device}
    return found | {"ranges": ranges, "attempts": attempts, "longest": longest}


if __name__ == "__main__":  # one attempt, in the child: NAME T [--smoke] [--gpu]
    name, seq_len = sys.argv[1], int(sys.argv[2])
    print(json.dumps(attempt(name, seq_len, "--smoke" in sys.argv, "--gpu" in sys.argv)))
