"""The core benchmark runs in smoke mode (tiny sizes, seconds), so it never rots."""

import json
import sys
from pathlib import Path

ROOT = str(Path(__file__).resolve().parents[2])
if ROOT not in sys.path:  # `benchmarks` lives at the repo root and is not installed
    sys.path.insert(0, ROOT)

from benchmarks import core  # noqa: E402
from benchmarks.common import update_doc_section  # noqa: E402
from multibyte.flops import non_embedding_parameters  # noqa: E402


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and value > 0


def test_core_smoke_writes_complete_json(tmp_path):
    doc = tmp_path / "benchmarks.md"
    core.main(["--smoke", "--out", str(tmp_path), "--doc", str(doc)])
    data = json.loads((tmp_path / "core.json").read_text())

    assert {"machine", "ceiling", "models", "train", "generate", "ratios"} <= data.keys()
    assert data["machine"]["cpu"] and data["machine"]["torch_threads"] >= 1
    assert _positive(data["ceiling"]["matmul_fp32_flops_per_s"])
    for name in ("megabyte", "byte_transformer"):
        train = data["train"][name]
        for key in ("bytes_per_s", "model_flops_per_s", "fraction_of_matmul"):
            assert _positive(train[key]), (name, key)
        assert _positive(train["memory"]["peak_rss_bytes"])
        assert _positive(data["models"][name]["non_embedding_parameters"])
    for name in ("megabyte_cached", "byte_transformer_cached", "megabyte_uncached"):
        generate = data["generate"][name]
        assert _positive(generate["bytes_per_s"]) and _positive(generate["seconds"]), name
    steps = data["generate"]["megabyte_cached"]["decoder_step_ms"]
    assert steps and all(_positive(v) for v in steps.values())
    assert set(data["ratios"]) == set(core.TARGETS)
    for ratio in data["ratios"].values():
        assert _positive(ratio["value"]) and ratio["met"] == (ratio["value"] >= ratio["target"])

    text = doc.read_text()
    assert "<!-- benchmark:core:begin -->" in text and data["machine"]["cpu"] in text


def test_full_sizes_compare_equal_non_embedding_parameters():
    counts = {
        name: non_embedding_parameters(config)
        for name, config in core.build_configs(core.FULL).items()
    }
    assert counts["megabyte"] == counts["byte_transformer"] > 10_000_000
    assert core.FULL.seq_len == 8192 and core.FULL.new_bytes == 8192


def test_update_doc_section_keeps_surrounding_text(tmp_path):
    doc = tmp_path / "b.md"
    doc.write_text("# Title\n\nprose before\n")
    update_doc_section("x", "first", path=doc)
    doc.write_text(doc.read_text() + "\nprose after\n")
    update_doc_section("x", "second", path=doc)
    text = doc.read_text()
    assert "prose before" in text and "prose after" in text
    assert "second" in text and "first" not in text
    assert text.count("<!-- benchmark:x:begin -->") == 1
