"""A command whose extra is missing says so in one line on stderr and exits 2 (no traceback).

The full test venv has every extra, so a missing one is simulated: ``sys.modules[name] = None`` makes
``import name`` fail exactly as if the package were not installed. All cases run in one fresh
interpreter (the model never loads: each check fires before it), one `arag` call per case.
`.ci/core_smoke.sh` checks the same on a real core-only install.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

# (blocked modules, arag arguments, the extra the message must name)
CASES = {
    "serve": (["fastapi"], ["serve"], "server"),
    "serve-uvicorn": (["uvicorn"], ["serve"], "server"),
    "faiss": (["faiss"], ["ask", "q", "--retriever", "faiss"], "dense"),
    "hybrid": (["sentence_transformers"], ["ask", "q", "--retriever", "hybrid"], "dense"),
    "index-faiss": (["faiss"], ["index", "build", "corpus", "--retriever", "faiss", "--out", "unused"], "dense"),
    "elasticsearch": (["elasticsearch"], ["ask", "q", "--retriever", "elasticsearch"], "elasticsearch"),
    "quco": (["infini_gram"], ["ask", "q", "--trigger", "quco"], "quco"),
    "entity-frequency": (["infini_gram"], ["ask", "q", "--trigger", "token-confidence+entity-frequency"], "quco"),
    "corpus-index": (["infini_gram"], ["corpus", "index", "x.jsonl", "--out", "unused"], "quco"),
    "openai": (["openai"], ["ask", "q", "--model", "openai:http://127.0.0.1:9/v1/m", "--trigger", "never"], "openai"),
    "learn": (["sklearn"], ["calibrate", "--questions", "q.jsonl", "--learn", "--signals", "msp"], "learn"),
}

SCRIPT = r"""
import contextlib, io, json, sys
from rag.cli import main
cases = json.loads(sys.argv[1])
out = {}
for name, (blocked, argv, _) in cases.items():
    saved = {m: sys.modules.get(m) for m in blocked}
    for m in blocked:
        sys.modules[m] = None
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err):
            rc = main(argv)
    except SystemExit as exc:  # an argparse error would land here
        rc = exc.code
    except BaseException as exc:
        rc, err = "raised", io.StringIO(f"{type(exc).__name__}: {exc}")
    finally:
        for m, mod in saved.items():
            if mod is None:
                sys.modules.pop(m, None)
            else:
                sys.modules[m] = mod
    out[name] = [rc, err.getvalue()]
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    cwd = tmp_path_factory.mktemp("extras")
    env = {"PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PATH": "/usr/bin:/bin",
           "HOME": str(cwd), "ARAG_CACHE_DIR": str(cwd / "cache")}
    done = subprocess.run([sys.executable, "-c", SCRIPT, json.dumps(CASES)], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("case", sorted(CASES))
def test_missing_extra_is_one_line_and_exit_2(results, case):
    rc, err = results[case]
    extra = CASES[case][2]
    assert rc == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    assert err.startswith("arag: error: ") and err.rstrip().endswith(f"needs the {extra} extra: pip install 'adaptive-rag[{extra}]'"), err


def test_serve_message_names_the_command(results):
    assert results["serve"][1] == "arag: error: arag serve needs the server extra: pip install 'adaptive-rag[server]'\n"


def test_require_reraises_a_broken_install(monkeypatch):
    """Only a missing package becomes `MissingExtra`; an import error inside an installed one is a bug to see."""
    from corpora.extras import MissingExtra, require

    monkeypatch.setitem(sys.modules, "fastapi", None)
    with pytest.raises(MissingExtra):
        require("server", "x")
    broken = ModuleNotFoundError("No module named 'somedep'", name="somedep")

    def fail(name):
        raise broken

    monkeypatch.setattr("importlib.import_module", fail)
    with pytest.raises(ModuleNotFoundError):
        require("server", "x")


def test_plots_are_skipped_with_a_note(monkeypatch, tmp_path, capsys):
    import benchmarks.plots as plots

    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setattr(plots, "_noted", False)
    assert plots.plot({"questions": 1}, tmp_path) == []
    assert plots.plot_gain_heatmap({"triggers": ["msp"], "datasets": [], "sets": {}}, tmp_path) is None
    err = capsys.readouterr().err
    assert err == "arag: note: no plots in the report (matplotlib is missing: pip install 'adaptive-rag[plots]')\n"
    assert list(tmp_path.iterdir()) == []


def test_llamaindex_module_says_which_extra():
    code = "import sys; sys.modules['llama_index'] = None\nimport rag.apps.llamaindex"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "corpora.extras.MissingExtra: rag.apps.llamaindex (the LlamaIndex integration) needs the llamaindex extra: "
        "pip install 'adaptive-rag[llamaindex]'")


@pytest.mark.parametrize("blocked, call", [
    ("sentence_transformers", lambda: __import__("retrievers.embeddings", fromlist=["Encoder"]).Encoder("any")),
    ("infini_gram", lambda: __import__("corpora.statistics", fromlist=["CorpusStatistics"]).CorpusStatistics.open("nowhere")),
    ("infini_gram", lambda: __import__("corpora.infinigram_index", fromlist=["build_index"]).build_index([], "nowhere", None)),
])
def test_library_entry_points_name_their_extra(monkeypatch, blocked, call):
    """The embedding model (dense retrievers, the embedding judge) and the infini-gram index, below the CLI."""
    from corpora.extras import MissingExtra

    monkeypatch.setitem(sys.modules, blocked, None)
    monkeypatch.delitem(sys.modules, f"{blocked}.engine", raising=False)
    with pytest.raises(MissingExtra, match=r"needs the (dense|quco) extra: pip install 'adaptive-rag\[(dense|quco)\]'"):
        call()
