"""How the files beside this script were made: two tiny seed-0 MEGABYTE models and their logits.

The tests load them and expect the same logits, and build the same weights from the same seed:
a change to the numerics or to the order weights are drawn in (which would change every
figure a recipe gives) fails there. Rerun only on purpose, after such a change:

    PYTHONPATH=$PWD python tests/data/checkpoints/make_fixtures.py [OUT_DIR]
"""

import sys
from pathlib import Path

import torch

from multibyte.checkpoint import export
from multibyte.model import Megabyte, MegabyteConfig

SEED = 0

CONFIGS = {
    # two stages with every local part: cross-patch keys, a projected global width (P * D_G =
    # 4 * 5 = 20 -> 18, so the patch and split projections exist), causal convolutions, qk-norm
    "two_stage": dict(
        patch_size=4,
        max_seq_len=32,
        global_dim=18,
        global_layers=1,
        global_heads=2,
        local_dim=8,
        local_layers=1,
        local_heads=2,
        cross_patch=2,
        conv_encoder=True,
        qk_norm=True,
    ),
    # three stages (P1 = 8, P2 = 2) with an untied head
    "three_stage": dict(
        patch_sizes=(8, 2),
        max_seq_len=32,
        global_dim=16,
        global_layers=1,
        global_heads=2,
        local_dim=8,
        local_layers=1,
        local_heads=2,
        stage_dims=(12,),
        stage_layers=(1,),
        stage_heads=(2,),
        tie_embeddings=False,
    ),
}


def main(out: Path) -> None:
    inputs = torch.randint(0, 256, (1, 29), generator=torch.Generator().manual_seed(1))
    expected = {"inputs": inputs, "seed": SEED}
    for name, fields in CONFIGS.items():
        torch.manual_seed(SEED)
        model = Megabyte(MegabyteConfig(**fields)).eval()
        export(model, out / f"{name}.ckpt", modality={"name": "text"})
        with torch.no_grad():
            expected[name] = model(inputs)
    torch.save(expected, out / "expected.pt")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent)
