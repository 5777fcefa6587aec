"""`multibyte fit|validate|test --config recipes/NAME.yaml [--key value ...]` via LightningCLI."""

from __future__ import annotations

import os
import shlex
import signal
import sys
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.pytorch.cli import LightningCLI, SaveConfigCallback

from multibyte.checkpoint import CheckpointError, model_state_dict, read_checkpoint
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
                self.config,
                os.path.join(folder, "config.yaml"),
                overwrite=True,
                multifile=False,
            )


# Trainer arguments where an int counts batches and a float is a fraction: Lightning declares
# them Union[float, int], which jsonargparse tries in order, so "1" would become 1.0 (100%).
COUNT_OR_FRACTION = (
    "limit_train_batches",
    "limit_val_batches",
    "limit_test_batches",
    "limit_predict_batches",
    "overfit_batches",
    "val_check_interval",
)
# What a run writes under default_root_dir (config.yaml, logs, checkpoints).
RUN_OUTPUTS = ("checkpoints", "csv", "tensorboard", "lightning_logs")


class MultibyteCLI(LightningCLI):
    command_line: list[str] = []  # the arguments as given, to tell flags from recipe settings
    trainer_made: Any = None  # the current run's Trainer, for main() after an interrupt
    resume_from: str | None = None
    run_root: Path | None = None
    before_run: set[Path] = set()  # what existed under run_root's RUN_OUTPUTS before this run

    def add_arguments_to_parser(self, parser: Any) -> None:
        for action in parser._actions:  # jsonargparse keeps the type hint on its typed actions
            name = action.dest.removeprefix("trainer.")
            if name in COUNT_OR_FRACTION and hasattr(action, "_typehint"):
                if action._typehint == (float | int | None):
                    action._typehint = int | float | None

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
        try:
            trainer = super().instantiate_trainer(**kwargs)
        except MisconfigurationException as error:  # a bad trainer number, before any work
            raise ConfigError(f"trainer: {' '.join(str(error).split())}") from error
        MultibyteCLI.trainer_made = trainer
        return trainer

    def instantiate_classes(self) -> None:
        # Remember what the run's output folders held, so that a run failing before its first
        # checkpoint removes exactly what it wrote (config.yaml, log folders) and nothing else.
        subcommand = self.config.get("subcommand")  # None with run=False
        trainer = (self.config[subcommand] if subcommand else self.config).get("trainer") or {}
        root = Path(trainer.get("default_root_dir") or os.getcwd())
        MultibyteCLI.run_root = root
        MultibyteCLI.before_run = {p for name in RUN_OUTPUTS for p in _tree(root / name)}
        MultibyteCLI.before_run |= {root} if root.exists() else set()
        super().instantiate_classes()

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
        self._resume_weights = None
        if path and os.path.isfile(path):
            checkpoint = read_checkpoint(path)
            if subcommand == "fit" and "pytorch-lightning_version" not in checkpoint:
                raise ConfigError(
                    f"--ckpt_path {path}: an exported model, not a training checkpoint (it has "
                    "no optimizer or step to resume); pass a .ckpt that `multibyte fit` wrote"
                )
            weights = model_state_dict(checkpoint)
            self._resume_weights = {k: tuple(v.shape) for k, v in weights.items()}
            MultibyteCLI.resume_from = str(path)
        super()._parse_ckpt_path()

    def _check_checkpoint_against_model(self) -> None:
        """--ckpt_path must hold this recipe's model: one line, not Lightning's weight dump."""
        saved = getattr(self, "_resume_weights", None)
        if saved is None:
            return
        ours = {
            k.replace("_orig_mod.", ""): tuple(v.shape)
            for k, v in self.model.model.state_dict().items()
        }
        path = self.config[self.config.subcommand].get("ckpt_path")
        missing, extra = sorted(set(ours) - set(saved)), sorted(set(saved) - set(ours))
        shapes = sorted(k for k in set(ours) & set(saved) if ours[k] != saved[k])
        if missing or extra or shapes:
            if shapes:
                key = shapes[0]
                what = f"{key} is {list(saved[key])} there, {list(ours[key])} here"
            else:
                what = f"{(missing or extra)[0]} is only {'here' if missing else 'there'}"
            count = len(missing) + len(extra) + len(shapes)
            raise ConfigError(
                f"--ckpt_path {path} holds another model than this recipe builds ({count} "
                f"weights differ; e.g. {what}): resume with the recipe and model options it "
                "was trained with"
            )

    def before_instantiate_classes(self) -> None:
        """Resolve precision and compile against this machine, before anything is built (for a
        run: fit, validate or test; run=False only parses)."""
        subcommand = self.config.get("subcommand")
        if not subcommand:
            return
        config = self.config[subcommand]
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

    def _before_run(self) -> None:
        self._check_model_against_data()
        self._check_checkpoint_against_model()
        self.datamodule.check_enough_data()
        self._place_checkpoints()

    def before_fit(self) -> None:
        self._before_run()

    def before_validate(self) -> None:
        self._before_run()

    def before_test(self) -> None:
        self._before_run()

    def after_fit(self) -> None:
        callback = self.trainer.checkpoint_callback
        path = getattr(callback, "last_model_path", "") or getattr(callback, "best_model_path", "")
        if self.trainer.is_global_zero:
            print(f"last checkpoint: {path or 'none was written'}")


