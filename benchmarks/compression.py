"""compression: `multibyte compress` on held-out files against the model's own bits,
gzip/bz2/xz(/zstd) and the format codecs, and its coding speed against xz.

By default it measures what `make demo` made: for each modality the quickstart trained, its
MEGABYTE checkpoint (`runs/quickstart/<modality>/megabyte/checkpoints/last.ckpt`) on the
held-out sample-pack files of that modality (the quickstart's own plans and split), the first
`--files-per-modality` of them (default 1; 0: all). `--ckpt CKPT --files FILE...` measures one
checkpoint on given files instead (all of them unless `--files-per-modality` says otherwise).

Sizes: each file's content is compressed on its own, as `multibyte compress` does, in chunks of
the adapter's sequence length (what the model trained on; `--chunk` to change it), and
decompressed to check the round trip. Content is what the adapter codes exactly
(`encode_exact`); a file it cannot represent exactly (the sample pack's 128x128 photos) is coded
as `multibyte prepare` encodes it, the bytes the demo evaluated, and the row says so. Beside the
whole `.mbz` file, its header and its payload (the coded streams): the model's bits on the same
bytes with the same windows (`evaluate_model`, windows = the chunks), and the sizes the general
and the format codecs make of the same bytes, headers included.

Speed: the first --speed-bytes bytes of the checkpoint's files together, compressed and
decompressed at batch 1 and at --batch chunks (chunks of --speed-chunk bytes, by default just
enough for one full batch), next to xz (preset 9) on the same bytes; input bytes per second.
"""

from __future__ import annotations

import argparse
import json
import lzma
import math
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, NoReturn

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

DEMO = h.REPO / "runs" / "quickstart"
SPEED_BYTES = {False: 4096, True: 256}  # full run, --smoke
# --smoke: the demo's modality options shrunk to tiny samples (text needs no change)
SMOKE_OPTIONS = {"image": {"size": 8}, "audio": {"sample_rate": 8000, "seq_len": 64}}
SMOKE_STREAM_BYTES = 200  # length of the smoke file of a modality without a fixed length


def fail(message: str) -> NoReturn:
    """A user error: one line, exit status 2."""
    print(f"python -m benchmarks run compression: error: {message}", file=sys.stderr, flush=True)
    raise SystemExit(2)


def demo_checkpoint(demo: Path, modality: str) -> Path:
    """Where `multibyte quickstart` leaves a modality's MEGABYTE checkpoint (`run_modality`)."""
    return demo / modality / "megabyte" / "checkpoints" / "last.ckpt"


def demo_inputs(demo: Path, samples: Path | None) -> list[tuple[Path, list[Path]]]:
    """(checkpoint, held-out files) for each modality the quickstart trained, from its plans."""
    # here: the quickstart pulls in webdataset, which the GPU machines lack
    from multibyte.quickstart import PLANS, SAMPLES, split_inputs

    samples = samples or SAMPLES
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
        fail(f"{demo}: no demo checkpoint (<modality>/megabyte/checkpoints/last.ckpt); "
             "run `make demo` first")  # fmt: skip
    return found


def smoke_demo(folder: Path) -> tuple[Path, Path]:
    """A miniature of the demo's outputs in `folder`: per quickstart plan a tiny random-init
    MEGABYTE exported where the quickstart leaves its checkpoint, with the recipe's modality
    options shrunk, and one random sample of that modality as the sample pack's only file."""
    from multibyte.quickstart import PLANS

    demo, samples, rng = folder / "quickstart", folder / "samples", np.random.default_rng(0)
    for plan in PLANS:
        recipe = yaml.safe_load((h.REPO / "recipes" / plan.recipe).read_text())
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


def sizes(model: Any, adapter: Any, path: Path, data: bytes, args: argparse.Namespace,
          chunk: int) -> dict:  # fmt: skip
    blob = compress(model, data, chunk=chunk, batch=args.batch, compile=args.compile)
    if decompress(model, blob) != data:
        raise RuntimeError(f"{path}: the round trip is not exact")
    container = unpack(blob)
    payload = container.payload_bytes()
    report = evaluate_model(model, [data], seq_len=chunk, stream=True, codecs=False)
    model_bits = float(report.summary["total_bits"])
    format_codecs, notes = adapter.codecs()
    codecs = byte_codecs() | format_codecs
    return {"file": path.name, "path": str(path), "bytes": len(data), "chunks": container.chunks,
            "mbz_bytes": len(blob), "header_bytes": len(blob) - payload, "payload_bytes": payload,
            "model_bits": model_bits,
            "payload_over_model": 8 * payload / model_bits if model_bits else None,
            "codec_bytes": {name: compressed_bits(codec, [data], check=True) // 8
                            for name, codec in codecs.items()},
            "codec_notes": notes}  # fmt: skip


