"""`multibyte fit` with the tiny recipes on data the tests make."""

from __future__ import annotations

import pytest
import torch

import multibyte

CASES = {
    # recipe, data fixture, expected modality, training steps
    "image": ("imagenet64-tiny.yaml", "image_folder", {"name": "image", "size": 64}, 40),
    "audio": ("audio-tiny.yaml", "audio_folder", {"name": "audio", "encoding": "pcm16"}, 60),
    "text": ("pg19-tiny.yaml", "text_folder", {"name": "text"}, 40),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_tiny_recipe_learns_and_writes_a_checkpoint(case, fit, metrics, recipes, tmp_path, request):
    recipe, data_fixture, modality, steps = CASES[case]
    data = request.getfixturevalue(data_fixture)
    status = fit(
        "--config", recipes / recipe, "--data.path", data,
        "--trainer.max_steps", steps, "--trainer.val_check_interval", steps // 2,
        "--trainer.default_root_dir", tmp_path, "--trainer.log_every_n_steps", 5,
        "--trainer.enable_progress_bar", "false",
    )  # fmt: skip
    assert status == 0
    read_metrics, column = metrics
    val = column(read_metrics(tmp_path), "val/bpb")
    assert len(val) == 2 and val[max(val)] < 6.0, val  # well below the 8 bits of a uniform model
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert last.is_file() and (tmp_path / "checkpoints" / "config.yaml").is_file()
    model = multibyte.load(last)
    assert not model.training
    for key, value in modality.items():
        assert model.modality[key] == value
    x = torch.randint(0, 256, (1, 64))
    assert model(x).shape == (1, 64, 256)
