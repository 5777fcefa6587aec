"""Training data for one model on several modalities: ``--data.sources`` of ByteDataModule.

Each source is ``{path: ..., weight: ..., modality: ..., augment: [...], seq_len: ...,
batch_size: ..., loss_weight: ...}``: a shard folder written by ``multibyte prepare`` (its
manifest names the modality) or raw files with a ``modality`` (options or a name; the files'
suffixes are used when it is left out), and the names of its adapter's training augmentations
(default none), applied to the data bytes after the header. With ``data.mix_by: batch`` a batch
is one source's, and ``seq_len`` (its data bytes per sequence, at most the model's) and
``batch_size`` (its rows) give that source its own batch shape; the weights then count updates.
``loss_weight`` (default 1) scales that source's bytes in the training loss only: with one set
of weights and one optimizer, it sets how large a step each modality takes (validation and
evaluation are never weighted).

Shard folders are streamed as training goes (``multibyte.data.mixing``): a reader keeps
one decoded shard per source, so memory and the time to the first batch do not grow with the
data; only their manifests are read when the run starts. Raw files, small by nature, are encoded
in memory.

Every sequence is the sources' header (``multibyte.data.header``) followed by ``data_len``
bytes: the model's ``max_seq_len`` (``multibyte fit`` passes it in with the patch size, through
``set_patch_size``) or ``data.seq_len`` when it is set, less the header. Each source gives
windows of that length (``multibyte.data.sourcedata``): a stream (text) and samples that may be
cut (an audio clip of any prepared length) are cut into windows; a sample the adapter says is
used only whole (``whole_samples``: a 64x64 image) must fit, or the run stops before any work
with a line naming the source and what to change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch.utils.data import DataLoader

from modalities.base import Augmentation
from multibyte.data.batching import collate
from multibyte.data.header import HeaderTable, header_length, header_tag
from multibyte.data.iterable import BadShards
from multibyte.data.mixing import (
    MIX_BY,
    MixtureBatchSampler,
    MixtureDataset,
    MixtureValidation,
    mixture_probabilities,
    shard_spans,
)
from multibyte.data.shards import ShardError, list_shards
from multibyte.data.sourcedata import (
    CUT,
    STREAM,
    WHOLE,
    Shard,
    SourceSpec,
    ValidationSpec,
    shard_list,
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

MAX_SEQ_LEN_FLAG = "--model.model.init_args.config.max_seq_len"


class MixtureError(ValueError):
    """A ``data.sources`` entry that cannot work (ByteDataModule turns it into ConfigError)."""


@dataclass
class Source:
    """One opened source: where it is, its weight, and how its bytes are read."""

    where: str
    weight: float
    prepared: Prepared
    kind: str  # sourcedata.STREAM, WHOLE or CUT
    train_shards: tuple[Shard, ...]
    train_bytes: int  # the n of p ∝ weight · n^alpha
    memory: tuple[bytes, ...] = ()  # raw files' training samples
    val: ValidationSpec = field(default_factory=ValidationSpec)
    augmentations: list[Augmentation] = field(default_factory=list)  # of ``augment: [...]``
    seq_len: int | None = None  # its data bytes per sequence (None: the mixture's)
    batch_size: int | None = None  # its rows per batch with mix_by batch (None: data.batch_size)
    loss_weight: float = 1.0  # its bytes' weight in the training loss

    @property
    def options(self) -> dict[str, Any]:
        return dict(self.prepared.adapter.options)

    @property
    def name(self) -> str:
        return self.prepared.adapter.name

    @property
    def unit(self) -> int | None:
        """The longest sample: the adapter's ``seq_len``, or the longest raw sample."""
        if self.kind == STREAM:
            return None
        if self.memory:
            return max(len(s) for s in self.memory)
        return self.prepared.adapter.seq_len

    @property
    def frame(self) -> int:
        """Cut samples start at multiples of this (an audio sample's bytes)."""
        adapter = self.prepared.adapter
        return int(getattr(adapter, "frame_bytes", None) or adapter.bytes_per_unit or 1)

    def spec(self, data_len: int, on_bad_shard: str) -> SourceSpec:
        return SourceSpec(
            self.where,
            self.kind,
            self.train_shards,
            data_len,
            self.frame,
            on_bad_shard,
            self.memory,
        )


def _modality(value: Any) -> dict[str, Any] | None:
    if value is None or isinstance(value, dict):
        return value
    if isinstance(value, str):
        return {"name": value}
    raise MixtureError(f"a source's modality must be a name or options, got {value!r}")


def _kind(prepared: Prepared) -> str:
    if prepared.stream:
        return STREAM
    return WHOLE if getattr(prepared.adapter, "whole_samples", False) else CUT


