"""`multibyte quickstart` (what `make demo` runs): the whole framework on the bundled sample pack.

For each modality it prepares shards, trains a tiny MEGABYTE and a byte transformer with the same
training FLOPs per byte on the same bytes, evaluates both on held-out samples against codec
baselines, samples from MEGABYTE, and writes `runs/quickstart/report.md`. It drives the same
commands a user would type (`prepare`, `fit`, `evaluate`, `sample`), in this process.
"""

from __future__ import annotations

import argparse
import csv
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from multibyte.evaluation.command import main as evaluate_main
from multibyte.flops import matched_baseline
from multibyte.model import MegabyteConfig
from multibyte.outputs import OutputError, check_folder
from multibyte.plans import (
    MULTIMODAL_RECIPE,
    PLANS,
    RECIPES,
    SAMPLES,
    Plan,
    prepare_flags,
    split_inputs,
)
from multibyte.prepare import main as prepare_main
from multibyte.sample import main as sample_main
from multibyte.train.cli import main as fit_main
from multibyte.train.precision import resolve_precision


def _recipe(plan: Plan) -> dict[str, Any]:
    return yaml.safe_load((RECIPES / plan.recipe).read_text())


def _seq_len(recipe: dict[str, Any]) -> int:
    data = recipe["data"]
    return data.get("seq_len") or data["modality"].get("seq_len") or 12288


def _run(command: str, main, argv: list[str]) -> None:
    print(f"\n$ multibyte {command} {' '.join(argv)}", flush=True)
    # `multibyte fit` is LightningCLI, which takes the sub-command itself
    status = main([command, *argv] if command == "fit" else argv)
    if status:
        raise RuntimeError(f"multibyte {command} failed with status {status}")


def _curve(root: Path) -> dict[str, dict[int, float]]:
    versions = sorted((root / "csv").glob("version_*"), key=lambda p: int(p.name.split("_")[1]))
    rows = list(csv.DictReader(open(versions[-1] / "metrics.csv")))
    curves: dict[str, dict[int, float]] = {"train/bpb": {}, "val/bpb": {}}
    for row in rows:
        for key in curves:
            if row.get(key):
                curves[key][int(row["step"])] = float(row[key])
    return curves


