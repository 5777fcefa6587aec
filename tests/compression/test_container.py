"""The .mbz container: its fields, and every way a damaged or foreign file is refused."""

from __future__ import annotations

import hashlib
import json
import zlib

import pytest
import torch

import multibyte
from multibyte.compression import (
    CompressionError,
    ContainerError,
    EnvironmentMismatchError,
    ModelMismatchError,
    model_fingerprint,
    unpack,
)
from multibyte.compression.container import MAGIC, VERSION, Container, pack


@pytest.fixture(scope="module")
def model(helpers):
    return helpers.tiny_megabyte()


@pytest.fixture(scope="module")
def data(helpers):
    return helpers.random_bytes(150, seed=2)


@pytest.fixture(scope="module")
def blob(model, data):
    return multibyte.compress(model, data, chunk=50, batch=2, checkpoint="tiny.ckpt")


def test_fields(model, data, blob):
    assert blob[:4] == MAGIC and blob[4] == VERSION
    container = unpack(blob)
    assert container.model == model_fingerprint(model)
    assert container.content == hashlib.sha256(data).digest()
    assert (container.length, container.chunk, container.batch) == (150, 50, 2)
    assert len(container.streams) == 3 and all(len(s) % 4 == 0 for s in container.streams)
    env = container.meta["environment"]
    assert set(env) == {"torch", "constriction", "device", "device_name", "threads", "decode_step"}
    assert env["decode_step"] == "eager"  # the default
    assert container.meta["checkpoint"] == "tiny.ckpt"
    assert container.meta["modality"] is None  # a bare model has no .modality
    assert int.from_bytes(blob[-4:], "little") == zlib.crc32(blob[:-4])
    assert pack(container) == blob  # parsing and packing are inverse


def test_modality_options_are_plain_json(model):
    model.modality = {"name": "image", "size": 8, "order": "raster", "patch_size": 12}
    try:
        container = unpack(multibyte.compress(model, bytes(192)))
    finally:
        del model.modality
    assert container.meta["modality"] == {
        "name": "image",
        "size": 8,
        "order": "raster",
        "patch_size": 12,
    }
    raw = json.dumps(container.meta, sort_keys=True, separators=(",", ":")).encode()
    assert raw in pack(container)


def test_every_truncation_is_refused(blob):
    for cut in range(len(blob)):
        with pytest.raises(ContainerError, match="truncated|damaged|not a multibyte"):
            unpack(blob[:cut])


def test_every_flipped_byte_is_refused(model, blob):
    for i in range(len(blob)):
        damaged = bytearray(blob)
        damaged[i] ^= 0x41
        with pytest.raises(CompressionError):
            multibyte.decompress(model, bytes(damaged))


def test_trailing_bytes_and_foreign_files(blob):
    with pytest.raises(ContainerError, match="corrupted"):
        unpack(blob + b"\x00")
    with pytest.raises(ContainerError, match="not a multibyte compressed file"):
        unpack(b"PK\x03\x04 a zip file")
    with pytest.raises(ContainerError, match="version 2 is not supported"):
        unpack(MAGIC + bytes([2]) + blob[5:])


def test_another_model_is_refused(helpers, blob):
    other = helpers.tiny_megabyte(seed=1)
    with pytest.raises(ModelMismatchError, match="another model \\(checkpoint 'tiny.ckpt'\\)"):
        multibyte.decompress(other, blob)


def test_fingerprint_covers_weights_and_config(helpers, model):
    assert model_fingerprint(model) == model_fingerprint(helpers.tiny_megabyte())
    changed = helpers.tiny_megabyte()
    with torch.no_grad():
        changed.head.weight[0, 0] += 1e-6
    assert model_fingerprint(changed) != model_fingerprint(model)
    assert model_fingerprint(helpers.tiny_megabyte(dropout=0.1)) != model_fingerprint(model)


def _repack(blob: bytes, **changes) -> bytes:
    container = unpack(blob)
    for key, value in changes.items():
        setattr(container, key, value)
    return pack(container)


def test_another_environment_is_refused(model, data, blob):
    meta = json.loads(json.dumps(unpack(blob).meta))
    meta["environment"]["torch"] = "1.0.0"
    forged = _repack(blob, meta=meta)
    with pytest.raises(EnvironmentMismatchError, match="torch 1.0.0 on cpu"):
        multibyte.decompress(model, forged)
    # Allowed, it still decodes here (the arithmetic is in fact the same), checked by sha256.
    assert multibyte.decompress(model, forged, allow_mismatch=True) == data


def test_wrong_output_is_never_returned(model, blob):
    """Damage behind a valid CRC: the decoder runs, and the content sha256 refuses the result."""
    container = unpack(blob)
    stream = bytearray(container.streams[1])
    stream[0] ^= 0x10
    streams = [container.streams[0], bytes(stream), container.streams[2]]
    with pytest.raises(CompressionError, match="do not match|does not decode"):
        multibyte.decompress(model, _repack(blob, streams=streams))
    with pytest.raises(CompressionError, match="do not match"):
        multibyte.decompress(model, _repack(blob, content=bytes(32)))


def test_pack_checks_its_streams():
    with pytest.raises(ValueError, match="2 chunks need as many streams"):
        pack(Container(bytes(32), bytes(32), length=10, chunk=5, batch=1, streams=[b""]))
