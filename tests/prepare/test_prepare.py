from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

import modalities
from modalities.text import SEPARATOR
from multibyte.data import read_samples
from multibyte.prepare import main


def _manifest(out):
    return json.loads((out / "manifest.json").read_text())


def _all(out, splits=("train", "val")):
    return [s for split in splits for s in read_samples(out, split)]


def _image_inputs(tmp_path):
    src = tmp_path / "imgs"
    src.mkdir()
    rng = np.random.default_rng(0)
    expected = {}
    for i in range(6):
        array = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
        path = src / f"ok{i}.{'png' if i % 2 else 'webp'}"
        Image.fromarray(array).save(path, lossless=True)
        expected[str(path)] = modalities.get("image", size=8, order="patch").encode_file(path)
    # bad inputs: truncated PNG, JPEG with a garbage body, zero-byte file, unsupported extension
    Image.new("RGB", (8, 8)).save(src / "trunc.png")
    (src / "trunc.png").write_bytes((src / "trunc.png").read_bytes()[:30])
    (src / "garbage.jpg").write_bytes(b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4)
    (src / "empty.png").write_bytes(b"")
    (src / "notes.xyz").write_bytes(b"hello")
    return src, expected


@pytest.mark.parametrize("workers", [1, 2])
def test_image_folder_end_to_end(tmp_path, workers):
    src, expected = _image_inputs(tmp_path)
    out = tmp_path / "out"
    argv = ["image", "--src", str(src), "--out", str(out), "--size", "8", "--order", "patch"]
    argv += ["--val-fraction", "0.3", "--workers", str(workers), "--shard-size", "2", "--quiet"]
    assert main(argv) == 0
    manifest = _manifest(out)
    assert manifest["complete"] is True
    assert manifest["options"] == {
        "name": "image",
        "size": 8,
        "order": "patch",
        "patch_size": 12,
        "predictor": "none",
    }
    assert sum(manifest["counts"].values()) == 6
    assert manifest["total_bytes"] == 6 * 8 * 8 * 3
    skipped = {s["source"].rsplit("/", 1)[-1]: s["reason"] for s in manifest["skipped"]}
    assert set(skipped) == {"trunc.png", "garbage.jpg", "empty.png", "notes.xyz"}
    assert "empty file" in skipped["empty.png"]
    assert "unsupported extension" in skipped["notes.xyz"]
    samples = _all(out)
    assert [s["__key__"] for s in samples] == sorted(s["__key__"] for s in samples)
    for sample in samples:
        meta = json.loads(sample["json"])
        assert meta["modality"] == "image" and meta["options"] == manifest["options"]
        assert sample["bin"] == expected[meta["source"]]
    names = sorted(p.name for p in out.iterdir())
    assert all(n == "manifest.json" or n.endswith(".tar") for n in names)
    assert "train-000000.tar" in names
    assert len(manifest["shards"]["train"]) == (manifest["counts"]["train"] + 1) // 2


def test_split_is_deterministic_and_worker_independent(tmp_path):
    src, _ = _image_inputs(tmp_path)
    runs = []
    for i, workers in enumerate([1, 2]):
        out = tmp_path / f"o{i}"
        argv = ["image", "--src", str(src), "--out", str(out), "--size", "8", "--quiet"]
        assert main([*argv, "--val-fraction", "0.5", "--seed", "7", "--workers", str(workers)]) == 0
        runs.append({s: [x["bin"] for x in read_samples(out, s)] for s in ("train", "val")})
    assert runs[0] == runs[1]
    assert runs[0]["val"] and runs[0]["train"]


