"""Exact resume, resume after SIGKILL, and atomic checkpoint writes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

TINY = [
    "--model.model.init_args.config.global_dim",
    "64",
    "--model.model.init_args.config.local_dim",
    "32",
    "--model.model.init_args.config.max_seq_len",
    "256",
    "--model.model.init_args.config.dropout",
    "0.1",
    "--data.seq_len",
    "256",
    "--data.batch_size",
    "2",
    "--trainer.log_every_n_steps",
    "1",
    "--trainer.enable_progress_bar",
    "false",
]


def _train_bpb(metrics, root: Path) -> dict[int, float]:
    read_metrics, column = metrics
    return column(read_metrics(root), "train/bpb")


def test_resume_reproduces_the_uninterrupted_losses(fit, metrics, recipes, text_folder, tmp_path):
    common = [
        "--config",
        recipes / "pg19-tiny.yaml",
        "--data.path",
        text_folder,
        *TINY,
        "--trainer.max_steps",
        8,
        "--trainer.val_check_interval",
        4,
    ]
    full, resumed = tmp_path / "full", tmp_path / "resumed"
    assert fit(*common, "--trainer.default_root_dir", full) == 0
    halfway = full / "checkpoints" / "epoch=0-step=4.ckpt"
    assert halfway.is_file()
    assert fit(*common, "--trainer.default_root_dir", resumed, "--ckpt_path", halfway) == 0
    expected, got = _train_bpb(metrics, full), _train_bpb(metrics, resumed)
    later = [step for step in expected if step >= 4]
    assert later and sorted(got) == later  # the resumed run logged exactly the later steps
    for step in later:
        assert got[step] == pytest.approx(expected[step], abs=1e-6), step
    final = [
        torch.load(root / "checkpoints" / "last.ckpt", weights_only=True)["state_dict"]
        for root in (full, resumed)
    ]
    for name, tensor in final[0].items():
        assert torch.allclose(tensor, final[1][name], atol=1e-6), name


def test_killed_run_resumes_from_last(recipes, text_folder, tmp_path, metrics):
    command = [
        sys.executable,
        "-m",
        "multibyte.cli",
        "fit",
        "--config",
        str(recipes / "pg19-tiny.yaml"),
        "--data.path",
        str(text_folder),
        *TINY,
        "--trainer.max_steps",
        "1000",
        "--trainer.val_check_interval",
        "3",
        "--trainer.default_root_dir",
        str(tmp_path),
    ]
    last = tmp_path / "checkpoints" / "last.ckpt"
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 240
        while time.time() < deadline:
            if last.is_file() and torch.load(last, weights_only=True)["global_step"] >= 6:
                break
            time.sleep(0.5)
        else:
            pytest.fail("the run wrote no checkpoint at step 6 in time")
    finally:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()
    saved_step = torch.load(last, weights_only=True)["global_step"]  # still a valid file
    assert saved_step >= 6
    resume = [*command, "--ckpt_path", "last"]
    resume[resume.index("1000")] = str(saved_step + 3)
    done = subprocess.run(resume, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "last checkpoint:" in done.stdout
    steps = sorted(_train_bpb(metrics, tmp_path))
    assert steps[0] == saved_step  # nothing before the checkpoint is redone, nothing is lost
    assert torch.load(last, weights_only=True)["global_step"] == saved_step + 3


def test_an_interrupted_checkpoint_write_leaves_the_old_file_intact(tmp_path, monkeypatch):
    import fsspec.implementations.local as local
    from lightning.fabric.utilities.cloud_io import _atomic_save

    path = tmp_path / "last.ckpt"
    _atomic_save({"global_step": 1, "weights": torch.ones(3)}, path)

    def broken_write(self, data):  # the process dies halfway through writing the new file
        raise KeyboardInterrupt("killed while writing")

    monkeypatch.setattr(local.LocalFileOpener, "write", broken_write)
    with pytest.raises(KeyboardInterrupt):
        _atomic_save({"global_step": 2, "weights": torch.zeros(3)}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True)["global_step"] == 1
