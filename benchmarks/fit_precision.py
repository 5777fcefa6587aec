"""fit_precision: the tiny recipes as `multibyte fit` runs them on the sample pack, as written
(bf16-mixed, resolved against this machine) and with `--trainer.precision 32-true`, interleaved:
median seconds per step, and the run's time at the recipe's max_steps from it."""

from __future__ import annotations

import argparse
import csv
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from benchmarks import harness as h
from multibyte.plans import MULTIMODAL_RECIPE, PLANS, RECIPES, SAMPLES

# Each recipe's data: the sample pack's raw files, as a user would first try it.
DATA = {Path(p.recipe).stem: ["--data.path", str(SAMPLES / p.source)] for p in PLANS}
SOURCES = ", ".join(f"{{path: {SAMPLES / p.source}, modality: {{name: {p.name}}}}}" for p in PLANS)
DATA[Path(MULTIMODAL_RECIPE).stem] = ["--data.sources", f"[{SOURCES}]"]
RUNS = {"as written": [], "32-true": ["--trainer.precision", "32-true"]}
LAUNCH = "from multibyte.cli import main; raise SystemExit(main())"
# --smoke: the text recipe on short windows, so that the case runs in seconds
SMOKE = ["--data.seq_len", "128", "--model.model.init_args.config.max_seq_len", "128"]


def fit(recipe: str, steps: int, root: Path, flags: list[str]) -> list[float]:
    """Step times (s) between logged steps after the first interval."""
    every = ["--trainer.log_every_n_steps", str(max(1, steps // 8))]
    command = [sys.executable, "-c", LAUNCH, "fit", "--config", str(RECIPES / f"{recipe}.yaml")]
    command += [*DATA[recipe], "--trainer.max_steps", str(steps), *every]
    command += ["--trainer.val_check_interval", str(steps), "--trainer.limit_val_batches", "1"]
    command += ["--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(root)]
    subprocess.run([*command, *flags], check=True, capture_output=True)
    (metrics,) = root.glob("csv/version_*/metrics.csv")
    with open(metrics) as handle:
        rows = [r for r in csv.DictReader(handle) if r.get("train/time")]
    points = [(int(r["train/batches"]), float(r["train/time"])) for r in rows]
    return [(t1 - t0) / (b1 - b0) for (b0, t0), (b1, t1) in zip(points[1:], points[2:])]


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--steps", type=int, default=40, help="steps per run (default 40)")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved runs of each kind")


def render(r: dict) -> str:
    table = []
    for name, row in r["recipes"].items():
        written, fp32 = row["as written"], row["32-true"]
        table.append(
            [f"`{name}`", row["resolved"], f"{written:.3f}", f"{fp32:.3f}"]
            + [f"**{written / fp32:.2f}×**", f"{row['max_steps']:,}"]
            + [f"{row['max_steps'] * written / 60:.1f}"]
        )
    headers = ["recipe", "precision as written", "as written s/step", "32-true s/step", "ratio"]
    headers += ["max_steps", "max_steps × s/step, min"]
    return (
        f"bf16 units: {'yes' if r['bf16_units'] else 'no'}. {r['steps']} steps a run, "
        f"{r['repeats']} runs of each kind interleaved, each recipe as written (`imagenet64-tiny` "
        "compiles where a C++ compiler is found), median s/step after the first eighth of the "
        "steps (`train/time` in metrics.csv).\n\n" + h.markdown_table(headers, table)
    )


@h.case("fit_precision", render, options)
def run(args: argparse.Namespace) -> dict:
    from multibyte.train.precision import cpu_has_bf16_units, resolve_precision  # Lightning

    steps, repeats = (8, 1) if args.smoke else (args.steps, args.repeats)
    recipes = {}
    for name in ["pg19-tiny"] if args.smoke else DATA:
        times: dict[str, list[float]] = {label: [] for label in RUNS}
        for repeat in range(repeats):
            for label, flags in RUNS.items():
                h.log(f"{name}: {label}, run {repeat + 1}/{repeats}")
                with tempfile.TemporaryDirectory() as root:
                    times[label] += fit(name, steps, Path(root), flags + SMOKE * args.smoke)
        trainer = yaml.safe_load((RECIPES / f"{name}.yaml").read_text())["trainer"]
        resolved = resolve_precision(trainer["precision"], "cpu").value
        recipes[name] = {"resolved": resolved, "max_steps": trainer["max_steps"]}
        recipes[name] |= {label: statistics.median(times[label]) for label in RUNS}
    units = cpu_has_bf16_units()
    return {"steps": steps, "repeats": repeats, "bf16_units": units, "recipes": recipes}
