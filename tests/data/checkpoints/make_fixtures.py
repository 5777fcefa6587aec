"""How the files beside this script were made (run once, at commit 8419d3b, before MEGABYTE was
split into named global and local models). They are the checkpoints of that code: the
compatibility tests load them with today's code and expect the same logits and, from the same
seed, the same weights. Rerunning this script with later code would write today's parameter
names, so it is kept as the record, not rerun.

    PYTHONPATH=$PWD python tests/data/checkpoints/make_fixtures.py
"""

from pathlib import Path

import torch

from multibyte.checkpoint import export, model_spec
from multibyte.model import Megabyte, MegabyteConfig
from multibyte.train.module import ByteLM

HERE = Path(__file__).resolve().parent
SEED = 0

CONFIGS = {
    # two stages with every local part: cross-patch keys, a projected global width (P * D_G =
    # 4 * 5 = 20 -> 18, so the patch and split projections exist), causal convolutions, qk-norm
    "two_stage": dict(
        patch_size=4, max_seq_len=32, global_dim=18, global_layers=1, global_heads=2,
        local_dim=8, local_layers=1, local_heads=2, cross_patch=2, conv_encoder=True,
        qk_norm=True,
    ),
    # three stages (P1 = 8, P2 = 2) with an untied head
    "three_stage": dict(
        patch_sizes=(8, 2), max_seq_len=32, global_dim=16, global_layers=1, global_heads=2,
        local_dim=8, local_layers=1, local_heads=2, stage_dims=(12,), stage_layers=(1,),
        stage_heads=(2,), tie_embeddings=False,
    ),
}  # fmt: skip


def main() -> None:
    inputs = torch.randint(0, 256, (1, 29), generator=torch.Generator().manual_seed(1))
    expected = {"inputs": inputs, "seed": SEED}
    for name, fields in CONFIGS.items():
        torch.manual_seed(SEED)
        model = Megabyte(MegabyteConfig(**fields)).eval()
        export(model, HERE / f"{name}.ckpt", modality={"name": "text"})
        with torch.no_grad():
            expected[name] = model(inputs)
    # A Lightning checkpoint of the two-stage model after one AdamW step of ByteLM, so that its
    # optimizer state lists the parameters in that code's order.
    torch.manual_seed(SEED)
    module = ByteLM(Megabyte(MegabyteConfig(**CONFIGS["two_stage"])), total_steps=10)
    optimizer = module.configure_optimizers()["optimizer"]
    batch = torch.randint(0, 256, (2, 32), generator=torch.Generator().manual_seed(2))
    (module._nats(batch) / batch.numel()).backward()
    optimizer.step()
    module.model.eval()
    with torch.no_grad():
        expected["two_stage_lightning"] = module.model(inputs)
    torch.save(
        {
            "multibyte": {"format": 1, "model": model_spec(module.model), "modality": None},
            "state_dict": {f"model.{k}": v for k, v in module.model.state_dict().items()},
            "optimizer_states": [optimizer.state_dict()],
            "global_step": 1,
        },
        HERE / "two_stage_lightning.ckpt",
    )
    torch.save(expected, HERE / "expected.pt")


if __name__ == "__main__":
    main()
