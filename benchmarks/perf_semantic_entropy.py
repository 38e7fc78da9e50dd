"""Cost of one semantic-entropy decision (N samples + clustering) against one greedy answer step.

For each question the greedy draft is generated as the loop does it (closed-book prompt, sentence
stops, 48-token step budget) and timed; then `SemanticEntropy.score` is timed on that step: one
batched `generate` call for the N samples (one prefill, the N continuations decoded as one batch)
plus the judge calls. The ratio is total decision time / total greedy time over the questions, from
one run. Judge calls are printed against N²/2, what comparing every pair would cost.

    .venv/bin/python benchmarks/perf_semantic_entropy.py                   # 8 NQ-open questions, N=10
    .venv/bin/python benchmarks/perf_semantic_entropy.py --sequential      # + N one-at-a-time samples
    .venv/bin/python benchmarks/perf_semantic_entropy.py --sample-tokens 48   # no cap on sample length

Data: ``$ARAG_DATA_DIR/nq_open`` or ``../shared/data/nq_open`` beside the repository.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks.datasets import DatasetError, data_dir_or_exit, load_dataset  # noqa: E402
from rag.loop import LoopConfig  # noqa: E402
from rag.loop.prompts import PromptTemplates  # noqa: E402
from rag.models.hf_model import HFLanguageModel  # noqa: E402
from rag.models.steps import SentenceEnd  # noqa: E402
from triggers.base import StepState  # noqa: E402
from triggers.equivalence import DEFAULT_JUDGE  # noqa: E402
from triggers.semantic_entropy import SemanticEntropy  # noqa: E402


def questions(n: int) -> list[str]:
    """The first ``n + 1`` NQ-open dev questions in file order (the first one warms up)."""
    try:
        return [ex.question for ex in load_dataset("nq_open", data_dir_or_exit(), "dev", limit=n + 1, shuffle_seed=None)]
    except DatasetError as exc:
        sys.exit(f"error: {exc}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--questions", type=int, default=8)
    ap.add_argument("--samples", type=int, default=10)
    ap.add_argument("--judge", default=DEFAULT_JUDGE)
    ap.add_argument("--sample-tokens", type=int, default=None, help="cap per sample (default: the trigger's: 2x the draft)")
    ap.add_argument("--sequential", action="store_true", help="also time N separate sampling calls (naive)")
    args = ap.parse_args()

    lm = HFLanguageModel.load(None)
    templates, budget = PromptTemplates(), LoopConfig().step_tokens
    trigger = SemanticEntropy(samples=args.samples, judge=args.judge, sample_tokens=args.sample_tokens)
    warmup, *qs = questions(args.questions)

    def decide(q: str) -> dict:
        prompt = templates.build(q)
        t0 = time.perf_counter()
        draft = lm.generate([prompt], max_new_tokens=budget, step_end=SentenceEnd())[0][0]
        greedy = time.perf_counter() - t0
        state = StepState(question=q, draft=draft, sampler=lm, prompt=prompt, max_new_tokens=budget,
                          step_end=SentenceEnd(), seed=0)
        calls = lm.usage.calls
        t0 = time.perf_counter()  # the samples first (memoised on the step), to time the two parts apart
        state.samples(trigger.samples, trigger.temperature, trigger.top_p, trigger.sample_budget(state))
        sampling = time.perf_counter() - t0
        signal = trigger.score(state)
        se = time.perf_counter() - t0
        row = {"greedy_s": greedy, "se_s": se, "sampling_s": sampling, "lm_calls": lm.usage.calls - calls,
               "signal": signal, "draft_tokens": len(draft.token_ids), "sample_tokens": trigger.sample_budget(state)}
        if args.sequential:
            t0 = time.perf_counter()
            for i in range(args.samples):
                lm.generate([prompt], n=1, temperature=trigger.temperature, max_new_tokens=row["sample_tokens"],
                            step_end=SentenceEnd(), seed=i)
            row["sequential_s"] = time.perf_counter() - t0
        return row

    decide(warmup)  # loads the judge's models and warms the caches; not timed
    rows = []
    print(f"N={args.samples} judge={trigger.judge.name} estimator={trigger.estimator} threshold={trigger.threshold}")
    for q in qs:
        r = decide(q)
        d = r["signal"].details
        rows.append(r)
        sizes = [c["size"] for c in d["clusters"]]
        print(f"- {q[:60]!r}: greedy {r['greedy_s']:.2f}s ({r['draft_tokens']} tok), SE {r['se_s']:.2f}s "
              f"(sampling {r['sampling_s']:.2f}s, cap {r['sample_tokens']} tok, {r['lm_calls']} LM call) ratio {r['se_s'] / r['greedy_s']:.2f}; "
              f"clusters {sizes}, judge calls {d['judge_calls']}, SE {d['semantic_entropy']:.2f} "
              f"discrete {d['discrete_semantic_entropy']:.2f} naive {d['naive_entropy']:.2f} fired {r['signal'].fired}")
    greedy, se = sum(r["greedy_s"] for r in rows), sum(r["se_s"] for r in rows)
    calls = [r["signal"].details["judge_calls"] for r in rows]
    sampling = sum(r["sampling_s"] for r in rows)
    print(f"\nsemantic-entropy decision / greedy answer: {se / greedy:.2f}x "
          f"(total {se:.1f}s / {greedy:.1f}s over {len(rows)} questions; "
          f"median per question {statistics.median(r['se_s'] / r['greedy_s'] for r in rows):.2f}x); "
          f"sampling alone {sampling / greedy:.2f}x, clustering {(se - sampling) / greedy:.2f}x")
    if args.sequential:
        seq = sum(r["sequential_s"] for r in rows)
        print(f"naive sequential sampling ({args.samples} calls) / greedy answer: {seq / greedy:.2f}x")
    print(f"judge calls per decision: mean {statistics.mean(calls):.1f}, max {max(calls)} "
          f"(all pairs would be N^2/2 = {args.samples ** 2 / 2:.0f})")


if __name__ == "__main__":
    main()