def speed(model: Any, data: bytes, args: argparse.Namespace) -> dict:
    """Input bytes/s of compress and decompress at batch 1 and --batch, and of xz."""
    max_len = int(model.config.max_seq_len)
    chunk = args.speed_chunk or max(1, min(max_len, math.ceil(len(data) / args.batch)))
    out: dict[str, Any] = {"bytes": len(data), "chunk": chunk, "compile": args.compile}
    for batch in sorted({1, args.batch}):

        def code(batch: int = batch) -> bytes:
            return compress(model, data, chunk=chunk, batch=batch, compile=args.compile)

        # warm-up: the compiled step compiles per batch shape, so it runs the same input once
        if args.compile:
            code()
        else:
            compress(model, data[:chunk], chunk=chunk, batch=batch)
        blob, seconds = timed(code)
        back, back_seconds = timed(lambda blob=blob: decompress(model, blob))
        if back != data:
            raise RuntimeError("speed run: the round trip is not exact")
        out[f"batch_{batch}"] = {"chunks_per_batch": min(batch, unpack(blob).chunks),
                                 "compress_s": seconds, "decompress_s": back_seconds,
                                 "compress_bytes_per_s": len(data) / seconds,
                                 "decompress_bytes_per_s": len(data) / back_seconds}  # fmt: skip
        h.log(f"  batch {batch}: {len(data) / seconds:,.0f} B/s compress, "
              f"{len(data) / back_seconds:,.0f} B/s decompress")  # fmt: skip
    packed = lzma.compress(data, preset=9)
    xz = h.measure({"compress": lambda: lzma.compress(data, preset=9),
                    "decompress": lambda: lzma.decompress(packed)}, repeats=5)  # fmt: skip
    out["xz"] = {"preset": 9, "compress_s": xz["compress"].median,
                 "decompress_s": xz["decompress"].median,
                 "compress_bytes_per_s": len(data) / xz["compress"].median,
                 "decompress_bytes_per_s": len(data) / xz["decompress"].median}  # fmt: skip
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
    for option, value in (("--chunk", chunk), ("--speed-chunk", args.speed_chunk or 1)):
        if value > max_len:
            fail(f"{option} {value}: above {max_len}, the max_seq_len of {checkpoint}")
    rows, skipped, everything = [], [], []
    for path in files[: args.files_per_modality or None]:
        try:
            data, not_exact = content(adapter, path)
        except (ValueError, OSError, RuntimeError) as error:
            skipped.append({"file": str(path), "reason": str(error)})
            continue
        h.log(f"{adapter.name}: {path.name}, {len(data):,} bytes in chunks of {chunk}")
        rows.append(sizes(model, adapter, path, data, args, chunk) | {"not_exact": not_exact})
        everything.append(data)
    result = {"checkpoint": str(checkpoint), "modality": model.modality,
              "adapter": adapter.name, "chunk": chunk, "max_seq_len": max_len, "files": rows,
              "skipped": skipped}  # fmt: skip
    speed_data = b"".join(everything)[: args.speed_bytes]
    if speed_data:
        h.log(f"{adapter.name}: speed on {len(speed_data):,} bytes")
        result["speed"] = speed(model, speed_data, args)
    return result


