"""`arag corpus index PATH... --out DIR [--tokenizer ID_OR_PATH]` (argparse lives in `rag`)."""
from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Sequence

from corpora.infinigram_index import build_index


def corpus_index_command(paths: Sequence[str | Path], out: str | Path, tokenizer: Any, progress: bool = True) -> int:
    """Build the index and print what was indexed; bad input raises `CorpusError` (the CLI exits 2).

    ``tokenizer`` is a folder, a cached hub id or a tokenizer object; the caller resolves "none
    given" to the default model's tokenizer.
    """
    report = build_index(list(paths), out, tokenizer, progress=progress)
    print(f"indexed {report.documents:,} documents, {report.tokens:,} tokens "
          f"({report.text_bytes / 1e6:.1f} MB of text) in {report.seconds:.1f} s "
          f"({report.mb_per_second:.2f} MB/s) → {report.path}", file=sys.stderr)
    return 0
