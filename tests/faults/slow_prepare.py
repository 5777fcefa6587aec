"""``multibyte prepare slowtext ...`` with a text adapter that takes 20 ms per file.

Run as a script (``python slow_prepare.py prepare slowtext --src ...``) so that a test can
interrupt a prepare in the middle; it goes through ``multibyte.cli.main`` as the console script.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import modalities
from modalities.text import TextAdapter
from multibyte.cli import main


class SlowText(TextAdapter):
    name = "slowtext"

    def units(self, path: Path, enwik8: bool = False):
        time.sleep(0.02)
        return super().units(path, enwik8)


def register() -> None:
    if "slowtext" not in modalities.available():
        modalities.register("slowtext", SlowText)


if __name__ == "__main__":
    register()
    sys.exit(main(sys.argv[1:]))