def sources(args: argparse.Namespace, folder: Path) -> tuple[str, list[tuple[Path, list[Path]]]]:
    """What to measure: --ckpt/--files, else the demo's outputs (a miniature with --smoke)."""
    if bool(args.ckpt) != bool(args.files):
        fail("--ckpt and --files go together (without both: the demo's checkpoints and files)")
    if args.ckpt and (args.demo or args.samples):
        fail("--ckpt/--files measure given files; --demo/--samples measure the demo's")
    if args.ckpt:
        missing = [path for path in args.files if not Path(path).is_file()]
        if missing:
            fail(f"{missing[0]}: file not found")
        return "files", [(Path(args.ckpt), [Path(path) for path in args.files])]
    if args.smoke and not args.demo:
        demo, samples = smoke_demo(folder)
        return "a miniature of the demo (tiny random-init checkpoints)", demo_inputs(demo, samples)
    demo = Path(args.demo) if args.demo else DEMO
    return "the demo's outputs", demo_inputs(demo, Path(args.samples) if args.samples else None)


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--ckpt", help="a checkpoint to measure on --files (default: the demo's)")
    parser.add_argument("--files", nargs="+", help="files for --ckpt")
    parser.add_argument("--demo", help=f"the quickstart's output folder (default {DEMO})")
    parser.add_argument("--samples", help="the sample pack the demo used (default: its own)")
    parser.add_argument("--files-per-modality", type=int,
                        help="files measured per checkpoint (default: 1 for the demo, all for "
                        "--files; 0: all)")  # fmt: skip
    parser.add_argument("--chunk", type=int, help="bytes per chunk for sizes (default: the "
                        "adapter's sequence length, at most max_seq_len)")  # fmt: skip
    parser.add_argument("--batch", type=int, default=DEFAULT_BATCH,
                        help=f"chunks coded together (default {DEFAULT_BATCH})")  # fmt: skip
    parser.add_argument("--speed-bytes", type=int,
                        help=f"bytes timed (default {SPEED_BYTES[False]}, --smoke "
                        f"{SPEED_BYTES[True]}; 0: no speed)")  # fmt: skip
    parser.add_argument("--speed-chunk", type=int, help="chunk for speed (default: a full batch)")
    parser.add_argument("--threads", type=int, help="torch threads (default: torch's)")
    parser.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    parser.add_argument("--compile", action="store_true", help="code with the compiled step")


def _shown(path: str) -> str:  # a path inside the repository, from its root
    return str(Path(path).relative_to(h.REPO)) if Path(path).is_relative_to(h.REPO) else path


def _bytes(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else "n/a"


def render(r: dict) -> str:
    s, runs = r["settings"], r["runs"]
    rows = [(run, row) for run in runs for row in run["files"]]
    codecs = list(dict.fromkeys(c for _, row in rows for c in [*row["codec_bytes"],
                                                                *row["codec_notes"]]))  # fmt: skip
    lines = [
        f"Held-out files of {s['source']}, {s['files_per_modality'] or 'all'} per checkpoint; "
        f"{s['device']}, {s['threads']} threads, {'compiled' if s['compile'] else 'eager'} "
        f"decode step, batch {s['batch']}. Checkpoints:",
        "",
        *(f"- {run['adapter']}: `{_shown(run['checkpoint'])}`, modality "
          f"`{json.dumps(run['modality'])}`, chunks of {run['chunk']:,} bytes" for run in runs),
        "",
        "Sizes in bytes. `.mbz` = header + payload (the coded streams); model bits = "
        "`multibyte evaluate`'s total bits on the same bytes with windows = the chunks; "
        "payload ÷ model = 8 · payload / model bits (the goal: within 1%, plus a word or two of "
        "flush per chunk). Codecs compress the same bytes, headers included; every size is "
        "round-trip checked.",
        "",
    ]  # fmt: skip
    head = ["modality", "file", "bytes", "chunks", "model bits", ".mbz", "header", "payload",
            "payload ÷ model", *codecs]  # fmt: skip
    table = [[run["adapter"], row["file"] + (" *" if row["not_exact"] else ""),
              _bytes(row["bytes"]), row["chunks"], f"{row['model_bits']:,.0f}",
              _bytes(row["mbz_bytes"]), row["header_bytes"], _bytes(row["payload_bytes"]),
              f"{row['payload_over_model']:.4f}" if row["payload_over_model"] else "n/a",
              *(_bytes(row["codec_bytes"].get(c)) for c in codecs)]
             for run, row in rows]  # fmt: skip
    lines.append(h.markdown_table(head, table))
    notes = [
        f"- \\* {row['file']}: not coded exactly ({row['not_exact']}); measured on the "
        "bytes `multibyte prepare` makes of it"
        for _, row in rows
        if row["not_exact"]
    ]
    notes += [f"- {name}: {note}" for name, note in dict.fromkeys(
        (n, t) for _, row in rows for n, t in row["codec_notes"].items())]  # fmt: skip
    notes += [f"- skipped {row['file']}: {row['reason']}" for run in runs for row in run["skipped"]]
    lines += ["", *notes] if notes else []
    speeds = [run for run in runs if "speed" in run]
    if speeds:
        lines += ["", "Speed: input bytes per second, wall clock, one timed call each (xz: "
                  "median of 5), on the first bytes of the files above.", ""]  # fmt: skip
        table = []
        for run in speeds:
            sp = run["speed"]
            for key, value in sp.items():
                if isinstance(value, dict):
                    coder = "xz -9" if key == "xz" else f"model, batch {key.split('_')[1]}"
                    table.append([run["adapter"], _bytes(sp["bytes"]), coder,
                                  sp["chunk"] if key != "xz" else "",
                                  value.get("chunks_per_batch", ""),
                                  h.si(value["compress_bytes_per_s"], "B/s"),
                                  h.si(value["decompress_bytes_per_s"], "B/s")])  # fmt: skip
        lines.append(h.markdown_table(["modality", "bytes", "coder", "chunk", "chunks per batch",
                                       "compress", "decompress"], table))  # fmt: skip
    return "\n".join(lines) + "\n"


@h.case("compression", render, options)
def run(args: argparse.Namespace) -> dict:
    for name, least in (("batch", 1), ("chunk", 1), ("speed_chunk", 1), ("threads", 1),
                        ("files_per_modality", 0), ("speed_bytes", 0)):  # fmt: skip
        value = getattr(args, name)
        if value is not None and value < least:
            fail(f"--{name.replace('_', '-')} {value}: must be at least {least}")
    if args.speed_bytes is None:
        args.speed_bytes = SPEED_BYTES[args.smoke]
    with tempfile.TemporaryDirectory(prefix="bench-compression-") as tmp:
        source, measured = sources(args, Path(tmp))
        if args.files_per_modality is None:
            args.files_per_modality = 0 if args.ckpt else 1
        with h.threads(args.threads) as count:
            runs = [measure_checkpoint(ckpt, files, args) for ckpt, files in measured]
    settings = {"source": source, "batch": args.batch, "speed_bytes": args.speed_bytes,
                "files_per_modality": args.files_per_modality, "compile": args.compile,
                "threads": count, "device": args.device}  # fmt: skip
    return {"settings": settings, "runs": runs}
