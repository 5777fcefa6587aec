"""A source's ``loss_weight`` scales its bytes in the training loss, and only there: the logged
bpb, validation and evaluation stay the plain per-byte figures."""

from __future__ import annotations

import lightning as L
import pytest
import torch

from multibyte import Megabyte, MegabyteConfig
from multibyte.train import ByteDataModule, ByteLM
from multibyte.train.data import ConfigError

WEIGHTS = {"image": 3.0, "audio": 1.0, "text": 0.5}


class Recorder(ByteLM):
    def training_step(self, batch, batch_idx):
        loss = super().training_step(batch, batch_idx)
        with torch.no_grad():
            nats, counts = self._mixture_nats(batch, self.header_table)
        self.steps.append((loss.detach(), nats[:-1], counts[:-1]))
        return loss


def data(shards, weights: dict[str, float] | None) -> ByteDataModule:
    sources = []
    for name in ("image", "audio", "text"):
        entry = {"path": str(shards[name]), "weight": 1, "batch_size": 2}
        if weights:
            entry["loss_weight"] = weights[name]
        sources.append(entry)
    module = ByteDataModule(sources=sources, batch_size=2, mix_by="batch", val_batch_size=2)
    module.set_patch_size(12, 1200)
    return module


def trainer(steps: int, val_batches: int | float = 2) -> L.Trainer:
    return L.Trainer(
        accelerator="cpu",
        max_steps=steps,
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        limit_val_batches=val_batches,
        num_sanity_val_steps=0,
        val_check_interval=steps,
    )


def test_each_sources_loss_is_scaled_by_its_weight_and_validation_is_not(shards):
    config = MegabyteConfig(
        patch_size=12, max_seq_len=1200, global_dim=24, global_heads=2, local_dim=12, local_heads=2
    )
    torch.manual_seed(0)
    module = Recorder(Megabyte(config), lr=1e-3, warmup_steps=1)
    module.steps = []
    weighted = data(shards, WEIGHTS)
    trainer(6).fit(module, weighted)
    assert module.loss_weights.tolist() == [WEIGHTS[n] for n in ("image", "audio", "text")]
    seen = set()
    for loss, nats, counts in module.steps:
        (source,) = counts.nonzero().squeeze(1).tolist()  # one source per batch
        seen.add(source)
        plain = nats[source] / counts[source]
        weight = float(module.loss_weights[source])
        assert float(loss) == pytest.approx(weight * float(plain), rel=1e-4)
    assert len(seen) >= 2  # the weights differ between the sources drawn
    # the same model scored with and without loss weights: the same figures
    plain = data(shards, None)
    scores = [trainer(1, 1.0).validate(module, d, verbose=False)[0] for d in (weighted, plain)]
    assert scores[0] == pytest.approx(scores[1], rel=1e-6)
    assert {"val/bpb_image", "val/bpb_audio", "val/bpb_text"} <= set(scores[0])


@pytest.mark.parametrize("bad", [0, -1.5, float("inf"), float("nan"), "2", True])
def test_a_loss_weight_that_is_not_a_positive_number_is_refused(shards, bad):
    sources = [{"path": str(shards["text"]), "weight": 1, "loss_weight": bad}]
    with pytest.raises(ConfigError, match="loss_weight must be a positive number"):
        ByteDataModule(sources=sources, batch_size=2)


@pytest.mark.parametrize("bad", [-1, float("inf"), float("nan"), "1", True])
def test_a_sampling_weight_that_is_not_a_finite_non_negative_number_is_refused(shards, bad):
    sources = [{"path": str(shards["text"]), "weight": bad}]
    with pytest.raises(ConfigError, match="weight must be a non-negative number"):
        ByteDataModule(sources=sources, batch_size=2)
