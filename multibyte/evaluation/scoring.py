"""Scoring: a model and a plan in, the exact bits of every byte out (float64).

Any ``nn.Module`` whose ``model(x)`` returns logits [B, T, 256] (logits[:, t] predicting x[:, t]
from x[:, :t]) and whose ``config`` has ``max_seq_len`` (and ``patch_size``, default 1) can be
scored. Models with ``hidden(x)`` and a ``head`` get the head in chunks, so the logits of a long
window never exist at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from multibyte.evaluation.plans import (
    Window,
    basic_plan,
    sliding_plan,
    sliding_stride,
    strided_plan,
)
from multibyte.metrics import nll_bits

HEAD_CHUNK = 8192  # positions per head/loss chunk: logits of long windows never exist at once


@dataclass
class ModeResult:
    """Per-byte bits of one scoring mode, and the patch position each byte was scored at."""

    name: str
    bits: list[np.ndarray]
    patch_position: list[np.ndarray]
    windows: int
    bytes_processed: int
    settings: dict[str, Any] = field(default_factory=dict)


def patch_size_of(model: nn.Module) -> int:
    """P of a MEGABYTE model (its outermost patch); 1 for models without patches."""
    return int(getattr(model.config, "patch_size", None) or 1)


def max_seq_len_of(model: nn.Module) -> int:
    return int(model.config.max_seq_len)


def model_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


@torch.inference_mode()
def window_bits(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Per-byte bits (float64, [B, T]) of ``x`` under ``model``; the head runs in chunks."""
    head = getattr(model, "head", None)
    if callable(getattr(model, "hidden", None)) and isinstance(head, nn.Module):
        hidden = model.hidden(x)
        out = torch.empty(x.shape, dtype=torch.float64, device=x.device)
        for c in range(0, x.shape[1], HEAD_CHUNK):
            out[:, c : c + HEAD_CHUNK] = nll_bits(
                head(hidden[:, c : c + HEAD_CHUNK]), x[:, c : c + HEAD_CHUNK]
            )
        return out
    return nll_bits(model(x), x)


def run_plan(
    model: nn.Module,
    sequences: Sequence[np.ndarray],
    plan: Sequence[Window],
    name: str,
    batch_size: int = 8,
    device: torch.device | str | None = None,
    progress: bool = False,
) -> ModeResult:
    """Run every window of ``plan`` (batched by length) and check each byte is scored once."""
    device = torch.device(device) if device is not None else model_device(model)
    patch = patch_size_of(model)
    bits = [np.zeros(len(s), dtype=np.float64) for s in sequences]
    positions = [np.zeros(len(s), dtype=np.int32) for s in sequences]
    counts = [np.zeros(len(s), dtype=np.int32) for s in sequences]
    by_length: dict[int, list[Window]] = {}
    for w in plan:
        by_length.setdefault(w.stop - w.start, []).append(w)
    batches = [
        group[i : i + batch_size]
        for group in by_length.values()
        for i in range(0, len(group), batch_size)
    ]
    for batch in tqdm(batches, desc=f"evaluate {name}", unit="batch", disable=not progress):
        x = np.stack([sequences[w.sequence][w.start : w.stop] for w in batch])
        scored = window_bits(model, torch.from_numpy(x.astype(np.int64)).to(device)).cpu().numpy()
        local = np.arange(x.shape[1]) % patch
        for w, row in zip(batch, scored):
            idx = np.arange(w.start, w.stop)[w.keep]
            bits[w.sequence][idx] = row[w.keep]
            positions[w.sequence][idx] = local[w.keep]
            counts[w.sequence][idx] += 1
    for s, c in enumerate(counts):
        if len(c) and not (c == 1).all():
            bad = int(np.flatnonzero(c != 1)[0])
            raise RuntimeError(
                f"{name} plan scored byte {bad} of sequence {s} {int(c[bad])} times (must be 1)"
            )
    return ModeResult(name, bits, positions, len(plan), int(sum(w.stop - w.start for w in plan)))


def score_modes(
    model: nn.Module,
    sequences: Sequence[np.ndarray],
    window: int,
    *,
    strided: bool = False,
    sliding: bool = False,
    context: int | None = None,
    batch_size: int = 8,
    device: torch.device | str | None = None,
    progress: bool = False,
) -> tuple[dict[str, ModeResult], dict[str, str]]:
    """Basic scoring, and strided and sliding when asked: (results by mode, notes by mode)."""
    patch = patch_size_of(model)
    lengths = [len(s) for s in sequences]
    notes: dict[str, str] = {}

    def run(plan: list[Window], name: str) -> ModeResult:
        return run_plan(model, sequences, plan, name, batch_size, device, progress)

    was_training = model.training
    model.eval()
    try:
        modes = {"basic": run(basic_plan(lengths, window), "basic")}
        modes["basic"].settings = {"window": window}
        if strided:
            if patch < 2:
                notes["strided"] = "n/a: the model has no patches (P = 1), strided = basic"
            else:
                modes["strided"] = run(strided_plan(lengths, window, patch), "strided")
                modes["strided"].settings = {"offset": patch // 2, "window": window}
        if sliding:
            ctx = window // 2 if context is None else context
            modes["sliding"] = run(sliding_plan(lengths, window, ctx, patch), "sliding")
            stride = sliding_stride(window, ctx, patch)
            modes["sliding"].settings = {
                "context": ctx,
                "stride": stride,
                "window": window,
                "min_context": window - stride,
            }
    finally:
        model.train(was_training)
    return modes, notes


__all__ = [
    "HEAD_CHUNK",
    "ModeResult",
    "max_seq_len_of",
    "patch_size_of",
    "run_plan",
    "score_modes",
    "window_bits",
]
