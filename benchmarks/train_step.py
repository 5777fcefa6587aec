"""train_step: bytes/s, model FLOP/s and peak memory of the training step, MEGABYTE against the
equal-parameter ByteTransformer at T = 1K, 8K, 64K (batch 1, fp32, interleaved; the baseline up
to 8K), against the fp32 matmul and mat-vec of the same run. `--gpu`: the imagenet64-small
recipe model (bf16, compiled as the recipe says) against a matched ByteTransformer, and MFU.
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import torch

from benchmarks import harness as h
from multibyte.flops import flops_per_byte
from multibyte.model.blocks import compile_blocks

FULL = dict(seq_lens=(1024, 8192, 65536), repeats=(7, 3), baseline_max_len=8192, matmul=2048)
SMOKE = dict(seq_lens=(32, 64), repeats=(2, 2), baseline_max_len=32, matmul=128)
GPU_SMOKE = dict(global_dim=48, global_layers=1, global_heads=2, local_dim=24, local_layers=1)
H100_BF16_PEAK = 989e12  # dense bf16 FLOP/s of an H100 SXM (and H200): the MFU denominator


def train_rows(models: dict, x: torch.Tensor, repeats: dict, ceiling: float, autocast=None) -> dict:
    """The training step of each model on the same bytes `x`, interleaved (one warm-up step, one
    for peak memory, then `repeats` timed); bytes/s and model FLOP/s at the median."""
    steps = {name: h.training_step(models[name], x, autocast) for name in repeats}
    timings = h.measure(steps, repeats, warmup=1, memory=x.device.type)
    rows = {}
    for name, timing in timings.items():
        rate, flops = x.numel() / timing.median, flops_per_byte(models[name].config, x.shape[1])
        rows[name] = {"bytes_per_s": rate, "step": timing.to_dict(), "memory": timing.memory}
        rows[name] |= {"train_flops_per_byte": flops.train, "model_flops_per_s": flops.train * rate}
        rows[name]["fraction_of_ceiling"] = flops.train * rate / ceiling
    return rows


def run_cpu(smoke: bool) -> dict:
    sizes = SMOKE if smoke else FULL
    models = h.equal_pair(max(sizes["seq_lens"]), smoke)
    ceiling = h.matmul_flops(sizes["matmul"])["flops_per_s"]
    matvec, rows = h.matvec_bandwidth(4 * sizes["matmul"]), {}
    for seq_len in sizes["seq_lens"]:
        counts = {
            n: r if seq_len <= 8192 else max(2, r // 2) for n, r in zip(h.PAIR, sizes["repeats"])
        }
        if seq_len > sizes["baseline_max_len"]:
            del counts["byte_transformer"]
        h.log(f"T={seq_len}: {', '.join(counts)}")
        rows[str(seq_len)] = train_rows(models, h.random_bytes(1, seq_len, seed=1), counts, ceiling)
    what = f"fp32 {sizes['matmul']}² `torch.matmul`"
    ceiling = {"flops_per_s": ceiling, "what": what, "matvec_bytes_per_s": matvec}
    found = {"device": "cpu", "threads": torch.get_num_threads(), "batch": 1, "ceiling": ceiling}
    return found | {"train": rows}


def run_gpu(smoke: bool) -> dict:
    """The imagenet64-small recipe model on CUDA (with `smoke`: tiny, and on the CPU where
    there is no CUDA, so that gpu.sh's Python is tested here)."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    spec = h.recipe("imagenet64-small")
    config, batch = spec["config"], spec["batch_size"]
    if smoke:
        config, batch = replace(config, **GPU_SMOKE, local_heads=2, max_seq_len=96), 2
    models = {name: model.to(device) for name, model in h.build_pair(config).items()}
    compiled = spec["compile"] and device == "cuda"
    for model in models.values() if compiled else ():
        compile_blocks(model)
    autocast, seq_len = (torch.bfloat16 if device == "cuda" else None), config.max_seq_len
    h.log(f"{device}: batch {batch}, T={seq_len}, compile={compiled}")
    ceiling = {"flops_per_s": H100_BF16_PEAK, "what": "dense bf16 peak of an H100: MFU"}
    if device != "cuda":
        ceiling = {"flops_per_s": h.matmul_flops(256)["flops_per_s"], "what": "fp32 256² matmul"}
    counts = {"megabyte": 2 if smoke else 10, "byte_transformer": 2 if smoke else 5}
    x = h.random_bytes(batch, seq_len, seed=1, device=device)
    rows = {str(seq_len): train_rows(models, x, counts, ceiling["flops_per_s"], autocast)}
    found = {"device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu (smoke)"}
    found |= {"dtype": "bfloat16 autocast" if autocast else "float32", "compile": compiled}
    found |= {"batch": batch, "ceiling": ceiling, "train": rows}
    return found


def render(r: dict) -> str:
    c, cpu = r["ceiling"], r["device"] == "cpu"
    where = f"Threads: {r['threads']}" if cpu else f"{r['device']}, {r['dtype']}"
    out = [f"{where}. Ceiling ({c['what']}): {h.si(c['flops_per_s'], 'FLOP/s')}."]
    if cpu:
        out[0] += f" fp32 mat-vec read bandwidth {h.si(c['matvec_bytes_per_s'], 'B/s')}."
    out.append(
        f"The {h.STEP}, batch {r['batch']}; median step; peak memory over one step (and its "
        "growth over the size before it)."
    )
    table, ratios = [], []
    for key, per_len in r["train"].items():
        for name, t in per_len.items():
            step, memory = t["step"], {k: v / 2**20 for k, v in t["memory"].items() if "bytes" in k}
            table.append(
                [key, h.LABELS[name], f"{t['bytes_per_s']:,.0f}"]
                + [f"{step['median_s']:.3g} ({step['best_s']:.3g}–{step['max_s']:.3g})"]
                + [h.si(t["train_flops_per_byte"], "FLOP"), h.si(t["model_flops_per_s"], "FLOP/s")]
                + [f"{100 * t['fraction_of_ceiling']:.0f}%"]
                + [f"{memory['peak_bytes']:,.0f} (+{memory['growth_bytes']:,.0f})"]
            )
        if len(per_len) == 2:
            ratio = per_len["megabyte"]["bytes_per_s"] / per_len["byte_transformer"]["bytes_per_s"]
            ratios.append(f"T={key}: **{ratio:.1f}×**")
    headers = ["T", "model", "bytes/s", "step s (min–max)", "train FLOP/byte", "model FLOP/s"]
    headers += ["of matmul" if cpu else "of peak", "peak MiB (+step)"]
    out.append(h.markdown_table(headers, table))
    out.append(f"MEGABYTE ÷ ByteTransformer bytes/s: {', '.join(ratios)}.")
    return "\n\n".join(out)


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--gpu", action="store_true", help="imagenet64-small on CUDA (gpu.sh)")


@h.case("train_step", render, options)
def run(args: argparse.Namespace) -> dict:
    return run_gpu(args.smoke) if args.gpu else run_cpu(args.smoke)
