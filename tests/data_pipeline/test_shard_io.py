from __future__ import annotations

import io
import json
import tarfile

import pytest

from multibyte.data import ShardSink, iter_tar_samples, list_shards, read_samples


def test_round_trip_and_names(tmp_path):
    samples = [bytes([i]) * (i + 1) for i in range(7)]
    with ShardSink(tmp_path, "train", max_count=3) as sink:
        for i, data in enumerate(samples):
            sink.write(f"s{i:09d}", data, {"i": i})
    assert sink.shards == ["train-000000.tar", "train-000001.tar", "train-000002.tar"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sink.shards
    assert sink.count == 7 and sink.bytes == sum(map(len, samples))
    back = read_samples(tmp_path, "train")
    assert [s["bin"] for s in back] == samples
    assert [json.loads(s["json"])["i"] for s in back] == list(range(7))
    assert [s["__key__"] for s in back] == [f"s{i:09d}" for i in range(7)]


def test_empty_split_writes_nothing(tmp_path):
    with ShardSink(tmp_path, "val"):
        pass
    assert list(tmp_path.iterdir()) == []
    assert list_shards(tmp_path, "val") == []


def test_dotted_key_refused(tmp_path):
    with pytest.raises(ValueError, match="dot"):
        ShardSink(tmp_path, "train").write("a.b", b"x", {})


def test_unfinished_shard_is_invisible(tmp_path):
    sink = ShardSink(tmp_path, "train", max_count=2)
    for i in range(3):
        sink.write(f"s{i:09d}", b"ab", {})
    # mid-job: the first shard is complete, the second is still .partial
    assert [s["bin"] for s in read_samples(tmp_path, "train")] == [b"ab", b"ab"]
    assert (tmp_path / "train-000001.tar.partial").exists()
    sink.close()
    assert len(read_samples(tmp_path, "train")) == 3


def test_hostile_member_names_are_only_keys(tmp_path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for name, data in [("../../evil.bin", b"x"), ("/abs/k.bin", b"y"), ("link", b"")]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        link = tarfile.TarInfo("sym.bin")
        link.type = tarfile.SYMTYPE
        link.linkname = "/etc/passwd"
        tar.addfile(link)
    before = set(tmp_path.parent.rglob("*"))
    samples = list(iter_tar_samples(buffer.getvalue()))
    assert [s["__key__"] for s in samples] == ["../../evil", "/abs/k", "link"]
    assert samples[0]["bin"] == b"x"
    assert set(tmp_path.parent.rglob("*")) == before


def test_pipe_urls_refused():
    with pytest.raises(ValueError, match="local"):
        list(iter_tar_samples("pipe:echo hi"))


def test_shards_are_standard_tars_readable_by_webdataset(tmp_path):
    import webdataset as wds

    with ShardSink(tmp_path, "train", max_count=2) as sink:
        for i in range(3):
            sink.write(f"s{i:09d}", bytes([i]) * (700 * i + 1), {"i": i})
    with tarfile.open(tmp_path / "train-000000.tar") as tar:
        assert tar.getnames() == ["s000000000.bin", "s000000000.json"] + [
            "s000000001.bin",
            "s000000001.json",
        ]
        assert tar.extractfile("s000000001.bin").read() == b"\x01" * 701
    urls = [str(tmp_path / "train-000000.tar"), str(tmp_path / "train-000001.tar")]
    dataset = wds.WebDataset(urls, shardshuffle=False, empty_check=False)
    got = [(s["__key__"], s["bin"], json.loads(s["json"])["i"]) for s in dataset]
    assert got == [(f"s{i:09d}", bytes([i]) * (700 * i + 1), i) for i in range(3)]
    # byte-for-byte reproducible
    again = tmp_path / "again"
    with ShardSink(again, "train", max_count=2) as sink:
        for i in range(3):
            sink.write(f"s{i:09d}", bytes([i]) * (700 * i + 1), {"i": i})
    assert (again / "train-000001.tar").read_bytes() == (tmp_path / "train-000001.tar").read_bytes()
