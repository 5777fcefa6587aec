"""multimodal (issue 13): one tiny MEGABYTE on every modality against each specialist.

The quickstart (`make demo`) trains, on the sample pack, a specialist per modality and one
multimodal model for the specialists' steps together on the same data bytes (header bytes
excluded). This case reads its report (default runs/quickstart/report.json; `--train` runs the
quickstart first, about as long as `make demo`) and gives, per modality, both held-out bpb and the
gap. The goal is a gap under 0.02 bpb everywhere (bGPT lost 0.030 / 0.105 / 0.027 on text /
images / audio). --smoke runs the quickstart's reduced mode into a temporary folder.

`--controls` splits each gap in two: the multimodal recipe trained on that modality alone (the
other sources' weights 0, so the same header and sequence length) for the steps its weight got
in the shared run, evaluated the same way. shared - control is what sharing costs; control -
specialist is what the multimodal recipe (patch size, window, updates) costs on its own.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

from benchmarks import harness as h

GOAL_BPB = 0.02


def render(r: dict) -> str:
    controlled = all("control_bpb" in row for row in r["rows"])
    lines = [
        f"Report: `{r['report']}` ({r['steps']} multimodal steps, quickstart wall time "
        f"{r['seconds'] / 60:.1f} min{', reduced mode' if r['quick'] else ''}).",
        "",
        "| modality | specialist bpb | multimodal bpb | gap | header bpb | within 0.02 |"
        + " alone on the multimodal recipe | sharing costs | the recipe costs |" * controlled,
        "|---|---|---|---|---|---|" + "---|---|---|" * controlled,
    ]
    for row in r["rows"]:
        header = row.get("header_bpb")
        cells = [row["modality"], f"{row['specialist_bpb']:.3f}", f"{row['multimodal_bpb']:.3f}",
                 f"{row['gap_bpb']:+.3f}", "" if header is None else f"{header:.3f}",
                 "yes" if row["within_goal"] else "**no**"]  # fmt: skip
        if controlled:
            cells += [f"{row['control_bpb']:.3f}", f"{row['sharing_cost']:+.3f}",
                      f"{row['recipe_cost']:+.3f}"]  # fmt: skip
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--report", default="runs/quickstart/report.json",
                        help="a finished quickstart's report.json")  # fmt: skip
    parser.add_argument("--train", action="store_true", help="run the quickstart first")
    parser.add_argument("--controls", action="store_true",
                        help="also train each modality alone on the multimodal recipe")  # fmt: skip


def controls(multimodal: dict, folder: Path) -> dict[str, float]:
    """Held-out bpb of the multimodal recipe trained on one modality at a time (see above)."""
    from multibyte.evaluation.command import main as evaluate_main
    from multibyte.quickstart import MULTIMODAL_RECIPE, RECIPES
    from multibyte.train.cli import main as fit_main

    reports, weights = multimodal["reports"], multimodal["weights"]
    sources = [report["data"][0] for report in reports]
    out = {}
    for i, report in enumerate(reports):
        steps = max(1, round(multimodal["steps"] * weights[i] / sum(weights)))
        listing = ", ".join(f"{{path: {p}, weight: {int(j == i)}}}" for j, p in enumerate(sources))
        root = folder / report["modality"]
        h.log(f"{report['modality']} alone: {steps} steps")
        status = fit_main([
            "fit", "--config", str(RECIPES / MULTIMODAL_RECIPE), "--data.sources", f"[{listing}]",
            "--trainer.max_steps", str(steps), "--trainer.val_check_interval", str(steps),
            "--trainer.default_root_dir", str(root), "--trainer.enable_progress_bar", "false",
            "--model.warmup_steps", str(max(1, steps // 10)),
        ]) or evaluate_main([
            "--ckpt", str(root / "checkpoints" / "last.ckpt"), "--data", sources[i],
            "--json", str(root / "evaluation.json"), "--quiet", "--no-codecs",
        ])  # fmt: skip
        if status:
            raise SystemExit(status)
        out[report["modality"]] = json.loads((root / "evaluation.json").read_text())[
            "bits_per_byte"
        ]
    return out


@h.case("multimodal", render, options)
def run(args: argparse.Namespace) -> dict:
    with tempfile.TemporaryDirectory(prefix="bench-multimodal-") as tmp:
        report = Path(args.report)
        if args.train or args.smoke:
            # The quickstart pulls in Lightning and webdataset: imported only when it runs here.
            from multibyte.quickstart import main as quickstart

            out = Path(tmp) if args.smoke else report.parent
            if quickstart(["--out", str(out), *(["--quick"] if args.smoke else [])]) != 0:
                raise SystemExit(2)
            report = out / "report.json"
        if not report.is_file():
            print(f"{report}: no quickstart report; run `make demo` first", file=sys.stderr)
            raise SystemExit(2)
        data = json.loads(report.read_text())
    rows = data.get("multimodal_rows") or []
    if not rows:
        print(f"{report}: no multimodal rows (run the quickstart with its multimodal model)",
              file=sys.stderr)  # fmt: skip
        raise SystemExit(2)
    for row in rows:
        row["within_goal"] = row["gap_bpb"] <= GOAL_BPB
    if args.controls:
        with tempfile.TemporaryDirectory(prefix="bench-multimodal-controls-") as tmp:
            alone = controls(data["multimodal"], Path(tmp))
        for row in rows:
            row["control_bpb"] = alone[row["modality"]]
            row["sharing_cost"] = row["multimodal_bpb"] - row["control_bpb"]
            row["recipe_cost"] = row["control_bpb"] - row["specialist_bpb"]
    steps = (data.get("multimodal") or {}).get("steps")
    return {"report": str(args.report), "rows": rows, "seconds": data["seconds"],
            "quick": data["quick"], "steps": steps}  # fmt: skip
