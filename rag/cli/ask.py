"""`arag ask QUESTION`: answer one question with adaptive retrieval and show why it retrieved."""
from __future__ import annotations

import argparse

from rag.cli.common import add_batch_size_arg, add_pipeline_args, build_pipeline, check_trigger_flags


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("ask", help="answer a question, retrieving only when the trigger fires",
                       description="Answer a question. With no --index/--corpus the shipped demo corpus is used.")
    p.add_argument("question", nargs="?", help="the question (or --questions FILE)")
    add_pipeline_args(p)
    p.add_argument("--json", action="store_true", help="print exactly one JSON object (answer, retrieved, steps, costs)")
    g = p.add_argument_group("many questions (--questions FILE --out FILE)")
    g.add_argument("--questions", metavar="FILE", help="JSONL or CSV (.gz too) with a question field (id and answers "
                   "optional, as for `arag bench --questions`): answer them all")
    g.add_argument("--out", metavar="FILE", help="JSONL to append one answer to per question (the --json object plus "
                   "the question's id); questions already in it are skipped, so rerunning resumes")
    add_batch_size_arg(g)
    g.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="show a progress bar (default: when stderr is a terminal)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from rag.errors import UsageError
    from rag.loop.trace import json_text

    if (args.question is None) == (args.questions is None):
        raise UsageError("give a question or --questions FILE (not both)")
    if args.questions is not None:
        from rag.cli.ask_many import run_file

        return run_file(args)
    if args.out is not None:
        raise UsageError("--out applies to --questions FILE")
    if not args.question.strip():
        raise UsageError("question is empty")
    check_trigger_flags(args, args.trigger)
    pipe = build_pipeline(args)
    answer = pipe.ask(args.question)
    if args.json:
        print(json_text(answer.to_dict()))
    else:
        print_answer(answer)
    return 0


def print_answer(answer) -> None:
    from rich.console import Console

    c = Console(highlight=False)
    c.print(f"[bold]Answer:[/bold] {answer.text}")
    if answer.pre_check is not None and answer.pre_check.fired:
        c.print(f"[bold]Retrieval:[/bold] fired before drafting (question check, score {answer.pre_check.score:.3g})")
    for s in answer.steps:
        if s.signal is None:
            continue
        mark = ("fired → retrieved" if s.passages else "fired → retrieved; nothing relevant (draft kept)" if s.nothing_relevant
                else "fired (budget spent)" if s.fired else "not fired")
        c.print(f"[bold]Step {s.index + 1}:[/bold] {answer.trigger} score {s.signal.score:.3g} — {mark}")
        d = s.signal.details
        if "clusters" in d:
            c.print(f"  meaning clusters (sizes) {[cl['size'] for cl in d['clusters']]}, semantic entropy "
                    f"{d['semantic_entropy']:.2f}, discrete {d['discrete_semantic_entropy']:.2f}")
        if d.get("pairs"):
            c.print("  co-occurrence: " + ", ".join(f"{x['pair'][0]} & {x['pair'][1]}: {x['count']}" for x in d["pairs"]))
        if s.gate is not None:
            c.print("  relevance: " + ", ".join(f"{pid} {r:.2f}" for pid, r in s.gate["relevance"].items())
                    + f" (gate {s.gate['threshold']:.2f})")
    if answer.abstained:
        c.print("[bold]Retrieval:[/bold] retrieved; nothing relevant — abstained")
    elif answer.nothing_relevant and not answer.retrieved:
        c.print("[bold]Retrieval:[/bold] retrieved; nothing relevant (answered closed-book)")
    elif not answer.retrieved:
        c.print("[bold]Retrieval:[/bold] not needed (answered closed-book)")
    if answer.sources:
        c.print("[bold]Sources:[/bold]")
        for i, p in enumerate(answer.sources, 1):
            c.print(f"  [{i}] {p.title} ({p.id})")
    k = answer.costs
    c.print(f"[dim]{k.lm_calls} LM calls, {k.retriever_calls} retriever calls, {k.prompt_tokens} prompt + "
            f"{k.generated_tokens} generated tokens, {k.seconds:.1f} s[/dim]")
