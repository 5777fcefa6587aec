"""bf16 mixed precision, as the paper and small recipes train on GPUs, run here on the CPU."""

from __future__ import annotations

import math

import pytest
import torch

import multibyte


def test_bf16_mixed_trains_and_keeps_float32_weights(fit, metrics, recipes, text_folder, tmp_path):
    status = fit(
        "--config", recipes / "pg19-tiny.yaml", "--data.path", text_folder,
        "--trainer.precision", "bf16-mixed", "--trainer.max_steps", 20,
        "--trainer.val_check_interval", 10, "--trainer.default_root_dir", tmp_path,
        "--trainer.log_every_n_steps", 5, "--trainer.enable_progress_bar", "false",
    )  # fmt: skip
    assert status == 0
    read_metrics, column = metrics
    val = column(read_metrics(tmp_path), "val/bpb")
    assert len(val) == 2 and all(math.isfinite(v) for v in val.values()), val
    assert val[max(val)] < val[min(val)] < 8.0  # learning under autocast
    model = multibyte.load(tmp_path / "checkpoints" / "last.ckpt")
    assert all(p.dtype == torch.float32 for p in model.parameters())  # master weights
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model.generate(torch.zeros(1, 4, dtype=torch.long), 12, temperature=0)
    assert out.shape == (1, 16)


@pytest.mark.slow  # inductor compiles for a minute or more on this CPU: `pytest -m slow`
def test_compiled_model_trains_and_saves_plain_keys(fit, metrics, recipes, text_folder, tmp_path):
    from torch._dynamo.utils import counters

    counters.clear()
    status = fit(
        "--config", recipes / "pg19-tiny.yaml", "--data.path", text_folder,
        "--model.compile", "true", "--trainer.max_steps", 10,
        "--trainer.val_check_interval", 10, "--trainer.default_root_dir", tmp_path,
        "--trainer.log_every_n_steps", 5, "--trainer.enable_progress_bar", "false",
    )  # fmt: skip
    assert status == 0
    assert counters["stats"]["unique_graphs"] > 0, dict(counters["stats"])  # it really compiled
    read_metrics, column = metrics
    val = column(read_metrics(tmp_path), "val/bpb")
    assert len(val) == 1 and math.isfinite(next(iter(val.values())))
    state = torch.load(tmp_path / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
    assert not any("_orig_mod" in key for key in state)  # in-place compile keeps the keys
    assert (
        multibyte.load(tmp_path / "checkpoints" / "last.ckpt")(torch.zeros(1, 8).long())
        .isfinite()
        .all()
    )
