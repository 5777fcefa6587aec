"""Helpers of the fault suite: run the console script as a user does, and judge its output.

``console`` runs ``python -m multibyte.cli`` in a subprocess (the real exit status and stderr);
``in_process`` calls ``multibyte.cli.main`` as the console script does (``sys.exit(main())``),
for the commands that import torch: an exception escaping it is what the user would see as a
traceback, so it fails the test.
"""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from multibyte.cli import main as cli

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
        [sys.executable, "-m", "multibyte.cli", *map(str, argv)], env=env, cwd=ROOT,
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    return Result(done.returncode, done.stdout, done.stderr)


@pytest.fixture
def in_process(capsys, monkeypatch):
    monkeypatch.delenv("MULTIBYTE_DEBUG", raising=False)

    def run(*argv: str) -> Result:
        capsys.readouterr()
        try:
            status = cli([str(a) for a in argv])
        except SystemExit as exit_:  # argparse
            status = exit_.code if isinstance(exit_.code, int) else 2
        captured = capsys.readouterr()
        return Result(int(status or 0), captured.out, captured.err)

    return run


def tree(folder: Path) -> set[Path]:
    return set(folder.rglob("*"))
