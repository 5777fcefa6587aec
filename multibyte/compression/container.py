"""The `.mbz` container: one file = a header, the coded streams (one per chunk), a CRC-32.

Layout (integers little-endian; "varint" is unsigned LEB128, 7 bits per byte, low bits first):

    magic     4 bytes   b"\\x89MBZ"
    version   1 byte    1: constriction's range coder, 24-bit frequencies from coder.quantize
    size      8 bytes   the whole file's length, so a cut file is told apart from a changed one
    model     32 bytes  sha256 fingerprint of the model's weights and config
    content   32 bytes  sha256 of the original bytes
    length    varint    number of original bytes
    chunk     varint    bytes per chunk (every chunk but the last is this long)
    batch     varint    chunks coded together in lockstep
    meta_len  varint    byte length of the JSON that follows
    meta      JSON      UTF-8: modality options, file suffix, coder, environment, checkpoint name
    streams   varint    byte length of each chunk's stream, ceil(length / chunk) of them
    payload   ...       the streams, back to back
    crc32     4 bytes   zlib.crc32 of every byte before it

`docs/compression.md` describes every field. `unpack` refuses a file that is not a container,
has another version, is truncated, has trailing bytes, or fails the CRC. A CRC is no signature
(anyone can recompute it), so every field is also bounded and checked before it is used: the
numbers against the limits below and the file's size, the metadata against the types and values
`compress` writes (`check_meta`).
"""

from __future__ import annotations

import json
import math
import re
import zlib
from dataclasses import dataclass, field
from typing import Any

MAGIC = b"\x89MBZ"
VERSION = 1
DIGEST_BYTES = 32
CRC_BYTES = 4
SIZE_BYTES = 8
WORD_BYTES = 4  # a coded stream is whole 32-bit words, at least one for a non-empty chunk

MAX_CHUNK = 1 << 32
"""Bytes per chunk; decoding also bounds it by the model's max_seq_len."""
MAX_BATCH = 4096
"""Chunks coded together: rows of one buffer, each with its own cache, so memory grows with it."""
MAX_THREADS = 256
"""torch threads pinned while coding (torch crashes on a count such as 1,000,000)."""
MAX_TEXT = 1024
"""Characters of a recorded string (checkpoint name, versions, device name)."""
DECODE_STEPS = ("eager", "compiled")
SAFE_SUFFIX = re.compile(r"\.[A-Za-z0-9]{1,16}")
"""A recorded file suffix: a dot and 1 to 16 letters or digits (never a path)."""


class CompressionError(ValueError):
    """Data that cannot be compressed or decompressed exactly; the message says why."""


class ContainerError(CompressionError):
    """Not a container, an unsupported version, or a damaged (truncated or corrupted) file."""


@dataclass
class Container:
    """Everything an `.mbz` file holds; `streams` has one entry per chunk."""

    model: bytes
    content: bytes
    length: int
    chunk: int
    batch: int
    meta: dict[str, Any] = field(default_factory=dict)
    streams: list[bytes] = field(default_factory=list)

    @property
    def chunks(self) -> int:
        return math.ceil(self.length / self.chunk)

    def payload_bytes(self) -> int:
        return sum(len(s) for s in self.streams)


def _varint(value: int) -> bytes:
    if value < 0:
        raise ValueError(f"varint must be non-negative, got {value}")
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int, what: str) -> bytes:
        if self.pos + n > len(self.data):
            raise ContainerError(f"damaged (truncated or corrupted): the file ends in the {what}")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def varint(self, what: str) -> int:
        value, shift = 0, 0
        while True:
            byte = self.take(1, what)[0]
            value |= (byte & 0x7F) << shift
            if not byte & 0x80:
                return value
            shift += 7
            if shift > 63:
                raise ContainerError(f"corrupted: the {what} is not a valid number")


def _text(value: Any, what: str, optional: bool = False) -> None:
    if value is None and optional:
        return
    if not isinstance(value, str) or len(value) > MAX_TEXT:
        raise ContainerError(f"corrupted: the recorded {what} is not a string (at most {MAX_TEXT})")


