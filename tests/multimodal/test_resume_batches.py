"""A mixture run stopped at step k and resumed trains on exactly the bytes of an uninterrupted
run from step k on."""

from __future__ import annotations

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint

from multibyte import Megabyte, MegabyteConfig
from multibyte.train import ByteDataModule, ByteLM

STEPS, STOP = 6, 3


class Recorder(ByteLM):
    seen: dict[int, bytes]

    def training_step(self, batch, batch_idx):
        self.seen[self.global_step] = batch.numpy().tobytes()
        return super().training_step(batch, batch_idx)


def run(shards, root, ckpt_path=None) -> dict[int, bytes]:
    config = MegabyteConfig(
        patch_size=12, max_seq_len=1200, global_dim=24, global_heads=2, local_dim=12, local_heads=2
    )
    module = Recorder(Megabyte(config), lr=1e-3, warmup_steps=1)
    module.seen = {}
    sources = [{"path": str(shards[n]), "weight": 1} for n in ("image", "audio", "text")]
    data = ByteDataModule(sources=sources, batch_size=2, seed=7)
    data.set_patch_size(12, 1200)
    saver = ModelCheckpoint(dirpath=root, every_n_train_steps=STOP, save_top_k=-1)
    trainer = L.Trainer(
        accelerator="cpu",
        max_steps=STEPS,
        logger=False,
        callbacks=[saver],
        enable_progress_bar=False,
        limit_val_batches=0,
        default_root_dir=root,
    )
    trainer.fit(module, data, ckpt_path=ckpt_path)
    return module.seen


def test_a_resumed_run_reads_the_batches_of_the_uninterrupted_one(shards, tmp_path):
    full = run(shards, tmp_path / "full")
    assert sorted(full) == list(range(STEPS))
    stopped = next((tmp_path / "full").glob(f"*step={STOP}.ckpt"))
    resumed = run(shards, tmp_path / "resumed", ckpt_path=stopped)
    assert sorted(resumed) == list(range(STOP, STEPS))
    for step in resumed:
        assert resumed[step] == full[step], step
    assert len({full[s] for s in full}) == STEPS  # every step a different batch
