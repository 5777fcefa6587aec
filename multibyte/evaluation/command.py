"""``multibyte evaluate``: a checkpoint on shards or raw files, printed and saved as reports."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from multibyte.checkpoint import CheckpointError, DeviceError, check_device, load
from multibyte.data.header import HeaderTable, is_mixture
from multibyte.evaluation import report
from multibyte.evaluation.evaluation import Evaluation, evaluate_model
from multibyte.evaluation.mixture import HeaderedModel, header_bits, pick_modality
from multibyte.evaluation.plans import EvaluationError
from multibyte.evaluation.scoring import max_seq_len_of
from multibyte.outputs import (
    OutputError,
    check_distinct,
    check_folder,
    check_new_file,
    move_into_place,
    staging,
    write_text,
)
from multibyte.prepared import (
    LayoutMismatch,
    ModalityMismatch,
    ModalityUnknown,
    Prepared,
    PreparedError,
    describe,
    open_prepared,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="multibyte evaluate",
        description="Bits per byte of a checkpoint on data, in the modality's unit, with codec "
        "baselines on the same bytes.",
    )
    parser.add_argument("--ckpt", required=True, help="checkpoint (.ckpt or exported)")
    parser.add_argument(
        "--data",
        required=True,
        nargs="+",
        help="a prepared shard folder, .tar shards, or raw "
        "files/folders (encoded with the checkpoint's modality)",
    )
    parser.add_argument("--modality", help="override the checkpoint's modality (name)")
    parser.add_argument("--split", default="val", help="shard split to read (default: val)")
    parser.add_argument("--seq-len", type=int, help="window length L (default: max_seq_len)")
    parser.add_argument("--strided", action="store_true", help="also the two-pass P/2 scoring")
    parser.add_argument("--sliding", action="store_true", help="also sliding-window scoring")
    parser.add_argument("--context", type=int, help="sliding: minimum context (default L/2)")
    parser.add_argument("--limit", type=int, help="at most N sequences (streams: N windows)")
    parser.add_argument(
        "--words", action="store_true", help="word-level perplexity (modalities with words: text)"
    )
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--device", default=None, help="cpu, cuda, ... (default: cuda if any)")
    parser.add_argument("--no-codecs", action="store_true", help="skip the codec baselines")
    parser.add_argument("--json", help="write the JSON report here")
    parser.add_argument("--markdown", help="write the Markdown table here")
    parser.add_argument("--plots", help="write PNG plots into this folder")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="replace an existing --json or --markdown file, or the PNGs in --plots",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--allow-incomplete",
        action="store_true",
        help="read a shard folder whose prepare did not complete",
    )
    parser.add_argument(
        "--allow-unverified",
        action="store_true",
        help="read shards that no manifest records checksums for (no manifest, or bare .tar "
        "files): a damaged shard then goes unnoticed",
    )
    return parser


def check_args(args: argparse.Namespace) -> str:
    """Every number and the device checked before any file is read; returns the device."""
    for option, value, least in (
        ("--batch-size", getattr(args, "batch_size", None), 1),
        ("--seq-len", getattr(args, "seq_len", None), 1),
        ("--limit", getattr(args, "limit", None), 1),
        ("--context", getattr(args, "context", None), 0),
    ):
        if value is not None and value < least:
            what = "positive" if least else "at least 0"
            raise EvaluationError(f"{option} must be {what}, got {value}")
    try:
        device = getattr(args, "device", None)
        return str(check_device(device)) if device else default_device()
    except DeviceError as error:
        raise EvaluationError(str(error)) from error


def default_device() -> str:
    return "cuda" if torch.cuda.is_available() else "cpu"


def limit_sequences(
    sequences: list[bytes], limit: int | None, window: int, stream: bool
) -> list[bytes]:
    """At most ``limit`` sequences (samples), or ``limit`` windows of a stream."""
    if limit is None:
        return sequences
    if not stream:
        return sequences[:limit]
    budget, kept, total = limit * window, [], 0
    for s in sequences:
        if total >= budget:
            break
        kept.append(s[: budget - total])
        total += len(kept[-1])
    return kept


def open_data(args: argparse.Namespace, trained: dict | None) -> tuple[Prepared, list[bytes]]:
    """The data to score: the shards' ``--split``, or every raw file given."""
    try:
        prepared = open_prepared(
            args.data,
            trained,
            args.modality,
            val_fraction=0.0,
            allow_incomplete=getattr(args, "allow_incomplete", False),
            allow_unverified=getattr(args, "allow_unverified", False),
            same_layout=True,
        )
    except LayoutMismatch as error:
        raise EvaluationError(
            f"the shards in {error.where} hold {describe(error.found)} but the checkpoint "
            f"{args.ckpt} was trained on {describe(error.expected)}; prepare the data with the "
            f"checkpoint's options, or pass --modality {error.found.get('name')} to score it "
            "anyway"
        ) from error
    except ModalityMismatch as error:
        held = "the shards in {} hold" if error.shards else "the data in {} looks like"
        raise EvaluationError(
            f"{held.format(error.where)} {error.found} but the checkpoint was trained on "
            f"{error.expected}; pass --modality {error.found} to evaluate it anyway"
        ) from error
    except ModalityUnknown as error:
        raise EvaluationError(
            f"{error}: the checkpoint stores no modality and no adapter recognises the files; "
            "pass --modality"
        ) from error
    except ValueError as error:
        raise EvaluationError(str(error)) from error
    try:
        prepared.require_split(args.split)
    except PreparedError as error:
        raise EvaluationError(f"{error}; use --split") from error
    # Raw files: val_fraction 0 puts every input in train, so all of them are evaluated.
    return prepared, prepared.sequences(args.split if prepared.shards else "train")


