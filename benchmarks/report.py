"""From cached records to ``summary.json``, ``summary.csv``, ``REPORT.md`` and two plots.

Everything here is derived from ``results.jsonl`` (no model), so a report can be rebuilt, or a
metric changed, without re-running anything: ``arag bench --report-only --out DIR``.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any, Sequence

from benchmarks.bootstrap import LEVEL, RESAMPLES, SEED, resample_weights
from benchmarks.catches import catches_section, summarize_catches
from benchmarks.costs import COST_KEYS, add
from benchmarks.gate_effect import gate_rows
from benchmarks.metrics import METRICS, score_answer
from benchmarks.multistep import step_rows, step_table
from benchmarks.plots import plot
from benchmarks.policies import FIXED_POLICIES, gate_base, outcome, step_scores, sweep_cuts, sweepable
from benchmarks.quality import MIN_EVENTS, Questions, curves, policy_rows, signal_columns, signal_rows, strip_private
from corpora.atomic import write_json_atomic, write_text_atomic
from corpora.jsonfloat import encode_floats


class Scorer:
    """Metric values of (question, answer text), computed once: sweeps re-read the same texts."""

    def __init__(self) -> None:
        self.cache: dict[tuple[str, str], dict[str, float]] = {}

    def __call__(self, record: dict[str, Any], text: str) -> dict[str, float]:
        key = (record["id"], text)
        if key not in self.cache:
            self.cache[key] = score_answer(text, record["answers"])
        return self.cache[key]


def aggregate(records: Sequence[dict], policy: str, cut: float | None, scorer: Scorer) -> dict[str, Any]:
    n = len(records)
    outs = [outcome(r, policy, cut) for r in records]
    row: dict[str, Any] = {name: sum(scorer(r, o.text)[name] for r, o in zip(records, outs)) / n for name in METRICS}
    row["retrieval_rate"] = sum(o.retrieved for o in outs) / n
    if gate_base(policy)[1]:  # abstentions count as wrong above; here their share and the accuracy on the rest
        answered = [(r, o) for r, o in zip(records, outs) if not o.abstained]
        row["abstention_rate"] = 1 - len(answered) / n
        for name in METRICS:  # selective accuracy, per metric
            row[f"selective_{name}"] = (sum(scorer(r, o.text)[name] for r, o in answered) / len(answered)
                                        if answered else None)
    total = add(*(o.costs for o in outs))
    row.update({f"{k}_per_q": total[k] / n for k in COST_KEYS})
    row["total_seconds"] = total["seconds"]
    return row


def summarize(records: Sequence[dict], policies: Sequence[str], metric: str = "contains",
              thresholds: dict[str, Any] | None = None, resamples: int = RESAMPLES, seed: int = SEED,
              min_events: int = MIN_EVENTS) -> dict[str, Any]:
    """Every figure of the report, with bootstrap intervals (``resamples`` seeded resamples of questions)."""
    if not records:
        raise ValueError("no results to summarise")
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose from {', '.join(METRICS)}")
    scorer = Scorer()
    thresholds = thresholds or {}
    q = Questions(records, lambda r, text: scorer(r, text)[metric], resample_weights(len(records), resamples, seed), min_events)
    base = [{"policy": p, "threshold": thresholds.get(gate_base(p)[0]), **aggregate(records, p, None, scorer)} for p in policies]
    sweeps = {}
    for p in policies:
        if sweepable(p, records):
            sweeps[p] = [{"cut": c, **aggregate(records, p, c, scorer)} for c in sweep_cuts(step_scores(records, p))]
    columns = signal_columns(records, policies)
    triggers = [p for p in policies if p not in FIXED_POLICIES and not gate_base(p)[1]]
    wall = sum(r["wall_seconds"] for r in records)
    alone = {row["policy"]: row["total_seconds"] for row in base}
    costliest = max(alone, key=alone.get)
    return {
        "questions": len(records), "metric": metric,
        "bootstrap": {"resamples": resamples, "seed": seed, "level": LEVEL, "unit": "question"},
        "references": q.references(), "policies": strip_private(policy_rows(q, policies, base)), "sweeps": sweeps,
        "curves": curves(q, policies, columns), "signals": strip_private(signal_rows(q, columns)),
        "catches": summarize_catches(q, triggers), "steps": step_rows(records, policies),
        "gate": gate_rows(q, policies),
        "performance": {"benchmark_wall_seconds": wall, "policy_seconds": alone, "sum_of_policies_seconds": sum(alone.values()),
                        "costliest_policy": costliest, "ratio_to_costliest": wall / alone[costliest] if alone[costliest] else None},
    }


# -- files ----------------------------------------------------------------------------------------
CI_FIELDS = ("accuracy", "vs_random", "gain", "area_above_random", "roc_auc", "roc_auc_helps")


def _csv_row(row: dict[str, Any]) -> dict[str, Any]:
    """A summary row flattened for the CSV: each interval as ``NAME_lo``/``NAME_hi``, the best-other comparison as ``vs_best_*``."""
    out = dict(row)
    for name in CI_FIELDS:
        ci = row.get(f"{name}_ci")
        out[f"{name}_lo"], out[f"{name}_hi"] = ci if ci else ("", "")
    best = row.get("vs_best")
    if best:
        out["vs_best"] = best.get("policy") or best.get("signal")
        out["vs_best_diff"], (out["vs_best_lo"], out["vs_best_hi"]) = best["diff"], best["diff_ci"] or ("", "")
    return out


def write_summary(summary: dict[str, Any], out_dir: Path) -> None:
    write_json_atomic(out_dir / "summary.json", encode_floats(summary))
    intervals = [f"{n}{s}" for n in CI_FIELDS for s in ("", "_lo", "_hi")]
    fields = ["kind", "policy", "signal", "threshold", "cut", *METRICS, "retrieval_rate", *(f"{k}_per_q" for k in COST_KEYS),
              "random_at_rate", "oracle_at_rate", *intervals, "vs_best", "vs_best_diff", "vs_best_lo", "vs_best_hi",
              "n", "errors", "helps", "prr", "prr_helps"]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
    w.writeheader()
    for row in summary["policies"]:
        w.writerow({**_csv_row(row), "kind": "configured"})
    for policy, points in summary["sweeps"].items():
        for pt in points:
            w.writerow({**encode_floats(pt), "policy": policy, "kind": "sweep"})
    for row in summary["signals"]:
        w.writerow({**_csv_row(row), "kind": "signal"})
    write_text_atomic(out_dir / "summary.csv", buf.getvalue())


def _f(x: Any, digits: int = 3) -> str:
    if x is None or x == "":
        return "–"
    if isinstance(x, float):
        return f"{x:.{digits}g}" if abs(x) < 1000 else f"{x:.0f}"
    return str(x)


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def fmt_ci(value: float | None, ci: list[float] | None, pct: bool = False, signed: bool = False) -> str:
    """``value [lo, hi]``: percentages (percentage points when ``signed``) or numbers; – when undefined."""
    if value is None:
        return "–"
    sign = "+" if signed else ""

    def fmt(v: float) -> str:
        digits = 1 if pct else 3
        return f"{round(100 * v if pct else v, digits) + 0.0:{sign}.{digits}f}"  # + 0.0: no "-0.0"

    unit = (" pp" if signed else " %") if pct else ""
    return f"{fmt(value)}{unit} [{fmt(ci[0])}, {fmt(ci[1])}]" if ci else f"{fmt(value)}{unit}"


def gain_cell(row: dict[str, Any]) -> str:
    """The adaptive gain with its interval, or why there is none (too few events to estimate it)."""
    return row.get("gain_note") or fmt_ci(row.get("gain"), row.get("gain_ci"), signed=True)


def vs_best_cell(row: dict[str, Any], pct: bool) -> str:
    best = row.get("vs_best")
    if not best:
        return "–"
    return f"{fmt_ci(best['diff'], best['diff_ci'], pct, signed=True)} vs {best.get('policy') or best.get('signal')}"


def references_text(summary: dict[str, Any]) -> str:
    ref = summary["references"]
    b = summary["bootstrap"]
    return (f"References on these {ref['questions']} questions: never {fmt_ci(ref['never'], ref['never_ci'], True)}, always "
            f"{fmt_ci(ref['always'], ref['always_ci'], True)}; retrieval is needed (closed-book wrong) on {ref['retrieval_needed']}, "
            f"helps (wrong → right) on {ref['retrieval_helps']} and hurts (right → wrong) on {ref['retrieval_hurts']}. "
            f"*Random* fires on a random fraction of questions (the straight line never → always, area {ref['random_area']:.4f}); "
            f"the *oracle* retrieves exactly where it helps (area {ref['oracle_area']:.4f}). "
            f"[brackets] = {100 * b['level']:.0f} % bootstrap intervals over {b['resamples']} resamples of questions (seed {b['seed']}); "
            "differences are paired (the same resampled questions on both sides).")


def policy_table(summary: dict[str, Any]) -> str:
    m = summary["metric"]
    lines = [f"| policy | threshold | accuracy ({m}) | retrieval rate | random at this rate | oracle at this rate | "
             "Δ vs random | adaptive gain | Δ vs best other | LM calls/q | generated tok/q | s/q |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in summary["policies"]:
        lines.append(f"| {r['policy']} | {_f(r['threshold'])} | {fmt_ci(r['accuracy'], r['accuracy_ci'], True)} | "
                     f"{_pct(r['retrieval_rate'])} | {_pct(r['random_at_rate'])} | {_pct(r['oracle_at_rate'])} | "
                     f"{fmt_ci(r['vs_random'], r['vs_random_ci'], True, signed=True)} | {gain_cell(r)} | "
                     f"{vs_best_cell(r, True)} | {r['lm_calls_per_q']:.2f} | {r['generated_tokens_per_q']:.1f} | {r['seconds_per_q']:.2f} |")
    return "\n".join(lines)


def other_metrics_table(summary: dict[str, Any]) -> str:
    lines = ["| policy | EM | F1 | retriever calls/q | prompt tok/q |", "|---|---|---|---|---|"]
    lines += [f"| {r['policy']} | {_pct(r['em'])} | {_pct(r['f1'])} | {r['retriever_calls_per_q']:.2f} | {r['prompt_tokens_per_q']:.0f} |"
              for r in summary["policies"]]
    return "\n".join(lines)


def signal_table(summary: dict[str, Any]) -> str:
    ref = summary["references"]
    lines = ["| signal | n | needed | helps | ROC-AUC, needed | ROC-AUC, helps | PRR, needed | PRR, helps | adaptive gain | "
             "area above random | Δ gain vs best other |", "|---|---|---|---|---|---|---|---|---|---|---|",
             f"| *random trigger* | {ref['questions']} | {ref['retrieval_needed']} | {ref['retrieval_helps']} | 0.500 | 0.500 | 0 | 0 | 0 | 0 | – |",
             f"| *oracle* | {ref['questions']} | {ref['retrieval_needed']} | {ref['retrieval_helps']} | – | 1.000 | – | – | 1 | "
             f"{ref['oracle_area'] - ref['random_area']:+.4f} | – |"]
    for s in summary["signals"]:
        lines.append(f"| {s['signal']} | {s['n']} | {s['errors']} | {s['helps']} | {fmt_ci(s['roc_auc'], s['roc_auc_ci'])} | "
                     f"{fmt_ci(s['roc_auc_helps'], s['roc_auc_helps_ci'])} | {_f(s['prr'])} | {_f(s['prr_helps'])} | "
                     f"{gain_cell(s)} | {fmt_ci(s['area_above_random'], s['area_above_random_ci'], signed=True)} | {vs_best_cell(s, False)} |")
    return "\n".join(lines)


def gate_table(rows: Sequence[dict[str, Any]], policies: Sequence[dict[str, Any]], questions: int, metric: str) -> str:
    by = {r["policy"]: r for r in policies}
    lines = ["| policy | accuracy | vs ungated | saved (of them: retrieval hurt) | lost (of them: retrieval helped) | "
             "retrieval used | abstained | selective accuracy |", "|---|---|---|---|---|---|---|---|"]
    for g in rows:
        p = by[g["policy"]]
        sel = p.get(f"selective_{metric}")
        lines.append(f"| {g['policy']} | {_pct(p['accuracy'])} | {fmt_ci(g['vs_ungated'], g['vs_ungated_ci'], True, signed=True)} | "
                     f"{g['saved']} ({g['saved_hurts']}) | {g['lost']} ({g['lost_helps']}) | {_pct(p['retrieval_rate'])} | "
                     f"{g['abstained']}/{questions} | {_pct(sel) if sel is not None else '–'} |")
    return "\n".join(lines)


def render_report(summary: dict[str, Any], run: dict[str, Any], out_dir: Path, plots: Sequence[str]) -> str:
    cfg = run.get("config", {})
    perf = summary["performance"]
    out = [f"# Benchmark: {cfg.get('dataset')} — {summary['questions']} questions", ""]
    if run.get("command"):
        out += ["```", run["command"], "```", ""]
    corpus = ", ".join(f"`{Path(src).name}`" for src in cfg["sources"]) if cfg.get("sources") else f"the `{cfg.get('corpus')}`"
    out += [f"Model `{run.get('model_name') or cfg.get('model')}`, retriever `{cfg.get('retriever')}` over {corpus} corpus, "
            f"k={cfg.get('k')}, max_steps={cfg.get('max_steps')}. Accuracy = {summary['metric']} "
            "(SQuAD-normalised; `contains` = a reference answer occurs in the answer on word boundaries). "
            "Costs are per question, each policy charged what it would cost run alone.", "",
            "## Policies", "", references_text(summary), "", policy_table(summary), "",
            "*Δ vs random*: accuracy minus random triggering's at the same retrieval rate. *Adaptive gain* (threshold "
            "triggers): (area under the trigger's accuracy-vs-retrieval curve over all its thresholds − random's) / "
            "(oracle's − random's); 1 = oracle, 0 = random, < 0 = worse than random (`benchmarks/gain.py`). "
            f"*Too few events (n)*: retrieval changes fewer than {MIN_EVENTS} answers here, so no gain is reported "
            "(the oracle is one or two questions, and a percentile bootstrap over so few events collapses to a point).", "",
            other_metrics_table(summary), ""]
    if summary.get("gate"):
        out += ["## Relevance gate", "",
                f"`NAME@gate` makes NAME's decisions, but keeps only the retrieved passages whose relevance to the "
                f"question (MiniLM cosine) reaches the gate's threshold, {summary['gate'][0]['threshold']:.4g} here; with none left the closed-book draft stands (or the run "
                "abstains, which counts as wrong). *Saved*: NAME wrong, gated right; *lost*: NAME right, gated wrong.", "",
                gate_table(summary["gate"], summary["policies"], summary["questions"], summary["metric"]), ""]
    if summary.get("steps"):
        out += ["## Steps (multi-step answers)", "",
                "Per policy: steps per answer, answers longer than one step, where the trigger fired (*step ≥ 2*: "
                "mid-answer, FLARE's case; a fired step retrieves while the retrieval budget lasts), the question "
                "check (QuCo) before the first step, step scores stored as \"inf\"/\"-inf\" (an empty draft) and why "
                "each answer ended.", "", step_table(summary["steps"], summary["questions"]), ""]
    if plots:
        out += ["## Accuracy against retrieval rate and cost", "", f"![accuracy vs retrieval]({plots[0]})", "",
                "Each curve sweeps one trigger's threshold over every observed score (derived from the cached "
                "closed-book and retrieval-augmented answers, no re-run), from never (rate 0) to always (rate 1); "
                "★ marks the configured threshold, the dashed line is random triggering, the dotted curve the oracle.", "",
                f"![accuracy vs cost]({plots[1]})", ""]
    out += ["## Signal quality", "",
            "Each cached score as a trigger that answers with `always`'s answer when it fires. Labels: *needed* = the "
            "closed-book answer is wrong, *helps* = it is wrong and the retrieval-augmented answer is right.", "",
            signal_table(summary)]
    if len(plots) > 2:
        out += ["", f"![signal ROC-AUC]({plots[2]})"]
    out += ["", *catches_section(summary["catches"])]
    ratio = perf["ratio_to_costliest"]
    out += ["", "## Cost of the benchmark itself", "",
            f"- Whole benchmark (every policy, every sweep point), question processing: {perf['benchmark_wall_seconds']:.1f} s",
            f"- Sum of running each policy separately: {perf['sum_of_policies_seconds']:.1f} s",
            f"- Costliest single policy ({perf['costliest_policy']}): {perf['policy_seconds'][perf['costliest_policy']]:.1f} s",
            f"- Ratio whole benchmark / costliest policy: {_f(ratio)} " +
            ("(multi-step: every policy runs for real, so the benchmark costs the sum of its policies)"
             if summary.get("steps") else "(target ≤ 1.3)")]
    if run.get("setup_seconds") is not None:
        out.append(f"- Setup (model load, index build), last session: {run['setup_seconds']:.1f} s")
    for study in sorted(out_dir.glob("study_*.md")):
        out += ["", study.read_text(encoding="utf-8").strip()]
    return "\n".join(out) + "\n"


def write_report(records: Sequence[dict], policies: Sequence[str], out_dir: Path, metric: str = "contains",
                 thresholds: dict[str, Any] | None = None, resamples: int = RESAMPLES) -> dict[str, Any]:
    summary = summarize(records, policies, metric, thresholds, resamples)
    write_summary(summary, out_dir)
    plots = plot(summary, out_dir)
    run_path = out_dir / "run.json"
    run = json.loads(run_path.read_text(encoding="utf-8")) if run_path.exists() else {}
    write_text_atomic(out_dir / "REPORT.md", render_report(summary, run, out_dir, plots))
    return summary
