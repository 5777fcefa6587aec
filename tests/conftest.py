"""Small real inputs the training and multimodal tests make: PNG images, 16 kHz WAV tones, English
text; and running `multibyte fit` in this process."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import soundfile
from PIL import Image

from multibyte.prepare import main as prepare

RECIPES = Path(__file__).resolve().parents[1] / "recipes"


def pytest_configure(config: pytest.Config) -> None:
    """Under pytest-xdist, share the cores between the workers: torch would give each worker
    every core, and two workers on two cores then fight over them."""
    workers = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    if workers > 1:
        import torch

        torch.set_num_threads(max(1, (os.cpu_count() or 1) // workers))


@pytest.fixture(scope="session")
def image_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    ramp = np.linspace(0, 255, 64)
    for i in range(6):
        color = rng.integers(0, 256, 3)
        pixels = np.stack(
            [np.add.outer(ramp, 0 * ramp), np.add.outer(0 * ramp, ramp), np.full((64, 64), 1.0)],
            axis=-1,
        ) * (color / 255.0)
        Image.fromarray(pixels.astype(np.uint8)).save(folder / f"img{i}.png")
    return folder


@pytest.fixture(scope="session")
def audio_folder(tmp_path_factory) -> Path:
    """One-second 16 kHz clips of three quiet tones each (speech-like levels, -30 to -45 dBFS)."""
    folder = tmp_path_factory.mktemp("audio")
    rng = np.random.default_rng(0)
    t = np.arange(16000) / 16000.0
    for i in range(10):
        freqs, levels = rng.uniform(100, 800, 3), rng.uniform(0.005, 0.03, 3)
        wave = sum(a * np.sin(2 * np.pi * f * t + rng.uniform(0, 6)) for f, a in zip(freqs, levels))
        soundfile.write(folder / f"clip{i}.wav", wave.astype(np.float32), 16000, subtype="PCM_16")
    return folder


@pytest.fixture(scope="session")
def text_folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("text")
    sentence = "The quick brown fox jumps over the lazy dog while the byte model watches. "
    for i in range(5):
        (folder / f"book{i}.txt").write_text(f"Chapter {i}. " + sentence * 60)
    return folder


@pytest.fixture
def recipes() -> Path:
    return RECIPES


def read_metrics(root: Path) -> list[dict[str, str]]:
    """All rows of the CSV logger of the newest run under root."""
    import csv

    versions = sorted((root / "csv").glob("version_*"), key=lambda p: int(p.name.split("_")[1]))
    with open(versions[-1] / "metrics.csv") as handle:
        return list(csv.DictReader(handle))


def column(rows: list[dict[str, str]], name: str) -> dict[int, float]:
    """{step: value} of one logged metric."""
    return {int(r["step"]): float(r[name]) for r in rows if r.get(name) not in (None, "")}


@pytest.fixture
def metrics():
    return read_metrics, column


@pytest.fixture
def fit():
    """Run `multibyte fit` in this process; returns the exit status."""
    from multibyte.cli import main

    def run(*args: str) -> int:
        return main(["fit", *map(str, args)])

    return run


@pytest.fixture
def fit_recipe(fit, recipes):
    """`multibyte fit` of a recipe on test data for `steps` steps, validating twice, quietly;
    asserts it succeeded and returns {step: val/bpb}."""

    def run(recipe: str, data: Path, root: Path, steps: int, *options: str) -> dict[int, float]:
        status = fit(  # warmup scaled to the short run, as the quickstart does
            "--config",
            recipes / recipe,
            "--data.path",
            data,
            "--model.warmup_steps",
            max(1, steps // 10),
            *options,
            "--trainer.max_steps",
            steps,
            "--trainer.val_check_interval",
            steps // 2,
            "--trainer.default_root_dir",
            root,
            "--trainer.log_every_n_steps",
            5,
            "--trainer.enable_progress_bar",
            "false",
        )
        assert status == 0
        return column(read_metrics(root), "val/bpb")

    return run


@pytest.fixture(scope="session")
def mixture_shards(image_folder, audio_folder, text_folder, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("mixture-shards")
    made = {}
    for name, src, extra in (
        ("image", image_folder, ["--size", "16"]),
        ("audio", audio_folder, []),
        ("text", text_folder, []),
    ):
        out = root / name
        status = prepare(
            [
                name,
                "--src",
                str(src),
                "--out",
                str(out),
                "--val-fraction",
                "0.2",
                "--shard-size",
                "2",
                "--workers",
                "1",
                "--quiet",
                *extra,
            ]
        )
        assert status == 0
        made[name] = out
    return made
