"""Crafted `.mbz` files: `multibyte decompress` refuses them in one line, or restores the exact
content; it never crashes and never writes a wrong or partial file.

A CRC-32 is no signature: the files here are made as an attacker would make them, with the size
field and the CRC recomputed after every change, so that each header field and metadata value
reaches the checks behind the CRC. Property-based (hypothesis), derandomized so that every run
tries the same examples.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import tempfile
import zlib
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

from multibyte.cli import main as cli
from multibyte.compression.container import CRC_BYTES, MAGIC, MAX_THREADS, VERSION, unpack

CONTENT = b"Bytes in, out."
SETTINGS = settings(
    max_examples=30,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def forge(
    model: bytes,
    content: bytes,
    length: int,
    chunk: int,
    batch: int,
    meta: bytes,
    sizes: list[int],
    streams: list[bytes],
) -> bytes:
    """A container with any field values, its size field and CRC made to match."""
    rest = b"".join(
        [
            model,
            content,
            varint(length),
            varint(chunk),
            varint(batch),
            varint(len(meta)),
            meta,
            *map(varint, sizes),
            *streams,
        ]
    )
    size = len(MAGIC) + 1 + 8 + len(rest) + CRC_BYTES
    body = MAGIC + bytes([VERSION]) + size.to_bytes(8, "little") + rest
    return body + zlib.crc32(body).to_bytes(CRC_BYTES, "little")


def reseal(blob: bytes) -> bytes:
    """After bytes changed or were cut: the size field and CRC recomputed (when there is room)."""
    if len(blob) < len(MAGIC) + 1 + 8 + CRC_BYTES:
        return blob
    body = blob[:5] + len(blob).to_bytes(8, "little") + blob[13:-CRC_BYTES]
    return body + zlib.crc32(body).to_bytes(CRC_BYTES, "little")


@pytest.fixture(scope="module")
def valid(checkpoint, tmp_path_factory) -> bytes:
    """CONTENT compressed in three chunks (6, 6 and 2 bytes), two chunks per batch."""
    folder = tmp_path_factory.mktemp("valid")
    (folder / "data.txt").write_bytes(CONTENT)
    argv = [
        "compress",
        "--ckpt",
        str(checkpoint),
        str(folder / "data.txt"),
        "--out",
        str(folder / "data.mbz"),
        "--chunk",
        "6",
        "--batch",
        "2",
        "--threads",
        "1",  # one thread decodes fastest on a busy machine
        "--quiet",
    ]
    assert cli(argv) == 0
    return (folder / "data.mbz").read_bytes()


def decompress(checkpoint: Path, blob: bytes) -> None:
    """Run the command on ``blob``: a refusal (exit 2, one line naming the file, nothing
    written) or the exact content; an exception escaping it fails the test."""
    with tempfile.TemporaryDirectory() as folder:
        file, out = Path(folder) / "data.mbz", Path(folder) / "out"
        file.write_bytes(blob)
        stderr, stdout = io.StringIO(), io.StringIO()
        with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(stdout):
            status = cli(
                ["decompress", "--ckpt", str(checkpoint), str(file), "--out", str(out), "--quiet"]
            )
        written = sorted(p for p in out.rglob("*")) if out.exists() else []
        if currently_in_test_context():  # which check answered: --hypothesis-show-statistics
            event(f"exit {status}: {stderr.getvalue().split(': ', 3)[-1]}"[:90])
        if status == 0:
            assert [p.name for p in written] == ["data.txt"], written
            assert written[0].read_bytes() == CONTENT
            return
        assert status == 2, (status, stderr.getvalue())
        lines = stderr.getvalue().strip().splitlines()
        assert len(lines) == 1 and str(file) in lines[0] and "Traceback" not in lines[0], lines
        assert written == [], written  # nothing written, not even a temporary file


def test_the_valid_file_decompresses(checkpoint, valid):
    assert (unpack(valid).chunk, len(unpack(valid).streams)) == (6, 3)
    decompress(checkpoint, valid)


@SETTINGS
@given(data=st.data())
def test_truncated_and_changed_files(checkpoint, valid, data):
    blob = bytearray(valid)
    for _ in range(data.draw(st.integers(1, 4), label="changes")):
        at = data.draw(st.integers(0, len(blob) - 1), label="at")
        blob[at] ^= data.draw(st.integers(1, 255), label="xor")
    cut = data.draw(st.integers(0, len(blob)), label="cut")
    blob = bytes(blob[:cut])
    if data.draw(st.booleans(), label="reseal"):
        blob = reseal(blob)
    decompress(checkpoint, blob)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3)
    ),
    max_leaves=6,
)
THREADS = st.sampled_from([1, 2, 0, -1, MAX_THREADS + 1, 1_000_000, 2**63, "2", 2.0, True, None])


def sometimes(data: st.DataObject, label: str, one_in: int = 4) -> bool:
    """Forge a field in one example of ``one_in``: most examples keep most fields valid, so
    they reach the checks behind the first one (and some decode)."""
    return data.draw(st.sampled_from([False] * (one_in - 1) + [True]), label=f"forge {label}")


NUMBERS = st.integers(0, 2**64) | st.integers(0, 200)
# A coded stream as the range coder writes it: whole little-endian 32-bit words.
STREAM = st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=4).map(
    lambda words: b"".join(w.to_bytes(4, "little") for w in words)
)


@SETTINGS
@given(data=st.data())
def test_any_header_values(checkpoint, valid, data):
    good = unpack(valid)
    meta = json.loads(json.dumps(good.meta))
    env = meta["environment"]
    if sometimes(data, "threads", 2):
        env["threads"] = data.draw(THREADS, label="threads")
    for key in ("decode_step", "device", "torch", "compiled_for"):
        if sometimes(data, key, 8):
            env[key] = data.draw(JSON | st.sampled_from(["eager", "compiled", "cuda"]), label=key)
    for key in ("suffix", "modality", "checkpoint", "environment"):
        if sometimes(data, key, 8):
            meta[key] = data.draw(
                JSON | st.sampled_from([".txt", "../../x", {"name": "image", "size": 10**9}]),
                label=key,
            )
    raw_meta = json.dumps(meta).encode()
    if sometimes(data, "metadata bytes", 12):
        raw_meta = data.draw(st.binary(max_size=40), label="meta bytes")
    length = data.draw(NUMBERS, label="length") if sometimes(data, "length") else good.length
    chunk = data.draw(NUMBERS, label="chunk") if sometimes(data, "chunk") else good.chunk
    batch = data.draw(NUMBERS, label="batch") if sometimes(data, "batch") else good.batch
    count = math.ceil(length / chunk) if chunk else 0
    streams = list(good.streams)
    if count <= 8 and (count != len(streams) or sometimes(data, "streams")):
        streams = [  # as many as the header asks for: some original, some random bytes
            good.streams[i]
            if i < len(good.streams) and data.draw(st.booleans(), label="keep")
            else data.draw(STREAM | st.binary(max_size=12), label="stream")
            for i in range(count)
        ]
    sizes = [len(s) for s in streams]
    if sometimes(data, "sizes", 8):
        sizes = data.draw(st.lists(NUMBERS, max_size=4), label="sizes")
    blob = forge(good.model, good.content, length, chunk, batch, raw_meta, sizes, streams)
    decompress(checkpoint, blob)


@SETTINGS
@given(data=st.data())
def test_any_streams_behind_a_valid_header(checkpoint, valid, data):
    """Every check before decoding passes: the decoder runs on the streams, and the refusal
    comes from the range decoder or from the content's sha256."""
    good = unpack(valid)
    streams = [
        stream if data.draw(st.booleans(), label="keep") else data.draw(STREAM, label="stream")
        for stream in good.streams
    ]
    meta = json.dumps(good.meta).encode()
    sizes = [len(s) for s in streams]
    blob = forge(
        good.model, good.content, good.length, good.chunk, good.batch, meta, sizes, streams
    )
    decompress(checkpoint, blob)


def test_the_reported_crash_is_a_refusal(checkpoint, valid):
    """threads: 1000000 with the size and CRC recomputed made torch crash (exit 139)."""
    good = unpack(valid)
    meta = json.loads(json.dumps(good.meta))
    meta["environment"]["threads"] = 1_000_000
    blob = forge(
        good.model,
        good.content,
        good.length,
        good.chunk,
        good.batch,
        json.dumps(meta).encode(),
        [len(s) for s in good.streams],
        good.streams,
    )
    with pytest.raises(ValueError, match="thread count 1000000 is not in 1..256"):
        unpack(blob)
    decompress(checkpoint, blob)