def test_npz_end_to_end(tmp_path):
    rng = np.random.default_rng(1)
    hwc = rng.integers(0, 256, (5, 8, 8, 3), dtype=np.uint8)
    planar = hwc.transpose(0, 3, 1, 2).reshape(5, -1)
    np.savez(tmp_path / "train_data_batch_1.npz", data=planar, labels=np.arange(1, 6))
    np.savez(tmp_path / "nodata.npz", labels=np.arange(3))
    np.savez(tmp_path / "wide.npz", data=np.zeros((2, 100), np.uint8))
    out = tmp_path / "out"
    argv = [
        "image",
        "--src",
        str(tmp_path / "train_data_batch_1.npz"),
        str(tmp_path / "nodata.npz"),
    ]
    argv += [str(tmp_path / "wide.npz"), "--out", str(out), "--size", "8", "--val-fraction", "0"]
    assert main([*argv, "--quiet", "--workers", "2"]) == 0
    samples = read_samples(out, "train")
    assert [s["bin"] for s in samples] == [hwc[i].tobytes() for i in range(5)]
    assert [json.loads(s["json"])["label"] for s in samples] == [1, 2, 3, 4, 5]
    reasons = " ".join(s["reason"] for s in _manifest(out)["skipped"])
    assert "no 'data'" in reasons and "width 100" in reasons


def test_npz_resized(tmp_path):
    hwc = np.full((2, 8, 8, 3), 200, np.uint8)
    np.savez(tmp_path / "b.npz", data=hwc.transpose(0, 3, 1, 2).reshape(2, -1))
    out = tmp_path / "out"
    argv = ["image", "--src", str(tmp_path / "b.npz"), "--out", str(out), "--size", "4"]
    assert main([*argv, "--val-fraction", "0", "--quiet"]) == 0
    assert [s["bin"] for s in read_samples(out, "train")] == [bytes([200] * 48)] * 2


def test_text_end_to_end(tmp_path):
    src = tmp_path / "books"
    src.mkdir()
    docs = {f"b{i}.txt": bytes([65 + i]) * (10 + i) + b"\xff\xfe" for i in range(5)}
    for name, data in docs.items():
        (src / name).write_bytes(data)
    (src / "empty.txt").write_bytes(b"")
    out = tmp_path / "out"
    argv = ["text", "--src", str(src), "--out", str(out), "--chunk-size", "4", "--quiet"]
    assert main([*argv, "--val-fraction", "0.4", "--seed", "3"]) == 0
    manifest = _manifest(out)
    assert manifest["stream"] is True and manifest["separator_hex"] == SEPARATOR.hex()
    by_source: dict[str, bytes] = {}
    for sample in _all(out):
        assert len(sample["bin"]) <= 4
        source = json.loads(sample["json"])["source"].rsplit("/", 1)[-1]
        by_source[source] = by_source.get(source, b"") + sample["bin"]
    assert by_source == {name: data + SEPARATOR for name, data in docs.items()}
    assert [s["source"].rsplit("/", 1)[-1] for s in manifest["skipped"]] == ["empty.txt"]


def test_enwik8_end_to_end(tmp_path):
    data = bytes(np.random.default_rng(2).integers(0, 256, 2000, dtype=np.uint8))
    (tmp_path / "enwik8").write_bytes(data)
    out = tmp_path / "out"
    argv = ["text", "--src", str(tmp_path / "enwik8"), "--out", str(out), "--enwik8"]
    assert main([*argv, "--chunk-size", "256", "--quiet"]) == 0
    parts = {s: b"".join(x["bin"] for x in read_samples(out, s)) for s in ("train", "val", "test")}
    assert parts == {"train": data[:1800], "val": data[1800:1900], "test": data[1900:]}
    assert _manifest(out)["counts"] == {"train": 8, "val": 1, "test": 1}


