"""The `multibyte` console script: one entry point, one module per sub-command.

Sub-commands are imported lazily so that `multibyte prepare --help` does not pay for Lightning.
A user error (bad data, a damaged shard, a file that cannot be read or written, a config file
that is not YAML) is one line naming the file and the reason, and exit status 2; ``--debug``
(anywhere on the command line) or ``MULTIBYTE_DEBUG=1`` shows the traceback instead.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path

import yaml

from multibyte.data.shards import ShardError
from multibyte.prepared import PreparedError

# sub-command -> "module:function"; each function takes the remaining argv list.
COMMANDS: dict[str, str] = {
    "prepare": "multibyte.prepare:main",
    "fit": "multibyte.train.cli:main",
    "validate": "multibyte.train.cli:main",
    "test": "multibyte.train.cli:main",
    "evaluate": "multibyte.evaluation.command:main",
    "sample": "multibyte.sample:main",
    "quickstart": "multibyte.quickstart:main",
    "compress": "multibyte.compression.command:compress_main",
    "decompress": "multibyte.compression.command:decompress_main",
    "verify": "multibyte.verify:main",
    "export": "multibyte.export:main",
}
# Errors that mean "the input is bad", wherever they surface (also from inside a training loop).
# multibyte.checkpoint's CheckpointError is added when loaded: importing it here would import
# torch, which `multibyte prepare` never needs.
USER_ERRORS: tuple[type[BaseException], ...] = (ShardError, PreparedError, OSError)


def user_errors() -> tuple[type[BaseException], ...]:
    checkpoint = sys.modules.get("multibyte.checkpoint")
    return USER_ERRORS + ((checkpoint.CheckpointError,) if checkpoint else ())


LIGHTNING_COMMANDS = ("fit", "validate", "test")

USAGE = """usage: multibyte COMMAND ... (one of the commands below; COMMAND --help for its options)

  prepare     encode raw files of one modality (any registered adapter) into webdataset shards
  fit         train a model from a recipe (LightningCLI)
  validate    run validation on a checkpoint (LightningCLI)
  test        run the test loop on a checkpoint (LightningCLI)
  evaluate    bits per byte of a checkpoint on data, in the modality's units
  sample      generate from a checkpoint
  compress    compress files losslessly with a checkpoint (.mbz)
  decompress  restore .mbz files with the checkpoint they were made with
  verify      check a shard folder against its manifest (samples, size, sha256 per shard)
  export      write a checkpoint as model.safetensors + config.json + a model card (README.md)
  quickstart  the bundled end-to-end demo (`make demo`)

--debug (or MULTIBYTE_DEBUG=1) shows tracebacks instead of one-line errors.
"""


def debugging(argv: list[str]) -> bool:
    return "--debug" in argv or os.environ.get("MULTIBYTE_DEBUG", "") not in ("", "0")


def one_line(error: BaseException) -> str:
    """The error's message on one line (a DataLoader worker's re-raise carries a traceback)."""
    lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
    if not lines:
        return type(error).__name__
    last = lines[-1]
    if len(lines) > 1 and ": " in last and last.split(": ", 1)[0].endswith("Error"):
        last = last.split(": ", 1)[1]  # "multibyte.data.shards.ShardError: shard ..."
    if isinstance(error, OSError) and error.filename and str(error.filename) not in last:
        last = f"{error.filename}: {error.strerror or last}"
    return last


def yaml_problem(error: yaml.YAMLError) -> str:
    """A parser error as ``(line L, column C): problem``, without the parser's excerpt."""
    mark = getattr(error, "problem_mark", None)
    where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
    problem = getattr(error, "problem", None) or str(error).splitlines()[0]
    return f"{where}: {problem}"


def flag_value_error(argv: list[str]) -> str | None:
    """A ``--key VALUE`` whose VALUE is a YAML list or mapping (``--data.sources '[...]'``) that
    does not parse, named with the reason (LightningCLI would print its usage and a dump)."""
    for i, arg in enumerate(argv):
        if not arg.startswith("--") or arg == "--config" or arg.startswith("--config="):
            continue
        flag, equals, value = arg.partition("=")
        if not equals and i + 1 < len(argv):
            value = argv[i + 1]
        if not value.lstrip().startswith(("[", "{")):
            continue
        try:
            yaml.safe_load(value)
        except yaml.YAMLError as error:
            return f"{flag} is not valid YAML{yaml_problem(error)}"
    return None


def config_error(argv: list[str]) -> str | None:
    """A ``--config`` file that is missing or not YAML, named with the reason (LightningCLI
    would bury it under its usage)."""
    for i, arg in enumerate(argv):
        path = argv[i + 1] if arg == "--config" and i + 1 < len(argv) else None
        if arg.startswith("--config="):
            path = arg.split("=", 1)[1]
        if path is None:
            continue
        if not Path(path).is_file():
            return f"config file {path} not found"
        try:
            yaml.safe_load(Path(path).read_text())
        except yaml.YAMLError as error:
            return f"config file {path} is not valid YAML{yaml_problem(error)}"
        except (OSError, UnicodeDecodeError) as error:
            return f"config file {path} cannot be read: {error}"
    return None


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    debug = debugging(argv)
    argv = [a for a in argv if a != "--debug"]
    if not argv:  # no command is a usage error, as argparse treats a missing argument
        print(USAGE, file=sys.stderr, end="")
        return 2
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"multibyte: unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
        return 2
    module_name, function_name = COMMANDS[command].split(":")
    if command in LIGHTNING_COMMANDS and not debug:
        problem = config_error(rest) or flag_value_error(rest)
        if problem:
            print(f"multibyte {command}: error: {problem}", file=sys.stderr)
            return 2
    try:
        importlib.import_module("modalities")  # fails clearly on a name clash
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as error:
        if error.name and error.name.startswith(module_name.split(".")[0]):
            print(
                f"multibyte {command}: not available yet ({error.name} is missing)", file=sys.stderr
            )
            return 2
        raise
    except ImportError as error:
        print(f"multibyte {command}: {error}", file=sys.stderr)
        return 2
    # LightningCLI sub-commands need the sub-command name itself.
    args = argv if module_name == "multibyte.train.cli" else rest
    if debug:
        return int(getattr(module, function_name)(args) or 0)
    try:
        result = getattr(module, function_name)(args)
    except user_errors() as error:
        print(f"multibyte {command}: error: {one_line(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"multibyte {command}: interrupted", file=sys.stderr)
        return 130
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
