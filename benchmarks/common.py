"""Shared benchmark harness: machine description, timing, ceilings, peak memory, JSON, doc tables.

Peak memory on CPU is the process's resident-set high-water mark (`VmHWM` in /proc/self/status),
reset before each measured region by writing "5" to /proc/self/clear_refs (Linux >= 4.0). Where
that reset is not possible, `PeakMemory` falls back to `resource.getrusage(RUSAGE_SELF).ru_maxrss`,
which only ever grows over the process, and says so in its `method` field.
"""

from __future__ import annotations

import ctypes
import gc
import json
import os
import platform
import re
import resource
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import torch

# The equal-parameter pair every CPU benchmark compares (14,155,776 non-embedding weights each).
EQUAL_MEGABYTE = dict(
    patch_size=8, global_dim=512, global_layers=4, global_heads=8,
    local_dim=256, local_layers=2, local_heads=4,
)  # fmt: skip
EQUAL_TRANSFORMER = dict(dim=384, layers=8, heads=6)
# Tiny sizes for the smoke runs (seconds); benchmarks adjust single fields.
SMOKE_MEGABYTE = dict(
    patch_size=4, global_dim=32, global_layers=1, global_heads=2,
    local_dim=16, local_layers=1, local_heads=2,
)  # fmt: skip
SMOKE_TRANSFORMER = dict(dim=24, layers=1, heads=2)

REPO = Path(__file__).resolve().parent.parent
DOC = REPO / "docs" / "benchmarks.md"
MiB = 2**20


# ----------------------------------------------------------------------------- machine


def cpu_model() -> str:
    """The CPU's model name from /proc/cpuinfo (or the platform's processor string)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _meminfo_bytes(key: str) -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def describe_machine() -> dict:
    """CPU model, cores, memory, torch version and threads, GPU if any, load average."""
    try:
        usable = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        usable = os.cpu_count()
    info = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "usable_cores": usable,
        "memory_bytes": _meminfo_bytes("MemTotal"),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "load_average": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
    }
    return info


def machine_line(machine: dict) -> str:
    """One line naming the machine, for the doc."""
    mem = machine.get("memory_bytes")
    parts = [
        machine["cpu"],
        f"{machine['usable_cores']} cores",
        f"{mem / 2**30:.0f} GiB RAM" if mem else None,
        f"torch {machine['torch']}",
        f"torch default {machine['torch_threads']} threads",
        f"GPU {machine['gpu']}" if machine.get("gpu") else "no GPU used",
    ]
    return ", ".join(p for p in parts if p)


# ----------------------------------------------------------------------------- timing


@dataclass
class Timing:
    """Wall-clock seconds of repeated calls (after warm-up)."""

    seconds: list[float] = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def spread(self) -> float:
        """(max - min) / median: how noisy the repeats were."""
        return (max(self.seconds) - min(self.seconds)) / self.median

    def to_dict(self) -> dict:
        return {
            "median_s": self.median,
            "min_s": min(self.seconds),
            "max_s": max(self.seconds),
            "repeats": len(self.seconds),
            "seconds": self.seconds,
        }


def sync() -> None:
    """Wait for queued GPU work (no-op on CPU), so wall-clock times are honest."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()


def time_call(fn: Callable[[], object]) -> float:
    """Seconds one call of `fn` takes."""
    sync()
    start = time.perf_counter()
    fn()
    sync()
    return time.perf_counter() - start


def time_repeated(fn: Callable[[], object], repeats: int, warmup: int = 1) -> Timing:
    """Run `fn` `warmup` times untimed, then time `repeats` calls."""
    for _ in range(warmup):
        fn()
    return Timing([time_call(fn) for _ in range(repeats)])


def time_interleaved(
    fns: dict[str, Callable[[], object]], repeats: int | dict[str, int], warmup: int = 1
) -> dict[str, Timing]:
    """Time several workloads interleaved (a, b, a, b, ...), so that load from other processes
    on a shared machine falls on all of them alike and ratios of the medians stay fair.

    `repeats` may differ per workload (a cheap one can be timed more often); the calls of each
    are then spread evenly over the whole schedule.
    """
    counts = repeats if isinstance(repeats, dict) else dict.fromkeys(fns, repeats)
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    schedule = sorted(
        ((i + 0.5) / counts[name], order, name)
        for order, name in enumerate(fns)
        for i in range(counts[name])
    )
    timings = {name: Timing() for name in fns}
    for _, _, name in schedule:
        timings[name].seconds.append(time_call(fns[name]))
    return timings


# ----------------------------------------------------------------------------- ceilings


