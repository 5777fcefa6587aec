"""Precision and compile resolved against the machine: bf16 only where it is native, one line
saying what ran, and an explicit flag taken as given."""

from __future__ import annotations

import math
import platform
from pathlib import Path

import pytest
import torch
import yaml

import multibyte
from multibyte.train import precision
from multibyte.train.data import ConfigError
from multibyte.train.precision import resolve_compile, resolve_precision

# A small text model, so that a run in emulated bf16 stays short on a CPU without bf16 units.
SMALL = (
    "--data.seq_len",
    "128",
    "--data.batch_size",
    "2",
    "--model.model.init_args.config.max_seq_len",
    "128",
)


@pytest.fixture
def machine(monkeypatch):
    """Fake the capability queries: machine(cpu_bf16=..., cuda=(major, minor) or None)."""

    def fake(cpu_bf16: bool = False, cuda: tuple[int, int] | None = None) -> None:
        monkeypatch.setattr(precision, "cpu_has_bf16_units", lambda: cpu_bf16)
        monkeypatch.setattr(precision, "cuda_capability", lambda: cuda)

    return fake


@pytest.mark.parametrize(
    ("device", "cpu_bf16", "cuda", "asked", "runs", "why"),
    [
        ("cpu", False, None, "bf16-mixed", "32-true", "this CPU has no bf16 units"),
        ("cpu", True, None, "bf16-mixed", "bf16-mixed", "this CPU has bf16 units"),
        ("cpu", False, None, "bf16", "32-true", "the recipe asks for bf16-mixed"),
        ("cpu", True, None, "16-mixed", "bf16-mixed", "this CPU has bf16 units"),
        ("cpu", False, None, "bf16-true", "32-true", "no bf16 units"),
        ("cpu", False, None, "32-true", "32-true", "as the recipe asks"),
        ("cpu", False, None, 32, "32-true", "as the recipe asks"),
        ("cuda", False, (8, 0), "bf16-mixed", "bf16-mixed", "compute capability 8.0"),
        ("cuda", False, (9, 0), "16-mixed", "16-mixed", "compute capability 9.0"),
        ("cuda", False, (7, 5), "bf16-mixed", "16-mixed", "7.5 has no bf16 units"),
        ("cuda", False, (7, 5), "bf16-true", "16-mixed", "7.5 has no bf16 units"),
        ("cuda", False, (7, 5), "16-mixed", "16-mixed", "the recipe asks for 16-mixed"),
        ("cuda", False, (7, 5), "32-true", "32-true", "as the recipe asks"),
    ],
)
def test_each_device_kind_gets_its_best_native_precision(
    machine, device, cpu_bf16, cuda, asked, runs, why
):
    machine(cpu_bf16=cpu_bf16, cuda=cuda)
    resolved = resolve_precision(asked, device)
    assert resolved.value == runs
    assert why in resolved.reason


@pytest.mark.parametrize("cuda", [(7, 5), (8, 0)])
@pytest.mark.parametrize("cpu_bf16", [True, False])
def test_an_explicit_precision_is_never_second_guessed(machine, cpu_bf16, cuda):
    machine(cpu_bf16=cpu_bf16, cuda=cuda)
    for device in ("cpu", "cuda"):
        resolved = resolve_precision("bf16-mixed", device, explicit=True)
        assert resolved.value == "bf16-mixed"
        assert resolved.reason == "given on the command line"


@pytest.mark.skipif(
    platform.machine() != "x86_64" or not Path("/proc/cpuinfo").is_file(),
    reason="the kernel's CPU flags are read on x86-64 Linux only",
)
def test_the_real_cpu_query_agrees_with_the_kernels_cpu_flags():
    flags = set()
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("flags"):
            flags |= set(line.split(":", 1)[1].split())
    assert precision.cpu_has_bf16_units() == bool({"avx512_bf16", "amx_tile"} & flags)


def _ran_with(root) -> dict:
    return yaml.safe_load((root / "checkpoints" / "config.yaml").read_text())


