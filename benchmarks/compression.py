"""compression: `multibyte compress` on held-out files against the model's own bits, the byte and
format codecs, and its coding speed against xz (docs/compression.md).

By default, what `make demo` made: per plan, its MEGABYTE on the first `--files-per-modality`
held-out sample-pack files (`--ckpt CKPT --files FILE...`: one checkpoint on given files). Each
file's content is compressed on its own in chunks of the adapter's sequence length and
round-trip checked; speed: the first --speed-bytes bytes, at batch 1 and at --batch chunks.
"""

from __future__ import annotations

import argparse
import json
import lzma
import math
import tempfile
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml

import modalities
from benchmarks import harness as h
from multibyte.checkpoint import CheckpointError, export, load
from multibyte.codecs import byte_codecs, compressed_bits
from multibyte.compression import DEFAULT_BATCH, compress, decompress, unpack
from multibyte.evaluation import evaluate_model
from multibyte.model import Megabyte
from multibyte.plans import PLANS, RECIPES, SAMPLES, split_inputs

DEMO = h.REPO / "runs" / "quickstart"
SPEED_BYTES = {False: 4096, True: 256}  # full run, --smoke
# --smoke: the demo's modality options shrunk to tiny samples (text needs no change)
SMOKE_OPTIONS = {"image": {"size": 8}, "audio": {"sample_rate": 8000, "seq_len": 64}}
SMOKE_STREAM_BYTES = 200  # length of the smoke file of a modality without a fixed length
CODING = ("compress", "decompress")
fail = partial(h.fail, "compression")


def demo_checkpoint(demo: Path, modality: str) -> Path:
    """Where `multibyte quickstart` leaves a modality's MEGABYTE checkpoint."""
    return demo / modality / "megabyte" / "checkpoints" / "last.ckpt"


def demo_inputs(demo: Path, samples: Path = SAMPLES) -> list[tuple[Path, list[Path]]]:
    """(checkpoint, held-out files) for each modality the demo trained, from its plans."""
    found = []
    for plan in PLANS:
        checkpoint = demo_checkpoint(demo, plan.name)
        if not checkpoint.is_file():
            continue
        folder = samples / plan.source
        if not folder.is_dir():
            fail(f"{folder}: the sample pack folder of {checkpoint} is missing")
        found.append((checkpoint, split_inputs(plan, folder)[1]))
    if not found:
        where = "<modality>/megabyte/checkpoints/last.ckpt"
        fail(f"{demo}: no demo checkpoint ({where}); run `make demo` first")
    return found


def smoke_demo(folder: Path) -> tuple[Path, Path]:
    """A miniature of the demo's outputs in `folder`: per plan a tiny random-init MEGABYTE
    exported where the quickstart leaves its checkpoint, with the recipe's modality options
    shrunk, and one random sample of that modality as the sample pack's only file."""
    demo, samples, rng = folder / "quickstart", folder / "samples", np.random.default_rng(0)
    for plan in PLANS:
        recipe = yaml.safe_load((RECIPES / plan.recipe).read_text())
        options = recipe["data"]["modality"] | SMOKE_OPTIONS.get(plan.name, {})
        adapter = modalities.get(**options)
        config = h.megabyte_config(h.SMOKE_PAIR["megabyte"], adapter.seq_len or 64)
        torch.manual_seed(0)
        checkpoint = demo_checkpoint(demo, plan.name)
        checkpoint.parent.mkdir(parents=True)
        export(Megabyte(config), checkpoint, options)
        data = rng.integers(0, 256, adapter.seq_len or SMOKE_STREAM_BYTES, dtype=np.uint8)
        (samples / plan.source).mkdir(parents=True)
        name = f"held-out{Path(plan.sample_file).suffix}"  # the suffix `save` writes
        adapter.save(data.tobytes(), samples / plan.source / name)
    return demo, samples


def content(adapter: Any, path: Path) -> tuple[bytes, str | None]:
    """The bytes the adapter codes exactly, or (when it cannot) the bytes `multibyte prepare`
    makes of the file, with the reason exact coding refused it."""
    try:
        return adapter.encode_exact(path), None
    except (ValueError, OSError) as error:
        return adapter.encode_file(path), str(error)


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    """The result of one call and its seconds, by the harness's timer."""
    box: list[Any] = []
    seconds = h.once(lambda: box.append(fn()))
    return box[0], seconds


