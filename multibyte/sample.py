"""``multibyte sample``: generate from a checkpoint with the KV-cached ``generate``.

The adapter decides everything about its modality: which part of a ``--prompt`` file the model
sees (``read_prompt``, default ``--prompt-fraction``: its ``prompt_fraction``), how many bytes
are generated (``plan_sample``) and how samples are written (``render``): for the built-ins a
PNG grid whose first row shows the prompt (image), one WAV per sample (audio), or raw bytes
printed and saved (text). With ``--n`` > 1, per-sample files go to ``OUT-0.ext``, ...
A fixed ``--seed`` gives the same bytes on every run on the same device.
"""

from __future__ import annotations

import argparse
import math
import re
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

import modalities
from modalities import Prompt
from multibyte.checkpoint import CheckpointError, DeviceError, check_device, load
from multibyte.data.header import HeaderTable, is_mixture
from multibyte.outputs import OutputError, check_new_file, move_into_place, same_file, staging
from multibyte.prepared import ModalityMismatch, ModalityUnknown, describe, open_prepared


class SampleError(ValueError):
    """Bad input to ``multibyte sample``."""


def generate(
    model: nn.Module,
    prompt: torch.Tensor,
    max_new_bytes: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
    progress: bool = True,
    compile: bool = False,
) -> torch.Tensor:
    """``model.generate(..., use_cache=True)`` with a tqdm bar that ticks once per byte;
    `compile`: every cached step one compiled graph (see `Megabyte.decoder`)."""
    with tqdm(total=max_new_bytes, unit="B", desc="sample", disable=not progress) as bar:
        return model.generate(
            prompt,
            max_new_bytes,
            temperature=temperature,
            top_k=top_k,
            top_p=top_p,
            use_cache=True,
            generator=generator,
            progress=lambda done: bar.update(done - bar.n),
            compile=compile,
        )