@pytest.mark.parametrize("cpu_bf16", [False, True])
def test_fit_runs_the_resolved_precision_and_says_so(
    machine, fit_recipe, text_folder, tmp_path, capsys, cpu_bf16
):
    machine(cpu_bf16=cpu_bf16)
    fit_recipe("pg19-tiny.yaml", text_folder, tmp_path, 2, *SMALL)
    runs = "bf16-mixed" if cpu_bf16 else "32-true"
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("precision")]
    units = "has bf16 units" if cpu_bf16 else "has no bf16 units"
    assert lines == [f"precision: {runs} (this CPU {units}; the recipe asks for bf16-mixed)"]
    assert _ran_with(tmp_path)["trainer"]["precision"] == runs


def test_fit_takes_an_explicit_precision_as_given(
    machine, fit_recipe, text_folder, tmp_path, capsys
):
    machine(cpu_bf16=False)
    val = fit_recipe(
        "pg19-tiny.yaml", text_folder, tmp_path, 6, *SMALL, "--trainer.precision", "bf16-mixed"
    )
    assert "precision: bf16-mixed (given on the command line)" in capsys.readouterr().out
    assert _ran_with(tmp_path)["trainer"]["precision"] == "bf16-mixed"
    assert len(val) == 2 and all(math.isfinite(v) for v in val.values()), val
    model = multibyte.load(tmp_path / "checkpoints" / "last.ckpt")
    assert all(p.dtype == torch.float32 for p in model.parameters())  # master weights
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model.generate(torch.zeros(1, 4, dtype=torch.long), 12, temperature=0)
    assert out.shape == (1, 16)


# -- compile ------------------------------------------------------------------------------------

NO_COMPILER = "torch.compile on the CPU needs a C++ compiler (g++ or clang++), and none was found"


@pytest.fixture
def no_compiler(monkeypatch):
    monkeypatch.setattr(precision, "cpu_compile_unavailable", lambda: NO_COMPILER)


def test_compile_resolution(no_compiler):
    assert resolve_compile(False, "cpu").value == "false"
    assert resolve_compile(True, "cuda").value == "true"  # inductor's GPU kernels are Triton
    eager = resolve_compile(True, "cpu")
    assert eager.value == "false" and "the recipe asks for compile: true" in eager.reason
    with pytest.raises(ConfigError, match="model.compile: torch.compile on the CPU needs"):
        resolve_compile(True, "cpu", explicit=True)


def test_a_recipe_that_compiles_trains_eager_without_a_compiler(
    no_compiler, machine, fit_recipe, text_folder, tmp_path, capsys
):
    machine(cpu_bf16=False)
    compiling = tmp_path / "compile.yaml"
    compiling.write_text("model:\n  compile: true\n")  # a recipe setting, not a flag
    val = fit_recipe("pg19-tiny.yaml", text_folder, tmp_path, 2, *SMALL, "--config", compiling)
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("compile")]
    assert lines == [f"compile: false ({NO_COMPILER}; the recipe asks for compile: true)"]
    assert _ran_with(tmp_path)["model"]["compile"] is False
    assert len(val) == 2 and all(math.isfinite(v) for v in val.values())


@pytest.mark.slow  # inductor compiles for a minute or more on this CPU: `pytest -m slow`
def test_compiled_model_trains_and_saves_plain_keys(fit_recipe, text_folder, tmp_path):
    from torch._dynamo.utils import counters

    counters.clear()
    val = fit_recipe("pg19-tiny.yaml", text_folder, tmp_path, 10, "--model.compile", "true")
    assert counters["stats"]["unique_graphs"] > 0, dict(counters["stats"])  # it really compiled
    assert len(val) == 2 and all(math.isfinite(v) for v in val.values()), val
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert not any("_orig_mod" in key for key in state)  # in-place compile keeps the keys
    assert (
        multibyte.load(tmp_path / "checkpoints" / "last.ckpt")(torch.zeros(1, 8).long())
        .isfinite()
        .all()
    )
