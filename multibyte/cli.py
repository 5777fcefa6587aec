"""The `multibyte` console script: one entry point, one module per sub-command.

Sub-commands are imported lazily so that `multibyte prepare --help` does not pay for Lightning.
"""

from __future__ import annotations

import importlib
import sys

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
}

USAGE = """usage: multibyte COMMAND ... (one of the commands below; COMMAND --help for its options)

  prepare     encode raw files of one modality (any registered adapter) into webdataset shards
  fit         train a model from a recipe (LightningCLI)
  validate    run validation on a checkpoint (LightningCLI)
  test        run the test loop on a checkpoint (LightningCLI)
  evaluate    bits per byte of a checkpoint on data, in the modality's units
  sample      generate from a checkpoint
  compress    compress files losslessly with a checkpoint (.mbz)
  decompress  restore .mbz files with the checkpoint they were made with
  quickstart  the bundled end-to-end demo (`make demo`)
"""


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(f"multibyte: unknown command {command!r}\n\n{USAGE}", file=sys.stderr)
        return 2
    module_name, function_name = COMMANDS[command].split(":")
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
    result = getattr(module, function_name)(args)
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
