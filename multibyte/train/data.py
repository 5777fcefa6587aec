"""The LightningDataModule: prepared shards or raw files in, LongTensor [B, T] batches out.

Two sources, one interface:

- a folder written by `multibyte prepare` (it has `manifest.json` and `train-*.tar`): training
  streams resampled shards, validation reads the `val` shards exactly once across ranks and
  workers;
- raw files or folders of the modality: encoded in memory when the run starts and split into
  train and val by `val_fraction`, exactly as `prepare` splits them.

`multibyte.prepared.open_prepared` decides which of the two it is and which modality the bytes
are (the manifest's, which must agree with `data.modality`).

Resume. With raw (map-style) data, training batch number b (counted over micro-batches since
step 0) is a pure function of (seed, b, rank), so a run resumed at step s reads exactly the
batches the uninterrupted run read after step s. With shards, the resampled stream of a run
that starts at step s is seeded by (seed, s, rank, worker): a rerun of the same resume reads the
same bytes, but they are not the bytes the uninterrupted run would have read after step s.

Augmentation (``augment``, names from ``adapter.augmentations()``) is applied to training
batches only, as they leave the loader (``multibyte.train.augment``); its draws follow the same
batch numbering, so resume on raw data stays exact with it on.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler, Subset

from multibyte.data import ShardDataset
from multibyte.data.batching import collate
from multibyte.data.mapstyle import LengthBatchSampler, SequenceDataset, WindowDataset
from multibyte.data.shards import MANIFEST, ShardError, list_shards
from multibyte.data.windows import as_array, pieces
from multibyte.prepared import (
    IncompleteShards,
    ModalityMismatch,
    ModalityUnknown,
    Prepared,
    PreparedError,
    UnverifiedShards,
    open_prepared,
)
from multibyte.train.augment import (
    AugmentedLoader,
    AugmentError,
    BatchAugmenter,
    check_whole_samples,
    choose,
    same_for_every_row,
)
from multibyte.train.mixture import MixtureData, MixtureError


class ConfigError(ValueError):
    """A configuration that cannot work; raised before any training starts."""


class StreamWindows(Dataset):
    """Item i is the window stream[i : i + seq_len] (training: any start offset)."""

    def __init__(self, stream: bytes, seq_len: int) -> None:
        self.stream, self.seq_len = as_array(stream), seq_len

    def __len__(self) -> int:
        return len(self.stream) - self.seq_len + 1

    def __getitem__(self, index: int) -> torch.Tensor:
        return torch.from_numpy(self.stream[index : index + self.seq_len].astype(np.int64))


class StepBatchSampler(Sampler[list[int]]):
    """Training batches numbered from `start_batch`; batch b is a pure function of (seed, b, rank).

    With `replacement=False`, ranks read disjoint slots of one global stream of epochs, each a
    fresh permutation of the items; with `replacement=True` (stream windows, where the items are
    start offsets) each batch draws its items independently. `batches_per_epoch` only sets how
    long Lightning's epoch is; numbering continues across epochs.
    """

    def __init__(
        self,
        num_items: int,
        batch_size: int,
        seed: int = 0,
        rank: int = 0,
        world_size: int = 1,
        start_batch: int = 0,
        batches_per_epoch: int = 1000,
        replacement: bool = False,
    ) -> None:
        if num_items <= 0:
            raise ConfigError("no training sequences of full length: data is shorter than seq_len")
        self.num_items, self.batch_size, self.seed = num_items, batch_size, seed
        self.rank, self.world_size = rank, world_size
        self.next_batch, self.batches_per_epoch = start_batch, batches_per_epoch
        self.replacement = replacement
        self._permutations: dict[int, np.ndarray] = {}

    def batch(self, number: int) -> list[int]:
        if self.replacement:
            rng = np.random.default_rng([self.seed, number, self.rank])
            return rng.integers(0, self.num_items, self.batch_size).tolist()
        first = (number * self.world_size + self.rank) * self.batch_size
        indices = []
        for position in range(first, first + self.batch_size):
            epoch, offset = divmod(position, self.num_items)
            if epoch not in self._permutations:
                self._permutations = {
                    epoch: np.random.default_rng([self.seed, epoch]).permutation(self.num_items)
                }
            indices.append(int(self._permutations[epoch][offset]))
        return indices

    def __iter__(self) -> Iterator[list[int]]:
        for _ in range(self.batches_per_epoch):
            yield self.batch(self.next_batch)
            self.next_batch += 1

    def __len__(self) -> int:
        return self.batches_per_epoch


class EpochedLoader(AugmentedLoader):
    """A loader over a resampled shard stream that reseeds the stream at every new epoch.

    Epoch k of a run that started at micro-batch b0 is seeded with b0 + k * batches_per_epoch,
    so no two epochs (and no two resume points) replay the same stream.
    """

    def __init__(self, dataset: ShardDataset, start_batch: int, **kwargs: Any) -> None:
        super().__init__(dataset, batch_size=None, start_batch=start_batch, **kwargs)
        self.start_batch, self.epochs_started = start_batch, 0

    def __iter__(self):
        self.dataset.set_epoch(
            self.start_batch + self.epochs_started * self.dataset.batches_per_epoch
        )
        self.epochs_started += 1
        return super().__iter__()


class ByteDataModule(L.LightningDataModule):
    def __init__(
        self,
        path: str | list[str] | None = None,
        modality: dict[str, Any] | None = None,
        seq_len: int | None = None,
        batch_size: int = 8,
        val_batch_size: int | None = None,
        val_fraction: float = 0.05,
        num_workers: int = 0,
        seed: int = 0,
        batches_per_epoch: int = 1000,
        shuffle_buffer: int = 1000,
        on_bad_shard: str = "stop",
        allow_incomplete: bool = False,
        sources: list[dict[str, Any]] | None = None,
        mix_alpha: float = 0.0,
        patch_size: int | None = None,
        augment: list[str] | None = None,
        allow_unverified: bool = False,
        mix_by: str = "sequence",
    ) -> None:
        """
        Args:
            path: a folder of shards from `multibyte prepare`, or raw files / folders.
            modality: adapter options, e.g. {"name": "image", "size": 64, "order": "raster"}.
                With shards, the manifest's options are used and the name must agree. Default:
                the manifest's, or the modality whose adapter recognises the raw files.
            seq_len: bytes per training sequence; default the adapter's (required for text).
            batch_size: sequences per training batch (per device).
            val_batch_size: sequences per validation batch (default batch_size).
            val_fraction: share of raw inputs held out for validation (raw data only).
            num_workers: DataLoader worker processes.
            seed: seed of the split (raw data), the batch order and the shard streams.
            batches_per_epoch: length of Lightning's epoch; training runs by `max_steps`.
            shuffle_buffer: shard streams: samples mixed in the shuffle buffer.
            on_bad_shard: a shard that disagrees with the manifest: "stop" (raise, naming it)
                or "skip" (drop it, counted and logged).
            allow_incomplete: read a shard folder whose prepare did not complete.
            sources: instead of `path`, several sources for one multimodal model: a list of
                {path, weight, modality}, each a shard folder or raw files (see
                multibyte/train/mixture.py), streamed shard by shard. Every sequence then
                starts with its modality's header and is `seq_len` long (default: the model's
                max_seq_len); text and audio are cut into windows, an image must fit whole.
            mix_alpha: sources: a sequence comes from source i with p ∝ weight_i · n_i^alpha
                (n_i: its training bytes); 0 follows the weights alone.
            mix_by: sources: "sequence" draws each row's source (every row the same length);
                "batch" draws one source per batch, in that source's own shape: a source may
                set its `seq_len` (data bytes, at most the model's) and `batch_size` (rows),
                so that each modality trains as its specialist would, and the weights count
                updates. Any source may set `loss_weight` (default 1): its bytes' weight in
                the training loss, so how large a step it takes (never in validation).
            patch_size: sources: the model's patch size, so the header fills whole patches
                (`multibyte fit` sets it from the model).
            augment: names of the adapter's training augmentations to apply, e.g. [hflip]
                (`adapter.augmentations()`); training batches only, never validation or test.
                With sources, each source has its own `augment` list instead.
            allow_unverified: read shards that no manifest records checksums for (no manifest,
                or one without per-shard checksums); a warning says so once.
        """
        super().__init__()
        self.allow_unverified = allow_unverified
        self.mixture: MixtureData | None = None
        self.augmentations: list = []
        if sources is not None:
            if augment:
                raise ConfigError(
                    "data.augment does not apply to data.sources: give each source its own "
                    "list, e.g. {path: ..., weight: 1, augment: [hflip]}"
                )
            self._init_mixture(
                path,
                sources,
                modality,
                seq_len,
                mix_alpha,
                patch_size,
                val_fraction,
                seed,
                allow_incomplete,
                on_bad_shard,
                mix_by,
            )
            self.batch_size, self.val_batch_size = batch_size, val_batch_size or batch_size
            self.num_workers, self.seed, self.batches_per_epoch = (
                num_workers,
                seed,
                batches_per_epoch,
            )
            return
        if mix_by != "sequence":
            raise ConfigError(f"data.mix_by: {mix_by} applies to data.sources only")
        if path is None or (isinstance(path, (list, tuple)) and not path):
            raise ConfigError("data.path is required: a shard folder or raw files / folders")
        self.paths = [str(p) for p in (path if isinstance(path, (list, tuple)) else [path])]
        missing = [p for p in self.paths if not Path(p).exists()]
        if missing:
            raise ConfigError(f"data.path does not exist: {', '.join(missing)}")
        if not 0.0 <= val_fraction < 1.0:
            raise ConfigError(f"data.val_fraction must be in [0, 1), got {val_fraction}")
        if on_bad_shard not in ("stop", "skip"):
            raise ConfigError(f"data.on_bad_shard must be stop or skip, got {on_bad_shard!r}")
        self.on_bad_shard, self.allow_incomplete = on_bad_shard, allow_incomplete
        self.prepared = self._open(modality, val_fraction, seed)
        self.adapter = self.prepared.adapter
        self.shards = self.prepared.shards
        self.seq_len = seq_len if seq_len is not None else self.adapter.seq_len
        if self.seq_len is None or self.seq_len <= 0:
            raise ConfigError(
                f"data.seq_len must be set to a positive length for {self.adapter.name}"
            )
        try:
            self.augmentations = choose(self.adapter, augment)
            if self.augmentations:
                check_whole_samples(self.adapter, self.seq_len)
        except AugmentError as error:
            raise ConfigError(str(error)) from error
        for name, value in (("batch_size", batch_size), ("batches_per_epoch", batches_per_epoch)):
            if value <= 0:
                raise ConfigError(f"data.{name} must be positive, got {value}")
        self.batch_size, self.val_batch_size = batch_size, val_batch_size or batch_size
        self.val_fraction, self.num_workers, self.seed = val_fraction, num_workers, seed
        self.batches_per_epoch, self.shuffle_buffer = batches_per_epoch, shuffle_buffer
        self.stream = self.prepared.stream
        self.skipped: list[dict[str, str]] = []
        self._splits: dict[str, list[bytes]] | None = None

    def _open(self, modality: dict[str, Any] | None, val_fraction: float, seed: int) -> Prepared:
        """Shards or raw files, and the modality they hold, as configuration errors."""
        try:
            prepared = open_prepared(
                self.paths,
                modality,
                val_fraction=val_fraction,
                seed=seed,
                allow_incomplete=self.allow_incomplete,
                allow_flag="--data.allow_incomplete true",
                name_unmet=True,
                allow_unverified=self.allow_unverified,
                unverified_flag="--data.allow_unverified true",
            )
        except (IncompleteShards, UnverifiedShards, ShardError) as error:
            raise ConfigError(f"data.path: {error}") from error
        except ModalityMismatch as error:
            where = f"{error.where}/{MANIFEST}" if error.shards else error.where
            raise ConfigError(
                f"data.modality name {error.expected!r} does not match the "
                f"{'shards' if error.shards else 'files'}' {error.found!r} ({where})"
            ) from error
        except ModalityUnknown as error:
            raise ConfigError(
                f"data.modality is required: {error} (no manifest, and no adapter recognises "
                "the files)"
            ) from error
        except PreparedError as error:  # a missing path, an edited manifest
            raise ConfigError(f"data.path: {error}") from error
        except ValueError as error:
            raise ConfigError(f"data.modality: {error}") from error
        if prepared.shards:
            if prepared.folder is None:
                raise ConfigError(
                    "data.path: training reads a folder written by `multibyte prepare`, "
                    f"not bare .tar files: {', '.join(self.paths)}"
                )
            try:
                prepared.require_split("train")
            except PreparedError as error:
                raise ConfigError(f"data.path: {error}") from error
            if prepared.adapter is None:
                raise ConfigError(f"data.modality is required: {prepared.folder} has no manifest")
        return prepared

    # -- several sources (one multimodal model) ------------------------------------------------

    def _init_mixture(
        self,
        path: Any,
        sources: list[dict[str, Any]],
        modality: Any,
        seq_len: int | None,
        mix_alpha: float,
        patch_size: int | None,
        val_fraction: float,
        seed: int,
        allow_incomplete: bool,
        on_bad_shard: str,
        mix_by: str,
    ) -> None:
        if path is not None and path != []:
            raise ConfigError("give data.path or data.sources, not both")
        if modality is not None:
            raise ConfigError("data.modality does not apply to data.sources: give each source one")
        if not 0.0 <= val_fraction < 1.0:
            raise ConfigError(f"data.val_fraction must be in [0, 1), got {val_fraction}")
        try:
            self.mixture = MixtureData(
                sources,
                seq_len,
                mix_alpha,
                val_fraction,
                seed,
                patch_size,
                allow_incomplete,
                on_bad_shard,
                getattr(self, "allow_unverified", False),
                mix_by=mix_by,
            )
        except MixtureError as error:
            raise ConfigError(f"data.sources: {error}") from error
        self.adapter, self.shards, self.stream, self.skipped = None, False, False, []

    def set_patch_size(self, patch_size: int, max_seq_len: int | None = None) -> None:
        """The model's patch size and max_seq_len: a mixture's header fills whole patches and,
        unless data.seq_len is set, its sequences are max_seq_len long; else nothing."""
        if self.mixture is not None:
            try:
                self.mixture.set_patch_size(patch_size, max_seq_len)
            except MixtureError as error:
                raise ConfigError(f"data.sources: {error}") from error

    @property
    def seq_len(self) -> int:
        return self.mixture.seq_len if self.mixture is not None else self._seq_len

    @seq_len.setter
    def seq_len(self, value: int) -> None:
        self._seq_len = value

    @property
    def loss_weights(self) -> list[float] | None:
        """Sources: each one's weight in the training loss, in the header table's order."""
        return self.mixture.loss_weights if self.mixture is not None else None

    @property
    def modality_options(self) -> dict[str, Any]:
        if self.mixture is not None:
            return self.mixture.table.entry()
        return dict(self.adapter.options)

    def setup(self, stage: str | None = None) -> None:
        if self.mixture is not None or self.shards or self._splits is not None:
            return
        encoded = self.prepared.encode()
        self.skipped = self.prepared.skipped
        for item in self.skipped:
            print(f"multibyte: skipped {item['source']}: {item['reason']}")
        self._splits = encoded
        if not encoded["train"]:
            raise ConfigError(f"data.path holds no usable {self.adapter.name} inputs: {self.paths}")

    def check_enough_data(self) -> None:
        """ConfigError unless raw training data fills at least one sequence of seq_len bytes
        (encodes it now, once: `multibyte fit` calls this before any work starts)."""
        if self.mixture is not None or self.shards:
            return
        self.setup()
        train, where = self._splits["train"], ", ".join(self.paths)
        if self.stream:
            size = len(train[0]) if train else 0
            if size < self.seq_len:
                raise ConfigError(
                    f"data.path: {where} holds {size} bytes of training data, shorter than one "
                    f"sequence (data.seq_len={self.seq_len}): give more data or a smaller "
                    "data.seq_len"
                )
        elif not any(len(p) == self.seq_len for s in train for p in pieces(s, self.seq_len)):
            longest = max((len(s) for s in train), default=0)
            raise ConfigError(
                f"data.path: no training sample of {where} fills one sequence "
                f"(data.seq_len={self.seq_len}; the longest is {longest} bytes): give a smaller "
                "data.seq_len"
            )

    def _rank(self) -> tuple[int, int]:
        trainer = self.trainer
        return (trainer.global_rank, trainer.world_size) if trainer is not None else (0, 1)

    def _start_batch(self) -> int:
        trainer = self.trainer
        if trainer is None:
            return 0
        return trainer.global_step * trainer.accumulate_grad_batches

    def _sequences(self, split: str) -> SequenceDataset:
        """Images or audio clips of a split, each cut into pieces of at most seq_len."""
        return SequenceDataset([p for s in self._splits[split] for p in pieces(s, self.seq_len)])

    def _augmenter(self, rank: int) -> BatchAugmenter | None:
        if not self.augmentations:
            return None
        return BatchAugmenter(same_for_every_row(self.augmentations), self.seed, rank)

    def train_dataloader(self) -> DataLoader:
        rank, world_size = self._rank()
        if self.mixture is not None:
            return self.mixture.train_dataloader(
                self.batch_size,
                rank,
                self._start_batch(),
                self.batches_per_epoch,
                self.num_workers,
                world_size,
            )
        generator = torch.Generator().manual_seed(self.seed)  # keeps the global RNG untouched
        augmenter = self._augmenter(rank)
        if self.shards:
            dataset = ShardDataset(
                self.paths[0],
                split="train",
                seq_len=self.seq_len,
                batch_size=self.batch_size,
                train=True,
                stream=self.stream,
                batches_per_epoch=self.batches_per_epoch,
                shuffle_buffer=self.shuffle_buffer,
                seed=self.seed,
                drop_last=True,
                on_bad_shard=self.on_bad_shard,
            )
            return EpochedLoader(
                dataset,
                self._start_batch(),
                augmenter=augmenter,
                num_workers=self.num_workers,
                generator=generator,
            )
        self.setup()
        if self.stream:
            dataset = StreamWindows(self._splits["train"][0], self.seq_len)
            items = max(len(dataset), 0)
        else:
            full = self._sequences("train")
            keep = [i for i, n in enumerate(full.lengths()) if n == self.seq_len]
            dataset, items = Subset(full, keep), len(keep)
        sampler = StepBatchSampler(
            items,
            self.batch_size,
            self.seed,
            rank,
            world_size,
            self._start_batch(),
            self.batches_per_epoch,
            replacement=self.stream,
        )
        return AugmentedLoader(
            dataset,
            augmenter,
            self._start_batch(),
            batch_sampler=sampler,
            collate_fn=collate,
            num_workers=self.num_workers,
            generator=generator,
        )

    def val_dataloader(self) -> DataLoader:
        if self.mixture is not None:
            rank, world_size = self._rank()
            return self.mixture.val_dataloader(
                self.val_batch_size, rank, world_size, self.num_workers
            )
        generator = torch.Generator().manual_seed(self.seed)
        if self.shards:
            if not list_shards(self.paths[0], "val"):
                return []
            dataset = ShardDataset(
                self.paths[0],
                split="val",
                seq_len=self.seq_len,
                batch_size=self.val_batch_size,
                train=False,
                stream=self.stream,
                seed=self.seed,
                on_bad_shard=self.on_bad_shard,
            )
            return DataLoader(
                dataset, batch_size=None, num_workers=self.num_workers, generator=generator
            )
        self.setup()
        if not self._splits["val"]:
            return []
        rank, world_size = self._rank()
        if self.stream:
            full = WindowDataset(self._splits["val"][0], self.seq_len, keep_tail=True)
        else:
            full = self._sequences("val")
        lengths = full.lengths()
        mine = list(range(rank, len(full), world_size))  # every sequence on exactly one rank
        sampler = LengthBatchSampler([lengths[i] for i in mine], self.val_batch_size)
        return DataLoader(
            Subset(full, mine),
            batch_sampler=sampler,
            collate_fn=collate,
            num_workers=self.num_workers,
            generator=generator,
        )

    def test_dataloader(self) -> DataLoader:
        return self.val_dataloader()