def main(argv: list[str] | None = None) -> int:
    """Run a LightningCLI sub-command; argv starts with fit, validate or test."""
    argv = list(sys.argv[1:] if argv is None else argv)
    MultibyteCLI.command_line = argv
    MultibyteCLI.trainer_made, MultibyteCLI.resume_from, MultibyteCLI.run_root = None, None, None
    command = argv[0] if argv else "fit"
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
        remove_unfinished_run()
        print(f"multibyte {command}: configuration error: {error}", file=sys.stderr)
        return 2
    except SystemExit:
        trainer = MultibyteCLI.trainer_made
        if trainer is None or not trainer.interrupted:
            raise
        # Lightning caught Ctrl-C, shut down, and exits 1 with SIGINT ignored: say how to go on.
        signal.signal(signal.SIGINT, signal.default_int_handler)
        if trainer.is_global_zero:
            print(f"multibyte {command}: {interrupted_line(trainer, argv)}", file=sys.stderr)
        return 130
    except BaseException:
        remove_unfinished_run()
        raise
    end_process_group()
    return 0


def interrupted_line(trainer: Any, argv: list[str]) -> str:
    """After Ctrl-C: the last checkpoint and the exact command that resumes from it."""
    last = getattr(trainer.checkpoint_callback, "last_model_path", "") or MultibyteCLI.resume_from
    if not last or not os.path.isfile(last):
        again = shlex.join(["multibyte", *argv])
        return (
            f"interrupted at step {trainer.global_step}, before any checkpoint was written; "
            f"start again with `{again}`"
        )
    rest, skip = [], False
    for arg in argv:  # the same command, its --ckpt_path now the last checkpoint
        if skip:
            skip = False
        elif arg == "--ckpt_path":
            skip = True
        elif not arg.startswith("--ckpt_path="):
            rest.append(arg)
    resume = shlex.join(["multibyte", *rest, "--ckpt_path", os.path.abspath(last)])
    return (
        f"interrupted at step {trainer.global_step}; last checkpoint: {last}; resume with "
        f"`{resume}`"
    )


def _tree(path: Path) -> set[Path]:
    if not path.exists():
        return set()
    return {path, *path.rglob("*")} if path.is_dir() else {path}


def remove_unfinished_run() -> None:
    """After a failure before any checkpoint was written: remove what this run created under
    its root (config.yaml, log folders), never anything that was there before."""
    root = MultibyteCLI.run_root
    if root is None:
        return
    created = {p for name in RUN_OUTPUTS for p in _tree(root / name)} - MultibyteCLI.before_run
    if any(p.suffix == ".ckpt" for p in created):
        return  # it trained: its checkpoints and logs are the user's now
    for path in sorted(created, key=lambda p: len(p.parts), reverse=True):
        if path.is_dir() and not path.is_symlink():
            if not any(path.iterdir()):
                path.rmdir()
        else:
            path.unlink(missing_ok=True)
    if root not in MultibyteCLI.before_run and root.is_dir() and not any(root.iterdir()):
        root.rmdir()


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
