"""The architecture as the import graph: layers point one way and no module imports in a circle.

Layers, lowest first: corpora < retrievers < triggers < rag (the core) < benchmarks < the CLI
(`rag.cli`, which drives both `rag` and `benchmarks`). A module may import its own layer and the
ones below, never one above. Two checks, because each sees what the other cannot:
- static: every import statement of every module, including those inside functions and under
  ``TYPE_CHECKING`` (deferred imports are how cycles and upward arrows hide), read with `ast`;
- dynamic: each layer's modules imported in a fresh interpreter, asserting which packages loaded.
"""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("corpora", "retrievers", "triggers", "rag", "benchmarks", "rag.cli")
MAX_LINES = 400


def _layer(module: str) -> str:
    if module == "rag.cli" or module.startswith("rag.cli."):
        return "rag.cli"
    return module.split(".")[0]


def _modules() -> dict[str, Path]:
    """Every module of the project packages, by dotted name (a package by its ``__init__``)."""
    out = {}
    for package in ("corpora", "retrievers", "triggers", "rag", "benchmarks"):
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = list(path.relative_to(ROOT).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            out[".".join(parts)] = path
    return out


MODULES = _modules()


def _resolve(name: str) -> str | None:
    """The project module an imported dotted name refers to (its longest module prefix), or None."""
    parts = name.split(".")
    for end in range(len(parts), 0, -1):
        if ".".join(parts[:end]) in MODULES:
            return ".".join(parts[:end])
    return None


def _imports(module: str) -> set[str]:
    """Project modules that ``module`` imports anywhere in its source."""
    path = MODULES[module]
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            names = [f"{base}.{a.name}" for a in node.names]  # `from pkg import submodule` or a name in pkg
        else:
            continue
        found |= {m for m in map(_resolve, names) if m is not None and m != module}
    return found


GRAPH = {m: _imports(m) for m in MODULES}


def test_the_graph_sees_deferred_imports():
    """The static reader finds imports inside functions, or the checks below would prove nothing."""
    assert "triggers.judges.nli" in GRAPH["triggers.equivalence"]  # imported inside make_judge
    assert "retrievers.components" in GRAPH["rag.cli.common"]  # imported inside build_pipeline


def test_no_import_points_up_a_layer():
    upward = [f"{a} → {b}" for a, deps in GRAPH.items() for b in deps
              if LAYERS.index(_layer(b)) > LAYERS.index(_layer(a))]
    assert upward == []


def test_no_import_cycles():
    """Tarjan's strongly connected components: any component of more than one module is a cycle."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                cycles.append(sorted(component))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    assert cycles == []


def _loaded_after_importing(modules: list[str]) -> set[str]:
    """The layers present in ``sys.modules`` after a fresh interpreter imports ``modules``."""
    code = (
        "import importlib, json, sys\n"
        f"for m in {modules!r}: importlib.import_module(m)\n"
        f"print(json.dumps(sorted(n for n in sys.modules if n.split('.')[0] in {list(LAYERS)!r})))\n"
    )
    env = {"PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return {_layer(m) for m in json.loads(done.stdout.strip().splitlines()[-1])}


@pytest.mark.parametrize("layer", LAYERS)
def test_a_layer_loads_nothing_above_it(layer):
    members = [m for m in MODULES if _layer(m) == layer and not m.endswith("__main__")]
    loaded = _loaded_after_importing(members)
    assert {x for x in loaded if LAYERS.index(x) > LAYERS.index(layer)} == set()


def test_cli_help_stays_light():
    """`arag --help` builds every subcommand's parser, so listing the retriever kinds must not load
    their libraries (or the model stack)."""
    code = (
        "import json, sys\n"
        "from rag.cli import build_parser\n"
        "build_parser().format_help()\n"
        "print(json.dumps(sorted({n.split('.')[0] for n in sys.modules} & {'torch', 'transformers', 'faiss', 'bm25s', 'benchmarks', 'sentence_transformers'})))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout) == []


def test_no_file_is_too_long():
    long = {str(p.relative_to(ROOT)): n for p in MODULES.values()
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, long
