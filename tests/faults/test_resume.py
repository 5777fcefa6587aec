"""Interrupt a running ``prepare`` (SIGINT, SIGKILL), then ``--resume``: the shards and the
manifest equal an uninterrupted run's, byte for byte (the manifest up to its timing)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from multibyte.cli import main as cli
from multibyte.data import read_samples
from tests.faults.slow_prepare import register

ROOT = Path(__file__).resolve().parents[2]
FILES = 80


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    src = tmp_path_factory.mktemp("books") / "src"
    src.mkdir()
    for i in range(FILES):
        (src / f"{i:03d}.txt").write_bytes(bytes(range(256)) * (i % 3 + 1) + f"doc {i}".encode())
    (src / "notes.bin").write_bytes(b"x")  # a skipped input, listed in the manifest
    return src


def argv(src: Path, out: Path) -> list[str]:
    return [
        "prepare",
        "slowtext",
        "--src",
        str(src),
        "--out",
        str(out),
        "--shard-size",
        "4",
        "--workers",
        "1",
        "--quiet",
        "--val-fraction",
        "0.2",
    ]


@pytest.fixture(scope="module")
def reference(corpus, tmp_path_factory):
    register()
    out = tmp_path_factory.mktemp("reference") / "out"
    assert cli(argv(corpus, out)) == 0
    return out


def comparable(out: Path) -> dict:
    manifest = json.loads((out / "manifest.json").read_text())
    manifest.pop("seconds")
    manifest["argv"] = [a if a != str(out) else "OUT" for a in manifest["argv"]]
    return manifest


def interrupt(corpus: Path, out: Path, how: signal.Signals) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    script = str(ROOT / "tests" / "faults" / "slow_prepare.py")
    process = subprocess.Popen(
        [sys.executable, script, *argv(corpus, out)],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # wait until a few shards are finished
        try:
            manifest = json.loads((out / "manifest.json").read_text())
        except (OSError, ValueError):
            manifest = {}
        if len(manifest.get("shard_info", {}).get("train", [])) >= 3:
            break
        time.sleep(0.01)
    process.send_signal(how)
    stdout, stderr = process.communicate(timeout=60)
    return subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)


@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL], ids=["sigint", "sigkill"])
def test_interrupted_prepare_resumes_to_the_uninterrupted_result(corpus, reference, tmp_path, how):
    out = tmp_path / "out"
    stopped = interrupt(corpus, out, how)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["complete"] is False
    if how == signal.SIGINT:
        assert stopped.returncode == 130
        assert "Traceback" not in stopped.stderr
        lines = stopped.stderr.strip().splitlines()
        assert len(lines) == 1, stopped.stderr
        assert "valid" in lines[0] and str(out) in lines[0]
        assert f"multibyte prepare slowtext --src {corpus}" in lines[0]
        assert lines[0].endswith("--resume")
        # what was written is readable as it is, and agrees with the manifest
        written = read_samples(out, "train")
        assert len(written) == manifest["counts"]["train"] > 0
    else:
        assert stopped.returncode == -signal.SIGKILL
    # an interrupted folder is refused by the readers unless allowed
    assert cli(["prepare", "slowtext", "--src", str(corpus), "--out", str(out), "--quiet"]) == 2
    register()
    assert cli([*argv(corpus, out), "--resume"]) == 0
    want = sorted(p.name for p in reference.iterdir())
    assert sorted(p.name for p in out.iterdir()) == want
    for name in want:
        if name.endswith(".tar"):
            assert (out / name).read_bytes() == (reference / name).read_bytes(), name
    assert comparable(out) == comparable(reference)
