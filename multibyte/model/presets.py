"""Named MEGABYTE sizes (the paper's Table 15 and variants for one GPU or a CPU) and named
architectures (the paper's, and megabyte-pytorch's changes to it), and how a config resolves
the architecture fields it leaves unset."""

from __future__ import annotations

from typing import Any

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
        token_shift=False, norm="layernorm", positions=("learned",), patch_embedder="concat",
        context_proj="split", first_byte="context", tie_embeddings=True, head_bias=False,
        activation="relu", embed_init_std=None, head_dim=None, byte_init="random",
    ),
    # megabyte-pytorch 0.3.6's MEGABYTE with its defaults (no positions, heads 64 wide; the
    # number of heads stays the config's): with global_byte_dim = local_dim it computes what
    # that code computes, weight for weight (tests/model/test_architecture.py).
    "peer": dict(
        token_shift=True, norm="rmsnorm", positions=("none",), patch_embedder="norm_proj",
        context_proj="dense", first_byte="previous_patch", tie_embeddings=False, head_bias=True,
        activation="gelu", embed_init_std=1.0, head_dim=64,
    ),
    # Ours for the tiny recipes: the peer's choices, which learn more per step than
    # the paper's (docs/benchmarks.md, "quality"), with rotary positions in every stage.
    "tuned": dict(
        token_shift=True, norm="rmsnorm", positions=("rotary",), patch_embedder="norm_proj",
        context_proj="dense", first_byte="previous_patch", tie_embeddings=False, head_bias=True,
        activation="gelu", embed_init_std=1.0, head_dim=64,
    ),
}  # fmt: skip


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


# The paper's sizes (Table 15, arXiv v1): global / local (D, L); heads follow Table 14 widths.
# (The paper's ReLU is its architecture's, `ARCHITECTURES["paper"]`.)
_PAPER = dict(dropout=0.1, init_std=0.006)
MEGABYTE_PRESETS: dict[str, dict] = {
    # ImageNet64, Table 8 model: 2.7B (D=2560, L=32) + 350M (D=1024, L=24), P=12, 12,288 bytes.
    "imagenet64": dict(
        patch_size=12, max_seq_len=12288, global_dim=2560, global_layers=32, global_heads=32,
        local_dim=1024, local_layers=24, local_heads=16, **_PAPER,
    ),
    # Audio: 350M (D=1024, L=24) + 125M (D=768, L=12), P=32, 524,288 bytes.
    "audio": dict(
        patch_size=32, max_seq_len=524288, global_dim=1024, global_layers=24, global_heads=16,
        local_dim=768, local_layers=12, local_heads=12, **_PAPER,
    ),
    # PG-19 / arXiv controlled runs: 758M (D=2048, L=14) + 262M (D=1024, L=18), P=8, 8,192 bytes.
    "pg19": dict(
        patch_size=8, max_seq_len=8192, global_dim=2048, global_layers=14, global_heads=32,
        local_dim=1024, local_layers=18, local_heads=16, **_PAPER,
    ),
    # One-GPU variants (a few hours on one H100).
    "imagenet64-small": dict(
        patch_size=12, max_seq_len=12288, global_dim=768, global_layers=12, global_heads=12,
        local_dim=384, local_layers=6, local_heads=6, dropout=0.1,
    ),
    "audio-small": dict(
        patch_size=32, max_seq_len=524288, global_dim=768, global_layers=12, global_heads=12,
        local_dim=384, local_layers=6, local_heads=6, dropout=0.1,
    ),
    "pg19-small": dict(
        patch_size=8, max_seq_len=8192, global_dim=768, global_layers=12, global_heads=12,
        local_dim=384, local_layers=6, local_heads=6, dropout=0.1,
    ),
    # CPU variants (minutes on two cores).
    "imagenet64-tiny": dict(
        patch_size=12, max_seq_len=12288, global_dim=192, global_layers=2, global_heads=4,
        local_dim=96, local_layers=2, local_heads=4,
    ),
    "audio-tiny": dict(
        patch_size=32, max_seq_len=1048576, global_dim=256, global_layers=2, global_heads=4,
        local_dim=96, local_layers=2, local_heads=4,
    ),
    "pg19-tiny": dict(
        patch_size=8, max_seq_len=8192, global_dim=256, global_layers=2, global_heads=4,
        local_dim=96, local_layers=2, local_heads=4,
    ),
}  # fmt: skip
