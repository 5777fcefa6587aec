"""Named MEGABYTE sizes: the paper's (Table 15) and variants for one GPU or a CPU. A config's
`preset_name` picks one (config.py); named architectures are in config.py too."""

from __future__ import annotations

# The paper's sizes (Table 15, arXiv v1): global / local (D, L); heads follow Table 14 widths.
# (The paper's ReLU is its architecture's, config.py `ARCHITECTURES["paper"]`.)
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
