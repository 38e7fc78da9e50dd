"""From cached records to ``summary.json``, ``summary.csv``, ``REPORT.md`` and two plots.

Everything here is derived from ``results.jsonl`` (no model), so a report can be rebuilt, or a
metric changed, without re-running anything: ``arag bench --report-only --out DIR``.
"""
from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any, Sequence

from benchmarks.costs import COST_KEYS, add
from benchmarks.metrics import METRICS, prr, roc_auc, score_answer
from benchmarks.policies import FIXED_POLICIES, outcome, step_scores, sweep_cuts, sweepable
from corpora.atomic import write_json_atomic, write_text_atomic


class _Scorer:
    """Metric values of (question, answer text), computed once: sweeps re-read the same texts."""

    def __init__(self) -> None:
        self.cache: dict[tuple[str, str], dict[str, float]] = {}

    def __call__(self, record: dict[str, Any], text: str) -> dict[str, float]:
        key = (record["id"], text)
        if key not in self.cache:
            self.cache[key] = score_answer(text, record["answers"])
        return self.cache[key]


def _closed_text(record: dict[str, Any]) -> str:
    return record["live"]["never"]["text"] if "live" in record else record["closed_book"]["text"]


def _aggregate(records: Sequence[dict], policy: str, cut: float | None, scorer: _Scorer) -> dict[str, Any]:
    n = len(records)
    outs = [outcome(r, policy, cut) for r in records]
    row: dict[str, Any] = {name: sum(scorer(r, o.text)[name] for r, o in zip(records, outs)) / n for name in METRICS}
    row["retrieval_rate"] = sum(o.retrieved for o in outs) / n
    total = add(*(o.costs for o in outs))
    row.update({f"{k}_per_q": total[k] / n for k in COST_KEYS})
    row["total_seconds"] = total["seconds"]
    return row


def _signals(records: Sequence[dict], policies: Sequence[str], scorer: _Scorer, metric: str) -> list[dict[str, Any]]:
    """ROC-AUC / PRR of each score against closed-book correctness (error = metric 0)."""
    quality = [scorer(r, _closed_text(r))[metric] for r in records]
    columns: dict[str, list[float | None]] = {}
    live = "live" in records[0]
    for p in policies:
        if p in FIXED_POLICIES:
            continue
        if live:
            columns[p] = [(r["live"][p]["first_step"] or {}).get("score") for r in records]
        else:
            columns[p] = [float(r["signals"][p]["score"]) for r in records]
            if any(p in r.get("pre", {}) for r in records):
                columns[f"{p} (question check)"] = [float(r["pre"][p]["signal"]["score"]) if p in r.get("pre", {}) else None
                                                    for r in records]
    if not live:
        for name in records[0].get("extra_signals", {}):
            values = [float(r["extra_signals"][name]) for r in records]
            if values not in columns.values():  # e.g. the token-confidence policy's own aggregation
                columns[name] = values
    rows = []
    for name, scores in columns.items():
        pairs = [(s, q) for s, q in zip(scores, quality) if s is not None]
        # infinite scores (an empty draft) are the most uncertain; clip them for the rank statistics
        finite = [s for s, _ in pairs if math.isfinite(s)]
        hi, lo = (max(finite) + 1, min(finite) - 1) if finite else (1.0, -1.0)
        ss = [min(max(s, lo), hi) for s, _ in pairs]
        qs = [q for _, q in pairs]
        rows.append({"signal": name, "n": len(pairs), "errors": sum(1 for q in qs if q == 0),
                     "roc_auc": roc_auc(ss, [q == 0 for q in qs]) if pairs else None,
                     "prr": prr(ss, qs) if pairs else None})
    return rows


def _catches(records: Sequence[dict], triggers: Sequence[str], scorer: _Scorer, metric: str) -> tuple[list, dict]:
    """Questions where exactly one trigger fired and its retrieval fixed a wrong closed-book answer."""
    unique, fixed_counts = [], {t: {"fixes": 0, "unique_fixes": 0} for t in triggers}
    for r in records:
        closed_ok = scorer(r, _closed_text(r))[metric] > 0
        outs = {t: outcome(r, t) for t in triggers}
        fired = [t for t, o in outs.items() if o.fired]
        for t in fired:
            if not closed_ok and scorer(r, outs[t].text)[metric] > 0:
                fixed_counts[t]["fixes"] += 1
                if len(fired) == 1:
                    fixed_counts[t]["unique_fixes"] += 1
                    unique.append({"trigger": t, "id": r["id"], "question": r["question"], "answers": r["answers"],
                                   "closed_book": _closed_text(r), "answer": outs[t].text})
    return unique, fixed_counts


