"""CPU diagnostics behind the issue-6 explanations: where a training step's time goes, how fast
the model's own matmul shapes run, what the allocator costs, and two changes measured and not
adopted (in-place ReLU, MKL's packed GEMM for batch-8 decoding).

    python -m benchmarks.diagnostics          # ~3 minutes on the 2-core CPU machine
    python -m benchmarks.diagnostics --smoke  # tiny sizes, seconds; leaves the doc alone

All on the equal-parameter MEGABYTE of `benchmarks.core` (T = 8192, batch 1, fp32, the chunked
loss of training). The allocator part changes glibc's `mallopt` thresholds for the rest of the
process, so it runs last.
"""

from __future__ import annotations

import argparse
import ctypes
import ctypes.util
import resource
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from benchmarks.common import (
    EQUAL_MEGABYTE,
    SMOKE_MEGABYTE,
    common_args,
    describe_machine,
    finish,
    header,
    log,
    markdown_table,
    matmul_flops,
    si,
    threads,
    utc_now,
)
from multibyte.loss import cross_entropy_sum
from multibyte.model import Megabyte, MegabyteConfig
from multibyte.model import blocks as model_blocks

NAME = "diagnostics"
COMMAND = "python -m benchmarks.diagnostics"

# Self CPU time of these profiler events is grouped; everything else is "other".
CATEGORIES = {
    "matmul": ("aten::mm", "aten::addmm", "aten::bmm"),
    "attention": ("aten::_scaled_dot_product_flash_attention_for_cpu",
                  "aten::_scaled_dot_product_flash_attention_for_cpu_backward"),
    "activation": ("aten::clamp_min", "aten::threshold_backward", "aten::relu", "aten::relu_"),
    "layer norm": ("aten::native_layer_norm", "aten::native_layer_norm_backward"),
}  # fmt: skip


@dataclass(frozen=True)
class Sizes:
    seq_len: int
    steps: int
    """Measured training steps per variant (after one warm-up)."""
    matmul_size: int
    decode_batch: int
    megabyte: dict


FULL = Sizes(seq_len=8192, steps=3, matmul_size=2048, decode_batch=8, megabyte=EQUAL_MEGABYTE)
SMOKE = Sizes(seq_len=64, steps=1, matmul_size=128, decode_batch=2, megabyte=SMOKE_MEGABYTE)


def build(sizes: Sizes) -> Megabyte:
    torch.manual_seed(0)
    return Megabyte(MegabyteConfig(max_seq_len=sizes.seq_len, **sizes.megabyte))


def _step(model: Megabyte, x: torch.Tensor) -> None:
    cross_entropy_sum(model.hidden(x), model.head, x).backward()
    model.zero_grad(set_to_none=True)


def _per_step(model: Megabyte, x: torch.Tensor, steps: int) -> dict:
    """Median step seconds, minor page faults and kernel CPU seconds per step."""
    _step(model, x)
    before = resource.getrusage(resource.RUSAGE_SELF)
    seconds = []
    for _ in range(steps):
        start = time.perf_counter()
        _step(model, x)
        seconds.append(time.perf_counter() - start)
    after = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "step_s": statistics.median(seconds),
        "minor_faults": (after.ru_minflt - before.ru_minflt) / steps,
        "system_s": (after.ru_stime - before.ru_stime) / steps,
        "user_s": (after.ru_utime - before.ru_utime) / steps,
    }


def step_profile(model: Megabyte, x: torch.Tensor) -> dict:
    """Share of a training step's self CPU time by operator category (profiler, one step)."""
    from torch.profiler import profile

    _step(model, x)
    with profile() as prof:
        _step(model, x)
    totals = {name: 0.0 for name in (*CATEGORIES, "other")}
    for event in prof.key_averages():
        name = next((c for c, keys in CATEGORIES.items() if event.key in keys), "other")
        totals[name] += event.self_cpu_time_total
    whole = sum(totals.values())
    return {name: value / whole for name, value in totals.items()}


