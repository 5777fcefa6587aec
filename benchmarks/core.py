"""core: MEGABYTE against the equal-parameter ByteTransformer in one run, against the
issue's targets. Training: the training step at T = 8192, the two models interleaved (MEGABYTE
timed 9 times, the ByteTransformer 3). Generation (one thread): 8,192 bytes after a 16-byte
prompt at batch 1, cached for both models; uncached MEGABYTE integrated from 9 positions and
checked against its first 128 bytes timed directly; cached step times at start, middle, end.
"""

from __future__ import annotations

import argparse
import os

import torch
from torch import nn

from benchmarks import harness as h
from benchmarks.generate import add_rates, cached_full, generation_table, uncached_integrated
from benchmarks.train_step import add_fractions, train_rows, train_table

FULL = dict(seq_len=8192, repeats={"megabyte": 9, "byte_transformer": 3}, prompt=16,
            new_bytes=8192, points=9, span=3, check=128, profile_steps=32, matmul=2048)  # fmt: skip
SMOKE = dict(seq_len=64, repeats={"megabyte": 2, "byte_transformer": 2}, prompt=4,
             new_bytes=32, points=3, span=1, check=8, profile_steps=4, matmul=128)  # fmt: skip
TARGETS = {  # goals: bytes/s of the first over the second, at least the minimum
    "train megabyte vs transformer": ("train/megabyte", "train/byte_transformer", 3.0),
    "generate cached megabyte vs cached transformer":
        ("generate/megabyte_cached/1", "generate/byte_transformer_cached/1", 3.0),
    "generate megabyte cached vs uncached":
        ("generate/megabyte_cached/1", "generate/megabyte_uncached/1", 10.0),
}  # fmt: skip


@torch.inference_mode()
def step_profile(model: nn.Module, total: int, positions: list[int], steps: int) -> dict:
    """Milliseconds per cached decoder step (`advance`, no sampling) after a prefill to each
    position: how the cost per byte grows as the caches fill."""
    buffer, profile = h.random_bytes(1, total, seed=3), {}
    for position in positions:
        decoder = model.decoder(buffer)
        decoder.prefill(position)
        advance = range(position + 1, position + 1 + steps)
        profile[str(position)] = 1e3 * h.once(lambda: [decoder.advance(t) for t in advance]) / steps  # noqa: B023, E501
    return profile


