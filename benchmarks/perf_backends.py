"""The same GGUF in-process and through llama.cpp's ``llama-server``: equal answers, decisions and steps?

One run, side by side on this machine: the shipped model dequantised in-process (transformers) and the
same file behind a real llama-server (benchmarks/llamacpp_server.py, 4 slots) through the HTTP backend.

1. ``--questions`` NQ-open-oracle questions (seeded shuffle of the dev file, BM25 over the set's own
   passages, k = 3), policies never / always / token-confidence: greedy answers equal, retrieval
   decisions equal, steps per answer equal; wall time of each backend and their ratio.
2. ``--multi`` multi-step prompts (``never``, up to 4 steps): steps per answer and step texts equal.
3. Why answers differ where they do: the first generated token of every question prompt — same argmax?
   how far apart are its log-probs? In-process is float32 on the dequantised weights; llama.cpp runs its
   own kernels on the quantised blocks. So the server runs twice: on the GGUF itself, and on its float32
   copy (benchmarks/gguf_f32.py: the in-process model's very weights). What differs on the second is
   the backend's handling; what differs only on the first is the quantised arithmetic.

    .venv/bin/python -m benchmarks.perf_backends [--questions 64] [--multi 8] [--model smollm2-135m] [--weights both]
"""
from __future__ import annotations

import argparse
import os
import statistics
import time
from typing import Sequence

os.environ.setdefault("HF_HUB_OFFLINE", "1")

MULTI_STEP_PROMPTS = (
    "Write a long paragraph about the city of Paris, its history, its monuments and its food.",
    "Explain in several sentences how photosynthesis works.",
    "Describe the life of Marie Curie in a few sentences.",
    "Tell me about the history of the Roman Empire.",
    "Write a short story about a dog who learns to swim.",
    "Explain how a bicycle works, step by step.",
    "Describe the water cycle in detail.",
    "Give an overview of the French Revolution.",
)
POLICIES = ("never", "always", "token-confidence")


def _share(pairs: Sequence[tuple[object, object]]) -> tuple[int, int]:
    return sum(a == b for a, b in pairs), len(pairs)


def _pct(k: int, n: int) -> str:
    return f"{k}/{n} ({100 * k / n:.0f} %)" if n else "0/0"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--questions", type=int, default=64)
    ap.add_argument("--multi", type=int, default=8, help=f"multi-step prompts (at most {len(MULTI_STEP_PROMPTS)})")
    ap.add_argument("--model", default="smollm2-135m", help="a shipped model's short name or a GGUF path")
    ap.add_argument("--parallel", type=int, default=4, help="llama-server slots (default 4)")
    ap.add_argument("--batch-size", type=int, default=16, help="in-process questions decoded together (default 16)")
    ap.add_argument("--weights", choices=("gguf", "f32", "both"), default="both",
                    help="what llama-server serves: the GGUF, its float32 copy, or one after the other (default)")
    args = ap.parse_args(argv)

    from benchmarks.datasets import corpus_paths, load_dataset, resolve_data_dir
    from benchmarks.gguf_f32 import f32_copy
    from benchmarks.llamacpp_server import LlamaServer
    from corpora.documents import load_documents
    from rag.loop import AdaptiveRAG, LoopConfig
    from rag.models.hf_model import HFLanguageModel
    from rag.models.openai_backend import OpenAICompatibleModel
    from rag.models.shipped import gguf_path
    from retrievers import build_retriever
    from triggers import Always, Never, TokenConfidence

    data = resolve_data_dir()
    examples = load_dataset("nq_open_oracle", data, limit=args.questions)
    questions = [e.question for e in examples]
    retriever = build_retriever("bm25", load_documents(corpus_paths("nq_open_oracle", data)), progress=False)
    gguf = gguf_path(args.model)
    local = HFLanguageModel.load(str(gguf) if args.model != "smollm2-135m" else None)
    triggers = {"never": Never, "always": Always, "token-confidence": TokenConfidence}
    single, multi = LoopConfig(max_steps=1, k=3), LoopConfig(max_steps=4, step_tokens=48)
    prompts = list(MULTI_STEP_PROMPTS[: args.multi])

    def run(lm, batch_size: int) -> tuple[dict, list, float]:
        t = time.perf_counter()
        answers = {p: AdaptiveRAG(lm, retriever, triggers[p](), config=single).answer_many(questions, batch_size=batch_size)
                   for p in POLICIES}
        long = AdaptiveRAG(lm, None, Never(), config=multi).answer_many(prompts, batch_size=batch_size)
        return answers, long, time.perf_counter() - t

    print(f"model {gguf.name}; {len(questions)} NQ-open-oracle questions x {len(POLICIES)} policies; "
          f"{len(prompts)} multi-step prompts", flush=True)
    AdaptiveRAG(local, None, Never(), config=single).answer(questions[0])  # warm-up
    in_process, in_long, t_local = run(local, args.batch_size)
    first_prompts = [AdaptiveRAG(local, None, Never()).step_prompt(q) for q in questions]
    served_files = {"gguf": [gguf], "f32": [f32_copy(gguf)], "both": [gguf, f32_copy(gguf)]}[args.weights]
    for weights in served_files:
        with LlamaServer(weights, parallel=args.parallel, threads=os.cpu_count()) as server:
            remote = OpenAICompatibleModel.from_spec(f"openai:{server.url}/{args.model}", concurrency=args.parallel)
            AdaptiveRAG(remote, None, Never(), config=single).answer(questions[0])  # warm-up
            served, served_long, t_http = run(remote, args.batch_size)
            first = _first_tokens(local, remote, first_prompts)
            caps = remote.capabilities()
        print(f"\n== llama-server on {weights.name}: {caps.server}, continuation: {caps.continuation}, "
              f"n per request <= {caps.max_n}")
        _report(in_process, served, in_long, served_long, first, t_local, t_http)
    return 0


