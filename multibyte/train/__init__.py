"""Training under Lightning: the module, the data module, callbacks and the CLI."""

from multibyte.train.callbacks import ByteThroughput, Checkpoints
from multibyte.train.data import ByteDataModule, ConfigError
from multibyte.train.module import ByteLM

__all__ = ["ByteDataModule", "ByteLM", "ByteThroughput", "Checkpoints", "ConfigError"]