def _count(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def check_meta(meta: Any) -> None:
    """Refuse metadata that `compress` cannot have written: wrong types, unknown values, or a
    number outside its bounds. Only plain JSON values are ever read from it."""
    if not isinstance(meta, dict):
        raise ContainerError("corrupted: the metadata is not a JSON object")
    env = meta.get("environment")
    if not isinstance(env, dict):
        raise ContainerError("corrupted: the metadata has no coding environment")
    for key in ("torch", "constriction", "device", "device_name"):
        _text(env.get(key), f"environment {key}")
    threads = env.get("threads")
    if not _count(threads) or not 1 <= threads <= MAX_THREADS:
        raise ContainerError(
            f"corrupted: the recorded thread count {threads!r} is not in 1..{MAX_THREADS}"
        )
    if env.get("decode_step", DECODE_STEPS[0]) not in DECODE_STEPS:
        raise ContainerError(f"corrupted: unknown decode step {env.get('decode_step')!r}")
    _text(env.get("compiled_for"), "environment compiled_for", optional=True)
    _text(meta.get("checkpoint"), "checkpoint name", optional=True)
    suffix = meta.get("suffix")
    if suffix is not None and not (isinstance(suffix, str) and SAFE_SUFFIX.fullmatch(suffix)):
        raise ContainerError(f"corrupted: the recorded suffix {suffix!r} is not a file suffix")
    modality = meta.get("modality")
    if modality is not None:
        if not isinstance(modality, dict) or not isinstance(modality.get("name"), str):
            raise ContainerError("corrupted: the recorded modality options are not an object")
        if len(json.dumps(modality)) > MAX_TEXT:
            raise ContainerError("corrupted: the recorded modality options are too long")


def pack(container: Container) -> bytes:
    """The file's bytes."""
    if len(container.streams) != container.chunks:
        raise ValueError(
            f"{container.chunks} chunks need as many streams, got {len(container.streams)}"
        )
    meta = json.dumps(container.meta, sort_keys=True, separators=(",", ":")).encode()
    parts = [
        container.model,
        container.content,
        _varint(container.length),
        _varint(container.chunk),
        _varint(container.batch),
        _varint(len(meta)),
        meta,
        *(_varint(len(s)) for s in container.streams),
        *container.streams,
    ]
    rest = b"".join(parts)
    size = len(MAGIC) + 1 + SIZE_BYTES + len(rest) + CRC_BYTES
    body = MAGIC + bytes([VERSION]) + size.to_bytes(SIZE_BYTES, "little") + rest
    return body + zlib.crc32(body).to_bytes(CRC_BYTES, "little")


def unpack(data: bytes) -> Container:
    """Parse and check a file's bytes; raise ContainerError saying what is wrong."""
    data = bytes(data)
    if data[: len(MAGIC)] != MAGIC:
        if len(data) < len(MAGIC) and MAGIC.startswith(data):
            raise ContainerError(f"truncated: {len(data)} bytes, shorter than the header")
        raise ContainerError("not a multibyte compressed file (wrong magic bytes)")
    reader = _Reader(data)
    reader.take(len(MAGIC), "magic")
    version = reader.take(1, "version")[0]
    if version != VERSION:
        raise ContainerError(
            f"container version {version} is not supported (this multibyte reads version {VERSION})"
        )
    size = int.from_bytes(reader.take(SIZE_BYTES, "file size"), "little")
    if len(data) < size:
        raise ContainerError(f"truncated: the file has {len(data)} bytes of {size}")
    body, crc = data[:-CRC_BYTES], data[-CRC_BYTES:]
    if len(data) != size or zlib.crc32(body).to_bytes(CRC_BYTES, "little") != crc:
        raise ContainerError("corrupted: the CRC-32 does not match (a byte changed)")
    model = reader.take(DIGEST_BYTES, "model fingerprint")
    content = reader.take(DIGEST_BYTES, "content checksum")
    length = reader.varint("length")
    chunk = reader.varint("chunk size")
    batch = reader.varint("batch size")
    if not 1 <= chunk <= MAX_CHUNK:
        raise ContainerError(f"corrupted: chunk size {chunk} is not in 1..{MAX_CHUNK}")
    if not 1 <= batch <= MAX_BATCH:
        raise ContainerError(f"corrupted: batch {batch} is not in 1..{MAX_BATCH}")
    meta_bytes = reader.take(reader.varint("metadata length"), "metadata")
    count = math.ceil(length / chunk)
    if count * (1 + WORD_BYTES) > len(data) - reader.pos:  # a length byte and a word each
        raise ContainerError(f"damaged: {count} chunks cannot fit in a {len(data)}-byte file")
    sizes = [reader.varint("stream lengths") for _ in range(count)]
    if any(size < WORD_BYTES or size % WORD_BYTES for size in sizes):
        raise ContainerError("corrupted: a coded stream is not a whole number of 32-bit words")
    expected = reader.pos + sum(sizes) + CRC_BYTES
    if len(data) != expected:  # the CRC passed, so the writer itself was wrong
        raise ContainerError(f"corrupted: the file has {len(data)} bytes, its fields {expected}")
    try:
        meta = json.loads(meta_bytes.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ContainerError(f"corrupted: the metadata is not JSON ({error})") from error
    check_meta(meta)
    streams = []
    for size in sizes:
        streams.append(reader.take(size, "streams"))
    return Container(model, content, length, chunk, batch, meta, streams)


__all__ = [
    "CRC_BYTES",
    "DECODE_STEPS",
    "MAGIC",
    "MAX_BATCH",
    "MAX_CHUNK",
    "MAX_THREADS",
    "SAFE_SUFFIX",
    "VERSION",
    "CompressionError",
    "Container",
    "ContainerError",
    "check_meta",
    "pack",
    "unpack",
]
