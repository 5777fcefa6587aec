"""Lossless compression through a byte model: range coding driven by its next-byte logits.

`compress(model, data) -> bytes` and `decompress(model, blob) -> bytes` work on bytes; the
commands `multibyte compress` / `decompress` (in `command`) add files and modality adapters.
The container format and the exactness rules are in docs/compression.md.
"""

from multibyte.compression.api import (
    DEFAULT_BATCH,
    EnvironmentMismatchError,
    ModelMismatchError,
    check_compatible,
    coding_environment,
    compress,
    decode_container,
    decompress,
    model_fingerprint,
)
from multibyte.compression.container import CompressionError, Container, ContainerError, unpack

__all__ = [
    "DEFAULT_BATCH",
    "CompressionError",
    "Container",
    "ContainerError",
    "EnvironmentMismatchError",
    "ModelMismatchError",
    "check_compatible",
    "coding_environment",
    "compress",
    "decode_container",
    "decompress",
    "model_fingerprint",
    "unpack",
]
