"""Pre-norm transformer blocks shared by every stage of MEGABYTE and by the byte transformer,
and small helpers on byte inputs (`check_bytes`, `shift_right`) and tables (`ordinal_table`)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from multibyte.model.attention import CausalSelfAttention, KVCache

VOCAB = 256  # every byte value is data; there is no special token
ACTIVATIONS = {"relu": F.relu, "gelu": F.gelu}
NORMS: dict[str, type[nn.Module]] = {"layernorm": nn.LayerNorm, "rmsnorm": nn.RMSNorm}


@dataclass(frozen=True)
class StackConfig:
    """One transformer stack: the global model, the local model, or the byte transformer."""

    dim: int
    layers: int
    heads: int
    mlp_ratio: float = 4.0
    activation: str = "relu"
    dropout: float = 0.0
    qk_norm: bool = False
    rotary_max_len: int | None = None
    """Positions the rotary table covers; None disables rotary embeddings."""
    cross_patch: int = 0
    """Keys and values carried over from the previous patch (local stage only)."""
    checkpoint: bool = False
    """Recompute each block's activations in the backward pass to save memory."""
    norm: str = "layernorm"
    """Every norm of the stack (blocks, final, qk-norm): a key of NORMS."""
    token_shift: bool = False
    """Each sublayer reads the last dim // 2 channels from the position before (RWKV)."""
    head_dim: int | None = None
    """Attention width per head; None: dim // heads."""

    @property
    def attention_head_dim(self) -> int:
        return self.head_dim or self.dim // self.heads


class MLP(nn.Module):
    def __init__(self, dim: int, hidden: int, activation: str, dropout: float) -> None:
        super().__init__()
        self.up = nn.Linear(dim, hidden)
        self.down = nn.Linear(hidden, dim)
        self.activation = ACTIVATIONS[activation]
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.down(self.activation(self.up(x))))


class Block(nn.Module):
    """Pre-norm block: x + attention(norm(x)), then x + MLP(norm(x)). With token shift each
    sublayer reads x with its last dim // 2 channels taken from the position before (zeros at
    the first position of the sequence, or in decoding the cache's `shifted` state)."""

    def __init__(self, config: StackConfig) -> None:
        super().__init__()
        norm = NORMS[config.norm]
        self.attn_norm = norm(config.dim)
        self.attn = CausalSelfAttention(
            config.dim,
            config.heads,
            dropout=config.dropout,
            qk_norm=config.qk_norm,
            rotary_max_len=config.rotary_max_len,
            cross_patch=config.cross_patch,
            head_dim=config.head_dim,
            norm=norm,
        )
        self.mlp_norm = norm(config.dim)
        self.mlp = MLP(config.dim, int(config.mlp_ratio * config.dim), config.activation, 0.0)
        self.dropout = nn.Dropout(config.dropout)
        # channels [kept:] come from the position before; kept == dim: no token shift
        self.kept = config.dim - config.dim // 2 if config.token_shift else config.dim

    def forward(
        self, x: torch.Tensor, cache: KVCache | None = None, rows: int | None = None
    ) -> torch.Tensor:
        x = x + self.dropout(self.attn(self.attn_norm(self._shift(x, cache, 0)), cache, rows))
        return x + self.dropout(self.mlp(self.mlp_norm(self._shift(x, cache, 1))))

    def _shift(self, x: torch.Tensor, cache: KVCache | None, sublayer: int) -> torch.Tensor:
        """x [batch, length, dim] as the sublayer reads it: the token-shifted stream."""
        if self.kept == x.shape[-1]:
            return x
        moved = x[..., self.kept :]
        if cache is None:
            before = moved.new_zeros(moved.shape[0], 1, moved.shape[2])
        else:  # a prefill continues from the cache's last position (zeros in a fresh one)
            before = cache.shifted[sublayer][:, None].to(moved.dtype)
        shifted = torch.cat([x[..., : self.kept], torch.cat([before, moved[:, :-1]], 1)], -1)
        if cache is not None:  # after the read: `before` is a view of this state
            cache.shifted[sublayer].copy_(moved[:, -1])
        return shifted

    def _shift_step(
        self, x: torch.Tensor, cache: KVCache, sublayer: int, position: torch.Tensor | None = None
    ) -> torch.Tensor:
        """One position x [batch, dim] as the sublayer reads it; stores its shifted channels for
        the next position. `position` (static steps): the state counts only after position 0."""
        if self.kept == x.shape[-1]:
            return x
        state = cache.shifted[sublayer]
        before = state if position is None else torch.where(position > 0, state, 0.0)
        h = torch.cat([x[:, : self.kept], before.to(x.dtype)], dim=-1)
        state.copy_(x[:, self.kept :])
        return h

    def step(self, x: torch.Tensor, cache: KVCache) -> torch.Tensor:
        """One cached decoding position, x: [batch, dim] (inference: no dropout, no modules
        called per op, so a step is a short chain of kernels)."""
        x = x + self.attn.step(_norm(self._shift_step(x, cache, 0), self.attn_norm), cache)
        h = _norm(self._shift_step(x, cache, 1), self.mlp_norm)
        mlp = self.mlp
        h = mlp.activation(F.linear(h, mlp.up.weight, mlp.up.bias))
        return x + F.linear(h, mlp.down.weight, mlp.down.bias)

    def static_step(
        self,
        x: torch.Tensor,
        cache: KVCache,
        position: torch.Tensor,
        slot: torch.Tensor,
        visible: torch.Tensor,
    ) -> torch.Tensor:
        """`step` with fixed shapes (see `CausalSelfAttention.static_step`): token shift reads
        `position`, the new key goes to cache `slot` (position + carried cross-patch keys)."""
        h = _norm(self._shift_step(x, cache, 0, position), self.attn_norm)
        x = x + self.attn.static_step(h, cache, slot, visible)
        h = _norm(self._shift_step(x, cache, 1, position), self.mlp_norm)
        mlp = self.mlp
        h = mlp.activation(F.linear(h, mlp.up.weight, mlp.up.bias))
        return x + F.linear(h, mlp.down.weight, mlp.down.bias)


