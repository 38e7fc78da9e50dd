"""The learned trigger (issue 12 part 3): fitted on a real tiny benchmark run with cheap signals, written
as JSON, loaded by name, scoring only its own signals on real step states."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest

from benchmarks.learn import clamp, fit_logistic, finite_ranges, labels, raw_features, to_model
from rag.cli import main
from triggers.registry import build_trigger
from triggers import TriggerConfigError
from triggers.learned import Feature, LearnedTrigger, parse_model, read_model

SIGNALS = ("msp", "perplexity", "mean-entropy", "question-length", "retrieval-top1")
POLICIES = ("never", "always", *SIGNALS)
# Twelve questions in file order, so that the training half (even positions) holds both classes of both
# labels with the default model and BM25 over the demo corpus (the NQ-open gold passages): easy ones it
# answers closed-book (France, gold, …), NQ-open questions where retrieval helps (sword art online,
# only in my dreams) and NQ-open questions it gets wrong either way.
QUESTIONS = [
    ("What is the capital of France?", ["Paris"]),
    ("who challenged the aristotelian model of a geocentric universe", ["Copernicus"]),
    ("when does the sword art online movie take place", ["2026", "the year 2026"]),
    ("How many legs does a spider have?", ["8", "eight"]),
    ("What is the chemical symbol for gold?", ["Au"]),
    ("who played jennifer in back to the future", ["Claudia Grace Wells"]),
    ("who sings the song only in my dreams", ["Debbie Gibson"]),
    ("What is the capital of Japan?", ["Tokyo"]),
    ("who came up with the initial concept of protons and neutrons", ["Dmitri Ivanenko", "Werner Heisenberg"]),
    ("is greenland part of europe or north america", ["North America"]),
    ("when does season 5 of ruby come out", ["October 14, 2017"]),
    ("In which country is the Eiffel Tower?", ["France"]),
]


@pytest.fixture(scope="module")
def cheap_run(tmp_path_factory, default_lm):
    """A real `arag bench` run of the cheap signals on `QUESTIONS` (default model, BM25 over the demo
    corpus), made with the session's model; returns the folder, the data flags the CLI needs to find
    it (then complete: no model loads) and the records."""
    from benchmarks.bench import run_benchmark
    from benchmarks.runner import parse_policies, read_results
    from corpora.demo import DEMO_CORPUS
    from rag.cli import build_parser
    from benchmarks.cli.bench import bench_config

    root = tmp_path_factory.mktemp("learned")
    qa = root / "qa.jsonl"
    qa.write_text("".join(json.dumps({"id": f"q{i}", "question": q, "answers": a}) + "\n" for i, (q, a) in enumerate(QUESTIONS)))
    data = ["--questions", str(qa), "--corpus", str(DEMO_CORPUS), "--file-order"]
    args = build_parser().parse_args(["bench", *data, "--policies", ",".join(POLICIES)])
    out = root / "run"
    run_benchmark(bench_config(args, parse_policies(args.policies)), out, None, None, lm=default_lm, progress=False,
                  batch_size=len(QUESTIONS))  # one batch: as `arag bench` runs by default
    return out, data, read_results(out)


def _bm25(demo_docs):
    from retrievers import build_retriever

    return build_retriever("bm25", demo_docs, progress=False)


def _fitted(records, label="helps"):
    from benchmarks.bootstrap import resample_weights
    from benchmarks.quality import Questions
    from benchmarks.report import Scorer

    scorer = Scorer()
    q = Questions(records, lambda r, t: scorer(r, t)["contains"], resample_weights(len(records), 0))
    x = raw_features(records, SIGNALS)
    ranges = finite_ranges(x, SIGNALS)
    pipe, cv = fit_logistic(clamp(x, ranges), labels(q, label), folds=3)
    return pipe, to_model(pipe, SIGNALS, {s: {} for s in SIGNALS}, ranges, label, threshold=0.3), x, ranges, cv


@pytest.mark.slow
def test_the_files_formula_is_sklearns_predict_proba(cheap_run):
    _, _, records = cheap_run
    pipe, model, x, ranges, cv = _fitted(records[0::2], "helps")
    expected = pipe.predict_proba(clamp(x, ranges))[:, 1]
    got = [model.probability(row) for row in x]
    assert got == pytest.approx(expected.tolist(), abs=1e-9)
    assert cv["chosen_C"] in cv["C_grid"] and len(cv["mean_roc_auc"]) == len(cv["C_grid"])
    again = parse_model(json.loads(json.dumps(model.to_json())))  # JSON round trip
    assert [again.probability(row) for row in x] == pytest.approx(got, abs=1e-12)


def test_non_finite_scores_map_to_the_training_range():
    f = Feature("msp", {}, mean=2.0, scale=1.0, coefficient=1.0, train_min=0.5, train_max=9.0)
    assert (f.finite(math.inf), f.finite(-math.inf), f.finite(math.nan), f.finite(3.0)) == (9.0, 0.5, 2.0, 3.0)
    x = np.array([[math.inf], [-math.inf], [math.nan], [1.0]])
    assert clamp(x, [(0.5, 9.0, 2.0)])[:, 0].tolist() == [9.0, 0.5, 2.0, 1.0]


@pytest.mark.slow
@pytest.mark.parametrize("label", ["helps", "needed"])
def test_calibrate_learn_writes_a_model_that_loads_and_scores_only_its_signals(cheap_run, tmp_path, capsys, default_lm,
                                                                              demo_docs, label):
    out, data, records = cheap_run
    dest = tmp_path / "model.json"
    code = main(["calibrate", "--learn", "--signals", ",".join(SIGNALS), "--label", label, *data,
                 "--budget", "0.5", "--folds", "3", "--out", str(out), "--write-model", str(dest)])
    printed = capsys.readouterr()
    assert code == 0, printed.err
    spec = json.loads(dest.read_text())
    assert [f["signal"] for f in spec["features"]] == list(SIGNALS) and spec["label"] == label
    assert {"mean", "scale", "coefficient", "train_min", "train_max", "settings"} <= spec["features"][0].keys()
    assert spec["train"]["retrieval_rate"] <= 0.5 and spec["budget"] == 0.5
    assert spec["training"]["dataset"] == "qa" and spec["cv"]["folds"] == 2  # 2 positives of "helps", 2 negatives of "needed"
    assert {r["signal"] for r in spec["held_out"]["signals"]} == {"learned", *SIGNALS}
    assert "learned" in printed.out and str(dest) in printed.out

    # loaded by name: only its five signals are built; on a real step they cost no LM call and one search
    from rag.loop import AdaptiveRAG

    trig = build_trigger(f"learned:{dest}", lm=default_lm)
    assert isinstance(trig, LearnedTrigger) and list(trig.members) == list(SIGNALS)
    bm25 = _bm25(demo_docs)
    loop = AdaptiveRAG(default_lm, bm25, trig)
    question = records[0]["question"]
    prompt = loop.step_prompt(question)
    state = loop.step_state(question, "", loop.draft([prompt])[0], 0, prompt, question)
    before = default_lm.usage.snapshot()
    sig = trig.score(state)
    assert default_lm.usage.since(before).calls == 0 and state.retriever_calls == 1
    model = read_model(dest)
    assert sig.score == pytest.approx(model.probability([sig.details["features"][s] for s in SIGNALS]))
    assert sig.fired == (sig.score > model.threshold) and 0 < sig.score < 1
    # the config file's threshold (as `arag calibrate --trigger learned:PATH --write-config` writes it) wins over the file's
    assert build_trigger(f"learned:{dest}", lm=default_lm, per_trigger={f"learned:{dest}": {"threshold": 0.99}}).threshold == 0.99
    if label == "helps":
        _bench_column(dest, model, records, tmp_path, default_lm)


def _bench_column(dest, model, records, tmp_path, default_lm):
    """`arag bench --policies never,always,learned:PATH`: the column computes its own five signals (one
    search, no LM call, charged to it) and scores what the cached features give."""
    from benchmarks.bench import run_benchmark
    from benchmarks.runner import parse_policies, read_results
    from corpora.demo import DEMO_CORPUS
    from rag.cli import build_parser
    from benchmarks.cli.bench import bench_config

    qa = tmp_path / "two.jsonl"
    qa.write_text("".join(json.dumps({"id": r["id"], "question": r["question"], "answers": r["answers"]}) + "\n" for r in records[:2]))
    name = f"learned:{dest}"
    args = build_parser().parse_args(["bench", "--questions", str(qa), "--corpus", str(DEMO_CORPUS), "--file-order",
                                      "--policies", f"never,always,{name}"])
    out = tmp_path / "bench"
    summary = run_benchmark(bench_config(args, parse_policies(args.policies)), out, None, None, lm=default_lm, progress=False)
    for rec, cached in zip(read_results(out), records[:2]):
        sig = rec["signals"][name]
        assert sig["costs"]["lm_calls"] == 0 and sig["costs"]["retriever_calls"] == 1 and sig["searched"]
        features = [cached["signals"][s]["score"] for s in SIGNALS]
        assert sig["score"] == pytest.approx(model.probability([float(x) for x in features]))
    assert name in summary["sweeps"] and any(row["signal"] == name for row in summary["signals"])


@pytest.mark.slow
def test_a_learned_model_over_p_true_makes_exactly_its_one_call(default_lm, tmp_path):
    from rag.loop import AdaptiveRAG

    spec = {"format": "arag-learned-trigger/1", "label": "helps", "intercept": 0.0, "threshold": 0.5,
            "features": [{"signal": "p-true", "settings": {}, "mean": 0.5, "scale": 0.2, "coefficient": 1.0,
                          "train_min": 0.0, "train_max": 1.0}]}
    path = tmp_path / "p.json"
    path.write_text(json.dumps(spec))
    trig = build_trigger(f"learned:{path}", lm=default_lm)
    loop = AdaptiveRAG(default_lm, None, trig)
    prompt = loop.step_prompt("who got the first nobel prize in physics")
    state = loop.step_state("who got the first nobel prize in physics", "", loop.draft([prompt])[0], 0, prompt)
    before = default_lm.usage.snapshot()
    sig = trig.score(state)
    assert default_lm.usage.since(before).calls == 1  # P(True)'s forward pass, nothing else
    p_true_score = sig.details["features"]["p-true"]
    assert sig.score == pytest.approx(1 / (1 + math.exp(-(p_true_score - 0.5) / 0.2)))


@pytest.mark.parametrize("text, message", [
    ("{not json", "invalid JSON (Expecting property name enclosed in double quotes at line 1 column 2)"),
    ('{"format": "other"}', "not a learned-trigger file (format 'other'"),
    ('{"format": "arag-learned-trigger/1", "features": []}', "'features' must be a non-empty list"),
    ('{"format": "arag-learned-trigger/1", "intercept": 0, "threshold": 0.5, "features": [{"signal": "msp", "mean": 0, '
     '"scale": 0, "coefficient": 1, "train_min": 0, "train_max": 1}]}', "features[0].scale must be positive"),
    ('{"format": "arag-learned-trigger/1", "intercept": 0, "threshold": 0.5, "features": [{"signal": "msp", "mean": 0, '
     '"scale": 1, "coefficient": "x", "train_min": 0, "train_max": 1}]}', "features[0].coefficient must be a finite number"),
    ('{"format": "arag-learned-trigger/1", "intercept": 0, "threshold": 0.5, "features": [{"signal": "nope", "mean": 0, '
     '"scale": 1, "coefficient": 1, "train_min": 0, "train_max": 1}]}', "unknown trigger 'nope'"),
])
def test_a_bad_model_file_is_one_line(tmp_path, text, message):
    path = tmp_path / "m.json"
    path.write_text(text)
    with pytest.raises(TriggerConfigError) as err:
        build_trigger(f"learned:{path}")
    assert message in str(err.value) and "\n" not in str(err.value)


def test_the_cli_reports_a_bad_model_file_in_one_line(tmp_path, capsys):
    path = tmp_path / "m.json"
    path.write_text("[1, 2]")
    assert main(["ask", "who?", "--trigger", f"learned:{path}"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and f"{path}: not a learned-trigger file" in err and "Traceback" not in err
    assert main(["ask", "who?", "--trigger", f"learned:{tmp_path / 'missing.json'}"]) == 2
    assert "learned-trigger file not found" in capsys.readouterr().err


@pytest.mark.slow
def test_calibrate_picks_a_cascade_band_on_an_existing_run(cheap_run, tmp_path, capsys):
    """`arag calibrate --trigger cascade:CHEAP,COSTLY` on the run above (it holds both members among more
    policies: reused, no model loads); the band goes to the config file, where the registry finds it."""
    from rag.config import load_config

    out, data, _ = cheap_run
    name = "cascade:question-length,retrieval-top1"
    cfg = tmp_path / "arag.toml"
    assert main(["calibrate", "--trigger", name, *data, "--out", str(out), "--write-config", str(cfg)]) == 0, capsys.readouterr().err
    printed = capsys.readouterr().out
    result = json.loads((out / "calibration-cascade_question-length_retrieval-top1.json").read_text())
    band = result["setting"]
    assert result["calibration"]["costly_share"] <= 0.5 and band["band_lo"] <= band["band_hi"]
    assert {r["signal"] for r in result["held_out"]["signals"]} == {name, "question-length", "retrieval-top1"}
    assert "COSTLY computed for" in printed
    trig = build_trigger(name, per_trigger=load_config(str(cfg))["triggers"])
    assert (trig.band_lo, trig.band_hi) == (band["band_lo"], band["band_hi"])


@pytest.mark.slow
def test_the_server_takes_learned_only_from_its_own_command_line(default_lm, tmp_path):
    """A request's ``arag.trigger`` must not make the server open a file by path; the trigger the server
    was started with stays usable by name."""
    from rag.loop import LoopConfig
    from rag.pipeline import Pipeline
    from rag.apps.server.errors import APIError
    from rag.apps.server.service import ChatService

    spec = {"format": "arag-learned-trigger/1", "label": "helps", "intercept": 0.0, "threshold": 0.5,
            "features": [{"signal": "msp", "settings": {}, "mean": 5.0, "scale": 2.0, "coefficient": 1.0,
                          "train_min": 0.0, "train_max": 30.0}]}
    path = tmp_path / "m.json"
    path.write_text(json.dumps(spec))
    own = build_trigger(f"learned:{path}")
    service = ChatService(Pipeline(lm=default_lm, retriever=None, trigger=own, config=LoopConfig()))
    assert service.trigger(f"learned:{path}") is own
    with pytest.raises(APIError) as err:
        service.trigger(f"learned:{tmp_path / 'other.json'}")
    assert err.value.status == 400 and err.value.param == "arag.trigger"
    service.executor.shutdown()


@pytest.mark.slow
def test_the_transfer_table_fits_on_one_set_and_tests_on_the_others(cheap_run, tmp_path, capsys):
    """`benchmarks.learn_transfer` over a two-set run folder: a row per set it could train on, each
    off-diagonal cell the model fitted on all of the row's set evaluated on the column's set, and a
    pass mark only where the interval clears both 0 and the best single signal."""
    import shutil

    from benchmarks import learn_transfer
    from benchmarks.learn import evaluate, fit

    out, _, records = cheap_run
    multi = tmp_path / "multi"
    for name in ("a", "b"):
        shutil.copytree(out, multi / name)
    dest = tmp_path / "table"
    signals = ",".join(SIGNALS)
    assert learn_transfer.main(["--run", str(multi), "--signals", signals, "--min-positives", "2", "--out", str(dest)]) == 0
    printed = capsys.readouterr().out
    table = json.loads((dest / "learn_transfer.json").read_text())
    assert (dest / "LEARN_TRANSFER.md").read_text() in printed + "\n"
    assert set(table["rows"]) == {"a", "b"} and table["sets"]["a"]["positives"] >= 2
    model, _ = fit(records, SIGNALS, {}, "helps", "contains", None)
    expected = learn_transfer.cell(evaluate(records, model))
    got = table["rows"]["a"]["b"]
    assert got["gain"] == pytest.approx(expected["gain"]) and got["best_single"] == expected["best_single"]
    assert got["passes"] == (got["gain_ci"][0] > max(0.0, got["best_single_gain"]))
    assert "trained on \\ tested on" in printed

    empty = tmp_path / "empty"
    empty.mkdir()
    assert learn_transfer.main(["--run", str(empty), "--signals", signals]) == 2
    assert "no set sub-folder" in capsys.readouterr().err
    assert learn_transfer.main(["--run", str(tmp_path / "missing"), "--signals", signals]) == 2
    assert "not a folder" in capsys.readouterr().err
    assert learn_transfer.main(["--run", str(multi), "--signals", signals, "--sets", "a,zzz"]) == 2
    assert "no results for zzz" in capsys.readouterr().err
    skipped = learn_transfer.transfer(learn_transfer.load(multi)[0], SIGNALS, {"a": {}, "b": {}}, min_positives=len(records))
    assert not skipped["rows"] and set(skipped["skipped"]) == {"a", "b"}
