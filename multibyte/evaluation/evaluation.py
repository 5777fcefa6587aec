"""``evaluate_model``: score sequences in every asked mode and summarise them as the report.

The adapter (optional) gives the unit, the stream flag, word counts and the format codecs;
without one the data is plain bytes in bits/byte.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from modalities import Adapter
from multibyte.codecs import byte_codecs, codec_rates
from multibyte.evaluation.plans import EvaluationError, ci_groups
from multibyte.evaluation.scoring import (
    ModeResult,
    max_seq_len_of,
    patch_size_of,
    score_modes,
)
from multibyte.evaluation.statistics import mode_summary, word_perplexity


@dataclass
class Evaluation:
    """What ``evaluate_model`` returns: ``summary`` is the JSON report, the rest feeds plots."""

    summary: dict[str, Any]
    sequences: list[np.ndarray]
    modes: dict[str, ModeResult]
    groups: list[list[tuple[int, int]]]
    adapter: Adapter | None = None


def as_uint8(data: bytes | np.ndarray | torch.Tensor) -> np.ndarray:
    """One sequence as a flat uint8 array; values outside 0..255 are an error."""
    if isinstance(data, torch.Tensor):
        data = data.detach().cpu().numpy()
    if isinstance(data, np.ndarray):
        if data.size and (data.min() < 0 or data.max() > 255):
            raise EvaluationError("byte arrays must hold values 0..255")
        return np.ascontiguousarray(data.reshape(-1).astype(np.uint8))
    return np.frombuffer(bytes(data), dtype=np.uint8).copy()


def count_words(adapter: Adapter | None, sequences: Sequence[np.ndarray]) -> int:
    """Words in the data by the adapter's rule (whitespace runs for plain bytes)."""
    if adapter is None:
        return sum(len(a.tobytes().split()) for a in sequences)
    counts = [adapter.count_words(a.tobytes()) for a in sequences]
    if any(c is None for c in counts):
        raise EvaluationError(f"word counts do not apply to {adapter.name}")
    return int(sum(counts))


def codec_baselines(
    adapter: Adapter | None, sequences: Sequence[bytes], check: bool
) -> tuple[dict[str, float], dict[str, str]]:
    """Generic byte codecs plus the adapter's format codecs, on exactly these sequences."""
    rates, notes = codec_rates(byte_codecs(), sequences, check)
    if adapter is not None:
        codecs, format_notes = adapter.codecs()
        format_rates, more = codec_rates(codecs, sequences, check)
        rates.update(format_rates)
        notes.update({**format_notes, **more})
    return rates, notes


def evaluate_model(
    model: nn.Module,
    sequences: Sequence[bytes | np.ndarray],
    *,
    adapter: Adapter | None = None,
    stream: bool | None = None,
    seq_len: int | None = None,
    strided: bool = False,
    sliding: bool = False,
    context: int | None = None,
    batch_size: int = 8,
    device: torch.device | str | None = None,
    codecs: bool = True,
    check_codecs: bool = False,
    words: bool = False,
    progress: bool = False,
) -> Evaluation:
    """Score ``sequences`` (byte strings) with ``model``; return the report and per-byte bits.

    ``adapter`` (a modality adapter, optional) gives the unit and the format codecs. ``stream``
    (default: the adapter's ``stream``) means the sequences are streams: the 95% interval then
    runs over windows of L bytes instead of over sequences. ``seq_len`` sets L (default and
    maximum: the model's ``max_seq_len``).
    """
    arrays = [as_uint8(s) for s in sequences]
    arrays = [a for a in arrays if len(a)]
    if not arrays:
        raise EvaluationError("no data to evaluate: every sequence is empty")
    max_len = max_seq_len_of(model)
    window = seq_len or max_len
    if not 1 <= window <= max_len:
        raise EvaluationError(f"seq_len must be in 1..{max_len} (the model's), got {window}")
    if stream is None:
        stream = adapter is not None and adapter.stream
    unit = adapter.unit if adapter is not None else "bits/byte"
    factor = adapter.bytes_per_unit if adapter is not None else 1
    n_words = count_words(adapter, arrays) if words else None
    lengths = [len(a) for a in arrays]
    groups = ci_groups(lengths, window, stream)
    modes, notes = score_modes(
        model,
        arrays,
        window,
        strided=strided,
        sliding=sliding,
        context=context,
        batch_size=batch_size,
        device=device,
        progress=progress,
    )
    summaries = {
        name: mode_summary(mode, groups, factor, modes["basic"]) for name, mode in modes.items()
    }
    basic = summaries["basic"]
    data_bytes = int(sum(lengths))
    if basic["bytes"] != data_bytes:  # the plan check makes this impossible; keep the promise
        raise RuntimeError(f"scored {basic['bytes']} bytes of {data_bytes}")
    config = getattr(model, "config", None)
    summary: dict[str, Any] = {
        "format": "multibyte-evaluation",
        "version": 1,
        "model": {
            "class": type(model).__name__,
            "patch_size": patch_size_of(model),
            "max_seq_len": max_len,
            "config": config.to_dict() if hasattr(config, "to_dict") else None,
        },
        "modality": adapter.name if adapter is not None else "bytes",
        "modality_options": adapter.options if adapter is not None else None,
        "unit": unit,
        "bytes_per_unit": factor,
        "stream": bool(stream),
        "sequences": len(arrays),
        "window": window,
        "bytes": basic["bytes"],
        "total_bits": basic["total_bits"],
        "bits_per_byte": basic["bits_per_byte"],
        "value_in_unit": basic["value_in_unit"],
        "ci95": basic["ci95"],
        "ci95_in_unit": basic["ci95_in_unit"],
        "basic": basic,
        "strided": summaries.get("strided"),
        "sliding": summaries.get("sliding"),
        "notes": notes,
    }
    if n_words is not None:
        summary["words"] = n_words
        for s in (summary, *summaries.values()):
            s["word_perplexity"] = word_perplexity(s["total_bits"], n_words)
    summary["codecs"], summary["codec_notes"] = {}, {}
    if codecs:
        rates, codec_notes = codec_baselines(adapter, [a.tobytes() for a in arrays], check_codecs)
        summary["codecs"] = rates
        summary["codecs_in_unit"] = {k: v * factor for k, v in rates.items()}
        summary["codec_notes"] = codec_notes
    return Evaluation(summary, arrays, modes, groups, adapter)


__all__ = ["Evaluation", "as_uint8", "codec_baselines", "count_words", "evaluate_model"]