def _report(in_process, served, in_long, served_long, first, t_local: float, t_http: float) -> None:
    print(f"{'policy':<18} {'answers equal':>16} {'decisions equal':>16} {'steps equal':>14}")
    for p in POLICIES:
        a, b = in_process[p], served[p]
        eq = _share([(x.text, y.text) for x, y in zip(a, b)])
        dec = _share([(x.retrieved, y.retrieved) for x, y in zip(a, b)])
        st = _share([(len(x.steps), len(y.steps)) for x, y in zip(a, b)])
        print(f"{p:<18} {_pct(*eq):>16} {_pct(*dec):>16} {_pct(*st):>14}")
    steps = _share([(len(x.steps), len(y.steps)) for x, y in zip(in_long, served_long)])
    texts = _share([([s.text for s in x.steps], [s.text for s in y.steps]) for x, y in zip(in_long, served_long)])
    print(f"multi-step (never, <= 4 steps): step counts equal {_pct(*steps)}, all step texts equal {_pct(*texts)}; "
          f"steps in-process {[len(x.steps) for x in in_long]}, served {[len(y.steps) for y in served_long]}")
    same_top, gaps = first
    print(f"first generated token: same token {_pct(*same_top)}; |log-prob difference| median "
          f"{statistics.median(gaps):.4f}, max {max(gaps):.4f} nats")
    print(f"wall time: in-process {t_local:.1f} s, llama-server {t_http:.1f} s, ratio served/in-process "
          f"{t_http / t_local:.2f}", flush=True)


def _first_tokens(local, remote, prompts) -> tuple[tuple[int, int], list[float]]:
    """Greedy first token of each prompt on both backends: same token? |log-prob difference| of the
    in-process token where both give it."""
    a = [g[0] for g in local.generate(prompts, max_new_tokens=1)]
    b = [g[0] for g in remote.generate(prompts, max_new_tokens=1)]
    same = _share([(x.text, y.text) for x, y in zip(a, b)])
    gaps = [abs(x.logprobs[0] - y.logprobs[0]) for x, y in zip(a, b) if x.text == y.text and x.logprobs and y.logprobs]
    return same, gaps or [0.0]


if __name__ == "__main__":
    raise SystemExit(main())
