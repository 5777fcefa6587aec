"""cpu_bf16: what bf16 gives on this CPU below the training step (fit_precision times that):
the matmul ceilings in float32 and bf16, and causal attention forward + backward on rows of L
keys (24,576 positions in all) by the fused SDPA kernel in bf16 and float32 and by the
written-out form `multibyte.model.attention.attend` takes for bf16 rows of at most
WRITTEN_OUT_MAX_KEYS keys on a CPU (the threshold this table sets)."""

from __future__ import annotations

import argparse

import torch
import torch.nn.functional as F

from benchmarks import harness as h
from multibyte.model.attention import WRITTEN_OUT_MAX_KEYS, written_out_attention

LENGTHS = (8, 16, 32, 64, 128, 256, 512, 1024)
FULL = dict(repeats=3, lengths=LENGTHS, positions=24576, matmul=1024)
SMOKE = dict(repeats=1, lengths=(8, 32), positions=256, matmul=128)
DTYPES = ("float32", "bfloat16")
HEADS, HEAD_DIM = 4, 64  # the tiny recipes' attention (4 heads of 64)


def fused(dtype: torch.dtype):
    def attention(q, k, v):
        y = F.scaled_dot_product_attention(q.to(dtype), k.to(dtype), v.to(dtype), is_causal=True)
        return y.to(q.dtype)

    return attention


def attention_rows(sizes: dict) -> dict[str, dict]:
    """ms of forward + backward of causal attention on bf16 inputs, per kernel and row length."""
    kernels = {
        "fused_bf16": fused(torch.bfloat16),
        "fused_float32": fused(torch.float32),
        "written_out": lambda q, k, v: written_out_attention(q, k, v, is_causal=True),
    }
    rows = {}
    for length in sizes["lengths"]:
        count = max(1, sizes["positions"] // length)
        shape = (count, HEADS, length, HEAD_DIM)
        q, k, v = (torch.randn(shape, dtype=torch.bfloat16, requires_grad=True) for _ in range(3))

        def timed(kernel, q=q, k=k, v=v):
            return lambda: kernel(q, k, v).float().sum().backward()

        timings = h.measure({n: timed(f) for n, f in kernels.items()}, sizes["repeats"])
        rows[str(length)] = {"rows": count, **{n: t.median * 1e3 for n, t in timings.items()}}
    return rows


def render(r: dict) -> str:
    fp32, bf16 = (r["ceilings"][d]["flops_per_s"] for d in DTYPES)
    ceilings = f"float32 {h.si(fp32, 'FLOP/s')}, bf16 {h.si(bf16, 'FLOP/s')} ({bf16 / fp32:.1f}×)"
    attention = [
        [length, f"{a['rows']:,}"]
        + [f"{a[k]:.1f}" for k in ("fused_bf16", "fused_float32", "written_out")]
        for length, a in r["attention"].items()
    ]
    headers = ["keys per row", "rows", "fused bf16", "fused float32", "written out"]
    return (
        f"Threads: {r['threads']}. bf16 units: {'yes' if r['bf16_units'] else 'no'}. "
        f"{r['ceilings']['float32']['size']}² matmul: {ceilings}.\n\n"
        f"Causal attention, forward + backward, {HEADS} heads of {HEAD_DIM}, bf16 inputs, "
        f"median ms; `attend` writes it out for rows of at most {r['written_out_max_keys']} "
        "keys on a CPU and keeps the fused kernel beyond.\n\n"
        + h.markdown_table(headers, attention)
    )


@h.case("cpu_bf16", render)
def run(args: argparse.Namespace) -> dict:
    from multibyte.train.precision import cpu_has_bf16_units  # Lightning: when the case runs

    sizes = SMOKE if args.smoke else FULL
    ceilings = {d: h.matmul_flops(sizes["matmul"], getattr(torch, d)) for d in DTYPES}
    attention = attention_rows(sizes)
    found = {
        "threads": torch.get_num_threads(),
        "sizes": sizes,
        "ceilings": ceilings,
        "attention": attention,
    }
    return found | {
        "bf16_units": cpu_has_bf16_units(),
        "written_out_max_keys": WRITTEN_OUT_MAX_KEYS,
    }