def open_source(
    entry: Any,
    val_fraction: float,
    seed: int,
    allow_incomplete: bool = False,
    on_bad_shard: str = "stop",
    allow_unverified: bool = False,
) -> Source:
    """Open one ``{path, weight, modality}`` entry: its manifest and shard list (shards are read
    later, as training goes), or its raw files encoded in memory."""
    if not isinstance(entry, dict) or "path" not in entry:
        raise MixtureError(f"each source is {{path: ..., weight: ...}}, got {entry!r}")
    keys = {"path", "weight", "modality", "augment", "seq_len", "batch_size", "loss_weight"}
    unknown = set(entry) - keys
    if unknown:
        raise MixtureError(f"unknown source keys {sorted(unknown)} in {entry!r}")
    paths = entry["path"] if isinstance(entry["path"], (list, tuple)) else [entry["path"]]
    where = " ".join(map(str, paths))
    weight = _finite_weight(entry, "weight", where, zero_allowed=True)
    loss_weight = _finite_weight(entry, "loss_weight", where, zero_allowed=False)
    shape = {key: entry.get(key) for key in ("seq_len", "batch_size")}
    for key, value in shape.items():
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)):
            raise MixtureError(f"{where}: {key} must be a positive integer, got {value!r}")
        if value is not None and value <= 0:
            raise MixtureError(f"{where}: {key} must be a positive integer, got {value!r}")
    try:
        prepared = open_prepared(
            paths,
            _modality(entry.get("modality")),
            val_fraction=val_fraction,
            seed=seed,
            allow_incomplete=allow_incomplete,
            allow_flag="--data.allow_incomplete true",
            allow_unverified=allow_unverified,
            unverified_flag="--data.allow_unverified true",
        )
        if prepared.adapter is None:
            raise MixtureError(f"{where}: cannot tell its modality; give the source a modality")
        if prepared.shards and prepared.folder is None:
            raise MixtureError(f"{where}: a source is a shard folder, not bare .tar files")
        augmentations = choose(prepared.adapter, entry.get("augment"), f"{where}: augment")
        source = _read(where, weight, prepared, on_bad_shard)
    except (PreparedError, ShardError, ValueError) as error:
        if isinstance(error, MixtureError):
            raise
        message = str(error) if isinstance(error, AugmentError) else f"{where}: {error}"
        raise MixtureError(message) from error
    source.augmentations = augmentations
    source.seq_len, source.batch_size = shape["seq_len"], shape["batch_size"]
    source.loss_weight = loss_weight
    return source


def _finite_weight(entry: dict, key: str, where: str, zero_allowed: bool) -> float:
    """``entry[key]`` (default 1) as a float: a finite number, positive or (if allowed) zero."""
    value = entry.get(key, 1.0)
    number = not isinstance(value, bool) and isinstance(value, (int, float))
    if not number or not (0 <= value if zero_allowed else 0 < value) or value == float("inf"):
        kind = "non-negative" if zero_allowed else "positive"
        raise MixtureError(f"{where}: {key} must be a {kind} number, got {value!r}")
    return float(value)


