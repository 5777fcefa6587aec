"""Tiny random-init models, checkpoints with a modality, small files for the compression tests."""

from __future__ import annotations

import types
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from PIL import Image

from multibyte.checkpoint import export
from multibyte.model import ByteTransformer, ByteTransformerConfig, Megabyte, MegabyteConfig


def tiny_megabyte(seed: int = 0, **overrides) -> Megabyte:
    fields = dict(
        patch_size=4,
        max_seq_len=64,
        global_dim=32,
        global_layers=1,
        global_heads=2,
        local_dim=16,
        local_layers=1,
        local_heads=2,
    )
    fields.update(overrides)
    if "patch_sizes" in overrides:
        fields.pop("patch_size")
    torch.manual_seed(seed)
    return Megabyte(MegabyteConfig(**fields)).eval()


def tiny_transformer(seed: int = 0, **overrides) -> ByteTransformer:
    fields = dict(max_seq_len=64, dim=32, layers=1, heads=2)
    fields.update(overrides)
    torch.manual_seed(seed)
    return ByteTransformer(ByteTransformerConfig(**fields)).eval()


def random_bytes(n: int, seed: int = 0) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


@pytest.fixture(scope="session")
def helpers() -> types.SimpleNamespace:
    """The helpers above (conftest modules are not importable under --import-mode=importlib)."""
    return types.SimpleNamespace(
        tiny_megabyte=tiny_megabyte, tiny_transformer=tiny_transformer, random_bytes=random_bytes
    )


def _export(path: Path, modality: dict, seed: int = 0, **overrides) -> Path:
    export(tiny_megabyte(seed, **overrides), path, modality)
    return path


@pytest.fixture(scope="session")
def ckpts(tmp_path_factory) -> types.SimpleNamespace:
    """Exported tiny checkpoints: text, 8x8 images (192 bytes), 8 kHz pcm16 audio; `other` is
    the text model with other weights."""
    folder = tmp_path_factory.mktemp("ckpt")
    audio = {"name": "audio", "sample_rate": 8000, "encoding": "pcm16", "seq_len": 256}
    return types.SimpleNamespace(
        text=_export(folder / "text.ckpt", {"name": "text", "patch_size": 4}),
        other=_export(folder / "other.ckpt", {"name": "text", "patch_size": 4}, seed=1),
        image=_export(
            folder / "image.ckpt", {"name": "image", "size": 8}, patch_size=12, max_seq_len=96
        ),
        audio=_export(folder / "audio.ckpt", audio, max_seq_len=256),
    )


@pytest.fixture(scope="session")
def files(tmp_path_factory) -> types.SimpleNamespace:
    """Inputs the models represent exactly, and some they must refuse."""
    folder = tmp_path_factory.mktemp("inputs")
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    Image.fromarray(pixels, "RGB").save(folder / "photo.png")
    Image.fromarray(rng.integers(0, 256, (80, 100, 3), dtype=np.uint8), "RGB").save(
        folder / "big.png"
    )
    Image.fromarray(pixels, "RGB").save(folder / "photo.jpg", quality=95)
    samples = (rng.normal(0, 3000, 301)).astype(np.int16)  # 602 bytes: 3 chunks of 256, odd end
    soundfile.write(folder / "speech.flac", samples, 8000, subtype="PCM_16", format="FLAC")
    soundfile.write(folder / "speech.wav", samples, 8000, subtype="PCM_16", format="WAV")
    stereo = rng.normal(0, 0.1, (441, 2)).astype(np.float32)
    soundfile.write(folder / "stereo.wav", stereo, 44100, subtype="PCM_16")
    text = "Caf\u00e9 au lait, \u00e0 la carte.\n".encode() * 9 + b"\xff\xfe raw bytes\r\n"
    (folder / "notes.txt").write_bytes(text)
    return types.SimpleNamespace(
        folder=folder,
        png=folder / "photo.png",
        pixels=pixels,
        big_png=folder / "big.png",
        jpg=folder / "photo.jpg",
        flac=folder / "speech.flac",
        wav=folder / "speech.wav",
        samples=samples,
        stereo=folder / "stereo.wav",
        text=folder / "notes.txt",
    )
