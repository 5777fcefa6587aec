"""`python -m benchmarks list | run CASE [--smoke] [options] | run all`."""

import importlib

from benchmarks import harness

for module in harness.MODULES:  # each registers its cases
    importlib.import_module(f"benchmarks.{module}")
raise SystemExit(harness.cli())