def summarize(records: Sequence[dict], policies: Sequence[str], metric: str = "contains",
              thresholds: dict[str, Any] | None = None) -> dict[str, Any]:
    if not records:
        raise ValueError("no results to summarise")
    if metric not in METRICS:
        raise ValueError(f"unknown metric {metric!r}; choose from {', '.join(METRICS)}")
    scorer = _Scorer()
    thresholds = thresholds or {}
    rows = [{"policy": p, "threshold": thresholds.get(p), **_aggregate(records, p, None, scorer)} for p in policies]
    sweeps = {}
    for p in policies:
        if sweepable(p, records):
            sweeps[p] = [{"cut": c, **_aggregate(records, p, c, scorer)} for c in sweep_cuts(step_scores(records, p))]
    triggers = [p for p in policies if p not in FIXED_POLICIES]
    unique, fix_counts = _catches(records, triggers, scorer, metric)
    wall = sum(r["wall_seconds"] for r in records)
    alone = {row["policy"]: row["total_seconds"] for row in rows}
    costliest = max(alone, key=alone.get)
    return {
        "questions": len(records), "metric": metric, "policies": rows, "sweeps": sweeps,
        "signals": _signals(records, policies, scorer, metric), "catches": {"unique": unique, "counts": fix_counts},
        "performance": {"benchmark_wall_seconds": wall, "policy_seconds": alone, "sum_of_policies_seconds": sum(alone.values()),
                        "costliest_policy": costliest, "ratio_to_costliest": wall / alone[costliest] if alone[costliest] else None},
    }


