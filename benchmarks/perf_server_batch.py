"""Server micro-batching: N chat requests sent all at once against the same N sent one after another.

    .venv/bin/python -m benchmarks.perf_server_batch [--requests 16] [--max-tokens 32] [--trigger never] [--out results/perf_server_batch.json]

One `arag serve` app (official openai client, 127.0.0.1, real default model): the N questions are
first asked one by one, then all at once from N threads; the figure is the ratio of the two wall
times (the target is <= 0.4 at N = 16), with how many calls each batch merged and the share of
answers equal to the one-by-one ones. How much batching gains depends on the model backend decoding
a batch's prompts together (`HFLanguageModel.generate`).
"""
from __future__ import annotations

import argparse
import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchmarks.perf_server import QUESTIONS
from corpora.atomic import write_json_atomic

MORE = ["who painted the mona lisa", "what is the boiling point of water", "who discovered penicillin",
        "what is the capital of canada", "who wrote romeo and juliet", "how many legs does a spider have",
        "what is the longest river in africa", "who was the first man on the moon",
        "what language is spoken in brazil", "what is the chemical symbol for gold"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=16)
    ap.add_argument("--max-tokens", type=int, default=32, help="max_tokens of each answer")
    ap.add_argument("--batch-window-ms", type=float, default=5.0)
    ap.add_argument("--trigger", default="token-confidence",
                    help="the server's trigger (default: %(default)s; `never` keeps every call a short closed-book draft, "
                         "`always` makes every answer's second call a ~500-token passage prompt)")
    ap.add_argument("--out", default=None, help="write the figures as JSON here")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import openai

    from retrievers.components import open_retriever
    from rag.models.hf_model import HFLanguageModel
    from rag.loop import LoopConfig
    from rag.pipeline import Pipeline
    from rag.apps.server import ServerThread, create_app
    from triggers.registry import build_trigger

    questions = ((QUESTIONS + MORE) * (1 + args.requests // (len(QUESTIONS) + len(MORE))))[: args.requests]
    lm = HFLanguageModel.load(None)
    pipe = Pipeline(lm=lm, retriever=open_retriever("bm25", progress=False),
                    trigger=build_trigger(args.trigger, lm=lm), config=LoopConfig(max_steps=2))
    app = create_app(pipe, batch_window_ms=args.batch_window_ms, max_batch=max(args.requests, 2))
    batcher = app.state.service.batcher
    with ServerThread(app) as srv:
        client = openai.OpenAI(base_url=srv.base_url, api_key="unused", max_retries=0, timeout=3600)

        def ask(q: str) -> str:
            r = client.chat.completions.create(model="default", messages=[{"role": "user", "content": q}],
                                               max_tokens=args.max_tokens)
            return r.choices[0].message.content

        ask(questions[0])  # one-off allocation costs
        t = time.perf_counter()
        one_by_one = [ask(q) for q in questions]
        t_sequential = time.perf_counter() - t
        batcher.batch_sizes.clear()
        t = time.perf_counter()
        with ThreadPoolExecutor(len(questions)) as pool:
            together = list(pool.map(ask, questions))
        t_concurrent = time.perf_counter() - t
    summary = {
        "requests": len(questions), "trigger": args.trigger, "sequential_s": t_sequential, "concurrent_s": t_concurrent,
        "concurrent_over_sequential": t_concurrent / t_sequential,
        "batches_by_calls_merged": dict(sorted(batcher.batch_sizes.items())),
        "answers_equal": sum(a == b for a, b in zip(one_by_one, together)) / len(questions),
        "cpu_count": os.cpu_count(), "load_average": os.getloadavg(),
    }
    print(json.dumps(summary, indent=2))
    if args.out:  # atomic: a killed run never leaves half a file
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(out, summary)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
