"""The benchmark harness: case registry, the one timer, the one training step, models, output.

A case is `run(args) -> results` with `render(results) -> markdown` and its options, registered
by `@case(name, render, options)`; `run_case` (`python -m benchmarks run NAME`) adds machine,
date, load and command, writes `NAME.json` and rewrites the case's section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import ctypes
import gc
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from pathlib import Path
from typing import NoReturn

import torch
import yaml
from torch import nn

from multibyte.flops import matched_baseline
from multibyte.loss import next_byte_loss
from multibyte.model import ByteTransformer, ByteTransformerConfig, Megabyte, MegabyteConfig

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "benchmarks.md"
# The modules of the cases, in the order `run all` runs them.
MODULES = ("train_step", "generate", "scaling", "cpu_bf16", "fit_precision", "compression")
MODULES += ("multimodal", "quality")
STEP = "training step (`next_byte_loss` + backward + gradient clipping + AdamW, as ByteLM)"
LABELS = {"megabyte": "MEGABYTE", "byte_transformer": "ByteTransformer"}
# The equal-parameter pair, 14,155,776 non-embedding weights each (`non_embedding_parameters`):
#   MEGABYTE  global 4 x (4*512^2 + 2*512*2048) + local 2 x (4*256^2 + 2*256*1024)
#   baseline  8 x (4*384^2 + 2*384*1536)
PAIR = {
    "megabyte": dict(patch_size=8, global_dim=512, global_layers=4, global_heads=8)
    | dict(local_dim=256, local_layers=2, local_heads=4),
    "byte_transformer": dict(dim=384, layers=8, heads=6),
}
SMOKE_PAIR = {  # tiny, for `--smoke` runs of seconds
    "megabyte": dict(patch_size=4, global_dim=32, global_layers=1, global_heads=2)
    | dict(local_dim=16, local_layers=1, local_heads=2),
    "byte_transformer": dict(dim=24, layers=1, heads=2),
}


@dataclass(frozen=True)
class Case:
    run: Callable[[argparse.Namespace], dict]
    render: Callable[[dict], str]
    options: Callable[[argparse.ArgumentParser], None] | None
    documented: tuple[str, ...] = ()
    """Options of the run docs/benchmarks.md shows, which `run all` (without --smoke) adds."""


CASES: dict[str, Case] = {}


def case(
    name: str, render: Callable, options: Callable | None = None, documented: Sequence[str] = ()
) -> Callable:
    """Decorator: register `run(args) -> results` as the case `name`."""
    return lambda run: CASES.setdefault(name, Case(run, render, options, tuple(documented))).run


def log(message: str) -> None:  # progress to stderr: stdout carries the result section
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def fail(case: str, message: str) -> NoReturn:
    """A user error: one line naming the case and the reason, exit status 2."""
    print(f"python -m benchmarks run {case}: error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(2)


@contextmanager
def threads(count: int | None) -> Iterator[int]:
    """The body runs with `torch.set_num_threads(count)` (None: as it is); yields the count."""
    before = torch.get_num_threads()
    torch.set_num_threads(count or before)
    try:
        yield torch.get_num_threads()
    finally:
        torch.set_num_threads(before)


def sync() -> None:  # wait for queued GPU work, so that wall-clock times are honest
    if torch.cuda.is_initialized():
        torch.cuda.synchronize()


def _status_bytes(key: str) -> int:
    status = Path("/proc/self/status").read_text()
    return int(re.search(rf"^{key}:\s+(\d+) kB", status, re.M)[1]) * 1024


@contextmanager
def peak_memory(device: str = "cpu") -> Iterator[dict]:
    """Yields a dict that gets the body's peak memory and growth: on CPU `VmHWM`, reset by writing
    "5" to /proc/self/clear_refs (the JSON says where it could not), on CUDA allocated bytes."""
    memory: dict = {}
    if device == "cuda":
        sync()
        torch.cuda.reset_peak_memory_stats()
        start = torch.cuda.memory_allocated()
        yield memory
        sync()
        peak, method = torch.cuda.max_memory_allocated(), "torch.cuda.max_memory_allocated"
    else:
        gc.collect()  # and hand freed heap back (glibc), so earlier work does not inflate it
        getattr(ctypes.CDLL(None), "malloc_trim", lambda pad: 0)(0)
        try:
            Path("/proc/self/clear_refs").write_text("5")  # resets VmHWM to VmRSS
            method = "VmHWM after clear_refs"
        except OSError:  # not allowed here: the high-water mark since the process started
            method = "VmHWM, not reset"
        start = _status_bytes("VmRSS")
        yield memory
        peak = _status_bytes("VmHWM")
    memory.update(peak_bytes=peak, growth_bytes=max(peak - start, 0), method=method)


@dataclass
class Timing:
    """Seconds of the timed calls of one workload, and its peak memory when measured."""

    seconds: list[float] = field(default_factory=list)
    memory: dict | None = None

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def best(self) -> float:
        return min(self.seconds)

    def to_dict(self) -> dict:
        return {"median_s": self.median, "best_s": self.best, "max_s": max(self.seconds)}


def measure(
    workloads: Callable | dict, repeats: int | dict = 5, warmup: int = 1, memory: str = ""
) -> Timing | dict[str, Timing]:
    """Time one workload, or several interleaved (load from other processes falls on all alike):
    `warmup` untimed calls each, one more for peak memory with `memory` ("cpu" or "cuda"), then
    `repeats` timed calls each (a cheap one can be timed more often), spread over one schedule."""
    fns = {"": workloads} if callable(workloads) else workloads
    counts = repeats if isinstance(repeats, dict) else dict.fromkeys(fns, repeats)
    timings = {name: Timing() for name in fns}
    for name, fn in fns.items():
        for _ in range(warmup):
            fn()
        if memory:
            with peak_memory(memory) as timings[name].memory:
                fn()
    schedule = sorted(
        ((i + 0.5) / n, k, name) for k, (name, n) in enumerate(counts.items()) for i in range(n)
    )
    for _, _, name in schedule:
        sync()
        start = time.perf_counter()
        fns[name]()
        sync()
        timings[name].seconds.append(time.perf_counter() - start)
    return timings[""] if callable(workloads) else timings


def once(fn: Callable[[], object]) -> float:
    """Seconds of one call (for runs too long to repeat; the caller warms up)."""
    return measure(fn, repeats=1, warmup=0).best


def matmul_flops(size: int = 2048, dtype: torch.dtype = torch.float32) -> dict:
    """FLOP/s of a square `torch.matmul` (2 n^3 FLOPs) in `dtype`: the dense ceiling."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    out = torch.empty(size, size, dtype=dtype)
    timing = measure(lambda: torch.matmul(a, b, out=out), repeats=5, warmup=2)
    return {"size": size, "flops_per_s": 2 * size**3 / timing.median}


