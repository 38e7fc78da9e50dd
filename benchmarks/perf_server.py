"""Server overhead: a completion through `arag serve` (official openai client, 127.0.0.1) against
the same completion in-process, and time to first streamed token against the full answer time.

    .venv/bin/python -m benchmarks.perf_server [--questions 4] [--repeats 2] [--out results/perf_server.json]

In-process and server runs alternate question by question (same model, same seed) so that CPU
contention from other processes hits both sides alike; the figures are medians of per-question
ratios. The server adds HTTP, JSON and one worker-thread hop; the model work is identical (the
test suite checks that the answers are equal).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

from corpora.atomic import write_json_atomic

QUESTIONS = ["who wrote the novel 1984", "how many countries are a part of opec",
             "what is the capital of australia", "who sang the song hotel california",
             "when did the first world war end", "what is the largest planet in the solar system"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--questions", type=int, default=4)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--max-steps", type=int, default=2)
    ap.add_argument("--out", default=None, help="write the figures as JSON here")
    args = ap.parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")

    import openai

    from retrievers.components import open_retriever
    from rag.models.hf_model import HFLanguageModel
    from rag.loop import LoopConfig
    from rag.pipeline import Pipeline
    from rag.apps.server import ServerThread, create_app
    from triggers import TokenConfidence

    lm = HFLanguageModel.load(None)
    pipe = Pipeline(lm=lm, retriever=open_retriever("bm25", progress=False), trigger=TokenConfidence(),
                    config=LoopConfig(max_steps=args.max_steps))
    rows = []
    with ServerThread(create_app(pipe)) as srv:
        client = openai.OpenAI(base_url=srv.base_url, api_key="unused", max_retries=0, timeout=900)
        # the first generations in a process pay one-off allocation costs: warm both sides up, with retrieval
        pipe.ask(QUESTIONS[-1])
        client.chat.completions.create(model="default", messages=[{"role": "user", "content": QUESTIONS[-1]}])
        for q in QUESTIONS[: args.questions] * args.repeats:
            msgs = [{"role": "user", "content": q}]
            t = time.perf_counter()
            local = pipe.ask(q)
            t_local = time.perf_counter() - t
            t = time.perf_counter()
            r = client.chat.completions.create(model="default", messages=msgs)
            t_server = time.perf_counter() - t
            t = time.perf_counter()
            first = None
            for chunk in client.chat.completions.create(model="default", messages=msgs, stream=True):
                if first is None and chunk.choices and chunk.choices[0].delta.content:
                    first = time.perf_counter() - t
            t_stream = time.perf_counter() - t
            assert r.choices[0].message.content == local.text
            rows.append({"question": q, "retrieved": local.retrieved, "in_process_s": t_local, "server_s": t_server,
                         "stream_first_token_s": first, "stream_total_s": t_stream,
                         "overhead_ratio": t_server / t_local, "first_token_fraction": (first or t_stream) / t_stream})
    summary = {
        "median_overhead_ratio": statistics.median(r["overhead_ratio"] for r in rows),
        "median_first_token_fraction": statistics.median(r["first_token_fraction"] for r in rows),
        "median_first_token_fraction_retrieved": statistics.median(
            [r["first_token_fraction"] for r in rows if r["retrieved"]] or [float("nan")]),
        "runs": len(rows), "cpu_count": os.cpu_count(), "load_average": os.getloadavg(),
    }
    print("| question | retrieved | in-process s | server s | ratio | first token s | stream total s |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['question']} | {r['retrieved']} | {r['in_process_s']:.2f} | {r['server_s']:.2f} | "
              f"{r['overhead_ratio']:.2f} | {r['stream_first_token_s'] or float('nan'):.2f} | {r['stream_total_s']:.2f} |")
    print(json.dumps(summary, indent=2))
    if args.out:  # atomic: a killed run never leaves half a file
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(out, {"summary": summary, "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
