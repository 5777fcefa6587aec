"""Plans: which forward passes (windows) score which bytes. Pure: lengths in, windows out.

- basic: every sequence is cut into windows of L bytes; each window is one forward pass and all
  its predictions are kept. The last, shorter window is scored too.
- strided (MEGABYTE paper, "strided inference"): a second set of windows offset by h = P // 2
  bytes, so that the bytes in the second half of a basic patch sit in the first half of an
  offset patch. See ``strided_plan`` for exactly which pass scores which byte.
- sliding: windows of L bytes that advance by S < L, so that every scored byte after the first
  window has at least ``context`` bytes of context. See ``sliding_plan``.

In every plan each byte of the data is kept from exactly one window (``run_plan`` checks it).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


class EvaluationError(ValueError):
    """Bad input to an evaluation (missing paths, empty data, impossible plan, wrong modality)."""


@dataclass
class Window:
    """One forward pass on ``sequence[start:stop]``; ``keep`` marks the predictions scored."""

    sequence: int
    start: int
    stop: int
    keep: np.ndarray


def _all(n: int) -> np.ndarray:
    return np.ones(n, dtype=bool)


def basic_plan(lengths: Sequence[int], window: int) -> list[Window]:
    """Non-overlapping windows [kL, (k+1)L) of every sequence; all predictions kept."""
    plan = []
    for s, n in enumerate(lengths):
        for start in range(0, n, window):
            stop = min(start + window, n)
            plan.append(Window(s, start, stop, _all(stop - start)))
    return plan


def strided_plan(lengths: Sequence[int], window: int, patch: int) -> list[Window]:
    """The paper's two passes offset by h = P // 2; every byte is kept from exactly one.

    Pass A is the basic plan (windows [kL, (k+1)L)); it keeps bytes t with t % P < h, plus the
    whole first patch t < P of each sequence (an offset pass has no left context for those).
    Pass B has windows [s_k, s_k + L) with s_k = h + k (L - P), so its patch boundaries fall at
    t = h mod P and bytes with t % P >= h sit in the first P - h positions of an offset patch.
    It keeps those bytes, for t >= P; a window k >= 1 keeps nothing from its first patch, which
    is context only (taken from the data: bytes [s_k, s_k + P) were scored by window k - 1).
    So every pass-B byte of window k >= 1 sees at least P bytes of context.
    """
    if patch < 2:
        raise EvaluationError("strided evaluation needs a patch size of at least 2")
    if window % patch or window < 2 * patch:
        raise EvaluationError(
            f"strided evaluation needs a window that is a multiple of P={patch} and at least "
            f"2P, got {window}"
        )
    half = patch // 2
    plan = []
    for w in basic_plan(lengths, window):
        t = np.arange(w.start, w.stop)
        plan.append(Window(w.sequence, w.start, w.stop, (t % patch < half) | (t < patch)))
    for s, n in enumerate(lengths):
        k = 0
        while True:
            start = half + k * (window - patch)
            first = start if k == 0 else start + patch  # first byte this window may keep
            if first >= n:
                break
            stop = min(start + window, n)
            t = np.arange(start, stop)
            keep = (t >= first) & (t % patch >= half) & (t >= patch)
            plan.append(Window(s, start, stop, keep))
            k += 1
    return plan


def sliding_stride(window: int, context: int, patch: int) -> int:
    """S = (L - context) rounded down to a multiple of P."""
    return (window - context) // patch * patch


def sliding_plan(lengths: Sequence[int], window: int, context: int, patch: int) -> list[Window]:
    """Windows of L bytes advancing by S = (L - context) rounded down to a multiple of P.

    The first window of a sequence keeps all its predictions; window k >= 1 starts at kS and
    keeps only its last S positions, so each of them has at least L - S >= ``context`` bytes of
    context. S is a multiple of P so every window keeps the basic plan's patch alignment.
    """
    if not 0 <= context < window:
        raise EvaluationError(f"sliding context must be in [0, window={window}), got {context}")
    stride = sliding_stride(window, context, patch)
    if stride < 1:
        raise EvaluationError(
            f"sliding context {context} leaves no stride: it must be at most window - P = "
            f"{window - patch}"
        )
    plan = []
    for s, n in enumerate(lengths):
        k = 0
        while True:
            start = k * stride
            first = 0 if k == 0 else start + window - stride
            if first >= n:
                break
            stop = min(start + window, n)
            keep = np.arange(start, stop) >= first
            plan.append(Window(s, start, stop, keep))
            k += 1
    return plan


def ci_groups(lengths: Sequence[int], window: int, stream: bool) -> list[list[tuple[int, int]]]:
    """Confidence-interval groups per sequence: the whole sequence, or a stream's basic windows."""
    return [
        [(lo, min(lo + window, n)) for lo in range(0, n, window)] if stream else [(0, n)]
        for n in lengths
    ]


__all__ = [
    "EvaluationError",
    "Window",
    "basic_plan",
    "ci_groups",
    "sliding_plan",
    "sliding_stride",
    "strided_plan",
]
