"""QA sets of ``../shared/data`` as one `QAExample` type, plus the corpus each set can retrieve from.

Each loader is a short function reading the schema its folder's PROVENANCE.md describes. Sets that
carry their own passages (NQ-open-oracle, HotpotQA distractor, MuSiQue, FlashRAG toy) name their
corpus file; ``corpus_paths(..., "union")`` pools every shared corpus (more distractors).
"""
from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

from corpora.documents import Document
from corpora.qa_files import DatasetError, QAExample, Record, answers_of, read_csv, read_jsonl

REPO_ROOT = Path(__file__).resolve().parents[1]
CORPUS_CHOICES = ("own", "union")
# Every passage collection in shared/data (the "union" corpus); the Wikipedia stand-in holds no answers
# of these sets, so it only adds distractors.
UNION_CORPORA = (
    "nq_open_oracle/corpus.jsonl.gz",
    "hotpotqa_dev_distractor_500/corpus.jsonl.gz",
    "musique_ans_dev_200/corpus.jsonl.gz",
    "flashrag_toy/sample_data.jsonl",
    "wiki_paragraphs_standin/wiki_paragraphs.jsonl.gz",
)


def resolve_data_dir(explicit: str | os.PathLike | None = None) -> Path:
    """``--data-dir``, else ``$ARAG_DATA_DIR``, else ``../shared/data`` beside the repository."""
    if explicit:
        path, origin = Path(explicit), "--data-dir"
    elif os.environ.get("ARAG_DATA_DIR"):
        path, origin = Path(os.environ["ARAG_DATA_DIR"]), "ARAG_DATA_DIR"
    else:
        path, origin = REPO_ROOT.parent / "shared" / "data", "the default ../shared/data"
    if not path.is_dir():
        raise DatasetError(f"data folder not found: {path} (from {origin}; set --data-dir or ARAG_DATA_DIR)")
    return path


def data_dir_or_exit(explicit: str | os.PathLike | None = None) -> Path:
    """`resolve_data_dir` for stand-alone scripts: a missing folder ends the script with its one-line message."""
    try:
        return resolve_data_dir(explicit)
    except DatasetError as exc:
        raise SystemExit(f"error: {exc}") from None


def _gold_passage(rec: Record) -> dict[str, str]:
    """NQ-open-oracle's passage as metadata: ``ctxs`` holds exactly the gold one (see its PROVENANCE.md)."""
    if not isinstance(rec["ctxs"], list) or not rec["ctxs"]:
        raise DatasetError(f"{rec.where}: field 'ctxs' holds no gold passage")
    gold = rec["ctxs"][0]
    return {"gold_title": gold["title"], "gold_text": gold["text"]}


# -- loaders: (data_dir, split) -> examples ------------------------------------------------------
NQ_OPEN_SPLITS = {"dev": "NQ-open.dev.jsonl", "efficientqa-dev": "NQ-open.efficientqa.dev.1.1.jsonl",
                  "efficientqa-test": "NQ-open.efficientqa.test.1.1.jsonl"}


def _nq_open(d: Path, split: str) -> list[QAExample]:
    path = d / "nq_open" / NQ_OPEN_SPLITS[split]
    return [QAExample(f"nq_open:{split}:{i}", r["question"], answers_of(r["answer"], r))
            for i, r in enumerate(read_jsonl(path))]


def _nq_open_oracle(d: Path, split: str) -> list[QAExample]:
    path = d / "nq_open_oracle" / "nq-open-oracle.jsonl.gz"
    return [QAExample(f"nqo:{i}", r["question"], answers_of(r["answers"], r), _gold_passage(r))
            for i, r in enumerate(read_jsonl(path))]


def _hotpotqa(d: Path, split: str) -> list[QAExample]:
    path = d / "hotpotqa_dev_distractor_500" / "dev_subsampled.jsonl.gz"
    return [QAExample(r["question_id"], r["question_text"],
                      answers_of([s for a in r["answers_objects"] for s in a["spans"]], r),
                      {"supporting_titles": [c["title"] for c in r["contexts"] if c.get("is_supporting")]})
            for r in read_jsonl(path)]


def _musique(d: Path, split: str) -> list[QAExample]:
    path = d / "musique_ans_dev_200" / "musique_dev_200.jsonl.gz"
    return [QAExample(r["id"], r["question"], answers_of([r["answer"], *r.get("answer_aliases", [])], r),
                      {"hops": len(r.get("question_decomposition", []))})
            for r in read_jsonl(path)]


def _popqa(d: Path, split: str) -> list[QAExample]:
    """The verbatim PopQA question (``question_popqa_original``), as the literature reports on; the
    LongTailQA rewrite is kept in the metadata."""
    path = d / "popqa_longtail" / "popqa_longtail.jsonl"
    return [QAExample(f"popqa:{r['id']}", r.get("question_popqa_original") or r["question"],
                      answers_of(r["possible_answers"], r),
                      {"s_pop": r.get("s_pop"), "prop": r.get("prop"), "question_disambiguated": r["question"]})
            for r in read_jsonl(path)]


def _entity_questions(d: Path, split: str) -> list[QAExample]:
    path = d / "entity_questions" / f"{split}.jsonl.gz"
    return [QAExample(f"eq:{split}:{i}", r["question"], answers_of(r["answers"], r),
                      {"relation": r["relation"]})
            for i, r in enumerate(read_jsonl(path))]


def _triviaqa(d: Path, split: str) -> list[QAExample]:
    path = d / "triviaqa_sample_200" / "triviaqa_200.jsonl"
    return [QAExample(f"tqa:{i}", r["question"], answers_of(r["answers"], r))
            for i, r in enumerate(read_jsonl(path))]