def generation(models: dict[str, nn.Module], s: dict) -> tuple[dict, dict]:
    prompt, new, megabyte = s["prompt"], s["new_bytes"], models["megabyte"]
    rows = {}
    for name, model in models.items():
        h.log(f"{name}: cached generation of {new} bytes")
        rows[f"{name}_cached/1"] = cached_full(model.eval(), 1, prompt, new)
    h.log("megabyte: uncached generation at spread positions, and directly over the first bytes")
    rows["megabyte_uncached/1"] = uncached = uncached_integrated(
        megabyte, 1, prompt, new, s["points"], s["span"], s["check"])  # fmt: skip
    x = h.random_bytes(1, prompt)
    uncached["check"]["measured_seconds"] = h.once(
        lambda: megabyte.generate(x, s["check"], use_cache=False))  # fmt: skip
    end, patch, steps = prompt + new, megabyte.config.patch_size, s["profile_steps"]
    positions = [p // patch * patch for p in (prompt, end // 2, end - 2 * steps)]
    profile = {name: step_profile(m, end, positions, steps) for name, m in models.items()}
    return add_rates(rows, new), profile


def render(r: dict) -> str:
    m, used, gen, profile = r["models"], r["threads"], r["generate"], r["decoder_step_ms"]
    mb, bt = m["megabyte"]["config"], m["byte_transformer"]["config"]
    check = gen["megabyte_uncached/1"]["check"]
    ratios = [[name, f"{v['value']:.1f}×" + (f" (fastest steps: {v['fastest_steps']:.1f}×)"
                                             if "fastest_steps" in v else ""),
               f"≥ {v['target']:.0f}×", "yes" if v["met"] else "**no**"]
              for name, v in r["ratios"].items()]  # fmt: skip
    return "\n\n".join([
        f"Threads: {used['train']} for training and the matmul ceiling, {used['generate']} for "
        f"generation; 1-minute load average after training {r['load_after_train']:.2f}. "
        f"MEGABYTE P={mb['patch_size']}, global {mb['global_dim']}x{mb['global_layers']}, local "
        f"{mb['local_dim']}x{mb['local_layers']}; ByteTransformer {bt['dim']}x{bt['layers']}; "
        f"{m['megabyte']['non_embedding_parameters']:,} and "
        f"{m['byte_transformer']['non_embedding_parameters']:,} non-embedding parameters. fp32 "
        f"matmul ceiling ({r['ceiling']['size']}² `torch.matmul`, best of before/after "
        f"training): {h.si(r['ceiling']['flops_per_s'], 'FLOP/s')}.",
        f"**Training**, the {h.STEP}, fp32, batch 1, median of " + " and ".join(
            f"{n} ({h.LABELS[k]})" for k, n in r["sizes"]["repeats"].items())
        + " timed steps interleaved:", train_table(r["train"]),
        "**Generation**, batch 1, temperature 1; cached decoder step ms at t = "
        + " / ".join(profile["megabyte"]) + ": " + "; ".join(
            f"{h.LABELS[n]} " + " / ".join(f"{v:.2f}" for v in p.values())
            for n, p in profile.items()) + ".", generation_table(gen),
        f"Uncached check: the first {check['bytes']} bytes took {check['measured_seconds']:.2f} "
        f"s timed directly, {check['integrated_seconds']:.2f} s by the integration.",
        "**Ratios** (bytes/s over bytes/s, same run):",
        h.markdown_table(["ratio", "measured", "target", "met"], ratios),
    ])  # fmt: skip


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--train-threads", type=int, help="torch threads for training (torch's)")
    parser.add_argument("--generate-threads", type=int, default=1, help="for generation (1)")


@h.case("core", render, options)
def run(args: argparse.Namespace) -> dict:
    s = SMOKE if args.smoke else FULL
    models = h.equal_pair(max(s["seq_len"], s["prompt"] + s["new_bytes"]), args.smoke)
    with h.threads(args.train_threads) as train_threads:
        h.log(f"matmul ceiling and training at T={s['seq_len']} ({train_threads} threads)")
        before = h.matmul_flops(s["matmul"])
        train = {str(s["seq_len"]): train_rows(models, s["seq_len"], 1, s["repeats"])}
        after = h.matmul_flops(s["matmul"])
    ceiling = max(before["flops_per_s"], after["flops_per_s"])
    add_fractions(train, ceiling)
    load_after_train = os.getloadavg()[0]
    with h.threads(args.generate_threads) as generate_threads:
        generate, profile = generation(models, s)
    found, ratios = {"train": train[str(s["seq_len"])], "generate": generate}, {}
    for name, keys in TARGETS.items():
        num, den = (found[k.split("/", 1)[0]][k.split("/", 1)[1]]["bytes_per_s"] for k in keys[:2])
        ratios[name] = {"value": num / den, "target": keys[2], "met": num / den >= keys[2]}
    steps = found["train"]
    fastest = steps["byte_transformer"]["step"]["best_s"] / steps["megabyte"]["step"]["best_s"]
    ratios["train megabyte vs transformer"]["fastest_steps"] = fastest
    return {"threads": {"train": train_threads, "generate": generate_threads},
            "load_after_train": load_after_train, "sizes": s, "train": train,
            "models": {name: h.describe_model(model) for name, model in models.items()},
            "ceiling": {"flops_per_s": ceiling, "size": s["matmul"], "before": before,
                        "after": after},
            "generate": generate, "decoder_step_ms": profile, "ratios": ratios}  # fmt: skip
