"""Trigger plugins: the example package (examples/plugin-trigger) installed with pip into a folder on
the path, used from the CLI, a config file, a server request and `arag bench` like a built-in; and
broken plugins (an import error, a clashing name, not a trigger) as one line each, the built-ins
unaffected."""
from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from conftest import arag_here

ROOT = Path(__file__).resolve().parents[1]
NAME = "asks-for-number"
# entry points of three broken plugins, installed as a bare dist-info folder (what pip writes)
BROKEN = {"broken-import": "no_such_module_for_arag:Trigger", "token-confidence": "arag_number_trigger:AsksForNumber",
          "not-a-trigger": "json:dumps"}


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """The example plugin installed (pip, no dependencies) into a folder, plus the broken plugins; on
    this process's path for the module's in-process tests."""
    root = tmp_path_factory.mktemp("plugins")
    source = shutil.copytree(ROOT / "examples" / "plugin-trigger", root / "src")  # pip builds in the source folder
    target = root / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target",
                    str(target), str(source)], check=True, capture_output=True, timeout=300)
    broken = target / "arag_broken_plugins-0.1.dist-info"
    broken.mkdir()
    (broken / "METADATA").write_text("Metadata-Version: 2.1\nName: arag-broken-plugins\nVersion: 0.1\n")
    (broken / "entry_points.txt").write_text("[adaptive_rag.triggers]\n" + "".join(f"{k} = {v}\n" for k, v in BROKEN.items()))
    sys.path.insert(0, str(target))
    yield target
    sys.path.remove(str(target))


def _arag(site: Path, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{ROOT}", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-m", "rag.cli", *args], cwd=cwd or ROOT, env=env, capture_output=True,
                          text=True, timeout=600)


def test_arag_triggers_lists_the_plugin_and_one_line_per_broken_one(site):
    done = _arag(site, "triggers")
    assert done.returncode == 0, done.stderr
    row = next(line for line in done.stdout.splitlines() if f" {NAME} " in line)
    assert "free" in row and "threshold, cues" in row
    assert "token-confidence" in done.stdout  # the built-ins are listed, a plugin clashing with one is a warning
    warnings = done.stderr.strip().splitlines()
    assert len(warnings) == 3 and all(w.startswith("arag: warning: trigger plugin ") for w in warnings)
    assert any("'token-confidence'" in w and "clashes with the built-in trigger" in w for w in warnings)
    shown = _arag(site, "triggers", "show", NAME)
    assert shown.returncode == 0 and "cues" in shown.stdout and "between 0.0 and 1.0" in shown.stdout


@pytest.mark.parametrize("name,problem", [("broken-import", "cannot import it (ModuleNotFoundError"),
                                          ("token-confidence", None),  # the built-in wins (the clash: a warning when listed)
                                          ("not-a-trigger", "is neither a TriggerSpec nor a Trigger class")])
def test_a_broken_plugin_is_one_line_and_exit_2(site, name, problem):
    from triggers.registry import get_spec

    if problem is None:
        assert get_spec(name).name == name and get_spec(name).cost == "free"
        from triggers.plugins import plugin_spec

        with pytest.raises(Exception, match="clashes with the built-in trigger 'token-confidence'"):
            plugin_spec(name, frozenset({name}))
        return
    done = arag_here("ask", "q?", "--trigger", f"never+{name}")  # fails before a model loads: in this process
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and f"trigger plugin {name!r}" in done.stderr and problem in done.stderr


def test_plugin_settings_are_checked_like_a_built_ins(site, tmp_path):
    done = arag_here("ask", "q?", "--trigger", NAME, "--trigger-option", "colour=red")
    assert done.returncode == 2 and f"{NAME} has no setting 'colour' ({NAME} takes: threshold, cues)" in done.stderr
    done = arag_here("ask", "q?", "--trigger", NAME, "--trigger-option", "threshold=high")
    assert done.returncode == 2 and "threshold must be a finite number, got 'high'" in done.stderr
    cfg = tmp_path / "arag.toml"
    cfg.write_text(f"[triggers.{NAME}]\ncuez = 'what time'\n")
    done = arag_here("ask", "q?", "--trigger", NAME, "--config", str(cfg))
    assert done.returncode == 2 and f"{cfg}: [triggers.{NAME}] cuez: unknown key (did you mean 'cues'?" in done.stderr


def test_a_plugin_is_a_cascade_member_and_a_learned_feature(site, tmp_path):
    """Everything that builds triggers by name builds a plugin: a cascade's cheap member and a learned
    model's feature, scored on real step states."""
    from triggers import StepState
    from triggers.registry import build_trigger

    cascade = build_trigger(f"cascade:{NAME},question-length", band_lo=1.5, band_hi=2.0)
    asks, other = StepState("How many moons does Mars have?"), StepState("Who wrote Hamlet?")
    assert cascade.score(asks).details["decided_by"] == NAME  # its 1.0 is outside the band: the plugin decides
    model = {"format": "arag-learned-trigger/1", "label": "helps", "intercept": -1.0, "threshold": 0.5,
             "features": [{"signal": NAME, "settings": {"cues": "what percentage"}, "mean": 0.0, "scale": 1.0,
                           "coefficient": 4.0, "train_min": 0.0, "train_max": 1.0}]}
    path = tmp_path / "learned.json"
    path.write_text(json.dumps(model))
    learned = build_trigger(f"learned:{path}")
    assert learned.members[NAME].cues == "what percentage"  # the feature's settings reach the plugin
    assert learned.score(asks).fired and not learned.score(other).fired
    assert learned.score(StepState("What percentage of Earth is water?")).fired


