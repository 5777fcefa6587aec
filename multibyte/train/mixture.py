"""Training data for one model on several modalities: ``--data.sources`` of ByteDataModule.

Each source is ``{path: ..., weight: ..., modality: ..., augment: [...]}``: a shard folder
written by ``multibyte prepare`` (its manifest names the modality) or raw files with a
``modality`` (options or a name; the files' suffixes are used when it is left out), and the names
of its adapter's training augmentations (default none), applied to the data bytes after the
header. Sources are read into memory when the run starts, as raw files are for one source.

Every sequence is the source's header (``multibyte.data.header``) followed by ``data_len``
bytes, where ``data_len`` is the longest native unit of the sources (an image's 12,288 bytes, an
audio clip's ``seq_len``), or ``data.seq_len`` minus the header when it is set; text and audio
are cut into windows of that length. The header length depends on the model's patch size, which
``multibyte fit`` passes in (``set_patch_size``) before any batch is drawn.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader, Subset

from modalities.base import Augmentation
from multibyte.data.batching import collate
from multibyte.data.header import HeaderTable
from multibyte.data.mapstyle import LengthBatchSampler, SequenceDataset
from multibyte.data.mixing import (
    MixtureBatchSampler,
    MixtureDataset,
    SourceWindows,
    mixture_probabilities,
    validation_sequences,
)
from multibyte.prepared import Prepared, PreparedError, open_prepared
from multibyte.train.augment import (
    AugmentedLoader,
    AugmentError,
    BatchAugmenter,
    Plan,
    check_whole_samples,
    choose,
)


class MixtureError(ValueError):
    """A ``data.sources`` entry that cannot work (ByteDataModule turns it into ConfigError)."""


@dataclass
class Source:
    """One opened source: where it is, its weight, and its data by split."""

    where: str
    weight: float
    prepared: Prepared
    train: list[bytes]
    val: list[bytes]
    augmentations: list[Augmentation] = field(default_factory=list)  # of ``augment: [...]``

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.prepared.adapter.options)

    @property
    def native_len(self) -> int | None:
        """Bytes of one sample (None for a stream, which has no natural unit)."""
        adapter = self.prepared.adapter
        return None if self.prepared.stream else adapter.seq_len


def _modality(value: Any) -> dict[str, Any] | None:
    if value is None or isinstance(value, dict):
        return value
    if isinstance(value, str):
        return {"name": value}
    raise MixtureError(f"a source's modality must be a name or options, got {value!r}")


def open_source(
    entry: Any, val_fraction: float, seed: int, allow_incomplete: bool = False
) -> Source:
    """Open one ``{path, weight, modality}`` entry and read its train and val data."""
    if not isinstance(entry, dict) or "path" not in entry:
        raise MixtureError(f"each source is {{path: ..., weight: ...}}, got {entry!r}")
    unknown = set(entry) - {"path", "weight", "modality", "augment"}
    if unknown:
        raise MixtureError(f"unknown source keys {sorted(unknown)} in {entry!r}")
    paths = entry["path"] if isinstance(entry["path"], (list, tuple)) else [entry["path"]]
    where = " ".join(map(str, paths))
    weight = entry.get("weight", 1.0)
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or weight < 0:
        raise MixtureError(f"{where}: weight must be a non-negative number, got {weight!r}")
    try:
        prepared = open_prepared(
            paths, _modality(entry.get("modality")), val_fraction=val_fraction, seed=seed,
            allow_incomplete=allow_incomplete, allow_flag="--data.allow_incomplete true",
        )  # fmt: skip
        if prepared.adapter is None:
            raise MixtureError(f"{where}: cannot tell its modality; give the source a modality")
        if prepared.shards and prepared.folder is None:
            raise MixtureError(f"{where}: a source is a shard folder, not bare .tar files")
        augmentations = choose(prepared.adapter, entry.get("augment"), f"{where}: augment")
        train = prepared.sequences("train")
        val = prepared.sequences("val") if _has_split(prepared, "val") else []
    except (PreparedError, ValueError) as error:
        if isinstance(error, MixtureError):
            raise
        message = str(error) if isinstance(error, AugmentError) else f"{where}: {error}"
        raise MixtureError(message) from error
    for item in prepared.skipped if not prepared.shards else []:
        print(f"multibyte: skipped {item['source']}: {item['reason']}")
    if not train:
        raise MixtureError(f"{where}: no training data")
    return Source(where, float(weight), prepared, train, val, augmentations)


def _has_split(prepared: Prepared, split: str) -> bool:
    try:
        prepared.require_split(split)
    except PreparedError:
        return False
    return True


class MixtureData:
    """The sources, their header table and the loaders of a multimodal run."""

    def __init__(
        self,
        sources: list[Any],
        seq_len: int | None,
        mix_alpha: float,
        val_fraction: float,
        seed: int,
        patch_size: int | None,
        allow_incomplete: bool = False,
    ) -> None:
        if not isinstance(sources, (list, tuple)) or not sources:
            raise MixtureError("data.sources must be a non-empty list of {path, weight}")
        for entry in sources:
            path = entry.get("path") if isinstance(entry, dict) else None
            for p in path if isinstance(path, (list, tuple)) else [path]:
                if p is not None and not Path(p).exists():
                    raise MixtureError(f"data path not found: {p}")
        self.sources = [open_source(e, val_fraction, seed, allow_incomplete) for e in sources]
        self.requested_seq_len, self.mix_alpha, self.seed = seq_len, mix_alpha, seed
        natives = [s.native_len for s in self.sources if s.native_len]
        if seq_len is None and not natives:
            raise MixtureError("data.seq_len is required when every source is a stream")
        self.native_len = max(natives) if natives else None
        self.table: HeaderTable | None = None
        self.set_patch_size(patch_size or 1)

    def set_patch_size(self, patch_size: int) -> None:
        """Build the header table for the model's patch size (the header fills whole patches)."""
        options = [s.options for s in self.sources]
        probe = HeaderTable.build(options, patch_size, 0)
        if self.requested_seq_len is None:
            data_len = self.native_len
        else:
            data_len = self.requested_seq_len - probe.length
            if data_len <= 0:
                raise MixtureError(
                    f"data.seq_len={self.requested_seq_len} leaves no room after the "
                    f"{probe.length}-byte header"
                )
        self.table = HeaderTable.build(options, patch_size, data_len)
        self.windows = [
            SourceWindows.build(s.train, data_len, s.prepared.stream) for s in self.sources
        ]
        short = [s.where for s, w in zip(self.sources, self.windows) if w.count <= 0]
        if short:
            raise MixtureError(
                f"no training window of {data_len} bytes in {', '.join(short)}: its samples "
                "(or its whole stream) are shorter; prepare longer clips (--seq-len) or give "
                "a shorter data.seq_len"
            )
        self.plan = self._augment_plan(data_len)
        self.probabilities = mixture_probabilities(
            [w.size for w in self.windows], [s.weight for s in self.sources], self.mix_alpha
        )

    def _augment_plan(self, data_len: int) -> Plan | None:
        """Which source's augmentations a row gets, told by its header (one per source)."""
        for source in self.sources:
            if source.augmentations:  # they see whole samples: the data after the header
                try:
                    where = f"{source.where}: augment"
                    check_whole_samples(source.prepared.adapter, data_len, where)
                except AugmentError as error:
                    raise MixtureError(str(error)) from error
        if not any(s.augmentations for s in self.sources):
            return None
        by_header = {bytes(h): s.augmentations for s, h in zip(self.sources, self.table.headers)}
        length = self.table.length
        return lambda row: (length, by_header[row[:length].tobytes()])

    @property
    def seq_len(self) -> int:
        return self.table.seq_len

    def train_dataloader(
        self, batch_size: int, rank: int, start_batch: int, batches_per_epoch: int,
        num_workers: int,
    ) -> DataLoader:  # fmt: skip
        sampler = MixtureBatchSampler(
            [w.count for w in self.windows], self.probabilities, batch_size, self.seed, rank,
            start_batch, batches_per_epoch,
        )  # fmt: skip
        generator = torch.Generator().manual_seed(self.seed)
        augmenter = BatchAugmenter(self.plan, self.seed, rank) if self.plan else None
        return AugmentedLoader(
            MixtureDataset(self.windows, self.table.headers), augmenter, start_batch,
            batch_sampler=sampler, collate_fn=collate, num_workers=num_workers,
            generator=generator,
        )  # fmt: skip

    def val_dataloader(
        self, batch_size: int, rank: int, world_size: int, num_workers: int
    ) -> DataLoader | list:
        per_source = [
            validation_sequences(source.val, header, self.table.data_len, source.prepared.stream)
            for source, header in zip(self.sources, self.table.headers)
        ]
        # Round robin over the sources, so that limit_val_batches still sees every modality.
        longest = max(map(len, per_source))
        sequences = [s[i] for i in range(longest) for s in per_source if i < len(s)]
        if not sequences:
            return []
        full = SequenceDataset(sequences)
        lengths = full.lengths()
        mine = list(range(rank, len(full), world_size))  # every sequence on exactly one rank
        sampler = LengthBatchSampler([lengths[i] for i in mine], batch_size)
        return DataLoader(
            Subset(full, mine), batch_sampler=sampler, collate_fn=collate,
            num_workers=num_workers, generator=torch.Generator().manual_seed(self.seed),
        )  # fmt: skip


__all__ = ["MixtureData", "MixtureError", "Source", "open_source"]
