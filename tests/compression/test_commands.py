"""`multibyte compress` / `decompress` on real files: exact round trips, and refusals that name
the file, exit 2, print no traceback and leave no output behind."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile
from PIL import Image

from multibyte import cli
from multibyte.compression import unpack


def run(capsys, *argv, quiet: bool = True) -> tuple[int, str, str]:
    code = cli.main([str(a) for a in argv] + (["--quiet"] if quiet else []))
    out, err = capsys.readouterr()
    assert "Traceback" not in err
    return code, out, err


def listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


@pytest.mark.parametrize("kind", ["png", "flac", "wav", "text"])
def test_files_round_trip(tmp_path, capsys, ckpts, files, kind):
    ckpt = {"png": ckpts.image, "flac": ckpts.audio, "wav": ckpts.audio, "text": ckpts.text}[kind]
    source = getattr(files, kind)
    code, out, err = run(
        capsys, "compress", "--ckpt", ckpt, source, "--out", tmp_path / "c", quiet=kind != "png"
    )
    assert code == 0, err
    assert (f"\r{source.name}: " in err) == (kind == "png")  # a progress bar unless --quiet
    packed = tmp_path / "c" / (source.name + ".mbz")
    assert listing(tmp_path / "c") == [packed.name] and str(packed) in out
    container = unpack(packed.read_bytes())
    assert container.meta["suffix"] == source.suffix
    assert container.meta["checkpoint"] == ckpt.name
    assert container.chunks >= 2  # every input here spans several chunks of its model

    code, out, err = run(capsys, "decompress", "--ckpt", ckpt, packed, "--out", tmp_path / "d")
    assert code == 0, err
    restored = tmp_path / "d" / source.name
    assert listing(tmp_path / "d") == [source.name]  # no temporary file left
    if kind == "png":
        with Image.open(restored) as image:
            assert image.format == "PNG"
            assert np.array_equal(np.asarray(image), files.pixels)
    elif kind in ("flac", "wav"):
        assert soundfile.info(str(restored)).format == kind.upper()
        samples, rate = soundfile.read(str(restored), dtype="int16")
        assert rate == 8000 and np.array_equal(samples, files.samples)
    else:
        assert restored.read_bytes() == source.read_bytes()


def test_one_input_to_a_named_file_and_back_under_another_name(tmp_path, capsys, ckpts, files):
    target = tmp_path / "photo-small.mbz"
    assert run(capsys, "compress", "--ckpt", ckpts.image, files.png, "--out", target)[0] == 0
    assert target.is_file()
    assert run(capsys, "decompress", "--ckpt", ckpts.image, target, "--out", tmp_path)[0] == 0
    with Image.open(tmp_path / "photo-small.png") as image:  # the original suffix is restored
        assert np.array_equal(np.asarray(image), files.pixels)


def test_inputs_the_model_cannot_represent_are_refused(tmp_path, capsys, ckpts, files):
    out = tmp_path / "c"
    argv = ["compress", "--ckpt", ckpts.image, files.big_png, files.png, files.jpg, "--out", out]
    code, _, err = run(capsys, *argv)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 2
    assert f"{files.big_png}: 100x80 image" in lines[0]
    assert f"{files.jpg}: JPEG image; only PNG" in lines[1]
    assert listing(out) == ["photo.png.mbz"]  # the good input is still done

    code, _, err = run(capsys, "compress", "--ckpt", ckpts.audio, files.stereo, "--out", out)
    assert code == 2 and err.count("\n") == 1 and f"{files.stereo}: 2 channels" in err
    code, _, err = run(capsys, "compress", "--ckpt", ckpts.text, tmp_path / "nope", "--out", out)
    assert code == 2 and f"{tmp_path / 'nope'}: no such file" in err


@pytest.fixture
def packed(tmp_path, capsys, ckpts, files) -> Path:
    assert run(capsys, "compress", "--ckpt", ckpts.text, files.text, "--out", tmp_path)[0] == 0
    return tmp_path / "notes.txt.mbz"


def test_wrong_checkpoint_is_refused(tmp_path, capsys, ckpts, packed):
    out = tmp_path / "d"
    code, _, err = run(capsys, "decompress", "--ckpt", ckpts.other, packed, "--out", out)
    assert code == 2 and err.count("\n") == 1
    assert f"{packed}: compressed with another model (checkpoint 'text.ckpt')" in err
    assert str(ckpts.other) in err
    assert listing(out) == []


def test_truncated_and_corrupted_files_are_refused(tmp_path, capsys, ckpts, packed):
    blob = packed.read_bytes()
    (tmp_path / "cut.mbz").write_bytes(blob[:-9])
    flipped = bytearray(blob)
    flipped[len(blob) // 2] ^= 0x01
    (tmp_path / "flip.mbz").write_bytes(bytes(flipped))
    out = tmp_path / "d"
    for name, reason in [("cut.mbz", "truncated"), ("flip.mbz", "corrupted")]:
        code, _, err = run(
            capsys, "decompress", "--ckpt", ckpts.text, tmp_path / name, "--out", out
        )
        assert code == 2 and err.count("\n") == 1
        assert f"{tmp_path / name}: {reason}" in err
    assert listing(out) == []


def test_a_bad_file_does_not_stop_the_others(tmp_path, capsys, ckpts, packed):
    (tmp_path / "junk.mbz").write_bytes(b"not a container")
    out = tmp_path / "d"
    code, _, err = run(
        capsys, "decompress", "--ckpt", ckpts.text, tmp_path / "junk.mbz", packed, "--out", out
    )
    assert code == 2 and "junk.mbz: not a multibyte compressed file" in err
    assert listing(out) == ["notes.txt"]


def test_bad_arguments(tmp_path, capsys, ckpts, files):
    code, _, err = run(
        capsys, "compress", "--ckpt", tmp_path / "x.ckpt", files.text, "--out", tmp_path
    )
    assert code == 2 and "checkpoint not found" in err
    code, _, err = run(
        capsys, "compress", "--ckpt", ckpts.text, files.text, "--out", tmp_path, "--chunk", "65"
    )
    assert code == 2 and "--chunk 65 exceeds the model's max_seq_len 64" in err


def test_an_output_path_that_is_a_file_is_refused(tmp_path, capsys, ckpts, files):
    blocker = tmp_path / "taken"
    blocker.write_text("a file where the output folder should be")
    code, _, err = run(capsys, "compress", "--ckpt", ckpts.text, files.text, "--out", blocker)
    # refused before any work, naming the output and the reason
    assert code == 2 and err.count("\n") == 1 and f"--out {blocker}" in err, err
    assert "not a folder" in err
    assert blocker.read_text().startswith("a file")


def test_compile_flag_records_the_compiled_step_and_decompress_follows_it(
    tmp_path, capsys, ckpts, files
):
    code, _, err = run(
        capsys, "compress", "--ckpt", ckpts.text, files.text, "--out", tmp_path / "c", "--compile"
    )
    assert code == 0, err
    packed = tmp_path / "c" / (files.text.name + ".mbz")
    assert unpack(packed.read_bytes()).meta["environment"]["decode_step"] == "compiled"
    code, _, err = run(capsys, "decompress", "--ckpt", ckpts.text, packed, "--out", tmp_path / "d")
    assert code == 0, err
    assert (tmp_path / "d" / files.text.name).read_bytes() == files.text.read_bytes()
