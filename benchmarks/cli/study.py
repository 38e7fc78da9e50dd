"""`arag study own-text-entropy|rephrase|confidence-ranked --dataset D`: the side studies
(`benchmarks/studies.py`); tables go to ``study_<name>.md`` in the run folder and into its REPORT.md."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from benchmarks.cli.bench import user_errors
from rag.cli.common import add_model_args, finite_float, positive_int, show_progress

STUDY_NAMES = ("own-text-entropy", "rephrase", "confidence-ranked")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("study", help="side studies: own-text entropy, rephrase robustness, confidence-ranked answers")
    p.add_argument("name", choices=STUDY_NAMES, help="which study")
    p.add_argument("--dataset", default="nq_open_oracle", help="a set in the data folder (default: nq_open_oracle)")
    p.add_argument("--split", default=None, help="the dataset's split")
    p.add_argument("--limit", type=positive_int, default=50, help="questions (default: 50)")
    p.add_argument("--data-dir", default=None, help="the shared data folder (default: $ARAG_DATA_DIR, else ../shared/data)")
    p.add_argument("--samples", type=positive_int, default=10, help="confidence-ranked: samples per question (default: 10)")
    p.add_argument("--temperature", type=finite_float, default=1.0, help="confidence-ranked: sampling temperature (default: 1.0)")
    p.add_argument("--seed", type=int, default=0, help="confidence-ranked: sampling seed (default: 0)")
    add_model_args(p)
    p.add_argument("--out", default=None, metavar="DIR", help="folder for study_<name>.{json,md}; a bench run folder gets them in its report (default: runs/study)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from benchmarks.bench import check_out_dir
    from benchmarks.datasets import load_dataset, resolve_data_dir
    from benchmarks.studies import STUDIES
    from rag.pipeline import load_language_model

    out = Path(args.out or Path("runs") / "study")
    with user_errors():
        examples = load_dataset(args.dataset, resolve_data_dir(args.data_dir), args.split, limit=args.limit)
        check_out_dir(out)
    lm = load_language_model(args.model, args.concurrency)
    study, markdown = STUDIES[args.name]
    progress = (lambda xs: tqdm(xs, desc=args.name, unit="q")) if show_progress() else iter
    extra = {"samples": args.samples, "temperature": args.temperature, "seed": args.seed} if args.name == "confidence-ranked" else {}
    result = study(lm, examples, progress=progress, **extra)
    result.update(dataset=args.dataset, model=getattr(lm, "name", args.model))
    md = markdown(result) + f"\n\n(`arag study {args.name} --dataset {args.dataset} --limit {args.limit}`)\n"
    (out / f"study_{args.name}.json").write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")
    (out / f"study_{args.name}.md").write_text(md, encoding="utf-8")
    _refresh_report(out)
    print(md)
    return 0


def _refresh_report(out: Path) -> None:
    """A bench run folder: rebuild its REPORT.md so the study table appears there."""
    manifest, results = out / "run.json", out / "results.jsonl"
    if not (manifest.exists() and results.exists()):
        return
    from benchmarks.report import write_report
    from benchmarks.runner import read_results, read_run_manifest

    with user_errors():
        run = read_run_manifest(out)
        records = read_results(out, check=True)
    if records:
        write_report(records, run["config"]["policies"], out, thresholds=run.get("thresholds"))
