"""Stand-in models with known likelihoods, a tiny trained MEGABYTE, and small data files."""

from __future__ import annotations

import types
from pathlib import Path

import numpy as np
import pytest
import soundfile
import torch
from PIL import Image
from torch import nn

from multibyte.checkpoint import export
from multibyte.model import Megabyte, MegabyteConfig

TEXT = (
    "It was the best of times, it was the worst of times, it was the age of wisdom, it was "
    "the age of foolishness, it was the epoch of belief, it was the epoch of incredulity. "
)


class FixedQ(nn.Module):
    """Every byte has the same distribution q (logits = log q), whatever came before."""

    def __init__(self, q: np.ndarray, patch_size: int = 4, max_seq_len: int = 32) -> None:
        super().__init__()
        self.config = types.SimpleNamespace(patch_size=patch_size, max_seq_len=max_seq_len)
        self.register_buffer("logits", torch.log(torch.as_tensor(q, dtype=torch.float64)))
        self.modality = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        assert x.shape[1] <= self.config.max_seq_len
        return self.logits.expand(*x.shape, 256)


class Uniform(FixedQ):
    def __init__(self, patch_size: int = 4, max_seq_len: int = 32) -> None:
        super().__init__(np.full(256, 1 / 256), patch_size, max_seq_len)


class PreviousByte(nn.Module):
    """logits[:, t] depend only on x[:, t-1] (a fixed random bigram table); uniform at t = 0.

    Position inside the patch does not matter to it, so strided and basic scoring must agree.
    """

    def __init__(self, patch_size: int = 4, max_seq_len: int = 32) -> None:
        super().__init__()
        self.config = types.SimpleNamespace(patch_size=patch_size, max_seq_len=max_seq_len)
        self.table = nn.Parameter(torch.randn(256, 256, generator=torch.Generator().manual_seed(0)))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        logits = self.table[x[:, :-1]]
        return torch.cat([torch.zeros(x.shape[0], 1, 256), logits], dim=1)


def tiny_config(**overrides) -> MegabyteConfig:
    fields = dict(
        patch_size=4,
        max_seq_len=64,
        global_dim=32,
        global_layers=1,
        global_heads=2,
        local_dim=32,
        local_layers=1,
        local_heads=2,
    )
    fields.update(overrides)
    return MegabyteConfig(**fields)


def train_tiny(model: nn.Module, data: bytes, steps: int = 40, seed: int = 0) -> nn.Module:
    """A few dozen Adam steps on random windows of ``data`` (seconds on a CPU)."""
    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    array = np.frombuffer(data, np.uint8).astype(np.int64)
    length = model.config.max_seq_len
    optimizer = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(steps):
        starts = rng.integers(0, len(array) - length, 8)
        x = torch.from_numpy(np.stack([array[s : s + length] for s in starts]))
        loss = nn.functional.cross_entropy(model(x).reshape(-1, 256), x.reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return model.eval()


@pytest.fixture(scope="session")
def trained_text_ckpt(tmp_path_factory) -> Path:
    """A MEGABYTE (P=4, L=64) trained 40 steps on English text, exported with text modality."""
    torch.manual_seed(0)
    model = train_tiny(Megabyte(tiny_config()), (TEXT * 20).encode())
    path = tmp_path_factory.mktemp("ckpt") / "text.ckpt"
    export(model, path, {"name": "text", "patch_size": 4})
    return path


@pytest.fixture(scope="session")
def uniform_text_ckpt(tmp_path_factory) -> Path:
    """A real MEGABYTE whose untied head is zero: logits are exactly 0, so 8 bits per byte."""
    torch.manual_seed(0)
    model = Megabyte(tiny_config(tie_embeddings=False))
    with torch.no_grad():
        model.head.weight.zero_()
    path = tmp_path_factory.mktemp("ckpt") / "uniform.ckpt"
    export(model, path, {"name": "text", "patch_size": 4})
    return path


def make_ckpt(path: Path, modality: dict, max_seq_len: int, patch_size: int = 4) -> Path:
    torch.manual_seed(0)
    export(Megabyte(tiny_config(max_seq_len=max_seq_len, patch_size=patch_size)), path, modality)
    return path


@pytest.fixture(scope="session")
def image_ckpt(tmp_path_factory) -> Path:
    """Untrained MEGABYTE for 8x8 images (192 bytes), P=12."""
    folder = tmp_path_factory.mktemp("ckpt")
    return make_ckpt(folder / "image.ckpt", {"name": "image", "size": 8}, 192, 12)


@pytest.fixture(scope="session")
def audio_ckpt(tmp_path_factory) -> Path:
    """Untrained MEGABYTE for 8 kHz pcm16 clips of 256 bytes, P=4."""
    folder = tmp_path_factory.mktemp("ckpt")
    modality = {"name": "audio", "sample_rate": 8000, "encoding": "pcm16", "seq_len": 256}
    return make_ckpt(folder / "audio.ckpt", modality, 256)


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    for i in range(5):
        base = rng.integers(0, 256, 3)
        pixels = (base + np.arange(8)[:, None, None] * 8 + rng.integers(0, 4, (8, 8, 3))) % 256
        Image.fromarray(pixels.astype(np.uint8), "RGB").save(folder / f"img{i}.png")
    return folder


@pytest.fixture(scope="session")
def audio_folder(tmp_path_factory) -> Path:
    """Clips of 300 samples at 8 kHz (600 pcm16 bytes: not a multiple of 256 or of P)."""
    folder = tmp_path_factory.mktemp("audio")
    t = np.arange(300) / 8000
    for i in range(3):
        wave = 0.2 * np.sin(2 * np.pi * (200 + 100 * i) * t)
        soundfile.write(folder / f"clip{i}.wav", wave.astype(np.float32), 8000, subtype="PCM_16")
    return folder


@pytest.fixture(scope="session")
def text_file(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("text") / "book.txt"
    path.write_bytes((TEXT * 3)[:401].encode())  # 401 + 2 separator bytes: not a multiple of 4
    return path


@pytest.fixture(scope="session")
def stand_ins() -> types.SimpleNamespace:
    """The helpers above (conftest modules are not importable under --import-mode=importlib)."""
    return types.SimpleNamespace(
        FixedQ=FixedQ,
        Uniform=Uniform,
        PreviousByte=PreviousByte,
        tiny_config=tiny_config,
        train_tiny=train_tiny,
        make_ckpt=make_ckpt,
        TEXT=TEXT,
    )