def _plot_curves(curves: dict[str, dict], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(6, 3.5))
    for label, series in curves.items():
        steps = sorted(series["train/bpb"])
        axis.plot(steps, [series["train/bpb"][s] for s in steps], label=f"{label} train")
        if series["val/bpb"]:
            val = sorted(series["val/bpb"])
            axis.plot(val, [series["val/bpb"][s] for s in val], "o--", label=f"{label} val")
    axis.set(xlabel="step", ylabel="bits per byte", title=title)
    axis.grid(alpha=0.3)
    axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _schedule_flags(steps: int, root: Path) -> list[str]:
    """`fit` flags of every demo run: its steps, one validation at the end, a tenth warmup."""
    return [
        "--trainer.max_steps",
        str(steps),
        "--trainer.val_check_interval",
        str(steps),
        "--trainer.default_root_dir",
        str(root),
        "--trainer.log_every_n_steps",
        "5",
        "--model.warmup_steps",
        str(max(1, steps // 10)),
    ]


def run_modality(plan: Plan, out: Path, samples: Path, quick: bool) -> dict[str, Any]:
    folder = out / plan.name
    shards = out / "shards" / plan.name
    train_files, val_files = split_inputs(plan, samples / plan.source)
    recipe = _recipe(plan)
    _run(
        "prepare",
        prepare_main,
        [
            plan.name,
            "--src",
            *map(str, train_files),
            "--val-src",
            *map(str, val_files),
            "--out",
            str(shards),
            "--val-fraction",
            "0",
            "--overwrite",
            "--workers",
            "1",
            "--quiet",
            *prepare_flags(plan, recipe),
        ],
    )
    seq_len = _seq_len(recipe)
    steps = plan.quick_steps if quick else plan.steps
    mega = MegabyteConfig(**{**recipe["model"]["model"]["init_args"]["config"], **plan.model})
    baseline = matched_baseline(mega, seq_len, by="flops").to_dict()
    model_flags = [
        part
        for key, value in plan.model.items()
        for part in (f"--model.model.init_args.config.{key}", str(value))
    ]
    # The baseline's recipe: the MEGABYTE recipe with the model swapped, written next to its run.
    folder.mkdir(parents=True, exist_ok=True)
    baseline_recipe = folder / "bytetransformer.yaml"
    swapped = dict(
        recipe,
        model={
            **recipe["model"],
            "model": {"class_path": "multibyte.ByteTransformer", "init_args": {"config": baseline}},
        },
    )
    baseline_recipe.write_text(yaml.safe_dump(swapped, sort_keys=False))
    models = {"MEGABYTE": RECIPES / plan.recipe, "ByteTransformer": baseline_recipe}
    results: dict[str, Any] = {"modality": plan.name, "steps": steps, "seq_len": seq_len}
    curves = {}
    for label, recipe_path in models.items():
        root = folder / label.lower()
        shutil.rmtree(root, ignore_errors=True)
        _run(
            "fit",
            fit_main,
            [
                "--config",
                str(recipe_path),
                "--data.path",
                str(shards),
                *_schedule_flags(steps, root),
                # eager: a fresh machine may lack the C++ compiler that CPU torch.compile needs, and
                # a few hundred steps barely repay compiling
                "--model.compile",
                "false",
                *(model_flags if label == "MEGABYTE" else []),
            ],
        )
        checkpoint = root / "checkpoints" / "last.ckpt"
        report_json = root / "evaluation.json"
        limit = ["--limit", "2"] if quick else []
        plots = ["--plots", str(folder / "plots")] if label == "MEGABYTE" else ["--no-codecs"]
        _run(
            "evaluate",
            evaluate_main,
            [
                "--ckpt",
                str(checkpoint),
                "--data",
                str(shards),
                "--json",
                str(report_json),
                "--quiet",
                "--overwrite",
                *limit,
                *plots,
            ],
        )
        results[label] = json.loads(report_json.read_text())
        results[label]["checkpoint"] = str(checkpoint)
        curves[label] = _curve(root)
    results["baseline_config"] = baseline
    _plot_curves(curves, folder / "training.png", f"{plan.name}: training (tiny models, CPU)")
    sample_args = list(plan.quick_sample if quick else plan.sample)
    if plan.prompt:  # continue held-out photos and speech
        sample_args += ["--prompt", str(val_files[0])]
    _run(
        "sample",
        sample_main,
        [
            "--ckpt",
            results["MEGABYTE"]["checkpoint"],
            "--out",
            str(folder / plan.sample_file),
            "--seed",
            "0",
            "--overwrite",
            *sample_args,
        ],
    )
    target = folder / plan.sample_file
    written = (
        [target] if target.exists() else sorted(folder.glob(f"{target.stem}-*{target.suffix}"))
    )
    results["samples"] = [str(path) for path in written]
    results["training_plot"] = str(folder / "training.png")
    return results


# -- one model for every modality ---------------------------------------------------------------


def run_multimodal(results: list[dict[str, Any]], out: Path, samples: Path, quick: bool) -> dict:
    """One tiny MEGABYTE on every modality: as many steps as the specialists took together,
    each batch one modality's in its specialist's shape (rows and window, `data.mix_by: batch`),
    drawn by weights that count updates: each plan's `shared_steps` (its specialist's steps
    with --quick)."""
    folder = out / "multimodal"
    sources, entries, steps, weights = [], [], 0, []
    names = {r["modality"] for r in results}
    for plan, result in zip([p for p in PLANS if p.name in names], results, strict=True):
        shards = out / "shards" / plan.name
        data = _recipe(plan)["data"]
        weights.append(result["steps"] if quick else plan.shared_steps or result["steps"])
        steps += result["steps"]
        sources.append(str(shards))
        shape = f"batch_size: {data['batch_size']}, seq_len: {result['seq_len']}"
        # The specialist's augmentation on its source (not --quick: its sequences cut samples)
        augment = None if quick else data.get("augment")
        extra = f", augment: {json.dumps(augment)}" if augment else ""
        entries.append(f"{{path: {shards}, weight: {weights[-1]}, {shape}{extra}}}")
    listing = ", ".join(entries)
    root = folder / "megabyte"
    shutil.rmtree(root, ignore_errors=True)
    _run(
        "fit",
        fit_main,
        [
            "--config",
            str(RECIPES / MULTIMODAL_RECIPE),
            "--data.sources",
            f"[{listing}]",
            "--data.mix_by",
            "batch",
            *_schedule_flags(steps, root),
        ],
    )
    checkpoint = root / "checkpoints" / "last.ckpt"
    report_json = root / "evaluation.json"
    limit = ["--limit", "2"] if quick else []
    _run(
        "evaluate",
        evaluate_main,
        [
            "--ckpt",
            str(checkpoint),
            "--data",
            *sources,
            "--json",
            str(report_json),
            "--quiet",
            "--no-codecs",
            *limit,
        ],
    )
    reports = json.loads(report_json.read_text())
    return {
        "steps": steps,
        "weights": weights,
        "checkpoint": str(checkpoint),
        "reports": reports if isinstance(reports, list) else [reports],
    }


def multimodal_rows(results: list[dict[str, Any]], multimodal: dict) -> list[dict[str, Any]]:
    """Per modality: the specialist's bpb beside the multimodal model's, and the gap."""
    by_name = {r["modality"]: r for r in multimodal["reports"]}
    rows = []
    for result in results:
        shared = by_name.get(result["modality"])
        if shared is None:
            continue
        special = result["MEGABYTE"]["bits_per_byte"]
        rows.append(
            {
                "modality": result["modality"],
                # unrounded, as the specialists' rows: rounded twice, 5.4785 showed as 5.479
                # here and 5.478 beside it
                "specialist_bpb": special,
                "multimodal_bpb": shared["bits_per_byte"],
                "gap_bpb": shared["bits_per_byte"] - special,
                "header_bpb": shared.get("header_bits_per_byte", float("nan")),
            }
        )
    return rows


def _fmt(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def table_rows(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The report's numbers, one row per modality (the JSON and Markdown both come from here)."""
    rows = []
    for result in results:
        mega, base = result["MEGABYTE"], result["ByteTransformer"]
        codecs = {k: v for k, v in mega.get("codecs", {}).items() if v is not None}
        best = min(codecs, key=codecs.get) if codecs else None
        rows.append(
            {
                "modality": result["modality"],
                "unit": mega["unit"],
                "bytes": mega["bytes"],
                "megabyte_bpb": round(mega["bits_per_byte"], 3),
                "megabyte_in_unit": round(mega["value_in_unit"], 3),
                "ci95": [round(v, 3) for v in mega["ci95"]] if mega.get("ci95") else None,
                "baseline_bpb": round(base["bits_per_byte"], 3),
                "gzip_bpb": round(codecs["gzip"], 3) if "gzip" in codecs else None,
                "best_codec": best,
                "best_codec_bpb": round(codecs[best], 3) if best else None,
                "beats_gzip": "gzip" in codecs and mega["bits_per_byte"] < codecs["gzip"],
            }
        )
    return rows


def write_report(
    results: list[dict[str, Any]],
    out: Path,
    seconds: float,
    quick: bool,
    multimodal: dict | None = None,
) -> Path:
    rows = table_rows(results)
    lines = [
        "# multibyte quickstart report",
        "",
        "These are **tiny models trained for minutes on a CPU** on the bundled sample pack "
        "(`data/samples`, see its LICENSES.md). They show that every piece works end to end; "
        "their numbers say nothing about what MEGABYTE reaches at scale. The full recipes "
        "(`recipes/imagenet64.yaml`, `recipes/audio.yaml`, `recipes/pg19.yaml`) are the paper's "
        "models for GPUs; see `docs/recipes.md`.",
        "",
        f"Wall time: {seconds / 60:.1f} min{' (reduced mode)' if quick else ''}. "
        "Evaluated on the held-out (val) samples; lower is better. The ByteTransformer baseline "
        "is trained on the same bytes for the same steps with the same training FLOPs per byte. "
        + "Precision: {0.value} ({0.reason}).".format(resolve_precision("bf16-mixed", "cpu"))
        + "".join(
            f" {plan.name}: the recipe's MEGABYTE with "
            f"{', '.join(f'{key}={value}' for key, value in plan.model.items())}, "
            "which learns faster over these few steps."
            for plan in PLANS
            if plan.model and plan.name in {row["modality"] for row in rows}
        ),
        "",
        "| modality | bytes | MEGABYTE bpb | in unit | unit | 95% CI (bpb) | ByteTransformer bpb "
        "| gzip bpb | best codec | best codec bpb |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        ci = f"{row['ci95'][0]:.3f}–{row['ci95'][1]:.3f}" if row["ci95"] else "n/a"
        lines.append(
            f"| {row['modality']} | {row['bytes']} | {row['megabyte_bpb']:.3f} | "
            f"{row['megabyte_in_unit']:.3f} | {row['unit']} | {ci} | {row['baseline_bpb']:.3f} | "
            f"{_fmt(row['gzip_bpb'])} | {row['best_codec'] or 'n/a'} | "
            f"{_fmt(row['best_codec_bpb'])} |"
        )
    lines += [
        "",
        "Where MEGABYTE does not beat gzip, it is because the model is tiny and "
        "trained for minutes; say so when quoting these numbers.",
        "",
    ]
    mm_rows = multimodal_rows(results, multimodal) if multimodal else []
    if mm_rows:
        lines += [
            "## One model for every modality",
            "",
            f"One tiny MEGABYTE (`recipes/{MULTIMODAL_RECIPE}`) trained on all three for "
            f"{multimodal['steps']} steps (the specialists' together), each step one "
            "modality's batch in its specialist's shape (`data.mix_by: batch`), drawn by "
            f"weights {' / '.join(map(str, multimodal['weights']))} (expected updates; the "
            f"specialists': {' / '.join(str(r['steps']) for r in results)}); header bytes "
            "excluded. bGPT's shared model lost 0.030 (text), 0.105 (images), 0.027 (audio) "
            "bpb to its specialists.",
            "",
            "| modality | specialist bpb | multimodal bpb | gap | header bpb |",
            "|---|---|---|---|---|",
        ]
        for row in mm_rows:
            lines.append(
                f"| {row['modality']} | {row['specialist_bpb']:.3f} | "
                f"{row['multimodal_bpb']:.3f} | {row['gap_bpb']:+.3f} | {row['header_bpb']:.3f} |"
            )
        lines.append("")
    for result in results:
        name = result["modality"]
        lines += [
            f"## {name}",
            "",
            f"![training curves]({Path(result['training_plot']).relative_to(out)})",
            "",
        ]
        for plot in result["MEGABYTE"].get("plots", []):
            lines.append(f"![{Path(plot).stem}]({Path(plot).relative_to(out)})")
        for sample in map(Path, result["samples"]):
            link = sample.relative_to(out)
            if sample.suffix == ".png":
                lines += ["", f"Samples, prompt row first: ![samples]({link})"]
            elif sample.suffix == ".wav":
                lines += ["", f"Audio continuation (prompt, then model): [{sample.name}]({link})"]
            else:
                text = sample.read_text(errors="replace")[:800]
                lines += ["", f"Text sample ([{sample.name}]({link})):", "", "```", text, "```"]
        lines.append("")
    report = out / "report.md"
    report.write_text("\n".join(lines))
    (out / "report.json").write_text(
        json.dumps(
            {
                "rows": rows,
                "seconds": seconds,
                "quick": quick,
                "results": results,
                "multimodal_rows": mm_rows,
                "multimodal": multimodal,
            },
            indent=2,
        )
        + "\n"
    )
    return report


MARK = ".multibyte-quickstart"
"""Left in --out by the quickstart: a later run may replace what is there (its own outputs)."""


def check_out(out: Path, overwrite: bool) -> None:
    """Before any work: --out is writable, and new, empty or an earlier quickstart's (whose run
    folders and reports a new run replaces), unless --overwrite."""
    check_folder(out, "--out")
    earlier = (out / MARK).exists() or (out / "report.json").exists()  # report: older runs
    if out.is_dir() and not overwrite and not earlier and any(out.iterdir()):
        raise OutputError(
            f"--out {out} holds files that an earlier quickstart did not write; give a new "
            "folder, or pass --overwrite to write into it anyway"
        )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="multibyte quickstart", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--out", default="runs/quickstart", help="output folder")
    parser.add_argument(
        "--overwrite",
        action="store_true",
        help="write into an --out that holds other files than an earlier quickstart's",
    )
    parser.add_argument("--samples", default=str(SAMPLES), help="the sample pack")
    parser.add_argument("--quick", action="store_true", help="a few steps only (seconds)")
    parser.add_argument(
        "--modalities", nargs="+", default=[p.name for p in PLANS], choices=[p.name for p in PLANS]
    )
    parser.add_argument(
        "--no-multimodal",
        dest="multimodal",
        action="store_false",
        help="skip the one model trained on every modality",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    samples = Path(args.samples)
    missing = [p.source for p in PLANS if not (samples / p.source).is_dir()]
    if missing:
        print(
            f"multibyte quickstart: error: the sample pack {samples} lacks {missing}",
            file=sys.stderr,
        )
        return 2
    out = Path(args.out)
    try:
        check_out(out, args.overwrite)
    except OutputError as error:
        print(f"multibyte quickstart: error: {error}", file=sys.stderr)
        return 2
    out.mkdir(parents=True, exist_ok=True)
    (out / MARK).touch()
    started = time.perf_counter()
    results = [
        run_modality(p, out, samples, args.quick) for p in PLANS if p.name in args.modalities
    ]
    multimodal = None
    if args.multimodal and len(results) > 1:
        multimodal = run_multimodal(results, out, samples, args.quick)
    seconds = time.perf_counter() - started
    report = write_report(results, out, seconds, args.quick, multimodal)
    print(f"\nquickstart report: {report}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
