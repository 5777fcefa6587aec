"""The report module: the Markdown table, the printed summary and the plots, from a summary."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

import modalities
from multibyte.evaluation import evaluate_model
from multibyte.evaluation.report import (
    along_sequence,
    bits_map,
    markdown,
    save_plots,
    text_report,
)


def summary_of(stand_ins, adapter=None, sequences=None, **kwargs):
    rng = np.random.default_rng(0)
    sequences = sequences or [rng.integers(0, 256, n, dtype=np.uint8).tobytes() for n in (40, 9)]
    return evaluate_model(stand_ins.PreviousByte(), sequences, adapter=adapter, **kwargs)


def rows(table: str) -> dict[str, list[str]]:
    """Table rows by their first cell."""
    out = {}
    for line in table.splitlines()[2:]:
        cells = [c.strip() for c in line.strip("|").split("|")]
        out[cells[0]] = cells[1:]
    return out


def test_markdown_has_one_row_per_mode_and_codec_with_their_numbers(stand_ins):
    adapter = modalities.get("audio", sample_rate=8000, encoding="mulaw8", seq_len=32)
    summary = summary_of(stand_ins, adapter, strided=True, sliding=True, context=8).summary
    table = markdown(summary)
    header = table.splitlines()[0]
    assert "| bits/sample |" in header and "95% CI (bits/sample)" in header
    by_name = rows(table)
    basic = by_name["model, basic (L=32)"]
    assert int(basic[0]) == summary["bytes"] == 49
    assert float(basic[2]) == pytest.approx(summary["bits_per_byte"], abs=5e-5)
    assert float(basic[3]) == pytest.approx(summary["value_in_unit"], abs=5e-5)
    strided = by_name[f"model, strided (offset {summary['strided']['offset']})"]
    assert strided[-1] == f"{summary['strided']['cost']['relative_bytes_processed']:.2f}x"
    assert f"model, sliding (context >= {summary['sliding']['min_context']})" in by_name
    for name, bpb in summary["codecs"].items():
        assert float(by_name[name][2]) == pytest.approx(bpb, abs=5e-5)
    assert by_name["flac"][2].startswith("n/a")  # mu-law audio: FLAC does not apply


def test_printed_report_gives_headline_numbers_notes_and_skips(stand_ins):
    summary = summary_of(stand_ins, words=True).summary
    summary["notes"] = {"strided": "n/a: a note"}
    summary["skipped"] = [{"source": "bad.png", "reason": "OSError: truncated"}]
    printed = text_report(summary)
    assert printed.startswith("modality: bytes  unit: bits/byte  sequences: 2  window: 32")
    assert f"bits per byte: {summary['bits_per_byte']:.3f}" in printed
    assert f"words: {summary['words']}" in printed
    assert "strided: n/a: a note" in printed
    assert "skipped 1 inputs:\n  bad.png: OSError: truncated" in printed
    assert markdown(summary) in printed


def test_along_sequence_averages_bits_at_each_offset(stand_ins):
    evaluation = summary_of(stand_ins, sequences=[bytes(8), bytes(4)])
    evaluation.modes["basic"].bits = [np.arange(8, dtype=float), np.full(4, 10.0)]
    x, y = along_sequence(evaluation, "basic", bins=8)
    assert x.tolist() == [0.5 + i for i in range(8)]
    # offsets 0..3 average both sequences, offsets 4..7 only the longer one
    assert y.tolist() == [5.0, 5.5, 6.0, 6.5, 4.0, 5.0, 6.0, 7.0]


def test_bits_map_only_for_adapters_with_a_layout(stand_ins):
    image = modalities.get("image", size=4, order="patch", patch_size=12)
    evaluation = summary_of(stand_ins, image, sequences=[bytes(48)])
    # One bit on each byte of pixel 5 (row 1, column 1), in the adapter's patch order.
    one_pixel = np.eye(16)[5].reshape(4, 4, 1).repeat(3, axis=-1)
    evaluation.modes["basic"].bits = [image.order_pixels(one_pixel)[0].astype(float)]
    heat = bits_map(evaluation)
    assert heat.name == "pixel_bits" and heat.values.shape == (4, 4)
    assert heat.values[1, 1] == 3.0 and heat.values.sum() == 3.0
    assert bits_map(summary_of(stand_ins)) is None  # plain bytes
    assert bits_map(summary_of(stand_ins, modalities.get("text"))) is None  # a stream


def test_save_plots_writes_the_adapter_map_only_when_there_is_one(stand_ins, tmp_path):
    image = modalities.get("image", size=4)
    rng = np.random.default_rng(1)
    samples = [image.encode(rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)) for _ in range(2)]
    paths = save_plots(summary_of(stand_ins, image, sequences=samples), tmp_path / "img")
    assert [p.name for p in paths] == ["patch_position.png", "along_sequence.png", "pixel_bits.png"]
    for path in paths:
        with Image.open(path) as picture:
            assert picture.format == "PNG"
    paths = save_plots(summary_of(stand_ins, modalities.get("text")), tmp_path / "text")
    assert [p.name for p in paths] == ["patch_position.png", "along_sequence.png"]
