"""Speed and memory benchmarks for multibyte: `python -m benchmarks run CASE` (see harness.py)."""
