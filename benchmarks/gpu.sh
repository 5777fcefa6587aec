#!/usr/bin/env bash
# GPU benchmarks (issue 6): one command, under 8 minutes on one H100.
#
#   bash benchmarks/gpu.sh            # on the GPU machine; JSON under $OUT (or runs/benchmarks/gpu)
#   bash benchmarks/gpu.sh --smoke    # the same Python at tiny sizes (runs on CPU; tested)
#
# train_step --gpu: MFU of the imagenet64-small recipe model (bf16 autocast, compiled blocks)
# against 989 TFLOP/s and its bytes/s against a matched ByteTransformer, with the SDPA kernels
# one step runs; generate --gpu: cached bytes/s at batch 1 and 8; scaling --gpu: the longest
# trainable T (audio-tiny MEGABYTE, bf16, checkpointing). Each prints its table.
set -uo pipefail
cd "$(dirname "$0")/.."
if [ -x .venv/bin/python ]; then DEFAULT_PY=.venv/bin/python; else DEFAULT_PY=python; fi
PY="${PYTHON:-$DEFAULT_PY}"
DIR="${OUT:-runs/benchmarks/gpu}"
SMOKE=()
if [ "${1:-}" = "--smoke" ]; then SMOKE=(--smoke); fi
export PYTHONUNBUFFERED=1
run() {  # LIMIT_S CASE OPTIONS...: each part has its own time limit, the whole stays < 8 min
  local limit=$1; shift
  timeout "$limit" "$PY" -m benchmarks run "$@" --gpu "${SMOKE[@]}" --out "$DIR" --no-doc \
    || echo "$1: failed or timed out" >&2
}
run 200 train_step
run 80 generate
if [ ${#SMOKE[@]} -eq 0 ]; then
  run 170 scaling --time-limit 60 --megabyte-range 262144 4194304 --transformer-range 16384 262144
else
  run 120 scaling
fi