def fraction_defaults() -> str:
    """``name F`` for every modality whose adapter declares its default prompt fraction."""
    parts = []
    for name in modalities.available():
        fraction = getattr(modalities.factory(name), "prompt_fraction", None)
        if fraction is not None:
            parts.append(f"{name} {fraction:g}")
    return ", ".join(parts)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="multibyte sample", description=__doc__.split("\n")[0])
    parser.add_argument("--ckpt", required=True, help="checkpoint (.ckpt or exported)")
    parser.add_argument("--modality", help="default: the checkpoint's")
    parser.add_argument("--out", required=True, help="output path (the modality's format)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    parser.add_argument("--prompt", help="prompt file (the modality's format)")
    parser.add_argument(
        "--prompt-fraction",
        type=float,
        help=f"part of the prompt kept (default: the modality's; {fraction_defaults()})",
    )
    parser.add_argument("--n", type=int, default=4, help="number of samples")
    parser.add_argument(
        "--max-new-bytes",
        type=int,
        help="bytes to generate (default: the modality's; modalities whose every sample has one "
        "size generate whole samples and refuse it)",
    )
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--top-k", type=int)
    parser.add_argument("--top-p", type=float)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--compile",
        action="store_true",
        help="run each decoding step as one compiled graph: ~10 s of compiling first, then "
        "1.4-1.8x faster per byte on a CPU (pays for long samples, e.g. whole images)",
    )
    return parser


def _note(message: str) -> None:
    print(f"multibyte sample: {message}", file=sys.stderr)


def check_args(args: argparse.Namespace) -> None:
    """The numbers and the device, before the checkpoint is read."""
    if args.n < 1:
        raise SampleError(f"--n must be positive, got {args.n}")
    if args.max_new_bytes is not None and args.max_new_bytes < 1:
        raise SampleError(f"--max-new-bytes must be at least 1, got {args.max_new_bytes}")
    if not math.isfinite(args.temperature) or args.temperature < 0:
        raise SampleError(
            f"--temperature must be a finite number >= 0 (0: greedy), got {args.temperature}"
        )
    if args.top_k is not None and args.top_k < 1:
        raise SampleError(f"--top-k must be at least 1, got {args.top_k}")
    if args.top_p is not None and not 0.0 < args.top_p <= 1.0:
        raise SampleError(f"--top-p must be in (0, 1], got {args.top_p}")
    if args.prompt_fraction is not None and not 0.0 <= args.prompt_fraction <= 1.0:
        raise SampleError(f"--prompt-fraction must be in [0, 1], got {args.prompt_fraction}")
    try:
        check_device(args.device)
    except DeviceError as error:
        raise SampleError(str(error)) from error


def available_memory(device: str) -> int | None:
    """Bytes free for tensors on ``device`` (None when unknown)."""
    kind = torch.device(device).type
    if kind == "cuda":
        return int(torch.cuda.mem_get_info(torch.device(device))[0])
    if kind != "cpu":
        return None
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def batch_memory(model: nn.Module, n: int, length: int) -> int:
    """A lower bound on the bytes that sampling ``n`` rows of ``length`` bytes holds at once: the
    token ids, the KV caches of every layer (float32) and one step's logits."""
    config = model.config
    per_position = 8  # int64 ids
    # (width, depth, positions per cached entry); the local cache spans one patch: left out
    for width, depth, per in (
        ("global_dim", "global_layers", getattr(config, "patch_size", 1) or 1),
        ("dim", "layers", 1),
    ):
        dim, layers = getattr(config, width, 0) or 0, getattr(config, depth, 0) or 0
        per_position += 2 * 4 * dim * layers // per
    return n * (length * per_position + 256 * 4)


def check_memory(model: nn.Module, n: int, length: int, device: str) -> None:
    """SampleError when the batch cannot fit in the memory free on ``device``."""
    need, free = batch_memory(model, n, length), available_memory(device)
    if free is not None and need > free:
        raise SampleError(
            f"--n {n}: {n} samples of {length} bytes need at least {need / 1e9:.1f} GB on "
            f"{device}, more than the {free / 1e9:.1f} GB free; sample fewer at a time"
        )


def run(args: argparse.Namespace) -> list[Path]:
    """Sample as the command line asks; returns the files written."""
    if not Path(args.ckpt).exists():
        raise SampleError(f"checkpoint not found: {args.ckpt}")
    if args.prompt and not Path(args.prompt).is_file():
        raise SampleError(f"prompt file not found: {args.prompt}")
    check_args(args)
    check_outputs(args)
    try:
        model = load(args.ckpt, map_location=args.device)
    except (CheckpointError, FileNotFoundError) as error:
        raise SampleError(str(error)) from error
    trained = getattr(model, "modality", None) or None
    header, max_len = b"", model.config.max_seq_len
    if is_mixture(trained):
        trained, header, max_len = mixture_modality(trained, args.modality)
    try:
        adapter = open_prepared(
            [args.prompt] if args.prompt else (), trained, args.modality
        ).adapter
    except ModalityMismatch as error:  # the same refusal as `multibyte evaluate`
        raise SampleError(
            f"the data in {error.where} looks like {error.found} but the checkpoint was trained "
            f"on {error.expected}; pass --modality {error.found} to sample it anyway"
        ) from error
    except ModalityUnknown as error:
        raise SampleError("the checkpoint stores no modality: pass --modality") from error
    except ValueError as error:
        raise SampleError(str(error)) from error
    if trained and trained.get("name") != adapter.name:
        _note(f"the checkpoint was trained on {trained.get('name')}; sampling it as {adapter.name}")
    fraction = adapter.prompt_fraction if args.prompt_fraction is None else args.prompt_fraction
    if not 0.0 <= fraction <= 1.0:
        raise SampleError(f"--prompt-fraction must be in [0, 1], got {fraction}")
    frame = adapter.frame_bytes
    if args.max_new_bytes is not None and args.max_new_bytes % frame:
        raise SampleError(
            f"--max-new-bytes {args.max_new_bytes}: {describe(adapter.layout)} comes in "
            f"frames of {frame} bytes; give a multiple of {frame}"
        )
    generator = torch.Generator(device=args.device).manual_seed(args.seed)
    try:
        try:
            prompt = adapter.read_prompt(args.prompt, fraction) if args.prompt else Prompt()
        except Exception as error:  # noqa: BLE001 - any unreadable prompt is the user's file
            raise SampleError(
                f"prompt {args.prompt} cannot be read as {adapter.name}: {error}"
            ) from error
        prompt, new = adapter.plan_sample(prompt, args.max_new_bytes, max_len)
        for note in prompt.notes:
            _note(note)
        check_memory(model, args.n, len(header) + len(prompt.data) + new, args.device)
        x = torch.tensor(list(header + prompt.data), dtype=torch.long)
        x = x.reshape(1, -1).repeat(args.n, 1)
        out = generate(
            model,
            x.to(args.device),
            new,
            args.temperature,
            args.top_k,
            args.top_p,
            generator,
            progress=not args.quiet,
            compile=args.compile,
        )
        samples = [bytes(row.tolist())[len(header) :] for row in out.cpu()]
        target = Path(args.out)
        with staging(target.parent) as stage:  # every file complete, or none
            drawn = adapter.render(samples, stage / target.name, prompt)
            return move_into_place(drawn, target.parent, args.overwrite, "--out")
    except (ValueError, OSError) as error:
        raise SampleError(str(error)) from error


def output_files(out: Path, n: int) -> list[Path]:
    """``OUT`` and those of ``OUT-0.ext``, ..., ``OUT-(n-1).ext`` that exist: the files a render
    may write (one file, or one per sample) that are already there."""
    numbered = re.compile(re.escape(out.stem) + r"-(\d+)" + re.escape(out.suffix))
    found = []
    if n > 1 and out.parent.is_dir():
        for path in sorted(out.parent.iterdir()):
            match = numbered.fullmatch(path.name)
            if match and int(match[1]) < n and str(int(match[1])) == match[1]:
                found.append(path)
    return [out, *found]


def check_outputs(args: argparse.Namespace) -> None:
    """Before any work: no output file exists (unless --overwrite), none is the prompt, and
    the output folder is writable."""
    try:
        for path in output_files(Path(args.out), args.n):
            if args.prompt and same_file(path, args.prompt):
                raise OutputError(f"--out {path} is the --prompt file; it would be replaced")
            check_new_file(path, args.overwrite, "--out")
    except OutputError as error:
        raise SampleError(str(error)) from error


def mixture_modality(entry: dict[str, Any], name: str | None) -> tuple[dict, bytes, int]:
    """For a multimodal checkpoint: (the options of modality ``name``, its header, the data
    bytes the model was trained on). The header is the prompt's start, then stripped."""
    table = HeaderTable.from_entry(entry)
    known = ", ".join(str(m["name"]) for m in table.modalities)
    if name is None:
        raise SampleError(f"a multimodal checkpoint needs --modality (one of: {known})")
    found = table.find(name)
    if len(found) != 1:
        what = "several modalities named" if found else "no modality"
        raise SampleError(f"the checkpoint has {what} {name!r} (it has: {known})")
    return table.modalities[found[0]], table.headers[found[0]], table.data_len


def main(argv: list[str] | None = None) -> int:
    """``multibyte sample``; exit 2 on bad input."""
    args = build_parser().parse_args(argv)
    try:
        paths = run(args)
    except SampleError as error:
        print(f"multibyte sample: error: {error}", file=sys.stderr)
        return 2
    for path in paths:
        print(f"wrote {path}", file=sys.stderr)
    return 0


__all__ = [
    "SampleError",
    "batch_memory",
    "build_parser",
    "check_args",
    "check_outputs",
    "generate",
    "main",
    "mixture_modality",
    "run",
]