def run(args: argparse.Namespace) -> Evaluation:
    """Evaluate as the command line asks; raise EvaluationError on bad input."""
    if not Path(args.ckpt).exists():
        raise EvaluationError(f"checkpoint not found: {args.ckpt}")
    for p in args.data:
        if not Path(p).exists():
            raise EvaluationError(f"data path not found: {p}")
    device = check_args(args)
    try:
        model = load(args.ckpt, map_location=device)
    except (CheckpointError, FileNotFoundError) as error:
        raise EvaluationError(str(error)) from error
    if is_mixture(getattr(model, "modality", None)):
        raise EvaluationError("a multimodal checkpoint gives one report per modality: run_all")
    prepared, sequences = open_data(args, getattr(model, "modality", None))
    window = args.seq_len if args.seq_len is not None else max_seq_len_of(model)
    sequences = limit_sequences(sequences, args.limit, window, prepared.stream)
    if not sequences:
        skipped = prepared.skipped
        reasons = "; ".join(f"{s['source']}: {s['reason']}" for s in skipped[:5])
        raise EvaluationError(
            f"no data to evaluate in {' '.join(args.data)}"
            + (f" ({len(skipped)} inputs skipped: {reasons})" if skipped else "")
        )
    evaluation = evaluate_model(
        model,
        sequences,
        adapter=prepared.adapter,
        stream=prepared.stream,
        seq_len=args.seq_len,
        strided=args.strided,
        sliding=args.sliding,
        context=args.context,
        batch_size=args.batch_size,
        device=device,
        codecs=not args.no_codecs,
        words=args.words,
        progress=not args.quiet,
    )
    evaluation.summary.update(
        checkpoint=str(args.ckpt),
        data=[str(p) for p in args.data],
        source="shards" if prepared.shards else "files",
        split=args.split if prepared.shards else None,
        skipped=prepared.skipped,
    )
    return evaluation


# -- a multimodal checkpoint: one report per --data path --------------------------------------


def run_all(args: argparse.Namespace) -> list[Evaluation]:
    """One evaluation for a single-modality checkpoint, or one per ``--data`` path (each a
    modality of the model) for a multimodal one."""
    if not Path(args.ckpt).exists():  # a .ckpt file, or a folder written by `multibyte export`
        raise EvaluationError(f"checkpoint not found: {args.ckpt}")
    device = check_args(args)
    try:
        trained = read_modality(args.ckpt)
    except (CheckpointError, FileNotFoundError) as error:
        raise EvaluationError(str(error)) from error
    if not is_mixture(trained):
        return [run(args)]
    if args.modality is not None:
        raise EvaluationError("--modality does not apply to a multimodal checkpoint")
    for p in args.data:
        if not Path(p).exists():
            raise EvaluationError(f"data path not found: {p}")
    model = load(args.ckpt, map_location=device)
    table = HeaderTable.from_entry(model.modality)
    return [evaluate_source(args, model, table, path, device) for path in args.data]


def read_modality(path: str) -> object:
    """The checkpoint's plain-data modality entry (loads it once; checkpoints are small)."""
    return getattr(load(path, map_location="cpu"), "modality", None)


