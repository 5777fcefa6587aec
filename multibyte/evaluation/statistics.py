"""Statistics of per-byte bits: totals, the 95% interval, and per-mode summaries (float64)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from multibyte.evaluation.scoring import ModeResult

Z95 = 1.959963984540054  # two-sided 95% normal quantile


def ci95(group_bits: np.ndarray, group_bytes: np.ndarray) -> list[float] | None:
    """95% normal-approximation interval of sum(bits)/sum(bytes) over independent groups.

    The ratio estimator's linearised variance: se^2 = m/(m-1) * sum((b_g - r n_g)^2) / N^2,
    i.e. the spread of per-group bpb weighted by group size. None with fewer than 2 groups.
    """
    m = len(group_bits)
    total = float(group_bytes.sum())
    if m < 2 or total == 0:
        return None
    rate = float(group_bits.sum()) / total
    resid = group_bits - rate * group_bytes
    se = math.sqrt(m / (m - 1) * float((resid**2).sum())) / total
    return [rate - Z95 * se, rate + Z95 * se]


def by_patch_position(mode: ModeResult) -> list[float | None]:
    """Mean bits of the bytes scored at each position inside the patch (None: no byte there)."""
    bits = np.concatenate(mode.bits) if mode.bits else np.zeros(0)
    pos = np.concatenate(mode.patch_position) if mode.patch_position else np.zeros(0, int)
    size = int(pos.max()) + 1 if len(pos) else 0
    sums = np.bincount(pos, weights=bits, minlength=size)
    counts = np.bincount(pos, minlength=size)
    return [float(s / c) if c else None for s, c in zip(sums, counts)]


def mode_summary(
    mode: ModeResult,
    groups: list[list[tuple[int, int]]],
    bytes_per_unit: int,
    basic: ModeResult | None = None,
) -> dict[str, Any]:
    """The JSON summary of one mode: totals, bpb, the unit, the 95% interval and the cost."""
    group_bits, group_bytes = [], []
    for s, ranges in enumerate(groups):
        for lo, hi in ranges:
            group_bits.append(math.fsum(mode.bits[s][lo:hi]))
            group_bytes.append(hi - lo)
    num_bytes = int(sum(group_bytes))
    total = math.fsum(group_bits)
    bpb = total / num_bytes
    interval = ci95(np.array(group_bits), np.array(group_bytes, dtype=np.float64))
    base = basic or mode
    out = {
        "bytes": num_bytes,
        "total_bits": total,
        "bits_per_byte": bpb,
        "value_in_unit": bpb * bytes_per_unit,
        "ci95": interval,
        "ci95_in_unit": [v * bytes_per_unit for v in interval] if interval else None,
        "ci_groups": len(group_bits),
        "cost": {
            "forward_windows": mode.windows,
            "bytes_processed": mode.bytes_processed,
            "relative_windows": mode.windows / base.windows,
            "relative_bytes_processed": mode.bytes_processed / base.bytes_processed,
        },
        "by_patch_position": by_patch_position(mode),
    }
    out.update(mode.settings)
    return out


def word_perplexity(total_bits: float, words: int) -> float | None:
    """2^(total bits / words), the PG-19 convention; None without words."""
    return 2.0 ** (total_bits / words) if words else None


__all__ = ["Z95", "by_patch_position", "ci95", "mode_summary", "word_perplexity"]
