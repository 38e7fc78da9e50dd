"""The architecture as the import graph: layers point one way and no module imports in a circle.

Layers, lowest first: corpora < retrievers < triggers < rag < benchmarks, and inside `rag` its rooms:
models < the shared vocabulary (config, errors) < loop < the wiring (pipeline, the rest of rag/'s own
modules) < apps (chat, server, LlamaIndex: built on the pipeline) < cli. `benchmarks.cli` is the top:
the benchmark commands join `arag` through entry points, so `rag` (its CLI too) never imports
`benchmarks`. A module may import its own layer and the ones below, never one above. Two checks,
because each sees what the other cannot:
- static: every import statement of every module, including those inside functions and under
  ``TYPE_CHECKING`` (deferred imports are how cycles and upward arrows hide), read with `ast`;
- dynamic: each layer's modules imported in a fresh interpreter, asserting which packages loaded.
"""
from __future__ import annotations

import ast
import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("corpora", "retrievers", "triggers", "rag.models", "rag.base", "rag.loop", "rag", "rag.apps", "rag.cli",
          "benchmarks", "benchmarks.cli")
BASE = ("rag.config", "rag.errors")  # imported by the loop and everything above it
MAX_LINES = 400
MAX_RAG_MODULES = 8  # modules directly in rag/, besides its sub-packages: the tree shows the rooms


def _layer(module: str) -> str:
    if module in BASE:
        return "rag.base"
    top, _, rest = module.partition(".")
    room = f"{top}.{rest.partition('.')[0]}" if rest else top
    return room if room in LAYERS else top


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


def test_every_module_has_a_known_layer():
    assert {m: _layer(m) for m in MODULES if _layer(m) not in LAYERS} == {}
    assert _layer("rag.loop.run") == "rag.loop" and _layer("rag.pipeline") == "rag" and _layer("rag.errors") == "rag.base"


def test_no_import_points_up_a_layer():
    upward = [f"{a} → {b}" for a, deps in GRAPH.items() for b in deps
              if LAYERS.index(_layer(b)) > LAYERS.index(_layer(a))]
    assert upward == []


def test_rag_never_imports_benchmarks():
    """The benchmark commands plug into `arag` from above (entry points): no module of `rag` names them."""
    assert [f"{a} → {b}" for a, deps in GRAPH.items() if a.split(".")[0] == "rag"
            for b in deps if b.split(".")[0] == "benchmarks"] == []


def test_the_loop_calls_one_way():
    """A question's run asks the stepper for prompts and step states and never calls its driver
    (`AdaptiveRAG` or the batch); the stepper knows neither. A protocol standing for the driver
    would hide a callback from the import graph, so the run's collaborator is checked by type too."""
    drivers = {"rag.loop.adaptive", "rag.loop.batch"}
    assert GRAPH["rag.loop.run"].isdisjoint(drivers)
    assert GRAPH["rag.loop.stepper"].isdisjoint(drivers | {"rag.loop.run"})
    from rag.loop.run import QuestionRun

    assert inspect.signature(QuestionRun).parameters["stepper"].annotation == "Stepper"


def test_rag_shows_its_rooms():
    """Few modules directly in rag/: the rest live in the rooms (models, loop, apps, cli)."""
    flat = sorted(p.name for p in (ROOT / "rag").glob("*.py") if p.name != "__init__.py")
    assert len(flat) <= MAX_RAG_MODULES, flat


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
    # `rag` itself, the package, loads with any of its modules; what it imports would show by name
    return {_layer(m) for m in json.loads(done.stdout.strip().splitlines()[-1]) if m != "rag"}


@pytest.mark.parametrize("layer", LAYERS)
def test_a_layer_loads_nothing_above_it(layer):
    """Each layer's modules loaded together (the fresh interpreter sees what importing them really runs)."""
    members = [m for m in MODULES if _layer(m) == layer and not m.endswith("__main__")]
    loaded = _loaded_after_importing(members)
    assert {x for x in loaded if LAYERS.index(x) > LAYERS.index(layer)} == set()


def test_cli_help_stays_light():
    """`arag --help` builds every subcommand's parser, so listing the retriever kinds must not load
    their libraries (or the model stack); of `benchmarks` only its command modules load, to register."""
    code = (
        "import json, sys\n"
        "from rag.cli import build_parser\n"
        "build_parser().format_help()\n"
        "heavy = {n.split('.')[0] for n in sys.modules} & {'torch', 'transformers', 'faiss', 'bm25s', 'sentence_transformers'}\n"
        "bench = {n for n in sys.modules if n.startswith('benchmarks.') and not n.startswith('benchmarks.cli')}\n"
        "print(json.dumps(sorted(heavy | bench)))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert json.loads(done.stdout) == []


def test_no_file_is_too_long():
    long = {str(p.relative_to(ROOT)): n for p in MODULES.values()
            if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES}
    assert not long, long
