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

The file reads in that order: the config and the per-stage sizes derived from it (`StageSpec`),
the patch embedder (bytes -> a stage's tokens), the global model, the local model and `Megabyte`;
the KV-cached decoder is in decoding.py. The N-stage generalisation (`patch_sizes=(P1, P2, ...)`)
puts middle stages between the two: each is a local model of its parent and the parent of the next.

`architecture` (presets.py `ARCHITECTURES`) names a value for each of the fields after it:
"paper" is the model above; the others change one part each (token shift, the norm, positions
per stage, the patch embedder, how w_GL reads the parent, the local sequence's first byte, the
head, init scales, head width), as megabyte-pytorch ("peer") does. docs/model.md lists them.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

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
from multibyte.model.compat import pre_split_order, upgrade_key
from multibyte.model.decoding import CompiledMegabyteDecoder, MegabyteDecoder
from multibyte.model.generation import generate_bytes
from multibyte.model.presets import MEGABYTE_PRESETS, resolve_architecture
from multibyte.model.pretrained import PretrainedMixin

# The fields a preset may set (they default to None), and their values when no preset sets them.
DEFAULTS = dict(
    patch_size=8, max_seq_len=8192, global_dim=512, global_layers=4, global_heads=8,
    local_dim=256, local_layers=2, local_heads=4, dropout=0.0, init_std=0.02,
)  # fmt: skip


@dataclass
class MegabyteConfig:
    """Fields left None come from `preset_name`'s preset, else from DEFAULTS; the architecture
    fields (from `architecture` on) left None come from the named `architecture`."""

    patch_size: int | None = None
    """P, bytes per global patch. Defaults to patch_sizes[0], or the preset's, or 8."""
    max_seq_len: int | None = None
    """Longest sequence in bytes; a multiple of P (sizes the global position table). 8192."""
    global_dim: int | None = None
    """Width of the global transformer, P * D_G in the paper (projected when not divisible). 512."""
    global_layers: int | None = None
    global_heads: int | None = None
    local_dim: int | None = None
    local_layers: int | None = None
    local_heads: int | None = None
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
    dropout: float | None = None
    rotary: bool = False
    """Rotary positions in every stage (the local stage always uses them with cross_patch)."""
    mlp_ratio: float = 4.0
    init_std: float | None = None
    """Std of the truncated-normal init of every matrix (embeddings: embed_init_std). 0.02."""
    activation_checkpointing: bool = False
    """Recompute block activations in backward, per stage, to train longer sequences."""
    architecture: str = "paper"
    """Named values (presets.py `ARCHITECTURES`) for the fields below that are left None:
    "paper" (the paper's model, the default) or "peer" (megabyte-pytorch 0.3.6's changes)."""
    activation: str | None = None
    """MLP non-linearity: "relu" (paper) or "gelu" (peer)."""
    tie_embeddings: bool | None = None
    """Output head shares E_local, as in the paper's softmax(E_local h_local_out) (paper)."""
    head_bias: bool | None = None
    """The output head adds a bias per byte value (peer)."""
    token_shift: bool | None = None
    """RWKV token shift (peer): every attention and MLP sublayer reads the residual stream with
    its last dim // 2 channels taken from the position before (zeros at each stage sequence's
    first position); the residual adds to the unshifted stream."""
    norm: str | None = None
    """Every norm of the transformer stacks (qk-norm included): "layernorm" or "rmsnorm"."""
    positions: tuple[str, ...] | None = None
    """Per stage, global first (one entry: every stage): "learned" (paper: E_pos per byte in the
    global embedder, E_local_pos per position in the others), "rotary" (rotary attention, no
    table) or "none" (peer). `rotary=True` adds rotary to every stage, tables kept."""
    patch_embedder: str | None = None
    """How a stage whose tokens hold several bytes joins their vectors: "concat" (paper, then
    projected if P * D_G != width) or "norm_proj" (peer: LayerNorm, Linear, LayerNorm)."""
    context_proj: str | None = None
    """How a child stage reads its parent's output: "split" (paper: slices of it, each mapped by
    one shared w_GL) or "dense" (peer: one Linear with bias to every position's input)."""
    first_byte: str | None = None
    """Where the last stage predicts a patch's first byte. "context" (paper): a patch's sequence
    is the pad, then its bytes but the last; position p reads byte p - 1 beside context slice p
    and predicts byte p, so the first byte comes from the pad and the context alone.
    "previous_patch" (peer): the pad, then all P bytes, byte p beside slice p (P + 1 positions);
    each position predicts the byte after the one it reads, the last the next patch's first."""
    embed_init_std: float | None = None
    """Std of the byte embeddings' and pads' init (paper: init_std; peer: 1.0)."""
    head_dim: int | None = None
    """Attention width per head, so q/k/v are heads * head_dim wide (paper: dim // heads)."""
    byte_init: str | None = None
    """Byte embeddings' (and an untied head's) init: "random" (paper, peer: i.i.d. normal rows)
    or "ordinal": rows that vary smoothly with the byte value (`ordinal_table`), so what is
    learned for one value carries to its neighbours (pixels, samples). Same std either way."""
    preset_name: str | None = field(default=None, compare=False)
    """Named sizes from multibyte/model/presets.py for every field left None (recipes use it)."""

    def __post_init__(self) -> None:
        if self.preset_name is not None and self.preset_name not in MEGABYTE_PRESETS:
            raise ValueError(
                f"MegabyteConfig.preset_name: unknown MEGABYTE preset {self.preset_name!r}; "
                f"known: {sorted(MEGABYTE_PRESETS)}"
            )
        preset = MEGABYTE_PRESETS.get(self.preset_name, {})
        if self.patch_sizes is not None:
            self.patch_sizes = tuple(int(size) for size in self.patch_sizes)
            if not self.patch_sizes:
                raise ValueError("MegabyteConfig.patch_sizes must name at least one patch size")
            if self.patch_size is None:
                self.patch_size = self.patch_sizes[0]
        for name, default in DEFAULTS.items():
            if getattr(self, name) is None:
                setattr(self, name, preset.get(name, default))
        self.stage_dims, self.stage_layers = tuple(self.stage_dims), tuple(self.stage_layers)
        self.stage_heads, self.conv_kernels = tuple(self.stage_heads), tuple(self.conv_kernels)
        resolve_architecture(self)
        self._validate()

    def _validate(self) -> None:
        def require(condition: bool, message: str) -> None:
            if not condition:
                raise ValueError(f"MegabyteConfig.{message}")

        for name in (
            "patch_size", "max_seq_len", "global_dim", "global_layers", "global_heads",
            "local_dim", "local_layers", "local_heads", "mlp_ratio", "init_std",
        ):  # fmt: skip
            require(getattr(self, name) > 0, f"{name} must be positive, got {getattr(self, name)}")
        byte_dim, patch, sizes = self.global_byte_dim, self.patch_size, self.token_bytes[:-1]
        require(byte_dim is None or byte_dim > 0, f"global_byte_dim must be positive: {byte_dim}")
        require(sizes[0] == patch, f"patch_size={patch} != patch_sizes[0]={sizes[0]}")
        for outer, inner in zip(sizes, sizes[1:]):
            divides = 0 < inner < outer and outer % inner == 0
            require(divides, f"patch_sizes={sizes}: each must divide the one before")
        require(
            self.max_seq_len % patch == 0,
            f"max_seq_len={self.max_seq_len} is not a multiple of patch_size={patch}",
        )
        for name in ("stage_dims", "stage_layers", "stage_heads"):
            values = getattr(self, name)
            require(
                not values or len(values) == len(sizes) - 1,
                f"{name} needs {len(sizes) - 1} entries (one per middle stage)",
            )
            require(all(v > 0 for v in values), f"{name} must be positive, got {values}")
        require(
            0 <= self.cross_patch <= sizes[-1],
            f"cross_patch={self.cross_patch} must be in 0..{sizes[-1]} (the local patch length)",
        )
        require(
            not self.cross_patch or self.first_byte == "context",
            f"cross_patch needs first_byte='context', got {self.first_byte!r}",
        )
        for index, stage in enumerate(self.stages):
            heads, dim = self._stage_field(index, "heads"), self._stage_field(index, "dim")
            require(
                self.head_dim is not None or stage.dim % stage.heads == 0,
                f"{heads}={stage.heads} does not divide {dim}={stage.dim}",
            )
            require(
                not stage.rotary or stage.head_dim % 2 == 0,
                f"{heads}: rotary positions (positions, rotary or cross_patch) need an even "
                f"head dimension (head_dim), got {stage.head_dim}",
            )
        require(0.0 <= self.dropout < 1.0, f"dropout must be in [0, 1), got {self.dropout}")
        require(self.activation in ACTIVATIONS, f"activation must be one of {sorted(ACTIVATIONS)}")
        require(
            not self.conv_encoder or (self.conv_kernels and min(self.conv_kernels) >= 1),
            f"conv_kernels must be positive, got {self.conv_kernels}",
        )

    def _stage_field(self, stage: int, kind: str) -> str:
        if stage == 0:
            return f"global_{kind}"
        if stage == len(self.token_bytes) - 1:
            return f"local_{kind}"
        return f"stage_{kind}s[{stage - 1}]"

    @property
    def token_bytes(self) -> tuple[int, ...]:
        """Bytes per token at each stage, (P1, P2, ..., 1): the one place where `patch_size`
        (a two-stage model, (P, 1)) and `patch_sizes` (N stages) meet."""
        return (*(self.patch_sizes or (self.patch_size,)), 1)

    @property
    def stages(self) -> tuple[StageSpec, ...]:
        """The sizes of every stage, global first and local last: what the model, its decoder
        and `multibyte.flops` build and count."""
        sizes = self.token_bytes

        def per_stage(first: int, middle: tuple[int, ...], last: int) -> tuple[int, ...]:
            return (first, *(middle or (last,) * (len(sizes) - 2)), last)  # middle: as local

        dims = per_stage(self.global_dim, self.stage_dims, self.local_dim)
        layers = per_stage(self.global_layers, self.stage_layers, self.local_layers)
        heads = per_stage(self.global_heads, self.stage_heads, self.local_heads)
        byte_dims = (
            self.global_byte_dim or math.ceil(self.global_dim / self.patch_size),
            *(math.ceil(dim / size) for dim, size in zip(dims[1:-1], sizes[1:-1])),
            self.local_dim,
        )
        positions = self.positions * len(sizes) if len(self.positions) == 1 else self.positions
        specs: list[StageSpec] = []
        for i, size in enumerate(sizes):
            parent = specs[-1] if specs else None
            length = parent.token_bytes // size if parent else self.max_seq_len // size
            last = i == len(sizes) - 1
            cross = self.cross_patch if last else 0
            rotary = self.rotary or cross > 0 or positions[i] == "rotary"
            specs.append(StageSpec(
                token_bytes=size, length=length, dim=dims[i], layers=layers[i], heads=heads[i],
                byte_dim=byte_dims[i], cross_patch=cross, rotary=rotary,
                learned_positions=positions[i] == "learned",
                leading_pad=last and self.first_byte == "previous_patch",
                head_dim=self.head_dim or dims[i] // heads[i],
                parent_dim=parent.dim if parent else 0,
                parent_split=parent.concat_dim if parent else 0,
            ))  # fmt: skip
        return tuple(specs)

    def to_dict(self) -> dict:
        """Every resolved field as plain data, as checkpoints store it (sizes, not the preset)."""
        fields = asdict(self)
        del fields["preset_name"]
        return fields

    @classmethod
    def preset(cls, name: str, **overrides) -> MegabyteConfig:
        """Named sizes: the paper's (Table 15) and small/tiny variants for one GPU or a CPU."""
        return cls(preset_name=name, **overrides)


@dataclass(frozen=True)
class StageSpec:
    """The sizes of one stage, derived from the config in one place (`MegabyteConfig.stages`)."""

    token_bytes: int  # bytes per token: P for the global model, 1 for the local model
    length: int  # tokens the transformer sees: max_seq_len / P, or per parent token
    dim: int
    layers: int
    heads: int
    byte_dim: int  # one byte's embedding (D_G globally); a token concatenates token_bytes of them
    cross_patch: int = 0  # keys carried over from the previous patch (the local model's r)
    rotary: bool = False
    learned_positions: bool = True  # a position table (E_pos per byte globally, else per token)
    leading_pad: bool = False  # the pad comes before all `length` tokens (first_byte)
    head_dim: int = 0  # attention width per head
    parent_dim: int = 0  # width of the parent's output (0 for the global model)
    parent_split: int = 0  # the parent's output is projected to this, then cut into `length`

    @property
    def concat_dim(self) -> int:
        return self.token_bytes * self.byte_dim

    @property
    def sequence(self) -> int:
        """Positions of one of the stage's sequences (one more with a leading pad)."""
        return self.length + self.leading_pad

    def stack(self, config: MegabyteConfig) -> StackConfig:
        return StackConfig(
            dim=self.dim, layers=self.layers, heads=self.heads, mlp_ratio=config.mlp_ratio,
            activation=config.activation, dropout=config.dropout, qk_norm=config.qk_norm,
            rotary_max_len=self.sequence + self.cross_patch if self.rotary else None,
            cross_patch=self.cross_patch, checkpoint=config.activation_checkpointing,
            norm=config.norm, token_shift=config.token_shift, head_dim=self.head_dim,
        )  # fmt: skip


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


class Megabyte(nn.Module, PretrainedMixin):
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

    def _init_weights(self) -> None:
        # Truncated-normal matrices, zero biases, normal pads; in the order of the code before
        # the global/local split (compat.py), so a seed gives the same weights as it always did.
        # Byte embeddings and pads have their own std (embed_init_std, = init_std in "paper").
        std, embed_std = self.config.init_std, self.config.embed_init_std
        byte_embeds = [stage.embed.byte_embed for stage in self.stages]
        for module in pre_split_order(self):
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
        compile: bool = False,
    ) -> torch.Tensor:
        """Sample `max_new_bytes` after `prompt` [B, T0] (T0 may be 0) -> [B, T0 + max_new_bytes].

        Cached decoding runs one global step per patch and one local step per byte; without the
        cache every byte recomputes a full forward pass. Both give the same bytes. `compile`:
        each cached step runs as one compiled graph (`CompiledMegabyteDecoder`).
        """
        return generate_bytes(
            self, prompt, max_new_bytes, temperature, top_k, top_p, use_cache, generator,
            progress, compile,
        )  # fmt: skip

    def decoder(self, buffer: torch.Tensor, compile: bool = False) -> MegabyteDecoder:
        """The KV-cached decoder of `buffer`; `compile=True`: its steps are compiled graphs."""
        return (CompiledMegabyteDecoder if compile else MegabyteDecoder)(self, buffer)

    def _load_from_state_dict(self, state_dict: dict, prefix: str, *args, **kwargs) -> None:
        # The one place old checkpoints (compat.py) are read under today's names, for
        # `multibyte.load` and Lightning's resume alike; children load from the renamed keys.
        for key in [key for key in state_dict if key.startswith(prefix)]:
            renamed = prefix + upgrade_key(key[len(prefix) :], len(self.stages))
            if renamed != key:
                state_dict[renamed] = state_dict.pop(key)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
