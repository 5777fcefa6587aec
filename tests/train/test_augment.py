"""`--data.augment`: augmentations on training batches only; deterministic and resumable."""

from __future__ import annotations

import itertools
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

import modalities
from multibyte.prepare import main as prepare
from multibyte.train.data import ByteDataModule, ConfigError

SMALL = {"name": "image", "size": 16}  # 768 bytes a sample: quick to train on
MODEL = [  # a smaller model of the recipe, eager (compiled training is test_precision's)
    "--model.compile",
    "false",
    "--model.model.init_args.config.global_dim",
    "48",
    "--model.model.init_args.config.local_dim",
    "24",
    "--model.model.init_args.config.max_seq_len",
    "768",
    "--data.modality",
    "{name: image, size: 16}",
    "--data.batch_size",
    "2",
    "--data.val_fraction",
    "0.3",
    "--trainer.log_every_n_steps",
    "1",
    "--trainer.enable_progress_bar",
    "false",
    "--trainer.limit_val_batches",
    "2",
]


@pytest.fixture(scope="module")
def pictures(tmp_path_factory) -> Path:
    """Ten 16x16 noise pictures: no two alike, and none equal to its own mirror."""
    folder = tmp_path_factory.mktemp("pictures")
    rng = np.random.default_rng(5)
    for i in range(10):
        pixels = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
        Image.fromarray(pixels, "RGB").save(folder / f"p{i}.png")
    return folder


def rows(batch: torch.Tensor) -> list[bytes]:
    return [bytes(row.to(torch.uint8).tolist()) for row in batch]


def batches(loader, n: int) -> list[list[bytes]]:
    return [rows(b) for b in itertools.islice(iter(loader), n)]


def module(path, **options) -> ByteDataModule:
    options = {"modality": SMALL, "batch_size": 4, "val_fraction": 0.3, **options}
    return ByteDataModule(str(path), **options)


def assert_rows_are_flipped_or_not(augmented, plain, mirror) -> int:
    """Every augmented row is the plain row or its mirror; returns how many were mirrored."""
    flipped = 0
    for got_batch, plain_batch in zip(augmented, plain, strict=True):
        for got, row in zip(got_batch, plain_batch, strict=True):
            assert got in (row, mirror(row))
            flipped += got != row
    return flipped


# -- configuration --------------------------------------------------------------------------------


def test_an_unknown_name_is_refused_naming_what_the_adapter_has(pictures, text_folder):
    with pytest.raises(ConfigError) as error:
        module(pictures, augment=["xyz"])
    offered = "hflip, vflip, rotate, channels"
    message = f"data.augment: 'xyz' is not an augmentation of image; it has: {offered}"
    assert str(error.value) == message
    with pytest.raises(ConfigError) as error:
        ByteDataModule(str(text_folder), modality={"name": "text"}, seq_len=64, augment=["hflip"])
    assert str(error.value) == "data.augment: 'hflip' is not an augmentation of text; it has: none"


@pytest.mark.parametrize(
    ("augment", "message"),
    [("hflip", "must be a list of names"), (["hflip", "hflip"], "named twice")],
)
def test_a_malformed_list_is_refused(pictures, augment, message):
    with pytest.raises(ConfigError, match=message):
        module(pictures, augment=augment)


def test_pieces_of_samples_are_refused(pictures):
    with pytest.raises(
        ConfigError,
        match="needs whole image samples of 768 bytes, but training sequences are 384 bytes",
    ):
        module(pictures, seq_len=384, augment=["hflip"])


def test_no_list_and_an_empty_list_change_nothing(pictures):
    plain = batches(module(pictures).train_dataloader(), 4)
    assert batches(module(pictures, augment=[]).train_dataloader(), 4) == plain


# -- raw (map-style) data -------------------------------------------------------------------------


def test_training_batches_are_flipped_per_sample_and_validation_never(pictures):
    mirror = modalities.get(**SMALL).mirror
    plain, augmented = module(pictures), module(pictures, augment=["hflip"])
    got = batches(augmented.train_dataloader(), 30)
    flipped = assert_rows_are_flipped_or_not(got, batches(plain.train_dataloader(), 30), mirror)
    assert 30 < flipped < 90  # of 120 rows: Binomial(120, 0.5) is 60 ± 5.5
    # The draws depend on the data module's seed and nothing else: a new module draws the same.
    assert batches(module(pictures, augment=["hflip"]).train_dataloader(), 30) == got
    val = [rows(b) for b in augmented.val_dataloader()]
    assert val and val == [rows(b) for b in plain.val_dataloader()]
    assert [rows(b) for b in augmented.test_dataloader()] == val


def test_a_resumed_loader_augments_exactly_as_the_uninterrupted_one(pictures):
    uninterrupted = batches(module(pictures, augment=["hflip"]).train_dataloader(), 12)
    resumed = module(pictures, augment=["hflip"])
    resumed._start_batch = lambda: 5  # what a resume at step 5 asks for (one micro-batch a step)
    assert batches(resumed.train_dataloader(), 7) == uninterrupted[5:]


def test_numbering_continues_across_epochs(pictures):
    dm = module(pictures, augment=["hflip"], batches_per_epoch=3)
    loader = dm.train_dataloader()
    two_epochs = [rows(b) for b in loader] + [rows(b) for b in loader]  # as Lightning reads
    assert two_epochs == batches(module(pictures, augment=["hflip"]).train_dataloader(), 6)


# -- shard streams and several sources ------------------------------------------------------------


