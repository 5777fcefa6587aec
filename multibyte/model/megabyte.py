"""MEGABYTE (Yu et al. 2023, arXiv 2305.07185): a global transformer over patches of P bytes and a
small local transformer over the bytes of each patch.

Notation follows the paper. For T bytes and K = T / P patches:

    h_embed[t]     = E_global[x_t] + E_pos[t]                              (D_G wide)
    h_global_in[k] = E_global_pad if k == 0 else concat(h_embed[(k-1)P : kP])   (P * D_G wide)
    h_global_out   = transformer_global(h_global_in)                       (global_dim wide)
    h_local_in[k,p] = w_GL h_global_out[k, p-th D_G slice]
                      + (E_local_pad if p == 0 else E_local[x_{kP+p-1}]) + E_local_pos[p]
    h_local_out[k] = transformer_local(h_local_in[k])                      (all patches at once)
    p(x_{kP+p} | x_{<kP+p}) = softmax(head(h_local_out[k, p]))

The N-stage generalisation (`patch_sizes=(P1, P2, ...)`) stacks the same step: every stage
splits its parent's output into slices, one per child token, and adds the shifted embeddings of
the child tokens. Two stages (`patch_sizes=(P,)`) is exactly the model above.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

import torch
import torch.nn.functional as F
from torch import nn

from multibyte.model.blocks import (
    ACTIVATIONS,
    VOCAB,
    StackConfig,
    TransformerStack,
    check_bytes,
    shift_right,
)
from multibyte.model.generation import generate_bytes


@dataclass
class MegabyteConfig:
    patch_size: int | None = None
    """P, bytes per global patch. Defaults to patch_sizes[0], or 8."""
    max_seq_len: int = 8192
    """Longest sequence in bytes; a multiple of P (sizes the global position table)."""
    global_dim: int = 512
    """Width of the global transformer, P * D_G in the paper (projected when not divisible)."""
    global_layers: int = 4
    global_heads: int = 8
    local_dim: int = 256
    local_layers: int = 2
    local_heads: int = 4
    global_byte_dim: int | None = None
    """D_G, the width of one byte's global embedding. Default: ceil(global_dim / P)."""
    patch_sizes: tuple[int, ...] | None = None
    """N-stage model: patch lengths in bytes from the outermost stage in, each dividing the last."""
    stage_dims: tuple[int, ...] = ()
    """Widths of the intermediate stages of an N-stage model (default: local_dim)."""
    stage_layers: tuple[int, ...] = ()
    stage_heads: tuple[int, ...] = ()
    cross_patch: int = 0
    """r: the local model also attends to the last r keys/values of the previous patch (rotary)."""
    conv_encoder: bool = False
    """Causal convolutions (kernels `conv_kernels`) over byte embeddings before patching."""
    conv_kernels: tuple[int, ...] = (3, 5, 7)
    qk_norm: bool = False
    dropout: float = 0.0
    rotary: bool = False
    """Rotary positions in every stage (the local stage always uses them with cross_patch)."""
    mlp_ratio: float = 4.0
    activation: str = "relu"
    """MLP non-linearity: "relu" (the paper's) or "gelu"."""
    tie_embeddings: bool = True
    """Output head shares E_local, as in the paper's softmax(E_local h_local_out)."""
    init_std: float = 0.02
    activation_checkpointing: bool = False
    """Recompute block activations in backward, per stage, to train longer sequences."""

    def __post_init__(self) -> None:
        if self.patch_sizes is not None:
            self.patch_sizes = tuple(int(size) for size in self.patch_sizes)
            if not self.patch_sizes:
                raise ValueError("patch_sizes must name at least one patch size")
            if self.patch_size is None:
                self.patch_size = self.patch_sizes[0]
        if self.patch_size is None:
            self.patch_size = 8
        self.stage_dims, self.stage_layers = tuple(self.stage_dims), tuple(self.stage_layers)
        self.stage_heads, self.conv_kernels = tuple(self.stage_heads), tuple(self.conv_kernels)
        self._validate()

    def _validate(self) -> None:
        for name in (
            "patch_size", "max_seq_len", "global_dim", "global_layers", "global_heads",
            "local_dim", "local_layers", "local_heads", "mlp_ratio", "init_std",
        ):  # fmt: skip
            if not getattr(self, name) > 0:
                raise ValueError(
                    f"MegabyteConfig.{name} must be positive, got {getattr(self, name)}"
                )
        if self.global_byte_dim is not None and self.global_byte_dim <= 0:
            raise ValueError(
                f"MegabyteConfig.global_byte_dim must be positive, got {self.global_byte_dim}"
            )
        sizes = self.patch_sizes or (self.patch_size,)
        if sizes[0] != self.patch_size:
            raise ValueError(
                f"MegabyteConfig.patch_size={self.patch_size} != patch_sizes[0]={sizes[0]}"
            )
        for outer, inner in zip(sizes, sizes[1:]):
            if not (inner > 0 and outer > inner and outer % inner == 0):
                raise ValueError(
                    f"MegabyteConfig.patch_sizes={sizes}: each must divide the one before"
                )
        if sizes[-1] < 1:
            raise ValueError(f"MegabyteConfig.patch_sizes={sizes} must be positive")
        if self.max_seq_len % self.patch_size:
            raise ValueError(
                f"MegabyteConfig.max_seq_len={self.max_seq_len} is not a multiple of "
                f"patch_size={self.patch_size}"
            )
        middle = len(sizes) - 1
        for name in ("stage_dims", "stage_layers", "stage_heads"):
            values = getattr(self, name)
            if values and len(values) != middle:
                raise ValueError(
                    f"MegabyteConfig.{name} needs {middle} entries (one per middle stage)"
                )
            if any(v <= 0 for v in values):
                raise ValueError(f"MegabyteConfig.{name} must be positive, got {values}")
        for stage, (dim, heads) in enumerate(zip(self.stage_widths, self.stage_head_counts)):
            if dim % heads:
                name = self._stage_field(stage, "dim"), self._stage_field(stage, "heads")
                raise ValueError(
                    f"MegabyteConfig.{name[1]}={heads} does not divide {name[0]}={dim}"
                )
        local_length = sizes[-1]
        if not 0 <= self.cross_patch <= local_length:
            raise ValueError(
                f"MegabyteConfig.cross_patch={self.cross_patch} must be in 0..{local_length} "
                "(the local patch length)"
            )
        rotary_stages = (
            range(len(sizes) + 1) if self.rotary else ([len(sizes)] if self.cross_patch else [])
        )
        for stage in rotary_stages:
            if (self.stage_widths[stage] // self.stage_head_counts[stage]) % 2:
                raise ValueError(
                    f"MegabyteConfig.{self._stage_field(stage, 'heads')}: rotary positions need an "
                    "even head dimension"
                )
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"MegabyteConfig.dropout must be in [0, 1), got {self.dropout}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"MegabyteConfig.activation must be one of {sorted(ACTIVATIONS)}")
        if self.conv_encoder and (not self.conv_kernels or any(k < 1 for k in self.conv_kernels)):
            raise ValueError(
                f"MegabyteConfig.conv_kernels must be positive, got {self.conv_kernels}"
            )

    def _stage_field(self, stage: int, kind: str) -> str:
        last = len(self.stage_widths) - 1
        if stage == 0:
            return f"global_{kind}"
        if stage == last:
            return f"local_{kind}"
        return f"stage_{kind}s[{stage - 1}]"

    # Derived per-stage sizes; stage 0 is the global model, the last stage the local model.
    @property
    def token_bytes(self) -> tuple[int, ...]:
        """Bytes per token at each stage: (P1, P2, ..., 1)."""
        return (*(self.patch_sizes or (self.patch_size,)), 1)

    @property
    def stage_widths(self) -> tuple[int, ...]:
        middle = len(self.token_bytes) - 2
        return (self.global_dim, *(self.stage_dims or (self.local_dim,) * middle), self.local_dim)

    @property
    def stage_depths(self) -> tuple[int, ...]:
        middle = len(self.token_bytes) - 2
        return (
            self.global_layers,
            *(self.stage_layers or (self.local_layers,) * middle),
            self.local_layers,
        )

    @property
    def stage_head_counts(self) -> tuple[int, ...]:
        middle = len(self.token_bytes) - 2
        return (
            self.global_heads,
            *(self.stage_heads or (self.local_heads,) * middle),
            self.local_heads,
        )

    @property
    def stage_byte_dims(self) -> tuple[int, ...]:
        """Width of one byte's embedding at each stage (D_G for the global stage)."""
        widths, sizes = self.stage_widths, self.token_bytes
        first = self.global_byte_dim or math.ceil(self.global_dim / self.patch_size)
        return (first, *(math.ceil(w / c) for w, c in zip(widths[1:-1], sizes[1:-1])), widths[-1])

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def preset(cls, name: str, **overrides) -> MegabyteConfig:
        """Named sizes: the paper's (Table 15) and small/tiny variants for one GPU or a CPU."""
        from multibyte.model.presets import MEGABYTE_PRESETS

        if name not in MEGABYTE_PRESETS:
            raise ValueError(f"unknown MEGABYTE preset {name!r}; known: {sorted(MEGABYTE_PRESETS)}")
        return replace(cls(**MEGABYTE_PRESETS[name]), **overrides)


class CausalConvEncoder(nn.Module):
    """Residual causal 1-D convolutions over byte embeddings (the paper's CNN patch encoder)."""

    def __init__(self, dim: int, kernels: tuple[int, ...]) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv1d(dim, dim, k) for k in kernels)
        self.context = sum(k - 1 for k in kernels)  # bytes of left context one output depends on

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, T, dim]
        h = x.transpose(1, 2)
        for conv in self.convs:
            h = h + conv(F.pad(F.gelu(h), (conv.kernel_size[0] - 1, 0)))  # pad left: causal
        return h.transpose(1, 2)


