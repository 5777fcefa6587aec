"""The GPU recipes' settings, bf16 mixed precision and compile, run here on the CPU."""

from __future__ import annotations

import math

import pytest
import torch

import multibyte


def test_bf16_mixed_trains_and_keeps_float32_weights(fit_recipe, text_folder, tmp_path):
    options = ("--trainer.precision", "bf16-mixed")
    val = fit_recipe("pg19-tiny.yaml", text_folder, tmp_path, 20, *options)
    assert len(val) == 2 and all(math.isfinite(v) for v in val.values()), val
    assert val[max(val)] < val[min(val)] < 8.0  # learning under autocast
    model = multibyte.load(tmp_path / "checkpoints" / "last.ckpt")
    assert all(p.dtype == torch.float32 for p in model.parameters())  # master weights
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model.generate(torch.zeros(1, 4, dtype=torch.long), 12, temperature=0)
    assert out.shape == (1, 16)


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


@pytest.mark.parametrize("lacks_units", [True, False])
def test_bf16_on_a_cpu_without_bf16_units_is_warned_of(
    fit_recipe, text_folder, tmp_path, monkeypatch, capsys, lacks_units
):
    from multibyte.train import cli

    monkeypatch.setattr(cli, "cpu_lacks_bf16_units", lambda: lacks_units)
    fit_recipe("pg19-tiny.yaml", text_folder, tmp_path, 2, "--trainer.precision", "bf16-mixed")
    warned = "without bf16 matrix instructions" in capsys.readouterr().err
    assert warned == lacks_units
