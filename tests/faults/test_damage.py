"""Damaged shards: cut mid-member and at a member boundary. ``verify``, ``evaluate`` and
``fit`` each report the damaged shard by name; ``fit --data.on_bad_shard skip`` goes on."""

from __future__ import annotations

import shutil
import tarfile
from pathlib import Path

import pytest

from tests.faults.conftest import ROOT, console


def member_boundary(shard: Path) -> int:
    """The offset just after the first sample's members (a cut there is a valid-looking tar)."""
    with tarfile.open(shard) as archive:
        members = archive.getmembers()
    second = members[2]
    return second.offset


def damaged(shards: Path, tmp_path: Path, split: str, how: str) -> tuple[Path, Path]:
    copy = tmp_path / f"{how}-{split}"
    shutil.copytree(shards, copy)
    shard = sorted(copy.glob(f"{split}-*.tar"))[1]
    data = shard.read_bytes()
    cut = member_boundary(shard) if how == "boundary" else member_boundary(shard) + 700
    shard.write_bytes(data[:cut])
    return copy, shard


@pytest.mark.parametrize("how", ["boundary", "mid-member"])
def test_verify_and_evaluate_name_the_damaged_shard(shards, checkpoint, tmp_path, how, in_process):
    folder, shard = damaged(shards, tmp_path, "val", how)
    in_process("verify", folder).assert_user_error(shard, "truncated", status=1)
    assert in_process("verify", shards).status == 0
    in_process(
        "evaluate",
        "--ckpt",
        checkpoint,
        "--data",
        folder,
        "--no-codecs",
        "--quiet",
        "--device",
        "cpu",
    ).assert_user_error(shard, "truncated")
    # bare .tar files of that folder are checked the same way
    in_process(
        "evaluate",
        "--ckpt",
        checkpoint,
        "--data",
        shard,
        "--no-codecs",
        "--quiet",
        "--device",
        "cpu",
    ).assert_user_error(shard)


def test_console_evaluate_reports_a_short_shard_in_one_line(shards, checkpoint, tmp_path):
    folder, shard = damaged(shards, tmp_path, "val", "boundary")
    result = console(
        "evaluate",
        "--ckpt",
        checkpoint,
        "--data",
        folder,
        "--no-codecs",
        "--quiet",
        "--device",
        "cpu",
    )
    result.assert_user_error(shard, "expects")
    assert len(result.err.strip().splitlines()) == 1, result.err


def fit_args(folder: Path, root: Path) -> list[str]:
    return [
        "fit",
        "--config",
        str(ROOT / "recipes" / "pg19-tiny.yaml"),
        "--data.path",
        str(folder),
        "--data.seq_len",
        "64",
        "--data.batch_size",
        "2",
        "--trainer.max_steps",
        "1",
        "--trainer.limit_val_batches",
        "1.0",
        "--trainer.val_check_interval",
        "1",
        "--trainer.num_sanity_val_steps",
        "0",
        "--trainer.enable_progress_bar",
        "false",
        "--trainer.default_root_dir",
        str(root),
        "--model.model.init_args.config.max_seq_len",
        "64",
    ]


def test_fit_stops_on_a_damaged_shard_or_skips_it_when_asked(shards, tmp_path, in_process):
    # every training shard cut: whichever the resampled stream reads first stops the run
    folder = tmp_path / "train-cut"
    shutil.copytree(shards, folder)
    for shard in folder.glob("train-*.tar"):
        shard.write_bytes(shard.read_bytes()[:700])  # inside the first member
    result = in_process(*fit_args(folder, tmp_path / "stop"))
    text = result.assert_user_error(folder, "truncated")
    assert f"{folder}/train-" in text
    # a damaged validation shard (read exactly once, in order) is skipped and counted
    folder, shard = damaged(shards, tmp_path, "val", "mid-member")
    result = in_process(*fit_args(folder, tmp_path / "skip"), "--data.on_bad_shard", "skip")
    assert result.status == 0, result.err
    assert f"skipping bad shard (1 so far): shard {shard}" in result.err
