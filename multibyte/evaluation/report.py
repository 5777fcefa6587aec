"""Evaluation reports: a Markdown table, a printed summary and PNG plots (matplotlib, Agg)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from modalities import BitsMap
from multibyte.evaluation.evaluation import Evaluation

MODES = ("basic", "strided", "sliding")


def _fmt(value: float | None, digits: int = 4) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _ci(interval: list[float] | None) -> str:
    return "n/a" if not interval else f"[{interval[0]:.4f}, {interval[1]:.4f}]"


def _mode_label(mode: str, summary: dict[str, Any]) -> str:
    return {
        "basic": f"model, basic (L={summary.get('window')})",
        "strided": f"model, strided (offset {summary.get('offset')})",
        "sliding": f"model, sliding (context >= {summary.get('min_context')})",
    }[mode]


def markdown(summary: dict[str, Any]) -> str:
    """One table: each scoring mode and each codec, in bits/byte and in the modality's unit."""
    unit = summary["unit"]
    lines = [
        f"| method | bytes | total bits | bits/byte | {unit} | 95% CI ({unit}) | cost |",
        "|---|---:|---:|---:|---:|---|---:|",
    ]
    for mode in MODES:
        s = summary.get(mode)
        if not s:
            continue
        cost = s["cost"]["relative_bytes_processed"]
        lines.append(
            f"| {_mode_label(mode, s)} | {s['bytes']} | {s['total_bits']:.1f} | "
            f"{s['bits_per_byte']:.4f} | {s['value_in_unit']:.4f} | {_ci(s['ci95_in_unit'])} | "
            f"{cost:.2f}x |"
        )
    factor = summary.get("bytes_per_unit", 1)
    for name, bpb in summary.get("codecs", {}).items():
        lines.append(
            f"| {name} | {summary['bytes']} | {bpb * summary['bytes']:.1f} | {bpb:.4f} | "
            f"{bpb * factor:.4f} | | |"
        )
    for name, note in summary.get("codec_notes", {}).items():
        lines.append(f"| {name} | | | {note} | | | |")
    return "\n".join(lines) + "\n"


def modality_table(summaries: list[dict[str, Any]]) -> str:
    """One row per modality of a multimodal model: bpb, its own unit, header bits, codecs."""
    lines = [
        "| modality | bytes | bits/byte | in unit | unit | 95% CI (unit) | header bits/byte "
        "| codecs (bits/byte) |",
        "|---|---:|---:|---:|---|---|---:|---|",
    ]
    for s in summaries:
        codecs = ", ".join(f"{k} {v:.3f}" for k, v in s.get("codecs", {}).items())
        lines.append(
            f"| {s['modality']} | {s['bytes']} | {s['bits_per_byte']:.4f} | "
            f"{s['value_in_unit']:.4f} | {s['unit']} | {_ci(s['ci95_in_unit'])} | "
            f"{_fmt(s.get('header_bits_per_byte'))} | {codecs or 'none'} |"
        )
    return "\n".join(lines) + "\n"


def text_report(summary: dict[str, Any]) -> str:
    """The printed report: headline numbers, then the Markdown table and any notes."""
    head = [
        f"modality: {summary['modality']}  unit: {summary['unit']}  "
        f"sequences: {summary['sequences']}  window: {summary['window']}",
        f"bytes: {summary['bytes']}  total bits: {summary['total_bits']:.3f}",
        f"bits per byte: {summary['bits_per_byte']:.3f}  {summary['unit']}: "
        f"{summary['value_in_unit']:.3f}  95% CI: {_ci(summary['ci95_in_unit'])}",
    ]
    if "words" in summary:
        head.append(
            f"words: {summary['words']}  word perplexity: {_fmt(summary['word_perplexity'], 2)}"
        )
    for mode in ("strided", "sliding"):
        s = summary.get(mode)
        if s:
            head.append(
                f"{mode}: bits per byte {s['bits_per_byte']:.3f}  {summary['unit']} "
                f"{s['value_in_unit']:.3f}  cost {s['cost']['relative_bytes_processed']:.2f}x "
                "bytes processed"
            )
    for mode, note in summary.get("notes", {}).items():
        head.append(f"{mode}: {note}")
    skipped = summary.get("skipped") or []
    tail = [f"skipped {len(skipped)} inputs:"] if skipped else []
    tail += [f"  {s['source']}: {s['reason']}" for s in skipped]
    return "\n".join(head) + "\n\n" + markdown(summary) + ("\n".join(tail) + "\n" if tail else "")


