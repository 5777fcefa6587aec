"""`multibyte evaluate` end to end: reports, plots, and clear errors on bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from multibyte.cli import main as cli
from multibyte.evaluation.report import bits_map


def evaluate(*argv):
    return cli(["evaluate", *map(str, argv), "--quiet"])


def test_image_files_report_json_markdown_and_plots(image_ckpt, image_folder, tmp_path, capsys):
    (tmp_path / "bad").mkdir()
    broken = tmp_path / "bad" / "broken.png"
    broken.write_bytes(b"not a png at all")
    out, md, plots = tmp_path / "r.json", tmp_path / "r.md", tmp_path / "plots"
    code = evaluate(
        "--ckpt",
        image_ckpt,
        "--data",
        image_folder,
        broken,
        "--strided",
        "--sliding",
        "--context",
        "96",
        "--json",
        out,
        "--markdown",
        md,
        "--plots",
        plots,
    )
    assert code == 0
    printed = capsys.readouterr().out
    report = json.loads(out.read_text())
    assert report["modality"] == "image" and report["unit"] == "bits/dim"
    assert report["sequences"] == 5 and report["bytes"] == 5 * 192
    assert report["value_in_unit"] == report["bits_per_byte"]
    for key in ("bytes", "bits_per_byte", "unit", "value_in_unit", "ci95", "codecs"):
        assert key in report
    lo, hi = report["ci95"]
    assert lo <= report["bits_per_byte"] <= hi
    # Each mode on its own, with its cost; basic is never mixed with the others.
    assert report["basic"]["bits_per_byte"] == report["bits_per_byte"]
    assert report["strided"]["cost"]["relative_bytes_processed"] > 1.9
    assert report["sliding"]["min_context"] >= 96
    assert report["skipped"] == [{"source": str(broken), "reason": report["skipped"][0]["reason"]}]
    assert "broken.png" in printed and "| png |" in md.read_text()
    for name in ("patch_position.png", "along_sequence.png", "pixel_bits.png"):
        with Image.open(plots / name) as image:
            assert image.format == "PNG"


def test_audio_units_and_lengths_not_divisible(audio_ckpt, audio_folder, tmp_path):
    out = tmp_path / "r.json"
    assert evaluate("--ckpt", audio_ckpt, "--data", audio_folder, "--json", out) == 0
    report = json.loads(out.read_text())
    # 600-byte files cut into 256-byte clips (tail kept): 3 x (256 + 256 + 88) bytes.
    assert report["bytes"] == 3 * 600 and report["sequences"] == 9
    assert report["unit"] == "bits/sample"
    assert report["value_in_unit"] == pytest.approx(2 * report["bits_per_byte"], rel=1e-15)
    assert "flac" in report["codecs"]


def test_pixel_heat_map_is_in_image_space(stand_ins):
    import modalities
    from multibyte.evaluation import evaluate_model

    q = np.full(256, 1e-3)
    q[0] = 1 - 255e-3  # byte 0 is cheap, anything else costs ~10 bits
    for order in ("raster", "patch"):
        adapter = modalities.get("image", size=8, order=order, patch_size=12)
        pixels = np.zeros((8, 8, 3), np.uint8)
        pixels[5, 2] = 255
        model = stand_ins.FixedQ(q, patch_size=12, max_seq_len=192)
        evaluation = evaluate_model(model, [adapter.encode(pixels)], adapter=adapter)
        heat = bits_map(evaluation)
        assert heat.name == "pixel_bits" and heat.values.shape == (8, 8)
        assert np.unravel_index(heat.values.argmax(), heat.values.shape) == (5, 2)


def test_text_shards_and_the_stream(trained_text_ckpt, tmp_path, stand_ins):
    from multibyte.prepare import main as prepare

    src = tmp_path / "books"
    src.mkdir()
    for i in range(3):
        (src / f"b{i}.txt").write_text(stand_ins.TEXT[: 50 + 17 * i])
    shards = tmp_path / "shards"
    prepare(
        [
            "text",
            "--src",
            str(src),
            "--out",
            str(shards),
            "--val-fraction",
            "0",
            "--workers",
            "1",
            "--quiet",
        ]
    )
    out = tmp_path / "r.json"
    code = evaluate(
        "--ckpt",
        trained_text_ckpt,
        "--data",
        shards,
        "--split",
        "train",
        "--strided",
        "--json",
        out,
        "--words",
        "--seq-len",
        "32",
    )
    assert code == 0
    report = json.loads(out.read_text())
    stream_bytes = sum(50 + 17 * i + 2 for i in range(3))  # documents + separators
    assert report["bytes"] == stream_bytes and report["stream"] is True
    assert report["basic"]["ci_groups"] == -(-stream_bytes // 32)
    assert report["strided"]["bits_per_byte"] != report["bits_per_byte"]
    assert report["word_perplexity"] > 1


def test_missing_checkpoint_and_data_name_the_path(image_ckpt, image_folder, tmp_path, capsys):
    missing = tmp_path / "nope.ckpt"
    assert evaluate("--ckpt", missing, "--data", image_folder) == 2
    assert str(missing) in capsys.readouterr().err
    gone = tmp_path / "no-data"
    assert evaluate("--ckpt", image_ckpt, "--data", gone) == 2
    assert str(gone) in capsys.readouterr().err


def test_not_a_checkpoint(image_folder, tmp_path, capsys):
    fake = tmp_path / "fake.ckpt"
    fake.write_bytes(b"garbage")
    assert evaluate("--ckpt", fake, "--data", image_folder) == 2
    assert "fake.ckpt" in capsys.readouterr().err


def test_checkpoint_of_another_modality_needs_modality(image_ckpt, audio_folder, tmp_path, capsys):
    assert evaluate("--ckpt", image_ckpt, "--data", audio_folder) == 2
    err = capsys.readouterr().err
    assert "audio" in err and "--modality" in err


def test_shards_of_another_modality_need_modality(audio_ckpt, image_folder, tmp_path, capsys):
    from multibyte.prepare import main as prepare

    shards = tmp_path / "img"
    prepare(
        [
            "image",
            "--src",
            str(image_folder),
            "--out",
            str(shards),
            "--size",
            "8",
            "--val-fraction",
            "0",
            "--workers",
            "1",
            "--quiet",
        ]
    )
    assert evaluate("--ckpt", audio_ckpt, "--data", shards, "--split", "train") == 2
    assert "--modality image" in capsys.readouterr().err
    # No val shards at all: the message says which splits exist.
    assert evaluate("--ckpt", audio_ckpt, "--data", shards, "--modality", "image") == 2
    assert "train" in capsys.readouterr().err


def test_empty_data_is_a_clear_error(image_ckpt, tmp_path, capsys):
    empty = tmp_path / "empty"
    empty.mkdir()
    assert evaluate("--ckpt", image_ckpt, "--data", empty) == 2
    assert "no data to evaluate" in capsys.readouterr().err
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x00" * 10)
    assert evaluate("--ckpt", image_ckpt, "--data", bad) == 2
    err = capsys.readouterr().err
    assert "no data to evaluate" in err and "bad.png" in err


def test_word_counts_only_where_the_adapter_has_words(image_ckpt, image_folder, capsys):
    assert evaluate("--ckpt", image_ckpt, "--data", image_folder, "--words") == 2
    assert "word counts do not apply to image" in capsys.readouterr().err


def test_raw_files_without_a_known_modality_need_modality(tmp_path, stand_ins, capsys):
    checkpoint = stand_ins.make_ckpt(tmp_path / "bare.ckpt", None, 64)
    blob = tmp_path / "blob.bin"
    blob.write_bytes(bytes(range(100)))
    assert evaluate("--ckpt", checkpoint, "--data", blob) == 2
    assert "pass --modality" in capsys.readouterr().err
    out = tmp_path / "r.json"
    argv = ["--ckpt", checkpoint, "--data", blob, "--modality", "text", "--json", out]
    assert evaluate(*argv) == 0
    # A file named directly is text whatever its suffix: the document and its separator.
    assert json.loads(out.read_text())["bytes"] == 100 + 2
