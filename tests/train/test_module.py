"""ByteLM pieces: schedule, weight-decay groups, the non-finite guard, checkpoint contents."""

from __future__ import annotations

import math

import lightning as L
import pytest
import torch

import multibyte
from multibyte import Megabyte, MegabyteConfig
from multibyte.checkpoint import CheckpointError, export
from multibyte.train import ByteDataModule, ByteLM
from multibyte.train.data import StepBatchSampler
from multibyte.train.module import warmup_then_decay


def tiny_module(**options) -> ByteLM:
    config = MegabyteConfig(
        patch_size=8, max_seq_len=128, global_dim=32, global_heads=2, local_dim=16, local_heads=2
    )
    return ByteLM(Megabyte(config), **options)


def test_schedule_warms_up_then_decays():
    settings = dict(warmup_steps=10, total_steps=110, min_lr_ratio=0.1, power=1.0)
    assert warmup_then_decay(0, schedule="cosine", **settings) == pytest.approx(0.1)
    assert warmup_then_decay(9, schedule="cosine", **settings) == pytest.approx(1.0)
    assert warmup_then_decay(60, schedule="cosine", **settings) == pytest.approx(0.55)
    assert warmup_then_decay(110, schedule="cosine", **settings) == pytest.approx(0.1)
    assert warmup_then_decay(60, schedule="polynomial", **settings) == pytest.approx(0.55)
    assert warmup_then_decay(35, schedule="polynomial", **{**settings, "power": 2.0}) == (
        pytest.approx(0.1 + 0.9 * 0.75**2)
    )
    assert warmup_then_decay(500, schedule="constant", **settings) == 1.0


def test_weight_decay_only_on_weight_matrices():
    module = tiny_module(weight_decay=0.1)
    module.trainer = L.Trainer(max_steps=10, logger=False)
    optimizer = module.configure_optimizers()["optimizer"]
    decayed, plain = optimizer.param_groups
    assert decayed["weight_decay"] == 0.1 and plain["weight_decay"] == 0.0
    assert optimizer.defaults["betas"] == (0.9, 0.98)
    names = {id(p): n for n, p in module.model.named_parameters()}
    decayed_names = {names[id(p)] for p in decayed["params"]}
    plain_names = {names[id(p)] for p in plain["params"]}
    assert all(n.endswith("weight") and "norm" not in n and "embed" not in n for n in decayed_names)
    assert any("norm" in n for n in plain_names) and any("embed" in n for n in plain_names)
    assert any(n.endswith("bias") for n in plain_names) and any(
        n.endswith("pad") for n in plain_names
    )
    every = {id(p) for p in module.model.parameters()}
    assert every == {id(p) for p in decayed["params"]} | {id(p) for p in plain["params"]}


def test_non_finite_loss_stops_training_with_a_clear_message(text_folder, tmp_path):
    module = tiny_module()
    with torch.no_grad():
        module.model.stages[1].pad.fill_(float("nan"))
    data = ByteDataModule(path=text_folder, modality={"name": "text"}, seq_len=128, batch_size=2)
    trainer = L.Trainer(
        max_steps=3,
        logger=False,
        enable_progress_bar=False,
        default_root_dir=tmp_path,
        use_distributed_sampler=False,
    )
    with pytest.raises(FloatingPointError, match="non-finite training loss"):
        trainer.fit(module, data)


def test_step_sampler_is_a_pure_function_of_the_batch_number():
    a = StepBatchSampler(10, 4, seed=3, start_batch=0, batches_per_epoch=6)
    b = StepBatchSampler(10, 4, seed=3, start_batch=3, batches_per_epoch=3)
    assert list(a)[3:] == list(b)
    epoch = [i for batch in StepBatchSampler(10, 5, seed=1, batches_per_epoch=2) for i in batch]
    assert sorted(epoch) == list(range(10))  # without replacement: a permutation per epoch
    ranks = [
        list(StepBatchSampler(12, 3, seed=1, rank=r, world_size=2, batches_per_epoch=2))
        for r in (0, 1)
    ]
    assert sorted(i for rank in ranks for batch in rank for i in batch) == list(range(12))


def test_load_refuses_pickled_code(tmp_path):
    class Payload:
        def __reduce__(self):
            return (print, ("this must never run",))

    path = tmp_path / "evil.ckpt"
    torch.save({"multibyte": Payload(), "state_dict": {}}, path)
    with pytest.raises(CheckpointError, match="refusing to load"):
        multibyte.load(path)


def test_export_and_load_round_trip(tmp_path):
    model = tiny_module().model
    export(model, tmp_path / "m.ckpt", modality={"name": "text"})
    loaded = multibyte.load(tmp_path / "m.ckpt")
    x = torch.randint(0, 256, (1, 40))
    assert torch.equal(loaded(x), model.eval()(x))
    assert loaded.modality == {"name": "text"}
    assert math.isclose(loaded.config.global_dim, 32)


def test_compile_wraps_every_block_in_place_and_keeps_the_keys():
    from multibyte.model.blocks import Block

    plain = tiny_module()
    keys = set(plain.state_dict())
    module = tiny_module(compile=True)
    blocks = [m for m in module.model.modules() if isinstance(m, Block)]
    assert len(blocks) == 6  # 4 global + 2 local: every block of both stages
    # the training path (`model.hidden`) calls blocks, so compiling them is what takes effect
    assert all(block._compiled_call_impl is not None for block in blocks)
    assert set(module.state_dict()) == keys
