"""train_step: bytes/s, model FLOP/s and peak memory of the training step, MEGABYTE against the
equal-parameter ByteTransformer at T = 1K, 8K, 64K (batch 1, fp32, interleaved; the baseline
beyond 8K estimated from its FLOPs), against the fp32 matmul and mat-vec of the same run.
`--gpu`: the imagenet64-small recipe model (bf16, compiled as the recipe says) against a matched
ByteTransformer, MFU, and the SDPA kernels one step runs.
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
GPU_SMOKE = dict(
    global_dim=48, global_layers=1, global_heads=2, local_dim=24, local_layers=1, local_heads=2
)
GPU_SMOKE["max_seq_len"] = 96
H100_BF16_PEAK = 989e12  # dense bf16 FLOP/s of an H100 SXM (and H200): the MFU denominator


def train_rows(
    models: dict, seq_len: int, batch: int, repeats: dict, device: str = "cpu", autocast=None
) -> dict[str, dict]:
    """The training step of each model on the same random bytes, interleaved (one warm-up
    step, one for peak memory, then `repeats` timed); bytes/s and model FLOP/s at the median."""
    x = h.random_bytes(batch, seq_len, seed=1, device=device)
    steps = {name: h.training_step(model, x, autocast) for name, model in models.items()}
    timings = h.measure(steps, repeats, warmup=1, memory=device)
    rows = {}
    for name, model in models.items():
        flops = flops_per_byte(model.config, seq_len).train
        rate = batch * seq_len / timings[name].median
        rows[name] = {
            "bytes_per_s": rate,
            "step": timings[name].to_dict(),
            "memory": timings[name].memory,
            "train_flops_per_byte": flops,
            "model_flops_per_s": flops * rate,
        }
    return rows


def add_fractions(rows: dict[str, dict[str, dict]], ceiling: float) -> dict[str, float]:
    """Each row's model FLOP/s over the ceiling; returns MEGABYTE ÷ ByteTransformer bytes/s
    at each T where both were timed."""
    for per_len in rows.values():
        for entry in per_len.values():
            entry["fraction_of_ceiling"] = entry["model_flops_per_s"] / ceiling
    return {
        key: t["megabyte"]["bytes_per_s"] / t["byte_transformer"]["bytes_per_s"]
        for key, t in rows.items()
        if "byte_transformer" in t
    }


def run_cpu(smoke: bool) -> dict:
    sizes = SMOKE if smoke else FULL
    seq_lens, longest = sizes["seq_lens"], sizes["baseline_max_len"]
    models, rows = h.equal_pair(max(seq_lens), smoke), {}
    before, matvec = h.matmul_flops(sizes["matmul"]), h.matvec_bandwidth(4 * sizes["matmul"])
    for seq_len in seq_lens:
        names = [name for name in models if name == "megabyte" or seq_len <= longest]
        h.log(f"T={seq_len}: {', '.join(names)}")
        counts = dict(zip(models, sizes["repeats"]))
        counts = {n: max(2, counts[n] if seq_len <= 8192 else counts[n] // 2) for n in names}
        rows[str(seq_len)] = train_rows({n: models[n] for n in names}, seq_len, 1, counts)
    ceiling = max(before["flops_per_s"], h.matmul_flops(sizes["matmul"])["flops_per_s"])
    rate, estimated = rows[str(longest)]["byte_transformer"]["model_flops_per_s"], {}
    for seq_len in (t for t in seq_lens if t > longest):
        flops = flops_per_byte(models["byte_transformer"].config, seq_len).train
        estimated[str(seq_len)] = {"train_flops_per_byte": flops, "step_s": flops * seq_len / rate}
    return {
        "device": "cpu",
        "threads": torch.get_num_threads(),
        "batch": 1,
        "models": {name: h.describe_model(model) for name, model in models.items()},
        "ceiling": {
            "flops_per_s": ceiling,
            "what": f"fp32 {sizes['matmul']}² `torch.matmul`, best of before/after",
            "matvec_bytes_per_s": matvec,
        },
        "train": rows,
        "baseline_estimated": estimated,
        "ratios_megabyte_vs_transformer": add_fractions(rows, ceiling),
    }


def sdpa_ops(model: torch.nn.Module, x: torch.Tensor, autocast: torch.dtype | None) -> dict:
    """The SDPA kernels one training step runs (profiler op names such as
    `aten::_scaled_dot_product_flash_attention`), with call counts."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if x.is_cuda else [])
    with profile(activities=activities) as prof:
        h.training_step(model, x, autocast)()
        h.sync()
    keys = ("scaled_dot_product", "flash", "fmha")
    return {e.key: e.count for e in prof.key_averages() if any(k in e.key.lower() for k in keys)}


