"""Bits per byte, accumulated exactly: float64 sums and int64 counts, never bf16."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

LN2 = math.log(2.0)


def nll_bits(logits: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-byte negative log-likelihood in bits, float64, same shape as x.

    The log-softmax runs in float64, so a uniform model scores exactly 8 bits; every byte value
    0..255 is scored, none is ignored.
    """
    if logits.shape[:-1] != x.shape or logits.shape[-1] != 256:
        raise ValueError(f"logits {tuple(logits.shape)} do not match bytes {tuple(x.shape)} x 256")
    nats = F.cross_entropy(logits.double().reshape(-1, 256), x.reshape(-1).long(), reduction="none")
    return (nats / LN2).reshape(x.shape)


def bits_per_byte(logits: torch.Tensor, x: torch.Tensor) -> float:
    """Summed cross-entropy in bits divided by the number of bytes: logits [..., 256], x [...]."""
    if x.numel() == 0:
        raise ValueError("bits_per_byte needs at least one byte")
    return float(nll_bits(logits, x).sum() / x.numel())
