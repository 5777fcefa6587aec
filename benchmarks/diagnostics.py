"""diagnostics: the CPU figures behind the issue-6 explanations, on the equal-parameter MEGABYTE
at T = 8192 (batch 1, fp32, the training step): where a step's time goes (profiler), how fast
the model's own matmul shapes run against the square matmul, and single-process A/Bs of the
MLP's ReLU in place, of MKL's packed GEMM against `F.linear` for batch-8 decoding, and of
glibc's allocator thresholds (set through `mallopt` for the rest of the process, so last).
"""

from __future__ import annotations

import argparse
import ctypes
import resource
from functools import partial

import torch
import torch.nn.functional as F

from benchmarks import harness as h
from multibyte.model import blocks

# Self CPU time of these profiler events is grouped; everything else is "other".
CATEGORIES = {
    "matmul": ("aten::mm", "aten::addmm", "aten::bmm"),
    "attention": ("aten::_scaled_dot_product_flash_attention_for_cpu",
                  "aten::_scaled_dot_product_flash_attention_for_cpu_backward"),
    "activation": ("aten::clamp_min", "aten::threshold_backward", "aten::relu", "aten::relu_"),
    "layer norm": ("aten::native_layer_norm", "aten::native_layer_norm_backward"),
}  # fmt: skip
FULL = dict(seq_len=8192, steps=3, matmul=2048, decode_batch=8)
SMOKE = dict(seq_len=64, steps=1, matmul=128, decode_batch=2)


def per_step(step, steps: int) -> dict:
    """Median step seconds, and minor page faults and kernel/user CPU seconds per step."""
    step()  # warm-up
    before = resource.getrusage(resource.RUSAGE_SELF)
    timing = h.measure(step, repeats=steps, warmup=0)
    after = resource.getrusage(resource.RUSAGE_SELF)
    return {"step_s": timing.median, "minor_faults": (after.ru_minflt - before.ru_minflt) / steps,
            "system_s": (after.ru_stime - before.ru_stime) / steps,
            "user_s": (after.ru_utime - before.ru_utime) / steps}  # fmt: skip


def step_profile(step) -> dict:
    """Share of one training step's self CPU time by operator category (profiler)."""
    from torch.profiler import profile

    with profile() as prof:
        step()
    totals = dict.fromkeys([*CATEGORIES, "other"], 0.0)
    for event in prof.key_averages():
        name = next((c for c, keys in CATEGORIES.items() if event.key in keys), "other")
        totals[name] += event.self_cpu_time_total
    return {name: value / sum(totals.values()) for name, value in totals.items()}


