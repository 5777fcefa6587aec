"""cpu_bf16: bf16 mixed precision on this CPU. The tiny recipes' training step (each model as its
recipe builds it, eager, at its batch and length) in float32 and under bf16 autocast, as
Lightning's `precision: bf16-mixed` runs it, interleaved; megabyte-pytorch's too where it is
installed (the quality benchmark's peer). Then attention forward + backward on rows of L keys
(24,576 positions in all): the fused SDPA kernel in bf16 and in float32, and the written-out
form that `multibyte.model.attention.attend` takes for bf16 rows of at most
WRITTEN_OUT_MAX_KEYS keys on a CPU. And the matmul ceilings in both dtypes.
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import torch
import torch.nn.functional as F
import yaml

from benchmarks import harness as h
from benchmarks import peer
from multibyte.model import MegabyteConfig
from multibyte.model.attention import WRITTEN_OUT_MAX_KEYS, written_out_attention

RECIPES = ("imagenet64-tiny", "audio-tiny", "pg19-tiny")
PEER_RECIPES = ("imagenet64-tiny", "pg19-tiny")  # the quality benchmark's peer runs
FULL = dict(repeats=5, lengths=(8, 16, 32, 64, 128, 256, 512, 1024), positions=24576,
            attention_repeats=3, matmul=1024)  # fmt: skip
SMOKE = dict(repeats=2, lengths=(8, 32), positions=256, attention_repeats=1, matmul=128)
SMOKE_MODEL = dict(patch_size=4, global_dim=32, global_layers=1, global_heads=2, local_dim=16,
                   local_layers=1, local_heads=2, max_seq_len=64)  # fmt: skip
HEADS, HEAD_DIM = 4, 64  # the tiny recipes' attention (4 heads of 64)


def recipe_model(name: str, smoke: bool) -> tuple[MegabyteConfig, int, int]:
    """The recipe's MEGABYTE config, batch size and training length (data.seq_len, else the
    modality's seq_len, else the model's max_seq_len, which the image adapter fills)."""
    text = yaml.safe_load((h.REPO / "recipes" / f"{name}.yaml").read_text())
    config = MegabyteConfig(**text["model"]["model"]["init_args"]["config"])
    data = text["data"]
    modality = data.get("modality") if isinstance(data.get("modality"), dict) else {}
    length = data.get("seq_len") or modality.get("seq_len") or config.max_seq_len
    batch = data["batch_size"]
    if smoke:
        return replace(config, **SMOKE_MODEL), 1, SMOKE_MODEL["max_seq_len"]
    return config, batch, length


def step_rows(sizes: dict, smoke: bool) -> dict[str, dict]:
    """s/step of each recipe's model (and the peer's) in float32 and bf16, interleaved."""
    rows = {}
    for name in RECIPES:
        config, batch, length = recipe_model(name, smoke)
        models = {"multibyte": h.build_pair(config, only=("megabyte",))["megabyte"]}
        if peer.installed() and name in PEER_RECIPES:
            torch.manual_seed(0)
            models["megabyte-pytorch"] = peer.PeerMegabyte(config, heads=2 if smoke else HEADS)
        x = h.random_bytes(batch, length, seed=1)
        h.log(f"{name}: batch {batch} x {length} bytes, {', '.join(models)}")
        steps = {}
        for label, model in models.items():
            for dtype in ("float32", "bf16"):
                autocast = torch.bfloat16 if dtype == "bf16" else None
                steps[f"{label}/{dtype}"] = h.training_step(model, x, autocast)
        timings = h.measure(steps, sizes["repeats"], warmup=1)
        rows[name] = {"batch": batch, "length": length, "models": {}}
        for label in models:
            fp32, bf16 = timings[f"{label}/float32"], timings[f"{label}/bf16"]
            rows[name]["models"][label] = {
                "float32": fp32.to_dict(), "bf16": bf16.to_dict(),
                "speedup": fp32.median / bf16.median,
            }  # fmt: skip
    return rows


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

        timings = h.measure({n: timed(f) for n, f in kernels.items()}, sizes["attention_repeats"])
        rows[str(length)] = {"rows": count, **{n: t.median * 1e3 for n, t in timings.items()}}
    return rows


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--train-threads", type=int, help="torch threads (default: torch's)")


def render(r: dict) -> str:
    units = ", ".join(f"{k} {'yes' if v else 'no'}" for k, v in r["bf16_units"].items())
    fp32, bf16 = (r["ceilings"][d]["flops_per_s"] for d in ("float32", "bfloat16"))
    size = r["ceilings"]["float32"]["size"]
    ceilings = f"float32 {h.si(fp32, 'FLOP/s')}, bf16 {h.si(bf16, 'FLOP/s')} ({bf16 / fp32:.1f}×)"
    out = [f"Threads: {r['threads']}. bf16 units: {units}. {size}² matmul: {ceilings}."]
    table = []
    for name, row in r["steps"].items():
        for label, m in row["models"].items():
            table.append([f"`{name}`", label, f"{row['batch']} × {row['length']:,}",
                          f"{m['float32']['median_s']:.3f}", f"{m['bf16']['median_s']:.3f}",
                          f"**{m['speedup']:.2f}×**"])  # fmt: skip
    peer_note = (
        f"megabyte-pytorch {r['peer']} sized by the recipe, {HEADS} heads of 64"
        if r["peer"]
        else "megabyte-pytorch not installed: our rows only"
    )
    out.append(f"The {h.STEP}, eager, median s/step of {r['sizes']['repeats']} interleaved "
               f"steps; bf16 = `torch.autocast('cpu', torch.bfloat16)`, as `precision: "
               f"bf16-mixed` runs it (float32 weights). {peer_note}.")  # fmt: skip
    out.append(h.markdown_table(["recipe", "model", "batch × bytes", "float32 s", "bf16 s",
                                 "float32 ÷ bf16"], table))  # fmt: skip
    table = [
        [length, f"{a['rows']:,}", f"{a['fused_bf16']:.1f}", f"{a['fused_float32']:.1f}",
         f"{a['written_out']:.1f}"]
        for length, a in r["attention"].items()
    ]  # fmt: skip
    out.append(
        f"Causal attention, forward + backward, {HEADS} heads of {HEAD_DIM}, bf16 inputs, "
        f"median ms; `attend` writes it out for rows of at most {r['written_out_max_keys']} "
        "keys on a CPU and keeps the fused kernel beyond."
    )
    out.append(h.markdown_table(["keys per row", "rows", "fused bf16", "fused float32",
                                 "written out"], table))  # fmt: skip
    return "\n\n".join(out)


@h.case("cpu_bf16", render, options)
def run(args: argparse.Namespace) -> dict:
    sizes = SMOKE if args.smoke else FULL
    with h.threads(args.train_threads) as used:
        ceilings = {str(dtype).removeprefix("torch."): h.matmul_flops(sizes["matmul"], dtype)
                    for dtype in (torch.float32, torch.bfloat16)}  # fmt: skip
        steps = step_rows(sizes, args.smoke)
        attention = attention_rows(sizes)
    units = {"avx512_bf16": torch.cpu._is_avx512_bf16_supported(),
             "amx": torch.cpu._is_amx_tile_supported()}  # fmt: skip
    return {"threads": used, "sizes": sizes, "bf16_units": units, "ceilings": ceilings,
            "steps": steps, "attention": attention, "written_out_max_keys": WRITTEN_OUT_MAX_KEYS,
            "peer": peer.VERSION if peer.installed() else None}  # fmt: skip
