"""No workflow or command branches on a modality's name: they ask the adapter instead.

Every workflow and command module (multibyte/ minus the core on bytes, whose model presets
are named after datasets) is parsed with ``ast``; comparing with "image", "audio" or
"text" (``==``, ``!=``, ``in (...)``, ``match``), keying a dict or an index by them, or passing
them as keyword names fails. Plain data may still name them (the quickstart's list of the
bundled datasets), since nothing branches on it.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NAMES = {"image", "audio", "text"}
CORE = ("model", "data", "metrics.py", "flops.py", "loss.py", "codecs.py", "checkpoint.py")


def _is_name(node: ast.AST | None) -> bool:
    return isinstance(node, ast.Constant) and node.value in NAMES


def _holds_name(node: ast.AST) -> bool:
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return any(_is_name(e) for e in node.elts)
    return _is_name(node)


def offences(source: str) -> list[str]:
    """'line: what' for every place the source branches on or keys by a modality name."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Compare) and any(
            _holds_name(n) for n in [node.left, *node.comparators]
        ):
            found.append(f"{node.lineno}: compares with a modality name")
        elif isinstance(node, ast.Dict) and any(_is_name(k) for k in node.keys):
            found.append(f"{node.lineno}: a dict keyed by modality names")
        elif isinstance(node, ast.Subscript) and _is_name(node.slice):
            found.append(f"{node.lineno}: indexes by a modality name")
        elif isinstance(node, ast.keyword) and node.arg in NAMES:
            found.append(f"{node.lineno}: a keyword named after a modality")
        elif isinstance(node, ast.MatchValue) and _is_name(node.value):
            found.append(f"{node.lineno}: matches a modality name")
    return found


def test_no_workflow_or_command_names_a_modality():
    package = ROOT / "multibyte"
    files = sorted(p for p in package.rglob("*.py") if p.relative_to(package).parts[0] not in CORE)
    assert package / "quickstart.py" in files and package / "train" / "data.py" in files
    problems = [
        f"{path.relative_to(ROOT)}:{offence}"
        for path in files
        for offence in offences(path.read_text())
    ]
    assert problems == []


@pytest.mark.parametrize(
    "source",
    [
        'if adapter.name == "image":\n    pass\n',
        'if "audio" != name:\n    pass\n',
        'ok = plan.name in ("image", "audio")\n',
        'DEFAULT = {"image": 0.5, "text": 1.0}\n',
        'x = table["text"]\n',
        "d = dict(text=1)\n",
        'match name:\n    case "audio":\n        pass\n',
    ],
)
def test_the_checker_catches_each_form(source):
    assert offences(source)


def test_plain_data_is_not_an_offence():
    assert (
        offences('PLANS = [Plan("image", "imagenet64-tiny.yaml")]\nif name == "csv": pass\n') == []
    )