def matmul_shapes(model: Megabyte, seq_len: int, size: int) -> dict:
    """fp32 FLOP/s of each distinct forward linear shape of the model at T = seq_len (rows x in
    x out), against a size² matmul in the same run."""
    rows = {0: seq_len // model.config.patch_size, 1: seq_len}
    shapes = set()
    for s, stage in enumerate(model.stages):
        for layer in stage.transformer.modules():
            if isinstance(layer, nn.Linear):
                shapes.add((rows[min(s, 1)], layer.in_features, layer.out_features))
    rates = {}
    for m, k, n in sorted(shapes):
        a, b = torch.randn(m, k), torch.randn(k, n)
        best = min(_timed(partial(torch.matmul, a, b)) for _ in range(5))
        rates[f"{m}x{k}x{n}"] = 2 * m * k * n / best
    return {"square": matmul_flops(size)["flops_per_s"], "shapes": rates}


def _timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def relu_in_place(model: Megabyte, x: torch.Tensor, steps: int) -> dict:
    """The MLP's ReLU out of place (as shipped) against in place, same process, twice."""
    mlps = [m for m in model.modules() if isinstance(m, model_blocks.MLP)]
    result: dict[str, list] = {"out_of_place": [], "in_place": []}
    for _ in range(2):
        for name, fn in (("out_of_place", F.relu), ("in_place", F.relu_)):
            for mlp in mlps:
                mlp.activation = fn
            result[name].append(_per_step(model, x, steps))
    for mlp in mlps:
        mlp.activation = model_blocks.ACTIVATIONS[model.config.activation]
    return result


def packed_linear(model: Megabyte, batch: int, repeats: int = 7) -> dict | None:
    """Weight read rate of the model's linear layers at `batch` rows: `F.linear` against MKL's
    packed GEMM (`torch.ops.mkl._mkl_linear`, what inductor's CPU freezing uses), one thread."""
    if not hasattr(torch.ops.mkl, "_mkl_linear"):
        return None
    layers = [m for m in model.modules() if isinstance(m, nn.Linear)]
    total = sum(layer.weight.numel() * layer.weight.element_size() for layer in layers)
    inputs = [torch.randn(batch, layer.in_features) for layer in layers]
    with torch.inference_mode(), threads(1):
        packed = [torch.ops.mkl._mkl_reorder_linear_weight(m.weight, batch) for m in layers]

        def plain() -> None:
            for layer, x in zip(layers, inputs):
                F.linear(x, layer.weight, layer.bias)

        def mkl() -> None:
            for layer, x, w in zip(layers, inputs, packed):
                torch.ops.mkl._mkl_linear(x, w, layer.weight, layer.bias, batch)

        best = {"linear": float("inf"), "mkl_packed": float("inf")}
        for _ in range(repeats):  # interleaved
            best["linear"] = min(best["linear"], _timed(plain))
            best["mkl_packed"] = min(best["mkl_packed"], _timed(mkl))
    rates = {name: total / seconds for name, seconds in best.items()}
    return {"batch": batch, "bytes_per_s": rates, "speedup": best["linear"] / best["mkl_packed"]}


def allocator(model: Megabyte, x: torch.Tensor, steps: int) -> dict | None:
    """Page faults and kernel time per step with glibc's default thresholds, then with
    M_MMAP_THRESHOLD 32 MiB, M_TRIM_THRESHOLD 1 GiB, M_TOP_PAD 64 MiB (set through mallopt)."""
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    if libc is None or not hasattr(libc, "mallopt"):
        return None
    default = _per_step(model, x, steps)
    settings = {-3: 32 << 20, -1: 1 << 30, -2: 64 << 20}  # M_MMAP_THRESHOLD, M_TRIM, M_TOP_PAD
    if not all(libc.mallopt(option, value) == 1 for option, value in settings.items()):
        return None
    return {"default": default, "raised_thresholds": _per_step(model, x, steps)}


def run(sizes: Sizes) -> dict:
    machine = describe_machine()
    model = build(sizes)
    x = torch.randint(0, 256, (1, sizes.seq_len), generator=torch.Generator().manual_seed(1))
    log("training-step profile")
    profile_shares = step_profile(model, x)
    log("matmul shapes")
    shapes = matmul_shapes(model, sizes.seq_len, sizes.matmul_size)
    log("ReLU in place against out of place")
    relu = relu_in_place(model, x, sizes.steps)
    log(f"batch-{sizes.decode_batch} linear layers: F.linear against MKL packed GEMM")
    packed = packed_linear(model, sizes.decode_batch)
    log("allocator thresholds (last: they stay set)")
    alloc = allocator(model, x, sizes.steps)
    return {
        "benchmark": NAME,
        "command": COMMAND,
        "date": utc_now(),
        "machine": machine,
        "threads": torch.get_num_threads(),
        "seq_len": sizes.seq_len,
        "megabyte": dict(sizes.megabyte),
        "step_profile_shares": profile_shares,
        "matmul_shapes": shapes,
        "relu": relu,
        "packed_linear": packed,
        "allocator": alloc,
    }


def _faults(entry: dict) -> str:
    cpu = entry["system_s"] + entry["user_s"] or float("inf")  # a smoke step may read 0
    return (
        f"{entry['minor_faults']:,.0f} minor faults, {entry['system_s']:.2f} s kernel time "
        f"({100 * entry['system_s'] / cpu:.0f}% of CPU time), step {entry['step_s']:.2f} s"
    )


def render(results: dict) -> str:
    t = results["seq_len"]
    out = [
        header(results["machine"], results["command"], f"Threads: {results['threads']}."),
        f"MEGABYTE of `benchmarks.core`, T={t:,}, batch 1, fp32, forward + backward of the "
        "chunked loss.",
        "",
        "**Where a training step's time goes** (profiler, self CPU time of one step): "
        + ", ".join(f"{k} {100 * v:.0f}%" for k, v in results["step_profile_shares"].items())
        + ".",
        "",
    ]
    shapes = results["matmul_shapes"]
    out.append(
        markdown_table(
            ["matmul (rows x in x out)", "fp32 FLOP/s", "of the square matmul"],
            [
                [shape, si(rate, "FLOP/s"), f"{100 * rate / shapes['square']:.0f}%"]
                for shape, rate in shapes["shapes"].items()
            ],
        )
    )
    out += [
        "",
        f"Square matmul in the same run: {si(shapes['square'], 'FLOP/s')}.",
        "",
        "**ReLU in place** (A/B, twice): "
        + "; ".join(
            f"{name.replace('_', ' ')}: " + " / ".join(_faults(e) for e in entries)
            for name, entries in results["relu"].items()
        )
        + ".",
    ]
    packed = results["packed_linear"]
    if packed:
        rates = packed["bytes_per_s"]
        out += [
            "",
            f"**Batch-{packed['batch']} linear layers** (all of the model's, one thread, "
            f"interleaved, best of 7): `F.linear` {si(rates['linear'], 'B/s')} of weights, MKL "
            f"packed GEMM {si(rates['mkl_packed'], 'B/s')}: **{packed['speedup']:.2f}×**.",
        ]
    alloc = results["allocator"]
    if alloc:
        out += [
            "",
            f"**Allocator**: glibc defaults: {_faults(alloc['default'])}; raised mmap/trim "
            f"thresholds: {_faults(alloc['raised_thresholds'])}.",
        ]
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common_args(parser)
    args = parser.parse_args(argv)
    results = run(SMOKE if args.smoke else FULL)
    finish(NAME, results, render, args)
    return results


if __name__ == "__main__":
    main()
