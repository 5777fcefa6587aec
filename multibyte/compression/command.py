"""`multibyte compress` and `multibyte decompress`: files through a checkpoint, losslessly.

    multibyte compress --ckpt CKPT INPUT... --out OUT     OUT: a folder, or one `.mbz` file
    multibyte decompress --ckpt CKPT FILE... --out DIR

The checkpoint's modality adapter decides what is coded (`adapter.encode_exact(path)`: the
bytes it represents exactly, or a refusal) and how it is written back (`save_exact`). A bad
input gets one line naming it and the reason; the other inputs are still done, and the exit
status is 2. Outputs follow `multibyte.outputs`: an existing file is refused unless
`--overwrite` (an input is never replaced by an output, even then), the output folder is checked
before any work, and files appear only complete: written under a temporary name, read back and
compared with the decoded content, then renamed.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import nn
from tqdm import tqdm

import modalities
from multibyte.checkpoint import CheckpointError, load
from multibyte.compression.api import (
    ModelMismatchError,
    check_compatible,
    compress,
    decode_container,
    model_fingerprint,
)
from multibyte.compression.container import SAFE_SUFFIX, CompressionError, Container, unpack
from multibyte.data.header import is_mixture
from multibyte.outputs import OutputError, check_folder, replacing, same_file
from multibyte.prepared import resolve_options

SUFFIX = ".mbz"


class CommandError(ValueError):
    """A bad argument or input; the message names it."""


# -- shared ------------------------------------------------------------------------------------


def _load(ckpt: str, device: str = "cpu") -> nn.Module:
    if not Path(ckpt).exists():  # a .ckpt file, or a folder written by `multibyte export`
        raise CommandError(f"{ckpt}: checkpoint not found")
    try:
        return load(ckpt, map_location=device)
    except (CheckpointError, FileNotFoundError, RuntimeError) as error:
        raise CommandError(f"{ckpt}: {error}") from error


def _bar(total: int, name: str, quiet: bool) -> Any:
    return tqdm(total=total, unit="B", unit_scale=True, desc=name, disable=quiet, leave=False)


def _write_atomic(path: Path, write: Callable[[Path], None], check: Callable[[Path], None]) -> None:
    """write(tmp), check(tmp), then rename tmp to path; nothing is left at path on failure."""
    with replacing(path) as tmp:
        write(tmp)
        check(tmp)


def _check_targets(inputs: list[Path], targets: list[Path], overwrite: bool) -> None:
    """Before any work: no target is an input, and none exists unless ``overwrite``."""
    for target in targets:
        clash = next((p for p in inputs if same_file(p, target)), None)
        if clash is not None:
            raise CommandError(f"--out: {target} is the input {clash}; it would be replaced")
        if target.is_dir():
            raise CommandError(f"--out: {target} is a folder")
        if target.exists() and not overwrite:
            raise CommandError(f"--out: {target} already exists; pass --overwrite to replace it")


class Failures(list):
    """Refused inputs: each is printed at once (one line) and kept for the exit status."""

    def __init__(self, command: str) -> None:
        super().__init__()
        self.command = command

    def add(self, line: str) -> None:
        print(f"multibyte {self.command}: error: {line}", file=sys.stderr, flush=True)
        self.append(line)


# -- compress ----------------------------------------------------------------------------------


def compress_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="multibyte compress",
        description="Compress files losslessly with a checkpoint (one .mbz file per input).",
    )
    parser.add_argument("--ckpt", required=True, help="checkpoint (.ckpt or exported)")
    parser.add_argument("inputs", nargs="+", metavar="INPUT", help="files to compress")
    parser.add_argument(
        "--out",
        required=True,
        help="output folder (INPUT.mbz inside), or a .mbz file for one input",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    parser.add_argument("--modality", help="adapter name (default: the checkpoint's)")
    parser.add_argument("--chunk", type=int, help="bytes per chunk (default: max_seq_len)")
    parser.add_argument("--batch", type=int, help="chunks coded together (default 32)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: current)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda; recorded")
    parser.add_argument(
        "--compile",
        action="store_true",
        help="code with the compiled decode step (recorded; decompress then uses it too)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def _adapter(model: nn.Module, name: str | None) -> Any:
    trained = getattr(model, "modality", None) or None
    if is_mixture(trained):  # its sequences start with a header the coder does not write
        known = ", ".join(str(m.get("name")) for m in trained.get("modalities", []))
        raise CommandError(
            f"a multimodal checkpoint (modalities: {known}) cannot compress files, with or "
            "without --modality: use a checkpoint trained on the inputs' one modality"
        )
    options = resolve_options(trained, name)
    if options is None:
        raise CommandError("the checkpoint stores no modality: pass --modality")
    try:
        return modalities.get(**options)
    except ValueError as error:
        raise CommandError(str(error)) from error


def _outputs(inputs: list[Path], out: Path) -> list[Path]:
    """One input and OUT ending in .mbz (not a folder): that file. Otherwise OUT is a folder
    with INPUT.mbz inside; several inputs never go to an OUT named like a .mbz file."""
    if out.suffix == SUFFIX and not out.is_dir():
        if len(inputs) == 1:
            return [out]
        raise CommandError(
            f"--out {out} names one .mbz file, but {len(inputs)} inputs make {len(inputs)} "
            "files: give a folder (each INPUT.mbz goes inside)"
        )
    paths = [out / (p.name + SUFFIX) for p in inputs]
    seen: dict[Path, Path] = {}
    for source, target in zip(inputs, paths):
        if target in seen:
            raise CommandError(f"{source} and {seen[target]} would both be written to {target}")
        seen[target] = source
    return paths


def run_compress(args: argparse.Namespace, failures: Failures) -> None:
    """Compress every input; each refused input is added to `failures`."""
    for option in ("chunk", "batch", "threads"):
        value = getattr(args, option)
        if value is not None and value < 1:
            raise CommandError(f"--{option} must be positive, got {value}")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise CommandError("--device cuda: no CUDA device here")
    inputs = [Path(p) for p in args.inputs]
    outputs = _outputs(inputs, Path(args.out))
    _check_targets(inputs, outputs, args.overwrite)
    check_folder(outputs[0].parent, "--out")
    model = _load(args.ckpt, args.device)
    max_len = int(model.config.max_seq_len)
    if args.chunk is not None and args.chunk > max_len:
        raise CommandError(f"--chunk {args.chunk} exceeds the model's max_seq_len {max_len}")
    adapter = _adapter(model, args.modality)
    work = []
    for source, target in zip(inputs, outputs):
        try:
            if not source.is_file():
                raise CommandError("not a file" if source.exists() else "no such file")
            work.append((source, target, adapter.encode_exact(source)))
        except (ValueError, OSError) as error:
            failures.add(f"{source}: {error}")
    fingerprint = model_fingerprint(model)
    for source, target, data in work:
        suffix = source.suffix if SAFE_SUFFIX.fullmatch(source.suffix) else None
        try:
            with _bar(len(data), source.name, args.quiet) as bar:
                blob = compress(
                    model,
                    data,
                    chunk=args.chunk,
                    batch=args.batch,
                    threads=args.threads,
                    modality=adapter.options,
                    suffix=suffix,
                    checkpoint=Path(args.ckpt).name,
                    fingerprint=fingerprint,
                    progress=bar.update,
                    compile=args.compile,
                )
            _write_atomic(target, lambda tmp, blob=blob: tmp.write_bytes(blob), lambda tmp: None)
        except (ValueError, OSError) as error:
            failures.add(f"{source}: {error}")
            continue
        rate = 8 * len(blob) / len(data) if data else float("nan")
        print(f"{source} -> {target}: {len(data)} -> {len(blob)} bytes ({rate:.3f} bits/byte)")


def _main(
    name: str,
    parser: Callable[[], argparse.ArgumentParser],
    run: Callable[[argparse.Namespace, Failures], None],
    argv: list[str] | None,
) -> int:
    """Run a command over its files; exit 2 if any was refused (each said in one line)."""
    args = parser().parse_args(argv)
    failures = Failures(name)
    try:
        run(args, failures)
    except (CommandError, OutputError) as error:
        failures.add(str(error))
    return 2 if failures else 0


def compress_main(argv: list[str] | None = None) -> int:
    """`multibyte compress`; exit 2 if any input was refused."""
    return _main("compress", compress_parser, run_compress, argv)


# -- decompress --------------------------------------------------------------------------------


def decompress_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="multibyte decompress",
        description="Restore files compressed by `multibyte compress` with the same checkpoint.",
    )
    parser.add_argument("--ckpt", required=True, help="the checkpoint the files were made with")
    parser.add_argument("files", nargs="+", metavar="FILE", help=".mbz files")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--overwrite", action="store_true", help="replace existing outputs")
    parser.add_argument(
        "--allow-mismatch",
        action="store_true",
        help="decode even where torch/device differ from the compressor's (the sha256 check "
        "still refuses wrong output)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def output_name(file: Path, container: Container) -> str:
    """FILE.mbz -> FILE; the original suffix is appended when the name lacks it."""
    name = file.name[: -len(SUFFIX)] if file.name.endswith(SUFFIX) else file.name
    suffix = container.meta.get("suffix")
    if suffix is not None and not (isinstance(suffix, str) and SAFE_SUFFIX.fullmatch(suffix)):
        raise CompressionError(f"corrupted: the recorded suffix {suffix!r} is not a file suffix")
    if suffix and not name.lower().endswith(suffix.lower()):
        name += suffix
    return name or "decompressed"


def _prepare(model: nn.Module, file: Path, args: argparse.Namespace, fp: bytes) -> tuple:
    """Everything checked before decoding: container, model, environment, adapter."""
    if not file.is_file():
        raise CommandError("not a file" if file.exists() else "no such file")
    container = unpack(file.read_bytes())
    _place(model, container)
    try:
        check_compatible(model, container, args.allow_mismatch, fp)
    except ModelMismatchError as error:
        raise CommandError(f"{error} ({args.ckpt})") from error
    options = container.meta.get("modality")
    adapter = None
    if options is not None:
        if not isinstance(options, dict):
            raise CompressionError("corrupted: the recorded modality options are not an object")
        try:
            adapter = modalities.get(**options)
        except Exception as error:  # noqa: BLE001 - recorded options are the file's, not ours
            raise CommandError(f"its modality cannot be loaded here: {error}") from error
    target = Path(args.out) / output_name(file, container)
    _check_targets([Path(f) for f in args.files], [target], args.overwrite)
    return container, adapter, target


def _place(model: nn.Module, container: Container) -> None:
    """Run the model where the file was made: CUDA if it was and there is one, else the CPU."""
    env = container.meta.get("environment")
    cuda = isinstance(env, dict) and env.get("device") == "cuda" and torch.cuda.is_available()
    model.to("cuda" if cuda else "cpu")


def run_decompress(args: argparse.Namespace, failures: Failures) -> None:
    """Decompress every file; each refused file is added to `failures`."""
    check_folder(args.out, "--out")
    model = _load(args.ckpt)
    fingerprint = model_fingerprint(model)
    work, targets = [], {}
    for file in map(Path, args.files):
        try:
            container, adapter, target = _prepare(model, file, args, fingerprint)
        except (ValueError, OSError) as error:
            failures.add(f"{file}: {error}")
            continue
        if target in targets:
            failures.add(f"{file}: {targets[target]} is also written to {target}")
            continue
        targets[target] = file
        work.append((file, container, adapter, target))
    for file, container, adapter, target in work:
        try:
            _decompress_one(model, container, adapter, target, args, fingerprint, file.name)
        except (ValueError, OSError) as error:
            failures.add(f"{file}: {error}")
            continue
        print(f"{file} -> {target}: {container.length} bytes")


def _decompress_one(
    model: nn.Module,
    container: Container,
    adapter: Any,
    target: Path,
    args: argparse.Namespace,
    fingerprint: bytes,
    name: str,
) -> None:
    _place(model, container)
    with _bar(container.length, name, args.quiet) as bar:
        data = decode_container(
            model,
            container,
            allow_mismatch=args.allow_mismatch,
            fingerprint=fingerprint,
            progress=bar.update,
        )
    if adapter is None:
        write = lambda tmp: tmp.write_bytes(data)  # noqa: E731
        read = lambda tmp: tmp.read_bytes()  # noqa: E731
    else:
        save = adapter.save_exact
        write = lambda tmp: save(data, tmp)  # noqa: E731
        read = adapter.encode_exact

    def check(tmp: Path) -> None:
        back = read(tmp)
        if hashlib.sha256(back).digest() != container.content:
            raise CompressionError(
                "the written file does not read back as the decoded content (nothing was written)"
            )

    _write_atomic(target, write, check)


def decompress_main(argv: list[str] | None = None) -> int:
    """`multibyte decompress`; exit 2 if any file was refused."""
    return _main("decompress", decompress_parser, run_decompress, argv)


__all__ = [
    "CommandError",
    "Failures",
    "compress_main",
    "compress_parser",
    "decompress_main",
    "decompress_parser",
    "output_name",
    "run_compress",
    "run_decompress",
]
