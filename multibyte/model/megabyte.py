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

The file reads in that order: the patch embedder (bytes -> a stage's tokens), the global model,
the local model and `Megabyte`. The config and the per-stage sizes derived from it (`StageSpec`)
are in config.py; the transformer blocks in blocks.py and attention.py; the KV-cached decoder in
decoding.py. The N-stage generalisation (`patch_sizes=(P1, P2, ...)`) puts middle stages between
the two: each is a local model of its parent and the parent of the next.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from multibyte.model.blocks import (
    VOCAB,
    TransformerStack,
    check_bytes,
    ordinal_table,
    shift_right,
)
from multibyte.model.config import MegabyteConfig, StageSpec
from multibyte.model.decoding import CompiledMegabyteDecoder, MegabyteDecoder
from multibyte.model.generation import GenerationMixin
from multibyte.model.pretrained import PretrainedMixin


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


class PatchEmbedder(nn.Module):
    """Bytes -> one stage's input tokens; every stage has one, so a new patch embedder is a
    change here. Each byte gets an embedding (in the global model plus its position E_pos[t]
    and the optional causal convolutions); a token concatenates its bytes' vectors, projected
    to the stage width when P * D_G differs from it ("concat"), or with "norm_proj" (tokens of
    several bytes only) normalised, projected and normalised again."""

    def __init__(
        self,
        spec: StageSpec,
        positions: int = 0,
        conv_kernels: tuple[int, ...] = (),
        kind: str = "concat",
    ) -> None:
        super().__init__()
        self.token_bytes = spec.token_bytes
        self.byte_embed = nn.Embedding(VOCAB, spec.byte_dim)
        norm_proj = kind == "norm_proj" and spec.token_bytes > 1
        self.in_norm = nn.LayerNorm(spec.concat_dim) if norm_proj else nn.Identity()
        if norm_proj or spec.concat_dim != spec.dim:
            self.token_proj = nn.Linear(spec.concat_dim, spec.dim, bias=norm_proj)
        else:
            self.token_proj = nn.Identity()
        self.out_norm = nn.LayerNorm(spec.dim) if norm_proj else nn.Identity()
        self.position = nn.Embedding(positions, spec.byte_dim) if positions else None
        self.conv = CausalConvEncoder(spec.byte_dim, conv_kernels) if conv_kernels else None
        self.context = self.conv.context if self.conv is not None else 0

    def join(self, vectors: torch.Tensor) -> torch.Tensor:
        """[..., token_bytes * byte_dim] concatenated byte vectors -> [..., dim] tokens."""
        return self.out_norm(self.token_proj(self.in_norm(vectors)))

    def forward(self, x: torch.Tensor, start: int = 0, end: int | None = None) -> torch.Tensor:
        """Tokens of the bytes x[:, start:end] (whole tokens): [N, (end - start) / size, dim].
        The convolutions also read up to `context` bytes before `start`."""
        end = x.shape[1] if end is None else end
        lo = max(0, start - self.context)
        vectors = self.byte_embed(x[:, lo:end])
        if self.position is not None:
            vectors = vectors + self.position.weight[lo:end]
        if self.conv is not None:
            vectors = self.conv(vectors)[:, start - lo :]
        tokens = (end - start) // self.token_bytes
        return self.join(vectors.reshape(x.shape[0], tokens, -1))


class GlobalModel(nn.Module):
    """The global transformer over patch embeddings: h_global_out = transformer(h_global_in),
    where h_global_in puts the trainable pad E_global_pad before the patches, shifted by one."""

    def __init__(self, spec: StageSpec, config: MegabyteConfig) -> None:
        super().__init__()
        self.pad = nn.Parameter(torch.zeros(spec.dim))
        kernels = config.conv_kernels if config.conv_encoder else ()
        positions = config.max_seq_len if spec.learned_positions else 0
        self.embed = PatchEmbedder(spec, positions, kernels, config.patch_embedder)
        self.transformer = TransformerStack(spec.stack(config))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: [B, K * P] bytes (whole patches) -> h_global_out [B, K, global_dim]."""
        return self.transformer(shift_right(self.embed(x), self.pad))


class LocalModel(nn.Module):
    """The local transformer of each patch (and each middle stage of an N-stage model): its
    inputs are the parent's output for the patch, split into one slice per position and mapped
    by w_GL (or, `context_proj="dense"`, mapped to every position at once), plus the embeddings
    of the patch's bytes shifted by one (E_local_pad first), plus positions E_local_pos (when
    learned). With a leading pad (first_byte="previous_patch") the sequence is the pad, then
    every byte of the patch with its own slice: one position longer, and each position predicts
    the byte after the one it reads."""

    def __init__(self, spec: StageSpec, config: MegabyteConfig) -> None:
        super().__init__()
        self.length = spec.length
        self.leading_pad = spec.leading_pad
        self.parent_bytes = spec.length * spec.token_bytes
        self.pad = nn.Parameter(torch.zeros(spec.dim))
        self.embed = PatchEmbedder(spec, kind=config.patch_embedder)
        self.transformer = TransformerStack(spec.stack(config))
        self.dense_context = config.context_proj == "dense"
        if self.dense_context:  # one map from the parent's vector to every position's input
            self.parent_proj = nn.Identity()
            self.parent_to_child = nn.Linear(spec.parent_dim, spec.length * spec.dim)
        else:
            self.parent_proj = (
                nn.Linear(spec.parent_dim, spec.parent_split, bias=False)
                if spec.parent_split != spec.parent_dim
                else nn.Identity()
            )
            self.parent_to_child = nn.Linear(spec.parent_split // spec.length, spec.dim, bias=False)
        self.position = nn.Embedding(spec.sequence, spec.dim) if spec.learned_positions else None

    def context(self, parent_out: torch.Tensor) -> torch.Tensor:
        """[N, parent_dim] -> [N, length, dim]: w_GL applied to the parent's slice per position."""
        if self.dense_context:
            return self.parent_to_child(parent_out).reshape(parent_out.shape[0], self.length, -1)
        slices = self.parent_proj(parent_out).reshape(parent_out.shape[0], self.length, -1)
        return self.parent_to_child(slices)

    def positioned_context(self, parent_out: torch.Tensor) -> torch.Tensor:
        """What cached decoding adds to the token at each position [N, sequence, dim]: the
        context (none at a leading pad) plus positions E_local_pos (if learned)."""
        context = self.context(parent_out)
        if self.leading_pad:
            context = F.pad(context, (0, 0, 1, 0))
        return context if self.position is None else context + self.position.weight

    def forward(self, parent_out: torch.Tensor, x: torch.Tensor, rows: int) -> torch.Tensor:
        """parent_out [..., parent_dim], one vector per parent token of the bytes x [rows, T]
        -> [parent tokens, sequence, dim]."""
        parents = x.numel() // self.parent_bytes
        tokens = self.embed(x.reshape(parents, self.parent_bytes))
        context = self.context(parent_out.reshape(parents, -1))
        if self.leading_pad:
            h = shift_right(F.pad(tokens, (0, 0, 0, 1)), self.pad) + F.pad(context, (0, 0, 1, 0))
        else:
            h = context + shift_right(tokens, self.pad)
        if self.position is not None:
            h = h + self.position.weight
        return self.transformer(h, rows=rows)

    def byte_outputs(self, out: torch.Tensor, rows: int) -> torch.Tensor:
        """The output that predicts each byte, [rows, T, dim], from the last stage's [rows *
        sequences, sequence, dim]: position p of the patch's sequence; with a leading pad
        position p + 1 of the patch before's (the first pad's output for byte 0)."""
        if not self.leading_pad:
            return out.reshape(rows, -1, out.shape[-1])
        out = out.reshape(rows, -1, *out.shape[1:])
        later = out[:, :, 1:].flatten(1, 2)  # predicts bytes 1.. and one past the end
        return torch.cat([out[:, 0, :1], later[:, :-1]], dim=1)


