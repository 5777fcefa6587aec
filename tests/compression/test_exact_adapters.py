"""The adapters' exact coding: what each represents losslessly, what it refuses, and writers
whose files read back as the same bytes."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
import soundfile
from PIL import Image

import modalities


def test_text_is_the_files_bytes(tmp_path, files):
    adapter = modalities.get("text")
    data = adapter.encode_exact(files.text)
    assert data == files.text.read_bytes()
    adapter.save_exact(data, tmp_path / "copy.txt")
    assert (tmp_path / "copy.txt").read_bytes() == data
    (tmp_path / "empty.txt").write_bytes(b"")
    assert adapter.encode_exact(tmp_path / "empty.txt") == b""


@pytest.mark.parametrize("predictor", ["none", "med", "med_colour"])
@pytest.mark.parametrize("order", ["raster", "patch"])
def test_image_pixels_round_trip(tmp_path, files, order, predictor):
    adapter = modalities.get("image", size=8, order=order, patch_size=12, predictor=predictor)
    data = adapter.encode_exact(files.png)
    assert data == adapter.encode(files.pixels)  # the pixels, in the adapter's order
    adapter.save_exact(data, tmp_path / "back.png")
    with Image.open(tmp_path / "back.png") as image:
        assert image.format == "PNG" and image.mode == "RGB"
        assert np.array_equal(np.asarray(image), files.pixels)
    assert adapter.encode_exact(tmp_path / "back.png") == data


def _save(tmp_path, name, array, mode, **options):
    path = tmp_path / name
    Image.fromarray(array, mode).save(path, **options)
    return path


def test_image_refusals(tmp_path, files):
    adapter = modalities.get("image", size=8)
    rng = np.random.default_rng(1)
    grey = rng.integers(0, 256, (8, 8), dtype=np.uint8)
    rgba = rng.integers(0, 256, (8, 8, 4), dtype=np.uint8)
    cases = {
        files.big_png: "100x80 image; this model codes exactly 8x8",
        files.jpg: "JPEG image; only PNG",
        _save(tmp_path, "grey.png", grey, "L"): "mode L",
        _save(tmp_path, "rgba.png", rgba, "RGBA"): "mode RGBA",
    }
    palette = Image.fromarray(files.pixels, "RGB").quantize(16)
    palette.save(tmp_path / "palette.png")
    cases[tmp_path / "palette.png"] = "mode P"
    Image.fromarray(files.pixels, "RGB").save(tmp_path / "key.png", transparency=(0, 0, 0))
    cases[tmp_path / "key.png"] = "transparent colour key"
    for path, reason in cases.items():
        with pytest.raises(ValueError, match=reason):
            adapter.encode_exact(path)


def test_image_16_bit_png_is_refused(tmp_path):
    """PIL opens a 48-bit PNG as 8-bit RGB; coding that would drop the low bytes silently."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return (
            struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
        )

    rows = b"".join(b"\x00" + bytes(range(48)) for _ in range(8))  # 8 px x 3 ch x 2 bytes
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 8, 8, 16, 2, 0, 0, 0))
    png += chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    (tmp_path / "deep.png").write_bytes(png)
    with Image.open(tmp_path / "deep.png") as image:
        assert image.mode == "RGB"  # what makes the check necessary
    with pytest.raises(ValueError, match="only 8-bit RGB"):
        modalities.get("image", size=8).encode_exact(tmp_path / "deep.png")


@pytest.mark.parametrize("suffix", [".flac", ".wav"])
def test_audio_pcm16_round_trip(tmp_path, files, suffix):
    adapter = modalities.get("audio", sample_rate=8000)
    source = files.flac if suffix == ".flac" else files.wav
    data = adapter.encode_exact(source)
    assert data == files.samples.astype("<i2").tobytes()
    adapter.save_exact(data, tmp_path / f"back{suffix}")
    info = soundfile.info(str(tmp_path / f"back{suffix}"))
    assert (info.format, info.subtype, info.channels, info.samplerate) == (
        suffix[1:].upper(),
        "PCM_16",
        1,
        8000,
    )
    assert adapter.encode_exact(tmp_path / f"back{suffix}") == data


@pytest.mark.parametrize("suffix", [".flac", ".wav"])
def test_audio_pcm8_round_trip(tmp_path, suffix):
    adapter = modalities.get("audio", sample_rate=8000, encoding="pcm8")
    data = bytes(range(256)) * 2
    adapter.save_exact(data, tmp_path / f"eight{suffix}")
    assert adapter.encode_exact(tmp_path / f"eight{suffix}") == data


def test_audio_refusals(tmp_path, files):
    adapter = modalities.get("audio", sample_rate=8000)
    samples = files.samples.astype(np.float32) / 32768
    soundfile.write(tmp_path / "deep.wav", samples, 8000, subtype="PCM_24")
    soundfile.write(tmp_path / "fast.wav", samples, 16000, subtype="PCM_16")
    soundfile.write(tmp_path / "stereo.flac", np.stack([samples] * 2, 1), 8000, subtype="PCM_16")
    (tmp_path / "noise.wav").write_bytes(b"RIFF not really")
    cases = {
        files.stereo: "2 channels; only mono",
        tmp_path / "stereo.flac": "2 channels",
        tmp_path / "fast.wav": "16000 Hz; this model codes exactly 8000 Hz",
        tmp_path / "deep.wav": "PCM_24 samples",
        tmp_path / "noise.wav": "not a readable audio file",
    }
    if "OGG" in soundfile.available_formats():
        soundfile.write(tmp_path / "lossy.ogg", samples, 8000, subtype="VORBIS")
        cases[tmp_path / "lossy.ogg"] = "OGG audio; only WAV and FLAC"
    for path, reason in cases.items():
        with pytest.raises(ValueError, match=reason):
            adapter.encode_exact(path)
    mulaw = modalities.get("audio", sample_rate=8000, encoding="mulaw8")
    with pytest.raises(ValueError, match="no audio file stores mulaw8"):
        mulaw.encode_exact(files.wav)
    with pytest.raises(ValueError, match="not .mp3"):
        adapter.save_exact(b"\x00\x00", tmp_path / "x.mp3")
