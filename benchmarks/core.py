"""Core benchmark (issue 2): MEGABYTE against a byte transformer with equal non-embedding
parameters, training and generation bytes/s measured in one run on this machine.

    python -m benchmarks.core            # full run (a few minutes on 2 CPU cores)
    python -m benchmarks.core --smoke    # tiny sizes, seconds; writes JSON, leaves the doc alone

Training: fp32 forward + backward of the cross-entropy loss (no optimizer step) at T=8192,
batch 1, the two models' steps interleaved, median step time; model FLOP/s from
`multibyte.flops` against the fp32 `torch.matmul` rate measured in the same run.

Generation: 8,192 new bytes after a 16-byte prompt at batch 1, temperature 1, for MEGABYTE with
and without its KV caches and for the cached byte transformer. Uncached MEGABYTE recomputes a full
forward pass per byte (minutes for 8,192 bytes), so its time is integrated from per-byte times
measured at evenly spread positions (see `bench_generate_uncached`), and checked against a
directly timed uncached run over the first bytes.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from functools import partial

import numpy as np
import torch
import torch.nn.functional as F
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
    log,
    machine_line,
    markdown_table,
    matmul_flops,
    si,
    threads,
    time_call,
    time_interleaved,
    utc_now,
)
from multibyte.flops import flops_per_byte, non_embedding_parameters
from multibyte.model import ByteTransformer, ByteTransformerConfig, Megabyte, MegabyteConfig

NAME = "core"
COMMAND = "python -m benchmarks.core"
VOCAB = 256

# Targets from issue 2, as (numerator, denominator, minimum ratio).
TARGETS = {
    "train_megabyte_vs_transformer": ("train/megabyte", "train/byte_transformer", 3.0),
    "generate_cached_megabyte_vs_cached_transformer": (
        "generate/megabyte_cached",
        "generate/byte_transformer_cached",
        3.0,
    ),
    "generate_megabyte_cached_vs_uncached": (
        "generate/megabyte_cached",
        "generate/megabyte_uncached",
        10.0,
    ),
}


@dataclass(frozen=True)
class Sizes:
    """Everything one run measures; `FULL` is the real benchmark, `SMOKE` the seconds-long one."""

    seq_len: int
    """Training sequence length T in bytes."""
    batch: int
    train_repeats: dict
    """Timed training steps per model (the cheap MEGABYTE step is timed more often)."""
    train_warmup: int
    prompt: int
    """Prompt length in bytes for generation."""
    new_bytes: int
    """Bytes to generate."""
    uncached_points: int
    """Positions at which uncached MEGABYTE's per-byte time is measured."""
    uncached_bytes_per_point: int
    uncached_direct: int
    """Bytes of uncached generation timed directly, to check the integrated estimate."""
    step_profile_steps: int
    """Cached decoder steps timed at the start, middle and end of the sequence."""
    matmul_size: int
    megabyte: dict = field(default_factory=dict)
    transformer: dict = field(default_factory=dict)

    @property
    def max_seq_len(self) -> int:
        """Room for training at T and for prompt + new bytes, a multiple of the patch size."""
        patch = self.megabyte["patch_size"]
        need = max(self.seq_len, self.prompt + self.new_bytes)
        return math.ceil(need / patch) * patch


# Equal non-embedding parameters (14,155,776 each, `multibyte.flops.non_embedding_parameters`):
#   MEGABYTE  global 4 x (4*512^2 + 2*512*2048) + local 2 x (4*256^2 + 2*256*1024)
#   baseline  8 x (4*384^2 + 2*384*1536)
FULL = Sizes(
    seq_len=8192,
    batch=1,
    train_repeats={"megabyte": 9, "byte_transformer": 3},
    train_warmup=1,
    prompt=16,
    new_bytes=8192,
    uncached_points=9,
    uncached_bytes_per_point=3,
    uncached_direct=128,
    step_profile_steps=32,
    matmul_size=2048,
    megabyte=dict(EQUAL_MEGABYTE),
    transformer=dict(EQUAL_TRANSFORMER),
)

