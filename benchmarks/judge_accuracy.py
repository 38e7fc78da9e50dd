"""Accuracy of each equivalence judge on labelled answer pairs built from the shared QA data.

Pairs (deterministic, ``--seed``):
- equivalent: two gold answers of one question that differ after SQuAD normalisation (TriviaQA
  aliases, PopQA ``possible_answers``, MuSiQue ``answer`` + ``answer_aliases``);
- not equivalent: a gold answer of the question against a gold answer of another question of the
  same dataset whose answers share none with it; for PopQA half of them come from a question with
  the same relation ("same-type": a city against a city), which is what sampled answers look like.
One negative per positive. Questions are split in half: every setting (containment, F1 or cosine
thresholds) is chosen on the dev half and reported on the test half, so the table is not tuned
on what it reports. The clustering column is the mean adjusted Rand index of greedy clustering
(`triggers.clustering`) on test groups made of one question's answers mixed with a same-type
question's answers.

    .venv/bin/python benchmarks/judge_accuracy.py                  # lexical, embedding, combination
    .venv/bin/python benchmarks/judge_accuracy.py --lm-pairs 80    # + the default LM as judge (slow)
    .venv/bin/python benchmarks/judge_accuracy.py --nli /path/to/deberta-mnli   # + an NLI model you have

Data: ``$ARAG_DATA_DIR`` or ``../shared/data`` beside the repository.
"""
from __future__ import annotations

import argparse
import os
import random
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from benchmarks.datasets import DatasetError, data_dir_or_exit, load_dataset  # noqa: E402
from corpora.text import normalize_answer  # noqa: E402
from triggers.clustering import PairJudgments, get_semantic_ids  # noqa: E402
from triggers.judges.base import EitherJudge, EquivalenceJudge  # noqa: E402
from triggers.judges.embedding import EmbeddingJudge  # noqa: E402
from triggers.judges.lexical import LexicalJudge  # noqa: E402

MAX_ALIASES = 6  # per question, so a 14-alias TriviaQA entry does not dominate


@dataclass(frozen=True)
class Item:
    question: str
    answers: tuple[str, ...]  # distinct after normalisation
    source: str
    kind: str | None = None  # answer type (PopQA relation) for same-type negatives


@dataclass(frozen=True)
class Pair:
    question: str
    a: str
    b: str
    same: bool
    source: str
    negative: str = ""  # "random" | "same-type" for negatives


def _distinct(answers: Sequence[str]) -> tuple[str, ...]:
    seen: dict[str, str] = {}
    for a in answers:
        key = normalize_answer(a)
        if key and key not in seen:
            seen[key] = a.strip()
    return tuple(seen.values())[:MAX_ALIASES]


def load_items(root: Path) -> list[Item]:
    """Every question of the three sets with aliases, in file order. PopQA's question is the
    disambiguated LongTailQA rewrite (what these pairs were built from) and its relation the type."""
    def load(name: str):
        try:
            return load_dataset(name, root, shuffle_seed=None)
        except DatasetError as exc:
            sys.exit(f"error: {exc}")

    items = [Item(ex.question, _distinct(ex.answers), "triviaqa") for ex in load("triviaqa_sample_200")]
    items += [Item(ex.metadata["question_disambiguated"], _distinct(ex.answers), "popqa", ex.metadata["prop"])
              for ex in load("popqa_longtail")]
    items += [Item(ex.question, _distinct(ex.answers), "musique") for ex in load("musique_ans_dev_200")]
    return [it for it in items if it.answers]


def _disjoint(x: Item, y: Item) -> bool:
    return x.question != y.question and not {normalize_answer(a) for a in x.answers} & {normalize_answer(a) for a in y.answers}


def _partner(item: Item, pool: list[Item], rng: random.Random, same_type: bool) -> Item | None:
    cands = [o for o in pool if o.source == item.source and (not same_type or o.kind == item.kind)]
    for _ in range(50):
        other = rng.choice(cands)
        if _disjoint(item, other):
            return other
    return None