# -- files ----------------------------------------------------------------------------------------
def _clean(obj: Any) -> Any:
    """JSON without NaN/Infinity (strict parsers reject them)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    return obj


def write_summary(summary: dict[str, Any], out_dir: Path) -> None:
    write_json_atomic(out_dir / "summary.json", _clean(summary))
    fields = ["policy", "kind", "threshold", "cut", *METRICS, "retrieval_rate", *(f"{k}_per_q" for k in COST_KEYS)]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, extrasaction="ignore")
    w.writeheader()
    for row in summary["policies"]:
        w.writerow({**row, "kind": "configured", "cut": ""})
    for policy, points in summary["sweeps"].items():
        for pt in points:
            w.writerow({**pt, "policy": policy, "kind": "sweep", "threshold": ""})
    write_text_atomic(out_dir / "summary.csv", buf.getvalue())


def plot(summary: dict[str, Any], out_dir: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric = summary["metric"]
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for policy, points in summary["sweeps"].items():
        pts = sorted(points, key=lambda p: p["retrieval_rate"])
        line, = ax.plot([p["retrieval_rate"] for p in pts], [p[metric] for p in pts], marker=".", label=f"{policy} (sweep)")
        conf = next(r for r in summary["policies"] if r["policy"] == policy)
        ax.plot(conf["retrieval_rate"], conf[metric], marker="*", markersize=13, color=line.get_color(), linestyle="none")
    for row in summary["policies"]:
        if row["policy"] not in summary["sweeps"]:
            ax.plot(row["retrieval_rate"], row[metric], marker="o", markersize=8, linestyle="none", label=row["policy"])
    ax.set_xlabel("retrieval rate (fraction of questions that retrieved)")
    ax.set_ylabel(f"accuracy ({metric})")
    ax.set_title(f"Accuracy vs. retrieval rate, {summary['questions']} questions (★ = configured threshold)", fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out_dir / "accuracy_vs_retrieval.png", dpi=120)
    plt.close(fig)

    sigs = [s for s in summary["signals"] if s["roc_auc"] is not None]
    fig, ax = plt.subplots(figsize=(6.4, 0.45 * max(len(sigs), 2) + 1.2))
    ax.barh([s["signal"] for s in sigs], [s["roc_auc"] for s in sigs], color="tab:blue")
    ax.axvline(0.5, color="grey", linestyle="--", linewidth=1)
    ax.set_xlim(0, 1)
    ax.set_xlabel("ROC-AUC for a wrong closed-book answer (0.5 = chance)")
    ax.set_title(f"Signal quality, {summary['questions']} questions", fontsize=9)
    ax.invert_yaxis()
    fig.tight_layout()
    fig.savefig(out_dir / "signal_auc.png", dpi=120)
    plt.close(fig)
    return ["accuracy_vs_retrieval.png", "signal_auc.png"]


def _f(x: Any, digits: int = 3) -> str:
    if x is None or x == "":
        return "–"
    if isinstance(x, float):
        return f"{x:.{digits}g}" if abs(x) < 1000 else f"{x:.0f}"
    return str(x)


def _pct(x: float) -> str:
    return f"{100 * x:.1f} %"


def policy_table(summary: dict[str, Any]) -> str:
    m = summary["metric"]
    lines = [f"| policy | threshold | accuracy ({m}) | EM | F1 | retrieval rate | retriever calls/q | LM calls/q | prompt tok/q | generated tok/q | s/q |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in summary["policies"]:
        lines.append(f"| {r['policy']} | {_f(r['threshold'])} | {_pct(r[m])} | {_pct(r['em'])} | {_pct(r['f1'])} | "
                     f"{_pct(r['retrieval_rate'])} | {r['retriever_calls_per_q']:.2f} | {r['lm_calls_per_q']:.2f} | "
                     f"{r['prompt_tokens_per_q']:.0f} | {r['generated_tokens_per_q']:.1f} | {r['seconds_per_q']:.2f} |")
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
            "## Policies", "", policy_table(summary), ""]
    if plots:
        out += ["## Accuracy against retrieval rate", "", f"![accuracy vs retrieval]({plots[0]})", "",
                "Each curve sweeps one trigger's threshold over the observed score quantiles (derived from the cached "
                "closed-book and retrieval-augmented answers, no re-run); ★ marks the configured threshold.", ""]
    out += ["## Signal quality (closed-book correctness)", "",
            "| signal | n | wrong closed-book | ROC-AUC | PRR |", "|---|---|---|---|---|"]
    out += [f"| {s['signal']} | {s['n']} | {s['errors']} | {_f(s['roc_auc'])} | {_f(s['prr'])} |" for s in summary["signals"]]
    if len(plots) > 1:
        out += ["", f"![signal ROC-AUC]({plots[1]})"]
    counts = summary["catches"]["counts"]
    out += ["", "## What each trigger catches that the others miss", "",
            "A *fix*: the trigger fired and the answer is right where the closed-book draft was wrong. *Unique*: no "
            "other trigger fired on that question.", "", "| trigger | fixes | unique fixes |", "|---|---|---|"]
    out += [f"| {t} | {c['fixes']} | {c['unique_fixes']} |" for t, c in counts.items()]
    uniq = summary["catches"]["unique"]
    if len(counts) > 1 and uniq:
        out += ["", "| trigger | question | closed-book | with retrieval | reference |", "|---|---|---|---|---|"]
        out += [f"| {u['trigger']} | {u['question']} | {u['closed_book'][:60]} | {u['answer'][:60]} | {u['answers'][0]} |"
                for u in uniq[:20]]
    elif len(counts) <= 1:
        out += ["", "(Needs at least two triggers.)"]
    ratio = perf["ratio_to_costliest"]
    out += ["", "## Cost of the benchmark itself", "",
            f"- Whole benchmark (every policy, every sweep point), question processing: {perf['benchmark_wall_seconds']:.1f} s",
            f"- Sum of running each policy separately: {perf['sum_of_policies_seconds']:.1f} s",
            f"- Costliest single policy ({perf['costliest_policy']}): {perf['policy_seconds'][perf['costliest_policy']]:.1f} s",
            f"- Ratio whole benchmark / costliest policy: {_f(ratio)} (target ≤ 1.3)"]
    if run.get("setup_seconds") is not None:
        out.append(f"- Setup (model load, index build), last session: {run['setup_seconds']:.1f} s")
    for study in sorted(out_dir.glob("study_*.md")):
        out += ["", study.read_text(encoding="utf-8").strip()]
    return "\n".join(out) + "\n"


def write_report(records: Sequence[dict], policies: Sequence[str], out_dir: Path, metric: str = "contains",
                 thresholds: dict[str, Any] | None = None) -> dict[str, Any]:
    summary = summarize(records, policies, metric, thresholds)
    write_summary(summary, out_dir)
    plots = plot(summary, out_dir)
    run_path = out_dir / "run.json"
    run = json.loads(run_path.read_text(encoding="utf-8")) if run_path.exists() else {}
    write_text_atomic(out_dir / "REPORT.md", render_report(summary, run, out_dir, plots))
    return summary