class Megabyte(nn.Module, PretrainedMixin, GenerationMixin):
    """The whole model: the global model, any middle models, the local model and the byte head."""

    config_class = MegabyteConfig  # from_pretrained builds it from config.json

    def __init__(self, config: MegabyteConfig) -> None:
        super().__init__()
        self.config = config
        global_spec, *middle_specs, local_spec = config.stages
        self.global_model = GlobalModel(global_spec, config)
        self.middle_models = nn.ModuleList(LocalModel(spec, config) for spec in middle_specs)
        self.local_model = LocalModel(local_spec, config)
        self.head = nn.Linear(local_spec.dim, VOCAB, bias=config.head_bias)
        self._init_weights()
        if config.tie_embeddings:
            self.head.weight = self.local_model.embed.byte_embed.weight

    @property
    def stages(self) -> tuple[nn.Module, ...]:
        """Global model, middle models (N-stage only), local model."""
        return (self.global_model, *self.middle_models, self.local_model)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x: LongTensor [B, T] of bytes -> logits [B, T, 256]; logits[:, t] predicts x[:, t]."""
        return self.head(self.hidden(x))

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """The local model's output [B, T, local_dim], before the head (for chunked losses)."""
        batch, length = check_bytes(x, self.config.max_seq_len)
        padded = F.pad(x, (0, -length % self.config.patch_size))  # pads feed later bytes only
        out = self.global_model(padded)
        for middle in self.middle_models:  # N-stage models only
            out = middle(out, padded, rows=batch)
        out = self.local_model.byte_outputs(self.local_model(out, padded, rows=batch), batch)
        return out[:, :length]

    def _init_weights(self) -> None:
        # Truncated-normal matrices, zero biases, normal pads. Byte embeddings and pads have
        # their own std (embed_init_std, = init_std in "paper"). The order in which weights are
        # drawn fixes what a seed gives (every recipe's figures): stage by stage, then the global
        # positions and convolutions, then the head.
        std, embed_std = self.config.init_std, self.config.embed_init_std
        byte_embeds = [stage.embed.byte_embed for stage in self.stages]
        embed = self.global_model.embed
        late = [
            m for part in (embed.position, embed.conv) if part is not None for m in part.modules()
        ]
        in_stages = [
            m for stage in self.stages for m in stage.modules() if not any(m is x for x in late)
        ]
        for module in [*in_stages, *late, self.head]:
            if isinstance(module, (nn.Linear, nn.Embedding, nn.Conv1d)):
                s = embed_std if any(module is e for e in byte_embeds) else std
                nn.init.trunc_normal_(module.weight, std=s, a=-2 * s, b=2 * s)
                if getattr(module, "bias", None) is not None:
                    nn.init.zeros_(module.bias)
        for stage in self.stages:
            nn.init.normal_(stage.pad, std=embed_std)
        if self.config.byte_init == "ordinal":  # drawn last: "random" keeps its seed's weights
            tables = [*byte_embeds, *([] if self.config.tie_embeddings else [self.head])]
            with torch.no_grad():
                for table in tables:
                    std = embed_std if table is not self.head else self.config.init_std
                    table.weight.copy_(ordinal_table(table.weight.shape[1], std))

    def decoder(self, buffer: torch.Tensor, compile: bool = False) -> MegabyteDecoder:
        """The KV-cached decoder of `buffer`; `compile=True`: its steps are compiled graphs."""
        return (CompiledMegabyteDecoder if compile else MegabyteDecoder)(self, buffer)
