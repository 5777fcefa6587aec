"""The streaming mixture: windows cut to the model, shards read as training goes, exact resume,
ranks on their own shards, bad shards skipped per source, and configuration errors up front."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import multibyte.data.sourcedata as sourcedata
from multibyte.data.shards import read_samples
from multibyte.prepare import main as prepare
from multibyte.train.data import ByteDataModule, ConfigError

P = 12  # the patch size of the tests' model: the three default headers take 84 bytes


def entries(shards: dict[str, Path], **weights: float) -> list[dict]:
    return [
        {"path": str(shards[n]), "weight": weights.get(n, 1)} for n in ("image", "audio", "text")
    ]


def mixture(shards, max_seq_len: int = 1200, **options) -> ByteDataModule:
    weights = options.pop("weights", {})
    data = ByteDataModule(sources=entries(shards, **weights), batch_size=4, **options)
    data.set_patch_size(P, max_seq_len)
    return data


def rows(batch) -> list[bytes]:
    return [bytes(row.to(dtype=__import__("torch").uint8).tolist()) for row in batch]


def first_batches(loader, n: int) -> list[list[bytes]]:
    out = []
    for batch in loader:
        out.append(rows(batch))
        if len(out) == n:
            return out
    return out


def train_bytes(folder: Path) -> dict[str, bytes]:
    return {s["__key__"]: s["bin"] for s in read_samples(folder, "train")}


def test_every_sequence_is_the_header_and_the_models_data_length(shards):
    data = mixture(shards)
    table = data.mixture.table
    assert table.length == 84 and table.seq_len == 1200 == data.seq_len
    images, clips = train_bytes(shards["image"]), train_bytes(shards["audio"])
    stream = b"".join(train_bytes(shards["text"]).values())
    assert {len(c) for c in clips.values()} == {32000}  # default --seq-len: one clip a file
    headers = {bytes(h): i for i, h in enumerate(table.headers)}
    seen = set()
    for batch in first_batches(data.train_dataloader(), 12):
        for row in batch:
            assert len(row) == 1200
            source, window = headers[row[:84]], row[84:]
            seen.add(source)
            if source == 0:  # a whole 768-byte image first, then the start of the next one
                assert window[:768] in images.values()
            elif source == 1:  # any 1,116 bytes of a clip, on a 2-byte sample boundary
                at = [c.find(window) for c in clips.values() if window in c]
                assert at and at[0] % 2 == 0
            else:
                assert window in stream
    assert seen == {0, 1, 2}


def test_whole_samples_that_do_not_fit_and_short_clips_are_configuration_errors(
    shards, audio_folder, tmp_path
):
    with pytest.raises(ConfigError) as error:
        mixture(shards, max_seq_len=840)  # 756 data bytes: a 768-byte image does not fit
    assert str(error.value) == (
        f"data.sources: {shards['image']}: its image samples are 768 bytes and used only whole, "
        "but the model's max_seq_len=840 less the 84-byte header leaves 756 data bytes: set "
        "--model.model.init_args.config.max_seq_len to at least 852"
    )
    short = tmp_path / "audio-short"
    assert (
        prepare(
            [
                "audio",
                "--src",
                str(audio_folder),
                "--out",
                str(short),
                "--seq-len",
                "1000",
                "--workers",
                "1",
                "--quiet",
            ]
        )
        == 0
    )
    with pytest.raises(ConfigError) as error:
        mixture({**shards, "audio": short})
    assert str(error.value) == (
        f"data.sources: {short}: its audio samples are at most 1000 bytes, shorter than one "
        "window (the model's max_seq_len=1200 less the 84-byte header leaves 1116 data bytes): "
        "prepare it again with --seq-len 1116 or more, or lower "
        "--model.model.init_args.config.max_seq_len to 1080"
    )
    with pytest.raises(ConfigError, match=f"{shards['text']}: 17812 training bytes of text"):
        mixture(shards, max_seq_len=40_000)


def test_opening_reads_no_shard_and_a_reader_holds_at_most_two_per_source(shards, monkeypatch):
    reads = []
    real = sourcedata.read_shard
    monkeypatch.setattr(sourcedata, "read_shard", lambda url: reads.append(url) or real(url))
    data = mixture(shards)
    assert reads == []
    dataset = data.mixture.train_dataset(4)
    for number in range(40):
        for source in range(3):
            dataset[(source, number, 0)]
    assert all(len(r.cache) <= sourcedata.CACHED_SHARDS for r in dataset._readers.values())
    assert len(reads) < 40  # shards are kept for a span of batches, not read per window


def test_resume_reads_exactly_the_batches_of_an_uninterrupted_run(shards):
    data = mixture(shards)
    full = first_batches(data.mixture.train_dataloader(4, 0, 0, 1000, 0), 10)
    resumed = first_batches(data.mixture.train_dataloader(4, 0, 6, 1000, 0), 4)
    assert resumed == full[6:]
    workers = first_batches(data.mixture.train_dataloader(4, 0, 0, 1000, 2), 10)
    assert workers == full  # the same bytes whatever the number of workers
    other_rank = first_batches(data.mixture.train_dataloader(4, 1, 0, 1000, 0), 10)
    assert other_rank != full


def test_ranks_draw_from_their_own_shards(shards):
    data = mixture(shards)
    shard_of = [data.mixture.train_dataset(4, rank, 2) for rank in (0, 1)]
    for source, spec in enumerate(data.mixture.specs):
        drawn = [{d.shard(source, n) for n in range(0, 400, 7)} for d in shard_of]
        if len(spec.shards) >= 2:
            assert drawn[0] and drawn[1] and not drawn[0] & drawn[1]


def test_a_bad_shard_stops_or_is_skipped_and_counted_for_its_source(shards, tmp_path, capsys):
    import shutil

    broken = tmp_path / "text"
    shutil.copytree(shards["text"], broken)
    victim = sorted(broken.glob("train-*.tar"))[0]
    data = bytearray(victim.read_bytes())
    data[600] ^= 0xFF
    victim.write_bytes(bytes(data))
    sources = {**shards, "text": broken}

    def read_all(on_bad_shard: str) -> None:
        dataset = mixture(sources, on_bad_shard=on_bad_shard).mixture.train_dataset(4)
        for number in range(0, 2000, 50):
            dataset[(2, number, 0)]

    with pytest.raises(Exception, match=f"shard {victim} is corrupt"):
        read_all("stop")
    read_all("skip")
    err = capsys.readouterr().err
    assert f"skipping bad shard (1 so far): shard {victim} is corrupt" in err
    assert "(2 so far)" not in err  # counted once for its source, then avoided


def test_validation_reads_each_source_and_every_byte_once(shards):
    data = mixture(shards)
    table = data.mixture.table
    got = [row for batch in data.val_dataloader() for row in rows(batch)]
    assert {row[:84] for row in got} == {bytes(h) for h in table.headers}
    for index, name in enumerate(("image", "audio", "text")):
        expected = b"".join(s["bin"] for s in read_samples(shards[name], "val"))
        mine = b"".join(r[84:] for r in got if r[:84] == bytes(table.headers[index]))
        assert mine == expected


def test_weights_all_zero_and_one_modality_twice_are_one_line_each(shards):
    with pytest.raises(ConfigError, match="every source has weight 0"):
        mixture(shards, weights={"image": 0, "audio": 0, "text": 0})
    twice = [{"path": str(shards["text"])}, {"path": str(shards["text"]), "weight": 2}]
    with pytest.raises(ConfigError) as error:
        ByteDataModule(sources=twice)
    assert str(error.value).startswith(f"data.sources: {shards['text']} and {shards['text']}")
    assert "same modality with the same options (text patch_size=8)" in str(error.value)


def test_manifest_sizes_weigh_the_sources(shards):
    data = mixture(shards, mix_alpha=1.0)
    recorded = [
        json.loads((shards[n] / "manifest.json").read_text())["bytes"]["train"]
        for n in ("image", "audio", "text")
    ]
    assert data.mixture.probabilities == pytest.approx(np.array(recorded) / sum(recorded))


def test_a_shard_is_read_as_views_equal_to_the_tar_readers_and_damage_is_caught(shards, tmp_path):
    from multibyte.data.shards import ShardError, iter_tar_samples

    for name in ("image", "audio", "text"):
        for url in sorted(shards[name].glob("train-*.tar")):
            expected = [s["bin"] for s in iter_tar_samples(url)]
            assert [bytes(b) for b in sourcedata.read_shard(str(url))] == expected
    data = sorted(shards["image"].glob("train-*.tar"))[0].read_bytes()
    for damaged, what in (
        (data[:1000], "runs past its end"),
        (data[:1636], "inside a tar header"),
        (data[:100] + b"X" + data[101:], "bad tar header"),
    ):
        loose = tmp_path / f"{len(damaged)}-{what[:3]}.tar"  # no manifest beside it
        loose.write_bytes(damaged)
        with pytest.raises(ShardError, match=what):
            sourcedata.read_shard(str(loose))


def test_shards_without_a_manifest_are_refused_unless_allowed(shards, tmp_path, capsys):
    import shutil

    bare = tmp_path / "text"
    shutil.copytree(shards["text"], bare)
    (bare / "manifest.json").unlink()
    sources = [{"path": str(shards["image"])}, {"path": str(bare), "modality": "text"}]
    with pytest.raises(ConfigError, match="--data.allow_unverified true"):
        ByteDataModule(sources=sources)
    data = ByteDataModule(sources=sources, allow_unverified=True, batch_size=2)
    data.set_patch_size(P, 1200)
    assert first_batches(data.train_dataloader(), 2)
    assert "reading its shards unverified" in capsys.readouterr().err


def test_sources_are_checked_against_the_models_length_not_a_guess_before_it(shards, tmp_path):
    (tmp_path / "short.txt").write_text(
        "a short text " * 40
    )  # 520 bytes (522 prepared): less than one image
    short = tmp_path / "short"
    assert (
        prepare(
            [
                "text",
                "--src",
                str(tmp_path / "short.txt"),
                "--out",
                str(short),
                "--val-fraction",
                "0",
                "--quiet",
            ]
        )
        == 0
    )
    sources = [{"path": str(shards["image"])}, {"path": str(short)}]
    data = ByteDataModule(sources=sources, batch_size=2)  # before the model is known: no error
    with pytest.raises(ConfigError, match="522 training bytes of text are less than one window"):
        data.set_patch_size(P, 1200)
