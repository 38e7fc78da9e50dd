"""Does a learned trigger transfer? Fit it on one set's cached records, test it on every other set.

Issue #12's bar for the learned trigger (`triggers/learned.py`, fitted as `benchmarks/learn.py`
fits it) is measured on sets it was *not* trained on. For each training set with enough "retrieval
helps" positives, this fits the logistic regression on all of that set's questions (C by
cross-validated ROC-AUC, threshold for the budget), then scores every other set of the same
multi-set run (`arag bench --dataset a,b,c --out RUN`) with `benchmarks.learn.evaluate`: adaptive
gain with its bootstrap 95 % interval, next to the best of its single signals *on that test set*
(chosen with hindsight, so the bar is strict). The diagonal is the set's own held-out half
(`benchmarks.learn.learn`: even positions train, odd positions test).

A cell passes when the learned gain's interval lies above 0 and above the best single signal's
point estimate. Nothing runs a model: everything comes from the run folders' ``results.jsonl``.

    .venv/bin/python -m benchmarks.learn_transfer --run docs/benchmarks/evidence \\
        --signals token-confidence,msp,perplexity,mean-entropy,question-length,retrieval-top1,retrieval-gap
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any, Sequence

from benchmarks.bootstrap import resample_weights
from benchmarks.learn import LEARNED, evaluate, fit, labels, learn
from benchmarks.quality import Questions
from benchmarks.report import Scorer, fmt_ci
from benchmarks.runner import BenchError, parse_policies, read_results, read_run_manifest
from corpora.atomic import write_json_atomic, write_text_atomic
from corpora.jsonfloat import encode_floats

MIN_POSITIVES = 4


def cell(held: dict[str, Any]) -> dict[str, Any]:
    """The learned row of an `evaluate` result against the best single signal's point estimate."""
    rows = {r["signal"]: r for r in held["signals"]}
    mine = rows.get(LEARNED, {})
    singles = [r for n, r in rows.items() if n != LEARNED and r.get("gain") is not None]
    best = max(singles, key=lambda r: r["gain"], default=None)
    gain, ci = mine.get("gain"), mine.get("gain_ci")
    passes = None if gain is None or ci is None or best is None else bool(ci[0] > max(0.0, best["gain"]))
    return {"questions": held["questions"], "helps": held["retrieval_helps"], "gain": gain, "gain_ci": ci,
            "roc_auc_helps": mine.get("roc_auc_helps"), "best_single": best["signal"] if best else None,
            "best_single_gain": best["gain"] if best else None, "passes": passes}


def transfer(runs: dict[str, list[dict]], signals: Sequence[str], trigger_options: dict[str, dict], label: str = "helps",
             metric: str = "contains", budget: float | None = None, min_positives: int = MIN_POSITIVES) -> dict[str, Any]:
    """Rows: training sets (those with ≥ ``min_positives`` of each class); columns: every set."""
    table: dict[str, Any] = {"signals": list(signals), "label": label, "metric": metric, "budget": budget,
                             "sets": {}, "rows": {}, "skipped": {}}
    scorer = Scorer()
    for name, recs in runs.items():
        q = Questions(recs, lambda r, text: scorer(r, text)[metric], resample_weights(len(recs), 0))
        table["sets"][name] = {"questions": len(recs), "positives": int(labels(q, label).sum())}
    for train, recs in runs.items():
        positives = table["sets"][train]["positives"]
        if positives < min_positives or len(recs) - positives < min_positives:
            table["skipped"][train] = f"{positives} positive of {len(recs)} questions (needs ≥ {min_positives} of each class)"
            continue
        opts = trigger_options[train]
        row: dict[str, Any] = {}
        try:
            _, own = learn(recs, signals, opts, label, metric, budget)
            row[train] = {**cell(own), "held_out_half": True}
        except BenchError as exc:  # a half with too few positives for cross-validation
            row[train] = {"error": str(exc)}
        model, _ = fit(recs, signals, opts, label, metric, budget)  # on every question of the set
        for test, other in runs.items():
            if test != train:
                row[test] = cell(evaluate(other, model, metric))
        table["rows"][train] = row
    return encode_floats(table)


