"""``multibyte prepare`` given bad inputs, run as a user runs it (a subprocess: no torch import).

Every bad file is skipped with a reason that names it (stderr and manifest.json) while the good
ones are written; a prepare that writes nothing, missing inputs and unwritable output folders
exit 2 with one line; splits never overlap nor leave training empty.
"""

from __future__ import annotations

import json
from pathlib import Path

from multibyte.data import read_samples
from tests.faults.conftest import console
from tests.faults.data import audio_with_bad_files, images_with_bad_files, wav


def manifest(out: Path) -> dict:
    return json.loads((out / "manifest.json").read_text())


def test_bad_images_and_audio_are_skipped_by_name_and_the_good_ones_kept(tmp_path):
    for modality, make in (("image", images_with_bad_files), ("audio", audio_with_bad_files)):
        bad = make(tmp_path / modality)
        out = tmp_path / f"out-{modality}"
        result = console("prepare", modality, "--src", tmp_path / modality, "--out", out, "--quiet")
        result.assert_user_error(*bad.values(), status=0)
        written = manifest(out)
        assert written["complete"] is True
        assert {Path(s["source"]).name for s in written["skipped"]} == set(bad)
        assert len(read_samples(out, "train")) + len(read_samples(out, "val")) == 2
        assert console("verify", out).status == 0

    # only bad inputs: nothing written is an error, not a success
    only_bad = tmp_path / "only-bad"
    only_bad.mkdir()
    (only_bad / "x.wav").write_bytes(b"")
    console(
        "prepare", "audio", "--src", only_bad, "--out", tmp_path / "none", "--quiet"
    ).assert_user_error(only_bad / "x.wav", "no samples written")


def test_missing_empty_and_unwritable_places(tmp_path):
    missing = tmp_path / "nowhere"
    console(
        "prepare", "text", "--src", missing, "--out", tmp_path / "o1", "--quiet"
    ).assert_user_error(missing, "does not exist")
    empty = tmp_path / "empty"
    empty.mkdir()
    console(
        "prepare", "text", "--src", empty, "--out", tmp_path / "o2", "--quiet"
    ).assert_user_error(empty, "nothing to prepare", "holds no files")
    assert not (tmp_path / "o2").exists()
    book = tmp_path / "book.txt"
    book.write_text("words " * 100)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    console(
        "prepare", "text", "--src", book, "--out", blocker / "sub", "--quiet"
    ).assert_user_error(blocker / "sub", "not writable")
    # existing shards are never silently replaced, and stay as they were
    out = tmp_path / "o3"
    assert console("prepare", "text", "--src", book, "--out", out, "--quiet").status == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    console("prepare", "text", "--src", empty, "--out", out, "--quiet").assert_user_error(
        out, "--overwrite"
    )
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


def test_one_input_is_cut_inside_so_both_splits_have_data(tmp_path):
    book = tmp_path / "book.txt"
    book.write_bytes(bytes(range(256)) * 40)
    out = tmp_path / "text"
    result = console(
        "prepare", "text", "--src", book, "--out", out, "--val-fraction", "0.1", "--quiet"
    )
    result.assert_user_error(book, "last 10% of bytes go to validation", status=0)
    train = b"".join(s["bin"] for s in read_samples(out, "train"))
    val = b"".join(s["bin"] for s in read_samples(out, "val"))
    assert train and val and len(val) < len(train)
    whole = book.read_bytes()
    assert (train + val).startswith(whole)  # the document, cut once, then its separator
    # audio: one recording is cut on a sample boundary (2 bytes per pcm16 sample)
    wav(tmp_path / "one.wav", seconds=1.0)
    out = tmp_path / "audio"
    result = console(
        "prepare",
        "audio",
        "--src",
        tmp_path / "one.wav",
        "--out",
        out,
        "--val-fraction",
        "0.25",
        "--quiet",
    )
    result.assert_user_error("one.wav", "go to validation", status=0)
    sizes = {s: sum(len(x["bin"]) for x in read_samples(out, s)) for s in ("train", "val")}
    assert sizes["train"] > 0 and sizes["val"] > 0 and sizes["val"] % 2 == 0


def test_val_src_inside_src_goes_to_validation_only(tmp_path):
    data = tmp_path / "ds"
    (data / "val").mkdir(parents=True)
    for i in range(6):
        (data / f"t{i}.txt").write_text(f"train document {i} " * 20)
    for i in range(2):
        (data / "val" / f"v{i}.txt").write_text(f"validation document {i} " * 20)
    out = tmp_path / "out"
    result = console(
        "prepare",
        "text",
        "--src",
        data,
        "--val-src",
        data / "val",
        "--out",
        out,
        "--val-fraction",
        "0",
        "--quiet",
    )
    result.assert_user_error("also under --src", "validation only", status=0)
    sources = {
        s: {json.loads(x["json"])["source"] for x in read_samples(out, s)} for s in ("train", "val")
    }
    assert not sources["train"] & sources["val"]
    assert {Path(p).name for p in sources["val"]} == {"v0.txt", "v1.txt"}
    assert len(sources["train"]) == 6
