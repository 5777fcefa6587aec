"""Training-step benchmark (issue 6): bytes/s, achieved FLOP/s and peak memory of forward plus
backward for MEGABYTE against a ByteTransformer with the same non-embedding parameter count, at
several sequence lengths, with the machine's own ceilings measured in the same run.

    python -m benchmarks.train_step            # T = 1K, 8K, 64K on CPU (several minutes)
    python -m benchmarks.train_step --smoke    # tiny sizes, seconds; leaves the doc alone
    python -m benchmarks.train_step --gpu      # imagenet64-small MFU, bf16 + compile (gpu.sh)

The step is the training path (`multibyte.train.ByteLM`): `model.hidden(x)` then the chunked
head + loss `multibyte.loss.cross_entropy_sum`, backward, no optimizer. Full-sequence logits are
never materialized. Steps of the two models are interleaved so background load hits both.

Ceilings, measured with the same threads: the fp32 `torch.matmul` FLOP/s of a 2048² product,
and the read bandwidth of a large fp32 matrix-vector product (`common.matvec_bandwidth`).
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

import torch
from torch import nn

from benchmarks.common import (
    EQUAL_MEGABYTE,
    EQUAL_TRANSFORMER,
    SMOKE_MEGABYTE,
    SMOKE_TRANSFORMER,
    PeakMemory,
    common_args,
    describe_machine,
    finish,
    header,
    log,
    markdown_table,
    matmul_flops,
    matvec_bandwidth,
    si,
    sync,
    threads,
    time_interleaved,
    utc_now,
)
from multibyte.flops import flops_per_byte, non_embedding_parameters
from multibyte.loss import cross_entropy_sum
from multibyte.model import ByteTransformer, ByteTransformerConfig, Megabyte, MegabyteConfig
from multibyte.model.blocks import compile_blocks

NAME = "train_step"
COMMAND = "python -m benchmarks.train_step"
VOCAB = 256
H100_BF16_PEAK = 989e12  # dense bf16 FLOP/s of an H100 SXM, the MFU denominator of issue 6


@dataclass(frozen=True)
class Sizes:
    seq_lens: tuple[int, ...]
    batch: int
    repeats: dict
    """Timed steps per model at each T (scaled down for long T, see `_repeats`)."""
    baseline_max_len: int
    """Longest T at which the byte transformer is timed (beyond it: too slow, FLOP estimate)."""
    matmul_size: int
    matvec_size: int
    megabyte: dict = field(default_factory=dict)
    transformer: dict = field(default_factory=dict)


# Same models as benchmarks.core: 14,155,776 non-embedding parameters each.
FULL = Sizes(
    seq_lens=(1024, 8192, 65536),
    batch=1,
    repeats={"megabyte": 7, "byte_transformer": 3},
    baseline_max_len=8192,
    matmul_size=2048,
    matvec_size=8192,
    megabyte=dict(EQUAL_MEGABYTE),
    transformer=dict(EQUAL_TRANSFORMER),
)

SMOKE = Sizes(
    seq_lens=(32, 64),
    batch=1,
    repeats={"megabyte": 2, "byte_transformer": 2},
    baseline_max_len=32,
    matmul_size=128,
    matvec_size=256,
    megabyte=dict(SMOKE_MEGABYTE, global_layers=2),
    transformer=dict(SMOKE_TRANSFORMER, layers=2),
)


def build(sizes: Sizes, max_len: int, seed: int = 0, **options) -> dict[str, nn.Module]:
    torch.manual_seed(seed)
    megabyte = Megabyte(MegabyteConfig(max_seq_len=max_len, **sizes.megabyte, **options))
    torch.manual_seed(seed)
    baseline = ByteTransformer(
        ByteTransformerConfig(max_seq_len=max_len, **sizes.transformer, **options)
    )
    return {"megabyte": megabyte, "byte_transformer": baseline}


def train_step(model: nn.Module, x: torch.Tensor, autocast: torch.dtype | None = None):
    """One forward + backward of the chunked loss, as `multibyte.train` runs it (no optimizer)."""

    def step() -> None:
        with torch.autocast(x.device.type, dtype=autocast, enabled=autocast is not None):
            hidden = model.hidden(x)
            loss = cross_entropy_sum(hidden, model.head, x) / x.numel()
        loss.backward()
        for p in model.parameters():
            p.grad = None

    return step


class GpuPeak:
    """Peak allocated GPU memory over the body (the CPU counterpart is `PeakMemory`)."""

    def __enter__(self) -> GpuPeak:
        sync()
        torch.cuda.reset_peak_memory_stats()
        self.start = torch.cuda.memory_allocated()
        return self

    def __exit__(self, *exc) -> None:
        sync()
        self.peak = torch.cuda.max_memory_allocated()
        self.growth = self.peak - self.start

    def to_dict(self) -> dict:
        return {
            "peak_rss_bytes": self.peak,
            "growth_bytes": self.growth,
            "method": "torch.cuda.max_memory_allocated",
        }


def _repeats(base: int, seq_len: int) -> int:
    """Fewer timed steps at long T (a 64K MEGABYTE step takes ~10 s on 2 cores)."""
    return max(2, base if seq_len <= 8192 else base // 2)


def measure(
    models: dict[str, nn.Module],
    seq_len: int,
    batch: int,
    repeats: dict,
    device: str = "cpu",
    autocast: torch.dtype | None = None,
) -> dict[str, dict]:
    """Warm-up step per model (its peak memory), then interleaved timed steps."""
    x = torch.randint(0, VOCAB, (batch, seq_len), generator=torch.Generator().manual_seed(1))
    x = x.to(device)
    steps = {name: train_step(model.train(), x, autocast) for name, model in models.items()}
    results = {}
    for name, step in steps.items():
        step()  # compile / allocator warm-up
        with GpuPeak() if device == "cuda" else PeakMemory() as memory:
            step()
        results[name] = {"memory": memory.to_dict()}
    counts = {name: _repeats(repeats[name], seq_len) for name in models}
    timings = time_interleaved(steps, counts, warmup=0)
    for name, model in models.items():
        timing = timings[name]
        bytes_per_s = batch * seq_len / timing.median
        flops = flops_per_byte(model.config, seq_len).train
        results[name].update(
            seq_len=seq_len,
            batch=batch,
            bytes_per_s=bytes_per_s,
            step=timing.to_dict(),
            train_flops_per_byte=flops,
            model_flops_per_s=flops * bytes_per_s,
        )
    return results


def run(sizes: Sizes, train_threads: int | None = None, compile_blocks: bool = False) -> dict:
    machine = describe_machine()
    load = {"start": os.getloadavg()[0]}
    max_len = max(sizes.seq_lens)
    models = build(sizes, max_len)
    rows: dict[str, dict] = {}
    with threads(train_threads) as used:
        log(f"ceilings ({used} threads)")
        before = matmul_flops(sizes.matmul_size)
        bandwidth = matvec_bandwidth(sizes.matvec_size)
        for seq_len in sizes.seq_lens:
            chosen = {
                name: model
                for name, model in models.items()
                if name == "megabyte" or seq_len <= sizes.baseline_max_len
            }
            log(f"T={seq_len}: {', '.join(chosen)}")
            rows[str(seq_len)] = measure(chosen, seq_len, sizes.batch, sizes.repeats)
        if compile_blocks:
            seq_len = 8192 if 8192 in sizes.seq_lens else sizes.seq_lens[-1]
            log(f"T={seq_len}: MEGABYTE with torch.compile'd blocks (compiling, ~1 min)")
            compiled = build(sizes, max_len)["megabyte"]
            compile_blocks(compiled)
            both = {"megabyte": models["megabyte"], "megabyte_compiled": compiled}
            counts = {
                "megabyte": sizes.repeats["megabyte"],
                "megabyte_compiled": sizes.repeats["megabyte"],
            }
            rows[f"{seq_len}/compile"] = measure(both, seq_len, sizes.batch, counts)
        after = matmul_flops(sizes.matmul_size)
    ceiling = max(before["flops_per_s"], after["flops_per_s"])
    for per_len in rows.values():
        for entry in per_len.values():
            entry["fraction_of_matmul"] = entry["model_flops_per_s"] / ceiling
    skipped = {}
    for seq_len in sizes.seq_lens:
        if seq_len > sizes.baseline_max_len:
            config = models["byte_transformer"].config
            flops = flops_per_byte(config, seq_len).train
            # at the rate it reached at its longest timed T
            rate = rows[str(sizes.baseline_max_len)]["byte_transformer"]["model_flops_per_s"]
            skipped[str(seq_len)] = {
                "train_flops_per_byte": flops,
                "estimated_step_s": flops * seq_len * sizes.batch / rate,
                "reason": "too slow on this CPU: estimated from its FLOPs at the rate it "
                f"reached at T={sizes.baseline_max_len}",
            }
    load["end"] = os.getloadavg()[0]
    ratios = {
        key: per_len["megabyte"]["bytes_per_s"] / per_len["byte_transformer"]["bytes_per_s"]
        for key, per_len in rows.items()
        if "byte_transformer" in per_len
    }
    return {
        "benchmark": NAME,
        "command": COMMAND,
        "date": utc_now(),
        "machine": machine,
        "threads": used,
        "load_average_1min": load,
        "sizes": asdict(sizes),
        "models": {
            name: {
                "config": model.config.to_dict(),
                "non_embedding_parameters": non_embedding_parameters(model.config),
                "parameters": sum(p.numel() for p in model.parameters()),
            }
            for name, model in models.items()
        },
        "ceiling": {
            "matmul_fp32_flops_per_s": ceiling,
            "matvec_fp32_read_bytes_per_s": bandwidth["bytes_per_s"],
            "matmul_before": before,
            "matmul_after": after,
            "matvec": bandwidth,
        },
        "train": rows,
        "baseline_not_timed": skipped,
        "ratios_megabyte_vs_transformer": ratios,
    }


LABELS = {
    "megabyte": "MEGABYTE",
    "byte_transformer": "ByteTransformer",
    "megabyte_compiled": "MEGABYTE, compiled blocks",
}


def render(results: dict) -> str:
    ceiling = results["ceiling"]
    out = [
        header(
            results["machine"],
            results["command"],
            f"Threads: {results['threads']}. 1-minute load average at end "
            f"{results['load_average_1min']['end']:.2f}.",
        ),
        f"Ceilings (same run, same threads): fp32 matmul {si(ceiling['matmul_fp32_flops_per_s'], 'FLOP/s')} "  # noqa: E501
        f"(2048² `torch.matmul`, best of before/after); fp32 mat-vec read bandwidth "
        f"{si(ceiling['matvec_fp32_read_bytes_per_s'], 'B/s')} "
        f"({ceiling['matvec']['size']}² `torch.mv`, {ceiling['matvec']['threads']} threads).",
        "",
        "Forward + backward of the chunked loss (`model.hidden` + `cross_entropy_sum`), fp32, "
        "batch 1, no optimizer; median step; peak RSS over one step (and its growth over the "
        "resident size before it).",
        "",
    ]
    rows = []
    for key, per_len in results["train"].items():
        for name, t in per_len.items():
            rows.append(
                [
                    key,
                    LABELS[name],
                    f"{t['bytes_per_s']:,.0f}",
                    f"{t['step']['median_s']:.3g} ({t['step']['min_s']:.3g}–{t['step']['max_s']:.3g})",  # noqa: E501
                    si(t["train_flops_per_byte"], "FLOP"),
                    si(t["model_flops_per_s"], "FLOP/s"),
                    f"{100 * t['fraction_of_matmul']:.0f}%",
                    f"{t['memory']['peak_rss_bytes'] / 2**20:,.0f} (+{t['memory']['growth_bytes'] / 2**20:,.0f})",  # noqa: E501
                ]
            )
    for key, skip in results["baseline_not_timed"].items():
        rows.append(
            [
                key,
                "ByteTransformer",
                "not timed",
                f"~{skip['estimated_step_s']:,.0f} (est.)",
                si(skip["train_flops_per_byte"], "FLOP"),
                "–",
                "–",
                "–",
            ]
        )
    out.append(
        markdown_table(
            [
                "T",
                "model",
                "bytes/s",
                "step s (min–max)",
                "train FLOP/byte",
                "model FLOP/s",
                "of matmul",
                "peak RSS MiB (+step)",
            ],
            rows,
        )
    )
    ratios = results["ratios_megabyte_vs_transformer"]
    if ratios:
        out += [
            "",
            "MEGABYTE ÷ ByteTransformer bytes/s: "
            + ", ".join(f"T={k}: **{v:.1f}×**" for k, v in ratios.items())
            + ".",
        ]
    if results["baseline_not_timed"]:
        out += [
            "",
            "ByteTransformer beyond T="
            + str(results["sizes"]["baseline_max_len"])
            + ": not timed (its step time is estimated from its FLOPs at the rate it reached "
            "at the longest timed T).",
        ]
    return "\n".join(out)


# ----------------------------------------------------------------------------- GPU (gpu.sh)


def closest_transformer(m: int, mlp_ratio: float = 4.0, head_dim: int = 64) -> dict:
    """Byte-transformer shape (dim a multiple of head_dim) with non-embedding parameters closest
    to `m`: L (4 d² + 2 d h) with h = mlp_ratio d, among shapes at least 16 x L wide."""
    best = None
    for dim in range(head_dim, 4097, head_dim):
        per_layer = (4 + 2 * mlp_ratio) * dim * dim
        layers = max(1, round(m / per_layer))
        if dim < 16 * layers:  # keep a usual aspect ratio (no 64-wide, 36-deep stacks)
            continue
        error = abs(layers * per_layer - m)
        if best is None or error < best[0]:
            best = (error, dict(dim=dim, layers=layers, heads=dim // head_dim))
    return best[1]


def sdpa_backend(model: nn.Module, x: torch.Tensor, autocast: torch.dtype | None) -> dict:
    """Which SDPA kernels one training forward + backward runs (profiler op names, e.g.
    `aten::_scaled_dot_product_flash_attention`, `..._efficient_attention`, `..._cudnn_...`;
    the math fallback shows as plain matmul/softmax with no such op), with call counts."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if x.is_cuda else [])
    with profile(activities=activities) as prof:
        train_step(model.train(), x, autocast)()
        sync()
    return {
        e.key: e.count
        for e in prof.key_averages()
        if "scaled_dot_product" in e.key or "flash" in e.key.lower() or "fmha" in e.key.lower()
    }


