"""The header: plain ASCII naming a modality and its options, filling whole patches."""

from __future__ import annotations

import pytest
import torch

from multibyte.data.header import HeaderTable, header_length, header_tag, is_mixture, make_header

IMAGE = {"name": "image", "size": 64, "order": "raster"}
TEXT = {"name": "text"}


def test_tag_names_the_modality_and_its_options_sorted():
    assert header_tag(IMAGE) == b"image order=raster size=64"
    assert header_tag(TEXT) == b"text"


def test_the_header_fills_whole_patches_and_is_the_same_length_for_all():
    length = header_length([IMAGE, TEXT], patch_size=12)
    assert length == 36  # 26-byte tag rounded up to 3 patches
    headers = [make_header(o, length) for o in (IMAGE, TEXT)]
    assert {len(h) for h in headers} == {36}
    assert headers[1] == b"text" + b"\x00" * 32
    assert header_length([TEXT], patch_size=8) == 8  # at least one patch


def test_table_identifies_rows_by_header_and_round_trips_as_plain_data():
    table = HeaderTable.build([IMAGE, TEXT], patch_size=4, data_len=16)
    assert table.seq_len == table.length + 16 and table.length % 4 == 0
    rows = [list(h) + [7] * 16 for h in reversed(table.headers)]
    rows.append([1] * table.seq_len)
    found = table.identify(torch.tensor(rows))
    assert found.tolist() == [1, 0, -1]
    entry = table.entry()
    assert is_mixture(entry) and HeaderTable.from_entry(entry) == table
    assert table.labels == ["image", "text"]


def test_two_sources_with_the_same_options_are_refused():
    with pytest.raises(ValueError, match="same modality"):
        HeaderTable.build([TEXT, dict(TEXT)], patch_size=8, data_len=8)
