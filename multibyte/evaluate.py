"""Exact bits per byte of a model on data, in each modality's unit, with codec baselines.

Three ways to score (never mixed; each is reported on its own with its cost):

- basic: every sequence is cut into windows of L bytes (L = the model's ``max_seq_len`` or
  ``seq_len``); each window is one forward pass and all its predictions are kept. The last,
  shorter window is scored too.
- strided (MEGABYTE paper, "strided inference"): a second set of windows offset by h = P // 2
  bytes, so that the bytes in the second half of a basic patch sit in the first half of an
  offset patch. See ``strided_plan`` for exactly which pass scores which byte.
- sliding: windows of L bytes that advance by S < L, so that every scored byte after the first
  window has at least ``context`` bytes of context. See ``sliding_plan``.

Every plan is checked at run time: each byte of the data is scored by exactly one prediction.
Bits are accumulated in float64. ``docs/evaluation.md`` defines every reported number.

The library entry point is ``evaluate_model(model, sequences, ...)``; any ``nn.Module`` whose
``model(x)`` returns logits [B, T, 256] (logits[:, t] predicting x[:, t] from x[:, :t]) and
whose ``config`` has ``max_seq_len`` (and ``patch_size``, default 1) can be evaluated.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from multibyte.codecs import byte_codecs, codec_rates
from multibyte.metrics import nll_bits

Z95 = 1.959963984540054  # two-sided 95% normal quantile
HEAD_CHUNK = 8192  # positions per head/loss chunk: logits of long windows never exist at once


class EvaluationError(ValueError):
    """Bad input to ``multibyte evaluate`` (missing paths, empty data, wrong modality)."""


@dataclass
class Window:
    """One forward pass on ``sequence[start:stop]``; ``keep`` marks the predictions scored."""

    sequence: int
    start: int
    stop: int
    keep: np.ndarray


@dataclass
class ModeResult:
    """Per-byte bits of one scoring mode, and the patch position each byte was scored at."""

    name: str
    bits: list[np.ndarray]
    patch_position: list[np.ndarray]
    windows: int
    bytes_processed: int
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass
class Evaluation:
    """What ``evaluate_model`` returns: ``summary`` is the JSON report, the rest feeds plots."""

    summary: dict[str, Any]
    sequences: list[np.ndarray]
    modes: dict[str, ModeResult]
    groups: list[list[tuple[int, int]]]
    adapter: Any = None


# -- model facts -------------------------------------------------------------------------------


def patch_size_of(model: nn.Module) -> int:
    """P of a MEGABYTE model (its outermost patch); 1 for models without patches."""
    return int(getattr(model.config, "patch_size", None) or 1)


def max_seq_len_of(model: nn.Module) -> int:
    return int(model.config.max_seq_len)


# -- plans: which forward passes score which bytes ---------------------------------------------


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


def sliding_plan(lengths: Sequence[int], window: int, context: int, patch: int) -> list[Window]:
    """Windows of L bytes advancing by S = (L - context) rounded down to a multiple of P.

    The first window of a sequence keeps all its predictions; window k >= 1 starts at kS and
    keeps only its last S positions, so each of them has at least L - S >= ``context`` bytes of
    context. S is a multiple of P so every window keeps the basic plan's patch alignment.
    """
    if not 0 <= context < window:
        raise EvaluationError(f"sliding context must be in [0, window={window}), got {context}")
    stride = (window - context) // patch * patch
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


# -- scoring -----------------------------------------------------------------------------------


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
    device = torch.device(device) if device is not None else _model_device(model)
    patch = patch_size_of(model)
    bits = [np.zeros(len(s), dtype=np.float64) for s in sequences]
    positions = [np.zeros(len(s), dtype=np.int32) for s in sequences]
    counts = [np.zeros(len(s), dtype=np.int32) for s in sequences]
    by_length: dict[int, list[Window]] = {}
    for w in plan:
        by_length.setdefault(w.stop - w.start, []).append(w)
    batches = [
        group[i : i + batch_size] for group in by_length.values()
        for i in range(0, len(group), batch_size)
    ]  # fmt: skip
    from tqdm import tqdm

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


def _model_device(model: nn.Module) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


# -- statistics --------------------------------------------------------------------------------


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


def count_words(data: bytes, separator: bytes | None = None) -> int:
    """Whitespace-separated words (ASCII whitespace), document separators removed first."""
    if separator:
        data = data.replace(separator, b" ")
    return len(data.split())


def adapter_unit(adapter: Any) -> tuple[str, int]:
    """(unit name, bytes per unit): bits/dim = bpb for images, bits/sample = bpb * bytes/sample."""
    if adapter is None:
        return "bits/byte", 1
    return str(getattr(adapter, "unit", "bits/byte")), int(getattr(adapter, "bytes_per_sample", 1))


def _mode_summary(
    mode: ModeResult, groups: list[list[tuple[int, int]]], factor: int, basic: ModeResult | None
) -> dict[str, Any]:
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
        "value_in_unit": bpb * factor,
        "ci95": interval,
        "ci95_in_unit": [v * factor for v in interval] if interval else None,
        "ci_groups": len(group_bits),
        "cost": {
            "forward_windows": mode.windows,
            "bytes_processed": mode.bytes_processed,
            "relative_windows": mode.windows / base.windows,
            "relative_bytes_processed": mode.bytes_processed / base.bytes_processed,
        },
        "by_patch_position": _by_position(mode),
    }
    out.update(mode.settings)
    return out


def _by_position(mode: ModeResult) -> list[float | None]:
    bits = np.concatenate(mode.bits) if mode.bits else np.zeros(0)
    pos = np.concatenate(mode.patch_position) if mode.patch_position else np.zeros(0, int)
    size = int(pos.max()) + 1 if len(pos) else 0
    sums = np.bincount(pos, weights=bits, minlength=size)
    counts = np.bincount(pos, minlength=size)
    return [float(s / c) if c else None for s, c in zip(sums, counts)]


# -- the library entry point -------------------------------------------------------------------


def evaluate_model(
    model: nn.Module,
    sequences: Sequence[bytes | np.ndarray],
    *,
    adapter: Any = None,
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
    (default: the adapter's ``seq_len`` is None) means the sequences are text streams: the 95%
    interval then runs over windows of L bytes instead of over sequences. ``seq_len`` sets L
    (default and maximum: the model's ``max_seq_len``).
    """
    arrays = [_as_uint8(s) for s in sequences]
    arrays = [a for a in arrays if len(a)]
    if not arrays:
        raise EvaluationError("no data to evaluate: every sequence is empty")
    max_len = max_seq_len_of(model)
    window = seq_len or max_len
    if not 1 <= window <= max_len:
        raise EvaluationError(f"seq_len must be in 1..{max_len} (the model's), got {window}")
    if stream is None:
        stream = adapter is not None and getattr(adapter, "seq_len", 0) is None
    patch = patch_size_of(model)
    lengths = [len(a) for a in arrays]
    # Confidence-interval groups: whole sequences, or the basic windows of a stream.
    groups = [
        [(lo, min(lo + window, n)) for lo in range(0, n, window)] if stream else [(0, n)]
        for n in lengths
    ]
    unit, factor = adapter_unit(adapter)
    was_training = model.training
    model.eval()
    try:
        modes = {"basic": run_plan(model, arrays, basic_plan(lengths, window), "basic",
                                   batch_size, device, progress)}  # fmt: skip
        notes: dict[str, str] = {}
        if strided:
            if patch < 2:
                notes["strided"] = "n/a: the model has no patches (P = 1), strided = basic"
            else:
                mode = run_plan(model, arrays, strided_plan(lengths, window, patch), "strided",
                                batch_size, device, progress)  # fmt: skip
                mode.settings = {"offset": patch // 2, "window": window}
                modes["strided"] = mode
        if sliding:
            ctx = window // 2 if context is None else context
            plan = sliding_plan(lengths, window, ctx, patch)
            mode = run_plan(model, arrays, plan, "sliding", batch_size, device, progress)
            stride = (window - ctx) // patch * patch
            mode.settings = {"context": ctx, "stride": stride, "window": window,
                             "min_context": window - stride}  # fmt: skip
            modes["sliding"] = mode
    finally:
        model.train(was_training)
    modes["basic"].settings = {"window": window}

    summaries = {
        name: _mode_summary(mode, groups, factor, modes["basic"]) for name, mode in modes.items()
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
            "patch_size": patch,
            "max_seq_len": max_len,
            "config": config.to_dict() if hasattr(config, "to_dict") else None,
        },
        "modality": getattr(adapter, "name", None) or "bytes",
        "modality_options": getattr(adapter, "options", None),
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
    if words:
        sep = _text_separator() if getattr(adapter, "name", None) == "text" else None
        n_words = sum(count_words(a.tobytes(), sep) for a in arrays)
        summary["words"] = n_words
        for s in (summary, *summaries.values()):
            s["word_perplexity"] = 2.0 ** (s["total_bits"] / n_words) if n_words else None
    summary["codecs"], summary["codec_notes"] = {}, {}
    if codecs:
        raw = [a.tobytes() for a in arrays]
        rates, notes_c = codec_rates(byte_codecs(), raw, check_codecs)
        if adapter is not None:
            fmt_rates, fmt_notes = _format_codec_rates(adapter, raw, check_codecs)
            rates.update(fmt_rates)
            notes_c.update(fmt_notes)
        summary["codecs"] = rates
        summary["codecs_in_unit"] = {k: v * factor for k, v in rates.items()}
        summary["codec_notes"] = notes_c
    return Evaluation(summary, arrays, modes, groups, adapter)


def _text_separator() -> bytes | None:
    try:
        from modalities.text import SEPARATOR
    except ImportError:
        return None
    return SEPARATOR


def _format_codec_rates(
    adapter: Any, raw: list[bytes], check: bool
) -> tuple[dict[str, float], dict[str, str]]:
    try:
        from modalities.codecs import codecs_for
    except ImportError:
        return {}, {}
    codecs, notes = codecs_for(adapter)
    rates, more = codec_rates(codecs, raw, check)
    return rates, {**notes, **more}


def _as_uint8(data: bytes | np.ndarray | torch.Tensor) -> np.ndarray:
    if isinstance(data, torch.Tensor):
        data = data.detach().cpu().numpy()
    if isinstance(data, np.ndarray):
        if data.size and (data.min() < 0 or data.max() > 255):
            raise EvaluationError("byte arrays must hold values 0..255")
        return np.ascontiguousarray(data.reshape(-1).astype(np.uint8))
    return np.frombuffer(bytes(data), dtype=np.uint8).copy()


# -- data loading ------------------------------------------------------------------------------


@dataclass
class Data:
    """Sequences to score and where they came from."""

    sequences: list[bytes]
    options: dict[str, Any] | None
    stream: bool
    source: str
    skipped: list[dict[str, str]] = field(default_factory=list)


def _is_shards(paths: list[Path]) -> bool:
    if all(p.is_file() and p.suffix == ".tar" for p in paths):
        return True
    return (
        len(paths) == 1
        and paths[0].is_dir()
        and ((paths[0] / "manifest.json").is_file() or any(paths[0].glob("*-*.tar")))
    )


def _guess_modality(paths: list[Path]) -> str | None:
    """The one modality whose file suffixes every recognised input has, if there is one."""
    from modalities.audio import AUDIO_SUFFIXES
    from modalities.image import IMAGE_SUFFIXES
    from modalities.text import TEXT_SUFFIXES

    kinds = set()
    for root in paths:
        files = [root] if root.is_file() else [p for p in root.rglob("*") if p.is_file()]
        for f in files:
            suffix = f.suffix.lower()
            if suffix in IMAGE_SUFFIXES or suffix == ".npz":
                kinds.add("image")
            elif suffix in AUDIO_SUFFIXES:
                kinds.add("audio")
            elif suffix in TEXT_SUFFIXES:
                kinds.add("text")
    return kinds.pop() if len(kinds) == 1 else None


def load_data(
    paths: Sequence[str | os.PathLike],
    options: dict[str, Any] | None,
    split: str = "val",
    modality_given: bool = False,
) -> Data:
    """Shard folder (or .tar files) -> that split's samples; raw files -> encoded with options."""
    roots = [Path(p) for p in paths]
    for root in roots:
        if not root.exists():
            raise EvaluationError(f"data path not found: {root}")
    if _is_shards(roots):
        return _load_shards(roots, options, split, modality_given)
    if options is None:
        raise EvaluationError(
            "the checkpoint stores no modality, so raw files cannot be encoded: pass --modality"
        )
    guess = _guess_modality(roots)
    if not modality_given and guess is not None and guess != options["name"]:
        raise EvaluationError(
            f"the data looks like {guess} but the checkpoint was trained on {options['name']}; "
            f"pass --modality {guess} to evaluate it anyway"
        )
    from modalities.prepare import encode_in_memory

    # val_fraction 0: every raw input given on the command line is evaluated.
    encoded = encode_in_memory(options, [str(r) for r in roots], val_fraction=0.0)
    import modalities

    stream = modalities.get(**options).seq_len is None
    sequences = [s for s in encoded["train"] if s]
    return Data(sequences, options, stream, "files", encoded["skipped"])


def _load_shards(
    roots: list[Path], options: dict[str, Any] | None, split: str, modality_given: bool
) -> Data:
    from multibyte.data.shards import list_shards, load_manifest, read_samples

    folder = roots[0] if roots[0].is_dir() else None
    manifest = (load_manifest(folder) if folder else None) or {}
    stored = manifest.get("options")
    if stored and options and stored.get("name") != options.get("name") and not modality_given:
        raise EvaluationError(
            f"the shards in {folder} hold {stored.get('name')} but the checkpoint was trained on "
            f"{options.get('name')}; pass --modality {stored.get('name')} to evaluate anyway"
        )
    if stored and (options is None or stored.get("name") == options.get("name")):
        options = stored  # the bytes are laid out as the shards say
    source = folder if folder is not None else [str(r) for r in roots]
    if folder is not None and not list_shards(folder, split):
        found = sorted({p.name.split("-")[0] for p in folder.glob("*-*.tar")})
        raise EvaluationError(
            f"no {split!r} shards in {folder} (splits found: {', '.join(found) or 'none'}); "
            "use --split"
        )
    samples = read_samples(source, split)
    sequences = [s["bin"] for s in samples if s.get("bin")]
    stream = bool(manifest.get("stream", False))
    if not manifest and options is not None:
        import modalities

        stream = modalities.get(**options).seq_len is None
    if stream:  # text shards are consecutive chunks of one stream
        sequences = [b"".join(sequences)] if sequences else []
    skipped = list(manifest.get("skipped", []))
    return Data(sequences, options, stream, "shards", skipped)


def limit_data(data: Data, limit: int | None, window: int) -> Data:
    """At most ``limit`` sequences (samples), or ``limit`` windows of a stream."""
    if limit is None:
        return data
    if data.stream:
        budget = limit * window
        kept, total = [], 0
        for s in data.sequences:
            if total >= budget:
                break
            kept.append(s[: budget - total])
            total += len(kept[-1])
        data.sequences = kept
    else:
        data.sequences = data.sequences[:limit]
    return data


# -- command line ------------------------------------------------------------------------------


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="multibyte evaluate",
        description="Bits per byte of a checkpoint on data, in the modality's unit, with codec "
        "baselines on the same bytes.",
    )
    parser.add_argument("--ckpt", required=True, help="checkpoint (.ckpt or exported)")
    parser.add_argument(
        "--data", required=True, nargs="+", help="a prepared shard folder, .tar shards, or raw "
        "files/folders (encoded with the checkpoint's modality)",
    )  # fmt: skip
    parser.add_argument("--modality", help="override the checkpoint's modality (name)")
    parser.add_argument("--split", default="val", help="shard split to read (default: val)")
    parser.add_argument("--seq-len", type=int, help="window length L (default: max_seq_len)")
    parser.add_argument("--strided", action="store_true", help="also the two-pass P/2 scoring")
    parser.add_argument("--sliding", action="store_true", help="also sliding-window scoring")
    parser.add_argument("--context", type=int, help="sliding: minimum context (default L/2)")
    parser.add_argument("--limit", type=int, help="at most N sequences (text: N windows)")
    parser.add_argument("--words", action="store_true", help="text: word-level perplexity")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if any)")
    parser.add_argument("--no-codecs", action="store_true", help="skip the codec baselines")
    parser.add_argument("--json", help="write the JSON report here")
    parser.add_argument("--markdown", help="write the Markdown table here")
    parser.add_argument("--plots", help="write PNG plots into this folder")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    return parser