def matmul_shapes(model, seq_len: int, size: int) -> dict:
    """fp32 FLOP/s of each linear shape of the model's transformers at T = seq_len (rows = T /
    bytes per token of the stage), best of 5, and of a square matmul in the same run."""
    stages = h.megabyte_stages(model)
    shapes = sorted({(seq_len // stage["token_bytes"], layer.in_features, layer.out_features)
                     for stage in stages for layer in stage["transformer"]})  # fmt: skip
    rates = {}
    for m, k, n in shapes:
        a, b = torch.randn(m, k), torch.randn(k, n)
        rates[f"{m}x{k}x{n}"] = 2 * m * k * n / h.measure(partial(torch.matmul, a, b), 5).best
    return {"square": h.matmul_flops(size)["flops_per_s"], "shapes": rates}


def relu_in_place(model, step, steps: int) -> dict:
    """The MLP's ReLU out of place (as shipped) against in place, in this process, twice."""
    mlps = [m for m in model.modules() if isinstance(m, blocks.MLP)]
    result: dict[str, list] = {"out_of_place": [], "in_place": []}
    for _ in range(2):
        for name, fn in (("out_of_place", F.relu), ("in_place", F.relu_)):
            for mlp in mlps:
                mlp.activation = fn
            result[name].append(per_step(step, steps))
    for mlp in mlps:
        mlp.activation = blocks.ACTIVATIONS[model.config.activation]
    return result


@torch.inference_mode()
def packed_linear(model, batch: int) -> dict | None:
    """Weight read rate of all the linear layers at `batch` rows, one thread, best of 7: `F.linear`
    against MKL's packed GEMM (`torch.ops.mkl._mkl_linear`, as inductor's CPU freezing)."""
    if not hasattr(torch.ops.mkl, "_mkl_linear"):
        return None
    layers = h.linears(model)
    total = sum(layer.weight.numel() * layer.weight.element_size() for layer in layers)
    inputs = [torch.randn(batch, layer.in_features) for layer in layers]
    with h.threads(1):
        packed = [torch.ops.mkl._mkl_reorder_linear_weight(m.weight, batch) for m in layers]
        plain = lambda: [F.linear(x, m.weight, m.bias) for m, x in zip(layers, inputs)]  # noqa: E731
        mkl = lambda: [torch.ops.mkl._mkl_linear(x, w, m.weight, m.bias, batch)  # noqa: E731
                       for m, x, w in zip(layers, inputs, packed)]  # fmt: skip
        timings = h.measure({"linear": plain, "mkl_packed": mkl}, repeats=7, warmup=1)
    return {"batch": batch, "bytes_per_s": {k: total / t.best for k, t in timings.items()},
            "speedup": timings["linear"].best / timings["mkl_packed"].best}  # fmt: skip


def allocator(step, steps: int) -> dict | None:
    """Faults and kernel time per step with glibc's default thresholds, then with
    M_MMAP_THRESHOLD 32 MiB, M_TRIM_THRESHOLD 1 GiB, M_TOP_PAD 64 MiB."""
    mallopt = getattr(ctypes.CDLL(None), "mallopt", None)
    if mallopt is None:  # not glibc
        return None
    default = per_step(step, steps)
    settings = {-3: 32 << 20, -1: 1 << 30, -2: 64 << 20}  # M_MMAP_THRESHOLD, M_TRIM, M_TOP_PAD
    if not all(mallopt(option, value) == 1 for option, value in settings.items()):
        return None
    return {"default": default, "raised_thresholds": per_step(step, steps)}


def _faults(e: dict) -> str:
    cpu = e["system_s"] + e["user_s"] or float("inf")  # a smoke step may read 0
    return (f"{e['minor_faults']:,.0f} minor faults, {e['system_s']:.2f} s kernel time "
            f"({100 * e['system_s'] / cpu:.0f}% of CPU time), step {e['step_s']:.2f} s"
            )  # fmt: skip


def render(r: dict) -> str:
    shapes, packed, alloc = r["matmul_shapes"], r["packed_linear"], r["allocator"]
    table = [[shape, h.si(rate, "FLOP/s"), f"{100 * rate / shapes['square']:.0f}%"]
             for shape, rate in shapes["shapes"].items()]  # fmt: skip
    out = [
        f"Threads: {r['threads']}. The equal-parameter MEGABYTE, T={r['seq_len']:,}, batch 1, "
        f"fp32, the {h.STEP}.",
        "**Where a training step's time goes** (profiler, self CPU time of one step): "
        + ", ".join(f"{k} {100 * v:.0f}%" for k, v in r["step_profile_shares"].items()) + ".",
        h.markdown_table(["matmul (rows x in x out)", "fp32 FLOP/s", "of the square matmul"],
                         table),
        f"Square matmul in the same run: {h.si(shapes['square'], 'FLOP/s')}.",
        "**ReLU in place** (A/B, twice): " + "; ".join(
            f"{name.replace('_', ' ')}: " + " / ".join(_faults(e) for e in entries)
            for name, entries in r["relu"].items()) + ".",
    ]  # fmt: skip
    if packed:
        rates = packed["bytes_per_s"]
        out.append(f"**Batch-{packed['batch']} linear layers** (all of the model's, one thread, "
                   f"interleaved, best of 7): `F.linear` {h.si(rates['linear'], 'B/s')} of "
                   f"weights, MKL packed GEMM {h.si(rates['mkl_packed'], 'B/s')}: "
                   f"**{packed['speedup']:.2f}×**.")  # fmt: skip
    if alloc:
        out.append(f"**Allocator**: glibc defaults: {_faults(alloc['default'])}; raised "
                   f"mmap/trim thresholds: {_faults(alloc['raised_thresholds'])}.")  # fmt: skip
    return "\n\n".join(out)


@h.case("diagnostics", render)
def run(args: argparse.Namespace) -> dict:
    s = SMOKE if args.smoke else FULL
    model = h.equal_pair(s["seq_len"], args.smoke)["megabyte"]
    step = h.training_step(model, h.random_bytes(1, s["seq_len"], seed=1))
    step()  # warm-up: the optimizer's state, the allocator's first pages
    h.log("training-step profile, matmul shapes")
    shares, shapes = step_profile(step), matmul_shapes(model, s["seq_len"], s["matmul"])
    h.log("ReLU A/B, packed GEMM, allocator (last: its settings stay)")
    relu, packed = relu_in_place(model, step, s["steps"]), packed_linear(model, s["decode_batch"])
    return {"threads": torch.get_num_threads(), "seq_len": s["seq_len"],
            "megabyte": model.config.to_dict(), "step_profile_shares": shares,
            "matmul_shapes": shapes, "relu": relu, "packed_linear": packed,
            "allocator": allocator(step, s["steps"])}  # fmt: skip
