"""Throughput of `AdaptiveRAG.answer_many` against sequential `answer`, measured side by side in one run.

On NQ-open-oracle questions (BM25 over the set's own passages, token-confidence, greedy), for each
batch size:

- questions/s of ``answer_many(questions, batch_size=B)`` and its ratio to sequential ``answer``;
- the raw forward-pass ceiling: the model's forward alone (left padding + attention mask, one
  prefill, 16 greedy tokens with the KV cache), B at a time — prompts/s and the ratio to B = 1 —
  on two prompt mixes: the closed-book draft prompts, and the prompts with the retrieved passages
  (those of the questions whose trigger fired, as the sequential run retrieved them). A draft
  prompt is short, so its step is bound by reading the weights and batching pays; a passage prompt
  is long (~500 tokens), so its prefill is bound by arithmetic and batching cannot shrink it. What
  the loop gains lies between the two;
- peak memory: ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` of a fresh subprocess per
  configuration, after the answers (the model, the index and the batch) and its rise over the same
  process once loaded and warmed up (tracemalloc would miss torch's allocations);
- the share of questions whose greedy answer text equals the sequential one, and whose decisions do
  (the trace less its floats: drafts, tokens, fired flags, queries, passage ids, texts; a padded
  batch moves log-probabilities in their last bits, which `tests/test_batch.py` bounds).

Every configuration runs in its own subprocess (same model, index, questions, warm-up), one after
another, so memory figures do not mix. The machine should be otherwise idle.

    .venv/bin/python -m benchmarks.perf_batch [--limit 64] [--batch-sizes 1,4,8,16,32] [--out perf_batch.json]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

DATASET = "nq_open_oracle"
CEILING_TOKENS = 16


def _rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def forward_ceiling(lm, prompts: list, batch: int, tokens: int = CEILING_TOKENS) -> float:
    """Prompts/s of the bare model forward: ``batch`` prompts left-padded, one prefill, ``tokens`` greedy steps."""
    import torch

    rendered = [lm.encode(lm.render(p)) for p in prompts]
    pad = lm.tokenizer.pad_token_id if lm.tokenizer.pad_token_id is not None else lm.tokenizer.eos_token_id
    t0 = time.perf_counter()
    with torch.inference_mode():
        for start in range(0, len(rendered), batch):
            rows = rendered[start:start + batch]
            width = max(map(len, rows))
            ids = torch.tensor([[pad] * (width - len(r)) + r for r in rows])
            mask = torch.tensor([[0] * (width - len(r)) + [1] * len(r) for r in rows])
            pos = (mask.cumsum(-1) - 1).clamp(min=0)
            out = lm.model(input_ids=ids, attention_mask=mask, position_ids=pos, use_cache=True)
            for _ in range(tokens - 1):
                nxt = out.logits[:, -1].argmax(-1, keepdim=True)
                mask = torch.cat([mask, torch.ones_like(nxt)], dim=1)
                pos = pos[:, -1:] + 1
                out = lm.model(input_ids=nxt, attention_mask=mask, position_ids=pos, cache=out.cache, use_cache=True)
    return len(rendered) / (time.perf_counter() - t0)


def _decisions(x: object) -> object:
    """The trace with every float dropped: what the loop decided, not the last bits of its scores."""
    if isinstance(x, dict):
        return {k: _decisions(v) for k, v in x.items() if not isinstance(v, float)}
    if isinstance(x, list):
        return [_decisions(v) for v in x if not isinstance(v, float)]
    return x


def child(args: argparse.Namespace) -> dict:
    """One configuration (``--child 0``: sequential `answer`; B: `answer_many` at batch B) in this process."""
    from benchmarks.datasets import corpus_paths, load_dataset, resolve_data_dir
    from retrievers.components import open_retriever
    from rag.loop import AdaptiveRAG, LoopConfig
    from rag.pipeline import load_language_model
    from triggers.registry import build_trigger

    data_dir = resolve_data_dir(args.data_dir)
    questions = [e.question for e in load_dataset(DATASET, data_dir, limit=args.limit)]
    retriever = open_retriever("bm25", corpus=[str(p) for p in corpus_paths(DATASET, data_dir)], progress=False)
    lm = load_language_model(args.model)
    loop = AdaptiveRAG(lm, retriever, build_trigger("token-confidence", lm=lm), config=LoopConfig(max_steps=args.max_steps))
    loop.answer(questions[0])  # warm-up
    loaded = _rss_mib()
    t0 = time.perf_counter()
    if args.child == 0:
        answers = [loop.answer(q) for q in questions]
    else:
        answers = loop.answer_many(questions, batch_size=args.child)
    seconds = time.perf_counter() - t0
    out = {"batch": args.child, "questions": len(questions), "seconds": seconds, "questions_per_s": len(questions) / seconds,
           "peak_rss_mib": _rss_mib(), "rss_rise_mib": _rss_mib() - loaded, "texts": [a.text for a in answers],
           "traces": [hashlib.sha256(json.dumps(_decisions({**a.to_dict(), "costs": None}), sort_keys=True, default=str).encode()).hexdigest()
                      for a in answers]}
    if args.child > 0 and hasattr(lm, "model"):
        out["ceiling_prompts_per_s"] = forward_ceiling(lm, [loop.step_prompt(q) for q in questions], args.child)
        rag_prompts = [loop.step_prompt(q, a.steps[0].passages) for q, a in zip(questions, answers) if a.steps and a.steps[0].fired]
        if rag_prompts:
            out["ceiling_rag_prompts_per_s"] = forward_ceiling(lm, rag_prompts, args.child)
    return out


def _run_child(args: argparse.Namespace, batch: int) -> dict:
    cmd = [sys.executable, "-m", "benchmarks.perf_batch", "--child", str(batch), "--limit", str(args.limit),
           "--model", args.model, "--max-steps", str(args.max_steps)] + (["--data-dir", args.data_dir] if args.data_dir else [])
    done = subprocess.run(cmd, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1])
    if done.returncode != 0:
        raise SystemExit(f"error: the batch-{batch} run failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--limit", type=int, default=64, help="questions (default: 64)")
    ap.add_argument("--batch-sizes", default="1,4,8,16,32", help="comma-separated (default: %(default)s)")
    ap.add_argument("--max-steps", type=int, default=1, help="steps per answer (default: 1, as `arag bench`)")
    ap.add_argument("--model", default="default", help="as `arag ask --model` (default: the shipped SmolLM2)")
    ap.add_argument("--data-dir", default=None, help="the shared data folder (default: $ARAG_DATA_DIR, else ../shared/data)")
    ap.add_argument("--out", default=None, metavar="JSON", help="also write the figures here")
    ap.add_argument("--child", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child is not None:
        print(json.dumps(child(args)))
        return 0
    try:
        sizes = [int(b) for b in args.batch_sizes.split(",") if b.strip()]
    except ValueError:
        print(f"error: --batch-sizes must be comma-separated integers, got {args.batch_sizes!r}", file=sys.stderr)
        return 2
    if not sizes or min(sizes) < 1 or args.limit < 1:
        print("error: --limit and every batch size must be >= 1", file=sys.stderr)
        return 2
    seq = _run_child(args, 0)
    runs = [_run_child(args, b) for b in sizes]
    base = next((r.get("ceiling_prompts_per_s") for r in runs if r["batch"] == 1), None)
    rag_base = next((r.get("ceiling_rag_prompts_per_s") for r in runs if r["batch"] == 1), None)
    rows = []
    for r in runs:
        ceiling, rag_ceiling = r.get("ceiling_prompts_per_s"), r.get("ceiling_rag_prompts_per_s")
        rows.append({"batch": r["batch"], "questions_per_s": r["questions_per_s"],
                     "vs_sequential": r["questions_per_s"] / seq["questions_per_s"],
                     "ceiling_prompts_per_s": ceiling, "ceiling_vs_batch_1": ceiling / base if ceiling and base else None,
                     "ceiling_rag_prompts_per_s": rag_ceiling,
                     "ceiling_rag_vs_batch_1": rag_ceiling / rag_base if rag_ceiling and rag_base else None,
                     "peak_rss_mib": r["peak_rss_mib"], "rss_rise_mib": r["rss_rise_mib"],
                     "same_answer": sum(a == b for a, b in zip(r["texts"], seq["texts"])) / len(seq["texts"]),
                     "same_decisions": sum(a == b for a, b in zip(r["traces"], seq["traces"])) / len(seq["traces"])})
    print(f"{seq['questions']} {DATASET} questions, model {args.model}, max_steps {args.max_steps}; sequential answer: "
          f"{seq['questions_per_s']:.2f} q/s, peak RSS {seq['peak_rss_mib']:.0f} MiB")
    print("batch | answer_many q/s | × sequential | ceiling, draft prompts/s | × batch 1 | ceiling, passage prompts/s | "
          "× batch 1 | peak RSS MiB (rise) | same answer | same decisions")
    for r in rows:
        ceiling = f"{r['ceiling_prompts_per_s']:.2f} | {r['ceiling_vs_batch_1']:.2f}" if r["ceiling_vs_batch_1"] else "- | -"
        rag = f"{r['ceiling_rag_prompts_per_s']:.2f} | {r['ceiling_rag_vs_batch_1']:.2f}" if r["ceiling_rag_vs_batch_1"] else "- | -"
        print(f"{r['batch']} | {r['questions_per_s']:.2f} | {r['vs_sequential']:.2f} | {ceiling} | {rag} | "
              f"{r['peak_rss_mib']:.0f} (+{r['rss_rise_mib']:.0f}) | {r['same_answer']:.1%} | {r['same_decisions']:.1%}")
    if args.out:
        from corpora.atomic import write_json_atomic

        write_json_atomic(args.out, {"questions": seq["questions"], "model": args.model, "max_steps": args.max_steps,
                                     "sequential": {k: seq[k] for k in ("questions_per_s", "peak_rss_mib", "rss_rise_mib")},
                                     "batches": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
