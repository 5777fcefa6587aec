"""Next-byte cross-entropy computed in chunks, fused with the output head.

At long sequences the float32 logits [B, T, 256] are the largest activation of all (1 GiB per
million bytes). Here the head and the loss run one chunk of positions at a time, and each chunk
is recomputed in the backward pass instead of being stored, so at most one chunk of logits
exists at any time.

`next_byte_loss` is the training objective itself: `ByteLM.training_step` and every benchmark's
training step call it, so a bytes/s figure always means the same step.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint


def _chunk_loss(
    hidden: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None, targets: torch.Tensor
) -> torch.Tensor:
    logits = F.linear(hidden, weight, bias)
    if logits.dtype in (torch.float16, torch.bfloat16):
        logits = logits.float()  # the softmax of low-precision logits runs in float32
    return F.cross_entropy(
        logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), reduction="sum"
    )


def cross_entropy_sum(
    hidden: torch.Tensor, head: nn.Linear, targets: torch.Tensor, chunk_size: int | None = 8192
) -> torch.Tensor:
    """Summed cross-entropy in nats (a float32 scalar, or float64 for a float64 model).

    hidden: [B, T, D]; targets: LongTensor [B, T]. `chunk_size` positions per chunk (per row);
    None computes everything at once. Every byte value is a target; nothing is ignored.
    """
    length = hidden.shape[1]
    if chunk_size is None or chunk_size >= length:
        return _chunk_loss(hidden, head.weight, head.bias, targets)
    total = hidden.new_zeros((), dtype=torch.promote_types(hidden.dtype, torch.float32))
    for start in range(0, length, chunk_size):
        piece = (
            hidden[:, start : start + chunk_size],
            head.weight,
            head.bias,
            targets[:, start : start + chunk_size],
        )
        if torch.is_grad_enabled() and hidden.requires_grad:
            total = total + checkpoint(_chunk_loss, *piece, use_reentrant=False)
        else:
            total = total + _chunk_loss(*piece)
    return total


def next_byte_nats(
    model: nn.Module, batch: torch.Tensor, chunk_size: int | None = 8192
) -> torch.Tensor:
    """Summed next-byte cross-entropy of `model` on `batch` [B, T] in nats: its `hidden(batch)`
    through its `head`, fused and chunked (`cross_entropy_sum`). Validation accumulates this."""
    return cross_entropy_sum(model.hidden(batch), model.head, batch, chunk_size)


def next_byte_loss(
    model: nn.Module, batch: torch.Tensor, chunk_size: int | None = 8192
) -> torch.Tensor:
    """The training loss: mean nats per byte over every byte of `batch`. This is what
    `multibyte.train.ByteLM.training_step` optimizes and what every benchmark's step runs."""
    return next_byte_nats(model, batch, chunk_size) / batch.numel()
