"""`python -m benchmarks list | run CASE [--smoke] [options] | run all`."""

from benchmarks import (  # noqa: F401
    compression,
    core,
    cpu_bf16,
    data,
    diagnostics,
    fit_precision,
    generate,
    harness,
    multimodal,
    quality,
    scaling,
    train_step,
)

raise SystemExit(harness.cli())
