#!/usr/bin/env bash
# GPU benchmark (issue 6): one command, under 8 minutes on one H100.
#
#   bash benchmarks/gpu.sh            # on the GPU machine; details under $OUT (or runs/benchmarks/gpu)
#   bash benchmarks/gpu.sh --smoke    # the same Python at tiny sizes (runs on CPU; tested)
#
# Measures: MFU of the imagenet64-small recipe model (bf16 autocast, torch.compile'd blocks)
# against 989 TFLOP/s, its train bytes/s against a ByteTransformer with the closest
# non-embedding parameter count, which SDPA kernel the attention runs (profiler), cached
# generation bytes/s at batch 1 and 8, and the longest trainable T (audio-tiny-like MEGABYTE,
# P=32, bf16, checkpointing, chunked loss, one subprocess per attempt). Prints a table last.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -x .venv/bin/python ]; then DEFAULT_PY=.venv/bin/python; else DEFAULT_PY=python; fi
PY="${PYTHON:-$DEFAULT_PY}"
DIR="${OUT:-runs/benchmarks/gpu}"
mkdir -p "$DIR"
SMOKE=""
if [ "${1:-}" = "--smoke" ]; then SMOKE="--smoke"; fi
export PYTHONUNBUFFERED=1

# Each part has its own time limit, so that the whole stays under 8 minutes.
timeout 200 "$PY" -m benchmarks.train_step --gpu $SMOKE --out "$DIR" || echo "train_step: failed or timed out" >&2
timeout 80 "$PY" -m benchmarks.generate --gpu $SMOKE --out "$DIR" || echo "generate: failed or timed out" >&2
if [ -n "$SMOKE" ]; then
  timeout 120 "$PY" -m benchmarks.scaling --gpu --smoke --out "$DIR" --no-doc || echo "scaling: failed" >&2
else
  timeout 170 "$PY" -m benchmarks.scaling --gpu --out "$DIR" --no-doc --time-limit 60 \
    --megabyte-range 262144 4194304 --transformer-range 16384 262144 || echo "scaling: failed or timed out" >&2
fi

"$PY" - "$DIR" <<'PY'
import json, sys
from pathlib import Path

d = Path(sys.argv[1])
def load(name):
    p = d / f"{name}.json"
    return json.loads(p.read_text()) if p.exists() else None

rows = []
t = load("gpu_train_step")
if t:
    for name, e in t["train"].items():
        rows.append((f"train {name} (batch {t['batch']}, T={t['seq_len']})",
                     f"{e['bytes_per_s']:,.0f} B/s, MFU {100 * e['mfu']:.1f}%, "
                     f"{e['memory']['peak_rss_bytes'] / 2**30:.1f} GiB"))
    rows.append(("train MEGABYTE / ByteTransformer", f"{t['ratio_megabyte_vs_transformer']:.1f}x"))
    rows.append(("SDPA ops (MEGABYTE)", ", ".join(f"{k}:{v}" for k, v in t["sdpa_ops"].items())))
g = load("gpu_generate")
if g:
    for key, e in g["generate"].items():
        rows.append((f"generate {key}", f"{e['bytes_per_s']:,.0f} B/s"))
s = load("scaling")
if s:
    for name, v in s["longest"].items():
        rows.append((f"max train T {name}", f"{v['seq_len'] or 0:,} ({v['stopped_by']})"))
device = (t or g or {}).get("device", "?")
print(f"\n== benchmarks/gpu.sh on {device}; details in {d} ==")
width = max((len(r[0]) for r in rows), default=10)
for k, v in rows:
    print(f"{k:<{width}}  {v}")
PY