def build_pairs(items: list[Item], rng: random.Random, per_question: int = 2) -> list[Pair]:
    """Equivalent pairs, each unordered answer pair once (PopQA repeats "politician"/"political
    figure" across hundreds of questions), each followed by one non-equivalent pair."""
    pairs: list[Pair] = []
    used: set[frozenset[str]] = set()
    for item in items:
        combos = [(a, b) for i, a in enumerate(item.answers) for b in item.answers[i + 1:]
                  if frozenset((normalize_answer(a), normalize_answer(b))) not in used]
        for k, (a, b) in enumerate(rng.sample(combos, min(per_question, len(combos)))):
            used.add(frozenset((normalize_answer(a), normalize_answer(b))))
            pairs.append(Pair(item.question, a, b, True, item.source))
            same_type = item.kind is not None and k % 2 == 0
            other = _partner(item, items, rng, same_type)
            if other is not None:
                pairs.append(Pair(item.question, rng.choice(item.answers), rng.choice(other.answers), False,
                                  item.source, "same-type" if same_type else "random"))
    return pairs


def build_groups(items: list[Item], rng: random.Random) -> list[tuple[str, list[str], list[int]]]:
    """(question, answers, true cluster ids): one question's answers mixed with a same-type question's."""
    groups = []
    for item in items:
        if len(item.answers) < 2:
            continue
        other = _partner(item, items, rng, same_type=item.kind is not None)
        if other is None:
            continue
        labelled = [(a, 0) for a in item.answers] + [(a, 1) for a in other.answers]
        rng.shuffle(labelled)
        groups.append((item.question, [a for a, _ in labelled], [c for _, c in labelled]))
    return groups


def split(items: list[Item], seed: int) -> tuple[list[Item], list[Item]]:
    shuffled = items[:]
    random.Random(seed).shuffle(shuffled)
    half = len(shuffled) // 2
    return shuffled[:half], shuffled[half:]


# -- scoring -----------------------------------------------------------------------------------------
def accuracy(verdicts: Sequence[bool], pairs: Sequence[Pair]) -> dict[str, float]:
    tp = sum(v and p.same for v, p in zip(verdicts, pairs))
    fp = sum(v and not p.same for v, p in zip(verdicts, pairs))
    pos = sum(p.same for p in pairs)
    correct = sum(v == p.same for v, p in zip(verdicts, pairs))
    hard = [(v, p) for v, p in zip(verdicts, pairs) if p.negative == "same-type"]
    return {
        "accuracy": correct / len(pairs),
        "precision": tp / (tp + fp) if tp + fp else 0.0,
        "recall": tp / pos if pos else 0.0,
        "same_type_neg_acc": sum(not v for v, _ in hard) / len(hard) if hard else float("nan"),
    }


def mean_ari(judge: EquivalenceJudge, groups) -> float:
    from corpora.extras import require

    adjusted_rand_score = require("learn", "the clustering ARI", ["sklearn.metrics"]).adjusted_rand_score

    scores = []
    for question, answers, truth in groups:
        pred = get_semantic_ids(answers, PairJudgments(judge, question)).semantic_ids
        scores.append(adjusted_rand_score(truth, pred))
    return sum(scores) / len(scores)


def choose(candidates: dict[str, Callable[[], EquivalenceJudge]], dev: list[Pair]) -> tuple[str, EquivalenceJudge, float]:
    """The candidate setting with the best dev accuracy."""
    best = None
    for label, build in candidates.items():
        judge = build()
        acc = accuracy([judge.equivalent(p.question, p.a, p.b) for p in dev], dev)["accuracy"]
        if best is None or acc > best[2]:
            best = (label, judge, acc)
    return best


