"""Training from shards written by `multibyte prepare`, and deterministic resume on streams."""

from __future__ import annotations

import pytest

from multibyte.prepare import main as prepare

TINY = [
    "--model.model.init_args.config.global_dim",
    "64",
    "--model.model.init_args.config.local_dim",
    "32",
    "--model.model.init_args.config.max_seq_len",
    "256",
    "--data.seq_len",
    "256",
    "--data.batch_size",
    "2",
    "--data.batches_per_epoch",
    "4",
    "--trainer.log_every_n_steps",
    "1",
    "--trainer.enable_progress_bar",
    "false",
    "--trainer.max_steps",
    "6",
    "--trainer.val_check_interval",
    "3",
]


@pytest.fixture(scope="module")
def text_shards(text_folder, tmp_path_factory):
    out = tmp_path_factory.mktemp("shards")
    assert (
        prepare(
            [
                "text",
                "--src",
                str(text_folder),
                "--out",
                str(out),
                "--val-fraction",
                "0.2",
                "--quiet",
                "--chunk-size",
                "1000",
            ]
        )
        == 0
    )
    return out


def test_fit_from_shards_and_resume_deterministically(fit, metrics, recipes, text_shards, tmp_path):
    read_metrics, column = metrics
    common = ["--config", recipes / "pg19-tiny.yaml", "--data.path", text_shards, *TINY]
    assert fit(*common, "--trainer.default_root_dir", tmp_path / "full") == 0
    rows = read_metrics(tmp_path / "full")
    assert sorted(column(rows, "train/bpb")) == list(range(6))  # epochs of 4 batches roll over
    assert column(rows, "val/bpb")
    halfway = tmp_path / "full" / "checkpoints" / "epoch=0-step=3.ckpt"
    resumed = []
    for attempt in ("a", "b"):
        root = tmp_path / attempt
        assert fit(*common, "--trainer.default_root_dir", root, "--ckpt_path", halfway) == 0
        resumed.append(column(read_metrics(root), "train/bpb"))
    assert sorted(resumed[0]) == [3, 4, 5]
    assert resumed[0] == resumed[1]  # the same resume reads the same stream


def test_shards_of_another_modality_are_refused(fit, recipes, text_shards, tmp_path, capsys):
    status = fit(
        "--config",
        recipes / "imagenet64-tiny.yaml",
        "--data.path",
        text_shards,
        "--trainer.default_root_dir",
        tmp_path,
    )
    assert status == 2
    assert "data.modality name 'image' does not match the shards' 'text'" in capsys.readouterr().err
