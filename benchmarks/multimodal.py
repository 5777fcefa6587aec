"""multimodal: the streaming mixture's memory and time to the first batch as the data grows.

Synthetic image, audio and text shards (the project's shard writer, a temporary folder) at three
sizes; for each, in a fresh process, the peak RSS and the seconds from opening the three sources
to the first batch of the multimodal-tiny recipe's sequences, and per batch after it. Both must
stay flat. (The demo's report gives each specialist's held-out bpb beside the multimodal one.)
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from functools import partial
from pathlib import Path

import numpy as np

from benchmarks import harness as h

GB = 10**9
SIZES = (0.6 * GB, 2 * GB, 6 * GB)  # synthetic shards in all, a third per source
SMOKE_SIZES = (6 * 10**6,)  # one fresh process: seconds
BATCH, BATCHES, MAX_SEQ_LEN, PATCH = 8, 30, 12372, 12  # the multimodal-tiny recipe's sequences
RSS_GOAL = 2 * 2**30
SOURCES = {  # bytes per record, stream
    "image": (12288, False),
    "audio": (524288, False),  # clips of prepare's default --seq-len
    "text": (1 << 20, True),  # prepare's 1 MiB stream records
}
fail = partial(h.fail, "multimodal")

# In a fresh process: peak RSS and the time to the first batch of the three sources.
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
for _ in range(batches):
    next(loader)
per_batch = (time.perf_counter() - started) / batches
print(json.dumps({"first_batch_s": to_first, "per_batch_s": per_batch, "peak_rss_bytes": peak(),
                  "rss_before_bytes": before, "seq_len": int(first.shape[1])}))
"""


def write_source(folder: Path, name: str, size: int, shard_bytes: int) -> list[dict]:
    """`size` bytes of synthetic `name` records in shards of the project's writer, with the
    manifest prepare writes; the shard infos."""
    from multibyte.data.writer import ShardSink

    record = SOURCES[name][0]
    block = np.random.default_rng(len(name)).integers(0, 256, 64 << 20, dtype=np.uint8).tobytes()
    meta = {"source": "synthetic", "modality": name, "options": {"name": name}}
    with ShardSink(folder, "train", max_bytes=shard_bytes) as sink:
        for i in range(max(1, size // record)):
            start = (i * 7919 * 13) % (len(block) - record)
            sink.write(f"s{i:09d}", block[start : start + record], meta)
    return sink.infos


def write_manifest(folder: Path, name: str, infos: list[dict]) -> None:
    record, stream = SOURCES[name]
    samples = sum(i["samples"] for i in infos)
    manifest = {"format": "multibyte-shards", "version": 1, "modality": name, "stream": stream}
    manifest |= {"options": {"name": name}, "complete": True, "skipped": []}
    manifest |= {"counts": {"train": samples}, "bytes": {"train": samples * record}}
    manifest |= {"shards": {"train": [i["name"] for i in infos]}, "shard_info": {"train": infos}}
    (folder / "manifest.json").write_text(json.dumps(manifest))


def streaming(smoke: bool) -> dict:
    """Write the largest size once per source; smaller sizes hard-link its first shards."""
    sizes = SMOKE_SIZES if smoke else SIZES
    shard_bytes = 2**20 if smoke else 2**28  # prepare's default --shard-bytes
    parent = os.environ.get("TMPDIR") or tempfile.gettempdir()
    need, free = int(sizes[-1] * 1.1), shutil.disk_usage(parent).free
    if free < need:
        fail(f"{parent}: {free / GB:.1f} GB free, the benchmark writes {need / GB:.1f} GB")
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-multimodal-stream-", dir=parent) as tmp:
        root, infos = Path(tmp), {}
        for name in SOURCES:
            h.log(f"writing {sizes[-1] / 3 / GB:.2f} GB of {name} shards")
            infos[name] = write_source(root / "all" / name, name, int(sizes[-1] // 3), shard_bytes)
        for size in sizes:
            folders = []
            for name, (record, _) in SOURCES.items():
                folder = root / f"{size:.0f}" / name
                folder.mkdir(parents=True)
                kept = []
                for info in infos[name]:
                    if kept and sum(i["samples"] for i in kept) * record >= size / 3:
                        break
                    os.link(root / "all" / name / info["name"], folder / info["name"])
                    kept.append(info)
                write_manifest(folder, name, kept)
                folders.append(str(folder))
            on_disk = sum(f.stat().st_size for d in folders for f in Path(d).glob("*.tar"))
            h.log(f"{on_disk / GB:.2f} GB: measuring in a fresh process")
            argv = json.dumps([folders, BATCH, BATCHES, MAX_SEQ_LEN, PATCH])
            command = [sys.executable, "-c", MEASURE, argv]
            done = subprocess.run(command, capture_output=True, text=True, cwd=h.REPO)
            if done.returncode:
                print(done.stderr[-3000:], file=sys.stderr)
                raise SystemExit(1)
            rows.append({"shard_bytes": on_disk, **json.loads(done.stdout.splitlines()[-1])})
    flat = rows[-1]["peak_rss_bytes"] < RSS_GOAL
    return {"output": "multimodal_streaming", "rows": rows, "batch_size": BATCH, "flat": flat}


def render(r: dict) -> str:
    table = [
        [f"{row['shard_bytes'] / GB:.2f} GB"]
        + [f"{row[k] / 2**30:.2f} GiB" for k in ("peak_rss_bytes", "rss_before_bytes")]
        + [f"{row['first_batch_s']:.2f}", f"{row['per_batch_s']:.3f}"]
        for row in r["rows"]
    ]
    headers = ["shards on disk", "peak RSS", "of which before opening the data"]
    headers += ["seconds to the first batch", "seconds per batch after it"]
    return (
        "Three sources (image 12,288-byte samples, audio 524,288-byte clips, text 1 MiB stream "
        "records; a third of the bytes each, in shards of the project's writer), weight 1 each, "
        f"batches of {r['batch_size']} sequences of {r['rows'][0]['seq_len']:,} bytes (the "
        "multimodal-tiny recipe's); each size measured in a fresh process.\n\n"
        + h.markdown_table(headers, table)
        + f"\n\nPeak RSS at the largest size: {'under' if r['flat'] else '**over**'} the 2 GiB "
        "goal.\n"
    )


h.case("multimodal", render)(lambda args: streaming(args.smoke))
