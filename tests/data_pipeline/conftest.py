from __future__ import annotations

import json

import numpy as np
import pytest

from multibyte.data import ShardSink


def write_split(out, split, samples, shard_size):
    with ShardSink(out, split, max_count=shard_size) as sink:
        for i, data in enumerate(samples):
            sink.write(f"s{i:09d}", data, {"i": i})
    return sink


@pytest.fixture
def sample_shards(tmp_path):
    """Variable-length samples (like audio clips with tails) in 5 val and 3 train shards."""
    rng = np.random.default_rng(0)
    lengths = [16] * 17 + [5, 9, 5]
    samples = [bytes(rng.integers(0, 256, n, dtype=np.uint8)) for n in lengths]
    write_split(tmp_path, "val", samples, shard_size=4)
    write_split(tmp_path, "train", samples, shard_size=7)
    (tmp_path / "manifest.json").write_text(json.dumps({"stream": False}))
    return tmp_path, samples


@pytest.fixture
def stream_shards(tmp_path):
    """A text-like stream of 1000 bytes in 37-byte records, 3 records per shard."""
    stream = bytes(np.random.default_rng(1).integers(0, 256, 1000, dtype=np.uint8))
    chunks = [stream[i : i + 37] for i in range(0, len(stream), 37)]
    write_split(tmp_path, "val", chunks, shard_size=3)
    write_split(tmp_path, "train", chunks, shard_size=3)
    (tmp_path / "manifest.json").write_text(json.dumps({"stream": True}))
    return tmp_path, stream