def matvec_bandwidth(size: int = 8192) -> float:
    """Read bandwidth (bytes/s) of an fp32 `torch.mv` whose matrix is far larger than the caches:
    the memory floor of batch-1 decoding."""
    a, v, out = torch.randn(size, size), torch.randn(size), torch.empty(size)
    return 4 * size * size / measure(lambda: torch.mv(a, v, out=out), repeats=7, warmup=2).median


def random_bytes(batch: int, length: int, seed: int = 2, device: str = "cpu") -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (batch, length), generator=generator).to(device)


def megabyte_config(shape: dict | MegabyteConfig, length: int, **options) -> MegabyteConfig:
    """A MEGABYTE config holding `length` bytes (max_seq_len rounded up to whole patches)."""
    config = shape if isinstance(shape, MegabyteConfig) else MegabyteConfig(**shape)
    config = replace(config, **options)
    return replace(config, max_seq_len=-(-length // config.patch_size) * config.patch_size)


def matched_transformer(config: MegabyteConfig, head_dim: int = 64) -> dict:
    """The ByteTransformer shape (dim, layers, heads) whose non-embedding parameters are closest
    to MEGABYTE's: `multibyte.flops.matched_baseline(by="params")`, the project's one matcher."""
    match = matched_baseline(config, config.max_seq_len, by="params", head_dim=head_dim)
    return dict(dim=match.dim, layers=match.layers, heads=match.heads)


def build_pair(
    config: MegabyteConfig,
    transformer: dict | None = None,
    only: Sequence[str] = tuple(LABELS),
    head_dim: int = 64,
) -> dict[str, nn.Module]:
    """The one model builder: MEGABYTE of `config` and a ByteTransformer of shape `transformer`
    (default: `matched_transformer`) with the same length, activation, dropout and activation
    checkpointing; `only` the names asked for, each from seed 0."""
    shared = ("max_seq_len", "activation", "dropout", "activation_checkpointing")
    shape = transformer or matched_transformer(config, head_dim)
    baseline = ByteTransformerConfig(**{k: getattr(config, k) for k in shared}, **shape)
    models = {}
    for name in only:
        torch.manual_seed(0)
        models[name] = Megabyte(config) if name == "megabyte" else ByteTransformer(baseline)
    return models


def equal_pair(length: int, smoke: bool = False) -> dict[str, nn.Module]:
    """The equal-parameter pair (or the smoke pair) holding `length` bytes."""
    shapes = SMOKE_PAIR if smoke else PAIR
    return build_pair(megabyte_config(shapes["megabyte"], length), shapes["byte_transformer"])


def recipe(name: str) -> dict:
    """The MEGABYTE config, batch size and `compile` setting of recipes/NAME.yaml."""
    text = yaml.safe_load((REPO / "recipes" / f"{name}.yaml").read_text())
    config = MegabyteConfig(**text["model"]["model"]["init_args"]["config"])
    compile = bool(text["model"].get("compile", False))
    return {"config": config, "batch_size": text["data"]["batch_size"], "compile": compile}


def linears(module: nn.Module | None) -> list[nn.Linear]:
    return [m for m in module.modules() if isinstance(m, nn.Linear)] if module else []


def megabyte_stages(model: Megabyte) -> list[dict]:
    """The one place where the benchmarks reach inside the stages: per stage, bytes per token and
    the linear layers of its transformer, its token embedding and its context (w_GL)."""
    stages = []
    for size, stage in zip(model.config.token_bytes, model.stages):
        context = [getattr(stage, name, None) for name in ("parent_proj", "parent_to_child")]
        layers = {
            "transformer": linears(stage.transformer),
            "token": linears(stage.embed.token_proj),
        }
        stages.append({"token_bytes": size, **layers, "context": sum(map(linears, context), [])})
    return stages


def training_step(
    model: nn.Module, x: torch.Tensor, autocast: torch.dtype | None = None
) -> Callable[[], torch.Tensor]:
    """The step every benchmark times, as training takes it: `next_byte_loss` (what
    `ByteLM.training_step` returns), backward, gradient norm clipped to 1 (every recipe's
    setting), AdamW with ByteLM's defaults (its weight-decay groups change no cost). Each call
    of the result is one step on `x`."""
    model.train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-4, betas=(0.9, 0.98), weight_decay=0.1)

    def step() -> torch.Tensor:
        with torch.autocast(x.device.type, dtype=autocast, enabled=autocast is not None):
            loss = next_byte_loss(model, x)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return loss.detach()

    return step


def si(value: float, unit: str = "", digits: int = 3) -> str:
    """1.23e9 -> '1.23 G' + unit."""
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.{digits}g} {prefix}{unit}"
    return f"{value:.{digits}g} {unit}".rstrip()


