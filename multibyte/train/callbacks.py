"""Callbacks: checkpoints in a fixed folder, and throughput with MFU for any device."""

from __future__ import annotations

import os

import lightning as L
import torch
from lightning.pytorch.callbacks import ModelCheckpoint, ThroughputMonitor

# Dense peak FLOP/s of devices Lightning may not know, by compute dtype (from vendor sheets).
PEAK_FLOPS = {
    "h100": {torch.bfloat16: 989e12, torch.float16: 989e12, torch.float32: 67e12},
    "h200": {torch.bfloat16: 989e12, torch.float16: 989e12, torch.float32: 67e12},
    "a100": {torch.bfloat16: 312e12, torch.float16: 312e12, torch.float32: 19.5e12},
}


class Checkpoints(ModelCheckpoint):
    """ModelCheckpoint that defaults to `{default_root_dir}/checkpoints`, so that a rerun of the
    same command finds `last.ckpt` there (`--ckpt_path last`) whatever the logger's version.

    Lightning writes each file through an fsspec transaction (a temporary file, then a rename),
    so a write killed halfway never replaces a good `last.ckpt` with a broken one.
    """

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        if self.dirpath is None:
            self.dirpath = os.path.join(trainer.default_root_dir, "checkpoints")
        super().setup(trainer, pl_module, stage)


class ByteThroughput(ThroughputMonitor):
    """Lightning's ThroughputMonitor for byte batches: logs bytes/s, FLOP/s and, given the
    device's peak, MFU. The model's FLOPs per batch come from `multibyte.flops`.

    `peak_flops` overrides the peak; otherwise Lightning's table is used, then ours above.
    """

    def __init__(self, peak_flops: float | None = None, window_size: int = 20) -> None:
        super().__init__(
            batch_size_fn=lambda batch: batch.shape[0],
            length_fn=lambda batch: batch.numel(),
            window_size=window_size,
        )
        self.peak_flops = peak_flops

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        peak = self.peak_flops or self.available_flops or _known_peak(trainer)
        if peak and peak != self.available_flops:
            self.available_flops = peak
            for throughput in self._throughputs.values():
                throughput.available_flops = peak  # per device, as Throughput expects


def _known_peak(trainer: L.Trainer) -> float | None:
    device = trainer.strategy.root_device
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device).lower()
    from lightning.fabric.utilities.throughput import _plugin_to_compute_dtype

    dtype = _plugin_to_compute_dtype(trainer.precision_plugin)
    for key, table in PEAK_FLOPS.items():
        if key in name:
            return table.get(dtype)
    return None