def _read(where: str, weight: float, prepared: Prepared, on_bad_shard: str) -> Source:
    kind = _kind(prepared)
    if not prepared.shards:  # raw files: encoded now, in memory
        for item in prepared.skipped:
            print(f"multibyte: skipped {item['source']}: {item['reason']}")
        train = tuple(bytes(s) for s in prepared.sequences("train"))
        if not train:
            raise MixtureError(f"{where}: no training data")
        val = ValidationSpec(
            memory=tuple(bytes(s) for s in prepared.sequences("val")), stream=prepared.stream
        )
        size = sum(map(len, train))
        return Source(where, weight, prepared, kind, (Shard(None, size),), size, train, val)
    folder, manifest = prepared.folder, prepared.manifest
    prepared.require_split("train")
    shards = shard_list(folder, "train", manifest)
    recorded = ((manifest or {}).get("bytes") or {}).get("train")
    train_bytes = int(recorded) if recorded else sum(s.size for s in shards)
    if not shards or train_bytes <= 0:
        raise MixtureError(f"{where}: no training data")
    val_urls = tuple(list_shards(folder, "val"))
    val = ValidationSpec(urls=val_urls, on_bad_shard=on_bad_shard, stream=prepared.stream)
    return Source(where, weight, prepared, kind, shards, train_bytes, val=val)


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
        on_bad_shard: str = "stop",
        allow_unverified: bool = False,
        max_seq_len: int | None = None,
        mix_by: str = "sequence",
    ) -> None:
        if not isinstance(sources, (list, tuple)) or not sources:
            raise MixtureError("data.sources must be a non-empty list of {path, weight}")
        if mix_by not in MIX_BY:
            raise MixtureError(f"data.mix_by is one of {list(MIX_BY)}, got {mix_by!r}")
        try:
            BadShards(on_bad_shard)
        except ValueError as error:
            raise MixtureError(f"data.on_bad_shard: {error}") from error
        for entry in sources:
            path = entry.get("path") if isinstance(entry, dict) else None
            for p in path if isinstance(path, (list, tuple)) else [path]:
                if p is not None and not Path(p).exists():
                    raise MixtureError(f"data path not found: {p}")
        self.sources = [
            open_source(e, val_fraction, seed, allow_incomplete, on_bad_shard, allow_unverified)
            for e in sources
        ]
        self._check_distinct()
        shaped = [s.where for s in self.sources if s.seq_len or s.batch_size]
        if shaped and mix_by != "batch":
            raise MixtureError(
                f"{shaped[0]}: a source's own seq_len or batch_size needs data.mix_by: batch "
                "(with mix_by: sequence every row of a batch has the same length)"
            )
        self.mix_by = mix_by
        if not any(s.weight > 0 for s in self.sources):
            raise MixtureError(
                "every source has weight 0, so no sequence could be drawn: give at least one "
                "source a positive weight"
            )
        self.requested_seq_len, self.mix_alpha, self.seed = seq_len, mix_alpha, seed
        self.on_bad_shard, self.max_seq_len = on_bad_shard, max_seq_len
        self.table: HeaderTable | None = None
        self.pending_checks: tuple | None = None
        self.set_patch_size(patch_size or 1, max_seq_len)

    def _check_distinct(self) -> None:
        seen: dict[bytes, str] = {}
        for source in self.sources:
            tag = header_tag(source.options)
            if tag in seen:
                raise MixtureError(
                    f"{seen[tag]} and {source.where} hold the same modality with the same "
                    f"options ({tag.decode()}), which one header cannot tell apart: prepare "
                    "them into one shard folder (raw files: list them in one source's path)"
                )
            seen[tag] = source.where

    def set_patch_size(self, patch_size: int, max_seq_len: int | None = None) -> None:
        """Build the header table for the model's patch size (the header fills whole patches)
        and its ``max_seq_len`` (which, unless ``data.seq_len`` is set, sets the data length)."""
        if max_seq_len is not None:
            self.max_seq_len = max_seq_len
        options = [s.options for s in self.sources]
        header = header_length(options, patch_size)
        if self.requested_seq_len is not None:
            total, knob = self.requested_seq_len, "data.seq_len"
        else:
            total, knob = self.max_seq_len, "the model's max_seq_len"
        checks: tuple | None = None
        if total is None:
            # Before `multibyte fit` passes the model's max_seq_len (or outside it) and without
            # data.seq_len: the longest whole sample or source seq_len, checked only when a
            # loader is made.
            units = [s.unit for s in self.sources if s.kind == WHOLE and s.unit]
            units += [s.seq_len for s in self.sources if s.seq_len]
            if not units:
                self.table = None
                return
            data_len, total = max(units), header + max(units)
            checks = (data_len, header, total, "data.seq_len", patch_size)
        else:
            data_len = total - header
            if data_len <= 0:
                raise MixtureError(
                    f"{knob}={total} leaves no room for data after the {header}-byte header"
                )
            for source in self.sources:
                self._check_fits(source, data_len, header, total, knob, patch_size)
        self.pending_checks = checks
        windows = [s.seq_len or data_len for s in self.sources]
        self.table = HeaderTable.build(options, patch_size, data_len, windows)
        self.specs = [s.spec(w, self.on_bad_shard) for s, w in zip(self.sources, windows)]
        self.plan = self._augment_plan(windows)
        self.probabilities = mixture_probabilities(
            [s.train_bytes for s in self.sources], [s.weight for s in self.sources], self.mix_alpha
        )

    @staticmethod
    def _check_fits(
        source: Source, data_len: int, header: int, total: int, knob: str, patch: int
    ) -> None:
        """A configuration error naming the source when it cannot give a window of its length:
        ``data_len``, or the source's own ``seq_len`` (which must not be longer)."""
        setting = f"{knob}={total} less the {header}-byte header leaves {data_len} data bytes"
        flag = "data.seq_len" if knob == "data.seq_len" else MAX_SEQ_LEN_FLAG
        if source.seq_len:
            if source.seq_len > data_len:
                raise MixtureError(
                    f"{source.where}: seq_len {source.seq_len} is longer than the {data_len} "
                    f"data bytes that {knob}={total} leaves after the {header}-byte header"
                )
            data_len, header, patch = source.seq_len, 0, 1
            setting, flag = f"its seq_len is {data_len}", "its seq_len"
        unit, name = source.unit, source.name
        if source.kind == WHOLE and unit and unit > data_len:
            need = -(-(header + unit) // patch) * patch
            raise MixtureError(
                f"{source.where}: its {name} samples are {unit} bytes and used only whole, "
                f"but {setting}: set {flag} to at least {need}"
            )
        if source.kind == CUT and unit and unit < data_len:
            declared = [f.flag for f in source.prepared.adapter.flags if f.keyword == "seq_len"]
            if not declared:
                how = "give it longer samples"
            elif source.prepared.shards:
                how = f"prepare it again with {declared[0]} {data_len} or more"
            else:  # raw files are cut by the source's modality options
                how = f"give its modality seq_len: {data_len} or more"
            raise MixtureError(
                f"{source.where}: its {name} samples are at most {unit} bytes, shorter than one "
                f"window ({setting}): {how}, or lower {flag} to {(header + unit) // patch * patch}"
            )
        if source.kind == STREAM and source.train_bytes < data_len:
            raise MixtureError(
                f"{source.where}: {source.train_bytes} training bytes of {name} are less than "
                f"one window ({setting}): give it more data, or lower {flag}"
            )

    def _augment_plan(self, windows: list[int]) -> Plan | None:
        """Which source's augmentations a row gets, told by its header (one per source)."""
        for source, window in zip(self.sources, windows, strict=True):
            if source.augmentations:  # they see whole samples: the data after the header
                try:
                    where = f"{source.where}: augment"
                    check_whole_samples(source.prepared.adapter, window, where)
                except AugmentError as error:
                    raise MixtureError(str(error)) from error
        if not any(s.augmentations for s in self.sources):
            return None
        by_header = {bytes(h): s.augmentations for s, h in zip(self.sources, self.table.headers)}
        length = self.table.length
        return lambda row: (length, by_header[row[:length].tobytes()])

    def _table(self) -> HeaderTable:
        if self.table is None:
            raise MixtureError(
                "data.seq_len is required when no source's samples are used only whole "
                "(`multibyte fit` sets it from the model's max_seq_len)"
            )
        if self.pending_checks is not None:
            for source in self.sources:
                self._check_fits(source, *self.pending_checks)
            self.pending_checks = None
        return self.table

    @property
    def seq_len(self) -> int:
        if self.table is None:
            return self._table().seq_len  # says what is missing
        return self.table.seq_len

    @property
    def loss_weights(self) -> list[float]:
        """Each source's weight in the training loss, in the header table's order."""
        return [s.loss_weight for s in self.sources]

    def rows(self, batch_size: int) -> list[int] | None:
        """Each source's rows per batch with mix_by batch (None: sources mixed row by row)."""
        if self.mix_by != "batch":
            return None
        return [s.batch_size or batch_size for s in self.sources]

    def sampler(
        self, batch_size: int, rank: int = 0, start_batch: int = 0, batches_per_epoch: int = 1000
    ) -> MixtureBatchSampler:
        return MixtureBatchSampler(
            self.probabilities,
            batch_size,
            self.seed,
            rank,
            start_batch,
            batches_per_epoch,
            rows=self.rows(batch_size),
        )

    def train_dataset(self, batch_size: int, rank: int = 0, world_size: int = 1) -> MixtureDataset:
        table = self._table()
        spans = shard_spans(self.specs, self.sampler(batch_size).windows_per_batch())
        return MixtureDataset(self.specs, table.headers, spans, self.seed, rank, world_size)

    def train_dataloader(
        self,
        batch_size: int,
        rank: int,
        start_batch: int,
        batches_per_epoch: int,
        num_workers: int,
        world_size: int = 1,
    ) -> DataLoader:
        sampler = self.sampler(batch_size, rank, start_batch, batches_per_epoch)
        generator = torch.Generator().manual_seed(self.seed)
        augmenter = BatchAugmenter(self.plan, self.seed, rank) if self.plan else None
        return AugmentedLoader(
            self.train_dataset(batch_size, rank, world_size),
            augmenter,
            start_batch,
            batch_sampler=sampler,
            collate_fn=collate,
            num_workers=num_workers,
            generator=generator,
        )

    def val_dataloader(
        self, batch_size: int, rank: int, world_size: int, num_workers: int
    ) -> DataLoader | list:
        table = self._table()
        if not any(s.val.urls or s.val.memory for s in self.sources):
            return []
        dataset = MixtureValidation(
            [s.val for s in self.sources], table.headers, list(table.windows), batch_size
        )
        return DataLoader(
            dataset,
            batch_size=None,
            num_workers=num_workers,
            generator=torch.Generator().manual_seed(self.seed),
        )


__all__ = ["MixtureData", "MixtureError", "Source", "open_source"]
