"""`multibyte fit|validate|test --config recipes/NAME.yaml [--key value ...]` via LightningCLI."""

from __future__ import annotations

import os
import platform
import sys

import torch
import torch.distributed as dist
from lightning.pytorch.cli import LightningCLI, SaveConfigCallback

from multibyte.checkpoint import read_checkpoint
from multibyte.train.callbacks import Checkpoints
from multibyte.train.data import ByteDataModule, ConfigError
from multibyte.train.module import ByteLM


class SaveConfigNextToCheckpoints(SaveConfigCallback):
    """Save the resolved config in the log folder (Lightning's default) and in checkpoints/."""

    def setup(self, trainer, pl_module, stage: str) -> None:
        super().setup(trainer, pl_module, stage)
        if trainer.is_global_zero:
            folder = os.path.join(trainer.default_root_dir, "checkpoints")
            os.makedirs(folder, exist_ok=True)
            self.parser.save(
                self.config, os.path.join(folder, "config.yaml"),
                overwrite=True, multifile=False,
            )  # fmt: skip


class MultibyteCLI(LightningCLI):
    def _check_model_against_data(self) -> None:
        """Configuration that only the model and the data together can reject, before any work."""
        config = self.model.model.config
        data = self.datamodule
        patch = getattr(config, "patch_size", None)
        data.set_patch_size(patch or 1)  # several sources: the header fills whole patches
        if patch and data.seq_len % patch:
            raise ConfigError(
                f"data.seq_len={data.seq_len} is not a multiple of the model's patch_size={patch}"
            )
        if config.max_seq_len < data.seq_len:
            raise ConfigError(
                f"the model's max_seq_len={config.max_seq_len} is shorter than "
                f"data.seq_len={data.seq_len}"
            )

    def instantiate_trainer(self, **kwargs):
        # CSV and TensorBoard logs under default_root_dir unless the recipe names its own.
        trainer_config = self._get(self.config_init, "trainer", default={})
        if trainer_config.get("logger") in (None, True) and "logger" not in kwargs:
            from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

            root = trainer_config.get("default_root_dir") or os.getcwd()
            kwargs["logger"] = [
                CSVLogger(root, name="csv"),
                TensorBoardLogger(root, name="tensorboard"),
            ]
        return super().instantiate_trainer(**kwargs)

    def _place_checkpoints(self) -> None:
        # Before Lightning resolves `--ckpt_path last`, which looks in the callbacks' dirpath.
        for callback in self.trainer.checkpoint_callbacks:
            if isinstance(callback, Checkpoints) and callback.dirpath is None:
                callback.dirpath = os.path.join(self.trainer.default_root_dir, "checkpoints")

    def _parse_ckpt_path(self) -> None:
        # Lightning reads --ckpt_path here, before any hook, and its refusal of a file that needs
        # more than plain data is a raw UnpicklingError. Read it our way first (weights_only=True,
        # and it must be a multibyte checkpoint), so the refusal is one line naming the file.
        subcommand = self.config.get("subcommand")
        path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if path and os.path.isfile(path):
            read_checkpoint(path)
        super()._parse_ckpt_path()

    def _warn_of_emulated_bf16(self) -> None:
        precision = str(self.trainer.precision)
        on_cpu = self.trainer.strategy.root_device.type == "cpu"
        if on_cpu and precision.startswith("bf16") and cpu_lacks_bf16_units():
            print(
                f"multibyte fit: warning: trainer.precision={precision} on a CPU without bf16 "
                "matrix instructions (AVX512-BF16 or AMX) is slower than float32; "
                "--trainer.precision 32-true trains faster here",
                file=sys.stderr,
            )

    def before_fit(self) -> None:
        self._check_model_against_data()
        self._place_checkpoints()
        if self.trainer.is_global_zero:
            self._warn_of_emulated_bf16()

    def before_validate(self) -> None:
        self._check_model_against_data()
        self._place_checkpoints()

    def before_test(self) -> None:
        self._check_model_against_data()
        self._place_checkpoints()

    def after_fit(self) -> None:
        callback = self.trainer.checkpoint_callback
        path = getattr(callback, "last_model_path", "") or getattr(callback, "best_model_path", "")
        if self.trainer.is_global_zero:
            print(f"last checkpoint: {path or 'none was written'}")


def main(argv: list[str] | None = None) -> int:
    """Run a LightningCLI sub-command; argv starts with fit, validate or test."""
    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        MultibyteCLI(
            ByteLM,
            ByteDataModule,
            # None lets LightningCLI read sys.argv itself when we were run as the console script
            args=None if argv == sys.argv[1:] else argv,
            save_config_callback=SaveConfigNextToCheckpoints,
            save_config_kwargs={"overwrite": True},
            trainer_defaults={"use_distributed_sampler": False},
            auto_configure_optimizers=False,
        )
    except ConfigError as error:
        command = argv[0] if argv else "fit"
        print(f"multibyte {command}: configuration error: {error}", file=sys.stderr)
        return 2
    end_process_group()
    return 0


def cpu_lacks_bf16_units() -> bool:
    """True on an x86 CPU with neither AVX512-BF16 nor AMX, where bf16 products are emulated
    (False elsewhere: torch cannot tell there)."""
    if platform.machine().lower() not in ("x86_64", "amd64"):
        return False
    checks = [
        getattr(torch.cpu, name, None)
        for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")
    ]
    known = [check for check in checks if check is not None]
    return bool(known) and not any(check() for check in known)


def end_process_group() -> None:
    """After a run that ended well on every rank: wait for the others, then close the process
    group. A rank that exits while another still holds connections to it can make that one
    abort at exit ("terminate called without an active exception", seen with gloo). Not after
    an error: a rank that failed may never reach the barrier."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