def sizes(model: Any, adapter: Any, data: bytes, args: argparse.Namespace, chunk: int) -> dict:
    blob = compress(model, data, chunk=chunk, batch=args.batch, compile=args.compile)
    if decompress(model, blob) != data:
        raise RuntimeError("the round trip is not exact")
    container = unpack(blob)
    payload = container.payload_bytes()
    report = evaluate_model(model, [data], seq_len=chunk, stream=True, codecs=False)
    bits = float(report.summary["total_bits"])
    format_codecs, notes = adapter.codecs()
    codecs = byte_codecs() | format_codecs
    row = {"bytes": len(data), "chunks": container.chunks, "mbz_bytes": len(blob)}
    row |= {"header_bytes": len(blob) - payload, "payload_bytes": payload, "model_bits": bits}
    row["payload_over_model"] = 8 * payload / bits if bits else None
    row["codec_bytes"] = {n: compressed_bits(c, [data], check=True) // 8 for n, c in codecs.items()}
    return row | {"codec_notes": notes}


def rates(data: bytes, *seconds: float) -> dict:  # (compress, decompress) seconds -> bytes/s
    return {f"{kind}_bytes_per_s": len(data) / s for kind, s in zip(CODING, seconds)}


def speed(model: Any, data: bytes, args: argparse.Namespace) -> dict:
    """Input bytes/s of compress and decompress at batch 1 and --batch, and of xz."""
    max_len = int(model.config.max_seq_len)
    chunk = max(1, min(max_len, math.ceil(len(data) / args.batch)))  # one full batch
    out: dict[str, Any] = {"bytes": len(data), "chunk": chunk}
    for batch in sorted({1, args.batch}):
        code = partial(compress, model, chunk=chunk, batch=batch, compile=args.compile)
        # warm-up: the compiled step compiles per batch shape, so it codes the same input once
        code(data if args.compile else data[:chunk])
        blob, seconds = timed(partial(code, data))
        back, back_seconds = timed(partial(decompress, model, blob))
        if back != data:
            raise RuntimeError("speed run: the round trip is not exact")
        out[f"batch_{batch}"] = rates(data, seconds, back_seconds)
        out[f"batch_{batch}"]["chunks_per_batch"] = min(batch, unpack(blob).chunks)
    packed = lzma.compress(data, preset=9)
    xz = {"c": partial(lzma.compress, data, preset=9), "d": partial(lzma.decompress, packed)}
    xz = h.measure(xz, repeats=5)
    out["xz"] = rates(data, xz["c"].median, xz["d"].median)
    return out


def measure_checkpoint(checkpoint: Path, files: list[Path], args: argparse.Namespace) -> dict:
    if not checkpoint.is_file():
        fail(f"{checkpoint}: checkpoint not found")
    try:
        model = load(checkpoint, map_location=args.device)
    except (CheckpointError, RuntimeError) as error:
        fail(f"{checkpoint}: {error}")
    if not model.modality:
        fail(f"{checkpoint}: the checkpoint stores no modality")
    adapter = modalities.get(**model.modality)
    max_len = int(model.config.max_seq_len)
    chunk = args.chunk or min(adapter.seq_len or max_len, max_len)
    if chunk > max_len:
        fail(f"--chunk {chunk}: above {max_len}, the max_seq_len of {checkpoint}")
    rows, skipped, everything = [], [], []
    for path in files[: args.files_per_modality or None]:
        try:
            data, not_exact = content(adapter, path)
        except (ValueError, OSError, RuntimeError) as error:
            skipped.append({"file": str(path), "reason": str(error)})
            continue
        h.log(f"{adapter.name}: {path.name}, {len(data):,} bytes in chunks of {chunk}")
        row = {"file": path.name, "not_exact": not_exact}
        rows.append(row | sizes(model, adapter, data, args, chunk))
        everything.append(data)
    result = {"checkpoint": str(checkpoint), "modality": model.modality, "adapter": adapter.name}
    result |= {"chunk": chunk, "max_seq_len": max_len, "files": rows, "skipped": skipped}
    if speed_data := b"".join(everything)[: args.speed_bytes]:
        h.log(f"{adapter.name}: speed on {len(speed_data):,} bytes")
        result["speed"] = speed(model, speed_data, args)
    return result


def sources(args: argparse.Namespace, folder: Path) -> tuple[str, list[tuple[Path, list[Path]]]]:
    """What to measure: --ckpt/--files, else the demo's outputs (a miniature with --smoke)."""
    if bool(args.ckpt) != bool(args.files):
        fail("--ckpt and --files go together (without both: the demo's checkpoints and files)")
    if args.ckpt and args.demo:
        fail("--ckpt/--files measure given files; --demo measures the demo's")
    if args.ckpt:
        missing = [path for path in args.files if not Path(path).is_file()]
        if missing:
            fail(f"{missing[0]}: file not found")
        return "files", [(Path(args.ckpt), [Path(path) for path in args.files])]
    if args.smoke and not args.demo:
        demo, samples = smoke_demo(folder)
        return "a miniature of the demo (tiny random-init checkpoints)", demo_inputs(demo, samples)
    demo = Path(args.demo) if args.demo else DEMO
    return "the demo's outputs", demo_inputs(demo)


def options(parser: argparse.ArgumentParser) -> None:
    add = parser.add_argument
    add("--ckpt", help="a checkpoint to measure on --files (default: the demo's)")
    add("--files", nargs="+", help="files for --ckpt")
    add("--demo", help=f"the quickstart's output folder (default {DEMO})")
    add("--files-per-modality", type=int, help="files per checkpoint (demo 1, --files all; 0 all)")
    add("--chunk", type=int, help="bytes per chunk (default: the adapter's sequence length)")
    add("--batch", type=int, default=DEFAULT_BATCH, help=f"chunks coded together ({DEFAULT_BATCH})")
    add("--speed-bytes", type=int, help="bytes timed (4096, --smoke 256; 0: no speed)")
    add("--threads", type=int, help="torch threads (default: torch's)")
    add("--device", default="cpu", help="cpu (default) or cuda")
    add("--compile", action="store_true", help="code with the compiled step")


def count(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else "n/a"


def render(r: dict) -> str:
    s, runs = r["settings"], r["runs"]
    rows = [(run, row) for run in runs for row in run["files"]]
    codecs = list(dict.fromkeys(c for _, row in rows for c in row["codec_bytes"]))
    step = "compiled" if s["compile"] else "eager"
    lines = [
        f"Held-out files of {s['source']}, {s['files_per_modality'] or 'all'} per checkpoint; "
        f"{s['device']}, {s['threads']} threads, {step} decode step, batch {s['batch']}. "
        "Checkpoints:\n",
        *(
            f"- {run['adapter']}: `{h.shown(run['checkpoint'])}`, modality "
            f"`{json.dumps(run['modality'])}`, chunks of {run['chunk']:,} bytes"
            for run in runs
        ),
        "\nSizes in bytes. `.mbz` = header + payload (the coded streams); model bits = "
        "`multibyte evaluate`'s total bits on the same bytes with windows = the chunks; "
        "payload ÷ model = 8 · payload / model bits (the goal: within 1%, plus a word or two of "
        "flush per chunk). Codecs compress the same bytes, headers included; every size is "
        "round-trip checked.\n",
    ]
    head = ["modality", "file", "bytes", "chunks", "model bits", ".mbz", "header", "payload"]
    table = [
        [run["adapter"], row["file"] + " *" * bool(row["not_exact"]), count(row["bytes"])]
        + [row["chunks"], f"{row['model_bits']:,.0f}", count(row["mbz_bytes"])]
        + [row["header_bytes"], count(row["payload_bytes"]), h.number(row["payload_over_model"], 4)]
        + [count(row["codec_bytes"].get(c)) for c in codecs]
        for run, row in rows
    ]
    lines.append(h.markdown_table([*head, "payload ÷ model", *codecs], table))
    notes = [
        f"- \\* {row['file']}: not coded exactly ({row['not_exact']}); measured on the bytes "
        "`multibyte prepare` makes of it"
        for _, row in rows
        if row["not_exact"]
    ]
    notes += [f"- {name}: {note}" for _, row in rows for name, note in row["codec_notes"].items()]
    notes += [f"- skipped {row['file']}: {row['reason']}" for run in runs for row in run["skipped"]]
    lines += ["", *dict.fromkeys(notes)] if notes else []
    table = []
    for run in runs:
        sp = run.get("speed", {})
        for key, v in sp.items():
            if isinstance(v, dict):
                coder = "xz -9" if key == "xz" else f"model, batch {key.removeprefix('batch_')}"
                chunk = "" if key == "xz" else sp["chunk"]
                row = [run["adapter"], count(sp["bytes"]), coder, chunk]
                row.append(v.get("chunks_per_batch", ""))
                table.append(row + [h.si(v[f"{k}_bytes_per_s"], "B/s") for k in CODING])
    if table:
        head = ["modality", "bytes", "coder", "chunk", "chunks per batch", *CODING]
        lines += [
            "\nSpeed: input bytes per second, wall clock, one timed call each (xz: median of 5), "
            "on the first bytes of the files above.\n",
            h.markdown_table(head, table),
        ]
    return "\n".join(lines) + "\n"


@h.case("compression", render, options)
def run(args: argparse.Namespace) -> dict:
    for name in ("batch", "chunk", "threads", "files_per_modality", "speed_bytes"):
        value, least = getattr(args, name), int(name not in ("files_per_modality", "speed_bytes"))
        if value is not None and value < least:
            fail(f"--{name.replace('_', '-')} {value}: must be at least {least}")
    if args.speed_bytes is None:
        args.speed_bytes = SPEED_BYTES[args.smoke]
    with tempfile.TemporaryDirectory(prefix="bench-compression-") as tmp:
        source, measured = sources(args, Path(tmp))
        if args.files_per_modality is None:
            args.files_per_modality = 0 if args.ckpt else 1
        with h.threads(args.threads) as threads:
            runs = [measure_checkpoint(ckpt, files, args) for ckpt, files in measured]
    settings = {k: getattr(args, k) for k in ("batch", "files_per_modality", "compile", "device")}
    return {"settings": settings | {"source": source, "threads": threads}, "runs": runs}
