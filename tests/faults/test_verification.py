"""Data that cannot be checked, or is laid out otherwise than the model expects, is never used
silently: shards without a manifest recording each shard's checksum are refused unless allowed
(one warning then), byte flips under a manifest are always caught, and a checkpoint's layout
options (not just its modality name) must match the shards'."""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from multibyte.checkpoint import export
from multibyte.cli import main as cli
from multibyte.data import ShardError
from multibyte.model import Megabyte, MegabyteConfig
from multibyte.prepared import UnverifiedShards, open_prepared
from tests.faults.conftest import tree
from tests.faults.data import png
from tests.faults.test_damage import fit_args

UNVERIFIED = "cannot be verified"
WARNING = "reading its shards unverified"


def copy_of(shards: Path, folder: Path) -> Path:
    shutil.copytree(shards, folder)
    return folder


def evaluate(checkpoint: Path, data: Path, *extra: str) -> tuple[str, ...]:
    return (
        "evaluate",
        "--ckpt",
        checkpoint,
        "--data",
        data,
        "--no-codecs",
        "--quiet",
        "--device",
        "cpu",
        *extra,
    )


def test_a_folder_without_manifest_is_refused_unless_allowed(
    shards, checkpoint, tmp_path, in_process
):
    folder = copy_of(shards, tmp_path / "bare")
    (folder / "manifest.json").unlink()
    shard = sorted(folder.glob("val-*.tar"))[0]
    data = bytearray(shard.read_bytes())
    data[700] ^= 0x01  # inside the first sample's bytes: the tar still reads
    shard.write_bytes(bytes(data))
    in_process(*evaluate(checkpoint, folder, "--modality", "text")).assert_user_error(
        folder, "manifest.json", "--allow-unverified"
    )
    root = tmp_path / "run"
    in_process(*fit_args(folder, root)).assert_user_error(
        folder, "manifest.json", "--data.allow_unverified true"
    )
    assert not root.exists()  # refused before anything was written
    allowed = in_process(*evaluate(checkpoint, folder, "--modality", "text", "--allow-unverified"))
    assert allowed.status == 0, allowed.err
    warnings = [line for line in allowed.err.splitlines() if WARNING in line]
    assert len(warnings) == 1 and str(folder) in warnings[0], allowed.err


def test_fit_reads_unverified_shards_only_when_allowed(shards, tmp_path, in_process):
    folder = copy_of(shards, tmp_path / "old")
    manifest = json.loads((folder / "manifest.json").read_text())
    del manifest["shard_info"]  # as written before shards were recorded
    (folder / "manifest.json").write_text(json.dumps(manifest))
    in_process(*fit_args(folder, tmp_path / "refused")).assert_user_error(
        folder / "manifest.json", "shard_info", "--data.allow_unverified true"
    )
    allowed = (*fit_args(folder, tmp_path / "run"), "--data.allow_unverified", "true")
    result = in_process(*allowed, "--trainer.limit_val_batches", "1")
    assert result.status == 0, result.err
    assert sum(WARNING in line for line in result.err.splitlines()) == 1, result.err


def test_a_bare_tar_with_a_flipped_byte_is_refused(shards, checkpoint, tmp_path, in_process):
    loose = tmp_path / "loose"
    loose.mkdir()
    tar = loose / "val-000000.tar"
    data = bytearray((shards / "val-000000.tar").read_bytes())
    data[700] ^= 0x20
    tar.write_bytes(bytes(data))
    in_process(*evaluate(checkpoint, tar)).assert_user_error(tar, "--allow-unverified")
    # the same flip in a tar that its folder's manifest lists: caught by its checksum
    folder = copy_of(shards, tmp_path / "listed")
    listed = folder / "val-000000.tar"
    listed.write_bytes(bytes(data))
    in_process(*evaluate(checkpoint, listed)).assert_user_error(listed, "corrupt")