def render(table: dict[str, Any], command: str) -> str:
    names = list(table["sets"])
    out = ["# Learned trigger across datasets", "", "```", command, "```", "",
           f"Features: {', '.join(table['signals'])}; label *retrieval {table['label']}*; accuracy = {table['metric']}. "
           "Rows: the set the model was fitted on (all its questions); columns: the set it is tested on (diagonal: the "
           "training set's own held-out half). Cell: the learned trigger's adaptive gain [95 % bootstrap interval] / the "
           "best single feature's gain on that test set (hindsight). ✓ = interval above 0 and above that point estimate.", "",
           "| trained on \\ tested on | " + " | ".join(f"{n} ({table['sets'][n]['positives']}/{table['sets'][n]['questions']})"
                                                    for n in names) + " |",
           "|---|" + "---|" * len(names)]
    for train, row in table["rows"].items():
        cells = []
        for test in names:
            c = row.get(test, {})
            if "error" in c:
                cells.append("– (a half has too few positives to fit)")
                continue
            if c.get("gain") is None:
                cells.append("–")
                continue
            mark = " ✓" if c["passes"] else ""
            best = f"{c['best_single_gain']:+.3f}" if c["best_single_gain"] is not None else "–"
            cells.append(f"{fmt_ci(c['gain'], c['gain_ci'], signed=True)} / {best}{mark}")
        out.append(f"| {train} | " + " | ".join(cells) + " |")
    for name, why in table["skipped"].items():
        out.append(f"\nnot trained on {name}: {why}")
    passed = {t for row in table["rows"].values() for t, c in row.items() if c.get("passes") and not c.get("held_out_half")}
    out += ["", f"Test sets where some transferred model passes: {len(passed)} ({', '.join(sorted(passed)) or 'none'})."]
    return "\n".join(out) + "\n"


def load(run: Path) -> tuple[dict[str, list[dict]], dict[str, dict]]:
    """Each set sub-folder of a multi-set run: its records and the trigger options it was run with."""
    if not run.is_dir():
        raise BenchError(f"{run}: not a folder (a multi-set run folder written by `arag bench --dataset a,b,c --out RUN`)")
    runs, options = {}, {}
    for sub in sorted(p for p in run.iterdir() if (p / "results.jsonl").is_file()):
        recs = read_results(sub, check=True)
        if recs:
            runs[sub.name], options[sub.name] = recs, read_run_manifest(sub)["config"].get("trigger_options") or {}
    if not runs:
        raise BenchError(f"{run}: no set sub-folder with results.jsonl (a folder written by `arag bench --dataset a,b,c`)")
    return runs, options


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--run", type=Path, required=True, help="a multi-set run folder (arag bench --dataset a,b,c --out RUN)")
    p.add_argument("--signals", required=True, help="comma-separated cached signals used as features")
    p.add_argument("--sets", default=None, help="only these sub-folders (comma-separated; default: all)")
    p.add_argument("--label", default="helps", choices=("helps", "needed"))
    p.add_argument("--metric", default="contains")
    p.add_argument("--budget", type=float, default=None, help="retrieval-rate cap for the threshold")
    p.add_argument("--min-positives", type=int, default=MIN_POSITIVES, help="train only on sets with this many of each class")
    p.add_argument("--out", type=Path, default=None, help="folder for learn_transfer.json and LEARN_TRANSFER.md")
    args = p.parse_args(argv)
    try:
        runs, options = load(args.run)
        if args.sets:
            wanted = [s.strip() for s in args.sets.split(",") if s.strip()]
            missing = [s for s in wanted if s not in runs]
            if missing:
                raise BenchError(f"no results for {', '.join(missing)} in {args.run} (has {', '.join(runs)})")
            runs = {s: runs[s] for s in wanted}
        table = transfer(runs, parse_policies(args.signals), options, args.label, args.metric, args.budget,
                         args.min_positives)
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    command = "python -m benchmarks.learn_transfer " + " ".join(argv if argv is not None else sys.argv[1:])
    text = render(table, command)
    print(text)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        write_json_atomic(args.out / "learn_transfer.json", {**table, "command": command})
        write_text_atomic(args.out / "LEARN_TRANSFER.md", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
