"""Small good and bad input files the fault suite writes itself."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import soundfile
from PIL import Image


def png(path: Path, seed: int = 0, size: int = 16) -> Path:
    pixels = np.random.default_rng(seed).integers(0, 256, (size, size, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(path)
    return path


def jpeg_bytes(seed: int = 0) -> bytes:
    buffer = io.BytesIO()
    pixels = np.random.default_rng(seed).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buffer, format="JPEG")
    return buffer.getvalue()


def wav(path: Path, seconds: float = 0.25, rate: int = 16000, fmt: str = "WAV") -> Path:
    t = np.arange(int(seconds * rate)) / rate
    soundfile.write(path, (0.1 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), rate, format=fmt)
    return path


def images_with_bad_files(folder: Path) -> dict[str, Path]:
    """Two good PNGs and every kind of broken image file; name -> path of the bad ones."""
    folder.mkdir(parents=True, exist_ok=True)
    png(folder / "good0.png", 0)
    png(folder / "good1.png", 1)
    good = (folder / "good0.png").read_bytes()
    bad = {
        "empty.png": b"",
        "corrupt.png": b"\x89PNG\r\n\x1a\n" + b"garbage" * 20,
        "truncated.png": good[: len(good) // 2],
        "empty.jpg": b"",
        "corrupt.jpg": b"\xff\xd8\xff" + b"nonsense" * 20,
        "truncated.jpg": jpeg_bytes()[:40],
    }
    for name, data in bad.items():
        (folder / name).write_bytes(data)
    np.savez(folder / "nodata.npz", labels=np.arange(3))
    np.savez(folder / "narrow.npz", data=np.zeros((2, 100), np.uint8), labels=np.ones(2))
    return {name: folder / name for name in [*bad, "nodata.npz", "narrow.npz"]}


def audio_with_bad_files(folder: Path) -> dict[str, Path]:
    """Two good recordings and every kind of broken audio file; name -> path of the bad ones."""
    folder.mkdir(parents=True, exist_ok=True)
    wav(folder / "good0.wav")
    wav(folder / "good1.flac", fmt="FLAC")
    good_wav = (folder / "good0.wav").read_bytes()
    good_flac = (folder / "good1.flac").read_bytes()
    bad = {
        "empty.wav": b"",
        "corrupt.wav": b"RIFF" + b"\x00" * 4 + b"WAVEjunk" * 10,
        "truncated.wav": good_wav[:30],
        "empty.flac": b"",
        "corrupt.flac": b"fLaC" + b"\x17" * 50,
        "truncated.flac": good_flac[:20],
    }
    for name, data in bad.items():
        (folder / name).write_bytes(data)
    nan = np.full(4000, np.nan, np.float32)
    soundfile.write(folder / "nan.wav", nan, 16000, subtype="FLOAT")
    return {name: folder / name for name in [*bad, "nan.wav"]}