# -- property: every byte flip under a manifest is caught; no manifest is refused -----------


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    pick=st.integers(min_value=0, max_value=10**6),
    offset=st.integers(min_value=0, max_value=10**7),
    flip=st.integers(min_value=1, max_value=255),
)
def test_any_byte_flip_in_a_shard_is_caught(shards, pick, offset, flip):
    tars = sorted(shards.glob("*.tar"))
    with tempfile.TemporaryDirectory() as scratch:
        folder = copy_of(shards, Path(scratch) / "data")
        shard = folder / tars[pick % len(tars)].name
        data = bytearray(shard.read_bytes())
        data[offset % len(data)] ^= flip
        shard.write_bytes(bytes(data))
        split = shard.name.split("-")[0]
        prepared = open_prepared([folder], {"name": "text"})
        with pytest.raises(ShardError, match="corrupt") as caught:
            prepared.sequences(split)
        assert str(shard) in str(caught.value)


@settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(how=st.sampled_from(["no manifest", "no shard_info", "bare tar"]), seed=st.integers(0, 99))
def test_shards_without_checksums_are_refused(shards, how, seed):
    with tempfile.TemporaryDirectory() as scratch:
        folder = copy_of(shards, Path(scratch) / "data")
        tars = sorted(folder.glob("*.tar"))
        paths = [folder]
        if how == "no manifest":
            (folder / "manifest.json").unlink()
        elif how == "no shard_info":
            manifest = json.loads((folder / "manifest.json").read_text())
            del manifest["shard_info"]
            (folder / "manifest.json").write_text(json.dumps(manifest))
        else:
            loose = Path(scratch) / "loose"
            loose.mkdir()
            paths = [loose / tars[seed % len(tars)].name]
            shutil.copy(tars[seed % len(tars)], paths[0])
        before = tree(Path(scratch))
        with pytest.raises(UnverifiedShards, match=UNVERIFIED) as caught:
            open_prepared(paths, {"name": "text"})
        assert str(paths[0]) in str(caught.value)
        assert tree(Path(scratch)) == before
        assert open_prepared(paths, {"name": "text"}, allow_unverified=True).shards


# -- the checkpoint's layout options against the shards' ----------------------------------------


@pytest.fixture(scope="module")
def image_shards(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("pictures")
    for i in range(4):
        png(src / f"p{i}.png", seed=i)
    out = tmp_path_factory.mktemp("image") / "raster"
    argv = [
        "prepare",
        "image",
        "--src",
        str(src),
        "--out",
        str(out),
        "--size",
        "4",
        "--val-fraction",
        "0.5",
        "--seed",
        "0",
        "--quiet",
    ]
    assert cli(argv) == 0
    return out


def image_checkpoint(path: Path, **options: object) -> Path:
    torch.manual_seed(0)
    config = MegabyteConfig(
        patch_size=4,
        max_seq_len=48,
        global_dim=16,
        global_layers=1,
        global_heads=2,
        local_dim=16,
        local_layers=1,
        local_heads=2,
    )
    export(Megabyte(config), path, {"name": "image", "size": 4, **options})
    return path


def test_evaluate_refuses_shards_of_another_layout(image_shards, tmp_path, in_process):
    med = image_checkpoint(tmp_path / "med.ckpt", order="raster", predictor="med")
    result = in_process(*evaluate(med, image_shards))
    text = result.assert_user_error(image_shards, med, "predictor=none", "predictor=med")
    assert len(text.strip().splitlines()) == 1, text
    # a patch size that only places bytes in patch order does not matter in raster order
    same = image_checkpoint(tmp_path / "same.ckpt", order="raster", patch_size=4)
    assert in_process(*evaluate(same, image_shards)).status == 0
    patch = image_checkpoint(tmp_path / "patch.ckpt", order="patch", patch_size=12)
    in_process(*evaluate(patch, image_shards)).assert_user_error("order=raster", "order=patch")


def test_an_edited_manifest_is_noticed(image_shards, tmp_path, in_process):
    folder = copy_of(image_shards, tmp_path / "edited")
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["options"]["predictor"] = "med"  # the shards still hold pixel values
    (folder / "manifest.json").write_text(json.dumps(manifest))
    med = image_checkpoint(tmp_path / "med.ckpt", order="raster", predictor="med")
    in_process(*evaluate(med, folder)).assert_user_error(
        folder / "manifest.json", "predictor=none", "edited"
    )
