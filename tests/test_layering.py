"""Layers import only downwards: core < modalities < workflows < commands (docs/architecture.md).

The benchmarks sit beside the commands: they may use the library up to its workflows, never a
command (they get the demo's plans from ``multibyte.plans``, not from the quickstart).

Every module under multibyte/, modalities/ and benchmarks/ is parsed with ``ast``; ALL its
imports count, function-local and ``TYPE_CHECKING`` ones included, and so do module names
written as strings (``"multibyte.prepare:main"``, the lazy loaders' tables, a callback's class
path), since ``importlib`` imports those too.
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("multibyte", "modalities", "benchmarks")

CORE, MODALITIES, WORKFLOWS, COMMANDS, BENCHMARKS = 1, 2, 3, 4, 5
NAMES = {CORE: "core", MODALITIES: "modalities", WORKFLOWS: "workflows", COMMANDS: "commands"}
NAMES[BENCHMARKS] = "benchmarks"
# Longest prefix wins. The bare package `multibyte` (FACADE) is the public API (`multibyte.load`,
# `multibyte.Megabyte`, ...): it may name anything lazily, so it sits with the commands on top,
# and nothing in the library may import it by its bare name.
LAYERS = {
    "multibyte.model": CORE,
    "multibyte.data": CORE,
    "multibyte.metrics": CORE,
    "multibyte.flops": CORE,
    "multibyte.loss": CORE,
    "multibyte.codecs": CORE,
    "multibyte.checkpoint": CORE,
    "multibyte.outputs": CORE,
    "modalities": MODALITIES,
    "multibyte.train": WORKFLOWS,
    "multibyte.evaluation": WORKFLOWS,
    "multibyte.sample": WORKFLOWS,
    "multibyte.prepare": WORKFLOWS,
    "multibyte.prepared": WORKFLOWS,
    "multibyte.inputs": WORKFLOWS,
    "multibyte.verify": WORKFLOWS,
    "multibyte.compression": WORKFLOWS,
    "multibyte.export": WORKFLOWS,
    "multibyte.plans": WORKFLOWS,
    "multibyte.cli": COMMANDS,
    "multibyte.quickstart": COMMANDS,
    "benchmarks": BENCHMARKS,
}
FACADE = "multibyte"
# Third-party packages a layer must never import.
LIGHTNING = ("lightning", "pytorch_lightning")
FORBIDDEN = {CORE: LIGHTNING, MODALITIES: LIGHTNING}
MODULE_STRING = re.compile(r"^((?:multibyte|modalities|benchmarks)(?:\.\w+)+)(?::\w+)?$")  # a.b[:c]


def module_files() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the two packages."""
    modules = {}
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            modules[".".join(parts)] = path
    return modules


def layer_of(module: str) -> int | None:
    if module == FACADE:
        return COMMANDS
    for prefix in sorted(LAYERS, key=len, reverse=True):
        if module == prefix or module.startswith(prefix + "."):
            return LAYERS[prefix]
    return None


def imports_of(source: str, module: str, is_package: bool, known: set[str]) -> set[str]:
    """Every module ``source`` imports: statements anywhere, and module names in strings."""
    package = module if is_package else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                # `from pkg import sub` imports the module pkg.sub when there is one.
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str):
            match = MODULE_STRING.match(node.value)
            if match and match.group(1) in known:
                found.add(match.group(1))
    found.discard(module)
    return found


def violations(modules: dict[str, str]) -> list[str]:
    """'importer -> imported (why)' for every import that goes against the layers."""
    known = set(modules)
    problems = []
    for module, source in sorted(modules.items()):
        own = layer_of(module)
        if own is None:
            problems.append(f"{module}: not in any layer (add it to LAYERS)")
            continue
        is_package = source.startswith("#package\n")
        for target in sorted(imports_of(source, module, is_package, known)):
            top = target.split(".")[0]
            if top in FORBIDDEN.get(own, ()):
                problems.append(f"{module} -> {target} ({NAMES[own]} never imports {top})")
            if top not in PACKAGES:
                continue
            if target == FACADE:
                problems.append(f"{module} -> multibyte (the facade; import the module itself)")
                continue
            theirs = layer_of(target)
            if own == BENCHMARKS and theirs == COMMANDS:
                problems.append(f"{module} -> {target} (benchmarks never import a command)")
            elif theirs is not None and theirs > own:
                problems.append(
                    f"{module} -> {target} ({NAMES[own]} imports {NAMES[theirs]}: upwards)"
                )
    return problems


def cycles(modules: dict[str, str]) -> list[list[str]]:
    """Import cycles between our modules (what function-local imports are used to hide)."""
    known = set(modules)
    graph = {
        m: {t for t in imports_of(s, m, s.startswith("#package\n"), known) if t in known}
        for m, s in modules.items()
    }
    found, state = [], {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                found.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt, [*path, nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    return found


def read_modules() -> dict[str, str]:
    out = {}
    for module, path in module_files().items():
        marker = "#package\n" if path.name == "__init__.py" else ""
        out[module] = marker + path.read_text()
    return out


def test_every_import_goes_downwards():
    modules = read_modules()
    assert {"multibyte.model.megabyte", "modalities.text", "benchmarks.quality"} <= set(modules)
    assert violations(modules) == []


def test_no_import_cycles_between_modules():
    assert cycles(read_modules()) == []


@pytest.mark.parametrize(
    ("module", "source", "expected"),
    [
        ("multibyte.model.megabyte", "import lightning\n", "never imports lightning"),
        ("multibyte.model.megabyte", "def f():\n    import modalities\n", "upwards"),
        ("multibyte.data.shards", "from modalities.text import SEPARATOR\n", "upwards"),
        ("modalities.text", "def f():\n    from multibyte.train import data\n", "upwards"),
        ("modalities.image", "from multibyte.evaluation import report\n", "upwards"),
        ("multibyte.prepare", "from multibyte import cli\n", "upwards"),
        ("multibyte.sample", "COMMAND = 'multibyte.quickstart:main'\n", "upwards"),
        ("multibyte.inputs", "import multibyte\n", "the facade"),
        ("benchmarks.compression", "from multibyte.quickstart import PLANS\n", "a command"),
        ("benchmarks.quality", "def f():\n    from multibyte import cli\n", "a command"),
        ("multibyte.train.cli", "from benchmarks import peer\n", "upwards"),
        ("multibyte.newthing", "x = 1\n", "not in any layer"),
    ],
)
def test_the_checker_catches_upward_imports(module, source, expected):
    modules = read_modules()
    modules[module] = source
    assert any(expected in problem and module in problem for problem in violations(modules))


def test_the_checker_catches_a_cycle_hidden_in_a_function():
    modules = read_modules()
    modules["multibyte.inputs"] += "\ndef f():\n    from multibyte.prepare import main\n"
    assert any("multibyte.prepare" in c and "multibyte.inputs" in c for c in cycles(modules))


def test_core_loads_neither_modalities_nor_lightning_at_run_time():
    """What the parse cannot see (importlib with computed names) shows up in sys.modules."""
    core = sorted(m for m in module_files() if layer_of(m) == CORE)
    code = (
        "import importlib, sys\n"
        f"for name in {core!r}: importlib.import_module(name)\n"
        "print(sorted(m for m in ('modalities', 'lightning') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
