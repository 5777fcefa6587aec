"""fit_precision: the tiny recipes as `multibyte fit` runs them here, with no precision flag
(the recipe's bf16-mixed, resolved against this machine) and with `--trainer.precision 32-true`,
interleaved, on the sample pack: median seconds per step, and the full run's time at the
recipe's max_steps from that step time.
"""

from __future__ import annotations

import argparse
import csv
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from benchmarks import harness as h
from multibyte.train.precision import cpu_has_bf16_units, resolve_precision

SAMPLES = h.REPO / "data" / "samples"
SOURCES = ", ".join(
    f"{{path: {SAMPLES / folder}, modality: {{name: {name}}}}}"
    for folder, name in (("images", "image"), ("speech", "audio"), ("text", "text"))
)
# Each recipe's data: the sample pack's raw files, as a user would first try it.
RECIPES = {
    "pg19-tiny": ("--data.path", str(SAMPLES / "text")),
    "audio-tiny": ("--data.path", str(SAMPLES / "speech")),
    "imagenet64-tiny": ("--data.path", str(SAMPLES / "images")),
    "multimodal-tiny": ("--data.sources", f"[{SOURCES}]"),
}
RUNS = {"as written": (), "32-true": ("--trainer.precision", "32-true")}
LAUNCH = "from multibyte.cli import main; raise SystemExit(main())"
# --smoke: the text recipe on short windows, so that the case runs in seconds
SMOKE = ("--data.seq_len", "128", "--model.model.init_args.config.max_seq_len", "128")


def fit(recipe: str, steps: int, root: Path, flags: tuple[str, ...]) -> tuple[list[float], float]:
    """Step times (s) between logged steps after the first interval, and the command's wall time."""
    command = [
        sys.executable,
        "-c",
        LAUNCH,
        "fit",
        "--config",
        str(h.REPO / "recipes" / f"{recipe}.yaml"),
        *RECIPES[recipe],
        "--trainer.max_steps",
        str(steps),
        "--trainer.val_check_interval",
        str(steps),
        "--trainer.limit_val_batches",
        "1",
        "--trainer.log_every_n_steps",
        str(max(1, steps // 8)),
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.default_root_dir",
        str(root),
        *flags,
    ]
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True)
    wall = time.perf_counter() - start
    (metrics,) = root.glob("csv/version_*/metrics.csv")
    with open(metrics) as handle:
        rows = [r for r in csv.DictReader(handle) if r.get("train/time")]
    points = [(int(r["train/batches"]), float(r["train/time"])) for r in rows]
    steps_s = [(t1 - t0) / (b1 - b0) for (b0, t0), (b1, t1) in zip(points[1:], points[2:])]
    return steps_s, wall


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--steps", type=int, default=40, help="steps per run (default 40)")
    parser.add_argument("--repeats", type=int, default=2, help="interleaved runs of each kind")


def render(r: dict) -> str:
    table = []
    for name, row in r["recipes"].items():
        written, fp32 = row["as written"], row["32-true"]
        table.append(
            [
                f"`{name}`",
                row["resolved"],
                f"{written['step_s']:.3f}",
                f"{fp32['step_s']:.3f}",
                f"**{written['step_s'] / fp32['step_s']:.2f}×**",
                f"{row['max_steps']:,}",
                f"{row['max_steps'] * written['step_s'] / 60:.1f}",
            ]
        )
    return "\n\n".join(
        [
            f"bf16 units: {'yes' if r['bf16_units'] else 'no'}. {r['steps']} steps a run, "
            f"{r['repeats']} runs of each kind interleaved, each recipe as written "
            "(`imagenet64-tiny` compiles where a C++ compiler is found), "
            "median s/step after the first eighth of the steps (`train/time` in metrics.csv).",
            h.markdown_table(
                [
                    "recipe",
                    "precision as written",
                    "as written s/step",
                    "32-true s/step",
                    "ratio",
                    "max_steps",
                    "max_steps × s/step, min",
                ],
                table,
            ),
        ]
    )


@h.case("fit_precision", render, options)
def run(args: argparse.Namespace) -> dict:
    steps, repeats = (8, 1) if args.smoke else (args.steps, args.repeats)
    recipes = {}
    for name in ["pg19-tiny"] if args.smoke else RECIPES:
        times: dict[str, list[float]] = {label: [] for label in RUNS}
        walls: dict[str, list[float]] = {label: [] for label in RUNS}
        for repeat in range(repeats):
            for label, flags in RUNS.items():
                h.log(f"{name}: {label}, run {repeat + 1}/{repeats}")
                with tempfile.TemporaryDirectory() as root:
                    extra = SMOKE if args.smoke else ()
                    step_s, wall = fit(name, steps, Path(root), (*flags, *extra))
                times[label] += step_s
                walls[label].append(wall)
        trainer = yaml.safe_load((h.REPO / "recipes" / f"{name}.yaml").read_text())["trainer"]
        recipes[name] = {
            "resolved": resolve_precision(trainer["precision"], "cpu").value,
            "max_steps": trainer["max_steps"],
            **{
                label: {"step_s": statistics.median(times[label]), "wall_s": walls[label]}
                for label in RUNS
            },
        }
    return {
        "steps": steps,
        "repeats": repeats,
        "bf16_units": cpu_has_bf16_units(),
        "recipes": recipes,
    }
