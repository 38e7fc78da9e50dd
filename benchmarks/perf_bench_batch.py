"""`arag bench --batch-size B` against `--batch-size 1`: the same summary, in how much of the time.

Runs the same `arag bench` command twice, one after the other, each in a fresh process and a fresh run
folder (same questions, policies, model, retriever), then prints the wall time of each and their
ratio, and compares the two ``summary.json`` files field by field: every policy's accuracy, EM, F1,
retrieval rate, LM and retriever calls and prompt tokens per question, every signal's ROC-AUC and
gain, must agree within ``--tolerance`` (float ties moved by padding aside, they are equal). Seconds
and generated tokens per question are not compared: a batched call's time and tokens are shared
between its rows (docs/concepts.md "Many questions at once").

    .venv/bin/python -m benchmarks.perf_bench_batch [--limit 32] [--batch-size 16] [--out DIR]
"""
from __future__ import annotations

import argparse
import json
import math
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMPARED = ("contains", "em", "f1", "retrieval_rate", "lm_calls_per_q", "retriever_calls_per_q", "prompt_tokens_per_q")
SIGNAL_FIELDS = ("roc_auc", "roc_auc_helps", "gain")


def differences(a: dict, b: dict, tolerance: float) -> list[str]:
    """The compared fields of two summaries that differ by more than ``tolerance``."""
    out = []

    def check(where: str, x, y) -> None:
        if isinstance(x, (int, float)) and isinstance(y, (int, float)):
            if not (math.isclose(x, y, abs_tol=tolerance) or (math.isnan(x) and math.isnan(y))):
                out.append(f"{where}: {x} vs {y}")
        elif x != y:
            out.append(f"{where}: {x!r} vs {y!r}")

    rows_a, rows_b = ({r["policy"]: r for r in s["policies"]} for s in (a, b))
    check("policies", sorted(rows_a), sorted(rows_b))
    for p in rows_a.keys() & rows_b.keys():
        for f in COMPARED:
            check(f"{p}.{f}", rows_a[p].get(f), rows_b[p].get(f))
    sig_a, sig_b = ({r["signal"]: r for r in s["signals"]} for s in (a, b))
    check("signals", sorted(sig_a), sorted(sig_b))
    for name in sig_a.keys() & sig_b.keys():
        for f in SIGNAL_FIELDS:
            check(f"signal {name}.{f}", sig_a[name].get(f), sig_b[name].get(f))
    return out


def run(args: argparse.Namespace, batch: int, out: Path) -> float:
    cmd = [sys.executable, "-m", "rag.cli", "bench", "--dataset", args.dataset, "--limit", str(args.limit),
           "--policies", args.policies, "--batch-size", str(batch), "--out", str(out), "--no-progress"]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    if done.returncode != 0:
        raise SystemExit(f"error: the batch-{batch} bench failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset", default="nq_open_oracle")
    ap.add_argument("--limit", type=int, default=32)
    ap.add_argument("--policies", default="never,always,token-confidence,msp,question-length,retrieval-top1")
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--tolerance", type=float, default=1e-6, help="absolute tolerance per compared figure")
    ap.add_argument("--out", type=Path, default=None, help="keep the two run folders here (default: a temporary folder)")
    args = ap.parse_args(argv)
    if args.batch_size < 2 or args.limit < 1:
        raise SystemExit("error: --batch-size must be at least 2 and --limit at least 1")
    with tempfile.TemporaryDirectory() as tmp:
        root = args.out or Path(tmp)
        one, many = root / "batch-1", root / f"batch-{args.batch_size}"
        for d in (one, many):
            if d.exists():
                raise SystemExit(f"error: {d} exists; the comparison needs fresh run folders")
        t_one = run(args, 1, one)
        t_many = run(args, args.batch_size, many)
        a, b = (json.loads((d / "summary.json").read_text()) for d in (one, many))
    diff = differences(a, b, args.tolerance)
    print(f"arag bench --dataset {args.dataset} --limit {args.limit} --policies {args.policies}")
    print(f"--batch-size 1: {t_one:.1f} s; --batch-size {args.batch_size}: {t_many:.1f} s; ratio {t_many / t_one:.2f}")
    print("summaries: " + ("the same (every compared figure within "
                           f"{args.tolerance:g})" if not diff else f"{len(diff)} differences:\n  " + "\n  ".join(diff)))
    return 0 if not diff else 1


if __name__ == "__main__":
    sys.exit(main())
