"""The small corpus and questions that ship inside the package, so the demo runs without ../shared."""
from __future__ import annotations

import json
from pathlib import Path

from corpora.documents import Document, load_documents

DEMO_DIR = Path(__file__).resolve().parent
DEMO_CORPUS = DEMO_DIR / "nq_open_oracle_passages.jsonl.gz"
DEMO_QUESTIONS = DEMO_DIR / "questions.jsonl"


def demo_documents() -> list[Document]:
    """2,600 Wikipedia passages (NQ-open gold passages; see LICENSE.md beside this file)."""
    return load_documents(DEMO_CORPUS)


def demo_questions() -> list[dict]:
    """Questions whose answers are in the demo corpus: ``{"question": str, "answers": [str]}``."""
    return [json.loads(line) for line in DEMO_QUESTIONS.read_text(encoding="utf-8").splitlines() if line.strip()]
