"""Multimodal vs specialists: one tiny MEGABYTE on every modality against each specialist.

Runs the quickstart (CPU, sample pack: equal total steps and data bytes, header excluded) and
prints, per modality, the specialist's and the multimodal model's held-out bpb and the gap; the
goal is a gap under 0.02 bpb everywhere (bGPT lost 0.030 / 0.105 / 0.027 on text / images /
audio). Not a timed test: about as long as `make demo`.

    python -m benchmarks.multimodal [--out DIR] [--report runs/quickstart/report.json]

``--report`` reads a finished quickstart's report.json instead of training. To register it in
the harness: a case whose run() calls ``compare(args)`` and whose render is ``markdown``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

GOAL_BPB = 0.02


def compare(args: argparse.Namespace) -> list[dict[str, Any]]:
    report = Path(args.report) if args.report else Path(args.out) / "report.json"
    if not args.report:
        from multibyte.quickstart import main as quickstart

        if quickstart(["--out", args.out]) != 0:
            raise SystemExit(2)
    rows = json.loads(report.read_text()).get("multimodal_rows") or []
    if not rows:
        raise SystemExit(
            f"{report}: no multimodal rows (run the quickstart with the multimodal model)"
        )
    for row in rows:
        row["within_goal"] = abs(row["gap_bpb"]) <= GOAL_BPB or row["gap_bpb"] < 0
    return rows


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| modality | specialist bpb | multimodal bpb | gap | within 0.02 |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['modality']} | {r['specialist_bpb']:.3f} | {r['multimodal_bpb']:.3f} "
            f"| {r['gap_bpb']:+.3f} | {'yes' if r['within_goal'] else 'no'} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.multimodal", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--out", default="runs/bench-multimodal")
    parser.add_argument("--report", help="a finished quickstart's report.json (no training)")
    print(markdown(compare(parser.parse_args(argv))))
    return 0


if __name__ == "__main__":
    sys.exit(main())
