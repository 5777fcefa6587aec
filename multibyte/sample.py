"""``multibyte sample``: generate from a checkpoint with the KV-cached ``generate``.

- image: unconditional samples, or completions of the bottom of a prompt image (the top
  ``--prompt-fraction`` of its rows are kept), written as one PNG grid whose first row shows the
  prompt (the full image, then the part the model sees);
- audio: continuations of a prompt clip (or unconditional), one WAV per sample at
  the adapter's sample rate, prompt included;
- text: continuations of a prompt file, printed and saved (raw bytes, prompt included).

With ``--n`` > 1, audio and text samples go to ``OUT-0.ext``, ``OUT-1.ext``, ...
A fixed ``--seed`` gives the same bytes on every run on the same device.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch
from torch import nn

DEFAULT_FRACTION = {"image": 0.5, "audio": 0.5, "text": 1.0}


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
) -> torch.Tensor:
    """``model.generate(..., use_cache=True)`` with a tqdm bar that ticks once per byte."""
    from tqdm import tqdm

    decoder = getattr(model, "decoder", None)
    with tqdm(total=max_new_bytes, unit="B", desc="sample", disable=not progress) as bar:
        if decoder is not None:
            # Shadow the bound method for this call only, so the model's own cached loop runs
            # unchanged and each prefill/advance (one byte) ticks the bar.
            def ticking(buffer: torch.Tensor) -> Any:
                return _Ticking(decoder(buffer), bar)

            model.decoder = ticking
        try:
            return model.generate(
                prompt, max_new_bytes, temperature=temperature, top_k=top_k, top_p=top_p,
                use_cache=True, generator=generator,
            )  # fmt: skip
        finally:
            if decoder is not None:
                del model.decoder


class _Ticking:
    def __init__(self, decoder: Any, bar: Any) -> None:
        self.decoder, self.bar = decoder, bar

    def prefill(self, t: int) -> torch.Tensor:
        self.bar.update(1)
        return self.decoder.prefill(t)

    def advance(self, t: int) -> torch.Tensor:
        self.bar.update(1)
        return self.decoder.advance(t)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="multibyte sample", description=__doc__.split("\n")[0])
    parser.add_argument("--ckpt", required=True)
    parser.add_argument("--modality", help="default: the checkpoint's")
    parser.add_argument("--out", required=True, help="PNG grid (image), WAV or text path")
    parser.add_argument("--prompt", help="prompt file (image, audio clip or text)")
    parser.add_argument(
        "--prompt-fraction", type=float,
        help="part of the prompt kept: image rows from the top (default 0.5), audio from the "
        "start (default 0.5), text (default 1.0)",
    )  # fmt: skip
    parser.add_argument("--n", type=int, default=4, help="number of samples")
    parser.add_argument("--max-new-bytes", type=int, help="audio/text: bytes to generate")
    parser.add_argument("--temperature", type=float, default=1.0)
    parser.add_argument("--top-k", type=int)
    parser.add_argument("--top-p", type=float)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def _note(message: str) -> None:
    print(f"multibyte sample: {message}", file=sys.stderr)


def _fraction(args: argparse.Namespace, name: str) -> float:
    fraction = args.prompt_fraction
    if fraction is None:
        fraction = DEFAULT_FRACTION.get(name, 1.0)
    if not 0.0 <= fraction <= 1.0:
        raise SampleError(f"--prompt-fraction must be in [0, 1], got {fraction}")
    return fraction


def _numbered(out: Path, i: int, n: int) -> Path:
    return out if n == 1 else out.with_name(f"{out.stem}-{i}{out.suffix}")


def _image(args: argparse.Namespace, model: nn.Module, adapter: Any, gen: Any) -> list[Path]:
    from PIL import Image

    from modalities.image import save_grid

    total = adapter.seq_len
    if total > model.config.max_seq_len:
        raise SampleError(
            f"a {adapter.size}px image is {total} bytes, longer than the model's max_seq_len "
            f"{model.config.max_seq_len}"
        )
    prompt = b""
    original = None
    if args.prompt:
        with Image.open(args.prompt) as image:
            image.load()
            if image.size != (adapter.size, adapter.size):
                _note(
                    f"prompt image {args.prompt} is {image.size[0]}x{image.size[1]}; resized "
                    f"to {adapter.size}x{adapter.size} (box filter, as the data)"
                )
            original = adapter.encode(image)
        rows = int(round(_fraction(args, "image") * adapter.size))
        if adapter.order == "patch":  # whole block rows are a prefix of the patch scan
            rows -= rows % adapter.block
        prompt = original[: rows * adapter.size * 3]
    x = torch.tensor(list(prompt), dtype=torch.long).reshape(1, -1).repeat(args.n, 1)
    out = gen(x.to(args.device), total - len(prompt))
    samples = [bytes(row.tolist()) for row in out.cpu()]
    columns = max(args.n, 2)
    if original is not None:
        # First row: the full prompt image, then what the model saw (the rest black).
        # A prefix of either scan order is whole rows, so zero-filling the rest blacks them out.
        seen = prompt + bytes(total - len(prompt))
        blank = [bytes(total)] * (columns - 2)
        samples = [original, seen, *blank, *samples]
    save_grid(adapter, samples, args.out, columns=columns)
    return [Path(args.out)]


def _audio(args: argparse.Namespace, model: nn.Module, adapter: Any, gen: Any) -> list[Path]:
    limit = model.config.max_seq_len
    step = adapter.bytes_per_sample
    prompt = b""
    if args.prompt:
        data = adapter.encode_file(args.prompt)
        keep = int(len(data) * _fraction(args, "audio"))
        prompt = data[: keep - keep % step]
        if len(prompt) > limit - step:
            _note(f"prompt cut to its last {limit - step} bytes (max_seq_len {limit})")
            prompt = prompt[len(prompt) - (limit - step) :]
    new = args.max_new_bytes or min(limit - len(prompt), adapter.sample_rate * step)
    new -= new % step
    if new <= 0 or len(prompt) + new > limit:
        raise SampleError(f"prompt + new bytes must fit max_seq_len {limit} and be positive")
    x = torch.tensor(list(prompt), dtype=torch.long).reshape(1, -1).repeat(args.n, 1)
    out = gen(x.to(args.device), new)
    paths = []
    for i, row in enumerate(out.cpu()):
        path = _numbered(Path(args.out), i, args.n)
        adapter.save(bytes(row.tolist()), path)
        paths.append(path)
    return paths


def _text(args: argparse.Namespace, model: nn.Module, adapter: Any, gen: Any) -> list[Path]:
    limit = model.config.max_seq_len
    new = args.max_new_bytes or min(256, limit - 1)
    prompt = b""
    if args.prompt:
        data = Path(args.prompt).read_bytes()
        prompt = data[: int(len(data) * _fraction(args, "text"))]
    if new <= 0 or new > limit:
        raise SampleError(f"--max-new-bytes must be in 1..{limit}")
    if len(prompt) + new > limit:
        prompt = prompt[len(prompt) - (limit - new) :]  # keep the end: it is what is continued
    x = torch.tensor(list(prompt), dtype=torch.long).reshape(1, -1).repeat(args.n, 1)
    out = gen(x.to(args.device), new)
    paths = []
    for i, row in enumerate(out.cpu()):
        data = bytes(row.tolist())
        path = _numbered(Path(args.out), i, args.n)
        adapter.save(data, path)
        print(f"--- sample {i} ---")
        print(adapter.decode(data))
        paths.append(path)
    return paths


def run(args: argparse.Namespace) -> list[Path]:
    """Sample as the command line asks; returns the files written."""
    import modalities
    from multibyte.checkpoint import CheckpointError, load

    if not Path(args.ckpt).is_file():
        raise SampleError(f"checkpoint not found: {args.ckpt}")
    if args.prompt and not Path(args.prompt).is_file():
        raise SampleError(f"prompt file not found: {args.prompt}")
    if args.n < 1:
        raise SampleError(f"--n must be positive, got {args.n}")
    try:
        model = load(args.ckpt, map_location=args.device)
    except (CheckpointError, FileNotFoundError) as error:
        raise SampleError(str(error)) from error
    stored = getattr(model, "modality", None) or None
    name = args.modality or (stored or {}).get("name")
    if name is None:
        raise SampleError("the checkpoint stores no modality: pass --modality")
    options = dict(stored) if stored and stored.get("name") == name else {"name": name}
    if stored and stored.get("name") != name:
        _note(f"the checkpoint was trained on {stored.get('name')}; sampling it as {name}")
    try:
        adapter = modalities.get(**options)
    except ValueError as error:
        raise SampleError(str(error)) from error
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    generator = torch.Generator(device=args.device).manual_seed(args.seed)

    def gen(prompt: torch.Tensor, new: int) -> torch.Tensor:
        return generate(
            model, prompt, new, args.temperature, args.top_k, args.top_p, generator,
            progress=not args.quiet,
        )  # fmt: skip

    handler = {"image": _image, "audio": _audio}.get(adapter.name, _text)
    try:
        return handler(args, model, adapter, gen)
    except (ValueError, OSError) as error:
        raise SampleError(str(error)) from error


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


__all__ = ["SampleError", "build_parser", "generate", "main", "run"]