def run_gpu(smoke: bool) -> dict:
    """The imagenet64-small recipe model on CUDA (with `smoke`: tiny, and on the CPU where
    there is no CUDA, so that gpu.sh's Python is tested here)."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    spec = h.recipe("imagenet64-small")
    config, batch = spec["config"], spec["batch_size"]
    if smoke:
        config, batch = replace(config, **GPU_SMOKE), 2
    models = {name: model.to(device) for name, model in h.build_pair(config).items()}
    compiled = spec["compile"] and device == "cuda"
    for model in models.values() if compiled else ():
        compile_blocks(model)
    autocast, seq_len = (torch.bfloat16 if device == "cuda" else None), config.max_seq_len
    h.log(f"{device}: batch {batch}, T={seq_len}, compile={compiled}")
    counts = {"megabyte": 2 if smoke else 10, "byte_transformer": 2 if smoke else 5}
    rows = {str(seq_len): train_rows(models, seq_len, batch, counts, device, autocast)}
    if device == "cuda":
        ceiling = {"flops_per_s": H100_BF16_PEAK, "what": "dense bf16 peak of an H100: MFU"}
    else:
        ceiling = {"flops_per_s": h.matmul_flops(256)["flops_per_s"], "what": "fp32 256² matmul"}
    x = h.random_bytes(1, seq_len, device=device)
    return {
        "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu (smoke)",
        "dtype": "bfloat16 autocast" if autocast else "float32",
        "compile": compiled,
        "batch": batch,
        "models": {n: h.describe_model(m) for n, m in models.items()},
        "ceiling": ceiling,
        "train": rows,
        "baseline_estimated": {},
        "ratios_megabyte_vs_transformer": add_fractions(rows, ceiling["flops_per_s"]),
        "sdpa_ops": sdpa_ops(models["megabyte"], x, autocast),
    }


def train_table(rows: dict[str, dict[str, dict]], estimated: dict, ceiling: str) -> str:
    """One row per (T, model): bytes/s, step time, FLOPs, fraction of the ceiling, memory."""
    table = []
    for key, per_len in rows.items():
        for name, t in per_len.items():
            step, memory = t["step"], t["memory"]
            table.append(
                [
                    key,
                    h.LABELS[name],
                    f"{t['bytes_per_s']:,.0f}",
                    f"{step['median_s']:.3g} ({step['best_s']:.3g}–{step['max_s']:.3g})",
                    h.si(t["train_flops_per_byte"], "FLOP"),
                    h.si(t["model_flops_per_s"], "FLOP/s"),
                    f"{100 * t['fraction_of_ceiling']:.0f}%",
                    f"{memory['peak_bytes'] / 2**20:,.0f} (+{memory['growth_bytes'] / 2**20:,.0f})",
                ]
            )
    for key, e in estimated.items():
        flops = h.si(e["train_flops_per_byte"], "FLOP")
        step = f"~{e['step_s']:,.0f} (est.)"
        table.append([key, "ByteTransformer", "not timed", step, flops, "–", "–", "–"])
    headers = ["T", "model", "bytes/s", "step s (min–max)", "train FLOP/byte", "model FLOP/s"]
    return h.markdown_table([*headers, ceiling, "peak MiB (+step)"], table)


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
    estimated = r["baseline_estimated"]
    out.append(train_table(r["train"], estimated, "of matmul" if cpu else "of peak"))
    if r["ratios_megabyte_vs_transformer"]:
        each = (f"T={k}: **{v:.1f}×**" for k, v in r["ratios_megabyte_vs_transformer"].items())
        out.append(f"MEGABYTE ÷ ByteTransformer bytes/s: {', '.join(each)}.")
    if estimated:
        out.append(
            "ByteTransformer beyond the longest timed T: not timed (step time estimated from its "
            "FLOPs at the rate it reached at the longest timed T)."
        )
    if "sdpa_ops" in r:
        ops = ", ".join(f"`{k}` {v}" for k, v in r["sdpa_ops"].items()) or "none (math fallback)"
        out.append(f"SDPA ops in one MEGABYTE training step: {ops}.")
    return "\n\n".join(out)


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--train-threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--gpu", action="store_true", help="imagenet64-small on CUDA (gpu.sh)")


@h.case("train_step", render, options)
def run(args: argparse.Namespace) -> dict:
    with h.threads(args.train_threads):
        return run_gpu(args.smoke) if args.gpu else run_cpu(args.smoke)