def test_a_class_path_builds_without_installing(site):
    from triggers import StepState
    from triggers.registry import build_trigger

    trig = build_trigger("arag_number_trigger:AsksForNumber+never", cues="what percentage")
    assert trig.score(StepState("What percentage of Earth is water?")).fired
    assert not trig.score(StepState("Who wrote Hamlet?")).fired


@pytest.mark.slow
def test_plugin_from_the_cli_with_a_config_table(site, tmp_path, default_lm):
    """`arag ask --trigger PLUGIN` with its config table; the broken plugins beside it change nothing (in this
    process, on the session's model; a fresh process finds the plugins in the listing test)."""
    cfg = tmp_path / "arag.toml"
    cfg.write_text(f"[triggers.{NAME}]\ncues = 'which planet'\n")
    done = arag_here("ask", "Which planet is known as the Red Planet?", "--trigger", NAME, "--config", str(cfg),
                     "--max-steps", "1", "--json", default_lm=default_lm)
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["retrieved"] and out["steps"][0]["signal"]["details"]["cue"] == "which planet"


@pytest.mark.slow
def test_plugin_in_a_server_request(site, default_lm, demo_docs):
    from rag.loop import LoopConfig
    from rag.pipeline import Pipeline
    from rag.apps.server import ServerThread, create_app
    from retrievers import build_retriever
    from triggers import Never

    pipe = Pipeline(lm=default_lm, retriever=build_retriever("bm25", demo_docs, progress=False), trigger=Never(),
                    config=LoopConfig(max_steps=1, step_tokens=16))
    with ServerThread(create_app(pipe)) as srv:
        def ask(options: dict, trigger: str = NAME) -> httpx.Response:
            body = {"messages": [{"role": "user", "content": "Which planet is known as the Red Planet?"}],
                    "arag": {"trigger": trigger, "trigger_options": options}}
            return httpx.post(srv.base_url + "/chat/completions", json=body, timeout=600)

        r = ask({"cues": "which planet"})
        assert r.status_code == 200, r.text
        assert r.json()["arag"]["fired"] is True
        r = ask({"cuez": "which planet"})
        assert r.status_code == 400 and r.json()["error"]["param"] == "arag.trigger_options"
        assert f"{NAME} has no setting 'cuez'" in r.json()["error"]["message"]
        r = ask({}, "never+arag_number_trigger:AsksForNumber")  # a client may not make the server import a module
        assert r.status_code == 400 and r.json()["error"]["param"] == "arag.trigger"


@pytest.mark.slow
def test_plugin_and_margin_in_arag_bench(site, default_lm, tmp_path):
    """A plugin in a combination, and the margin built-in (it needs the drafts' top-2 log-probs), as bench policies."""
    from benchmarks.bench import run_benchmark
    from benchmarks.runner import parse_policies
    from corpora.demo import DEMO_CORPUS
    from rag.cli import build_parser
    from benchmarks.cli.bench import bench_config

    qa = tmp_path / "qa.jsonl"
    qa.write_text("".join(json.dumps({"id": f"q{i}", "question": q, "answers": [a]}) + "\n" for i, (q, a) in
                          enumerate([("When did the Berlin Wall fall?", "1989"), ("Who wrote Hamlet?", "Shakespeare")])))
    args = build_parser().parse_args(["bench", "--questions", str(qa), "--corpus", str(DEMO_CORPUS), "--file-order",
                                      "--policies", f"{NAME}+never,margin", "--trigger-option", "cues=wrote"])
    summary = run_benchmark(bench_config(args, parse_policies(args.policies)), tmp_path / "run", None, None,
                            lm=default_lm, progress=False)
    assert {f"{NAME}+never", "margin"} <= set(summary["sweeps"]) | {row["policy"] for row in summary["policies"]}


def test_a_retriever_plugin_is_listed_and_built_over_the_corpus(site, tmp_path):
    """A retriever kind from an entry point: `arag retrievers` lists it, `--retriever NAME` builds it."""
    (site / "arag_test_retriever.py").write_text(
        "from retrievers.build import build_retriever\n"
        "from retrievers.specs import RetrieverSpec\n"
        "SPEC = RetrieverSpec('plain-bm25', 'in-process index', help='BM25, as a plugin',\n"
        "                     build=lambda docs: build_retriever('bm25', docs, progress=False))\n")
    dist = site / "arag_test_retriever-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: arag-test-retriever\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[adaptive_rag.retrievers]\nplain-bm25 = arag_test_retriever:SPEC\n"
                                           "faiss = arag_test_retriever:SPEC\n")
    done = _arag(site, "retrievers")
    assert done.returncode == 0 and "plain-bm25" in done.stdout
    assert "retriever plugin 'faiss' (arag_test_retriever:SPEC): clashes with the retriever 'faiss'" in done.stderr
    from retrievers.components import open_retriever

    corpus = tmp_path / "c.jsonl"
    corpus.write_text(json.dumps({"id": "d0", "title": "Mars", "text": "Mars is the Red Planet."}) + "\n")
    assert open_retriever("plain-bm25", corpus=[str(corpus)]).retrieve("red planet", 1)[0].id == "d0"
    known = "unknown retriever kind 'nope' (use one of bm25, faiss, hybrid, elasticsearch, plain-bm25)"
    done = arag_here("ask", "q?", "--retriever", "nope", "--corpus", str(corpus), "--trigger", "never")
    assert done.returncode == 2 and known in done.stderr
    qa = tmp_path / "qa.jsonl"
    qa.write_text(json.dumps({"id": "q0", "question": "Which planet is red?", "answers": ["Mars"]}) + "\n")
    bench = ["bench", "--questions", str(qa), "--corpus", str(corpus), "--policies", "never", "--out"]
    done = arag_here(*bench, str(tmp_path / "nope"), "--retriever", "nope")  # the kind is checked as the retriever opens
    assert done.returncode == 2 and known in done.stderr