def run_gpu(smoke: bool = False, compile_model: bool = True) -> dict:
    """MFU of the imagenet64-small recipe model (bf16 autocast, compiled) and bytes/s against a
    ByteTransformer with the closest non-embedding parameter count. On CPU with `smoke`, the
    same code runs at tiny sizes (so gpu.sh's Python never rots)."""
    import yaml

    from benchmarks.common import REPO

    device = "cuda" if torch.cuda.is_available() else "cpu"
    recipe = yaml.safe_load((REPO / "recipes" / "imagenet64-small.yaml").read_text())
    config = dict(recipe["model"]["model"]["init_args"]["config"])
    batch, seq_len = recipe["data"]["batch_size"], config["max_seq_len"]
    if smoke:
        config.update(
            global_dim=48,
            global_layers=1,
            global_heads=2,
            local_dim=24,
            local_layers=1,
            local_heads=2,
            max_seq_len=96,
        )
        batch, seq_len = 2, 96
    megabyte = MegabyteConfig(**config)
    shape = closest_transformer(non_embedding_parameters(megabyte))
    baseline = ByteTransformerConfig(
        max_seq_len=seq_len, dropout=config.get("dropout", 0.0), **shape
    )
    torch.manual_seed(0)
    models = {
        "megabyte": Megabyte(megabyte).to(device),
        "byte_transformer": ByteTransformer(baseline).to(device),
    }
    if compile_model and device == "cuda":
        for model in models.values():
            compile_blocks(model)
    autocast = torch.bfloat16 if device == "cuda" else None
    log(f"GPU train step: {device}, batch {batch}, T={seq_len}, compile={compile_model}")
    rows = measure(
        models,
        seq_len,
        batch,
        {"megabyte": 10, "byte_transformer": 5}
        if not smoke
        else {"megabyte": 2, "byte_transformer": 2},
        device,
        autocast,
    )
    peak = H100_BF16_PEAK if device == "cuda" else matmul_flops(256)["flops_per_s"]
    backend = sdpa_backend(
        models["megabyte"], torch.randint(0, VOCAB, (1, seq_len), device=device), autocast
    )
    for entry in rows.values():
        entry["mfu"] = entry["model_flops_per_s"] / peak
    return {
        "device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu (smoke)",
        "peak_flops_per_s": peak,
        "dtype": "bfloat16 autocast" if autocast else "float32",
        "compile": compile_model and device == "cuda",
        "batch": batch,
        "seq_len": seq_len,
        "configs": {"megabyte": megabyte.to_dict(), "byte_transformer": baseline.to_dict()},
        "non_embedding_parameters": {
            name: non_embedding_parameters(m.config) for name, m in models.items()
        },
        "train": rows,
        "sdpa_ops": backend,
        "ratio_megabyte_vs_transformer": rows["megabyte"]["bytes_per_s"]
        / rows["byte_transformer"]["bytes_per_s"],
    }


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common_args(parser)
    parser.add_argument("--train-threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument(
        "--compile",
        action="store_true",
        help="also time MEGABYTE with torch.compile'd blocks at T=8192",
    )
    parser.add_argument(
        "--gpu",
        action="store_true",
        help="imagenet64-small MFU run (bf16 + compile on CUDA; tiny on CPU)",
    )
    args = parser.parse_args(argv)
    if args.gpu:
        results = run_gpu(smoke=args.smoke)
        from benchmarks.common import output_path, write_json

        path = write_json(results, output_path("gpu_train_step", args.out))
        for name, entry in results["train"].items():
            print(
                f"{name}: {entry['bytes_per_s']:,.0f} bytes/s, MFU {100 * entry['mfu']:.1f}%, "
                f"peak {entry['memory']['peak_rss_bytes'] / 2**30:.2f} GiB"
            )
        print(f"wrote {path}")
        return results
    results = run(SMOKE if args.smoke else FULL, args.train_threads, args.compile)
    finish(NAME, results, render, args)
    return results


if __name__ == "__main__":
    main()