def evaluate_source(
    args: argparse.Namespace, model: torch.nn.Module, table: HeaderTable, path: str, device: str
) -> Evaluation:
    """One modality of a multimodal model on one data path, header bytes excluded."""
    try:
        probe = open_prepared(
            [path],
            None,
            None,
            val_fraction=0.0,
            allow_incomplete=getattr(args, "allow_incomplete", False),
            allow_unverified=getattr(args, "allow_unverified", False),
        )
        options = probe.adapter.options if probe.adapter is not None else None
    except ModalityUnknown:
        options = None
    except ValueError as error:
        raise EvaluationError(f"{path}: {error}") from error
    index = pick_modality(table, options, path)
    one = argparse.Namespace(**{**vars(args), "data": [path]})
    prepared, sequences = open_data(one, table.modalities[index])
    headered = HeaderedModel(model, table.headers[index], table)
    # the window the model trained this modality on (its specialist's, with mix_by batch)
    window = args.seq_len if args.seq_len is not None else table.windows[index]
    sequences = limit_sequences(sequences, args.limit, window, prepared.stream)
    if not sequences:
        raise EvaluationError(f"no data to evaluate in {path}")
    evaluation = evaluate_model(
        headered,
        sequences,
        adapter=prepared.adapter,
        stream=prepared.stream,
        seq_len=window,
        strided=args.strided,
        sliding=args.sliding,
        context=args.context,
        batch_size=args.batch_size,
        device=device,
        codecs=not args.no_codecs,
        words=args.words,
        progress=not args.quiet,
    )
    bits = header_bits(model, table.headers[index])
    spec = getattr(model, "config", None)
    evaluation.summary["model"].update(
        {"class": type(model).__name__, "config": spec.to_dict() if spec is not None else None}
    )
    evaluation.summary.update(
        checkpoint=str(args.ckpt),
        data=[str(path)],
        source="shards" if prepared.shards else "files",
        split=args.split if prepared.shards else None,
        skipped=prepared.skipped,
        header_bytes=table.length,
        header_bits_per_byte=float(bits.mean()),
        multimodal=[m["name"] for m in table.modalities],
    )
    return evaluation


def main(argv: list[str] | None = None) -> int:
    """``multibyte evaluate``: print the report; exit 2 on bad input.

    A multimodal checkpoint gives one report per ``--data`` path: the JSON is then a list of
    per-modality reports, and the Markdown one table with a row per modality.
    """
    args = build_parser().parse_args(argv)
    try:
        check_outputs(args)
        evaluations = run_all(args)
    except (EvaluationError, OutputError) as error:
        print(f"multibyte evaluate: error: {error}", file=sys.stderr)
        return 2
    summaries = [e.summary for e in evaluations]
    for evaluation in evaluations:
        summary = evaluation.summary
        if args.plots:
            folder = Path(args.plots)
            if len(evaluations) > 1:
                folder = folder / summary["modality"]
            with staging(folder) as stage:  # every PNG complete, or none
                drawn = report.save_plots(evaluation, stage)
                placed = move_into_place(drawn, folder, args.overwrite, "--plots")
            summary["plots"] = [str(p) for p in placed]
        print(report.text_report(summary))
    if len(summaries) > 1:
        print("one model, every modality (header bytes excluded):\n")
        print(report.modality_table(summaries))
    if args.markdown:
        tables = [report.markdown(s) for s in summaries]
        if len(summaries) > 1:
            tables.insert(0, report.modality_table(summaries))
        write_text(args.markdown, "\n".join(tables))
    if args.json:
        payload = summaries[0] if len(summaries) == 1 else summaries
        write_text(args.json, json.dumps(payload, indent=2) + "\n")
    return 0


def check_outputs(args: argparse.Namespace) -> None:
    """Before any work: the report files are new (or ``--overwrite``), distinct, and their
    folders writable; a ``--plots`` folder holds no PNG yet (or ``--overwrite``)."""
    check_distinct({"--json": args.json, "--markdown": args.markdown, "--plots": args.plots})
    for option in ("json", "markdown"):
        if getattr(args, option):
            check_new_file(getattr(args, option), args.overwrite, f"--{option}")
    if args.plots:
        folder = Path(args.plots)
        if folder.exists() and not folder.is_dir():
            raise OutputError(f"--plots {folder} is a file; give a folder")
        held = sorted(folder.rglob("*.png")) if folder.is_dir() else []
        if held and not args.overwrite:
            raise OutputError(
                f"--plots {folder} already holds plots ({held[0]}); pass --overwrite to "
                "replace them"
            )
        check_folder(folder, "--plots")


__all__ = [
    "build_parser",
    "check_args",
    "check_outputs",
    "evaluate_source",
    "limit_sequences",
    "main",
    "run",
    "run_all",
]
