"""Shard folders for the mixture tests, prepared as the docs say: 16x16 images, audio with the
default --seq-len (524,288 bytes: each one-second file is one 32,000-byte clip) and text, each
split over several small shards so that streaming has shards to choose from."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def shards(mixture_shards) -> dict[str, Path]:
    return mixture_shards
