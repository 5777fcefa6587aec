"""`multibyte fit|validate|test --config recipes/NAME.yaml [--key value ...]` via LightningCLI."""

from __future__ import annotations

import os
import sys

import torch
import torch.distributed as dist
from lightning.pytorch.cli import LightningCLI, SaveConfigCallback

from multibyte.checkpoint import CheckpointError, read_checkpoint
from multibyte.train.callbacks import Checkpoints
from multibyte.train.data import ByteDataModule, ConfigError
from multibyte.train.module import ByteLM
from multibyte.train.precision import device_kind, resolve_compile, resolve_precision


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
    command_line: list[str] = []  # the arguments as given, to tell flags from recipe settings

    def _check_model_against_data(self) -> None:
        """Configuration that only the model and the data together can reject, before any work."""
        config = self.model.model.config
        data = self.datamodule
        patch = getattr(config, "patch_size", None)
        # several sources: the header fills whole patches, the data the rest of max_seq_len
        data.set_patch_size(patch or 1, config.max_seq_len)
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
        if path and os.path.isdir(path):  # `multibyte export` writes weights only
            raise CheckpointError(
                f"--ckpt_path {path} is a folder: resuming needs a .ckpt (an exported folder "
                "holds the weights only, no optimizer or trainer state)"
            )
        if path and os.path.isfile(path):
            read_checkpoint(path)
        super()._parse_ckpt_path()

    def before_instantiate_classes(self) -> None:
        """Resolve precision and compile against this machine, before anything is built."""
        config = self.config[self.config.subcommand]
        trainer, model = config.trainer, config.model
        device = device_kind(trainer.accelerator)
        if device == "cuda" and not torch.cuda.is_available():
            raise ConfigError(
                f"trainer.accelerator={trainer.accelerator}: no CUDA GPU is available here "
                "(a GPU recipe; on a CPU add --trainer.accelerator cpu --trainer.devices 1)"
            )
        precision = resolve_precision(
            trainer.precision, device, explicit=self._given("--trainer.precision")
        )
        trainer.precision = precision.value
        resolved = [("precision", precision)]
        if model.get("compile"):
            compiled = resolve_compile(True, device, explicit=self._given("--model.compile"))
            model.compile = compiled.value == "true"
            if not model.compile:
                resolved.append(("compile", compiled))
        if is_rank_zero():
            for name, setting in resolved:
                print(setting.line(name), flush=True)

    def _given(self, flag: str) -> bool:
        """Whether the command line itself sets `flag` (not a --config file)."""
        return any(arg == flag or arg.startswith(flag + "=") for arg in self.command_line)

    def before_fit(self) -> None:
        self._check_model_against_data()
        self._place_checkpoints()

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
    MultibyteCLI.command_line = argv
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


def is_rank_zero() -> bool:
    """Before the trainer exists: a DDP child process has RANK or LOCAL_RANK set."""
    return int(os.environ.get("RANK", os.environ.get("LOCAL_RANK", "0"))) == 0


def end_process_group() -> None:
    """After a run that ended well on every rank: wait for the others, then close the process
    group. A rank that exits while another still holds connections to it can make that one
    abort at exit ("terminate called without an active exception", seen with gloo). Not after
    an error: a rank that failed may never reach the barrier."""
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
