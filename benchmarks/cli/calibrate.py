"""`arag calibrate --trigger T --dataset D [--budget R | --maximize accuracy]`: pick a threshold on half
of the questions, report it on the other half, optionally write it where `arag ask` reads it.

Two more modes on the same cached run: ``--learn --signals a,b,c`` fits a learned trigger
(`benchmarks/learn.py`, written as JSON for ``--trigger learned:PATH``), and ``--trigger
cascade:CHEAP,COSTLY`` picks a cascade's band (`benchmarks/cascade_band.py`)."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks.cli.bench import (add_data_args, add_policy_args, bench_config, command_line, data_dir_for,
                                  retriever_options, user_errors)
from corpora.atomic import write_text_atomic
from rag.cli.common import add_model_args, finite_float, log_every, positive_int, show_progress


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("calibrate", help="pick a trigger threshold on a calibration split and check it on a held-out split",
                       description="Runs (or resumes) a benchmark of the trigger, picks the threshold on the even-numbered "
                                   "questions and reports it on the odd-numbered ones.")
    p.add_argument("--trigger", default=None, help="token-confidence | semantic-entropy | quco | any signal | -SIGNAL | "
                   "learned:PATH (its threshold) | cascade:CHEAP,COSTLY (its band); with --relevance-gate: the policy whose "
                   "gate is calibrated (default: always)")
    learn = p.add_argument_group("learned trigger (--learn)")
    learn.add_argument("--learn", action="store_true", help="fit a logistic regression over --signals instead of a threshold")
    learn.add_argument("--signals", default=None, help="comma-separated trigger names whose scores are the features, e.g. "
                       "msp,perplexity,mean-entropy,question-length,retrieval-top1")
    learn.add_argument("--label", default="helps", choices=("helps", "needed"),
                       help="what the model predicts: retrieval helps (closed-book wrong, with retrieval right) or is "
                            "needed (closed-book wrong) (default: helps)")
    learn.add_argument("--folds", type=positive_int, default=5, help="cross-validation folds (default: 5; fewer when a class is rare)")
    learn.add_argument("--write-model", default=None, metavar="FILE",
                       help="where to write the model JSON (default: learned-LABEL.json in the run folder)")
    p.add_argument("--costly-share", type=finite_float, default=None, metavar="S",
                   help="cascade: at most this fraction of questions may compute COSTLY (default: 0.5)")
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
    from benchmarks.runner import BenchError
    from rag.pipeline import check_concurrency

    with user_errors():
        check_concurrency(args.model, args.concurrency)
        if args.budget is not None and not 0.0 <= args.budget <= 1.0:
            raise BenchError(f"--budget is a retrieval rate in [0, 1], got {args.budget}")
        if args.learn:
            return _learn(args)
        if args.relevance_gate is not None:
            return _gate(args)
        if not args.trigger:
            raise BenchError("--trigger is required (or --learn --signals a,b,c)")
        if args.signals is not None or args.write_model:
            raise BenchError("--signals and --write-model apply to --learn")
        if args.trigger.startswith("cascade:"):
            return _cascade(args)
        if args.costly_share is not None:
            raise BenchError("--costly-share applies to --trigger cascade:CHEAP,COSTLY")
        if args.trigger in ("never", "always") or "+" in args.trigger or "&" in args.trigger:
            raise BenchError(f"{args.trigger!r} has no threshold to calibrate")
        return _threshold(args)


def _cached_records(args: argparse.Namespace, policies: tuple[str, ...]):
    """Run (or resume) the benchmark of ``policies`` and return its folder, settings and this run's records."""
    from benchmarks.bench import default_out_dir, load_examples, run_benchmark, select
    from benchmarks.runner import read_results

    data_dir = data_dir_for(args)
    config = bench_config(args, policies)
    out = Path(args.out) if args.out else default_out_dir(config)
    config = _reuse_policies(out, config)
    run_benchmark(config, out, data_dir, args.limit, index=args.index, progress=show_progress(), metric=args.metric,
                  command=command_line("calibrate"), retriever_options=retriever_options(args), log_every=log_every(args),
                  concurrency=args.concurrency)
    return out, config, select(read_results(out, check=True), load_examples(config, data_dir, args.limit))


def _reuse_policies(out: Path, config):
    """An existing run in ``out`` with the same settings and more policies (an `arag bench` run that
    also holds the ones needed here) is used as it is, instead of being refused as another run."""
    from dataclasses import replace

    from benchmarks.runner import MANIFEST, read_run_manifest, results_key

    if not (out / MANIFEST).exists():
        return config
    old = results_key(read_run_manifest(out)["config"])
    have = tuple(old.get("policies") or ())
    same = {k: v for k, v in old.items() if k != "policies"} == {k: v for k, v in config.key().items() if k != "policies"}
    return replace(config, policies=have) if same and set(config.policies) <= set(have) else config


def _check_config_destination(args: argparse.Namespace) -> None:
    from rag.config import check_writable_config

    if args.write_config:  # before the calibration runs, not after
        check_writable_config(Path(args.write_config))


def _write_settings(args: argparse.Namespace, trigger: str, setting: dict) -> None:
    from rag.config import write_trigger_settings

    if args.write_config:
        write_trigger_settings(Path(args.write_config), trigger, setting)
        print(f"written to {args.write_config} (use: arag ask --config {args.write_config} --trigger {trigger} ...)")


