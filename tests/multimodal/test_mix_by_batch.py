"""``data.mix_by: batch``: each batch is one source's, in that source's own shape (rows and window
length), drawn by weights that count updates; validation and evaluation use each source's window,
and the checkpoint's header table records them."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
import torch

from multibyte.data.header import HeaderTable
from multibyte.data.shards import read_samples
from multibyte.train.data import ByteDataModule, ConfigError

P = 12  # the three default headers take 84 bytes at this patch size
SHAPES = {"image": (2, None), "audio": (3, 600), "text": (5, 240)}  # rows, data bytes


def sources(shards: dict[str, Path], shapes=SHAPES, weights=None) -> list[dict]:
    weights = weights or {"image": 1, "audio": 1, "text": 2}
    out = []
    for name, (rows, window) in shapes.items():
        entry = {"path": str(shards[name]), "weight": weights[name], "batch_size": rows}
        if window:
            entry["seq_len"] = window
        out.append(entry)
    return out


def module(shards, max_seq_len: int = 1200, **options) -> ByteDataModule:
    entries = options.pop("sources", None) or sources(shards)
    data = ByteDataModule(sources=entries, batch_size=4, mix_by="batch", **options)
    data.set_patch_size(P, max_seq_len)
    return data


def test_each_batch_is_one_sources_rows_and_windows(shards):
    data = module(shards)
    table = data.mixture.table
    assert table.windows == (1116, 600, 240) and table.data_len == 1116
    headers = {bytes(h): i for i, h in enumerate(table.headers)}
    stream = b"".join(s["bin"] for s in read_samples(shards["text"], "train"))
    counts = Counter()
    loader = data.train_dataloader()
    for number, batch in enumerate(loader):
        assert batch.dtype == torch.long
        kinds = {headers[bytes(row[:84].to(torch.uint8).tolist())] for row in batch}
        assert len(kinds) == 1  # one source per batch
        source = kinds.pop()
        rows, window = list(SHAPES.values())[source]
        assert batch.shape == (rows, 84 + (window or 1116))
        if source == 2:
            for row in batch:
                assert bytes(row[84:].to(torch.uint8).tolist()) in stream
        counts[source] += 1
        if number == 199:
            break
    # weights count updates: 1 : 1 : 2 over 200 batches
    assert counts[2] > counts[0] and counts[2] > counts[1]
    assert 70 <= counts[2] <= 130 and min(counts[0], counts[1]) >= 30


def test_resume_reads_the_same_batches(shards):
    data = module(shards)
    full = data.mixture.train_dataloader(4, 0, 0, 12, 0)
    resumed = data.mixture.train_dataloader(4, 0, 7, 5, 0)
    whole = [b.tolist() for b in full]
    assert [b.tolist() for b in resumed] == whole[7:]


def test_validation_cuts_each_source_to_its_own_window(shards):
    data = module(shards)
    table = data.mixture.table
    got = [row for batch in data.val_dataloader() for row in batch]
    for index, name in enumerate(("image", "audio", "text")):
        header = torch.tensor(list(table.headers[index]))
        mine = [row[84:] for row in got if torch.equal(row[:84], header)]
        longest = 768 if name == "image" else table.windows[index]  # a 16x16 image is whole
        assert mine and max(len(r) for r in mine) == longest
        expected = b"".join(s["bin"] for s in read_samples(shards[name], "val"))
        assert b"".join(bytes(r.to(torch.uint8).tolist()) for r in mine) == expected


def test_the_checkpoint_entry_keeps_the_windows_and_old_entries_read_as_before(shards):
    table = module(shards).mixture.table
    entry = table.entry()
    assert entry["windows"] == [1116, 600, 240]
    assert HeaderTable.from_entry(entry) == table
    del entry["windows"]  # an entry written before per-source windows: all data_len
    assert HeaderTable.from_entry(entry).windows == (1116, 1116, 1116)
    with pytest.raises(ValueError, match="windows must be in 1..1116"):
        HeaderTable.from_entry({**table.entry(), "windows": [1116, 2000, 240]})


def test_shapes_that_cannot_work_fail_before_any_work(shards):
    with pytest.raises(ConfigError, match="needs data.mix_by: batch"):
        ByteDataModule(sources=sources(shards), batch_size=4)
    with pytest.raises(ConfigError, match="data.mix_by is one of"):
        ByteDataModule(sources=sources(shards), batch_size=4, mix_by="row")
    with pytest.raises(ConfigError, match="applies to data.sources only"):
        ByteDataModule(path=str(shards["text"]), seq_len=64, mix_by="batch")
    longer = sources(shards, {**SHAPES, "text": (5, 5000)})
    with pytest.raises(ConfigError, match="seq_len 5000 is longer than the 1116 data bytes"):
        module(shards, sources=longer)
    cut_image = sources(shards, {**SHAPES, "image": (2, 500)})  # a 768-byte image, used whole
    with pytest.raises(ConfigError, match="used only whole"):
        module(shards, sources=cut_image)
    for bad in (0, -3, 2.5, True):
        entries = sources(shards)
        entries[2]["batch_size"] = bad
        with pytest.raises(ConfigError, match="batch_size must be a positive integer"):
            ByteDataModule(sources=entries, batch_size=4, mix_by="batch")
