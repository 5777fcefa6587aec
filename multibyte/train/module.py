"""The LightningModule: any multibyte model, trained on next-byte cross-entropy in bits per byte."""

from __future__ import annotations

import math
from typing import Any

import lightning as L
import torch
from torch import nn

from multibyte.checkpoint import (
    CHECKPOINT_FORMAT,
    MODEL_CLASSES,
    CheckpointError,
    model_spec,
)
from multibyte.data.header import HeaderTable, is_mixture
from multibyte.flops import flops_per_byte
from multibyte.loss import cross_entropy_sum, next_byte_loss, next_byte_nats
from multibyte.model.blocks import compile_blocks, cpu_compile_unavailable
from multibyte.train.data import ConfigError

LN2 = math.log(2.0)
SCHEDULES = ("cosine", "polynomial", "constant")


def warmup_then_decay(
    step: int, warmup_steps: int, total_steps: int, schedule: str, min_lr_ratio: float, power: float
) -> float:
    """Learning-rate multiplier: linear warmup to 1, then decay to min_lr_ratio at total_steps."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    if schedule == "constant" or total_steps <= warmup_steps:
        return 1.0
    progress = min(1.0, (step - warmup_steps) / (total_steps - warmup_steps))
    if schedule == "cosine":
        shape = 0.5 * (1.0 + math.cos(math.pi * progress))
    else:  # polynomial, as the paper (power 1 is linear decay)
        shape = (1.0 - progress) ** power
    return min_lr_ratio + (1.0 - min_lr_ratio) * shape


class WarmupDecay:
    """A picklable LR lambda (its state_dict is plain data, so checkpoints stay weights-only)."""

    def __init__(self, **settings: Any) -> None:
        self.settings = settings

    def __call__(self, step: int) -> float:
        return warmup_then_decay(step, **self.settings)


class ByteLM(L.LightningModule):
    def __init__(
        self,
        model: nn.Module,
        lr: float = 3e-4,
        betas: tuple[float, float] = (0.9, 0.98),
        weight_decay: float = 0.1,
        warmup_steps: int = 500,
        schedule: str = "polynomial",
        decay_power: float = 1.0,
        min_lr_ratio: float = 0.0,
        total_steps: int | None = None,
        loss_chunk: int | None = 8192,
        compile: bool = False,
        seed: int = 0,
    ) -> None:
        """
        Args:
            model: a `multibyte.Megabyte` or `multibyte.ByteTransformer` (YAML `class_path`).
            lr: peak learning rate (the paper: 2e-4 to 3e-4).
            betas: AdamW betas (the paper: 0.9, 0.98).
            weight_decay: applied to weight matrices only, never to norms, embeddings, biases.
            warmup_steps: linear warmup from 0 to `lr`.
            schedule: "polynomial" (the paper's), "cosine" or "constant" after warmup.
            decay_power: power of the polynomial decay (1 = linear).
            min_lr_ratio: the decay ends at lr * min_lr_ratio.
            total_steps: where the decay ends; default the trainer's max_steps.
            loss_chunk: positions per chunk of the fused head + loss (None: all at once).
            compile: torch.compile every transformer block in place (state-dict keys stay
                unchanged; cached generation stays eager).
            seed: dropout RNG seed; the RNG is reseeded from (seed, micro-batch, rank) every
                step, so a resumed run draws the same dropout masks as an uninterrupted one.
        """
        super().__init__()
        if schedule not in SCHEDULES:
            raise ConfigError(f"model.schedule must be one of {SCHEDULES}, got {schedule!r}")
        for name, value in (
            ("lr", lr),
            ("warmup_steps", warmup_steps + 1),
            ("decay_power", decay_power),
        ):
            if value <= 0:
                raise ConfigError(f"model.{name} must be positive, got {value}")
        self.model = model
        # plain data: rebuilds the architecture on load. A model it cannot rebuild (the quality
        # benchmark's megabyte-pytorch) trains all the same; only saving it is refused.
        self.spec = model_spec(model) if type(model).__name__ in MODEL_CLASSES else None
        self.save_hyperparameters(ignore=["model"])
        self.modality: dict[str, Any] | None = None
        # sources' weights in the training loss (`loss_weight`), in the header table's order;
        # None when every one is 1, so the plain loss needs no product
        self.loss_weights: torch.Tensor | None = None
        self.flops_per_batch: float | None = None
        self._flops_shape: tuple[int, int] | None = None
        self._val_bits = torch.zeros((), dtype=torch.float64)
        self._val_bytes = torch.zeros((), dtype=torch.int64)
        if compile and compile_blocks(self.model) == 0:
            raise ConfigError(
                f"model.compile: {type(model).__name__} has no multibyte transformer blocks "
                "to compile"
            )

    # -- steps -----------------------------------------------------------------------------

    def _nats(self, batch: torch.Tensor) -> torch.Tensor:
        return next_byte_nats(self.model, batch, self.hparams.loss_chunk)

    def on_train_batch_start(self, batch: Any, batch_idx: int) -> None:
        micro_batch = self.global_step * self.trainer.accumulate_grad_batches + (
            batch_idx % self.trainer.accumulate_grad_batches
        )
        torch.manual_seed(hash((self.hparams.seed, micro_batch, self.global_rank)) % (2**63))
        self._micro_batch = batch_idx

    def training_step(self, batch: torch.Tensor, batch_idx: int) -> torch.Tensor:
        self._update_flops(batch)
        table = self.header_table
        if table is not None:
            return self._mixture_training_step(batch, table)
        loss = next_byte_loss(self.model, batch, self.hparams.loss_chunk)
        if not torch.isfinite(loss):
            last = getattr(self.trainer.checkpoint_callback, "last_model_path", "") or "none yet"
            raise FloatingPointError(
                f"non-finite training loss ({loss.item()}) at step {self.global_step}; stopping. "
                f"The last good checkpoint is {last}"
            )
        self.log("train/bpb", loss.detach() / LN2, prog_bar=True)
        return loss

    def on_validation_epoch_start(self) -> None:
        self._val_bits = torch.zeros((), dtype=torch.float64, device=self.device)
        self._val_bytes = torch.zeros((), dtype=torch.int64, device=self.device)
        table = self.header_table
        if table is not None:  # per modality, then the header (bits, bytes)
            size = len(table.modalities) + 1
            self._val_bits = torch.zeros(size, dtype=torch.float64, device=self.device)
            self._val_bytes = torch.zeros(size, dtype=torch.int64, device=self.device)

    def validation_step(self, batch: torch.Tensor, batch_idx: int) -> None:
        table = self.header_table
        if table is not None:
            nats, counts = self._mixture_nats(batch, table)
            self._val_bits += nats / LN2
            self._val_bytes += counts
            return
        self._val_bits += self._nats(batch).double() / LN2
        self._val_bytes += batch.numel()

    # -- one model, several modalities --------------------------------------------------------

    @property
    def header_table(self) -> HeaderTable | None:
        """The modalities and headers of a multimodal run (None for one modality)."""
        if not is_mixture(self.modality):
            return None
        if getattr(self, "_table_of", None) is not self.modality:
            self._table, self._table_of = HeaderTable.from_entry(self.modality), self.modality
        return self._table

    def _mixture_nats(
        self, batch: torch.Tensor, table: HeaderTable
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Nats and byte counts per modality (data bytes only), then of the headers: [M + 1].

        Header bytes are context, never targets: the loss and every bpb but the header's
        count data bytes only.
        """
        rows = table.identify(batch)
        if (rows < 0).any():
            raise ValueError("a multimodal batch holds a sequence without a known header")
        hidden = self.model.hidden(batch)
        size, head = table.length, self.model.head
        nats, counts = [], []
        for m in range(len(table.modalities)):
            index = (rows == m).nonzero().squeeze(1)
            data = batch[index, size:]
            chunk = self.hparams.loss_chunk
            nats.append(cross_entropy_sum(hidden[index, size:], head, data, chunk).double())
            counts.append(data.numel())
        with torch.no_grad():
            nats.append(cross_entropy_sum(hidden[:, :size], head, batch[:, :size], None).double())
        counts.append(batch[:, :size].numel())
        return torch.stack(nats), torch.tensor(counts, dtype=torch.int64, device=batch.device)

    def _mixture_training_step(self, batch: torch.Tensor, table: HeaderTable) -> torch.Tensor:
        nats, counts = self._mixture_nats(batch, table)
        data_bytes = counts[:-1].sum()
        loss = (nats[:-1].sum() / data_bytes).float()
        if not torch.isfinite(loss):
            raise FloatingPointError(
                f"non-finite training loss ({loss.item()}) at step {self.global_step}; stopping"
            )
        self.log("train/bpb", loss.detach() / LN2, prog_bar=True)
        self._log_train_modalities(table, nats.detach(), counts)
        if self.loss_weights is None:
            return loss
        weights = self.loss_weights.to(nats.device)  # made once, on the device, at fit start
        return ((nats[:-1] * weights).sum() / data_bytes).float()

    def _log_train_modalities(
        self, table: HeaderTable, nats: torch.Tensor, counts: torch.Tensor
    ) -> None:
        """bpb per modality over the steps since the last log (a batch may lack a modality,
        so these go to the loggers directly: `self.log` would repeat a stale value)."""
        if getattr(self, "_train_sums", None) is None or self._train_sums[0].shape != nats.shape:
            self._train_sums = (torch.zeros_like(nats), torch.zeros_like(counts))
        self._train_sums[0].add_(nats)
        self._train_sums[1].add_(counts)
        every = max(1, self.trainer.log_every_n_steps)
        last_micro_batch = (self._micro_batch + 1) % self.trainer.accumulate_grad_batches == 0
        if not last_micro_batch or (self.global_step + 1) % every:
            return
        bits, seen = self._train_sums
        metrics = {
            f"train/bpb_{label}": float(bits[m]) / int(seen[m]) / LN2
            for m, label in enumerate([*table.labels, None])
            if int(seen[m])
        }
        if int(seen[-1]):
            metrics["train/header_bpb"] = metrics.pop("train/bpb_None")
        self._train_sums = None
        if self.trainer.is_global_zero:
            for logger in self.loggers:
                logger.log_metrics(metrics, step=self.global_step)

    def _mixture_validation_end(self, table: HeaderTable, prefix: str) -> None:
        bits = self.trainer.strategy.reduce(self._val_bits, reduce_op="sum")
        counts = self.trainer.strategy.reduce(self._val_bytes, reduce_op="sum")
        data_bytes = int(counts[:-1].sum())
        if not data_bytes:
            return
        self.log(f"{prefix}/bpb", float(bits[:-1].sum()) / data_bytes, prog_bar=True)
        self.log(f"{prefix}/bytes", float(data_bytes))
        for m, label in enumerate([*table.labels, None]):
            if int(counts[m]):
                name = f"{prefix}/header_bpb" if label is None else f"{prefix}/bpb_{label}"
                self.log(name, float(bits[m]) / int(counts[m]))

    def _reduced_bpb(self) -> tuple[float, int]:
        # Exact over all ranks: sum bits and bytes, then divide (batches may differ in size).
        bits = self.trainer.strategy.reduce(self._val_bits, reduce_op="sum")
        count = int(self.trainer.strategy.reduce(self._val_bytes, reduce_op="sum"))
        return (float(bits) / count if count else float("nan")), count

    def on_validation_epoch_end(self) -> None:
        if self.header_table is not None:
            return self._mixture_validation_end(self.header_table, "val")
        bpb, count = self._reduced_bpb()
        if count:
            self.log("val/bpb", bpb, prog_bar=True)
            self.log("val/bytes", float(count))

    test_step = validation_step
    on_test_epoch_start = on_validation_epoch_start

    def on_test_epoch_end(self) -> None:
        if self.header_table is not None:
            return self._mixture_validation_end(self.header_table, "test")
        bpb, count = self._reduced_bpb()
        if count:
            self.log("test/bpb", bpb)

    def _update_flops(self, batch: torch.Tensor) -> None:
        shape = tuple(batch.shape)
        if shape != self._flops_shape:  # ThroughputMonitor reads this attribute every step
            self._flops_shape = shape
            self.flops_per_batch = flops_per_byte(self.model.config, shape[1]).train * batch.numel()

    # -- optimizer ---------------------------------------------------------------------------

    def configure_optimizers(self) -> dict[str, Any]:
        # Decay weight matrices only; a head tied to an embedding counts as an embedding.
        embeddings = {id(m.weight) for m in self.model.modules() if isinstance(m, nn.Embedding)}
        decay, no_decay, seen = [], [], set()
        for module in self.model.modules():
            for name, parameter in module.named_parameters(recurse=False):
                if not parameter.requires_grad or id(parameter) in seen:
                    continue
                seen.add(id(parameter))
                is_matrix = isinstance(module, (nn.Linear, nn.Conv1d)) and name == "weight"
                if is_matrix and id(parameter) not in embeddings:
                    decay.append(parameter)
                else:
                    no_decay.append(parameter)
        hp = self.hparams
        optimizer = torch.optim.AdamW(
            [
                {"params": decay, "weight_decay": hp.weight_decay},
                {"params": no_decay, "weight_decay": 0.0},
            ],
            lr=hp.lr,
            betas=tuple(hp.betas),
        )
        total = hp.total_steps or (self.trainer.max_steps if self.trainer.max_steps > 0 else 0)
        schedule = WarmupDecay(
            warmup_steps=hp.warmup_steps,
            total_steps=total,
            schedule=hp.schedule,
            min_lr_ratio=hp.min_lr_ratio,
            power=hp.decay_power,
        )
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        return {
            "optimizer": optimizer,
            "lr_scheduler": {"scheduler": scheduler, "interval": "step"},
        }

    # -- checkpoints --------------------------------------------------------------------------

    def on_fit_start(self) -> None:
        if self.hparams.compile and self.device.type == "cpu":  # refuse before the first step
            reason = cpu_compile_unavailable()
            if reason:
                raise ConfigError(f"model.compile: {reason}; install one or set it to false")
        self._remember_modality()

    def on_validation_start(self) -> None:
        self._remember_modality()

    def _remember_modality(self) -> None:
        datamodule = getattr(self.trainer, "datamodule", None)
        if datamodule is not None and hasattr(datamodule, "modality_options"):
            self.modality = datamodule.modality_options
            weights = getattr(datamodule, "loss_weights", None)
            self.loss_weights = None
            if weights is not None and any(w != 1.0 for w in weights):
                self.loss_weights = torch.tensor(weights, dtype=torch.float64, device=self.device)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        if self.spec is None:
            raise CheckpointError(f"a multibyte checkpoint cannot hold {type(self.model).__name__}")
        checkpoint["multibyte"] = {
            "format": CHECKPOINT_FORMAT,
            "model": self.spec,
            "modality": self.modality,
        }

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        info = checkpoint.get("multibyte", {})
        if info.get("model") and info["model"] != self.spec:
            raise ValueError(
                "the checkpoint's model does not match the configured one: "
                f"{info['model']} != {self.spec}"
            )
        self.modality = info.get("modality", self.modality)
