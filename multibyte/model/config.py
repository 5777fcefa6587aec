"""The configuration of MEGABYTE: its sizes and options (`MegabyteConfig`), the named
architectures that fill in the options a config leaves unset (`ARCHITECTURES`), and the sizes of
each stage derived from them in one place (`StageSpec`). Named sizes are in presets.py.

`architecture` names a value for each of the fields after it: "paper" is the paper's model; the
others change one part each (token shift, the norm, positions per stage, the patch embedder, how
w_GL reads the parent, the local sequence's first byte, the head, init scales, head width), as
megabyte-pytorch ("peer") does. docs/model.md lists them.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from multibyte.model.blocks import ACTIVATIONS, StackConfig
from multibyte.model.presets import MEGABYTE_PRESETS

# The architecture fields of `MegabyteConfig` (each None there means "from `architecture`") and
# the values they may take (None: any value of the field's type).
ARCHITECTURE_CHOICES: dict[str, tuple | None] = {
    "token_shift": (False, True),
    "norm": ("layernorm", "rmsnorm"),
    "positions": ("learned", "rotary", "none"),  # per stage
    "patch_embedder": ("concat", "norm_proj"),
    "context_proj": ("split", "dense"),
    "first_byte": ("context", "previous_patch"),
    "tie_embeddings": (False, True),
    "head_bias": (False, True),
    "activation": ("relu", "gelu"),
    "embed_init_std": None,
    "head_dim": None,
    "byte_init": ("random", "ordinal"),
}

# Named architectures. "paper" is the model as the paper describes it (and as it always was
# here); another entry lists only what differs from "paper", so a new one is one line, e.g.
#     "mine": dict(token_shift=True, norm="rmsnorm"),
# embed_init_std None: = init_std; head_dim None: dim // heads.
ARCHITECTURES: dict[str, dict[str, Any]] = {
    "paper": dict(
        token_shift=False,
        norm="layernorm",
        positions=("learned",),
        patch_embedder="concat",
        context_proj="split",
        first_byte="context",
        tie_embeddings=True,
        head_bias=False,
        activation="relu",
        embed_init_std=None,
        head_dim=None,
        byte_init="random",
    ),
    # megabyte-pytorch 0.3.6's MEGABYTE with its defaults (no positions, heads 64 wide; the
    # number of heads stays the config's): with global_byte_dim = local_dim it computes what
    # that code computes, weight for weight (tests/model/test_architecture.py).
    "peer": dict(
        token_shift=True,
        norm="rmsnorm",
        positions=("none",),
        patch_embedder="norm_proj",
        context_proj="dense",
        first_byte="previous_patch",
        tie_embeddings=False,
        head_bias=True,
        activation="gelu",
        embed_init_std=1.0,
        head_dim=64,
    ),
}
# Ours for the tiny recipes: the peer's choices, which learn more per step than the paper's
# (docs/benchmarks.md, "quality"), with rotary positions in every stage.
ARCHITECTURES["tuned"] = {**ARCHITECTURES["peer"], "positions": ("rotary",)}


def architecture_settings(name: str) -> dict[str, Any]:
    """Every architecture field's value under `name` ("paper"'s where the entry is silent)."""
    if name not in ARCHITECTURES:
        raise ValueError(
            f"MegabyteConfig.architecture: unknown architecture {name!r}; "
            f"known: {sorted(ARCHITECTURES)}"
        )
    return {**ARCHITECTURES["paper"], **ARCHITECTURES[name]}


def resolve_architecture(config: Any) -> None:
    """Set `config`'s architecture fields left None from `config.architecture`, then check the
    values (a field set explicitly wins over the architecture)."""
    settings = architecture_settings(config.architecture)
    for name in ARCHITECTURE_CHOICES:
        if getattr(config, name) is None:
            setattr(config, name, settings[name])
    if config.embed_init_std is None:
        config.embed_init_std = config.init_std
    if isinstance(config.positions, str):
        config.positions = (config.positions,)
    config.positions = tuple(config.positions)
    for name, choices in ARCHITECTURE_CHOICES.items():
        values = config.positions if name == "positions" else (getattr(config, name),)
        for value in values:
            known = choices is None or any(
                value == choice and type(value) is type(choice) for choice in choices
            )  # by type too: 1 is not True, "none" is not None
            if not known:
                raise ValueError(
                    f"MegabyteConfig.{name}: unknown value {value!r}; known: {list(choices)}"
                )
    stages = len(config.token_bytes)
    if len(config.positions) not in (1, stages):
        raise ValueError(
            f"MegabyteConfig.positions needs 1 or {stages} entries (one per stage, global "
            f"first), got {config.positions}"
        )
    if not config.embed_init_std > 0:
        raise ValueError(f"MegabyteConfig.embed_init_std must be positive: {config.embed_init_std}")
    if config.head_dim is not None and not config.head_dim > 0:
        raise ValueError(f"MegabyteConfig.head_dim must be positive, got {config.head_dim}")


# The fields a preset may set (they default to None), and their values when no preset sets them.
DEFAULTS = dict(
    patch_size=8,
    max_seq_len=8192,
    global_dim=512,
    global_layers=4,
    global_heads=8,
    local_dim=256,
    local_layers=2,
    local_heads=4,
    dropout=0.0,
    init_std=0.02,
)


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
    """Named values (`ARCHITECTURES` above) for the fields below that are left None:
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
            "patch_size",
            "max_seq_len",
            "global_dim",
            "global_layers",
            "global_heads",
            "local_dim",
            "local_layers",
            "local_heads",
            "mlp_ratio",
            "init_std",
        ):
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
            specs.append(
                StageSpec(
                    token_bytes=size,
                    length=length,
                    dim=dims[i],
                    layers=layers[i],
                    heads=heads[i],
                    byte_dim=byte_dims[i],
                    cross_patch=cross,
                    rotary=rotary,
                    learned_positions=positions[i] == "learned",
                    leading_pad=last and self.first_byte == "previous_patch",
                    head_dim=self.head_dim or dims[i] // heads[i],
                    parent_dim=parent.dim if parent else 0,
                    parent_split=parent.concat_dim if parent else 0,
                )
            )
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
            dim=self.dim,
            layers=self.layers,
            heads=self.heads,
            mlp_ratio=config.mlp_ratio,
            activation=config.activation,
            dropout=config.dropout,
            qk_norm=config.qk_norm,
            rotary_max_len=self.sequence + self.cross_patch if self.rotary else None,
            cross_patch=self.cross_patch,
            checkpoint=config.activation_checkpointing,
            norm=config.norm,
            token_shift=config.token_shift,
            head_dim=self.head_dim,
        )
