"""BaseAdapter: a new modality is one small class; every default does something sensible."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import modalities
from modalities import Adapter, BaseAdapter, Prompt


class Lines(BaseAdapter):
    """The smallest stream modality: bytes of .log files."""

    name = "lines"
    suffixes = (".log",)

    def encode(self, obj: str) -> bytes:
        return obj.encode()


class Blocks(BaseAdapter):
    """The smallest sample modality: 6-byte records."""

    name = "blocks"
    seq_len = 6
    suffixes = (".blk",)

    def encode(self, obj: bytes) -> bytes:
        return bytes(obj)


def test_a_subclass_with_a_name_and_encode_is_a_whole_adapter(tmp_path):
    lines = Lines()
    assert isinstance(lines, Adapter)
    assert lines.stream and not Blocks().stream
    assert lines.options == {"name": "lines"} and lines.unit == "bits/byte"
    assert lines.bytes_per_unit == 1 and lines.count_words(b"a b") is None
    assert lines.codecs() == ({}, {}) and lines.bits_map(np.zeros(3)) is None
    assert lines == Lines() and lines != Blocks() and repr(lines) == "Lines()"
    path = tmp_path / "a.log"
    path.write_bytes(b"one\ntwo\n")
    assert lines.encode_file(path) == b"one\ntwo\n"
    [unit] = lines.units(path)
    assert [r.data for r in unit.records] == [b"one\ntwo\n"] and unit.split is None
    lines.save(b"\x00\xff", tmp_path / "out.log")
    assert (tmp_path / "out.log").read_bytes() == b"\x00\xff"
    with pytest.raises(ValueError, match="not supported for lines"):
        lines.encode_exact(path)


def test_inputs_are_recognised_by_suffix_whatever_the_case(tmp_path):
    lines = Lines()
    assert lines.recognises(Path("x/A.LOG")) and not lines.recognises(Path("a.txt"))
    assert lines.accepts(Path("a.log"), named=True) and not lines.accepts(Path("a"), named=True)
    assert lines.describe_inputs() == ".log"
    (tmp_path / "empty.log").write_bytes(b"")
    with pytest.raises(ValueError, match="empty file"):
        lines.encode_file(tmp_path / "empty.log")


def test_stream_sampling_continues_and_keeps_the_end_of_a_long_prompt():
    lines = Lines()
    prompt, new = lines.plan_sample(Prompt(b"abcdef"), None, max_seq_len=1000)
    assert (prompt.data, new) == (b"abcdef", 256)
    prompt, new = lines.plan_sample(Prompt(b"abcdef"), None, max_seq_len=100)
    assert (prompt.data, new) == (b"f", 99)  # min(256, limit - 1) new bytes come first
    prompt, new = lines.plan_sample(Prompt(b"abcdef"), 6, max_seq_len=10)
    assert (prompt.data, new) == (b"cdef", 6)
    with pytest.raises(ValueError, match="--max-new-bytes must be in 1..10"):
        lines.plan_sample(Prompt(b""), 11, max_seq_len=10)


def test_sample_modalities_complete_one_sample(tmp_path):
    blocks = Blocks()
    path = tmp_path / "r.blk"
    path.write_bytes(b"abcdef")
    prompt = blocks.read_prompt(path, 0.5)
    assert (prompt.data, prompt.whole) == (b"abc", b"abcdef")
    assert blocks.plan_sample(prompt, None, max_seq_len=6) == (prompt, 3)
    with pytest.raises(ValueError, match="max_seq_len 4"):
        blocks.plan_sample(prompt, None, max_seq_len=4)
    paths = blocks.render([b"abcxyz", b"abcuvw"], tmp_path / "out.blk", prompt)
    assert [p.name for p in paths] == ["out-0.blk", "out-1.blk"]
    assert paths[1].read_bytes() == b"abcuvw"
    assert blocks.render([b"abcxyz"], tmp_path / "one.blk", prompt)[0].name == "one.blk"


def test_registering_a_subclass_makes_it_available(monkeypatch, tmp_path):
    monkeypatch.setattr(modalities, "_registered", {})
    modalities.register("lines", Lines)
    assert "lines" in modalities.available()
    assert modalities.get("lines") == Lines() and modalities.factory("lines") is Lines
    (tmp_path / "a.log").write_text("x")
    (tmp_path / "b.png").write_bytes(b"")
    assert modalities.guess([tmp_path / "a.log"]) == "lines"
    assert modalities.guess([tmp_path]) is None  # two modalities' files
