"""Generation shared by both models: the sampling loop, and next-byte sampling (greedy,
temperature, top-k, nucleus)."""

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


def generate_bytes(
    model: torch.nn.Module,
    prompt: torch.Tensor,
    max_new_bytes: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    use_cache: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Shared sampling loop of both models: `model.decoder(buffer)` gives prefill/advance."""
    check_sampling_args(temperature, top_k, top_p)
    if prompt.dim() != 2:
        raise ValueError(f"prompt must be [B, T0], got shape {tuple(prompt.shape)}")
    if max_new_bytes < 0:
        raise ValueError(f"max_new_bytes must be >= 0, got {max_new_bytes}")
    batch, start = prompt.shape
    total = start + max_new_bytes
    if total > model.config.max_seq_len:
        raise ValueError(
            f"prompt + max_new_bytes = {total} exceeds max_seq_len={model.config.max_seq_len}"
        )
    was_training = model.training
    model.eval()
    buffer = prompt.new_zeros(batch, total, dtype=torch.long, device=model.head.weight.device)
    buffer[:, :start] = prompt
    decoder = model.decoder(buffer) if use_cache else None
    for t in range(start, total):
        if decoder is None:  # recompute from scratch; buffer[:, t] is a placeholder it never sees
            logits = model(buffer[:, : t + 1])[:, t]
        else:
            logits = decoder.prefill(t) if t == start else decoder.advance(t)
        buffer[:, t] = sample_next_byte(logits, temperature, top_k, top_p, generator)
    model.train(was_training)
    return buffer
