"""`arag corpus index PATH... --out DIR`: the corpus-statistics (infini-gram) index the QuCo trigger reads."""
from __future__ import annotations

import argparse
import sys


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("corpus", help="corpus statistics for the QuCo trigger")
    csub = p.add_subparsers(dest="corpus_command", required=True, metavar="ACTION")
    b = csub.add_parser("index", help="build an infini-gram index of a (pretraining-corpus sample) for co-occurrence counts")
    b.add_argument("paths", nargs="+", help="JSONL(.gz) files or folders of .txt/.md")
    b.add_argument("--out", required=True, help="index folder to write")
    b.add_argument("--tokenizer", default=None, help="tokenizer id or folder (default: the default model's tokenizer)")
    b.set_defaults(func=run_index)


def run_index(args: argparse.Namespace) -> int:
    """Build the index and say what was indexed; bad input raises `CorpusError` (exit 2)."""
    from corpora.extras import require
    from corpora.infinigram_index import build_index
    from rag.cli.common import show_progress

    require("quco", "arag corpus index")
    tokenizer = args.tokenizer
    if tokenizer is None:  # the default model's tokenizer, so counts line up with what it generates
        from rag.models.hf_model import load_default_tokenizer

        tokenizer = load_default_tokenizer()
    report = build_index(list(args.paths), args.out, tokenizer, progress=show_progress())
    print(f"indexed {report.documents:,} documents, {report.tokens:,} tokens "
          f"({report.text_bytes / 1e6:.1f} MB of text) in {report.seconds:.1f} s "
          f"({report.mb_per_second:.2f} MB/s) → {report.path}", file=sys.stderr)
    return 0
