"""`arag calibrate --trigger T --dataset D [--budget R | --maximize accuracy]`: pick a threshold on half
of the questions, report it on the other half, optionally write it where `arag ask` reads it."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from corpora.atomic import write_text_atomic
from rag.cli.bench import (add_data_args, add_policy_args, bench_config, command_line, data_dir_for, log_every,
                                retriever_options, user_errors)
from rag.cli.common import add_model_args, finite_float, show_progress


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("calibrate", help="pick a trigger threshold on a calibration split and check it on a held-out split",
                       description="Runs (or resumes) a benchmark of the trigger, picks the threshold on the even-numbered "
                                   "questions and reports it on the odd-numbered ones.")
    p.add_argument("--trigger", required=True, help="token-confidence | semantic-entropy | quco")
    add_data_args(p)
    goal = p.add_mutually_exclusive_group()
    goal.add_argument("--budget", type=finite_float, default=None, metavar="R",
                      help="best accuracy with a retrieval rate of at most R (0..1)")
    goal.add_argument("--maximize", choices=("accuracy",), default="accuracy", help="best accuracy, ties to less retrieval (default)")
    add_policy_args(p)
    add_model_args(p)
    p.add_argument("--metric", default="contains", choices=("contains", "em", "f1"), help="accuracy metric (default: contains)")
    p.add_argument("--out", default=None, metavar="DIR", help="run folder (default: the one `arag bench` uses for these settings)")
    p.add_argument("--write-config", default=None, metavar="FILE", help="merge the chosen threshold into this TOML file (read by `arag ask --config`)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from benchmarks.bench import default_out_dir, load_examples, run_benchmark, select
    from benchmarks.calibration import calibrate, render
    from benchmarks.runner import BenchError, read_results, read_run_manifest
    from rag.config import check_writable_config, write_trigger_settings
    from rag.pipeline import check_concurrency

    with user_errors():
        check_concurrency(args.model, args.concurrency)
        if args.budget is not None and not 0.0 <= args.budget <= 1.0:
            raise BenchError(f"--budget is a retrieval rate in [0, 1], got {args.budget}")
        if args.trigger in ("never", "always") or "+" in args.trigger:
            raise BenchError(f"{args.trigger!r} has no threshold to calibrate")
        if args.write_config:  # before the calibration runs, not after
            check_writable_config(Path(args.write_config))
        data_dir = data_dir_for(args)
        config = bench_config(args, ("never", "always", args.trigger))
        out = Path(args.out) if args.out else default_out_dir(config)
        run_benchmark(config, out, data_dir, args.limit, index=args.index, progress=show_progress(), metric=args.metric,
                      command=command_line("calibrate"), retriever_options=retriever_options(args), log_every=log_every(args),
                     concurrency=args.concurrency)
        records = select(read_results(out, check=True), load_examples(config, data_dir, args.limit))
        result = calibrate(records, args.trigger, args.metric, args.budget)
        configured = (read_run_manifest(out).get("thresholds") or {}).get(args.trigger)
    table = render(result, configured)
    write_text_atomic(out / f"calibration-{args.trigger}.json", json.dumps(result, indent=2, default=str) + "\n")
    print(table)
    print(f"\nchosen {args.trigger} settings: {result['setting']}")
    if args.write_config:
        write_trigger_settings(Path(args.write_config), args.trigger, result["setting"])
        print(f"written to {args.write_config} (use: arag ask --config {args.write_config} --trigger {args.trigger} ...)")
    return 0
