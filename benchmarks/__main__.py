"""`python -m benchmarks list | run CASE [--smoke] [options] | run all`."""

import sys

from benchmarks import core, data, diagnostics, generate, scaling, train_step  # noqa: F401 (cases)
from benchmarks.harness import cli

sys.exit(cli())