def _truthfulqa(d: Path, split: str) -> list[QAExample]:
    """Generation setting: every "Correct Answers" entry (";"-separated) is a reference."""
    path = d / "truthfulqa" / "TruthfulQA.csv"
    out = []
    for i, r in enumerate(read_csv(path)):
        refs = [a.strip() for a in r["Correct Answers"].split(";")] + [r["Best Answer"]]
        out.append(QAExample(f"tqa-truthful:{i}", r["Question"], answers_of(list(dict.fromkeys(refs)), r),
                             {"category": r["Category"], "type": r["Type"],
                              "incorrect_answers": [a.strip() for a in r["Incorrect Answers"].split(";") if a.strip()]}))
    return out


def _flashrag_toy(d: Path, split: str) -> list[QAExample]:
    path = d / "flashrag_toy" / "nq_test.jsonl"
    return [QAExample(r["id"], r["question"], answers_of(r["golden_answers"], r))
            for r in read_jsonl(path)]


def shuffled(examples: list[QAExample], limit: int | None, shuffle_seed: int | None) -> list[QAExample]:
    """A seeded shuffle (``shuffle_seed=None`` keeps file order), then the first ``limit``."""
    if shuffle_seed is not None:
        random.Random(shuffle_seed).shuffle(examples)
    return examples[:limit] if limit else examples


@dataclass(frozen=True)
class DatasetSpec:
    load: Callable[[Path, str], list[QAExample]]
    splits: tuple[str, ...]
    corpus: str | None = None  # the set's own passages, relative to the data folder


DATASETS: dict[str, DatasetSpec] = {
    "nq_open": DatasetSpec(_nq_open, tuple(NQ_OPEN_SPLITS)),
    "nq_open_oracle": DatasetSpec(_nq_open_oracle, ("test",), "nq_open_oracle/corpus.jsonl.gz"),
    "hotpotqa_dev_distractor_500": DatasetSpec(_hotpotqa, ("dev",), "hotpotqa_dev_distractor_500/corpus.jsonl.gz"),
    "musique_ans_dev_200": DatasetSpec(_musique, ("dev",), "musique_ans_dev_200/corpus.jsonl.gz"),
    "popqa_longtail": DatasetSpec(_popqa, ("test",)),
    "entity_questions": DatasetSpec(_entity_questions, ("dev", "test")),
    "triviaqa_sample_200": DatasetSpec(_triviaqa, ("dev",)),
    "truthfulqa": DatasetSpec(_truthfulqa, ("validation",)),
    "flashrag_toy": DatasetSpec(_flashrag_toy, ("test",), "flashrag_toy/sample_data.jsonl"),
}


def _spec(name: str) -> DatasetSpec:
    if name not in DATASETS:
        raise DatasetError(f"unknown dataset {name!r}; choose from {', '.join(DATASETS)}")
    return DATASETS[name]


def load_dataset(name: str, data_dir: Path, split: str | None = None, relation: str | None = None,
                 limit: int | None = None, shuffle_seed: int | None = 0) -> list[QAExample]:
    """The examples of ``name``/``split`` in a fixed order: a seeded shuffle (``shuffle_seed=None``
    keeps file order, which for some sets is grouped by topic or relation), then the first ``limit``."""
    spec = _spec(name)
    split = split or spec.splits[0]
    if split not in spec.splits:
        raise DatasetError(f"dataset {name} has no split {split!r}; choose from {', '.join(spec.splits)}")
    examples = spec.load(data_dir, split)
    if relation is not None:
        if name != "entity_questions":
            raise DatasetError("--relation only applies to entity_questions")
        examples = [e for e in examples if e.metadata.get("relation") == relation]
        if not examples:
            raise DatasetError(f"entity_questions/{split} has no relation {relation!r}")
    return shuffled(examples, limit, shuffle_seed)


def corpus_paths(name: str, data_dir: Path, choice: str = "own") -> list[Path]:
    """The passages to retrieve from: the set's own (``own``) or every shared corpus (``union``).
    A set without passages (open-domain over Wikipedia) only has the union."""
    spec = _spec(name)
    if choice not in CORPUS_CHOICES:
        raise DatasetError(f"unknown corpus choice {choice!r}; choose from {', '.join(CORPUS_CHOICES)}")
    if choice == "own":
        if spec.corpus is None:
            raise DatasetError(f"dataset {name} carries no passages of its own; use --corpus union")
        rels: tuple[str, ...] = (spec.corpus,)
    else:
        rels = UNION_CORPORA
    paths = [data_dir / r for r in rels]
    missing = [str(p) for p in paths if not p.exists()]
    if missing:
        raise DatasetError(f"corpus file not found: {', '.join(missing)}")
    return paths


def nq_oracle_gold(data_dir: Path, docs: Sequence[Document]) -> list[tuple[str, str]]:
    """(question, id of its gold passage in ``docs``) for every NQ-open-oracle question, in file order.

    The gold passage is found by exact (title, text): recall benchmarks score a retriever by whether
    that id is in its top k."""
    by_content = {(d.title, d.text): d.id for d in docs}
    out = []
    for ex in load_dataset("nq_open_oracle", data_dir, shuffle_seed=None):
        gold = by_content.get((ex.metadata["gold_title"], ex.metadata["gold_text"]))
        if gold is None:
            raise DatasetError(f"the gold passage of NQ-open-oracle question {ex.id} ({ex.question!r}) is not in the corpus")
        out.append((ex.question, gold))
    return out


def default_corpus_choice(name: str) -> str:
    return "own" if _spec(name).corpus else "union"
