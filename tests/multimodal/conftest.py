"""Shard folders for the mixture tests, prepared as the docs say: 16x16 images, audio with the
default --seq-len (524,288 bytes: each one-second file is one 32,000-byte clip) and text, each
split over several small shards so that streaming has shards to choose from."""

from __future__ import annotations

from pathlib import Path

import pytest

from multibyte.prepare import main as prepare


@pytest.fixture(scope="session")
def shards(image_folder, audio_folder, text_folder, tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("mixture-shards")
    made = {}
    for name, src, extra in (
        ("image", image_folder, ["--size", "16"]),
        ("audio", audio_folder, []),
        ("text", text_folder, []),
    ):
        out = root / name
        status = prepare([name, "--src", str(src), "--out", str(out), "--val-fraction", "0.2",
                          "--shard-size", "2", "--workers", "1", "--quiet", *extra])  # fmt: skip
        assert status == 0
        made[name] = out
    return made
