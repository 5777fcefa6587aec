#!/usr/bin/env bash
# GPU benchmarks (issue 6), each case under its own time limit, < 8 minutes on one H100:
#   bash benchmarks/gpu.sh            # JSON under $OUT (or runs/benchmarks/gpu), tables printed
#   bash benchmarks/gpu.sh --smoke    # the same Python at tiny sizes (runs on a CPU)
# train_step --gpu: imagenet64-small MFU (bf16, compiled blocks) and bytes/s against a matched
# ByteTransformer, SDPA kernels; generate --gpu: cached bytes/s at batch 1 and 8; scaling --gpu:
# the longest trainable T (audio-tiny MEGABYTE, bf16, checkpointing).
set -uo pipefail
cd "$(dirname "$0")/.."
if [ -x .venv/bin/python ]; then DEFAULT_PY=.venv/bin/python; else DEFAULT_PY=python; fi
PY="${PYTHON:-$DEFAULT_PY}" DIR="${OUT:-runs/benchmarks/gpu}" SMOKE=()
if [ "${1:-}" = "--smoke" ]; then SMOKE=(--smoke); fi
export PYTHONUNBUFFERED=1
run() {  # LIMIT_S CASE [OPTIONS...]
  timeout "$1" "$PY" -m benchmarks run "${@:2}" --gpu "${SMOKE[@]}" --out "$DIR" --no-doc \
    || echo "$2: failed or timed out" >&2
}
run 200 train_step
run 80 generate
if [ ${#SMOKE[@]} -eq 0 ]; then
  run 170 scaling --time-limit 60 --megabyte-range 262144 4194304 --transformer-range 16384 262144
else
  run 120 scaling
fi
