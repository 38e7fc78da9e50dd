"""benchmarks/compare_runs.py: two run folders of the same questions side by side. The table on the
models page is what it prints for the committed Gemma runs (in-process and through llama-server)."""
from __future__ import annotations

import json

from benchmarks.compare_runs import compare, main

GEMMA = "docs/benchmarks/gemma3-270m"


def test_the_models_page_table_is_what_it_prints_for_the_committed_runs(repo_root, capsys, monkeypatch):
    monkeypatch.chdir(repo_root)
    assert main([f"{GEMMA}/in-process", f"{GEMMA}/llama-server"]) == 0
    printed = capsys.readouterr().out.strip().splitlines()
    page = (repo_root / "docs" / "models.md").read_text(encoding="utf-8")
    assert len(printed) == 4 and all(line in page for line in printed), printed
    # one set folder against another: paired whatever the folders' names
    assert main([f"{GEMMA}/in-process/nq_open_oracle", f"{GEMMA}/llama-server/nq_open_oracle"]) == 0
    assert printed[-1].split("|")[2:] == capsys.readouterr().out.strip().splitlines()[-1].split("|")[2:]


def test_questions_pair_by_id_and_decisions_by_trigger():
    def rec(qid, cb, rag, fired):
        return {"id": qid, "closed_book": {"text": cb}, "rag": {"text": rag}, "signals": {"t": {"fired": fired}}}

    a = [rec("1", "x", "y", True), rec("2", "x", "y", False), rec("3", "x", "y", False)]
    b = [rec("2", "x", "z", True), rec("1", "x", "y", True)]  # another order; "3" is missing
    assert compare(a, b) == {"questions": 2, "closed_book": 2, "rag": 1, "decisions": {"t": 1}}


def test_runs_without_a_common_set_are_one_line_and_exit_2(tmp_path, capsys):
    (tmp_path / "a" / "s1").mkdir(parents=True)
    (tmp_path / "a" / "s1" / "results.jsonl").write_text(json.dumps({"id": "1"}) + "\n")
    (tmp_path / "b").mkdir()
    assert main([str(tmp_path / "a"), str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "no set in common" in err and err.count("\n") == 1


def test_a_damaged_result_line_is_one_line_naming_file_and_line(tmp_path, capsys, repo_root):
    import shutil

    for name in ("a", "b"):
        shutil.copytree(repo_root / GEMMA / "in-process" / "nq_open_oracle", tmp_path / name)
    with open(tmp_path / "b" / "results.jsonl", "a", encoding="utf-8") as fh:
        fh.write('{"id": "x", "question": \n')  # damaged, then a complete line after it
        fh.write(json.dumps({"id": "y"}) + "\n")
    assert main([str(tmp_path / "a"), str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "results.jsonl:101" in err and err.count("\n") == 1, err
