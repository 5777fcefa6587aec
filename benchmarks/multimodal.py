"""multimodal: one tiny MEGABYTE on every modality against each specialist.

The quickstart (`make demo`) trains, on the sample pack, a specialist per modality and one
multimodal model for the specialists' steps together on the same data bytes (header bytes
excluded). This case reads its report (default runs/quickstart/report.json; `--train` runs the
quickstart first, about as long as `make demo`) and gives, per modality, both held-out bpb and the
gap. The goal is a gap under 0.02 bpb everywhere (bGPT lost 0.030 / 0.105 / 0.027 on text /
images / audio). --smoke runs the quickstart's reduced mode into a temporary folder.

Without a report (no `--report`, `--train` or `--controls`) it measures the streaming mixture
instead: synthetic image, audio and text shards written with the project's shard writer into a
temporary folder (deleted afterwards) at three data sizes, and for each size, in a fresh process,
the peak RSS and the seconds from opening the three sources to the first training batch of the
multimodal-tiny recipe's sequences, and the seconds per batch after it. Both must stay flat.

`--controls` splits each gap in two: the multimodal recipe trained on that modality alone (the
other sources' weights 0, so the same header and sequence length) for the steps its weight got
in the shared run, evaluated the same way. shared - control is what sharing costs; control -
specialist is what the multimodal recipe (patch size, window, updates) costs on its own.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from benchmarks import harness as h

GOAL_BPB = 0.02


def render(r: dict) -> str:
    if "sizes" in r:
        return render_streaming(r)
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
    parser.add_argument("--report", default=None,
                        help="a finished quickstart's report.json (default "
                             "runs/quickstart/report.json with --train or --controls; none: "
                             "measure the streaming mixture)")  # fmt: skip
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
            "--json", str(root / "evaluation.json"), "--quiet", "--no-codecs", "--overwrite",
        ])  # fmt: skip
        if status:
            raise SystemExit(status)
        out[report["modality"]] = json.loads((root / "evaluation.json").read_text())[
            "bits_per_byte"
        ]
    return out


@h.case("multimodal", render, options)
def run(args: argparse.Namespace) -> dict:
    if args.report is None and not args.train and not args.controls:
        return streaming(args.smoke)
    args.report = args.report or "runs/quickstart/report.json"
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


# -- the streaming mixture: memory and time to the first batch at three data sizes -------------

GB = 10**9
SIZES = (0.6 * GB, 2 * GB, 6 * GB)  # synthetic shards in all, a third per source
SMOKE_SIZES = (3 * 10**6, 6 * 10**6, 12 * 10**6)
BATCH, BATCHES, MAX_SEQ_LEN, PATCH = 8, 30, 12372, 12  # the multimodal-tiny recipe's sequences
RSS_GOAL = 2 * 2**30
SOURCES = {  # modality options, bytes per record, stream
    "image": ({"name": "image"}, 12288, False),
    "audio": ({"name": "audio"}, 524288, False),  # clips of the default --seq-len
    "text": ({"name": "text"}, 1 << 20, True),  # prepare's 1 MiB stream records
}

MEASURE = """
import json, re, sys, time
from pathlib import Path
from multibyte.train.data import ByteDataModule
folders, batch, batches, max_seq_len, patch = json.loads(sys.argv[1])
def peak():
    status = Path("/proc/self/status").read_text()
    return int(re.search(r"^VmHWM:\\s+(\\d+) kB", status, re.M)[1]) * 1024
before = peak()  # Python, torch and Lightning imported: what any run holds
started = time.perf_counter()
data = ByteDataModule(sources=[{"path": f, "weight": 1} for f in folders], batch_size=batch)
data.set_patch_size(patch, max_seq_len)
loader = iter(data.train_dataloader())
first = next(loader)
to_first = time.perf_counter() - started
started = time.perf_counter()
rows = first.shape[0]
for _ in range(batches):
    rows += next(loader).shape[0]
per_batch = (time.perf_counter() - started) / batches
print(json.dumps({"first_batch_s": to_first, "per_batch_s": per_batch, "peak_rss_bytes": peak(),
                  "rss_before_bytes": before, "seq_len": int(first.shape[1]), "rows": rows}))
