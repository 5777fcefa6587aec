"""megabyte-pytorch 0.3.6 behind our model interface, and what trains and scores both models alike.

`PeerMegabyte(config)` is its `MEGABYTE` sized by our config (widths, depths, P and length; the
rest its own defaults). It has `.config`, `.hidden(x)`, `.head` and `forward = head(hidden)`, so
our trainer and `multibyte.evaluation` use it unchanged; our loss scores every byte (its own
ignores `pad_id`). Our checkpoints cannot hold it: `fit_in_process` hands back the trained module
and `evaluate_in_memory` scores it. Needs `pip install -e ".[bench]"`.
"""

from __future__ import annotations

import importlib
import json
import time
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn

from benchmarks import harness as h
from multibyte.evaluation.command import build_parser, limit_sequences, open_data
from multibyte.evaluation.evaluation import evaluate_model
from multibyte.evaluation.scoring import max_seq_len_of, model_device
from multibyte.model import MegabyteConfig
from multibyte.train.cli import MultibyteCLI, SaveConfigNextToCheckpoints
from multibyte.train.data import ByteDataModule
from multibyte.train.module import ByteLM

try:
    from MEGABYTE_pytorch import MEGABYTE
except ImportError:  # the bench extra is not installed
    MEGABYTE = None

VERSION = "0.3.6"
CLASS_PATH = "benchmarks.peer.PeerMegabyte"
# The MegabyteConfig fields that size the peer (the preset's, or a recipe's overrides of them).
SIZES = ("preset_name", "patch_size", "max_seq_len", "global_dim", "global_layers")
SIZES += ("local_dim", "local_layers")


def installed() -> bool:
    return MEGABYTE is not None


class _Capture(nn.Module):
    """Stands in for megabyte-pytorch's `to_logits`: keeps the last stage's output (its input)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.out = x
        return x


class PeerMegabyte(nn.Module):
    def __init__(self, config: MegabyteConfig, heads: int = 8) -> None:
        """megabyte-pytorch sized by `config`; `heads` of 64 dimensions in every stage."""
        super().__init__()
        if MEGABYTE is None:
            install = f"pip install -e '.[bench]' (MEGABYTE-pytorch=={VERSION})"
            raise ImportError(f"megabyte-pytorch is not installed: {install}")
        if config.patch_sizes and len(config.patch_sizes) > 1:
            raise ValueError("PeerMegabyte mirrors two-stage configs only (no patch_sizes)")
        self.config = config
        dim, depth = (
            (config.global_dim, config.local_dim),
            (config.global_layers, config.local_layers),
        )
        length = (config.max_seq_len // config.patch_size, config.patch_size)
        self.net = MEGABYTE(num_tokens=256, dim=dim, depth=depth, max_seq_len=length, heads=heads)
        self.head = self.net.to_logits
        self.net.to_logits = _Capture()

    def hidden(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T] bytes -> [B, T, local_dim]. Its loss path in our order: the first patch's start
        token predicts byte 0; local position i of patch m (i = 1..P) predicts byte mP + i (the
        last one the first byte of the next patch), so no position is thrown away but the last."""
        length = x.shape[1]
        self.net(x)  # pads to whole patches with pad_id: bytes after T, never seen before T
        out = self.net.to_logits.out  # [B, patches, P + 1, local_dim]
        self.net.to_logits.out = None
        return torch.cat((out[:, 0, :1], out[:, :, 1:].flatten(1, 2)), dim=1)[:, :length]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.hidden(x))


class TrainClock(L.Callback):
    """Writes to `path` the seconds of training (the benchmark's fits run no validation) after
    the last optimizer step, the optimizer steps and the model's parameter count."""

    def __init__(self, path: str) -> None:
        self.path = path

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.parameters = sum(p.numel() for p in pl_module.model.parameters())
        self.steps, self.seconds, self.step = 0, 0.0, trainer.global_step
        h.sync()
        self.start = time.perf_counter()

    def on_train_batch_end(self, trainer: L.Trainer, *args: Any) -> None:
        if trainer.global_step != self.step:  # an optimizer step, not a micro-batch
            self.step, self.steps = trainer.global_step, self.steps + 1
            h.sync()
            self.seconds = time.perf_counter() - self.start

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        record = {"parameters": self.parameters, "steps": self.steps, "seconds": self.seconds}
        Path(self.path).write_text(json.dumps(record, indent=1) + "\n")


def recipe(ours: dict, heads: int = 8) -> dict:
    """Our recipe (a loaded YAML) with the peer in place of our model, sized by the same config,
    and without checkpoint callbacks: our checkpoints cannot hold it."""
    swapped = json.loads(json.dumps(ours))  # a deep copy of plain data
    model = swapped["model"]["model"]
    model["class_path"] = CLASS_PATH
    config = model["init_args"]["config"]  # sizes only: our architecture flags do not apply
    model["init_args"] = {"config": {k: config[k] for k in SIZES if k in config}, "heads": heads}
    swapped["model"].pop("compile", None)  # it compiles our blocks; the peer trains as it ships
    trainer = swapped.setdefault("trainer", {})
    callbacks = trainer.get("callbacks") or []
    trainer["callbacks"] = [c for c in callbacks if not is_checkpoint(c["class_path"])]
    trainer["enable_checkpointing"] = False
    return swapped


def is_checkpoint(class_path: str) -> bool:
    module, _, name = class_path.rpartition(".")
    callback = getattr(importlib.import_module(module or "lightning.pytorch.callbacks"), name)
    return issubclass(callback, ModelCheckpoint)


def fit_in_process(argv: list[str]) -> ByteLM:
    """`multibyte fit ARGV` as `multibyte.train.cli.main` runs it; returns the trained module."""
    settings = dict(save_config_kwargs={"overwrite": True}, auto_configure_optimizers=False)
    settings |= dict(save_config_callback=SaveConfigNextToCheckpoints)
    settings |= dict(trainer_defaults={"use_distributed_sampler": False})
    return MultibyteCLI(ByteLM, ByteDataModule, args=["fit", *argv], **settings).model


def evaluate_in_memory(
    model: nn.Module, data: str, modality: dict | None, limit: int | None = None
) -> dict:
    """The report `multibyte evaluate --data DATA --no-codecs [--limit N]` gives, for a model
    in memory: the same data (the val split), windows, batch size and scoring."""
    args = build_parser().parse_args(
        ["--ckpt", "(in memory)", "--data", data, "--no-codecs", "--quiet"]
        + (["--limit", str(limit)] if limit else [])
    )
    prepared, sequences = open_data(args, modality)
    sequences = limit_sequences(sequences, args.limit, max_seq_len_of(model), prepared.stream)
    how = {"adapter": prepared.adapter, "stream": prepared.stream, "codecs": False}
    how["device"] = model_device(model)
    evaluation = evaluate_model(model.eval(), sequences, batch_size=args.batch_size, **how)
    return evaluation.summary
