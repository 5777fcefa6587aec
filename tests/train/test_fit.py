"""`multibyte fit` with the tiny recipes on data the tests make."""

from __future__ import annotations

import pytest
import torch

import multibyte

CASES = {
    # recipe, data fixture, expected modality, training steps, sequences per batch
    "image": ("imagenet64-tiny.yaml", "image_folder", {"name": "image", "size": 64}, 20, 2),
    "audio": ("audio-tiny.yaml", "audio_folder", {"name": "audio", "encoding": "pcm16"}, 60, 2),
    "text": ("pg19-tiny.yaml", "text_folder", {"name": "text"}, 40, 4),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_tiny_recipe_learns_and_writes_a_checkpoint(case, fit_recipe, tmp_path, request):
    recipe, data_fixture, modality, steps, batch = CASES[case]
    # eager: compiling the image recipe's blocks takes a minute here; training compiled is
    # checked by `pytest -m slow tests/train/test_precision.py`. The recipe's model; audio on fewer
    # sequences per batch than the recipe asks for (it still learns the test tones in 60 steps).
    data = request.getfixturevalue(data_fixture)
    options = ["--model.compile", "false", "--data.batch_size", str(batch)]
    val = fit_recipe(recipe, data, tmp_path, steps, *options)
    assert len(val) == 2 and val[max(val)] < 6.0, val  # well below the 8 bits of a uniform model
    last = tmp_path / "checkpoints" / "last.ckpt"
    assert last.is_file() and (tmp_path / "checkpoints" / "config.yaml").is_file()
    model = multibyte.load(last)
    assert not model.training
    for key, value in modality.items():
        assert model.modality[key] == value
    x = torch.randint(0, 256, (1, 64))
    assert model(x).shape == (1, 64, 256)