"""


def write_source(folder: Path, name: str, size: int, shard_bytes: int) -> list[dict]:
    """``size`` bytes of synthetic ``name`` records in shards of the project's writer; the
    shard infos as prepare records them."""
    from multibyte.data.writer import ShardSink

    options, record, stream = SOURCES[name]
    rng = np.random.default_rng(len(name))
    block = rng.integers(0, 256, 64 << 20, dtype=np.uint8).tobytes()
    meta = {"source": "synthetic", "modality": name, "options": options}
    with ShardSink(folder, "train", max_bytes=shard_bytes) as sink:
        for i in range(max(1, size // record)):
            start = (i * 7919 * 13) % (len(block) - record)
            sink.write(f"s{i:09d}", block[start : start + record], meta)
    return sink.infos


def write_manifest(folder: Path, name: str, infos: list[dict], record_bytes: int) -> None:
    options, _, stream = SOURCES[name]
    samples = sum(i["samples"] for i in infos)
    manifest = {
        "format": "multibyte-shards", "version": 1, "modality": name, "options": options,
        "stream": stream, "complete": True, "counts": {"train": samples},
        "bytes": {"train": samples * record_bytes}, "shards": {"train": [i["name"] for i in infos]},
        "shard_info": {"train": infos}, "skipped": [],
    }  # fmt: skip
    (folder / "manifest.json").write_text(json.dumps(manifest))


def streaming(smoke: bool) -> dict:
    """Write the largest size once per source; smaller sizes hard-link its first shards."""
    sizes = SMOKE_SIZES if smoke else SIZES
    shard_bytes = 2**20 if smoke else 2**28  # prepare's default --shard-bytes
    parent = os.environ.get("TMPDIR") or tempfile.gettempdir()
    need = int(sizes[-1] * 1.1)
    free = shutil.disk_usage(parent).free
    if free < need:
        print(f"{parent}: {free / GB:.1f} GB free, the benchmark writes {need / GB:.1f} GB",
              file=sys.stderr)  # fmt: skip
        raise SystemExit(2)
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-multimodal-stream-", dir=parent) as tmp:
        root = Path(tmp)
        infos = {}
        for name in SOURCES:
            h.log(f"writing {sizes[-1] / 3 / GB:.2f} GB of {name} shards")
            infos[name] = write_source(root / "all" / name, name, int(sizes[-1] // 3), shard_bytes)
        for size in sizes:
            folders = []
            for name, (_, record, _) in SOURCES.items():
                folder = root / f"{size:.0f}" / name
                folder.mkdir(parents=True)
                kept, total = [], 0
                for info in infos[name]:
                    if kept and total >= size / 3:
                        break
                    os.link(root / "all" / name / info["name"], folder / info["name"])
                    kept.append(info)
                    total += info["samples"] * record
                write_manifest(folder, name, kept, record)
                folders.append(str(folder))
            on_disk = sum(f.stat().st_size for d in folders for f in Path(d).glob("*.tar"))
            h.log(f"{on_disk / GB:.2f} GB: measuring in a fresh process")
            args = json.dumps([folders, BATCH, BATCHES, MAX_SEQ_LEN, PATCH])
            done = subprocess.run([sys.executable, "-c", MEASURE, args], capture_output=True,
                                  text=True, cwd=str(h.REPO))  # fmt: skip
            if done.returncode:
                print(done.stderr[-3000:], file=sys.stderr)
                raise SystemExit(1)
            result = json.loads(done.stdout.strip().splitlines()[-1])
            rows.append({"shard_bytes": on_disk, **result})
    return {"output": "multimodal_streaming", "sizes": [r["shard_bytes"] for r in rows],
            "rows": rows, "batch_size": BATCH, "timed_batches": BATCHES, "smoke": smoke,
            "rss_goal_bytes": RSS_GOAL,
            "flat": rows[-1]["peak_rss_bytes"] < RSS_GOAL}  # fmt: skip


def _size(n: int) -> str:
    return f"{n / GB:.2f} GB" if n >= GB / 10 else f"{n / 10**6:.1f} MB"


def render_streaming(r: dict) -> str:
    seq_len = r["rows"][0]["seq_len"]
    lines = [
        f"Three sources (image 12,288-byte samples, audio 524,288-byte clips, text 1 MiB stream "
        f"records; a third of the bytes each, in shards of the project's writer), weight 1 each, "
        f"batches of {r['batch_size']} sequences of {seq_len:,} bytes (the multimodal-tiny "
        f"recipe's); each size measured in a fresh process.",
        "",
        "| shards on disk | peak RSS | of which before opening the data | seconds to the first "
        "batch | seconds per batch after it |",
        "|---|---|---|---|---|",
    ]
    for row in r["rows"]:
        lines.append(
            f"| {_size(row['shard_bytes'])} | {row['peak_rss_bytes'] / 2**30:.2f} GiB | "
            f"{row['rss_before_bytes'] / 2**30:.2f} GiB | "
            f"{row['first_batch_s']:.2f} | {row['per_batch_s']:.3f} |"
        )
    verdict = "under" if r["flat"] else "**over**"
    lines += ["", f"Peak RSS at the largest size: {verdict} the 2 GiB goal."]
    return "\n".join(lines) + "\n"
