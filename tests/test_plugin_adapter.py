"""A fourth modality defined only here goes through prepare -> fit -> evaluate -> sample.

The toy adapter reads CSV files of numbers 0..255, one row per sample. Nothing in multibyte
knows it: it is registered in-process (a subprocess would not see it), and every command runs
through ``multibyte.cli.main`` exactly as a user would type it.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

import modalities
from modalities import BaseAdapter, Flag, Prompt, Record, Unit
from multibyte.cli import main as cli
from multibyte.codecs import Codec
from multibyte.data import read_samples


class CsvAdapter(BaseAdapter):
    """Rows of ``width`` numbers in 0..255; each row is one sample of ``width`` bytes."""

    name = "csv"
    unit = "bits/number"
    suffixes = (".csv",)
    flags = (Flag("--width", "width", int), Flag("--patch-size", "patch_size", int))
    prompt_fraction = 0.5

    def __init__(self, width: int = 16, patch_size: int = 4) -> None:
        if width < 1 or patch_size < 1:
            raise ValueError(f"option width={width} and patch_size={patch_size} must be positive")
        self.width, self.default_patch_size = width, patch_size

    @property
    def seq_len(self) -> int:
        return self.width

    @property
    def options(self) -> dict[str, Any]:
        return {"name": self.name, "width": self.width, "patch_size": self.default_patch_size}

    def encode(self, obj: list[int]) -> bytes:
        if len(obj) != self.width or not all(0 <= int(v) <= 255 for v in obj):
            raise ValueError(f"a row must hold {self.width} numbers in 0..255")
        return bytes(int(v) for v in obj)

    def decode(self, data: bytes) -> list[int]:
        return list(data)

    def rows(self, path: str | os.PathLike) -> list[bytes]:
        with open(path, newline="") as handle:
            return [self.encode(row) for row in csv.reader(handle) if row]

    def encode_file(self, path: str | os.PathLike) -> bytes:
        return b"".join(self.rows(path))

    def save(self, data: bytes, path: str | os.PathLike) -> None:
        Path(path).write_text(",".join(map(str, data)) + "\n")

    def units(self, path: Path) -> list[Unit]:
        return [
            Unit([Record(row, {"row": i})], name=f"#{i}") for i, row in enumerate(self.rows(path))
        ]

    def codecs(self) -> tuple[dict[str, Codec], dict[str, str]]:
        def compress(data: bytes) -> bytes:
            return gzip.compress(",".join(map(str, data)).encode(), 9, mtime=0)

        def decompress(blob: bytes) -> bytes:
            return bytes(int(v) for v in gzip.decompress(blob).decode().split(","))

        return {"csv.gz": Codec("csv.gz", compress, decompress)}, {}

    def read_prompt(self, path: str | os.PathLike, fraction: float) -> Prompt:
        first = self.rows(path)[0]
        return Prompt(first[: int(len(first) * fraction)], first)


def write_csvs(folder: Path, files: int = 6, rows: int = 8, width: int = 16) -> list[list[int]]:
    """Ramps with a random offset: easy for a model, every row a valid sample."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    written = []
    for f in range(files):
        lines = []
        for _ in range(rows):
            row = ((np.arange(width) * 3 + rng.integers(0, 256)) % 256).tolist()
            lines.append(",".join(map(str, row)))
            written.append(row)
        (folder / f"part{f}.csv").write_text("\n".join(lines) + "\n")
    (folder / "notes.md").write_text("not a csv")
    return written


