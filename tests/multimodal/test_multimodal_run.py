"""One model on images, audio and text: fit, exact resume, evaluate per modality, sample."""

from __future__ import annotations

import json
import wave
from pathlib import Path

import pytest
import torch
from PIL import Image

import modalities
from modalities import Prompt
from multibyte.cli import main
from tests.conftest import column, read_metrics

TINY = [
    "--model.model.init_args.config.global_dim",
    "32",
    "--model.model.init_args.config.local_dim",
    "16",
    "--model.model.init_args.config.max_seq_len",
    "1200",
    "--model.model.init_args.config.dropout",
    "0.1",
    "--data.batch_size",
    "2",
    "--data.val_batch_size",
    "4",
    "--trainer.log_every_n_steps",
    "1",
    "--trainer.enable_progress_bar",
    "false",
    "--trainer.limit_val_batches",
    "3",
]


def sources(shards: dict[str, Path]) -> str:
    """Shard folders: 16x16 images (768 bytes, used whole), audio prepared with the default
    --seq-len 524288 (one 32,000-byte clip a file, cut into windows) and text."""
    return (
        f"[{{path: {shards['image']}, weight: 2}}, {{path: {shards['audio']}, weight: 1}}, "
        f"{{path: {shards['text']}, weight: 1}}]"
    )


def fit(*args) -> int:
    return main(["fit", *map(str, args)])


@pytest.fixture(scope="module")
def trained(shards, tmp_path_factory):
    root = tmp_path_factory.mktemp("multimodal")
    common = [
        "--config",
        Path(__file__).parents[2] / "recipes" / "multimodal-tiny.yaml",
        "--data.sources",
        sources(shards),
        *TINY,
        "--trainer.max_steps",
        8,
        "--trainer.val_check_interval",
        4,
    ]
    assert fit(*common, "--trainer.default_root_dir", root / "full") == 0
    return root, common


def test_training_logs_bpb_per_modality_and_stores_the_mixture(trained):
    root, _ = trained
    rows = read_metrics(root / "full")
    for name in ("val/bpb", "val/bpb_image", "val/bpb_audio", "val/bpb_text", "val/header_bpb"):
        assert column(rows, name), name
    logged = set().union(*(column(rows, f"train/bpb_{m}") for m in ("image", "audio", "text")))
    assert logged and column(rows, "train/bpb")
    entry = torch.load(root / "full" / "checkpoints" / "last.ckpt", weights_only=True)
    modality = entry["multibyte"]["modality"]
    assert modality["name"] == "mixture" and modality["header_length"] % 12 == 0
    assert [m["name"] for m in modality["modalities"]] == ["image", "audio", "text"]
    assert modality["seq_len"] == 1200  # the model's max_seq_len: header + 1,116 data bytes
    assert modality["modalities"][1]["seq_len"] == 524288


def test_resume_gives_the_same_losses_after_the_checkpoint(trained):
    root, common = trained
    halfway = root / "full" / "checkpoints" / "epoch=0-step=4.ckpt"
    assert halfway.is_file()
    resumed = root / "resumed"
    assert fit(*common, "--trainer.default_root_dir", resumed, "--ckpt_path", halfway) == 0
    expected = column(read_metrics(root / "full"), "train/bpb")
    got = column(read_metrics(resumed), "train/bpb")
    later = [step for step in expected if step >= 4]
    assert later and sorted(got) == later
    for step in later:
        assert got[step] == pytest.approx(expected[step], abs=1e-6), step


def test_evaluate_gives_a_report_per_modality(trained, shards):
    root, _ = trained
    out = root / "evaluation.json"
    ckpt = root / "full" / "checkpoints" / "last.ckpt"
    status = main(
        [
            "evaluate",
            "--ckpt",
            str(ckpt),
            "--data",
            str(shards["image"]),
            str(shards["audio"]),
            str(shards["text"]),
            "--limit",
            "2",
            "--quiet",
            "--json",
            str(out),
            "--device",
            "cpu",
        ]
    )
    assert status == 0
    reports = json.loads(out.read_text())
    assert [r["modality"] for r in reports] == ["image", "audio", "text"]
    units = [r["unit"] for r in reports]
    assert units == ["bits/dim", "bits/sample", "bits/byte"]
    for r in reports:
        assert {"bits_per_byte", "value_in_unit", "codecs", "ci95"} <= set(r)
        assert 0 < r["header_bits_per_byte"] and r["header_bytes"] % 12 == 0
    assert "flac" in reports[1]["codecs"] and "png" in reports[0]["codecs"]


def test_sample_each_modality_from_one_checkpoint(trained):
    root, _ = trained
    ckpt = str(root / "full" / "checkpoints" / "last.ckpt")
    common = ["--ckpt", ckpt, "--seed", "0", "--quiet", "--n", "2"]
    assert main(["sample", *common, "--modality", "image", "--out", str(root / "s.png")]) == 0
    assert (
        main(
            [
                "sample",
                *common,
                "--modality",
                "audio",
                "--out",
                str(root / "s.wav"),
                "--max-new-bytes",
                "200",
            ]
        )
        == 0
    )
    assert (
        main(
            [
                "sample",
                *common,
                "--modality",
                "text",
                "--out",
                str(root / "s.txt"),
                "--max-new-bytes",
                "100",
            ]
        )
        == 0
    )
    # the same grid of two 16x16 images (the model's size) drawn from known bytes
    adapter = modalities.get(name="image", size=16)
    adapter.render([bytes(768)] * 2, root / "reference.png", Prompt())
    with Image.open(root / "s.png") as grid, Image.open(root / "reference.png") as reference:
        assert grid.size == reference.size
    for i in range(2):
        with wave.open(str(root / f"s-{i}.wav")) as clip:
            assert clip.getframerate() == 16000 and clip.getnframes() == 100
        (root / f"s-{i}.txt").read_bytes().decode("utf-8", errors="replace")
    assert main(["sample", *common, "--out", str(root / "x.txt")]) == 2  # --modality required
