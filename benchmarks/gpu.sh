#!/usr/bin/env bash
# GPU benchmarks, each case under its own time limit, < 11 minutes on one H100:
#   bash benchmarks/gpu.sh            # JSON under $OUT (or runs/benchmarks/gpu), tables printed
#   bash benchmarks/gpu.sh --smoke    # the same Python at tiny sizes (runs on a CPU)
# train_step --gpu: imagenet64-small MFU (bf16, compiled blocks) and bytes/s against a matched
# ByteTransformer; generate --gpu: cached bytes/s at batch 1 and 8, eager and
# compiled (each step kind one CUDA graph), after the CUDA-graph decoding test; scaling --gpu:
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
if [ ${#SMOKE[@]} -eq 0 ]; then  # the CUDA-graph decode step against eager decoding, first
  timeout 90 "$PY" -m pytest -q -p no:cacheprovider tests/model/test_compiled_decoding.py \
    -k cuda_graph || echo "the CUDA-graph decoding test failed or timed out" >&2
fi
run 200 train_step
run 180 generate
if [ ${#SMOKE[@]} -eq 0 ]; then
  run 170 scaling --time-limit 60 --megabyte-range 262144 4194304 --transformer-range 16384 262144
else
  run 120 scaling
fi