def test_audio_end_to_end(tmp_path):
    src = tmp_path / "wavs"
    src.mkdir()
    rng = np.random.default_rng(3)
    ints = rng.integers(-20000, 20000, 2500).astype(np.int16)
    sf.write(src / "a.wav", ints, 16000, subtype="PCM_16")
    sf.write(src / "b.flac", ints[:700], 16000, subtype="PCM_16")
    sf.write(src / "bad.flac", np.zeros(4000, np.float32), 16000)
    raw = bytearray((src / "bad.flac").read_bytes())
    raw[8:] = b"\x13" * (len(raw) - 8)
    (src / "bad.flac").write_bytes(bytes(raw))
    sf.write(src / "nan.wav", np.array([0.0, np.nan, 0.1], np.float32), 16000, subtype="FLOAT")
    out = tmp_path / "out"
    argv = ["audio", "--src", str(src), "--out", str(out), "--seq-len", "2000", "--quiet"]
    assert main([*argv, "--val-fraction", "0", "--workers", "2"]) == 0
    manifest = _manifest(out)
    pcm = ints.astype("<i2").tobytes()
    got = [(json.loads(s["json"])["source"].rsplit("/", 1)[-1], s["bin"]) for s in _all(out)]
    assert (
        got
        == [
            ("a.wav", pcm[:2000]),
            ("a.wav", pcm[2000:4000]),
            ("a.wav", pcm[4000:]),  # tail kept as a shorter clip
            ("b.flac", pcm[:1400]),
        ]
    )
    reasons = {s["source"].rsplit("/", 1)[-1]: s["reason"] for s in manifest["skipped"]}
    assert set(reasons) == {"bad.flac", "nan.wav"}
    assert "NaN or Inf" in reasons["nan.wav"]


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--val-fraction", "1.0"], "--val-fraction"),
        (["--val-fraction", "-0.1"], "--val-fraction"),
        (["--order", "zigzag"], "order"),
        (["--size", "0"], "size"),
        (["--sample-rate", "8000"], "--sample-rate does not apply to image"),
        (["--enwik8"], "--enwik8 does not apply to image"),
        (["--chunk-size", "100"], "--chunk-size does not apply to image"),
        (["--size", "big"], "option --size='big' is not a valid int"),
        (["--workers", "0"], "--workers"),
        (["--src", "/does/not/exist"], "does not exist"),
    ],
)
def test_bad_config_fails_before_work(tmp_path, capsys, extra, message):
    (tmp_path / "a.png").write_bytes(b"")
    out = tmp_path / "out"
    argv = ["image", "--src", str(tmp_path / "a.png"), "--out", str(out), "--quiet", *extra]
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_unknown_flag_and_existing_output(tmp_path, capsys):
    (tmp_path / "a.txt").write_bytes(b"abc")
    out = tmp_path / "out"
    base = ["text", "--src", str(tmp_path / "a.txt"), "--out", str(out), "--quiet"]
    assert main([*base, "--colour", "red"]) == 2
    assert main(base) == 0
    assert main(base) == 2
    assert "--overwrite" in capsys.readouterr().err
    assert main([*base, "--overwrite", "--val-fraction", "0"]) == 0
    assert _manifest(out)["counts"] == {"train": 1, "val": 0}


def test_val_src_inputs_all_go_to_validation(tmp_path):
    train_dir, val_dir = tmp_path / "train", tmp_path / "held"
    train_dir.mkdir()
    val_dir.mkdir()
    for i in range(6):
        (train_dir / f"t{i}.txt").write_text(f"training text {i} " * 20)
    for i in range(2):
        (val_dir / f"v{i}.txt").write_text(f"held-out text {i} " * 20)
    out = tmp_path / "shards"
    argv = [
        "text",
        "--src",
        str(train_dir),
        "--val-src",
        str(val_dir),
        "--out",
        str(out),
        "--val-fraction",
        "0",
        "--quiet",
    ]
    assert main(argv) == 0
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"] == {"train": 6, "val": 2}
    val_sources = {json.loads(s["json"])["source"] for s in read_samples(out, "val")}
    assert val_sources == {str(val_dir / "v0.txt"), str(val_dir / "v1.txt")}
    assert (
        main(
            [
                "text",
                "--src",
                str(train_dir),
                "--val-src",
                str(tmp_path / "nope"),
                "--out",
                str(tmp_path / "x"),
            ]
        )
        == 2
    )
