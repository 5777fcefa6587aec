"""Byte models: MEGABYTE and the byte-transformer baseline, built on shared layers."""

from multibyte.model.config import MegabyteConfig
from multibyte.model.megabyte import Megabyte
from multibyte.model.transformer import ByteTransformer, ByteTransformerConfig

__all__ = ["ByteTransformer", "ByteTransformerConfig", "Megabyte", "MegabyteConfig"]
