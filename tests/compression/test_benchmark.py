"""benchmarks/compression.py runs end to end on a tiny checkpoint (seconds), so it never rots."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # `benchmarks` lives at the repo root and is not installed
    sys.path.insert(0, str(ROOT))

from benchmarks import compression  # noqa: E402


def test_image_sizes_and_speed(tmp_path, ckpts, files, capsys):
    argv = [
        "--ckpt", str(ckpts.image), "--files", str(files.png), str(files.big_png),
        "--batch", "2", "--speed-bytes", "192", "--json", str(tmp_path / "r.json"),
        "--markdown", str(tmp_path / "r.md"),
    ]  # fmt: skip
    result = compression.main(argv)
    assert json.loads((tmp_path / "r.json").read_text()) == json.loads(json.dumps(result))
    (row,) = result["files"]
    assert row["file"] == "photo.png" and row["bytes"] == 192 and row["chunks"] == 2
    assert row["mbz_bytes"] == row["header_bytes"] + row["payload_bytes"]
    assert abs(row["payload_over_model"] - 1) < 0.1  # 2 tiny chunks: a few bytes of flush each
    assert {"gzip", "xz", "png", "webp"} <= set(row["codec_bytes"]) | set(row["codec_notes"])
    assert result["skipped"][0]["file"] == str(files.big_png)
    speed = result["speed"]
    assert speed["chunk"] == 96 and speed["batch_2"]["chunks_per_batch"] == 2
    assert speed["batch_1"]["chunks_per_batch"] == 1
    for key in ("batch_1", "batch_2", "xz"):
        assert speed[key]["compress_bytes_per_s"] > 0 and speed[key]["decompress_bytes_per_s"] > 0
    table = (tmp_path / "r.md").read_text()
    assert "| photo.png | 192 |" in table and "| xz |" in table and "Skipped" in table
    assert table in capsys.readouterr().out
