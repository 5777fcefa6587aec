"""Turning next-byte logits into bytes: greedy, temperature, top-k and nucleus (top-p) sampling."""

from __future__ import annotations

import torch


def check_sampling_args(temperature: float, top_k: int | None, top_p: float | None) -> None:
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    if top_k is not None and not 1 <= top_k <= 256:
        raise ValueError(f"top_k must be in 1..256, got {top_k}")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ValueError(f"top_p must be in (0, 1], got {top_p}")


def sample_next_byte(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """logits: [B, 256] -> LongTensor [B].

    Sampling inverts the CDF at one uniform draw per row, so a run consumes the generator the
    same way whatever produced the logits (cached or not), and equal logits give equal bytes.
    """
    if temperature == 0:
        return logits.argmax(dim=-1)
    logits = logits.float() / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[:, -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    probs = torch.softmax(logits, dim=-1)
    if top_p is not None and top_p < 1.0:
        sorted_probs, order = probs.sort(dim=-1, descending=True)
        # keep the smallest prefix whose mass reaches top_p (always at least the top byte)
        drop = sorted_probs.cumsum(dim=-1) - sorted_probs >= top_p
        sorted_probs = sorted_probs.masked_fill(drop, 0.0)
        probs = torch.zeros_like(probs).scatter(-1, order, sorted_probs)
        probs = probs / probs.sum(dim=-1, keepdim=True)
    uniform = torch.rand(probs.shape[0], 1, generator=generator, device=probs.device)
    cdf = probs.double().cumsum(dim=-1)
    cdf = cdf / cdf[:, -1:]
    # right=True never selects a zero-probability byte: its CDF step has zero width
    index = torch.searchsorted(cdf, uniform.double(), right=True).clamp_(max=probs.shape[-1] - 1)
    return index.squeeze(-1)