SMOKE = Sizes(
    seq_len=64,
    batch=1,
    train_repeats={"megabyte": 2, "byte_transformer": 2},
    train_warmup=1,
    prompt=4,
    new_bytes=32,
    uncached_points=3,
    uncached_bytes_per_point=1,
    uncached_direct=8,
    step_profile_steps=4,
    matmul_size=128,
    megabyte=dict(SMOKE_MEGABYTE, global_layers=2),
    transformer=dict(SMOKE_TRANSFORMER, layers=2),
)


def build_configs(sizes: Sizes) -> dict[str, MegabyteConfig | ByteTransformerConfig]:
    """The MEGABYTE and byte-transformer configs for these sizes."""
    return {
        "megabyte": MegabyteConfig(max_seq_len=sizes.max_seq_len, **sizes.megabyte),
        "byte_transformer": ByteTransformerConfig(
            max_seq_len=sizes.max_seq_len, **sizes.transformer
        ),
    }


def build_models(sizes: Sizes, seed: int = 0) -> dict[str, nn.Module]:
    """The MEGABYTE model and the byte-transformer baseline for these sizes (fp32, CPU)."""
    configs = build_configs(sizes)
    torch.manual_seed(seed)
    megabyte = Megabyte(configs["megabyte"])
    torch.manual_seed(seed)
    return {"megabyte": megabyte, "byte_transformer": ByteTransformer(configs["byte_transformer"])}


def describe_model(model: nn.Module) -> dict:
    config = model.config
    return {
        "class": type(model).__name__,
        "config": config.to_dict(),
        "non_embedding_parameters": non_embedding_parameters(config),
        "parameters": sum(p.numel() for p in model.parameters()),
    }


# ----------------------------------------------------------------------------- training


def bench_train(
    models: dict[str, nn.Module],
    seq_len: int,
    batch: int,
    repeats: int | dict[str, int],
    warmup: int,
) -> dict[str, dict]:
    """Forward + backward of the cross-entropy loss (fp32, no optimizer) on random bytes.

    The models' steps are interleaved (a, b, a, b, ...) so background load hits both alike.
    Peak memory is the resident high-water mark over a warm-up step (weights, gradients and
    inputs included), and its growth over the resident size before the step. `warmup` >= 1.
    """
    generator = torch.Generator().manual_seed(1)
    x = torch.randint(0, VOCAB, (batch, seq_len), generator=generator)

    def step_fn(model: nn.Module):
        def step() -> None:
            logits = model(x)
            loss = F.cross_entropy(logits.reshape(-1, VOCAB).float(), x.reshape(-1))
            loss.backward()
            model.zero_grad(set_to_none=True)

        return step

    steps = {name: step_fn(model) for name, model in models.items()}
    memory = {}
    for name, model in models.items():
        model.train()
        for _ in range(warmup):  # the warm-up steps also give the peak memory
            with PeakMemory() as mem:
                steps[name]()
            if name not in memory or mem.peak > memory[name].peak:
                memory[name] = mem
    timings = time_interleaved(steps, repeats, warmup=0)
    results = {}
    for name, model in models.items():
        timing = timings[name]
        bytes_per_s = batch * seq_len / timing.median
        flops = flops_per_byte(model.config, seq_len)
        results[name] = {
            "seq_len": seq_len,
            "batch": batch,
            "bytes_per_s": bytes_per_s,
            "step": timing.to_dict(),
            "train_flops_per_byte": flops.train,
            "model_flops_per_s": flops.train * bytes_per_s,
            "memory": memory[name].to_dict(),
        }
    return results


# ----------------------------------------------------------------------------- generation


def _prompt(length: int, seed: int = 2) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, VOCAB, (1, length), generator=generator)


def bench_generate_cached(model: nn.Module, prompt: int, new_bytes: int) -> dict:
    """Time one `model.generate(..., use_cache=True)` of `new_bytes` after a `prompt`-byte prompt
    (batch 1, temperature 1, seeded), after a short untimed warm-up generation."""
    x = _prompt(prompt)
    model.generate(x, min(new_bytes, 32), generator=torch.Generator().manual_seed(0))
    seconds = time_call(
        lambda: model.generate(x, new_bytes, generator=torch.Generator().manual_seed(0))
    )
    return {
        "method": "timed in full",
        "prompt": prompt,
        "new_bytes": new_bytes,
        "seconds": seconds,
        "bytes_per_s": new_bytes / seconds,
        "ms_per_byte": 1e3 * seconds / new_bytes,
    }


