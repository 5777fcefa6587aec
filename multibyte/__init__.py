"""multibyte: tokenizer-free, multiscale byte modelling (MEGABYTE) for text, images and audio.

The core knows only byte tensors: LongTensor [B, T] of values 0..255. File formats live in the
`modalities` package; training lives in `multibyte.train`.
"""

from multibyte import flops
from multibyte.metrics import bits_per_byte
from multibyte.model import ByteTransformer, ByteTransformerConfig, Megabyte, MegabyteConfig

__version__ = "0.1.0"


def load(ckpt_path, map_location="cpu"):
    """The trained model in eval mode, with `.modality` (adapter options) attached."""
    from multibyte.checkpoint import load_model

    return load_model(ckpt_path, map_location=map_location)


__all__ = [
    "ByteTransformer",
    "ByteTransformerConfig",
    "Megabyte",
    "MegabyteConfig",
    "bits_per_byte",
    "flops",
    "load",
]