class Stage(nn.Module):
    """One scale: bytes grouped into tokens of `token_bytes`, a transformer over `length` tokens.

    A child stage (every stage but the global one) gets its context from the parent's output:
    the parent vector is split into `length` slices, each mapped by one shared linear (w_GL).
    """

    def __init__(
        self,
        token_bytes: int,
        byte_dim: int,
        stack: StackConfig,
        length: int,
        parent: tuple[int, int, int] | None = None,
    ) -> None:
        super().__init__()
        dim = stack.dim
        self.token_bytes, self.length = token_bytes, length
        self.byte_embed = nn.Embedding(VOCAB, byte_dim)
        concat = token_bytes * byte_dim
        self.token_proj = nn.Linear(concat, dim, bias=False) if concat != dim else nn.Identity()
        self.pad = nn.Parameter(torch.zeros(dim))
        self.transformer = TransformerStack(stack)
        if parent is not None:
            parent_dim, parent_token_bytes, parent_byte_dim = parent
            split = parent_token_bytes * parent_byte_dim
            self.parent_proj = (
                nn.Linear(parent_dim, split, bias=False) if split != parent_dim else nn.Identity()
            )
            self.parent_to_child = nn.Linear(split // length, dim, bias=False)  # w_GL
            self.position = nn.Embedding(length, dim)

    def tokens(self, byte_vectors: torch.Tensor) -> torch.Tensor:
        """[N, n * token_bytes, byte_dim] -> [N, n, dim]: concatenate each token's bytes."""
        n = byte_vectors.shape[1] // self.token_bytes
        return self.token_proj(byte_vectors.reshape(byte_vectors.shape[0], n, -1))

    def context(self, parent_out: torch.Tensor) -> torch.Tensor:
        """[N, parent_dim] -> [N, length, dim]: the parent's slice for each child position."""
        slices = self.parent_proj(parent_out).reshape(parent_out.shape[0], self.length, -1)
        return self.parent_to_child(slices)


class Megabyte(nn.Module):
    def __init__(self, config: MegabyteConfig) -> None:
        super().__init__()
        self.config = config
        sizes, widths, byte_dims = config.token_bytes, config.stage_widths, config.stage_byte_dims
        last = len(sizes) - 1
        self.stages = nn.ModuleList()
        for s, (size, dim) in enumerate(zip(sizes, widths)):
            length = config.max_seq_len // size if s == 0 else sizes[s - 1] // size
            cross = config.cross_patch if s == last else 0
            stack = StackConfig(
                dim=dim,
                layers=config.stage_depths[s],
                heads=config.stage_head_counts[s],
                mlp_ratio=config.mlp_ratio,
                activation=config.activation,
                dropout=config.dropout,
                qk_norm=config.qk_norm,
                rotary_max_len=length + cross if (config.rotary or cross) else None,
                cross_patch=cross,
                checkpoint=config.activation_checkpointing,
            )
            parent = None if s == 0 else (widths[s - 1], sizes[s - 1], byte_dims[s - 1])
            self.stages.append(Stage(size, byte_dims[s], stack, length, parent))
        self.global_position = nn.Embedding(config.max_seq_len, byte_dims[0])  # E_pos, per byte
        self.conv = (
            CausalConvEncoder(byte_dims[0], config.conv_kernels) if config.conv_encoder else None
        )
        self.head = nn.Linear(widths[-1], VOCAB, bias=False)
        self.apply(self._init_weights)
        for stage in self.stages:
            nn.init.normal_(stage.pad, std=config.init_std)
        if config.tie_embeddings:
            self.head.weight = self.stages[-1].byte_embed.weight

    def _init_weights(self, module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding, nn.Conv1d)):
            nn.init.trunc_normal_(
                module.weight,
                std=self.config.init_std,
                a=-2 * self.config.init_std,
                b=2 * self.config.init_std,
            )
            if getattr(module, "bias", None) is not None:
                nn.init.zeros_(module.bias)

    def _global_tokens(self, x: torch.Tensor, start: int, end: int) -> torch.Tensor:
        """Patch embeddings of bytes x[:, start:end] (whole patches): [B, (end-start)/P, dim]."""
        lo = max(0, start - self.conv.context) if self.conv is not None else start
        vectors = self.stages[0].byte_embed(x[:, lo:end]) + self.global_position.weight[lo:end]
        if self.conv is not None:
            vectors = self.conv(vectors)[:, start - lo :]
        return self.stages[0].tokens(vectors)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: LongTensor [B, T] of bytes -> logits [B, T, 256]; logits[:, t] predicts x[:, t]."""
        return self.head(self.hidden(x))

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """The local model's output [B, T, local_dim], before the head (for chunked losses)."""
        batch, length = check_bytes(x, self.config.max_seq_len)
        sizes = self.config.token_bytes
        padded = F.pad(x, (0, -length % sizes[0]))  # pad bytes only ever feed later positions
        global_stage = self.stages[0]
        out = global_stage.transformer(
            shift_right(self._global_tokens(padded, 0, padded.shape[1]), global_stage.pad)
        )
        for s in range(1, len(self.stages)):
            stage = self.stages[s]
            parents = padded.numel() // sizes[s - 1]
            child_tokens = stage.tokens(stage.byte_embed(padded).reshape(parents, sizes[s - 1], -1))
            h = stage.context(out.reshape(parents, -1)) + shift_right(child_tokens, stage.pad)
            out = stage.transformer(h + stage.position.weight, rows=batch)
        return out.reshape(batch, padded.shape[1], -1)[:, :length]

    def generate(
        self,
        prompt: torch.Tensor,
        max_new_bytes: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        top_p: float | None = None,
        use_cache: bool = True,
        generator: torch.Generator | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> torch.Tensor:
        """Sample `max_new_bytes` after `prompt` [B, T0] (T0 may be 0) -> [B, T0 + max_new_bytes].

        Cached decoding runs one global step per patch and one local step per byte; without the
        cache every byte recomputes a full forward pass. Both give the same bytes.
        """
        return generate_bytes(
            self, prompt, max_new_bytes, temperature, top_k, top_p, use_cache, generator, progress
        )

    def decoder(self, buffer: torch.Tensor) -> MegabyteDecoder:
        return MegabyteDecoder(self, buffer)


class MegabyteDecoder:
    """KV-cached incremental decoding over a byte buffer [B, total] that the caller fills in.

    `prefill(t)` and then `advance(t + 1)`, `advance(t + 2)`, ... each return the logits [B, 256]
    of byte t given buffer[:, :t]. Stage caches: the global one grows by one patch every P bytes,
    a child stage's cache is reset at each new parent token (keeping the last r keys and values
    of the previous patch with cross-patch attention).
    """

    def __init__(self, model: Megabyte, buffer: torch.Tensor) -> None:
        self.model, self.x = model, buffer
        config = model.config
        self.sizes = config.token_bytes
        batch, like = buffer.shape[0], model.head.weight
        self.caches = []
        for s, stage in enumerate(model.stages):
            extra = config.cross_patch if s == len(model.stages) - 1 else 0
            self.caches.append(stage.transformer.new_caches(batch, stage.length + extra, like))
        self.global_out = like.new_zeros(batch, model.stages[0].length, config.global_dim)
        self.context: list[torch.Tensor | None] = [None] * len(model.stages)
        self.outputs: list[torch.Tensor | None] = [None] * len(model.stages)

    def prefill(self, t: int) -> torch.Tensor:
        model, patch = self.model, self.sizes[0]
        patches = t // patch  # complete patches before t; global tokens 0..patches are needed
        inputs = model.stages[0].pad.expand(self.x.shape[0], 1, -1)
        if patches:
            inputs = torch.cat([inputs, model._global_tokens(self.x, 0, patches * patch)], dim=1)
        self.global_out[:, : patches + 1] = model.stages[0].transformer(inputs, self.caches[0])
        # Child stages replay byte by byte from the current patch; cross-patch attention chains
        # each patch to the one before, so then they replay from the start.
        start = 0 if model.config.cross_patch else patches * patch
        for position in range(start, t + 1):
            self._child_step(position)
        return self._logits()

    def advance(self, t: int) -> torch.Tensor:
        patch = self.sizes[0]
        if t % patch == 0:  # one global step per patch: the embedding of the patch just finished
            h = self.model._global_tokens(self.x, t - patch, t)[:, 0]
            self.global_out[:, t // patch] = self.model.stages[0].transformer.step(
                h, self.caches[0]
            )
        self._child_step(t)
        return self._logits()

    def _child_step(self, t: int) -> None:
        stages, sizes, last = self.model.stages, self.sizes, len(self.model.stages) - 1
        for s in range(1, len(stages)):
            stage, size = stages[s], sizes[s]
            if t % size:
                continue
            j = (t % sizes[s - 1]) // size
            if j == 0:  # a new parent token: fresh context (with positions added) and cache
                parent = self.global_out[:, t // sizes[0]] if s == 1 else self.outputs[s - 1]
                self.context[s] = stage.context(parent) + stage.position.weight
                carry = self.model.config.cross_patch if s == last and t > 0 else 0
                for cache, block in zip(self.caches[s], stage.transformer.blocks):
                    cache.keep_last(carry, block.attn.rotary) if carry else cache.reset()
                token = stage.pad.expand(self.x.shape[0], -1)
            else:
                token = stage.tokens(stage.byte_embed(self.x[:, t - size : t]))[:, 0]
            self.outputs[s] = stage.transformer.step(token + self.context[s][:, j], self.caches[s])

    def _logits(self) -> torch.Tensor:
        return F.linear(self.outputs[-1], self.model.head.weight)
