"""multibyte: tokenizer-free, multiscale byte modelling (MEGABYTE) for text, images and audio.

The core knows only byte tensors: LongTensor [B, T] of values 0..255. File formats live in the
`modalities` package; training lives in `multibyte.train`.

Names are imported lazily, so `multibyte prepare` (which needs no torch model) starts fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

_LAZY = {
    "Megabyte": "multibyte.model.megabyte",
    "MegabyteConfig": "multibyte.model.config",
    "ByteTransformer": "multibyte.model.transformer",
    "ByteTransformerConfig": "multibyte.model.transformer",
    "bits_per_byte": "multibyte.metrics",
    "load": "multibyte.checkpoint",
    "compress": "multibyte.compression",
    "decompress": "multibyte.compression",
}

if TYPE_CHECKING:
    from multibyte import flops
    from multibyte.checkpoint import load
    from multibyte.compression import compress, decompress
    from multibyte.metrics import bits_per_byte
    from multibyte.model.config import MegabyteConfig
    from multibyte.model.megabyte import Megabyte
    from multibyte.model.transformer import ByteTransformer, ByteTransformerConfig


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    if name == "flops":
        return importlib.import_module("multibyte.flops")
    raise AttributeError(f"module 'multibyte' has no attribute {name!r}")


__all__ = [
    "ByteTransformer",
    "ByteTransformerConfig",
    "Megabyte",
    "MegabyteConfig",
    "bits_per_byte",
    "compress",
    "decompress",
    "flops",
    "load",
]
