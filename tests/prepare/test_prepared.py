"""open_prepared: shards or raw files, which split, which modality, and whether they agree."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile
from PIL import Image

from modalities.text import SEPARATOR
from multibyte.data import read_samples
from multibyte.prepare import main as prepare
from multibyte.prepared import (
    ModalityMismatch,
    ModalityUnknown,
    PreparedError,
    is_shards,
    open_prepared,
)


@pytest.fixture(scope="module")
def books(tmp_path_factory):
    folder = tmp_path_factory.mktemp("books")
    for i in range(4):
        (folder / f"b{i}.txt").write_bytes(bytes([97 + i]) * (30 + i))
    return folder


@pytest.fixture(scope="module")
def pictures(tmp_path_factory):
    folder = tmp_path_factory.mktemp("pictures")
    rng = np.random.default_rng(0)
    for i in range(3):
        Image.fromarray(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    return folder


@pytest.fixture(scope="module")
def text_shards(books, tmp_path_factory):
    out = tmp_path_factory.mktemp("shards") / "text"
    argv = [
        "text",
        "--src",
        str(books),
        "--out",
        str(out),
        "--val-fraction",
        "0.5",
        "--chunk-size",
        "7",
        "--workers",
        "1",
        "--quiet",
    ]
    assert prepare(argv) == 0
    return out


def test_shards_give_each_split_as_one_stream(text_shards):
    prepared = open_prepared([text_shards], {"name": "text", "patch_size": 4})
    assert prepared.shards and prepared.stream and prepared.folder == text_shards
    assert prepared.adapter.options == {"name": "text", "patch_size": 8}  # the manifest's
    for split in ("train", "val"):
        chunks = [s["bin"] for s in read_samples(text_shards, split)]
        assert prepared.sequences(split) == [b"".join(chunks)]
    whole = b"".join(seq for split in ("train", "val") for seq in prepared.sequences(split))
    assert whole.count(SEPARATOR) == 4


def test_options_the_shards_do_not_hold_are_named_once_not_dropped_silently(text_shards, capsys):
    open_prepared([text_shards], {"name": "text", "patch_size": 8}, name_unmet=True)  # they hold it
    open_prepared([text_shards], {"name": "text", "patch_size": 4})  # a checkpoint's: its own P
    assert capsys.readouterr().err == ""
    prepared = open_prepared([text_shards], {"name": "text", "patch_size": 4}, name_unmet=True)
    assert prepared.adapter.options["patch_size"] == 8  # the bytes are as the shards say
    assert capsys.readouterr().err == (
        f"multibyte: {text_shards}: the shards hold patch_size=8; patch_size=4 does not apply "
        "(prepare them with those options to use it)\n"
    )


def test_an_option_older_shards_lack_is_its_default_and_named(pictures, tmp_path, capsys):
    out = tmp_path / "old"
    argv = ["image", "--src", str(pictures), "--out", str(out), "--size", "4", "--quiet"]
    assert prepare([*argv, "--val-fraction", "0.5", "--workers", "1"]) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    del manifest["options"]["predictor"]  # as written before the option existed
    (out / "manifest.json").write_text(json.dumps(manifest))
    wanted = {"name": "image", "size": 4, "predictor": "med"}
    prepared = open_prepared([out], wanted, name_unmet=True)
    assert prepared.adapter.options["predictor"] == "none"  # the bytes are pixels
    assert capsys.readouterr().err == (
        f"multibyte: {out}: the shards hold predictor=none; predictor=med does not apply "
        "(prepare them with those options to use it)\n"
    )


def test_raw_files_split_exactly_as_prepare_does(books, text_shards):
    manifest = json.loads((text_shards / "manifest.json").read_text())
    prepared = open_prepared([books], {"name": "text"}, val_fraction=manifest["val_fraction"])
    assert not prepared.shards and prepared.stream
    for split in ("train", "val"):
        assert prepared.sequences(split) == open_prepared([text_shards]).sequences(split)
    assert prepared.skipped == []


def test_bare_tar_files_are_shards_read_whatever_their_split(text_shards):
    tars = sorted(text_shards.glob("*.tar"))
    assert is_shards(tars) and not is_shards([text_shards, text_shards])
    prepared = open_prepared(tars, {"name": "text"})
    assert prepared.shards and prepared.folder is None
    prepared.require_split("test")  # no folder: nothing to check
    assert len(prepared.sequences("train")) == 1


def test_a_missing_split_names_the_splits_found(text_shards, tmp_path):
    prepared = open_prepared([text_shards])
    with pytest.raises(PreparedError, match=r"no 'test' shards in .*splits found: train, val"):
        prepared.sequences("test")


def test_modality_precedence_and_agreement(text_shards, pictures):
    # The manifest's modality disagrees with the expected one: an error unless overridden.
    with pytest.raises(ModalityMismatch) as caught:
        open_prepared([text_shards], {"name": "image", "size": 4})
    assert (caught.value.found, caught.value.expected, caught.value.shards) == (
        "text",
        "image",
        True,
    )
    forced = open_prepared([text_shards], {"name": "image", "size": 4}, override="image")
    assert forced.adapter.options["size"] == 4 and forced.stream  # the bytes are still a stream
    # Raw files: their suffixes say which modality they are.
    with pytest.raises(ModalityMismatch, match="look like image, not audio"):
        open_prepared([pictures], {"name": "audio"})
    assert open_prepared([pictures], {"name": "audio"}, override="image").adapter.name == "image"
    assert open_prepared([pictures]).adapter.options["size"] == 64  # guessed, with defaults
    # An override of the same name keeps the expected options.
    same = open_prepared([pictures], {"name": "image", "size": 4}, override="image")
    assert same.adapter.options["size"] == 4


def test_no_modality_anywhere_is_unknown(tmp_path):
    (tmp_path / "data.bin").write_bytes(b"\x00\x01")
    with pytest.raises(ModalityUnknown):
        open_prepared([tmp_path])
    with pytest.raises(ModalityUnknown):
        open_prepared([])  # sampling a checkpoint that stores no modality
    assert open_prepared([], {"name": "audio", "sample_rate": 8000}).adapter.sample_rate == 8000
    assert open_prepared([], {"name": "audio"}, override="text").adapter.name == "text"


def test_bad_paths_and_names_fail_first(tmp_path, books):
    with pytest.raises(PreparedError, match="data path not found"):
        open_prepared([tmp_path / "nope"], {"name": "text"})
    with pytest.raises(ValueError, match="unknown modality 'video'"):
        open_prepared([books], {"name": "video"})


def test_raw_skips_are_reported_after_encoding(tmp_path):
    soundfile.write(tmp_path / "ok.wav", np.zeros(100, np.float32), 8000, subtype="PCM_16")
    (tmp_path / "bad.wav").write_bytes(b"RIFF....")
    (tmp_path / "notes.txt").write_text("hello")  # another modality's file: ignored by guessing
    prepared = open_prepared([tmp_path], {"name": "audio", "sample_rate": 8000, "seq_len": 64})
    assert [len(s) for s in prepared.sequences("train")] == [64, 64, 64, 8]
    reasons = {s["source"].rsplit("/", 1)[-1]: s["reason"] for s in prepared.skipped}
    assert set(reasons) == {"bad.wav", "notes.txt"}
    assert "unsupported extension '.txt'" in reasons["notes.txt"]
