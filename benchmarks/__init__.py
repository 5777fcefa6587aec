"""Speed and memory benchmarks for multibyte; each module runs as `python -m benchmarks.<name>`.

Every benchmark writes a JSON file (under `$OUT` when set, else `runs/benchmarks/`) and rewrites
its own section of `docs/benchmarks.md`, naming the machine it ran on. `benchmarks.common` holds
the shared pieces: machine description, timing, fp32 matmul ceiling, peak memory, JSON, doc tables.
"""