def restated(pair: Pair) -> Pair:
    """The pair as sampled answers look: each answer after the question it answers (the samples of
    a small model mostly restate the question, e.g. "The capital of France is Paris.")."""
    return Pair(pair.question, f"{pair.question} {pair.a}", f"{pair.question} {pair.b}", pair.same, pair.source, pair.negative)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lm-pairs", type=int, default=0, help="also judge this many test pairs with the default LM (slow)")
    ap.add_argument("--nli", default=None, metavar="MODEL", help="also evaluate a local NLI model (folder or cached hub id)")
    args = ap.parse_args()

    rng = random.Random(args.seed)
    dev_items, test_items = split(load_items(data_dir_or_exit()), args.seed)
    dev, test = build_pairs(dev_items, rng), build_pairs(test_items, rng)
    dev_r, test_r = [restated(p) for p in dev], [restated(p) for p in test]
    groups = build_groups(test_items, rng)
    groups_r = [(q, [f"{q} {a}" for a in answers], truth) for q, answers, truth in groups]
    comp = {s: sum(p.source == s for p in test) for s in ("triviaqa", "popqa", "musique")}
    print(f"pairs: dev {len(dev)}, test {len(test)} (test: {sum(p.same for p in test)} equivalent, "
          f"{sum(p.negative == 'same-type' for p in test)} same-type negatives; by source {comp}); "
          f"clustering groups {len(groups)}; each also in question+answer form")

    t0 = time.perf_counter()
    emb = EmbeddingJudge()
    emb.embed(sorted({x for p in dev + test + dev_r + test_r for x in (p.a, p.b)} | {a for g in groups + groups_r for a in g[1]}))
    print(f"embedded all answers in {time.perf_counter() - t0:.1f}s")
    cosines = [round(c / 100, 2) for c in range(30, 100, 5)]
    lexical = {
        **{f"containment, F1>={t}": (lambda t=t: LexicalJudge(f1_threshold=t)) for t in (0.4, 0.5, 0.6, 0.8)},
        "containment": lambda: LexicalJudge(f1_threshold=None),
    }
    families: dict[str, dict[str, Callable[[], EquivalenceJudge]]] = {
        "lexical (equality)": {"exact": lambda: LexicalJudge(containment=False, f1_threshold=None)},
        "lexical": lexical,
        "embedding": {f"cos>={t}": (lambda t=t: EmbeddingJudge(threshold=t, _vectors=emb._vectors)) for t in cosines},
    }
    rows = []

    def report(family: str, label: str, judge: EquivalenceJudge, dev_acc: float) -> None:
        m = accuracy([judge.equivalent(p.question, p.a, p.b) for p in test], test)
        m_r = accuracy([judge.equivalent(p.question, p.a, p.b) for p in test_r], test_r)
        rows.append((family, label, dev_acc, m, m_r, mean_ari(judge, groups), mean_ari(judge, groups_r), len(test)))

    chosen = {}
    for family, candidates in families.items():
        label, judge, dev_acc = choose(candidates, dev + dev_r)
        chosen[family] = (label, candidates[label])
        report(family, label, judge, dev_acc)
    lex_label, lex_build = chosen["lexical"]
    label, judge, dev_acc = choose({
        f"({lex_label}) or cos>={t}": (lambda t=t: EitherJudge((lex_build(), EmbeddingJudge(threshold=t, _vectors=emb._vectors))))
        for t in cosines
    }, dev + dev_r)
    report("lexical+embedding", label, judge, dev_acc)

    if args.nli:
        from triggers.judges.nli import NLIJudge

        judge = NLIJudge.load(args.nli)
        m = accuracy([judge.equivalent(p.question, p.a, p.b) for p in test], test)
        m_r = accuracy([judge.equivalent(p.question, p.a, p.b) for p in test_r], test_r)
        rows.append(("nli", args.nli, float("nan"), m, m_r, mean_ari(judge, groups), mean_ari(judge, groups_r), len(test)))
    if args.lm_pairs:
        from rag.models.hf_model import HFLanguageModel
        from triggers.judges.lm import LMJudge

        sub = random.Random(args.seed).sample(test, min(args.lm_pairs, len(test)))
        sub_r = [restated(p) for p in sub]
        judge = LMJudge(HFLanguageModel.load(None))
        t0 = time.perf_counter()
        m = accuracy([judge.equivalent(p.question, p.a, p.b) for p in sub], sub)
        m_r = accuracy([judge.equivalent(p.question, p.a, p.b) for p in sub_r], sub_r)
        print(f"lm judge: {2 * len(sub)} pairs in {time.perf_counter() - t0:.0f}s")
        rows.append(("lm (default model)", "yes/no prompt, greedy", float("nan"), m, m_r, float("nan"), float("nan"), len(sub)))

    print("\nacc = pair accuracy; P/R = precision/recall of 'equivalent'; hard = accuracy on same-type negatives; "
          "ARI = clustering of mixed answer groups. QA = the question+answer form.")
    print("\n| judge | setting (chosen on dev) | dev acc | test acc | P | R | hard | ARI | test acc QA | P QA | R QA | hard QA | ARI QA | test pairs |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for family, label, dev_acc, m, m_r, ari, ari_r, n in rows:
        print(f"| {family} | {label} | {dev_acc:.3f} | {m['accuracy']:.3f} | {m['precision']:.3f} | {m['recall']:.3f} "
              f"| {m['same_type_neg_acc']:.3f} | {ari:.3f} | {m_r['accuracy']:.3f} | {m_r['precision']:.3f} "
              f"| {m_r['recall']:.3f} | {m_r['same_type_neg_acc']:.3f} | {ari_r:.3f} | {n} |")


if __name__ == "__main__":
    main()
