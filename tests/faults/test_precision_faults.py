"""`--model.compile true` given on the command line where no C++ compiler is found: one line
before any work (a recipe's `compile: true` trains eager instead, tests/train/test_precision.py)."""

from __future__ import annotations

from multibyte.train import precision
from tests.faults.conftest import ROOT

NO_COMPILER = "torch.compile on the CPU needs a C++ compiler (g++ or clang++), and none was found"


def test_an_explicit_compile_without_a_compiler_fails_before_any_work(
    shards, tmp_path, in_process, monkeypatch
):
    monkeypatch.setattr(precision, "cpu_compile_unavailable", lambda: NO_COMPILER)
    run = tmp_path / "run"
    result = in_process(
        "fit",
        "--config",
        ROOT / "recipes" / "pg19-tiny.yaml",
        "--data.path",
        shards,
        "--model.compile",
        "true",
        "--trainer.default_root_dir",
        run,
    )
    result.assert_user_error("model.compile: torch.compile on the CPU needs a C++ compiler")
    assert not run.exists()