def recipe(path: Path, shards: Path, root: Path) -> Path:
    config = {
        "seed_everything": 0,
        "trainer": {
            "accelerator": "cpu",
            "devices": 1,
            "precision": "32-true",
            "max_steps": 3,
            "val_check_interval": 3,
            "check_val_every_n_epoch": None,
            "log_every_n_steps": 1,
            "enable_progress_bar": False,
            "default_root_dir": str(root),
            "callbacks": [
                {"class_path": "multibyte.train.Checkpoints", "init_args": {"save_last": True}}
            ],
        },
        "model": {
            "model": {
                "class_path": "multibyte.Megabyte",
                "init_args": {
                    "config": {
                        "patch_size": 4,
                        "max_seq_len": 16,
                        "global_dim": 32,
                        "global_layers": 1,
                        "global_heads": 2,
                        "local_dim": 16,
                        "local_layers": 1,
                        "local_heads": 2,
                    }
                },
            },
            "lr": 3.0e-3,
            "warmup_steps": 1,
        },
        "data": {
            "path": str(shards),
            "modality": {"name": "csv", "width": 16},
            "batch_size": 4,
            "batches_per_epoch": 3,
        },
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


@pytest.fixture
def csv_registered(monkeypatch):
    monkeypatch.setattr(modalities, "_registered", {})
    modalities.register("csv", CsvAdapter)


def test_a_plugin_adapter_goes_through_every_command(csv_registered, tmp_path, capsys):
    rows = write_csvs(tmp_path / "csv")
    shards = tmp_path / "shards"
    prepare = [
        "prepare",
        "csv",
        "--src",
        str(tmp_path / "csv"),
        "--out",
        str(shards),
        "--width",
        "16",
        "--val-fraction",
        "0.3",
        "--workers",
        "1",
        "--quiet",
    ]
    assert cli([*prepare[:-1], "--size", "8", "--quiet"]) == 2  # image's flag, not csv's
    assert "option --size does not apply to csv" in capsys.readouterr().err
    assert cli(prepare) == 0
    manifest = json.loads((shards / "manifest.json").read_text())
    assert manifest["modality"] == "csv" and manifest["stream"] is False
    assert manifest["options"] == {"name": "csv", "width": 16, "patch_size": 4}
    assert manifest["counts"]["train"] + manifest["counts"]["val"] == len(rows) == 48
    assert manifest["counts"]["val"] > 0
    assert [s["source"].rsplit("/", 1)[-1] for s in manifest["skipped"]] == ["notes.md"]
    stored = read_samples(shards, "train") + read_samples(shards, "val")
    assert sorted(s["bin"] for s in stored) == sorted(bytes(r) for r in rows)

    root = tmp_path / "run"
    assert cli(["fit", "--config", str(recipe(tmp_path / "csv.yaml", shards, root))]) == 0
    checkpoint = root / "checkpoints" / "last.ckpt"
    assert checkpoint.is_file()

    report = tmp_path / "report.json"
    argv = [
        "evaluate",
        "--ckpt",
        str(checkpoint),
        "--data",
        str(shards),
        "--json",
        str(report),
        "--quiet",
    ]
    assert cli(argv) == 0
    summary = json.loads(report.read_text())
    assert summary["modality"] == "csv" and summary["unit"] == "bits/number"
    assert summary["bytes"] == 16 * manifest["counts"]["val"] and summary["source"] == "shards"
    assert 0 < summary["bits_per_byte"] < 9 and "csv.gz" in summary["codecs"]
    # Raw files are recognised by the adapter's suffix and encoded as prepare would.
    assert (
        cli(
            [
                "evaluate",
                "--ckpt",
                str(checkpoint),
                "--data",
                str(tmp_path / "csv"),
                "--json",
                str(report),
                "--quiet",
                "--no-codecs",
                "--overwrite",
            ]
        )
        == 0
    )
    assert json.loads(report.read_text())["bytes"] == 16 * len(rows)

    out = tmp_path / "samples" / "s.csv"
    argv = [
        "sample",
        "--ckpt",
        str(checkpoint),
        "--out",
        str(out),
        "--n",
        "2",
        "--prompt",
        str(tmp_path / "csv" / "part0.csv"),
        "--seed",
        "0",
        "--quiet",
    ]
    assert cli(argv) == 0
    for i in range(2):
        numbers = [int(v) for v in (out.parent / f"s-{i}.csv").read_text().strip().split(",")]
        assert len(numbers) == 16 and numbers[:8] == rows[0][:8]  # the prompt's first half


def test_the_entry_point_group_resolves_and_prepares(monkeypatch, tmp_path):
    point = metadata.EntryPoint(
        name="csv", value=f"{__name__}:CsvAdapter", group=modalities.ENTRY_POINT_GROUP
    )
    monkeypatch.setattr(modalities, "_registered", {})
    monkeypatch.setattr(modalities, "_entry_points", lambda: {"csv": point})
    assert "csv" in modalities.available()
    adapter = modalities.get("csv", width=4)
    assert type(adapter).__name__ == "CsvAdapter" and adapter.seq_len == 4
    assert isinstance(adapter, modalities.Adapter)
    write_csvs(tmp_path / "csv", files=2, rows=3, width=4)
    assert modalities.guess([tmp_path / "csv"]) == "csv"
    out = tmp_path / "shards"
    argv = [
        "prepare",
        "csv",
        "--src",
        str(tmp_path / "csv"),
        "--out",
        str(out),
        "--width",
        "4",
        "--val-fraction",
        "0",
        "--workers",
        "1",
        "--quiet",
    ]
    assert cli(argv) == 0
    assert json.loads((out / "manifest.json").read_text())["counts"] == {"train": 6, "val": 0}
