"""Compression with a checkpoint: file sizes beside gzip, xz, PNG, WebP and FLAC, and coding speed.

    python -m benchmarks.compression --ckpt CKPT --files FILE... [--json OUT] [--markdown OUT]

Sizes: every file the checkpoint's adapter represents exactly (`encode_exact`) is compressed on
its own, as `multibyte compress` does; the table gives the whole `.mbz` file, its header, its
payload (the coded streams), and the model's own bits on the same bytes with the same windows
(`multibyte evaluate`'s basic scoring, windows = the compressor's chunks), beside the general
codecs and the format codecs that apply (all on the same bytes, headers included). The
decompressed bytes are checked against the input.

Speed: the first --speed-bytes bytes of all files together, compressed and decompressed at
batch 1 and at --batch chunks (chunks of --speed-chunk bytes, default: enough for one full
batch), next to xz (preset 9) on the same bytes. Bytes per second of input, wall clock.
"""

from __future__ import annotations

import argparse
import json
import lzma
import math
import platform
import sys
import time
from pathlib import Path
from typing import Any

import torch

import modalities
from modalities.codecs import codecs_for
from multibyte.checkpoint import load
from multibyte.codecs import byte_codecs, compressed_bits
from multibyte.compression import DEFAULT_BATCH, compress, decompress, unpack
from multibyte.evaluation import evaluate_model


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.compression", description=__doc__)
    parser.add_argument("--ckpt", required=True)
    parser.add_argument("--files", nargs="+", required=True)
    parser.add_argument("--chunk", type=int, help="bytes per chunk for sizes (default max_seq_len)")
    parser.add_argument("--batch", type=int, default=DEFAULT_BATCH, help="chunk batch for speed")
    parser.add_argument("--speed-bytes", type=int, default=8192, help="bytes timed (0: skip)")
    parser.add_argument("--speed-chunk", type=int, help="chunk for speed (default: a full batch)")
    parser.add_argument("--threads", type=int, help="torch threads (default: current)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json", help="write the results here")
    parser.add_argument("--markdown", help="write the tables here")
    return parser


def _sizes(model: Any, adapter: Any, name: str, data: bytes, args: argparse.Namespace) -> dict:
    chunk = args.chunk or int(model.config.max_seq_len)
    blob = compress(model, data, chunk=chunk, threads=args.threads)
    if decompress(model, blob) != data:
        raise AssertionError(f"{name}: the round trip is not exact")
    container = unpack(blob)
    payload = container.payload_bytes()
    report = evaluate_model(model, [data], seq_len=chunk, stream=True, codecs=False)
    model_bits = float(report.summary["total_bits"])
    codecs = dict(byte_codecs())
    format_codecs, notes = codecs_for(adapter)
    codecs.update(format_codecs)
    sizes = {codec: compressed_bits(c, [data], check=True) // 8 for codec, c in codecs.items()}
    return {
        "file": name,
        "bytes": len(data),
        "chunks": container.chunks,
        "mbz_bytes": len(blob),
        "header_bytes": len(blob) - payload,
        "payload_bytes": payload,
        "model_bits": model_bits,
        "payload_over_model": 8 * payload / model_bits if model_bits else None,
        "codec_bytes": sizes,
        "codec_notes": notes,
    }


def _timed(function: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    result = function()
    return result, time.perf_counter() - start


def _speed(model: Any, data: bytes, args: argparse.Namespace) -> dict:
    max_len = int(model.config.max_seq_len)
    chunk = args.speed_chunk or max(1, min(max_len, math.ceil(len(data) / args.batch)))
    out: dict[str, Any] = {"bytes": len(data), "chunk": chunk}
    for batch in sorted({1, args.batch}):
        blob, seconds = _timed(lambda b=batch: compress(model, data, chunk=chunk, batch=b))
        back, back_seconds = _timed(lambda blob=blob: decompress(model, blob))
        if back != data:
            raise AssertionError("speed run: the round trip is not exact")
        out[f"batch_{batch}"] = {
            "chunks_per_batch": min(batch, unpack(blob).chunks),
            "compress_bytes_per_s": len(data) / seconds,
            "decompress_bytes_per_s": len(data) / back_seconds,
        }
    packed, seconds = _timed(lambda: lzma.compress(data, preset=9))
    _, back_seconds = _timed(lambda: lzma.decompress(packed))
    out["xz"] = {
        "compress_bytes_per_s": len(data) / seconds,
        "decompress_bytes_per_s": len(data) / back_seconds,
    }
    return out


def markdown(result: dict) -> str:
    codecs = sorted({c for row in result["files"] for c in row["codec_bytes"]})
    head = ["file", "bytes", "model bits", ".mbz", "header", "payload", "payload/model", *codecs]
    lines = [
        f"Checkpoint `{result['checkpoint']}`, modality `{json.dumps(result['modality'])}`, "
        f"torch {result['torch']}, {result['device']}, {result['threads']} threads.",
        "",
        "| " + " | ".join(head) + " |",
        "|" + "---|" * len(head),
    ]
    for row in result["files"]:
        cells = [
            row["file"], str(row["bytes"]), f"{row['model_bits']:.0f}", str(row["mbz_bytes"]),
            str(row["header_bytes"]), str(row["payload_bytes"]),
            f"{row['payload_over_model']:.4f}" if row["payload_over_model"] else "n/a",
            *(str(row["codec_bytes"].get(c, "n/a")) for c in codecs),
        ]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    for row in result["skipped"]:
        lines.append(f"\nSkipped {row['file']}: {row['reason']}")
    speed = result.get("speed")
    if speed:
        lines += [
            "",
            f"Speed on {speed['bytes']} bytes (chunks of {speed['chunk']}), bytes per second:",
            "",
            "| coder | chunks per batch | compress B/s | decompress B/s |",
            "|---|---|---|---|",
        ]
        for key, value in speed.items():
            if isinstance(value, dict):
                per_batch = value.get("chunks_per_batch", "")
                lines.append(
                    f"| {key} | {per_batch} | {value['compress_bytes_per_s']:.0f} | "
                    f"{value['decompress_bytes_per_s']:.0f} |"
                )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    args = build_parser().parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load(args.ckpt, map_location=args.device)
    if not model.modality:
        raise SystemExit(f"{args.ckpt}: the checkpoint stores no modality")
    adapter = modalities.get(**model.modality)
    rows, skipped, everything = [], [], []
    for path in map(Path, args.files):
        try:
            data = adapter.encode_exact(path)
        except (ValueError, OSError) as error:
            skipped.append({"file": str(path), "reason": str(error)})
            continue
        rows.append(_sizes(model, adapter, path.name, data, args))
        everything.append(data)
    result = {
        "checkpoint": str(args.ckpt),
        "modality": model.modality,
        "torch": torch.__version__,
        "device": args.device,
        "threads": args.threads or torch.get_num_threads(),
        "machine": platform.processor() or platform.machine(),
        "files": rows,
        "skipped": skipped,
    }
    speed_data = b"".join(everything)[: args.speed_bytes]
    if speed_data:
        result["speed"] = _speed(model, speed_data, args)
    table = markdown(result)
    print(table)
    if args.markdown:
        Path(args.markdown).write_text(table)
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    main(sys.argv[1:])