def bench_generate_uncached(
    model: nn.Module,
    prompt: int,
    new_bytes: int,
    points: int,
    bytes_per_point: int,
    direct: int,
) -> dict:
    """Uncached generation time, integrated from per-byte times at `points` spread positions.

    Generating byte t without a cache is one full forward pass over t + 1 bytes. At each
    position t_i, evenly spaced from `prompt` to `prompt + new_bytes - bytes_per_point`, we time
    `model.generate(prompt_i, bytes_per_point, use_cache=False)` with a random t_i-byte prompt,
    giving seconds per byte near t_i. The total for bytes prompt .. prompt+new_bytes-1 is the sum
    of those per-byte times interpolated linearly (np.interp) at every position. As a check,
    the first `direct` bytes are also generated uncached and timed directly.
    """
    last = prompt + new_bytes - bytes_per_point
    positions = sorted({int(round(p)) for p in np.linspace(prompt, last, points)})
    model.generate(_prompt(positions[len(positions) // 2]), 1, use_cache=False)  # warm-up
    per_byte = []
    for position in positions:
        x = _prompt(position, seed=position)
        seconds = time_call(
            partial(
                model.generate,
                x,
                bytes_per_point,
                use_cache=False,
                generator=torch.Generator().manual_seed(0),
            )
        )
        per_byte.append(seconds / bytes_per_point)
    centres = [p + (bytes_per_point - 1) / 2 for p in positions]

    def estimate(start: int, count: int) -> float:
        return float(np.interp(np.arange(start, start + count), centres, per_byte).sum())

    total = estimate(prompt, new_bytes)
    x = _prompt(prompt)
    direct_seconds = time_call(
        lambda: model.generate(
            x, direct, use_cache=False, generator=torch.Generator().manual_seed(0)
        )
    )
    return {
        "method": (
            f"integrated: per-byte time measured at {len(positions)} positions "
            f"({bytes_per_point} bytes each), interpolated linearly over all {new_bytes}"
        ),
        "prompt": prompt,
        "new_bytes": new_bytes,
        "positions": positions,
        "seconds_per_byte_at_positions": per_byte,
        "seconds": total,
        "bytes_per_s": new_bytes / total,
        "ms_per_byte": 1e3 * total / new_bytes,
        "check": {
            "bytes": direct,
            "measured_seconds": direct_seconds,
            "integrated_seconds": estimate(prompt, direct),
        },
    }


def _advance(decoder, positions: range) -> None:
    for t in positions:
        decoder.advance(t)


@torch.inference_mode()
def cached_step_profile(model: nn.Module, total: int, positions: Sequence[int], steps: int) -> dict:
    """Milliseconds per cached decoding step (`decoder.advance`) at several context lengths:
    how the per-byte cost grows as the KV cache fills. Sampling is not included."""
    model.eval()
    buffer = _prompt(total, seed=3)
    profile = {}
    for position in positions:
        decoder = model.decoder(buffer)
        decoder.prefill(position)
        seconds = time_call(partial(_advance, decoder, range(position + 1, position + 1 + steps)))
        profile[str(position)] = 1e3 * seconds / steps
    return profile


# ----------------------------------------------------------------------------- run


def _lookup(results: dict, key: str) -> float:
    section, name = key.split("/")
    return results[section][name]["bytes_per_s"]


def run(sizes: Sizes, train_threads: int | None = None, generate_threads: int | None = 1) -> dict:
    """Measure everything for `sizes`; returns the JSON-ready results.

    `train_threads` (default: torch's, all cores) applies to training and the matmul ceiling,
    `generate_threads` (default 1) to generation; see docs/benchmarks.md for why.
    """
    machine = describe_machine()
    models = build_models(sizes)
    megabyte, transformer = models["megabyte"], models["byte_transformer"]
    load = {"start": os.getloadavg()[0]}

    with threads(train_threads) as used_train_threads:
        log(f"matmul ceiling ({used_train_threads} threads)")
        ceiling_before = matmul_flops(sizes.matmul_size)
        log(f"training T={sizes.seq_len}: {sizes.train_warmup} warm-up + "
            f"{sizes.train_repeats} timed steps, interleaved")  # fmt: skip
        train = bench_train(
            models, sizes.seq_len, sizes.batch, sizes.train_repeats, sizes.train_warmup
        )
        ceiling_after = matmul_flops(sizes.matmul_size)
    ceiling = max(ceiling_before["flops_per_s"], ceiling_after["flops_per_s"])
    for entry in train.values():
        entry["fraction_of_matmul"] = entry["model_flops_per_s"] / ceiling
    load["after_train"] = os.getloadavg()[0]

    end = sizes.prompt + sizes.new_bytes
    with threads(generate_threads) as used_generate_threads:
        generate = {}
        for name, model in (("megabyte", megabyte), ("byte_transformer", transformer)):
            log(f"{name}: cached generation of {sizes.new_bytes} bytes")
            generate[f"{name}_cached"] = bench_generate_cached(model, sizes.prompt, sizes.new_bytes)
        log("megabyte: uncached generation, sampled positions")
        generate["megabyte_uncached"] = bench_generate_uncached(
            megabyte,
            sizes.prompt,
            sizes.new_bytes,
            sizes.uncached_points,
            sizes.uncached_bytes_per_point,
            sizes.uncached_direct,
        )
        patch = sizes.megabyte["patch_size"]
        positions = [sizes.prompt, end // 2, end - 2 * sizes.step_profile_steps]
        positions = [p // patch * patch for p in positions]
        log(f"cached decoder step times at t = {positions}")
        for name, model in models.items():
            entry = generate[f"{name}_cached"]
            entry["decoder_step_ms"] = cached_step_profile(
                model, end, positions, sizes.step_profile_steps
            )
            entry["generate_flops_per_byte"] = flops_per_byte(model.config, end).generate
    load["end"] = os.getloadavg()[0]

    results = {
        "benchmark": NAME,
        "command": COMMAND,
        "date": utc_now(),
        "machine": machine,
        "threads": {"train": used_train_threads, "generate": used_generate_threads},
        "load_average_1min": load,
        "sizes": asdict(sizes),
        "models": {name: describe_model(model) for name, model in models.items()},
        "ceiling": {
            "matmul_fp32_flops_per_s": ceiling,
            "threads": used_train_threads,
            "before": ceiling_before,
            "after": ceiling_after,
        },
        "train": train,
        "generate": generate,
    }
    results["ratios"] = {}
    for name, (num, den, target) in TARGETS.items():
        value = _lookup(results, num) / _lookup(results, den)
        results["ratios"][name] = {
            "value": value,
            "target": target,
            "met": value >= target,
            "of": f"{num} / {den}",
        }
    fastest = {name: train[name]["step"]["min_s"] for name in train}
    results["ratios"]["train_megabyte_vs_transformer"]["value_from_fastest_steps"] = (
        fastest["byte_transformer"] / fastest["megabyte"]
    )
    return results


def render(results: dict) -> str:
    """The doc section: machine, command, training, generation and ratio tables."""
    machine, models = results["machine"], results["models"]
    train, generate, ratios = results["train"], results["generate"], results["ratios"]
    sizes = results["sizes"]
    labels = {"megabyte": "MEGABYTE", "byte_transformer": "ByteTransformer"}

    def shape(name: str) -> str:
        c = models[name]["config"]
        if name == "megabyte":
            return (
                f"P={c['patch_size']}, global {c['global_dim']}x{c['global_layers']}, "
                f"local {c['local_dim']}x{c['local_layers']}"
            )
        return f"{c['dim']}x{c['layers']}"

    load, used = results["load_average_1min"], results["threads"]
    repeats = " and ".join(
        f"{count} ({labels[name]})" for name, count in sizes["train_repeats"].items()
    )
    out = [
        f"Machine: {machine_line(machine)}. Threads used: {used['train']} for training and the "
        f"matmul ceiling, {used['generate']} for generation. Run {results['date']}; 1-minute "
        f"load average {load['start']:.2f} at start, {load['after_train']:.2f} after training, "
        f"{load['end']:.2f} at end.",
        "",
        f"Reproduce: `{results['command']}` (writes `runs/benchmarks/core.json`, or `$OUT/core.json`).",  # noqa: E501
        "",
        f"fp32 matmul ceiling ({results['ceiling']['before']['size']}² `torch.matmul`, best of "
        f"before/after training): {si(results['ceiling']['matmul_fp32_flops_per_s'], 'FLOP/s')}.",
        "",
        f"**Training**, fp32 forward + backward of the loss, T={sizes['seq_len']}, batch "
        f"{sizes['batch']}, median of {repeats} timed steps interleaved "
        f"(after {sizes['train_warmup']} warm-up step each):",
        "",
    ]
    rows = []
    for name in ("megabyte", "byte_transformer"):
        t = train[name]
        rows.append(
            [
                labels[name],
                shape(name),
                f"{models[name]['non_embedding_parameters']:,}",
                f"{t['bytes_per_s']:,.0f}",
                f"{t['step']['median_s']:.3g} ({t['step']['min_s']:.3g}–{t['step']['max_s']:.3g})",
                si(t["train_flops_per_byte"], "FLOP"),
                si(t["model_flops_per_s"], "FLOP/s"),
                f"{100 * t['fraction_of_matmul']:.0f}%",
                f"{t['memory']['peak_rss_bytes'] / 2**20:,.0f} "
                f"(+{t['memory']['growth_bytes'] / 2**20:,.0f})",
            ]
        )
    out.append(
        markdown_table(
            [
                "model",
                "shape",
                "non-emb. params",
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
    out += [
        "",
        f"**Generation**, {sizes['new_bytes']:,} bytes after a {sizes['prompt']}-byte prompt, "
        "batch 1, temperature 1:",
        "",
    ]
    rows = []
    for name, label in (
        ("megabyte_cached", "MEGABYTE, KV cache"),
        ("byte_transformer_cached", "ByteTransformer, KV cache"),
        ("megabyte_uncached", "MEGABYTE, no cache"),
    ):
        g = generate[name]
        steps = g.get("decoder_step_ms")
        rows.append(
            [
                label,
                f"{g['bytes_per_s']:,.1f}",
                f"{g['ms_per_byte']:.2f}",
                " / ".join(f"{v:.2f}" for v in steps.values()) if steps else "–",
                g["method"],
            ]
        )
    positions = " / ".join(next(iter(generate.values()))["decoder_step_ms"])
    out.append(
        markdown_table(
            ["model", "bytes/s", "ms/byte", f"cached step ms at t = {positions}", "how"], rows
        )
    )
    check = generate["megabyte_uncached"]["check"]
    out += [
        "",
        f"Uncached check: the first {check['bytes']} bytes took {check['measured_seconds']:.2f} s "
        f"timed directly, {check['integrated_seconds']:.2f} s by the integration.",
        "",
        "**Ratios** (bytes/s over bytes/s, same run):",
        "",
    ]
    rows = [
        [
            name.replace("_", " "),
            f"{r['value']:.1f}×" + _fastest_note(r),
            f"≥ {r['target']:.0f}×",
            "yes" if r["met"] else "**no**",
        ]
        for name, r in ratios.items()
    ]
    out.append(markdown_table(["ratio", "measured", "target", "met"], rows))
    return "\n".join(out)


def _fastest_note(ratio: dict) -> str:
    if "value_from_fastest_steps" not in ratio:
        return ""
    return f" (fastest steps: {ratio['value_from_fastest_steps']:.1f}×)"


def main(argv: Sequence[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    common_args(parser)
    parser.add_argument(
        "--train-threads", type=int, help="torch threads for training (default: torch's)"
    )
    parser.add_argument(
        "--generate-threads", type=int, default=1, help="torch threads for generation (default 1)"
    )
    args = parser.parse_args(argv)

    results = run(SMOKE if args.smoke else FULL, args.train_threads, args.generate_threads)
    finish(NAME, results, render, args)
    return results


if __name__ == "__main__":
    main()
