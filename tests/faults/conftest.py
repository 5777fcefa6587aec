"""Helpers of the fault suite: run the console script as a user does, and judge its output.

``console`` runs ``python -m multibyte.cli`` in a subprocess (the real exit status and stderr);
``in_process`` calls ``multibyte.cli.main`` as the console script does (``sys.exit(main())``),
for the commands that import torch: an exception escaping it is what the user would see as a
traceback, so it fails the test.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from multibyte.checkpoint import export
from multibyte.cli import main as cli
from multibyte.model import Megabyte, MegabyteConfig

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Result:
    status: int
    out: str
    err: str

    def assert_user_error(self, *names: str, status: int = 2) -> str:
        """Exit ``status``, no traceback, and a message naming every one of ``names``."""
        assert self.status == status, (self.status, self.out, self.err)
        assert "Traceback" not in self.err + self.out, self.err
        text = self.err + self.out
        for name in names:
            assert str(name) in text, (name, text)
        return text


def console(*argv: str, timeout: float = 120) -> Result:
    env = {**os.environ, "PYTHONPATH": f"{ROOT}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    env.pop("MULTIBYTE_DEBUG", None)
    done = subprocess.run(
        [sys.executable, "-m", "multibyte.cli", *map(str, argv)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    return Result(done.returncode, done.stdout, done.stderr)


@pytest.fixture
def in_process(capsys, monkeypatch):
    monkeypatch.delenv("MULTIBYTE_DEBUG", raising=False)

    def run(*argv: str) -> Result:
        capsys.readouterr()
        # Lightning's log handlers keep the stderr of the test that imported it: point them at
        # this test's captured stderr, as a fresh process would.
        for logger in [
            logging.getLogger(),
            *map(logging.getLogger, logging.root.manager.loggerDict),
        ]:
            for handler in logger.handlers:
                if type(handler) is logging.StreamHandler:
                    handler.stream = sys.stderr
        try:
            status = cli([str(a) for a in argv])
        except SystemExit as exit_:  # argparse
            status = exit_.code if isinstance(exit_.code, int) else 2
        captured = capsys.readouterr()
        return Result(int(status or 0), captured.out, captured.err)

    return run


TEXT = b"The quick brown fox jumps over the lazy dog; the byte model watches every byte. "


@pytest.fixture(scope="session")
def shards(tmp_path_factory) -> Path:
    src = tmp_path_factory.mktemp("books")
    for i in range(12):
        (src / f"book{i:02d}.txt").write_bytes(TEXT * (8 + i))
    out = tmp_path_factory.mktemp("shards") / "text"
    argv = [
        "prepare",
        "text",
        "--src",
        str(src),
        "--out",
        str(out),
        "--shard-size",
        "2",
        "--val-fraction",
        "0.4",
        "--seed",
        "1",
        "--quiet",
    ]
    assert cli(argv) == 0
    assert len(list(out.glob("val-*.tar"))) >= 2 and len(list(out.glob("train-*.tar"))) >= 2
    return out


@pytest.fixture(scope="session")
def checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    config = MegabyteConfig(
        patch_size=4,
        max_seq_len=64,
        global_dim=16,
        global_layers=1,
        global_heads=2,
        local_dim=16,
        local_layers=1,
        local_heads=2,
    )
    path = tmp_path_factory.mktemp("ckpt") / "tiny.ckpt"
    export(Megabyte(config), path, {"name": "text", "patch_size": 4})
    return path


def tree(folder: Path) -> set[Path]:
    return set(folder.rglob("*"))
