"""ByteTransformer: one plain decoder over bytes, built from the same blocks as MEGABYTE.

It is the baseline every MEGABYTE figure is compared against, with the same call contract:
`model(x)` gives logits [B, T, 256] where logits[:, t] predicts x[:, t] from x[:, :t].
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

from multibyte.model.attention import KVCache
from multibyte.model.blocks import (
    ACTIVATIONS,
    VOCAB,
    StackConfig,
    TransformerStack,
    check_bytes,
    shift_right,
)
from multibyte.model.generation import GenerationMixin, StepGraphs, compiled_step
from multibyte.model.pretrained import PretrainedMixin


@dataclass
class ByteTransformerConfig:
    max_seq_len: int = 8192
    dim: int = 512
    layers: int = 8
    heads: int = 8
    mlp_ratio: float = 4.0
    activation: str = "relu"
    dropout: float = 0.0
    qk_norm: bool = False
    rotary: bool = False
    """Rotary positions instead of the learned position table."""
    tie_embeddings: bool = True
    init_std: float = 0.02
    activation_checkpointing: bool = False

    def __post_init__(self) -> None:
        for name in ("max_seq_len", "dim", "layers", "heads", "mlp_ratio", "init_std"):
            if not getattr(self, name) > 0:
                raise ValueError(
                    f"ByteTransformerConfig.{name} must be positive, got {getattr(self, name)}"
                )
        if self.dim % self.heads:
            raise ValueError(
                f"ByteTransformerConfig.heads={self.heads} does not divide dim={self.dim}"
            )
        if self.rotary and (self.dim // self.heads) % 2:
            raise ValueError("ByteTransformerConfig.heads: rotary needs an even head dimension")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"ByteTransformerConfig.dropout must be in [0, 1), got {self.dropout}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"ByteTransformerConfig.activation must be one of {sorted(ACTIVATIONS)}"
            )

    def to_dict(self) -> dict:
        return asdict(self)


class ByteTransformer(nn.Module, PretrainedMixin, GenerationMixin):
    config_class = ByteTransformerConfig  # from_pretrained builds it from config.json

    def __init__(self, config: ByteTransformerConfig) -> None:
        super().__init__()
        self.config = config
        self.embed = nn.Embedding(VOCAB, config.dim)
        self.position = None if config.rotary else nn.Embedding(config.max_seq_len, config.dim)
        self.start = nn.Parameter(torch.zeros(config.dim))  # stands before byte 0; not a byte
        self.transformer = TransformerStack(
            StackConfig(
                dim=config.dim,
                layers=config.layers,
                heads=config.heads,
                mlp_ratio=config.mlp_ratio,
                activation=config.activation,
                dropout=config.dropout,
                qk_norm=config.qk_norm,
                rotary_max_len=config.max_seq_len if config.rotary else None,
                checkpoint=config.activation_checkpointing,
            )
        )
        self.head = nn.Linear(config.dim, VOCAB, bias=False)
        std = config.init_std
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Embedding)):
                nn.init.trunc_normal_(module.weight, std=std, a=-2 * std, b=2 * std)
                if getattr(module, "bias", None) is not None:
                    nn.init.zeros_(module.bias)
        nn.init.normal_(self.start, std=std)
        if config.tie_embeddings:
            self.head.weight = self.embed.weight

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: LongTensor [B, T] -> logits [B, T, 256]."""
        return self.head(self.hidden(x))

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """The last block's output [B, T, dim], before the head (for chunked losses)."""
        check_bytes(x, self.config.max_seq_len)
        return self.transformer(self._shifted(x))

    def _shifted(self, x: torch.Tensor) -> torch.Tensor:
        # Position t carries the embedding of byte t-1 (the start vector at t = 0).
        h = shift_right(self.embed(x), self.start)
        if self.position is not None:
            h = h + self.position.weight[: x.shape[1]]
        return h

    def decoder(self, buffer: torch.Tensor, compile: bool = False) -> ByteTransformerDecoder:
        """The KV-cached decoder of `buffer`; `compile=True`: its steps are compiled graphs."""
        return (CompiledByteTransformerDecoder if compile else ByteTransformerDecoder)(self, buffer)


class ByteTransformerDecoder:
    """KV-cached decoding: one step per byte through every layer."""

    zeroed_caches = False

    def __init__(self, model: ByteTransformer, buffer: torch.Tensor) -> None:
        self.model, self.x = model, buffer
        self.caches = model.transformer.new_caches(  # as long as the buffer, not max_seq_len
            buffer.shape[0], max(buffer.shape[1], 1), model.head.weight, self.zeroed_caches
        )

    def prefill(self, t: int) -> torch.Tensor:
        # the training inputs of positions 0..t (buffer[:, t] itself is dropped by the shift)
        h = self.model._shifted(self.x[:, : t + 1])
        return F.linear(self.model.transformer(h, self.caches)[:, -1], self.model.head.weight)

    def advance(self, t: int) -> torch.Tensor:
        model = self.model
        h = F.embedding(self.x[:, t - 1], model.embed.weight)  # position t reads byte t-1
        if model.position is not None:
            h = h + model.position.weight[t]
        return F.linear(model.transformer.step(h, self.caches), model.head.weight)


class CompiledByteTransformerDecoder(ByteTransformerDecoder):
    """`advance` as one compiled graph with static caches (`byte_transformer_static_step`);
    the prefill stays eager."""

    zeroed_caches = True

    def __init__(self, model: ByteTransformer, buffer: torch.Tensor) -> None:
        super().__init__(model, buffer)
        self.step = compiled_step(byte_transformer_static_step, model)
        self.position = buffer.new_zeros(1)  # updated in place: CUDA graphs read fixed addresses
        written = [tensor for cache in self.caches for tensor in cache.tensors()]
        self.graphs = StepGraphs(model.head.weight.device, written)

    def advance(self, t: int) -> torch.Tensor:
        self.position.fill_(t)
        return self.graphs(
            "step",
            lambda: self.step(
                self.model, torch.get_num_threads(), self.x, self.position, self.caches
            ),
        )


def byte_transformer_static_step(
    model: ByteTransformer,
    threads: int,  # noqa: ARG001 (a compiled graph's kernels are built for one thread count)
    x: torch.Tensor,
    position: torch.Tensor,
    caches: list[KVCache],
) -> torch.Tensor:
    """`ByteTransformerDecoder.advance(t)` with fixed shapes, t = `position` [1]."""
    h = F.embedding(x.index_select(1, position - 1)[:, 0], model.embed.weight)
    if model.position is not None:
        h = h + model.position.weight[position]
    return F.linear(model.transformer.static_step(h, caches, position), model.head.weight)
