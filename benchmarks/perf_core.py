"""Core performance ratios, measured side by side in one run (not a timed test).

1. token-confidence decision time / no-retrieval answer time        (target < 1 %)
2. batched n=10 sampling time / 10 sequential single samples        (target <= 0.5)
3-4. BM25 bm25s vs rank-bm25 QPS and FAISS flat latency: `benchmarks/perf_retrieval.py` (run after these).

    .venv/bin/python -m benchmarks.perf_core [--questions 8] [--skip-retrieval]
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--questions", type=int, default=8)
    ap.add_argument("--samples", type=int, default=10)
    ap.add_argument("--skip-retrieval", action="store_true", help="only the LM figures")
    args = ap.parse_args(argv)

    from corpora.demo import demo_questions
    from rag.models.hf_model import HFLanguageModel
    from rag.loop import AdaptiveRAG, LoopConfig
    from triggers import Never, StepState, TokenConfidence

    lm = HFLanguageModel.load(None)
    questions = [q["question"] for q in demo_questions()][: args.questions]
    loop = AdaptiveRAG(lm, None, Never(), config=LoopConfig(max_steps=1))
    loop.answer(questions[0])  # warm-up

    answer_s, decide_s = [], []
    trig = TokenConfidence()
    for q in questions:
        t = time.perf_counter()
        loop.answer(q)
        answer_s.append(time.perf_counter() - t)
        prompt = loop.step_prompt(q)
        draft = loop.draft([prompt])[0]
        state = StepState(question=q, draft=draft, prompt=prompt, sampler=lm)
        t = time.perf_counter()
        for _ in range(100):
            trig.score(state)
        decide_s.append((time.perf_counter() - t) / 100)
    ratio1 = statistics.median(decide_s) / statistics.median(answer_s)
    print(f"[1] token-confidence decision {statistics.median(decide_s) * 1e6:.1f} µs / no-retrieval answer "
          f"{statistics.median(answer_s) * 1e3:.0f} ms = {ratio1 * 100:.2g} %  (target < 1 %)")

    prompt = loop.templates.build(questions[0])
    n, tokens = args.samples, 24
    lm.generate([prompt], n=2, temperature=1.0, max_new_tokens=4, seed=0)  # warm-up
    t = time.perf_counter()
    lm.generate([prompt], n=n, temperature=1.0, max_new_tokens=tokens, seed=1)
    batched = time.perf_counter() - t
    t = time.perf_counter()
    for i in range(n):
        lm.generate([prompt], n=1, temperature=1.0, max_new_tokens=tokens, seed=100 + i)
    sequential = time.perf_counter() - t
    print(f"[2] batched n={n} sampling {batched:.2f} s / {n} sequential samples {sequential:.2f} s = "
          f"{batched / sequential:.2f}  (target <= 0.5; {tokens} new tokens max)")

    if not args.skip_retrieval:
        from benchmarks import perf_retrieval

        perf_retrieval.main([])


if __name__ == "__main__":
    main()
