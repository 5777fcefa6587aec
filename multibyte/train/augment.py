"""Training augmentation: an adapter's augmentations, chosen by name, applied to training batches.

An adapter declares what it offers (``adapter.augmentations()``: name -> a function from one
sample's bytes and a numpy Generator to bytes of the same length and layout); ``--data.augment
'[hflip]'`` picks from them, and a name the adapter does not offer is a configuration error.

They are applied to training batches only, just after collation, in the loader's own process:
one place for raw (map-style) data, shard streams and mixtures alike. Row i of micro-batch b
(counted since step 0, the numbering of the batch samplers) on rank r draws from
``numpy.random.default_rng([seed, b, i, r, SALT])``, so a run resumed at step s augments its
batches exactly as the uninterrupted run did, and the draw never depends on worker timing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from modalities.base import Adapter, Augmentation

SALT = 0x61756700  # keeps these draws apart from the batch samplers' (seed, b, rank) streams

# One row of a batch (uint8) -> where the augmented bytes start (after a header) and what to apply.
Plan = Callable[[np.ndarray], tuple[int, Sequence[Augmentation]]]


class AugmentError(ValueError):
    """An augment list that cannot work (the data module turns it into a ConfigError)."""


def choose(adapter: Adapter, names: Any, option: str = "data.augment") -> list[Augmentation]:
    """The adapter's augmentations named in ``names`` (a list; None or [] is none), in order."""
    if names is None:
        return []
    if isinstance(names, str) or not isinstance(names, (list, tuple)):
        raise AugmentError(f"{option} must be a list of names such as [hflip], got {names!r}")
    offered = adapter.augmentations()
    chosen = []
    for name in names:
        if not isinstance(name, str) or name not in offered:
            raise AugmentError(
                f"{option}: {name!r} is not an augmentation of {adapter.name}; it has: "
                f"{', '.join(offered) or 'none'}"
            )
        if list(names).count(name) > 1:
            raise AugmentError(f"{option}: {name!r} is named twice")
        chosen.append(offered[name])
    return chosen


def check_whole_samples(adapter: Adapter, length: int, option: str = "data.augment") -> None:
    """An augmentation sees one whole sample: refuse training sequences that cut samples up."""
    if not adapter.stream and length != adapter.seq_len:
        raise AugmentError(
            f"{option} needs whole {adapter.name} samples of {adapter.seq_len} bytes, but "
            f"training sequences are {length} bytes"
        )


def same_for_every_row(augmentations: Sequence[Augmentation]) -> Plan:
    """The plan of one source: every row, from its first byte."""
    chosen = list(augmentations)
    return lambda row: (0, chosen)


class BatchAugmenter:
    """Applies a plan's augmentations to the rows of LongTensor [B, T] training batches."""

    def __init__(self, plan: Plan, seed: int, rank: int) -> None:
        self.plan, self.seed, self.rank = plan, seed, rank

    def __call__(self, batch: torch.Tensor, number: int) -> torch.Tensor:
        rows = batch.numpy().astype(np.uint8)  # a copy: the loader's tensor is left alone
        for i, row in enumerate(rows):
            start, augmentations = self.plan(row)
            if not augmentations:
                continue
            rng = np.random.default_rng([self.seed, number, i, self.rank, SALT])
            data = row[start:].tobytes()
            for augment in augmentations:
                out = augment(data, rng)
                if len(out) != len(data):
                    raise RuntimeError(
                        f"augmentation {getattr(augment, '__name__', augment)} changed a sample's "
                        f"length from {len(data)} to {len(out)} bytes"
                    )
                data = out
            row[start:] = np.frombuffer(data, np.uint8)
        return torch.from_numpy(rows.astype(np.int64))


class AugmentedLoader(DataLoader):
    """A training DataLoader whose batches go through ``augmenter``, numbered from ``start_batch``.

    The number of a batch is its micro-batch count since step 0, the same numbering as the batch
    samplers (and ``trainer.global_step * accumulate_grad_batches`` at a resume). Without an
    augmenter it is a plain DataLoader.
    """

    def __init__(
        self,
        dataset: Any,
        augmenter: BatchAugmenter | None = None,
        start_batch: int = 0,
        **kwargs: Any,
    ) -> None:
        super().__init__(dataset, **kwargs)
        self.augmenter, self.next_batch = augmenter, start_batch

    def __iter__(self) -> Iterator[Any]:
        batches = super().__iter__()
        return batches if self.augmenter is None else self._augmented(batches)

    def _augmented(self, batches: Iterator[torch.Tensor]) -> Iterator[torch.Tensor]:
        for batch in batches:
            number = self.next_batch
            self.next_batch += 1
            yield self.augmenter(batch, number)


__all__ = [
    "AugmentError",
    "AugmentedLoader",
    "BatchAugmenter",
    "Plan",
    "check_whole_samples",
    "choose",
    "same_for_every_row",
]
