"""generate: bytes/s producing 8,192 bytes after a 16-byte prompt at batch 1 and 8 (one thread;
cached MEGABYTE again on torch's default threads): cached and uncached MEGABYTE, the cached
ByteTransformer and `megabyte-pytorch` (the `bench` extra), against the memory floor (weight
bytes read per byte ÷ mat-vec bandwidth) and the decode step's linear layers alone. Runs too
long to time in full are integrated. `--gpu`: cached bytes/s of both models on CUDA.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from contextlib import nullcontext
from functools import partial

import torch
import torch.nn.functional as F
from torch import nn

from benchmarks import harness as h
from multibyte.model import ByteTransformer
from multibyte.model.blocks import TransformerStack
from multibyte.model.generation import sample_next_byte

FULL = dict(prompt=16, new_bytes=8192, batches=(1, 8), points=7, span=2, short=(16, 256),
            matvec=8192, lucidrains=dict(dim=(512, 256), depth=(4, 2), dim_head=64, heads=8))  # fmt: skip  # noqa: E501
SMOKE = dict(prompt=4, new_bytes=24, batches=(1, 2), points=3, span=1, short=(4, 12),
             matvec=256, lucidrains=dict(dim=(32, 16), depth=(1, 1), dim_head=8, heads=2))  # fmt: skip  # noqa: E501
LABELS = {"megabyte_cached": "MEGABYTE, KV cache", "megabyte_uncached": "MEGABYTE, no cache",
          "byte_transformer_cached": "ByteTransformer, KV cache",
          "megabyte_compiled": "MEGABYTE, KV cache, compiled",
          "byte_transformer_compiled": "ByteTransformer, KV cache, compiled",
          "megabyte_pytorch": "megabyte-pytorch 0.3.6 (no cache, as it ships)"}  # fmt: skip


def cached_full(model: nn.Module, batch: int, prompt: int, new: int, compile: bool = False) -> dict:
    """One cached `generate` of `new` bytes, after a warm-up generation (a short one; a full one
    when compiled, since graphs are built for the buffer's length)."""
    x = h.random_bytes(batch, prompt).to(model.head.weight.device)
    model.generate(x, new if compile else min(new, 32), compile=compile)
    seconds = h.once(lambda: model.generate(x, new, compile=compile))
    method = "compiled step, CUDA graphs" if compile and x.is_cuda else "timed in full"
    return {"method": method, "seconds": seconds}


@torch.inference_mode()
def cached_integrated(model: nn.Module, batch: int, prompt: int, new: int, points: int) -> dict:
    """16 decoder steps (`advance` + sampling) after a prefill, at spread positions."""
    buffer, steps = h.random_bytes(batch, prompt + new, seed=3), 16

    def per_byte(t: int) -> float:
        decoder = model.decoder(buffer)
        decoder.prefill(t - 1)

        def run() -> None:
            for u in range(t, t + steps):
                buffer[:, u] = sample_next_byte(decoder.advance(u))

        return h.once(run) / steps

    return {"method": f"integrated: {steps} cached steps at {points} positions",
            **h.integrate(per_byte, prompt, new, points, span=steps)}  # fmt: skip


def uncached_integrated(model: nn.Module, batch: int, prompt: int, new: int, points: int,
                        span: int, check: int = 0) -> dict:  # fmt: skip
    """Uncached `generate` (a full forward pass per byte) of `span` bytes at spread positions."""
    model.generate(h.random_bytes(batch, prompt + new // 2), 1, use_cache=False)  # warm-up

    def per_byte(t: int) -> float:
        x = h.random_bytes(batch, t, seed=t)
        return h.once(partial(model.generate, x, span, use_cache=False)) / span

    return {"method": f"integrated: uncached generate at {points} positions",
            **h.integrate(per_byte, prompt, new, points, span, check)}  # fmt: skip


def lucidrains_model(shape: dict, patch: int, total: int) -> nn.Module | None:
    """megabyte-pytorch's MEGABYTE holding `total` bytes, or None when not installed."""
    os.environ.setdefault("TQDM_DISABLE", "1")  # its generate draws a progress bar per call
    try:
        from MEGABYTE_pytorch import MEGABYTE
    except ImportError:
        return None
    torch.manual_seed(0)
    return MEGABYTE(num_tokens=256, max_seq_len=(-(-total // patch), patch), **shape).eval()


@torch.no_grad()
def lucidrains_integrated(model: nn.Module, batch: int, prompt: int, new: int, points: int) -> dict:
    """One iteration of megabyte-pytorch's own sampling loop (its forward over the sequence so
    far, top-k, Gumbel sample, concatenation) at spread lengths, best of 2."""
    from MEGABYTE_pytorch.megabyte import gumbel_sample, top_k

    def iteration(seq: torch.Tensor) -> torch.Tensor:  # the body of its MEGABYTE.generate
        logits = top_k(model.forward(seq)[:, -1], thres=0.9)
        return torch.cat((seq, gumbel_sample(logits, dim=-1, temperature=1.0)[:, None]), dim=-1)

    iteration(h.random_bytes(batch, prompt + new // 2))
    per_byte = lambda t: h.measure(partial(iteration, h.random_bytes(batch, t, seed=t)), 2, 0).best  # noqa: E501, E731
    return {"method": f"integrated: its sampling-loop iteration at {points} lengths "
            "(torch.no_grad)", **h.integrate(per_byte, prompt, new, points)}  # fmt: skip


def short_comparison(megabyte: nn.Module, sizes: dict, lucidrains: bool) -> dict | None:
    """The issue's comparison, (prompt, new) = `short` at batch 1, both timed in full
    (megabyte-pytorch sized to exactly prompt + new bytes: its generate fills max_seq_len)."""
    prompt, new = sizes["short"]
    patch = megabyte.config.patch_size
    theirs = lucidrains and lucidrains_model(sizes["lucidrains"], patch, prompt + new)
    if not theirs:
        return None
    ours = new / cached_full(megabyte, 1, prompt, new)["seconds"]
    x = h.random_bytes(1, prompt)
    with torch.no_grad():
        seconds = h.measure(lambda: theirs.generate(prime=x), repeats=2).best
    return {"prompt": prompt, "new_bytes": new, "threads": torch.get_num_threads(),
            "megabyte_bytes_per_s": ours,
            "megabyte_pytorch_bytes_per_s": new / seconds}  # fmt: skip


def decode_schedule(model: nn.Module) -> list[list[nn.Linear]]:
    """The linear layers a cached decode runs for each byte of a patch (one byte for the
    ByteTransformer), in order: each stage per token of it (w_GL first), the head per byte."""
    if isinstance(model, ByteTransformer):
        return [h.linears(model)]  # its blocks, then the head
    stages = h.megabyte_stages(model)
    sizes, rounds = [s["token_bytes"] for s in stages], []
    for p in range(sizes[0]):
        layers = []
        for s, stage in enumerate(stages):
            if p % sizes[s] == 0:
                layers += stage["context"] if s and p % sizes[s - 1] == 0 else []
                layers += stage["token"] + stage["transformer"]
        rounds.append(layers + [model.head])
    return rounds


def weight_bytes_per_byte(model: nn.Module) -> float:
    """Matmul-weight bytes one generated byte reads at batch 1 (KV caches excluded)."""
    schedule = decode_schedule(model)
    weights = sum(layer.weight.numel() for step in schedule for layer in step)
    return model.head.weight.element_size() * weights / len(schedule)


@torch.inference_mode()
def linears_alone(model: nn.Module, batch: int) -> float:
    """Seconds per decode step of its linear layers alone, back to back on fixed inputs: the
    floor of an eager decode here (`8 t(1) / t(8)`: the batch-8 speed-up the kernels allow)."""
    schedule = decode_schedule(model)
    layers = [layer for step in schedule for layer in step]
    inputs = [torch.randn(batch, layer.in_features) for layer in layers]
    rounds = max(1, 64 // len(schedule))

    def run() -> None:
        for _ in range(rounds):
            for layer, x in zip(layers, inputs):
                F.linear(x, layer.weight, layer.bias)

    return h.measure(run).median / (rounds * len(schedule))


def floor(name: str, model: nn.Module, seconds: dict[int, float], new: int, size: int) -> dict:
    """Batch-1 time per byte (`seconds`: batch -> seconds for `new` bytes) against the memory
    floor on these threads and the linear layers alone, and the batch speed-up against theirs."""
    b1, b8 = min(seconds), max(seconds)
    bandwidth = h.matvec_bandwidth(size)["bytes_per_s"]
    alone = {b: linears_alone(model, b) for b in seconds}
    measured, weights = seconds[b1] / new, weight_bytes_per_byte(model)
    return {"model": name, "threads": torch.get_num_threads(), "matvec_bytes_per_s": bandwidth,
            "weight_bytes_per_byte": weights, "floor_s_per_byte": weights / bandwidth,
            "measured_s_per_byte": measured, "linears_alone_s_per_step": alone[b1],
            "batch_speedup": b8 * seconds[b1] / seconds[b8],
            "linears_alone_batch_speedup": b8 * alone[b1] / alone[b8]}  # fmt: skip


@torch.inference_mode()
def lean_step(model: nn.Module, steps: int = 64) -> dict:
    """Cached decode through `TransformerStack.step` (the one-position path) against every
    stack's generic `forward` on one position, interleaved; operator calls per step (profiler)."""
    from torch.profiler import profile

    steps = min(steps, model.config.max_seq_len - 17)
    buffer = h.random_bytes(1, model.config.max_seq_len, seed=5)
    stacks = [m for m in model.modules() if isinstance(m, TransformerStack)]
    generic = lambda stack, x, caches: type(stack).forward(stack, x[:, None], caches)[:, 0]  # noqa: E731

    def decode(lean: bool = True, profiler: profile | None = None) -> None:
        decoder = model.decoder(buffer)
        decoder.prefill(16)
        for stack in [] if lean else stacks:
            stack.step = partial(generic, stack)
        with profiler or nullcontext():
            for t in range(17, 17 + steps):
                decoder.advance(t)
        for stack in [] if lean else stacks:
            del stack.step

    timings = h.measure({"step": decode, "forward": partial(decode, lean=False)}, 5, warmup=0)
    decode(profiler=(profiler := profile()))
    counts = {e.key: e.count for e in profiler.key_averages()}
    keys = ("cat", "empty", "empty_strided", "copy_", "linear", "scaled_dot_product_attention")
    return {"steps": steps, "step_s_per_byte": timings["step"].median / steps,
            "forward_s_per_byte": timings["forward"].median / steps,
            "ops_per_step": {k: counts.get(f"aten::{k}", 0) / steps for k in keys}}  # fmt: skip


def add_rates(rows: dict[str, dict], new: int) -> dict[str, dict]:
    """bytes/s and ms per step of each `name/batch` row."""
    for key, entry in rows.items():
        batch = int(key.split("/")[1])
        entry.update(batch=batch, bytes_per_s=batch * new / entry["seconds"],
                     ms_per_step=1e3 * entry["seconds"] / new)  # fmt: skip
    return rows


def generation_table(rows: dict[str, dict]) -> str:
    table = [[LABELS[key.split("/")[0]], g["batch"], f"{g['bytes_per_s']:,.1f}",
              f"{g['ms_per_step']:.2f}", f"{g['seconds']:,.1f}", g["method"]]
             for key, g in rows.items()]  # fmt: skip
    return h.markdown_table(["model", "batch", "bytes/s", "ms/step", "seconds", "how"], table)


def run_gpu(smoke: bool) -> dict:
    """Cached generation on CUDA, both models, batch 1 and 8, eager and compiled (each step kind
    one CUDA graph), on the CPU when smoke-testing."""
    sizes, device = SMOKE if smoke else FULL, "cuda" if torch.cuda.is_available() else "cpu"
    prompt, new, rows = sizes["prompt"], sizes["new_bytes"], {}
    for name, model in h.equal_pair(prompt + new, smoke).items():
        model = model.to(device).eval()
        for batch in (1, 8):
            for kind in ("cached", "compiled"):
                h.log(f"{device}: {name} {kind}, batch {batch}")
                rows[f"{name}_{kind}/{batch}"] = cached_full(
                    model, batch, prompt, new, compile=kind == "compiled"
                )
    return {"device": torch.cuda.get_device_name(0) if device == "cuda" else "cpu (smoke)",
            "sizes": sizes, "generate": add_rates(rows, new)}  # fmt: skip


def run_cpu(args: argparse.Namespace) -> dict:
    sizes = SMOKE if args.smoke else FULL
    prompt, new, points, batches = (sizes[k] for k in ("prompt", "new_bytes", "points", "batches"))
    models = {name: m.eval() for name, m in h.equal_pair(prompt + new, args.smoke).items()}
    megabyte, transformer = models.values()
    patch = megabyte.config.patch_size
    lucid = None
    if not args.no_lucidrains:
        lucid = lucidrains_model(sizes["lucidrains"], patch, prompt + new)
    rows, default_threads = {}, torch.get_num_threads()
    with h.threads(args.generate_threads) as used:
        for b in batches:
            h.log(f"batch {b}: MEGABYTE cached, ByteTransformer cached, uncached, megabyte-pytorch")
            rows[f"megabyte_cached/{b}"] = cached_full(megabyte, b, prompt, new)
            rows[f"byte_transformer_cached/{b}"] = (
                cached_full(transformer, b, prompt, new) if b == 1
                else cached_integrated(transformer, b, prompt, new, points))  # fmt: skip
            rows[f"megabyte_uncached/{b}"] = uncached_integrated(
                megabyte, b, prompt, new, points, sizes["span"])  # fmt: skip
            if lucid is not None:
                rows[f"megabyte_pytorch/{b}"] = lucidrains_integrated(lucid, b, prompt, new, points)  # noqa: E501
        h.log("floors, the short comparison, the lean step")
        floors = [floor(name, model, {b: rows[f"{name}_cached/{b}"]["seconds"] for b in batches},
                        new, sizes["matvec"]) for name, model in models.items()]  # fmt: skip
        short = [short_comparison(megabyte, sizes, lucid is not None)]
        lean = lean_step(megabyte)
    if default_threads != used:  # what a user's `generate` gets
        h.log(f"MEGABYTE cached at {default_threads} threads")
        seconds = {b: cached_full(megabyte, b, prompt, new)["seconds"] for b in batches}
        floors.append(floor("megabyte", megabyte, seconds, new, sizes["matvec"]))
        short.append(short_comparison(megabyte, sizes, lucid is not None))
    weights = {n: sum(x.weight.numel() for x in h.linears(m)) for n, m in models.items()}
    if lucid is not None:
        weights["megabyte_pytorch"] = sum(x.weight.numel() for x in h.linears(lucid))
    return {"threads": used, "sizes": sizes, "megabyte_pytorch_installed": lucid is not None,
            "linear_weights": weights, "generate": add_rates(rows, new), "floors": floors,
            "short_comparisons": [s for s in short if s], "lean_step": lean}  # fmt: skip


def render(r: dict) -> str:
    sizes, (b1, b8) = r["sizes"], r["sizes"]["batches"]
    where = f", {r['device']}" if "device" in r else f"; {r['threads']} thread(s) unless noted"
    out = [f"{sizes['new_bytes']:,} bytes after a {sizes['prompt']}-byte prompt, temperature "
           f"1{where}.", generation_table(r["generate"])]  # fmt: skip
    if "device" in r:
        return "\n\n".join(out)
    if not r["megabyte_pytorch_installed"]:
        out.append("megabyte-pytorch is not installed (`pip install -e .[bench]`): no rows.")
    out.append(f"**Batch {b1} against the memory floor** (weight bytes read per generated byte ÷ "
               "fp32 mat-vec read bandwidth on the same threads; KV-cache reads not counted) and "
               "against the step's linear layers alone (back to back in decode order, no other "
               f"op), and batch {b8} ÷ batch {b1} bytes/s against what the linears alone allow "
               f"({b8} × their batch-{b1} time ÷ their batch-{b8} time), all in the same "
               "run:")  # fmt: skip
    ms = lambda seconds: f"{1e3 * seconds:.2f}"  # noqa: E731
    out.append(h.markdown_table(
        ["model", "threads", "mat-vec GB/s", "weight MB/byte", "floor ms/byte",
         "linears alone ms/byte", "measured ms/byte", "÷ floor", "÷ linears alone",
         f"batch {b8} ÷ {b1} (linears alone)"],
        [[LABELS[f"{f['model']}_cached"], f["threads"], f"{f['matvec_bytes_per_s'] / 1e9:.1f}",
          f"{f['weight_bytes_per_byte'] / 1e6:.2f}", ms(f["floor_s_per_byte"]),
          ms(f["linears_alone_s_per_step"]), ms(f["measured_s_per_byte"]),
          f"**{f['measured_s_per_byte'] / f['floor_s_per_byte']:.2f}×**",
          f"{f['measured_s_per_byte'] / f['linears_alone_s_per_step']:.2f}×",
          f"**{f['batch_speedup']:.1f}×** ({f['linears_alone_batch_speedup']:.1f}×)"]
         for f in r["floors"]]))  # fmt: skip
    for s in r["short_comparisons"]:
        out.append(f"**{s['new_bytes']} bytes after a {s['prompt']}-byte prompt**, batch 1, "
                   f"{s['threads']} thread(s), both timed in full: MEGABYTE cached "
                   f"{s['megabyte_bytes_per_s']:,.0f} bytes/s, megabyte-pytorch "
                   f"{s['megabyte_pytorch_bytes_per_s']:,.1f} bytes/s: **"
                   f"{s['megabyte_bytes_per_s'] / s['megabyte_pytorch_bytes_per_s']:.1f}×**."
                   )  # fmt: skip
    lean = r["lean_step"]
    ops = ", ".join(f"`{k}` {v:.2f}" for k, v in lean["ops_per_step"].items())
    out.append(f"Lean cached step (`TransformerStack.step`) against the generic `forward` with a "
               f"cache, MEGABYTE batch 1, {lean['steps']} steps interleaved: "
               f"{ms(lean['step_s_per_byte'])} against {ms(lean['forward_s_per_byte'])} ms/byte, "
               f"**{lean['forward_s_per_byte'] / lean['step_s_per_byte']:.2f}×**. Per cached "
               f"step (profiler): {ops}.")  # fmt: skip
    return "\n\n".join(out)


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--generate-threads", type=int, default=1, help="torch threads (1)")
    parser.add_argument("--no-lucidrains", action="store_true", help="skip megabyte-pytorch")
    parser.add_argument("--gpu", action="store_true", help="cached generation on CUDA (gpu.sh)")


@h.case("generate", render, options)
def run(args: argparse.Namespace) -> dict:
    if not args.gpu:
        return run_cpu(args)
    with h.threads(args.generate_threads):  # megabyte-pytorch does not run on the GPU
        return run_gpu(args.smoke)


# -- decode: the compiled decode step against the eager one and the targets ----------

DECODE_FULL = dict(prompt=16, new_bytes=2048, batches=(1, 8), short=(16, 256), repeats=3,
                   matvec=8192, lucidrains=FULL["lucidrains"], profile_steps=64)  # fmt: skip
DECODE_SMOKE = dict(prompt=4, new_bytes=24, batches=(1, 2), short=(4, 12), repeats=1,
                    matvec=256, lucidrains=SMOKE["lucidrains"], profile_steps=8)  # fmt: skip


def warmed_decoder(model: nn.Module, steps: int, batch: int) -> tuple[object, torch.Tensor, range]:
    """A compiled decoder of random bytes, prefilled to byte 16 and stepped through one patch
    (so every step kind is compiled), its buffer, and the next `steps` positions (or fewer)."""
    buffer, patch = h.random_bytes(batch, model.config.max_seq_len, seed=5), model.config.patch_size
    decoder = model.decoder(buffer, compile=True)
    decoder.prefill(16 % model.config.max_seq_len)
    for t in range(17, 17 + patch):
        decoder.advance(t)
    return decoder, buffer, range(17 + patch, min(17 + patch + steps, model.config.max_seq_len))


@torch.inference_mode()
def step_profile(model: nn.Module, steps: int, batch: int) -> str:
    """torch.profiler table (self CPU time) of `steps` compiled cached steps at `batch`."""
    from torch.profiler import profile

    decoder, _, positions = warmed_decoder(model, steps, batch)
    with profile() as profiler:
        for t in positions:
            decoder.advance(t)
    return profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=14)


@torch.inference_mode()
def step_kind_times(model: nn.Module, steps: int, batch: int) -> dict:
    """Median ms of a compiled step that starts a patch (the global model's step, then the local
    one), of a step within a patch (the local model alone) and of sampling its byte."""
    decoder, buffer, positions = warmed_decoder(model, steps, batch)
    times: dict[str, list[float]] = {"patch_start": [], "within_patch": [], "sample": []}
    for t in positions:
        start = time.perf_counter()
        logits = decoder.advance(t)
        middle = time.perf_counter()
        buffer[:, t] = sample_next_byte(logits)
        times["within_patch" if t % model.config.patch_size else "patch_start"].append(
            middle - start
        )
        times["sample"].append(time.perf_counter() - middle)
    return {name: 1e3 * statistics.median(v) for name, v in times.items()}


def run_decode(args: argparse.Namespace) -> dict:
    """Eager and compiled cached generation interleaved in one run, batch 1 and 8, with the
    memory floor, the linears alone and megabyte-pytorch on 256 bytes after 16 as references."""
    s = DECODE_SMOKE if args.smoke else DECODE_FULL
    prompt, new, (b1, b8) = s["prompt"], s["new_bytes"], s["batches"]
    model = h.equal_pair(prompt + new, args.smoke)["megabyte"].eval()
    with h.threads(args.generate_threads) as used:
        bandwidth_before = h.matvec_bandwidth(s["matvec"])["bytes_per_s"]
        inputs = {b: h.random_bytes(b, prompt) for b in (b1, b8)}
        compile_s = {}
        for b in (b1, b8):  # the first compiled call compiles every step kind for batch b
            h.log(f"compiling the decode step, batch {b}")
            model.generate(inputs[b], 1)  # eager warm-up, so the compiled figure is compile only
            eager_one = h.once(lambda b=b: model.generate(inputs[b], 2 * model.config.patch_size))
            compiled_one = h.once(
                lambda b=b: model.generate(inputs[b], 2 * model.config.patch_size, compile=True)
            )
            compile_s[b] = compiled_one - eager_one
        h.log("eager and compiled generation, interleaved")
        workloads = {f"{kind}/{b}": partial(model.generate, inputs[b], new,
                                            compile=kind == "compiled")
                     for b in (b1, b8) for kind in ("eager", "compiled")}  # fmt: skip
        timings = h.measure(workloads, s["repeats"])
        seconds = {key: t.median for key, t in timings.items()}
        alone = {b: linears_alone(model, b) for b in (b1, b8)}
        bandwidth = max(bandwidth_before, h.matvec_bandwidth(s["matvec"])["bytes_per_s"])
        h.log("256 bytes after 16: eager, compiled, megabyte-pytorch, interleaved")
        short_prompt, short_new = s["short"]
        short_model = h.equal_pair(short_prompt + short_new, args.smoke)["megabyte"].eval()
        x = h.random_bytes(1, short_prompt)
        short = {"eager": partial(short_model.generate, x, short_new),
                 "compiled": partial(short_model.generate, x, short_new, compile=True)}  # fmt: skip
        theirs = None if args.no_lucidrains else lucidrains_model(
            s["lucidrains"], short_model.config.patch_size, short_prompt + short_new)  # fmt: skip
        if theirs is not None:
            short["megabyte_pytorch"] = partial(torch.no_grad()(theirs.generate), prime=x)
        short_s = {k: t.median for k, t in h.measure(short, s["repeats"] + 2).items()}
        h.log("profiles of the compiled step")
        tables = {b: step_profile(model, s["profile_steps"], b) for b in (b1, b8)}
        kinds = {b: step_kind_times(model, 4 * s["profile_steps"], b) for b in (b1, b8)}
    weights = weight_bytes_per_byte(model)
    return {"threads": used, "sizes": s, "compile_s": compile_s, "seconds": seconds,
            "matvec_bytes_per_s": bandwidth, "weight_bytes_per_byte": weights,
            "floor_s_per_byte": weights / bandwidth, "linears_alone_s_per_step": alone,
            "short_seconds": short_s, "megabyte_pytorch_installed": theirs is not None,
            "profiles": tables, "step_kinds_ms": kinds,
            "patch_size": model.config.patch_size}  # fmt: skip


def render_decode(r: dict) -> str:
    s, (b1, b8) = r["sizes"], r["sizes"]["batches"]
    new, floor_ms = s["new_bytes"], 1e3 * r["floor_s_per_byte"]
    per_byte = {k: 1e3 * v / new for k, v in r["seconds"].items()}  # ms per step
    rows = []
    for b in (b1, b8):
        for kind in ("eager", "compiled"):
            ms = per_byte[f"{kind}/{b}"]
            rows.append([f"MEGABYTE cached, {kind}", b, f"{b * 1e3 / ms:,.0f}", f"{ms:.3f}",
                         f"{ms / floor_ms:.2f}×" if b == b1 else "–",
                         f"{r['compile_s'][b]:.0f}" if kind == "compiled" else "–"])  # fmt: skip
    out = [f"{new:,} bytes after a {s['prompt']}-byte prompt, temperature 1, {r['threads']} "
           f"thread(s), median of {s['repeats']} interleaved runs (eager and compiled, batch "
           f"{b1} and {b8}). Floor: {r['weight_bytes_per_byte'] / 1e6:.2f} MB of weights per "
           f"byte ÷ {r['matvec_bytes_per_s'] / 1e9:.1f} GB/s fp32 mat-vec (same run) = "
           f"{floor_ms:.3f} ms/byte; the linear layers alone take "
           f"{1e3 * r['linears_alone_s_per_step'][b1]:.3f} ms/byte.",
           h.markdown_table(["decoder", "batch", "bytes/s", "ms/step", "÷ floor",
                             "compile s"], rows)]  # fmt: skip
    best = {b: min(per_byte[f"eager/{b}"], per_byte[f"compiled/{b}"]) for b in (b1, b8)}
    short, (sp, sn) = r["short_seconds"], s["short"]
    targets = [["batch-1 time per byte ÷ memory floor", "≤ 1.25×",
                f"{per_byte[f'compiled/{b1}'] / floor_ms:.2f}× compiled, "
                f"{per_byte[f'eager/{b1}'] / floor_ms:.2f}× eager"],
               [f"batch {b8} ÷ batch {b1} bytes/s", "≥ 5×",
                f"{b8 * per_byte[f'compiled/{b1}'] / per_byte[f'compiled/{b8}']:.1f}× compiled, "
                f"{b8 * per_byte[f'eager/{b1}'] / per_byte[f'eager/{b8}']:.1f}× eager, "
                f"{b8 * best[b1] / best[b8]:.1f}× best of each (linears alone allow "
                f"{b8 * r['linears_alone_s_per_step'][b1] / r['linears_alone_s_per_step'][b8]:.1f}×)"]]  # fmt: skip  # noqa: E501
    if "megabyte_pytorch" in short:
        targets.append([f"{sn} bytes after {sp}, ÷ megabyte-pytorch", "≥ 30×",
                        f"{short['megabyte_pytorch'] / short['compiled']:.1f}× compiled, "
                        f"{short['megabyte_pytorch'] / short['eager']:.1f}× eager "
                        f"({sn / short['compiled']:,.0f} and {sn / short['eager']:,.0f} against "
                        f"{sn / short['megabyte_pytorch']:,.1f} bytes/s)"])  # fmt: skip
    else:
        out.append("megabyte-pytorch is not installed (`pip install -e .[bench]`): no ratio.")
    out.append(h.markdown_table(["target", "goal", "measured (same run)"], targets))
    patch, kinds = r["patch_size"], r["step_kinds_ms"]
    mean = {b: (k["patch_start"] + (patch - 1) * k["within_patch"]) / patch + k["sample"]
            for b, k in kinds.items()}  # fmt: skip
    out.append(f"Compiled steps by kind (median ms, up to {4 * s['profile_steps']} steps after "
               f"one patch that compiles every kind; P = {patch}): a step that starts a patch "
               "runs the global model and then the local one, a step within a patch the local "
               "model alone; the mean is (start + (P − 1) × within) ÷ P + sampling. "
               f"For the 5× target, batch {b8} needs a mean step ≤ {b8 / 5:.1f}× batch {b1}'s: "
               f"{b8 / 5 * mean[b1]:.3f} ms here.")  # fmt: skip
    out.append(h.markdown_table(
        ["batch", "step starting a patch", "step within a patch", "sampling", "mean per step"],
        [[b, f"{k['patch_start']:.3f}", f"{k['within_patch']:.3f}", f"{k['sample']:.3f}",
          f"{mean[b]:.3f}"] for b, k in kinds.items()]))  # fmt: skip
    for b, table in r["profiles"].items():
        out.append(f"Profile of {s['profile_steps']} compiled steps at batch {b} (self CPU "
                   f"time; `Torch-Compiled Region` rows: one per step kind):"
                   f"\n\n```\n{table.strip()}\n```")  # fmt: skip
    return "\n\n".join(out)


def decode_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--generate-threads", type=int, default=1, help="torch threads (1)")
    parser.add_argument("--no-lucidrains", action="store_true", help="skip megabyte-pytorch")


h.case("decode", render_decode, decode_options)(run_decode)
