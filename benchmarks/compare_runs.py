"""Two `arag bench` run folders of the same questions, side by side: how many answers and decisions agree.

What it is for: one model reached two ways (in-process and through a server) must decide alike, and two
models on the same questions show where they differ. Per set: questions in both runs, equal closed-book
answers, equal retrieval-augmented answers, and per trigger the share of equal decisions (fired or not at
its configured threshold) — the figures behind "the same model gives the same answers on every route".

    python -m benchmarks.compare_runs RUN_A RUN_B          # two single-set folders, or two multi-set folders
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from benchmarks.runner import BenchError, read_results


def _sets(run: Path) -> dict[str, Path]:
    """The run's result folders by set: its sub-folders for a multi-set run, else itself."""
    if (run / "results.jsonl").is_file():
        return {run.name: run}
    return {p.parent.name: p.parent for p in sorted(run.glob("*/results.jsonl"))}


def compare(a: list[dict], b: list[dict]) -> dict:
    """Agreement of two runs' records on the questions both hold (matched by id)."""
    right = {r["id"]: r for r in b}
    pairs = [(r, right[r["id"]]) for r in a if r["id"] in right]
    triggers = sorted(set.intersection(*(set(x["signals"]) for pair in pairs for x in pair))) if pairs else []
    return {"questions": len(pairs),
            "closed_book": sum(x["closed_book"]["text"] == y["closed_book"]["text"] for x, y in pairs),
            "rag": sum(x["rag"]["text"] == y["rag"]["text"] for x, y in pairs),
            "decisions": {t: sum(x["signals"][t]["fired"] == y["signals"][t]["fired"] for x, y in pairs) for t in triggers}}


def table(rows: dict[str, dict]) -> str:
    """A Markdown table: one row per set."""
    def pct(k: int, n: int) -> str:
        return f"{k}/{n} ({100 * k / n:.0f} %)" if n else "–"

    triggers = sorted({t for r in rows.values() for t in r["decisions"]})
    head = ["set", "questions", "equal closed-book answers", "equal RAG answers", *(f"equal {t} decisions" for t in triggers)]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, r in rows.items():
        n = r["questions"]
        cells = [name, str(n), pct(r["closed_book"], n), pct(r["rag"], n),
                 *(pct(r["decisions"][t], n) if t in r["decisions"] else "–" for t in triggers)]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.compare_runs", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run_a", type=Path)
    ap.add_argument("run_b", type=Path)
    args = ap.parse_args(argv)
    a, b = _sets(args.run_a), _sets(args.run_b)
    if len(a) == len(b) == 1 and (args.run_a / "results.jsonl").is_file():
        b = {next(iter(a)): next(iter(b.values()))}  # two single-set folders: whatever their names
    common = [s for s in a if s in b]
    if not common:
        print(f"error: {args.run_a} and {args.run_b} hold no set in common (a folder with results.jsonl, or "
              "sub-folders with one)", file=sys.stderr)
        return 2
    try:
        rows = {s: compare(read_results(a[s], check=True), read_results(b[s], check=True)) for s in common}
    except BenchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
