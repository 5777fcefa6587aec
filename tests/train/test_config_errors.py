"""Bad configuration fails before training starts, naming the key."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["--data.path", "/no/such/folder"], "data.path"),
        ([], "data.path is required"),
        (
            ["--data.seq_len", "1020"],
            "data.seq_len=1020 is not a multiple of the model's patch_size=8",
        ),
        (["--data.modality", "{name: video}"], "data.modality"),
        (["--data.seq_len", "2048"], "max_seq_len=1024 is shorter than data.seq_len=2048"),
        (["--model.schedule", "zigzag"], "model.schedule"),
        (["--data.batch_size", "0"], "data.batch_size"),
    ],
)
def test_bad_configuration_names_the_key(
    overrides, message, fit, recipes, text_folder, tmp_path, capsys
):
    path = (
        []
        if any(o == "--data.path" for o in overrides) or message.endswith("required")
        else ["--data.path", text_folder]
    )
    status = fit(
        "--config",
        recipes / "pg19-tiny.yaml",
        *path,
        *overrides,
        "--trainer.default_root_dir",
        tmp_path / "run",
    )
    assert status != 0
    assert message in capsys.readouterr().err
    assert not (tmp_path / "run" / "checkpoints").exists()  # nothing ran