def _threshold(args: argparse.Namespace) -> int:
    from benchmarks.calibration import calibrate, render
    from benchmarks.runner import read_run_manifest
    from triggers.registry import base_part

    _check_config_destination(args)
    out, _, records = _cached_records(args, ("never", "always", args.trigger))
    result = calibrate(records, args.trigger, args.metric, args.budget)
    configured = (read_run_manifest(out).get("thresholds") or {}).get(args.trigger)
    table = render(result, configured)
    write_text_atomic(out / f"calibration-{_file_safe(args.trigger)}.json", json.dumps(result, indent=2, default=str) + "\n")
    print(table)
    print(f"\nchosen {args.trigger} settings: {result['setting']}")
    _write_settings(args, base_part(args.trigger), result["setting"])  # -a reads a's table
    return 0


def _gate(args: argparse.Namespace) -> int:
    """``--relevance-gate``: the gate's threshold for ``--trigger``'s gated policy (default: always@gate),
    from a run that kept a draft for every number of kept passages."""
    from benchmarks.gate_calibration import calibrate_gate, render
    from benchmarks.runner import BenchError
    from rag.config import write_loop_settings

    trigger = args.trigger or "always"
    if trigger == "never" or args.budget is not None or args.costly_share is not None:
        raise BenchError("--relevance-gate calibrates the gate of a retrieving policy (--trigger, default always); "
                         "--budget and --costly-share do not apply")
    _check_config_destination(args)
    args.gate_sweep = True
    policies = tuple(dict.fromkeys(("never", "always", trigger, f"{trigger}@gate")))
    out, _, records = _cached_records(args, policies)
    result = calibrate_gate(records, trigger, args.metric)
    write_text_atomic(out / f"calibration-gate-{_file_safe(trigger)}.json", json.dumps(result, indent=2, default=str) + "\n")
    print(render(result))
    print(f"\nchosen relevance gate: {result['setting']['relevance_gate']}")
    if args.write_config:
        write_loop_settings(Path(args.write_config), result["setting"])
        print(f"written to [loop] of {args.write_config} (use: arag ask --config {args.write_config} ...)")
    return 0


def _file_safe(name: str) -> str:
    """A trigger name as part of a file name (``learned:PATH`` holds slashes)."""
    import re

    return re.sub(r"[^A-Za-z0-9._+-]+", "_", name)


def _cascade(args: argparse.Namespace) -> int:
    from benchmarks.cascade_band import DEFAULT_SHARE, calibrate_cascade, members, render
    from benchmarks.runner import BenchError
    from triggers.registry import trigger_parts
    from triggers import TriggerConfigError

    try:
        trigger_parts(args.trigger)
    except TriggerConfigError as exc:
        raise BenchError(str(exc)) from None
    if args.budget is not None:
        raise BenchError("--budget applies to thresholds; a cascade's band is limited by --costly-share")
    _check_config_destination(args)
    out, _, records = _cached_records(args, ("never", "always", *members(args.trigger)))
    share = DEFAULT_SHARE if args.costly_share is None else args.costly_share
    result = calibrate_cascade(records, args.trigger, args.metric, share)
    write_text_atomic(out / f"calibration-{_file_safe(args.trigger)}.json", json.dumps(result, indent=2) + "\n")
    print(render(result))
    print(f"\nchosen {args.trigger} settings: {result['setting']}")
    _write_settings(args, args.trigger, result["setting"])
    return 0


def _learn(args: argparse.Namespace) -> int:
    from benchmarks.learn import learn, render
    from benchmarks.runner import BenchError, parse_policies
    from corpora.extras import require
    from corpora.jsonfloat import encode_floats

    require("learn", "arag calibrate --learn")
    if not args.signals:
        raise BenchError("--learn needs --signals a,b,c (trigger names whose scores are the features)")
    if args.trigger or args.write_config or args.costly_share is not None:
        raise BenchError("--learn takes --signals; --trigger, --write-config and --costly-share are for the other modes")
    signals = parse_policies(args.signals)
    fixed = [s for s in signals if s in ("never", "always") or "+" in s or "&" in s or s.startswith(("learned:", "cascade:"))]
    if fixed:
        raise BenchError(f"{', '.join(fixed)}: not a single signal (features are single triggers' scores)")
    dest = Path(args.write_model) if args.write_model else None
    if dest is not None:
        _check_writable(dest)
    out, config, records = _cached_records(args, ("never", "always", *signals))
    model, held_out = learn(records, signals, config.trigger_options, args.label, args.metric, args.budget, args.folds, config.seed)
    model.extra["training"] = {"dataset": config.dataset, "questions_file": config.questions, "split": config.split,
                               "relation": config.relation, "limit": args.limit, "shuffle_seed": config.shuffle_seed,
                               "train": "even positions of the question order", "held_out": "odd positions",
                               "model": config.model, "retriever": config.retriever, "corpus": config.corpus, "k": config.k,
                               "run_folder": str(out)}
    dest = dest or out / f"learned-{args.label}.json"
    write_text_atomic(dest, json.dumps(encode_floats(model.to_json()), indent=2) + "\n")
    print(render(held_out))
    print(f"\nmodel written to {dest} (use: arag ask --trigger learned:{dest} ...)")
    return 0


def _check_writable(path: Path) -> None:
    """The model's destination takes a file, checked before the benchmark runs."""
    from benchmarks.runner import BenchError

    if path.exists() and not path.is_file():
        raise BenchError(f"{path}: not a file")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BenchError(f"{path}: cannot write there ({exc.strerror or exc})") from None
    import os

    if not os.access(path.parent, os.W_OK):
        raise BenchError(f"{path}: cannot write there (folder not writable)")
