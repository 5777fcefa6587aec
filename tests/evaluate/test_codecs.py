"""Codec baselines: each codec round-trips, and rates are measured on exactly the scored bytes."""

from __future__ import annotations

import bz2
import gzip
import json
import lzma

import numpy as np
import pytest

import modalities
from multibyte.codecs import CodecUnavailable, byte_codecs, codec_rates, compressed_bits
from multibyte.data.shards import read_samples
from multibyte.evaluation import evaluate_model


def image_bytes(adapter, seed=0):
    rng = np.random.default_rng(seed)
    pixels = (np.arange(adapter.size)[:, None, None] * 20 + rng.integers(0, 3, (8, 8, 3))) % 256
    return adapter.encode(pixels.astype(np.uint8))


@pytest.mark.parametrize("name", sorted(byte_codecs()))
def test_byte_codecs_round_trip(name):
    codec = byte_codecs()[name]
    for data in (b"", b"\x00", bytes(range(256)) * 3, np.random.bytes(1000)):
        assert codec.decompress(codec.compress(data)) == data


def test_byte_codec_rates_are_8_times_compressed_over_raw():
    sequences = [b"abc" * 100, bytes(range(200)), b"\x00"]
    rates, notes = codec_rates(byte_codecs(), sequences, check=True)
    raw = sum(len(s) for s in sequences)
    assert notes == {}
    assert rates["gzip"] == 8 * sum(len(gzip.compress(s, 9, mtime=0)) for s in sequences) / raw
    assert rates["bz2"] == 8 * sum(len(bz2.compress(s, 9)) for s in sequences) / raw
    assert rates["xz"] == 8 * sum(len(lzma.compress(s, preset=9)) for s in sequences) / raw


@pytest.mark.parametrize("predictor", ["none", "med_colour"])
@pytest.mark.parametrize("order", ["raster", "patch"])
def test_image_codecs_round_trip_in_either_byte_order(order, predictor):
    adapter = modalities.get("image", size=8, order=order, patch_size=12, predictor=predictor)
    codecs, notes = adapter.codecs()
    assert {"png", "webp"} <= set(codecs) and notes == {}
    data = image_bytes(adapter)
    for codec in codecs.values():
        blob = codec.compress(data)
        assert codec.decompress(blob) == data
    assert codecs["png"].compress(data)[:8] == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(CodecUnavailable):
        codecs["png"].compress(data[:-1])


def test_flac_round_trips_pcm16_and_is_na_for_8_bit_audio():
    adapter = modalities.get("audio", sample_rate=8000)
    codecs, _ = adapter.codecs()
    wave = (0.3 * np.sin(np.arange(4000) / 5)).astype(np.float32)
    data = adapter.encode((wave, 8000))
    blob = codecs["flac"].compress(data)
    assert blob[:4] == b"fLaC" and codecs["flac"].decompress(blob) == data
    assert compressed_bits(codecs["flac"], [data], check=True) == 8 * len(blob)
    for encoding in ("mulaw8", "pcm8"):
        codecs, notes = modalities.get("audio", encoding=encoding).codecs()
        assert "flac" not in codecs and notes["flac"].startswith("n/a")


def test_evaluate_reports_codecs_on_exactly_the_evaluated_bytes(image_ckpt, image_folder, tmp_path):
    from multibyte.cli import main as cli
    from multibyte.prepare import main as prepare

    shards = tmp_path / "shards"
    assert (
        prepare(
            [
                "image",
                "--src",
                str(image_folder),
                "--out",
                str(shards),
                "--size",
                "8",
                "--val-fraction",
                "0",
                "--workers",
                "1",
                "--quiet",
            ]
        )
        == 0
    )
    out = tmp_path / "r.json"
    argv = [
        "evaluate",
        "--ckpt",
        str(image_ckpt),
        "--data",
        str(shards),
        "--split",
        "train",
        "--limit",
        "3",
        "--json",
        str(out),
        "--quiet",
    ]
    assert cli(argv) == 0
    report = json.loads(out.read_text())
    evaluated = [s["bin"] for s in read_samples(shards, "train")][:3]
    assert report["bytes"] == sum(len(s) for s in evaluated) == 3 * 192
    adapter = modalities.get("image", size=8)
    codecs = {**byte_codecs(), **adapter.codecs()[0]}
    assert set(report["codecs"]) == set(codecs)
    for name, codec in codecs.items():
        expected = compressed_bits(codec, evaluated, check=True) / report["bytes"]
        assert report["codecs"][name] == pytest.approx(expected, rel=1e-12)
    assert report["unit"] == "bits/dim" and report["codecs_in_unit"] == report["codecs"]


def test_evaluate_model_library_codecs_for_audio_in_bits_per_sample(stand_ins):
    adapter = modalities.get("audio", sample_rate=8000, seq_len=256)
    wave = (0.3 * np.sin(np.arange(300) / 3)).astype(np.float32)
    data = adapter.encode((wave, 8000))
    summary = evaluate_model(stand_ins.Uniform(), [data[:256], data[256:]], adapter=adapter).summary
    assert summary["unit"] == "bits/sample" and summary["value_in_unit"] == 16.0
    assert summary["codecs_in_unit"]["flac"] == 2 * summary["codecs"]["flac"]
