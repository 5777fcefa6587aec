"""Which precision and whether to compile, resolved against the machine a run really has.

A recipe's `trainer.precision` is what it prefers. bf16 pays only where it is native: a CUDA GPU
of compute capability 8.0 or more, or a CPU with AVX512-BF16 or AMX. Elsewhere it is emulated,
and a CPU without bf16 units steps about 10x slower in bf16-mixed than in float32. So `fit`,
`validate`, `test`, the quickstart and the benchmarks all ask `resolve_precision` what to run,
and a precision given on the command line is taken as it is.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass

import torch

from multibyte.model.blocks import cpu_compile_unavailable
from multibyte.train.data import ConfigError

# Lightning's short spellings, mapped to the unified names it reports.
ALIASES = {"bf16": "bf16-mixed", "16": "16-mixed", "32": "32-true", "64": "64-true"}
HALF = ("bf16-mixed", "bf16-true", "16-mixed", "16-true")


@dataclass(frozen=True)
class Resolved:
    """A setting that ran and the reason, for the one line a run prints."""

    value: str
    reason: str

    def line(self, name: str) -> str:
        return f"{name}: {self.value} ({self.reason})"


def cpu_has_bf16_units() -> bool:
    """AVX512-BF16 or AMX on an x86 CPU. Elsewhere (an Arm CPU, say) torch cannot tell; bf16 is
    then taken as native there, as the recipe asks."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return True
    checks = [
        getattr(torch.cpu, name, None)
        for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    ]
    known = [check for check in checks if check is not None]
    return not known or any(check() for check in known)


def cuda_capability() -> tuple[int, int] | None:
    """The compute capability of the current CUDA device, or None without one."""
    if not torch.cuda.is_available():
        return None
    return torch.cuda.get_device_capability()


def normalize(precision: object) -> str:
    text = str(precision)
    return ALIASES.get(text, text)


def device_kind(accelerator: object) -> str:
    """ "cuda", "cpu" or another accelerator's name for a Trainer's `accelerator` setting: a
    name, "auto", an Accelerator, or a class_path entry from YAML."""
    if isinstance(accelerator, dict) or hasattr(accelerator, "class_path"):
        class_path = accelerator["class_path"] if isinstance(accelerator, dict) else None
        name = (class_path or accelerator.class_path).rsplit(".", 1)[-1].lower()
    elif accelerator is None or isinstance(accelerator, str):
        text = (accelerator or "auto").lower()
        if text == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        return "cuda" if text == "gpu" else text
    else:
        name = type(accelerator).__name__.lower()
    return "cuda" if "cuda" in name else "cpu" if "cpu" in name else name


def resolve_precision(requested: object, device: str, explicit: bool = False) -> Resolved:
    """The precision to run for a recipe's `requested` one on `device` ("cpu" or "cuda").

    bf16 where it is native; 16-mixed on a CUDA GPU older than compute capability 8.0; 32-true
    on a CPU without bf16 units. A full precision, another accelerator, or an `explicit` choice
    (given on the command line) is kept as it is.
    """
    asked = normalize(requested)
    if explicit:
        return Resolved(asked, "given on the command line")
    if asked not in HALF or device not in ("cpu", "cuda"):
        return Resolved(asked, "as the recipe asks")
    if device == "cpu":
        if cpu_has_bf16_units():
            value = "bf16-" + asked.split("-")[1]
            return Resolved(value, f"this CPU has bf16 units; the recipe asks for {asked}")
        return Resolved("32-true", f"this CPU has no bf16 units; the recipe asks for {asked}")
    major, minor = cuda_capability() or (0, 0)
    if (major, minor) >= (8, 0):
        return Resolved(asked, f"CUDA compute capability {major}.{minor} runs it natively")
    if asked.startswith("bf16"):
        return Resolved(
            "16-mixed",
            f"CUDA compute capability {major}.{minor} has no bf16 units; "
            f"the recipe asks for {asked}",
        )
    return Resolved(asked, f"the recipe asks for {asked}")


def resolve_compile(requested: bool, device: str, explicit: bool = False) -> Resolved:
    """Whether to torch.compile: a recipe's `compile: true` runs eager on a CPU where inductor
    finds no C++ compiler; an explicit `--model.compile true` there is a configuration error."""
    if not requested:
        return Resolved("false", "as asked")
    reason = cpu_compile_unavailable() if device == "cpu" else None
    if reason is None:
        return Resolved("true", "as asked")
    if explicit:
        raise ConfigError(f"model.compile: {reason}; install one or set it to false")
    return Resolved("false", f"{reason}; the recipe asks for compile: true")
