"""`arag bench --dataset a,b,c`: every set in its own sub-folder of one run folder, then one table of
adaptive gain ± 95 % interval per (trigger, dataset) and a heatmap of it.

Each sub-folder is an ordinary run folder (``OUT/<dataset>``: resumable, its own REPORT.md), so a
killed multi-set run resumes set by set and one set can be rebuilt or extended alone. The model is
loaded once, and only if some set still has questions to run. The combined files are derived from
the sets' summaries alone: ``OUT/summary.json``, ``OUT/REPORT.md`` and ``OUT/gain_heatmap.png``.
"""
from __future__ import annotations

import functools
import hashlib
import json
from pathlib import Path
from typing import Any, Callable

from benchmarks.plots import plot_gain_heatmap
from benchmarks.report import fmt_ci, gain_cell
from benchmarks.runner import BenchConfig, BenchError
from corpora.atomic import write_json_atomic, write_text_atomic
from corpora.jsonfloat import encode_floats

SUMMARY, REPORT = "summary.json", "REPORT.md"


def parse_datasets(text: str) -> list[str]:
    """``a,b,c`` → the names in order; a name twice is a mistake, not a request to run it twice."""
    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names:
        raise BenchError("--dataset names no set")
    if len(set(names)) != len(names):
        raise BenchError(f"a dataset is listed twice: {text}")
    return names


def default_multi_dir(configs: list[BenchConfig], root: Path = Path("runs") / "bench") -> Path:
    """One folder per combination of set configurations (rerunning the same command resumes)."""
    digest = hashlib.sha256(json.dumps([c.key() for c in configs], sort_keys=True).encode()).hexdigest()[:8]
    return root / f"multi-{len(configs)}sets-{digest}"


def shared_loader(load: Callable[[str], Any]) -> Callable[[str], Any]:
    """``load`` that loads each model once, so the sets of one command share it."""
    return functools.lru_cache(maxsize=1)(load)


def gain_table(summaries: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Per set: questions, never's and always's accuracy, every trigger's adaptive gain (configured
    policies with a sweep) and the best cached signal's (free aggregations included), with intervals."""
    sets: dict[str, Any] = {}
    triggers: list[str] = []
    for name, s in summaries.items():
        rows = {r["policy"]: r for r in s["policies"]}
        gains = {p: {"gain": r["gain"], "gain_ci": r.get("gain_ci"), **({"gain_note": r["gain_note"]} if r.get("gain_note") else {})}
                 for p, r in rows.items() if "gain" in r}
        triggers += [p for p in gains if p not in triggers]
        defined = [g for g in s["signals"] if g.get("gain") is not None]
        best = max(defined, key=lambda g: g["gain"], default=None)
        ref = s["references"]
        sets[name] = {"questions": s["questions"], "never": ref["never"], "never_ci": ref["never_ci"],
                      "always": ref["always"], "always_ci": ref["always_ci"], "retrieval_helps": ref["retrieval_helps"],
                      "gain": gains,
                      "best_signal": {"signal": best["signal"], "gain": best["gain"], "gain_ci": best["gain_ci"]} if best else None}
    metric = next(iter(summaries.values()))["metric"]
    return {"metric": metric, "datasets": list(summaries), "triggers": triggers, "sets": sets}


def render(table: dict[str, Any], command: str, heatmap: str | None) -> str:
    sets, names = table["sets"], table["datasets"]
    out = ["# Benchmark across datasets", ""]
    if command:
        out += ["```", command, "```", ""]
    out += [f"Accuracy = {table['metric']}; [brackets] = 95 % bootstrap intervals over each set's questions. Each set's "
            "own report: `<set>/REPORT.md`. *Adaptive gain*: 1 = oracle, 0 = random triggering, < 0 = worse than random "
            "(`benchmarks/gain.py`); – = undefined (retrieval changes no answer on that set); *too few events (n)*: "
            "retrieval changes fewer than 10 answers on that set, too few for a gain or its interval. *Helps*: questions where "
            "retrieval turns a wrong closed-book answer right (what a trigger can gain on).", "",
            "| set | questions | helps | never (accuracy) | always (accuracy) | "
            + " | ".join(f"{t} (gain)" for t in table["triggers"]) + " | best signal (gain) |",
            "|---|---|---|---|---|" + "---|" * len(table["triggers"]) + "---|"]
    for d in names:
        row = sets[d]
        gains = [gain_cell(g) if (g := row["gain"].get(t)) else "–" for t in table["triggers"]]
        best = f"{b['signal']} {fmt_ci(b['gain'], b['gain_ci'], signed=True)}" if (b := row["best_signal"]) else "–"
        out.append(f"| {d} | {row['questions']} | {row['retrieval_helps']} | {fmt_ci(row['never'], row['never_ci'], True)} | "
                   f"{fmt_ci(row['always'], row['always_ci'], True)} | " + " | ".join(gains) + f" | {best} |")
    if heatmap:
        out += ["", f"![adaptive gain per trigger and dataset]({heatmap})"]
    return "\n".join(out) + "\n"


def write_multi_report(summaries: dict[str, dict[str, Any]], out_dir: Path, command: str = "") -> dict[str, Any]:
    table = gain_table(summaries)
    write_json_atomic(out_dir / SUMMARY, encode_floats({**table, "command": command}))
    heatmap = plot_gain_heatmap(table, out_dir)
    write_text_atomic(out_dir / REPORT, render(table, command, heatmap))
    return table