def matmul_flops(size: int = 2048, repeats: int = 5, dtype: torch.dtype = torch.float32) -> dict:
    """FLOP/s of one large square `torch.matmul` (2 n^3 FLOPs): the machine's dense ceiling."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    generator = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(size, size, device=device, dtype=dtype, generator=generator)
    b = torch.randn(size, size, device=device, dtype=dtype, generator=generator)
    out = torch.empty(size, size, device=device, dtype=dtype)
    timing = time_repeated(lambda: torch.matmul(a, b, out=out), repeats, warmup=2)
    flops = 2 * size**3
    return {
        "size": size,
        "dtype": str(dtype).removeprefix("torch."),
        "flops_per_s": flops / timing.median,
        "best_flops_per_s": flops / min(timing.seconds),
        "timing": timing.to_dict(),
    }


# ----------------------------------------------------------------------------- memory


def _status_bytes(key: str) -> int | None:
    try:
        match = re.search(rf"^{key}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M)
    except OSError:
        return None
    return int(match.group(1)) * 1024 if match else None


def _reset_peak_rss() -> bool:
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def _maxrss_bytes() -> int:
    scale = 1 if sys.platform == "darwin" else 1024  # bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def release_free_memory() -> None:
    """Collect garbage and hand freed heap pages back to the OS (glibc `malloc_trim`), so that
    the resident size before a measured region is not inflated by memory freed earlier."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class PeakMemory:
    """Context manager: resident-memory high-water mark over its body, and the growth over the
    resident size at entry (after `release_free_memory`). On GPU, use
    torch.cuda.max_memory_allocated instead (later)."""

    def __enter__(self) -> PeakMemory:
        release_free_memory()
        self.resettable = _reset_peak_rss() and _status_bytes("VmHWM") is not None
        self.method = "VmHWM after clear_refs" if self.resettable else "getrusage ru_maxrss"
        self.start = _status_bytes("VmRSS") or _maxrss_bytes()
        return self

    def __exit__(self, *exc) -> None:
        self.peak = (_status_bytes("VmHWM") if self.resettable else None) or _maxrss_bytes()
        self.growth = max(self.peak - self.start, 0)

    def to_dict(self) -> dict:
        return {"peak_rss_bytes": self.peak, "growth_bytes": self.growth, "method": self.method}


# ----------------------------------------------------------------------------- output


def output_path(name: str, out: str | os.PathLike | None = None) -> Path:
    """Where `name`.json goes: `out` (a .json file or a folder), else $OUT, else runs/benchmarks."""
    if out is not None:
        path = Path(out)
        return path if path.suffix == ".json" else path / f"{name}.json"
    if os.environ.get("OUT"):
        return Path(os.environ["OUT"]) / f"{name}.json"
    return REPO / "runs" / "benchmarks" / f"{name}.json"


def write_json(data: dict, path: Path) -> Path:
    """Write `data` as indented JSON, creating folders."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n")
    return path


def log(message: str) -> None:
    """Progress to stderr (stdout carries the result table)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


class threads:
    """Context manager: run the body with `torch.set_num_threads(count)` (None: leave as is)."""

    def __init__(self, count: int | None) -> None:
        self.count = count

    def __enter__(self) -> int:
        self.before = torch.get_num_threads()
        if self.count:
            torch.set_num_threads(self.count)
        return torch.get_num_threads()

    def __exit__(self, *exc) -> None:
        torch.set_num_threads(self.before)


def utc_now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A GitHub-flavoured markdown table."""
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def update_doc_section(section: str, body: str, path: Path = DOC) -> Path:
    """Replace the text between this section's markers in `path` (append it when missing).

    Markers: `<!-- benchmark:NAME:begin -->` ... `<!-- benchmark:NAME:end -->`; everything else
    in the file (prose written by hand) is left as it is.
    """
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


def si(value: float, unit: str = "", digits: int = 3) -> str:
    """1.23e9 -> '1.23 G' + unit."""
    for factor, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= factor:
            return f"{value / factor:.{digits}g} {prefix}{unit}"
    return f"{value:.{digits}g} {unit}".rstrip()


def matvec_bandwidth(
    size: int = 8192, repeats: int = 7, dtype: torch.dtype = torch.float32
) -> dict:
    """Read bandwidth of one large matrix-vector product (`torch.mv`, n x n matrix, far larger
    than the caches): matrix bytes / time. The memory floor of batch-1 decoding."""
    device = "cuda" if torch.cuda.is_available() else "cpu"
    generator = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(size, size, device=device, dtype=dtype, generator=generator)
    v = torch.randn(size, device=device, dtype=dtype, generator=generator)
    out = torch.empty(size, device=device, dtype=dtype)
    timing = time_repeated(lambda: torch.mv(a, v, out=out), repeats, warmup=2)
    matrix_bytes = a.numel() * a.element_size()
    return {
        "size": size,
        "dtype": str(dtype).removeprefix("torch."),
        "matrix_bytes": matrix_bytes,
        "threads": torch.get_num_threads(),
        "bytes_per_s": matrix_bytes / timing.median,
        "best_bytes_per_s": matrix_bytes / min(timing.seconds),
        "timing": timing.to_dict(),
    }


def common_args(parser) -> None:
    """The flags every benchmark takes, as `benchmarks.core` has them."""
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, seconds; no doc update")
    parser.add_argument("--out", help="JSON file or folder (default $OUT, else runs/benchmarks)")
    parser.add_argument("--doc", help=f"markdown file to update (default {DOC} unless --smoke)")
    parser.add_argument("--no-doc", action="store_true", help="do not touch any markdown file")


def finish(name: str, results: dict, render: Callable[[dict], str], args) -> Path:
    """Mark smoke runs in the recorded command, write the JSON, print the table and update the
    doc section (full runs, or --doc given)."""
    if args.smoke:
        results["command"] += " --smoke"
    body = render(results)
    path = write_json(results, output_path(name, args.out))
    print(body)
    print(f"\nwrote {path}")
    doc = args.doc or (None if args.smoke else DOC)
    if doc and not args.no_doc:
        update_doc_section(name, body, path=Path(doc))
        print(f"updated {doc}")
    return path


def header(machine: dict, command: str, extra: str = "") -> str:
    """The first lines of every results section: machine, date, load, how to reproduce."""
    load = machine.get("load_average")
    return (
        f"Machine: {machine_line(machine)}. Run {utc_now()}"
        + (f"; 1-minute load average {load[0]:.2f} at start" if load else "")
        + f".{(' ' + extra) if extra else ''}\n\nReproduce: `{command}`.\n"
    )