def test_shard_training_batches_are_augmented(pictures, tmp_path):
    out = tmp_path / "shards"
    assert (
        prepare(
            [
                "image",
                "--src",
                str(pictures),
                "--out",
                str(out),
                "--size",
                "16",
                "--val-fraction",
                "0.3",
                "--quiet",
            ]
        )
        == 0
    )
    mirror = modalities.get(**SMALL).mirror
    options = {"modality": None, "shuffle_buffer": 4}
    plain = batches(module(out, **options).train_dataloader(), 20)
    augmented = module(out, augment=["hflip"], **options)
    flipped = assert_rows_are_flipped_or_not(
        batches(augmented.train_dataloader(), 20), plain, mirror
    )
    assert 20 < flipped < 60  # of 80 rows
    val = [rows(b) for b in augmented.val_dataloader()]
    assert val and val == [rows(b) for b in module(out, **options).val_dataloader()]


def sources(pictures: Path, text_folder: Path, augment: bool = True) -> list[dict]:
    image = {"path": str(pictures), "modality": SMALL}
    return [
        {**image, "augment": ["hflip"]} if augment else image,
        {"path": str(text_folder), "modality": "text"},
    ]


def test_each_source_has_its_own_list_applied_after_the_header(pictures, text_folder):
    def mixture(augment: bool) -> ByteDataModule:
        entries = sources(pictures, text_folder, augment)
        return ByteDataModule(sources=entries, patch_size=12, batch_size=4, val_fraction=0.3)

    augmented, plain = mixture(True), mixture(False)
    table = augmented.mixture.table
    image_header, text_header = (bytes(h) for h in table.headers)
    mirror = modalities.get(**SMALL).mirror
    flipped = {image_header: 0, text_header: 0}
    got = batches(augmented.train_dataloader(), 30)
    for got_batch, plain_batch in zip(got, batches(plain.train_dataloader(), 30), strict=True):
        for row, before in zip(got_batch, plain_batch, strict=True):
            header, data = before[: table.length], before[table.length :]
            if row != before:  # only an image row, its data mirrored, its header untouched
                assert header == image_header and row == header + mirror(data)
            flipped[header] += row != before
    assert flipped[text_header] == 0 and 20 < flipped[image_header]
    assert flipped[image_header] < sum(row.startswith(image_header) for b in got for row in b)
    val = [rows(b) for b in augmented.val_dataloader()]
    assert val and val == [rows(b) for b in plain.val_dataloader()]


def test_sources_refuse_data_augment_and_an_augmentation_their_adapter_lacks(pictures, text_folder):
    with pytest.raises(ConfigError, match="data.augment does not apply to data.sources"):
        ByteDataModule(sources=sources(pictures, text_folder), augment=["hflip"])
    entries = [
        sources(pictures, text_folder)[0],
        {**sources(pictures, text_folder)[1], "augment": ["hflip"]},
    ]
    with pytest.raises(ConfigError) as error:
        ByteDataModule(sources=entries, patch_size=12)
    assert str(error.value) == (
        f"data.sources: {text_folder}: augment: 'hflip' is not an augmentation of text; "
        "it has: none"
    )


# -- through the command line ---------------------------------------------------------------------


def test_fit_with_augment_through_the_cli(fit, recipes, pictures, tmp_path):
    status = fit(
        "--config",
        recipes / "imagenet64-tiny.yaml",
        "--data.path",
        pictures,
        *MODEL,
        "--data.augment",
        "[hflip]",
        "--trainer.max_steps",
        3,
        "--trainer.val_check_interval",
        3,
        "--trainer.default_root_dir",
        tmp_path,
    )
    assert status == 0
    saved = (tmp_path / "checkpoints" / "config.yaml").read_text()
    assert "augment:\n  - hflip" in saved
    assert (tmp_path / "checkpoints" / "last.ckpt").is_file()


def test_text_refuses_augment_with_one_line_and_status_2(recipes, text_folder, tmp_path):
    command = [
        sys.executable,
        "-m",
        "multibyte.cli",
        "fit",
        "--config",
        str(recipes / "pg19-tiny.yaml"),
        "--data.path",
        str(text_folder),
        "--data.augment",
        "[hflip]",
        "--trainer.default_root_dir",
        str(tmp_path),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line != "Seed set to 0"]  # Lightning's
    assert lines == [
        "multibyte fit: configuration error: data.augment: 'hflip' is not an augmentation of "
        "text; it has: none"
    ]
    assert not (tmp_path / "checkpoints").exists()


def test_resume_with_augment_is_exact(fit, metrics, recipes, pictures, tmp_path):
    read_metrics, column = metrics
    common = [
        "--config",
        recipes / "imagenet64-tiny.yaml",
        "--data.path",
        pictures,
        *MODEL,
        "--trainer.max_steps",
        6,
        "--trainer.val_check_interval",
        3,
    ]
    runs = {name: tmp_path / name for name in ("full", "resumed", "plain")}
    augment = ["--data.augment", "[hflip]"]
    assert fit(*common, *augment, "--trainer.default_root_dir", runs["full"]) == 0
    halfway = runs["full"] / "checkpoints" / "epoch=0-step=3.ckpt"
    resume = ["--ckpt_path", halfway, "--trainer.default_root_dir", runs["resumed"]]
    assert fit(*common, *augment, *resume) == 0
    plain = ["--data.augment", "[]"]  # the recipe itself flips: turn it off
    assert fit(*common, *plain, "--trainer.default_root_dir", runs["plain"]) == 0
    bpb = {name: column(read_metrics(root), "train/bpb") for name, root in runs.items()}
    assert sorted(bpb["resumed"]) == [3, 4, 5]
    for step in (3, 4, 5):
        assert bpb["resumed"][step] == pytest.approx(bpb["full"][step], abs=1e-6), step
    # ... and augmentation was really on: without it the same steps see other bytes.
    assert any(abs(bpb["plain"][s] - bpb["full"][s]) > 1e-4 for s in range(6))
