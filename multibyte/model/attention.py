"""Causal self-attention over `scaled_dot_product_attention`, rotary positions, a KV cache."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class KVCache:
    """Preallocated keys and values for one attention layer, for any batch size.

    Decoding appends in place, so no tensor is reallocated per step; `reset` just rewinds.
    With token shift (`shift_channels` > 0) it also holds, per sublayer (attention, MLP), the
    shifted channels of the newest position's input, which the next position reads; they are
    zero at the start of a sequence (after `reset` and `keep_last`).
    """

    def __init__(
        self,
        batch: int,
        heads: int,
        max_len: int,
        head_dim: int,
        device,
        dtype,
        zeroed=False,
        shift_channels: int = 0,
    ) -> None:
        shape = (batch, heads, max_len, head_dim)
        # Eager decoding reads only below `length`; a static step reads every position under a
        # mask, and masked garbage (NaN * 0) would leak into it, so it asks for zeros.
        allocate = torch.zeros if zeroed else torch.empty
        self.keys = allocate(shape, device=device, dtype=dtype)
        self.values = allocate(shape, device=device, dtype=dtype)
        self.length = 0
        self.shifted = [
            torch.zeros(batch, shift_channels, device=device, dtype=dtype) for _ in range(2)
        ]

    def reset(self) -> None:
        self.length = 0
        self._clear_shifted()

    def tensors(self) -> list[torch.Tensor]:
        """Every tensor a decoding step writes (keys, values, token-shift state)."""
        return [self.keys, self.values, *self.shifted]

    def _clear_shifted(self) -> None:
        for state in self.shifted:
            state.zero_()

    def append(self, k: torch.Tensor, v: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        start, end = self.length, self.length + k.shape[2]
        if end > self.keys.shape[2]:
            raise RuntimeError(
                f"KV cache overflow: {end} positions > capacity {self.keys.shape[2]}"
            )
        self.keys[:, :, start:end] = k
        self.values[:, :, start:end] = v
        self.length = end
        return self.keys[:, :, :end], self.values[:, :, :end]

    def keep_last(self, count: int, rotary: Rotary | None = None, end: int | None = None) -> None:
        """Keep only the newest `count` positions, moved to the front (cross-patch attention).

        Rotary keys are re-rotated so that they sit at positions 0..count-1, as in training.
        `end`: the slot after the newest position (a static step's caches keep no length).
        """
        end = self.length if end is None else end
        start = end - count
        keys = self.keys[:, :, start:end].clone()
        values = self.values[:, :, start:end].clone()
        if rotary is not None:
            keys = rotary.shift(keys, -start)
        self.keys[:, :, :count] = keys
        self.values[:, :, :count] = values
        self.length = count
        self._clear_shifted()  # token shift starts afresh in each patch (carried keys do not)

    def make_room(self, count: int, rotary: Rotary) -> None:
        """Move every position `count` slots (and rotary positions) later, with zeros in front:
        a first patch laid out as later ones are, behind `count` carried slots (masked)."""
        keys = rotary.shift(self.keys[:, :, : self.length], count)
        values = self.values[:, :, : self.length].clone()
        self.keys[:, :, count : count + self.length] = keys
        self.values[:, :, count : count + self.length] = values
        self.keys[:, :, :count] = 0
        self.values[:, :, :count] = 0
        self.length += count


class Rotary(nn.Module):
    """Rotary position embedding (RoFormer); relative positions let attention cross patch edges."""

    def __init__(self, head_dim: int, max_len: int, base: float = 10000.0) -> None:
        super().__init__()
        if head_dim % 2:
            raise ValueError(f"rotary embeddings need an even head dimension, got {head_dim}")
        inv_freq = 1.0 / base ** (torch.arange(0, head_dim, 2, dtype=torch.float64) / head_dim)
        angles = torch.outer(torch.arange(max_len, dtype=torch.float64), inv_freq)
        self.register_buffer("cos", angles.cos().float(), persistent=False)
        self.register_buffer("sin", angles.sin().float(), persistent=False)
        self.register_buffer("inv_freq", inv_freq, persistent=False)

    def forward(self, x: torch.Tensor, offset: int = 0) -> torch.Tensor:
        # x: [batch, heads, length, head_dim]; rotate channel pairs (first half, second half).
        length = x.shape[-2]
        cos = self.cos[offset : offset + length].to(x.dtype)
        sin = self.sin[offset : offset + length].to(x.dtype)
        return _rotate(x, cos, sin)

    def shift(self, x: torch.Tensor, delta: int) -> torch.Tensor:
        """Move already-rotated vectors by `delta` positions (negative moves them back)."""
        angle = delta * self.inv_freq.float()
        return _rotate(x, angle.cos().to(x.dtype), angle.sin().to(x.dtype))


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    x1, x2 = x.chunk(2, dim=-1)
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention.

    With `cross_patch=r`, the input is a batch of patches (rows x patches flattened) and every
    patch also attends to the last r keys and values of the previous patch of its row, computed
    in that patch's own pass, as in MEGABYTE's cross-patch local attention. Relative positions
    then come from rotary embeddings: the current patch sits at positions r.., the carried keys
    at 0..r-1, exactly as the KV cache holds them after `keep_last(r)` during generation.
    """

    def __init__(
        self,
        dim: int,
        heads: int,
        dropout: float = 0.0,
        qk_norm: bool = False,
        rotary_max_len: int | None = None,
        cross_patch: int = 0,
        head_dim: int | None = None,
        norm: type[nn.Module] = nn.LayerNorm,
    ) -> None:
        super().__init__()
        self.heads = heads
        self.head_dim = head_dim or dim // heads
        self.inner = heads * self.head_dim  # q, k and v width (dim unless head_dim is set)
        self.qkv = nn.Linear(dim, 3 * self.inner, bias=False)
        self.proj = nn.Linear(self.inner, dim, bias=False)
        self.dropout = dropout
        # qk-layernorm keeps attention logits bounded in large or long runs.
        self.q_norm = norm(self.head_dim) if qk_norm else nn.Identity()
        self.k_norm = norm(self.head_dim) if qk_norm else nn.Identity()
        self.qk_norm = qk_norm
        self.rotary = Rotary(self.head_dim, rotary_max_len) if rotary_max_len else None
        if cross_patch and self.rotary is None:
            raise ValueError("cross_patch attention needs rotary positions (rotary_max_len)")
        self.cross_patch = cross_patch

    def forward(
        self, x: torch.Tensor, cache: KVCache | None = None, rows: int | None = None
    ) -> torch.Tensor:
        """x: [batch, length, dim]. `rows` (cross-patch training only): sequences in the batch."""
        batch, length, _ = x.shape
        q, k, v = self.qkv(x).view(batch, length, 3, self.heads, self.head_dim).unbind(2)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        q, k = self.q_norm(q), self.k_norm(k)
        if cache is not None:
            offset = cache.length
        else:
            offset = self.cross_patch  # room for the carried keys of the previous patch
        if self.rotary is not None:
            q, k = self.rotary(q, offset), self.rotary(k, offset)

        attn_mask, is_causal = None, False
        if cache is not None:
            k, v = cache.append(k, v)
            if length > 1:
                if offset == 0:
                    is_causal = True
                else:  # a chunk after cached positions: query i sees keys <= offset + i
                    attn_mask = _causal_mask(length, offset, x.device)
        elif self.cross_patch:
            k, v, attn_mask = self._with_previous_patch(k, v, rows or batch)
        else:
            is_causal = True  # lets SDPA pick the flash / memory-efficient kernels
        dropout = self.dropout if self.training else 0.0
        y = attend(q, k, v, attn_mask=attn_mask, dropout_p=dropout, is_causal=is_causal)
        return self.proj(y.transpose(1, 2).reshape(batch, length, self.inner))

    def _position_qkv(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """Queries, keys and values [batch, heads, 1, head_dim] of one new position per row."""
        shape = (x.shape[0], 3, self.heads, 1, self.head_dim)
        q, k, v = F.linear(x, self.qkv.weight).view(shape).unbind(1)
        if self.qk_norm:
            q, k = self.q_norm(q), self.k_norm(k)
        return q, k, v

    def step(self, x: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """One new position per row, x: [batch, dim] -> [batch, dim] (cached decoding).

        The same computation as `forward` with a cache and length 1, in fewer, allocation-light
        ops: with one query no transposes are needed and no mask exists.
        """
        q, k, v = self._position_qkv(x)
        if self.rotary is not None:
            q, k = self.rotary(q, cache.length), self.rotary(k, cache.length)
        keys, values = cache.append(k, v)
        y = F.scaled_dot_product_attention(q, keys, values)  # [batch, heads, 1, head_dim]
        return F.linear(y.view(x.shape[0], self.inner), self.proj.weight)

    def static_step(
        self, x: torch.Tensor, cache: KVCache, position: torch.Tensor, visible: torch.Tensor
    ) -> torch.Tensor:
        """`step` with fixed shapes for a compiled graph: the new key and value are written at
        `position` (a LongTensor [1]) and the query attends to every cache slot under the mask
        `visible` [1, capacity] (slots <= position), so no shape depends on the step."""
        q, k, v = self._position_qkv(x)
        if self.rotary is not None:
            cos = self.rotary.cos[position].to(q.dtype)  # [1, head_dim / 2]
            sin = self.rotary.sin[position].to(q.dtype)
            q, k = _rotate(q, cos, sin), _rotate(k, cos, sin)
        cache.keys.index_copy_(2, position, k)
        cache.values.index_copy_(2, position, v)
        # Attention written out (one query row): inductor fuses it into the step's own loops,
        # where the SDPA kernel's setup per call costs more than the arithmetic at this size.
        y = written_out_attention(q, cache.keys, cache.values, attn_mask=visible)
        return F.linear(y.view(x.shape[0], self.inner), self.proj.weight)

    def _with_previous_patch(
        self, k: torch.Tensor, v: torch.Tensor, rows: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        batch, heads, length, head_dim = k.shape
        carried = self.cross_patch
        patches = batch // rows

        def previous(t: torch.Tensor) -> torch.Tensor:
            last = t[:, :, length - carried :].reshape(rows, patches, heads, carried, head_dim)
            last = torch.cat([torch.zeros_like(last[:, :1]), last[:, :-1]], dim=1)
            return last.reshape(batch, heads, carried, head_dim)

        # The previous patch's keys were rotated at positions r+length-r.. ; move them to 0..r-1.
        k_prev = self.rotary.shift(previous(k), -length)
        keys = torch.cat([k_prev, k], dim=2)
        values = torch.cat([previous(v), v], dim=2)
        mask = _causal_mask(length, carried, k.device).expand(batch, 1, length, length + carried)
        first_patch = torch.zeros(rows, patches, dtype=torch.bool, device=k.device)
        first_patch[:, 0] = True  # the first patch of a row has no previous patch
        sees_carried = ~first_patch.reshape(batch, 1, 1, 1)
        mask = torch.cat([mask[..., :carried] & sees_carried, mask[..., carried:]], dim=-1)
        return keys, values, mask


# Keys up to this many: half-precision attention on a CPU is written out (see `attend`).
WRITTEN_OUT_MAX_KEYS = 128


def attend(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
) -> torch.Tensor:
    """`scaled_dot_product_attention`, written out for short bfloat16/float16 rows on a CPU.

    MEGABYTE's local model attends within patches: thousands of rows of a few keys each. There
    the fused CPU kernels run half precision slowly (forward and backward of 1,536 rows of 16
    keys: 171 ms, against 23 ms for these products on the CPU's bf16 units), while from a few
    hundred keys on, the fused kernel wins (`python -m benchmarks run cpu_bf16`). The softmax
    is taken in float32.
    """
    short_half_on_cpu = (
        q.device.type == "cpu"
        and q.dtype in (torch.bfloat16, torch.float16)
        and k.shape[-2] <= WRITTEN_OUT_MAX_KEYS
    )
    if not short_half_on_cpu:
        return F.scaled_dot_product_attention(
            q, k, v, attn_mask=attn_mask, dropout_p=dropout_p, is_causal=is_causal
        )
    return written_out_attention(q, k, v, attn_mask, dropout_p, is_causal)


def written_out_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    attn_mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    is_causal: bool = False,
) -> torch.Tensor:
    """Attention as two products and a float32 softmax; `is_causal`: queries are the keys."""
    scores = (q * q.shape[-1] ** -0.5) @ k.transpose(-1, -2)
    if is_causal:
        attn_mask = torch.ones(q.shape[-2], k.shape[-2], dtype=torch.bool, device=q.device).tril()
    if attn_mask is not None:
        scores = scores.masked_fill(~attn_mask, float("-inf"))
    weights = scores.float().softmax(dim=-1).to(v.dtype)
    if dropout_p:
        weights = F.dropout(weights, dropout_p)
    return weights @ v


def _causal_mask(length: int, offset: int, device) -> torch.Tensor:
    key_pos = torch.arange(offset + length, device=device)
    query_pos = torch.arange(offset, offset + length, device=device)
    return key_pos[None, :] <= query_pos[:, None]