def _norm(x: torch.Tensor, norm: nn.Module) -> torch.Tensor:
    """`norm(x)` as a plain functional call (LayerNorm or RMSNorm)."""
    if isinstance(norm, nn.RMSNorm):
        return F.rms_norm(x, norm.normalized_shape, norm.weight, norm.eps)
    return F.layer_norm(x, norm.normalized_shape, norm.weight, norm.bias, norm.eps)


class TransformerStack(nn.Module):
    """Blocks followed by a final norm (pre-norm residual stream needs one at the end)."""

    def __init__(self, config: StackConfig) -> None:
        super().__init__()
        self.config = config
        self.blocks = nn.ModuleList(Block(config) for _ in range(config.layers))
        self.norm = NORMS[config.norm](config.dim)

    def forward(
        self,
        x: torch.Tensor,
        caches: list[KVCache] | None = None,
        rows: int | None = None,
    ) -> torch.Tensor:
        for index, block in enumerate(self.blocks):
            if caches is not None:
                x = block(x, caches[index])
            elif self.config.checkpoint and self.training and torch.is_grad_enabled():
                x = checkpoint(block, x, None, rows, use_reentrant=False)
            else:
                x = block(x, None, rows)
        return self.norm(x)

    def step(self, x: torch.Tensor, caches: list[KVCache]) -> torch.Tensor:
        """Cached decoding of one new position per row: x [batch, dim] -> [batch, dim]."""
        for block, cache in zip(self.blocks, caches):
            x = block.step(x, cache)
        return _norm(x, self.norm)

    def static_step(
        self,
        x: torch.Tensor,
        caches: list[KVCache],
        position: torch.Tensor,
        carried: int = 0,
        carried_visible: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """`step` for a compiled graph: the new position is `position`, a LongTensor [1] (not
        the caches' Python-side lengths), every shape is fixed by the caches' capacity.

        Cross-patch attention: the first `carried` slots hold the previous patch's last keys
        (`KVCache.keep_last`), position p sits in slot p + carried, and the carried slots are
        read where `carried_visible` (a bool tensor: not the sequence's first patch)."""
        slots = torch.arange(caches[0].keys.shape[2], device=x.device)
        slot = position + carried
        visible = slots <= slot
        if carried:
            visible = visible & ((slots >= carried) | carried_visible)
        visible = visible[None]  # [1, capacity]: the one query row
        for block, cache in zip(self.blocks, caches):
            x = block.static_step(x, cache, position, slot, visible)
        return _norm(x, self.norm)

    def new_caches(
        self, batch: int, max_len: int, like: torch.Tensor, zeroed: bool = False
    ) -> list[KVCache]:
        """Per-layer caches for `batch` sequences of up to `max_len` positions (zero-filled when
        `zeroed`, as `static_step` needs)."""
        config = self.config
        shape = (batch, config.heads, max_len, config.attention_head_dim)
        shift = config.dim // 2 if config.token_shift else 0
        return [KVCache(*shape, like.device, like.dtype, zeroed, shift) for _ in self.blocks]


def compile_blocks(model: nn.Module) -> int:
    """`torch.compile` every transformer block of `model` in place; returns how many.

    Blocks rather than the whole model: training calls `model.hidden`, which a compiled
    `forward` would never see; block graphs are small, identical blocks share them, and they
    work under activation checkpointing. Parameter names and the module API are unchanged, and
    cached decoding (`Block.step`) stays eager.
    """
    blocks = [module for module in model.modules() if isinstance(module, Block)]
    for block in blocks:
        block.compile()
    return len(blocks)


def cpu_compile_unavailable() -> str | None:
    """Why `torch.compile` cannot build CPU kernels here, or None: inductor's CPU kernels are
    C++, compiled on first use, so a machine without a C++ compiler fails at the first step."""
    from torch._inductor import cpp_builder, exc

    try:
        cpp_builder.get_cpp_compiler()
    except exc.InvalidCxxCompiler:
        return "torch.compile on the CPU needs a C++ compiler (g++ or clang++), and none was found"
    return None


def shift_right(tokens: torch.Tensor, pad: nn.Parameter) -> torch.Tensor:
    """Drop the last token and put the trainable pad first, so token i sees only tokens < i."""
    pad = pad.to(tokens.dtype).expand(tokens.shape[0], 1, -1)
    return torch.cat([pad, tokens[:, :-1]], dim=1)


def check_bytes(x: torch.Tensor, max_seq_len: int) -> tuple[int, int]:
    if x.dim() != 2 or x.dtype not in (torch.int64, torch.int32, torch.uint8, torch.int16):
        raise ValueError(
            f"expected an integer tensor [B, T] of bytes, got {tuple(x.shape)} {x.dtype}"
        )
    batch, length = x.shape
    if not 1 <= length <= max_seq_len:
        raise ValueError(f"sequence length {length} must be in 1..max_seq_len={max_seq_len}")
    return batch, length


def ordinal_table(width: int, std: float, scale: float = 16.0) -> torch.Tensor:
    """[256, width] rows smooth in the byte value v: the DCT-II basis cos(pi k (v + 1/2) / 256),
    its frequency k weighted 1 / (1 + k / scale), mixed by a normal [256, width] matrix, centred
    and scaled to `std`. Rows of values a few apart are close (cosine ~0.86 at 1 apart, ~0.06 at
    10, for scale 16), distant ones unrelated; all 256 frequencies keep every row distinct."""
    value = torch.arange(VOCAB, dtype=torch.float64) + 0.5
    frequency = torch.arange(VOCAB, dtype=torch.float64)
    basis = torch.cos(math.pi * value[:, None] * frequency[None, :] / VOCAB)
    mix = torch.randn(VOCAB, width, dtype=torch.float64)
    table = (basis / (1.0 + frequency / scale)) @ mix
    table = table - table.mean(0)
    return (table * (std / table.std())).float()
