"""The quickstart pipeline end to end in reduced mode: every report artefact exists and is valid."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import soundfile
from PIL import Image

import multibyte
from multibyte.quickstart import PLANS, main

# A value shown with 3 decimals is within half a unit of the last digit (plus float rounding).
HALF_UNIT = 5e-4 + 1e-9


@pytest.fixture(scope="module")
def pack(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("pack")
    rng = np.random.default_rng(0)
    (root / "images").mkdir()
    for i in range(5):
        pixels = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8).repeat(12, 0).repeat(12, 1)
        Image.fromarray(pixels).save(root / "images" / f"photo{i}.png")
    (root / "speech").mkdir()
    t = np.arange(12000) / 16000.0
    for i in range(5):
        wave = 0.05 * np.sin(2 * np.pi * (150 + 40 * i) * t) * np.hanning(t.size)
        soundfile.write(root / "speech" / f"clip{i}.wav", wave, 16000, subtype="PCM_16")
    (root / "text").mkdir()
    for i in range(5):
        # four works to train on hold more than one 12,288-byte window of the multimodal model
        (root / "text" / f"work{i}.txt").write_text(f"Part {i}. " + "Call me Ishmael. " * 250)
    return root


def test_quickstart_writes_a_consistent_report(pack, tmp_path):
    out = tmp_path / "quickstart"
    assert main(["--quick", "--samples", str(pack), "--out", str(out)]) == 0
    report = (out / "report.md").read_text()
    summary = json.loads((out / "report.json").read_text())
    assert "tiny models trained for minutes on a CPU" in report
    assert [row["modality"] for row in summary["rows"]] == ["image", "audio", "text"]
    specialists, _, shared = report.partition("## One model for every modality")
    table = [
        line for line in specialists.splitlines() if re.match(r"\| (image|audio|text) \|", line)
    ]
    assert len(table) == 3
    # the multimodal model's row per modality, beside the specialist's (header excluded)
    mm_rows = summary["multimodal_rows"]
    assert [row["modality"] for row in mm_rows] == ["image", "audio", "text"]
    assert summary["multimodal"]["steps"] == sum(r["steps"] for r in summary["results"])
    mm_table = [line for line in shared.splitlines() if re.match(r"\| (image|audio|text) \|", line)]
    specialist_cells = {line.split("|")[1].strip(): line.split("|")[3].strip() for line in table}
    for row, line in zip(mm_rows, mm_table, strict=True):
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        assert cells[1] == specialist_cells[row["modality"]]  # one figure, shown alike
        assert float(cells[1]) == pytest.approx(row["specialist_bpb"], abs=HALF_UNIT)
        assert float(cells[2]) == pytest.approx(row["multimodal_bpb"], abs=HALF_UNIT)
        assert row["gap_bpb"] == pytest.approx(
            row["multimodal_bpb"] - row["specialist_bpb"], abs=2e-4
        )
    for row, line in zip(summary["rows"], table):
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        assert cells[0] == row["modality"] and int(cells[1]) == row["bytes"]
        assert float(cells[2]) == pytest.approx(row["megabyte_bpb"], abs=HALF_UNIT)
        assert float(cells[3]) == pytest.approx(row["megabyte_in_unit"], abs=HALF_UNIT)
        assert cells[4] == row["unit"]
        assert float(cells[6]) == pytest.approx(row["baseline_bpb"], abs=HALF_UNIT)
        assert float(cells[7]) == pytest.approx(row["gzip_bpb"], abs=HALF_UNIT)
        assert 0 < row["megabyte_bpb"] < 9 and row["bytes"] > 0
    # every linked artefact exists and opens
    for link in re.findall(r"\]\(([^)]+)\)", report):
        path = out / link
        assert path.is_file(), link
        if path.suffix == ".png":
            with Image.open(path) as image:
                image.verify()
    wav = out / "audio" / "samples-1.wav"
    data, rate = (
        soundfile.read(out / "audio" / "samples-0.wav") if not wav.exists() else soundfile.read(wav)
    )
    assert rate == 16000 and data.ndim == 1 and len(data) > 0
    assert (out / "text" / "sample.txt").stat().st_size > 0
    for modality in ("image", "audio", "text"):
        assert (out / modality / "training.png").is_file()
        for model in ("megabyte", "bytetransformer"):
            assert (out / modality / model / "checkpoints" / "last.ckpt").is_file()
    # a plan's model fields win over its recipe's in the demo's MEGABYTE run
    assert any(plan.model for plan in PLANS)
    for plan in PLANS:
        config = multibyte.load(out / plan.name / "megabyte" / "checkpoints" / "last.ckpt").config
        assert {key: getattr(config, key) for key in plan.model} == plan.model
    assert "text: the recipe's MEGABYTE with first_byte=previous_patch, cross_patch=0" in report


def test_the_shared_model_trains_as_many_steps_as_the_specialists_together():
    shared = [plan.shared_steps or plan.steps for plan in PLANS]
    assert sum(shared) == sum(plan.steps for plan in PLANS)
    assert all(steps > 0 for steps in shared)
