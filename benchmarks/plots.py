"""The report's figures, drawn from ``summary.json`` alone.

- ``accuracy_vs_retrieval.png``: each threshold trigger's curve over all its cuts (dash-dotted: the
  other cached signals as triggers), the random line (never → always) and the oracle curve;
  ★ = configured threshold, dots with 95 % error bars = the other policies.
- ``accuracy_vs_cost.png``: the same curves against LM calls and against generated tokens per question.
- ``signal_auc.png``: ROC-AUC of each signal for "retrieval needed" and "retrieval helps", with 95 % intervals.
- ``gain_heatmap.png`` (a multi-set run, `benchmarks.multi`): adaptive gain per (trigger, dataset).
"""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from corpora.extras import available, install_hint

_noted = False


def _pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend; None, with a one-line note on stderr (once), without the
    plots extra: the report is then written without its figures."""
    global _noted
    if not available("matplotlib"):
        if not _noted:
            print(f"arag: note: no plots in the report (matplotlib is missing: {install_hint('plots')})", file=sys.stderr)
            _noted = True
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt

AXIS_LABELS = {"retrieval_rate": "retrieval rate (fraction of questions that retrieved)",
               "lm_calls_per_q": "LM calls per question", "generated_tokens_per_q": "generated tokens per question"}


def _fmt_ci(value: float | None, ci: list[float] | None) -> str:
    if value is None:
        return "–"
    return f"{value:.2f} [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else f"{value:.2f}"


def _draw(ax: Any, summary: dict[str, Any], axis: str) -> None:
    curves = summary["curves"]
    ax.plot(curves["random"][axis], curves["random"]["accuracy"], color="grey", linestyle="--", linewidth=1,
            label="random (never → always)")
    ax.plot(curves["oracle"][axis], curves["oracle"]["accuracy"], color="black", linestyle=":", linewidth=1.5, label="oracle")
    signals = {s["signal"]: s for s in summary["signals"]}
    for key, curve in curves.items():
        if key.startswith("signal:"):
            sig = signals.get(key[len("signal:"):], {})
            ax.plot(curve[axis], curve["accuracy"], linewidth=0.9, linestyle="-.", alpha=0.8,
                    label=f"{key[len('signal:'):]} (signal; gain {_fmt_ci(sig.get('gain'), sig.get('gain_ci'))})")
    rows = {r["policy"]: r for r in summary["policies"]}
    for policy, row in rows.items():
        if policy in curves:
            line, = ax.plot(curves[policy][axis], curves[policy]["accuracy"], linewidth=1.3,
                            label=f"{policy} (gain {_fmt_ci(row.get('gain'), row.get('gain_ci'))})")
            ax.plot(row[axis], row["accuracy"], marker="*", markersize=13, color=line.get_color(), linestyle="none")
        else:
            ci = row.get("accuracy_ci") or [row["accuracy"]] * 2
            ax.errorbar(row[axis], row["accuracy"], yerr=[[row["accuracy"] - ci[0]], [ci[1] - row["accuracy"]]],
                        marker="o", markersize=6, capsize=3, linestyle="none", label=policy)
    ax.set_xlabel(AXIS_LABELS[axis])
    ax.set_ylabel(f"accuracy ({summary['metric']})")
    ax.grid(alpha=0.3)


def plot(summary: dict[str, Any], out_dir: Path) -> list[str]:
    plt = _pyplot()
    if plt is None:
        return []
    n = summary["questions"]
    fig, ax = plt.subplots(figsize=(6.8, 4.6))
    _draw(ax, summary, "retrieval_rate")
    ax.set_title(f"Accuracy vs. retrieval rate, {n} questions (★ = configured threshold; gain with 95 % CI)", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out_dir / "accuracy_vs_retrieval.png", dpi=120)
    plt.close(fig)

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4))
    for ax, axis in zip(axes, ("lm_calls_per_q", "generated_tokens_per_q")):
        _draw(ax, summary, axis)
    axes[0].legend(fontsize=7)
    fig.suptitle(f"Accuracy vs. cost per question, {n} questions", fontsize=10)
    fig.tight_layout()
    fig.savefig(out_dir / "accuracy_vs_cost.png", dpi=120)
    plt.close(fig)

    sigs = summary["signals"]
    fig, ax = plt.subplots(figsize=(6.8, 0.6 * max(len(sigs), 2) + 1.9))
    height = 0.38
    for k, (key, label) in enumerate((("roc_auc", "retrieval needed (closed-book wrong)"),
                                      ("roc_auc_helps", "retrieval helps (wrong → right)"))):
        ys = [i + (k - 0.5) * height for i in range(len(sigs))]
        vals = [s[key] if s[key] is not None else 0.5 for s in sigs]
        err = [[max(v - (s[f"{key}_ci"] or [v, v])[0], 0) for v, s in zip(vals, sigs)],
               [max((s[f"{key}_ci"] or [v, v])[1] - v, 0) for v, s in zip(vals, sigs)]]
        ax.barh(ys, vals, height=height, xerr=err, capsize=2, label=label)
    ax.set_yticks(range(len(sigs)), [s["signal"] for s in sigs])
    ax.axvline(0.5, color="grey", linestyle="--", linewidth=1)
    ax.set_xlim(0, 1)
    ax.set_xlabel("ROC-AUC with 95 % CI (0.5 = chance = random trigger)")
    ax.set_title(f"Signal quality, {n} questions", fontsize=9)
    ax.invert_yaxis()
    ax.legend(fontsize=7, loc="upper center", bbox_to_anchor=(0.5, -0.2), ncol=2)
    fig.tight_layout()
    fig.savefig(out_dir / "signal_auc.png", dpi=120)
    plt.close(fig)
    return ["accuracy_vs_retrieval.png", "accuracy_vs_cost.png", "signal_auc.png"]


def plot_gain_heatmap(table: dict[str, Any], out_dir: Path) -> str | None:
    """``gain_heatmap.png``: adaptive gain per (trigger, dataset) of a multi-set run, each cell with its
    95 % interval; red = worse than random, blue = better, grey = undefined or too few events. None
    without triggers (or without the plots extra)."""
    import numpy as np

    triggers, names, sets = table["triggers"], table["datasets"], table["sets"]
    if not triggers:
        return None
    plt = _pyplot()
    if plt is None:
        return None
    cells = [[sets[d]["gain"].get(t) or {"gain": None, "gain_ci": None} for d in names] for t in triggers]
    values = np.array([[np.nan if c["gain"] is None else c["gain"] for c in row] for row in cells], dtype=float)
    fig, ax = plt.subplots(figsize=(1.5 * len(names) + 2.6, 0.55 * len(triggers) + 1.8))
    cmap = plt.get_cmap("RdBu").with_extremes(bad="lightgrey")
    image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=-1, vmax=1, aspect="auto")
    for i, row in enumerate(cells):
        for j, c in enumerate(row):
            ci = c["gain_ci"]
            if c.get("gain_note"):  # too few events for a gain: say so, not a colour
                text = c["gain_note"].replace(" events", "\nevents")
            else:
                text = "–" if c["gain"] is None else f"{c['gain']:+.2f}" + (f"\n[{ci[0]:+.2f}, {ci[1]:+.2f}]" if ci else "")
            dark = c["gain"] is not None and abs(c["gain"]) > 0.6
            ax.text(j, i, text, ha="center", va="center", fontsize=6.5, color="white" if dark else "black")
    ax.set_xticks(range(len(names)), [f"{d}\n(n={sets[d]['questions']})" for d in names], fontsize=7, rotation=30, ha="right")
    ax.set_yticks(range(len(triggers)), triggers, fontsize=8)
    fig.colorbar(image, ax=ax, label="adaptive gain")
    ax.set_title("Adaptive gain (0 = random, 1 = oracle) with 95 % bootstrap intervals", fontsize=9)
    fig.tight_layout()
    fig.savefig(out_dir / "gain_heatmap.png", dpi=120)
    plt.close(fig)
    return "gain_heatmap.png"
