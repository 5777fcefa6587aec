"""`python -m benchmarks list | run CASE [--smoke] [options] | run all`."""

from benchmarks import compression, core, data, diagnostics, generate, harness, scaling, train_step  # noqa: F401

raise SystemExit(harness.cli())
