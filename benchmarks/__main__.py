"""`python -m benchmarks list | run CASE [--smoke] [options] | run all`."""

from benchmarks import (  # noqa: F401 (each module registers its cases)
    compression,
    cpu_bf16,
    fit_precision,
    generate,
    harness,
    multimodal,
    quality,
    scaling,
    train_step,
)

raise SystemExit(harness.cli())