# -- plots -------------------------------------------------------------------------------------


def along_sequence(
    evaluation: Evaluation, mode: str, bins: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """Mean bits by offset inside each CI group (sequence or stream window), binned."""
    result = evaluation.modes[mode]
    longest = max(hi - lo for ranges in evaluation.groups for lo, hi in ranges)
    sums = np.zeros(longest)
    counts = np.zeros(longest)
    for s, ranges in enumerate(evaluation.groups):
        for lo, hi in ranges:
            sums[: hi - lo] += result.bits[s][lo:hi]
            counts[: hi - lo] += 1
    edges = np.unique(np.linspace(0, longest, min(bins, longest) + 1).astype(int))
    bsum = np.add.reduceat(sums, edges[:-1])
    bcount = np.add.reduceat(counts, edges[:-1])
    return (edges[:-1] + edges[1:]) / 2, bsum / np.maximum(bcount, 1)


def bits_map(evaluation: Evaluation, mode: str = "basic") -> BitsMap | None:
    """The adapter's map of mean bits over its full-length samples (images: per pixel), or None."""
    adapter = evaluation.adapter
    if adapter is None or adapter.stream:
        return None
    rows = [b for b in evaluation.modes[mode].bits if len(b) == adapter.seq_len]
    if not rows:
        return None
    return adapter.bits_map(np.mean(rows, axis=0))


def save_plots(evaluation: Evaluation, folder: str | os.PathLike) -> list[Path]:
    """patch_position.png, along_sequence.png and the adapter's map if it has one (images:
    pixel_bits.png); returns the paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    summary, paths = evaluation.summary, []

    def save(fig: Any, name: str) -> None:
        paths.append(out / name)
        fig.savefig(paths[-1], dpi=100, bbox_inches="tight")
        plt.close(fig)

    fig, ax = plt.subplots(figsize=(6, 4))
    for mode in MODES:
        s = summary.get(mode)
        if s:
            values = [np.nan if v is None else v for v in s["by_patch_position"]]
            ax.plot(range(len(values)), values, marker="o", label=mode)
    ax.set_xlabel("position inside the patch (byte)")
    ax.set_ylabel("mean bits")
    ax.set_title(f"loss by position inside the patch (P={summary['model']['patch_size']})")
    ax.legend()
    save(fig, "patch_position.png")

    fig, ax = plt.subplots(figsize=(7, 4))
    for mode in MODES:
        if summary.get(mode):
            x, y = along_sequence(evaluation, mode)
            ax.plot(x, y, label=mode)
    where = "window" if summary.get("stream") else "sequence"
    ax.set_xlabel(f"byte offset in the {where}")
    ax.set_ylabel("mean bits")
    ax.set_title("loss along the sequence")
    ax.legend()
    save(fig, "along_sequence.png")

    heat = bits_map(evaluation)
    if heat is not None:
        fig, ax = plt.subplots(figsize=(5, 4.5))
        image = ax.imshow(heat.values, cmap="viridis")
        fig.colorbar(image, ax=ax, label=heat.label)
        ax.set_title(heat.title)
        save(fig, f"{heat.name}.png")
    return paths


__all__ = [
    "MODES",
    "along_sequence",
    "bits_map",
    "markdown",
    "modality_table",
    "save_plots",
    "text_report",
]
