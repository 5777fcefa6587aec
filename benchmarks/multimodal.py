"""multimodal (issue 13): one tiny MEGABYTE on every modality against each specialist.

The quickstart (`make demo`) trains, on the sample pack, a specialist per modality and one
multimodal model for the specialists' steps together on the same data bytes (header bytes
excluded). This case reads its report (default runs/quickstart/report.json; `--train` runs the
quickstart first, about as long as `make demo`) and gives, per modality, both held-out bpb and the
gap. The goal is a gap under 0.02 bpb everywhere (bGPT lost 0.030 / 0.105 / 0.027 on text /
images / audio). --smoke runs the quickstart's reduced mode into a temporary folder.
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
    lines = [
        f"Report: `{r['report']}` ({r['steps']} multimodal steps, quickstart wall time "
        f"{r['seconds'] / 60:.1f} min{', reduced mode' if r['quick'] else ''}).",
        "",
        "| modality | specialist bpb | multimodal bpb | gap | header bpb | within 0.02 |",
        "|---|---|---|---|---|---|",
    ]
    for row in r["rows"]:
        header = row.get("header_bpb")
        lines.append(
            f"| {row['modality']} | {row['specialist_bpb']:.3f} | {row['multimodal_bpb']:.3f} "
            f"| {row['gap_bpb']:+.3f} | {'' if header is None else f'{header:.3f}'} "
            f"| {'yes' if row['within_goal'] else '**no**'} |"
        )
    return "\n".join(lines) + "\n"


def options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--report", default="runs/quickstart/report.json",
                        help="a finished quickstart's report.json")  # fmt: skip
    parser.add_argument("--train", action="store_true", help="run the quickstart first")


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
    steps = (data.get("multimodal") or {}).get("steps")
    return {"report": str(args.report), "rows": rows, "seconds": data["seconds"],
            "quick": data["quick"], "steps": steps}  # fmt: skip