def _resolve_options(
    model_options: dict[str, Any] | None, modality: str | None
) -> dict[str, Any] | None:
    if modality is None:
        return dict(model_options) if model_options else None
    if model_options and model_options.get("name") == modality:
        return dict(model_options)
    return {"name": modality}


def run(args: argparse.Namespace) -> Evaluation:
    """Evaluate as the command line asks; raise EvaluationError on bad input."""
    import modalities
    from multibyte.checkpoint import CheckpointError, load

    if not Path(args.ckpt).is_file():
        raise EvaluationError(f"checkpoint not found: {args.ckpt}")
    for p in args.data:
        if not Path(p).exists():
            raise EvaluationError(f"data path not found: {p}")
    if args.limit is not None and args.limit < 1:
        raise EvaluationError(f"--limit must be positive, got {args.limit}")
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    try:
        model = load(args.ckpt, map_location=device)
    except (CheckpointError, FileNotFoundError) as error:
        raise EvaluationError(str(error)) from error
    options = _resolve_options(getattr(model, "modality", None), args.modality)
    try:
        data = load_data(args.data, options, args.split, modality_given=args.modality is not None)
        adapter = modalities.get(**data.options) if data.options else None
    except ValueError as error:
        raise EvaluationError(str(error)) from error
    window = args.seq_len or max_seq_len_of(model)
    data = limit_data(data, args.limit, window)
    if not data.sequences:
        reasons = "; ".join(f"{s['source']}: {s['reason']}" for s in data.skipped[:5])
        raise EvaluationError(
            f"no data to evaluate in {' '.join(args.data)}"
            + (f" ({len(data.skipped)} inputs skipped: {reasons})" if data.skipped else "")
        )
    evaluation = evaluate_model(
        model, data.sequences, adapter=adapter, stream=data.stream, seq_len=args.seq_len,
        strided=args.strided, sliding=args.sliding, context=args.context,
        batch_size=args.batch_size, device=device, codecs=not args.no_codecs,
        words=args.words, progress=not args.quiet,
    )  # fmt: skip
    evaluation.summary.update(
        checkpoint=str(args.ckpt),
        data=[str(p) for p in args.data],
        source=data.source,
        split=args.split if data.source == "shards" else None,
        skipped=data.skipped,
    )
    return evaluation


def main(argv: list[str] | None = None) -> int:
    """``multibyte evaluate``: print the report; exit 2 on bad input."""
    from multibyte import report

    args = build_parser().parse_args(argv)
    try:
        evaluation = run(args)
    except EvaluationError as error:
        print(f"multibyte evaluate: error: {error}", file=sys.stderr)
        return 2
    summary = evaluation.summary
    if args.plots:
        summary["plots"] = [str(p) for p in report.save_plots(evaluation, args.plots)]
    table = report.markdown(summary)
    print(report.text_report(summary))
    if args.markdown:
        Path(args.markdown).write_text(table)
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")
    return 0


__all__ = [
    "Evaluation",
    "EvaluationError",
    "ModeResult",
    "Window",
    "basic_plan",
    "ci95",
    "count_words",
    "evaluate_model",
    "load_data",
    "main",
    "run_plan",
    "sliding_plan",
    "strided_plan",
    "window_bits",
]