def number(value: float | None, digits: int = 3, sign: bool = False) -> str:
    """A figure for a table: 'n/a' when missing, else `digits` decimals (with a sign)."""
    if value is None:
        return "n/a"
    return f"{value:+.{digits}f}" if sign else f"{value:.{digits}f}"


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    return "\n".join(lines + ["| " + " | ".join(str(c) for c in row) + " |" for row in rows])


def shown(path: str | Path) -> str:
    """A path as the doc shows it: relative to the repository when inside it."""
    path = Path(path).resolve()
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else str(path)


def update_doc_section(section: str, body: str, path: Path = DOC) -> Path:
    """Replace the text between `<!-- benchmark:SECTION:begin -->` and `...:end -->` in `path`
    (append the section when missing); everything else in the file stays as it is."""
    begin, end = f"<!-- benchmark:{section}:begin -->", f"<!-- benchmark:{section}:end -->"
    block = f"{begin}\n{body.strip()}\n{end}"
    text = path.read_text() if path.exists() else "# Benchmarks\n"
    if begin in text and end in text:
        head, rest = text.split(begin, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + "\n\n" + block + "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def describe_machine() -> dict:
    """CPU model, cores, memory, torch version and threads, GPU if any (Linux: /proc)."""
    cpu = [x for x in Path("/proc/cpuinfo").read_text().splitlines() if x.startswith("model name")]
    memory = [x for x in Path("/proc/meminfo").read_text().splitlines() if "MemTotal" in x]
    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    machine = {"cpu": cpu[0].split(":", 1)[1].strip() if cpu else platform.machine(), "gpu": gpu}
    machine |= {"usable_cores": len(os.sched_getaffinity(0)), "torch": torch.__version__}
    machine["memory_bytes"] = int(memory[0].split()[1]) * 1024
    return machine | {"torch_threads": torch.get_num_threads()}


def header(r: dict) -> str:
    """The first lines of every section: machine, date, load, the command that reproduces it."""
    m, load, name = r["machine"], r["load_average_1min"], r["output"]
    gpu = f"GPU {m['gpu']}" if m["gpu"] else "no GPU used"
    return (
        f"Machine: {m['cpu']}, {m['usable_cores']} cores, {m['memory_bytes'] / 2**30:.0f} GiB "
        f"RAM, torch {m['torch']}, torch default {m['torch_threads']} threads, {gpu}. Run "
        f"{r['date']}; 1-minute load average {load['start']:.2f} at start, {load['end']:.2f} at "
        f"end.\n\nReproduce: `{r['command']}` (writes `runs/benchmarks/{name}.json`, or "
        f"`$OUT/{name}.json`).\n"
    )


def run_case(name: str, argv: Sequence[str] = ()) -> dict:
    """Run one case: measure, write `<name>.json` (in --out, else $OUT, else runs/benchmarks),
    print its section and rewrite it in docs/benchmarks.md (full CPU runs, or --doc)."""
    bench = CASES[name]
    parser = argparse.ArgumentParser(prog=f"python -m benchmarks run {name}")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, seconds; no doc update")
    parser.add_argument("--out", help="JSON file or folder (default $OUT, else runs/benchmarks)")
    parser.add_argument("--doc", help=f"markdown file to update (default {DOC} unless --smoke)")
    parser.add_argument("--no-doc", action="store_true", help="do not touch any markdown file")
    if bench.options:
        bench.options(parser)
    args = parser.parse_args(argv)
    gpu = getattr(args, "gpu", False)
    command, skip = ["python -m benchmarks run", name], False
    for arg in argv:  # what reproduces the run: its options, not where its output goes
        if not skip and arg != "--no-doc" and not arg.startswith(("--out", "--doc")):
            command.append(arg)
        skip = arg in ("--out", "--doc")
    date = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    results = {"benchmark": name, "output": f"gpu_{name}" if gpu else name, "date": date}
    results |= {"command": " ".join(command), "machine": describe_machine()}
    results["load_average_1min"] = {"start": os.getloadavg()[0]}
    results |= bench.run(args)
    results["load_average_1min"]["end"] = os.getloadavg()[0]
    body = header(results) + "\n" + bench.render(results)
    out = Path(args.out or os.environ.get("OUT") or REPO / "runs" / "benchmarks")
    path = out if out.suffix == ".json" else out / f"{results['output']}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=2) + "\n")
    print(f"{body}\nwrote {path}")
    doc = args.doc or (None if args.smoke or gpu else DOC)
    if doc and not args.no_doc:
        print(f"updated {update_doc_section(results['output'], body, Path(doc))}")
    return results


def cli(argv: Sequence[str] | None = None) -> int:
    """`python -m benchmarks list`, `... run CASE [--smoke] [options]`, `... run all [...]`."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["list"]:
        print("\n".join(CASES))
        return 0
    if len(argv) < 2 or argv[0] != "run" or argv[1] not in [*CASES, "all"]:
        usage = f"run {{{','.join(CASES)},all}} [--smoke] [options] (CASE --help: its options)"
        print(f"usage: python -m benchmarks list | {usage}", file=sys.stderr)
        return 2
    if argv[1] != "all":
        run_case(argv[1], argv[2:])
        return 0
    for name in CASES:  # one process per case: peak memory and glibc settings stay its own
        documented = [] if "--smoke" in argv else list(CASES[name].documented)
        command = [sys.executable, "-m", "benchmarks", "run", name, *documented, *argv[2:]]
        if code := subprocess.run(command).returncode:
            return code
    return 0
