from __future__ import annotations

from pathlib import Path

import pytest

import modalities
from modalities import Prompt
from modalities.text import SEPARATOR, enwik8_range
from multibyte.inputs import find_tasks


def test_round_trip_unicode():
    text = modalities.get("text")
    s = "héllo wörld — 日本語 🎉\n\ttabs\r\n"
    data = text.encode(s)
    assert data == s.encode("utf-8")
    assert text.decode(data) == s


def test_known_first_bytes():
    assert modalities.get("text").encode("é€") == b"\xc3\xa9\xe2\x82\xac"


def test_invalid_utf8_survives_file_reading(tmp_path):
    raw = bytes(range(256)) + b"\xff\xfe\xc3(\x80"
    path = tmp_path / "bad.bin"
    path.write_bytes(raw)
    text = modalities.get("text")
    assert text.encode_file(path) == raw
    assert "\ufffd" in text.decode(raw)  # decode replaces, never raises
    out = tmp_path / "out.txt"
    text.save(raw, out)
    assert out.read_bytes() == raw


def test_crlf_not_translated(tmp_path):
    path = tmp_path / "a.txt"
    path.write_bytes(b"a\r\nb\r")
    assert modalities.get("text").encode_file(path) == b"a\r\nb\r"


def test_empty_file_is_an_error(tmp_path):
    (tmp_path / "e.txt").write_bytes(b"")
    with pytest.raises(ValueError, match="empty"):
        modalities.get("text").encode_file(tmp_path / "e.txt")


def test_join_puts_separator_after_every_document():
    text = modalities.get("text")
    assert text.join([b"ab", b"c"]) == b"ab\x1e\nc\x1e\n"


def test_pg19_folder(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "2.txt").write_bytes(b"two")
    (tmp_path / "1.txt").write_bytes(b"one")
    (tmp_path / "notes.csv").write_bytes(b"x")
    text = modalities.get("text")
    tasks, skips = find_tasks(text, [tmp_path])
    assert [task.ident for task in tasks] == ["1.txt", "b/2.txt"]
    assert [Path(skip.source).name for skip in skips] == ["notes.csv"]
    streams = [unit.records[0].data for task in tasks for unit in text.units(Path(task.path))]
    assert streams == [b"one" + SEPARATOR, b"two" + SEPARATOR]


def test_enwik8_split(tmp_path):
    assert enwik8_range(100_000_000, "train") == (0, 90_000_000)
    assert enwik8_range(100_000_000, "val") == (90_000_000, 95_000_000)
    assert enwik8_range(100_000_000, "test") == (95_000_000, 100_000_000)
    data = bytes(i % 251 for i in range(1000))
    path = tmp_path / "enwik8"
    path.write_bytes(data)
    units = modalities.get("text").units(path, enwik8=True)
    assert [unit.split for unit in units] == ["train", "val", "test"]
    parts = [unit.records[0].data for unit in units]
    assert [len(p) for p in parts] == [900, 50, 50]
    assert b"".join(parts) == data
    with pytest.raises(ValueError, match="split"):
        enwik8_range(len(data), "dev")


def test_a_file_is_one_document_unit_followed_by_the_separator(tmp_path):
    text = modalities.get("text")
    (tmp_path / "book").write_bytes(b"h\xc3\xa9llo")  # named directly: read whatever its name
    assert text.accepts(tmp_path / "book", named=True)
    assert not text.accepts(tmp_path / "book", named=False)
    [unit] = text.units(tmp_path / "book")
    [record] = unit.records
    assert record.data == b"h\xc3\xa9llo" + SEPARATOR and record.meta == {"document_bytes": 6}
    assert unit.split is None and text.manifest_extras() == {"separator_hex": "1e0a"}


def test_enwik8_units_are_the_fixed_split_without_separator(tmp_path):
    text = modalities.get("text")
    data = bytes(i % 251 for i in range(1000))
    (tmp_path / "enwik8").write_bytes(data)
    units = text.units(tmp_path / "enwik8", enwik8=True)
    assert [u.split for u in units] == ["train", "val", "test"]
    assert b"".join(u.records[0].data for u in units) == data
    assert text.manifest_extras(enwik8=True) == {"split": "enwik8 90/5/5"}
    with pytest.raises(ValueError, match="not a folder"):
        text.check_reading([tmp_path], [], enwik8=True)
    with pytest.raises(ValueError, match="--val-src does not apply"):
        text.check_reading([tmp_path / "enwik8"], [tmp_path], enwik8=True)
    text.check_reading([tmp_path], [tmp_path])  # without --enwik8 anything goes


def test_words_ignore_document_separators():
    text = modalities.get("text")
    assert text.count_words(text.join([b"two words", b"three\tmore  words"])) == 5
    assert text.count_words(b"a\x1e\nb") == 2  # "a<RS>\nb" would be one word with the RS


def test_text_samples_are_printed_and_saved(tmp_path, capsys):
    text = modalities.get("text")
    paths = text.render([b"It was \xff", b"It is"], tmp_path / "s.txt", Prompt())
    assert [p.read_bytes() for p in paths] == [b"It was \xff", b"It is"]
    assert capsys.readouterr().out == "--- sample 0 ---\nIt was \ufffd\n--- sample 1 ---\nIt is\n"
