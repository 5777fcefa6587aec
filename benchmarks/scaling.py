"""scaling (issue 6): the longest sequence that trains (one training step at batch 1, activation
checkpointing on) within a memory budget, for an audio-tiny MEGABYTE and a ByteTransformer with
the closest non-embedding parameter count.

Each attempt runs in its own subprocess (`python -m benchmarks.scaling NAME T`), so running out
of memory cannot kill the benchmark: the parent polls the child's resident size and kills it
above the budget or past the time limit (then time, not memory, stopped it, and the table says
so); the child reports its own peak and step time. T doubles until an attempt fails or the
range ends. `--gpu`: attempts on CUDA in bf16 autocast, peak `max_memory_allocated`, no budget
unless `--budget-gb` is given (CUDA running out of memory ends the scan).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import torch

from benchmarks import harness as h
from multibyte.flops import non_embedding_parameters

LABELS = {
    "megabyte": "MEGABYTE (audio-tiny: P=32, global 256x2, local 96x2)",
    "byte_transformer": "ByteTransformer (closest non-emb. params)",
}


def attempt(name: str, seq_len: int, smoke: bool, gpu: bool) -> dict:
    """In the child: one training step of model `name` at T = seq_len; peak memory and time."""
    shape = (
        h.SMOKE_PAIR["megabyte"] | dict(patch_size=8) if smoke else h.recipe("audio-tiny")["config"]
    )  # noqa: E501
    config = h.megabyte_config(shape, seq_len, activation="gelu", activation_checkpointing=True)
    device = "cuda" if gpu and torch.cuda.is_available() else "cpu"
    model = h.build_pair(config, only=[name], head_dim=16 if smoke else 64)[name].to(device)
    step = h.training_step(model, h.random_bytes(1, seq_len, device=device),
                         torch.bfloat16 if device == "cuda" else None)  # fmt: skip
    with h.peak_memory(device) as memory:
        seconds = h.measure(step, repeats=1, warmup=0).best
    return {"seq_len": seq_len, "seconds": seconds, **memory, "device": device,
            "config": model.config.to_dict(),
            "non_embedding_parameters": non_embedding_parameters(model.config)}  # fmt: skip


def _rss(pid: int) -> int:
    try:
        found = re.search(r"^VmRSS:\s+(\d+) kB", Path(f"/proc/{pid}/status").read_text(), re.M)
    except OSError:
        return 0
    return int(found.group(1)) * 1024 if found else 0


def run_attempt(name: str, seq_len: int, budget: float | None, limit_s: float, smoke: bool,
                gpu: bool) -> dict:  # fmt: skip
    command = [sys.executable, "-m", "benchmarks.scaling", name, str(seq_len)]
    command += ["--smoke"] * smoke + ["--gpu"] * gpu
    child = subprocess.Popen(command, cwd=h.REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)  # fmt: skip
    start, peak, why = time.monotonic(), 0, None
    while child.poll() is None:
        peak = max(peak, _rss(child.pid))
        if budget and peak > budget and not gpu:  # host memory: GPU attempts are not polled
            why = "over memory budget (killed)"
        elif time.monotonic() - start > limit_s:
            why = f"over the {limit_s:.0f} s time limit (killed)"
        if why:
            child.kill()
            break
        time.sleep(0.1)
    out, err = child.communicate()
    if why is None and child.returncode != 0:
        why = f"failed (exit {child.returncode}): " + (err.strip().splitlines() or ["?"])[-1]
    result = {"seq_len": seq_len, "ok": why is None, "why": why,
              "wall_s": time.monotonic() - start, "polled_peak_rss_bytes": peak}  # fmt: skip
    if why is None:
        result.update(json.loads(out.strip().splitlines()[-1]))
        if budget and result["peak_bytes"] > budget:
            result.update(ok=False, why="over memory budget (peak after the step)")
    return result


def render(r: dict) -> str:
    rows = []
    for name, attempts in r["attempts"].items():
        for a in attempts:
            peak = a.get("peak_bytes") or a["polled_peak_rss_bytes"]
            rows.append([LABELS[name] if a is attempts[0] else "", f"{a['seq_len']:,}",
                         "yes" if a["ok"] else a["why"], f"{peak / 2**30:.2f}",
                         f"{a.get('seconds', a['wall_s']):.1f}"])  # fmt: skip
    longest = "; ".join(
        f"{LABELS[n].split(' (')[0]} **{v['seq_len'] or 0:,}** (stopped by: {v['stopped_by']})"
        for n, v in r["longest"].items()
    )
    cuda, budget = r["device"] == "cuda", r["budget_bytes"]
    return "\n".join([
        f"Batch 1, the {h.STEP}, {'bf16 on CUDA' if cuda else 'fp32'}, activation checkpointing "
        "on, one subprocess per attempt; memory budget "
        + (f"{budget / 1e9:.0f} GB" if budget else "the device's own") + ", "
        f"{r['attempt_time_limit_s']:.0f} s per attempt.", "",
        h.markdown_table(["model", "T (bytes)", "trains", "peak GiB", "step s"], rows), "",
        f"Longest T within the budget: {longest}.",
    ])  # fmt: skip


def options(parser) -> None:
    parser.add_argument("--budget-gb", type=float, help="memory budget (20; GPU: none)")
    parser.add_argument("--time-limit", type=float, default=240.0, help="seconds per attempt")
    parser.add_argument("--megabyte-range", type=int, nargs=2, default=(65536, 1048576))
    parser.add_argument("--transformer-range", type=int, nargs=2, default=(4096, 65536))
    parser.add_argument("--gpu", action="store_true", help="attempts on CUDA, bf16 autocast")


@h.case("scaling", render, options)
def run(args) -> dict:
    ranges = {"megabyte": args.megabyte_range, "byte_transformer": args.transformer_range}
    if args.smoke:
        ranges = {"megabyte": (64, 64), "byte_transformer": (64, 64)}
    budget = args.budget_gb * 1e9 if args.budget_gb else (None if args.gpu else 20e9)
    limit = 60.0 if args.smoke else args.time_limit
    attempts, longest = {}, {}
    for name, (seq_len, stop) in ranges.items():
        attempts[name] = []
        while seq_len <= stop:
            h.log(f"{name}: T={seq_len:,}")
            attempts[name].append(
                result := run_attempt(name, seq_len, budget, limit, args.smoke, args.gpu)
            )  # noqa: E501
            h.log(f"  {'ok' if result['ok'] else result['why']}, {result['wall_s']:.1f} s")
            if not result["ok"]:
                break
            seq_len *= 2
        ok = [a for a in attempts[name] if a["ok"]]
        failed = [a for a in attempts[name] if not a["ok"]]
        longest[name] = {"seq_len": ok[-1]["seq_len"] if ok else None,
                         "peak_bytes": ok[-1]["peak_bytes"] if ok else None,
                         "stopped_by": failed[0]["why"] if failed else "reached the largest T tried"}  # fmt: skip  # noqa: E501
    return {"budget_bytes": budget, "attempt_time_limit_s": limit, "ranges": ranges,
            "attempts": attempts, "longest": longest, "gpu": args.gpu,
            "device": "cuda" if args.gpu and torch.cuda.is_available() else "cpu"}  # fmt: skip


if __name__ == "__main__":  # one attempt, in the child: NAME T [--smoke] [--gpu]
    name, seq_len = sys.argv[1], int(sys.argv[2])
    print(json.dumps(attempt(name, seq_len, "--smoke" in sys.argv, "--gpu" in sys.argv)))
