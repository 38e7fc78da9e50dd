"""Subcommands from installed packages (the ``adaptive_rag.commands`` entry points): how the benchmark
commands join `arag` from above `rag`, and what a broken one does to the rest of the command line."""
from __future__ import annotations

import importlib
import tomllib
from importlib.metadata import EntryPoint, entry_points
from pathlib import Path

import pytest

import rag.cli
from rag.cli import COMMAND_GROUP, build_parser, main

ROOT = Path(__file__).resolve().parents[1]
DECLARED = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["entry-points"][COMMAND_GROUP]


def test_each_declared_command_is_a_benchmarks_module_with_register():
    assert set(DECLARED) == {"bench", "calibrate", "study"}
    for name, module in DECLARED.items():
        assert module.startswith("benchmarks.cli."), (name, module)
        assert callable(importlib.import_module(module).register), module


def test_the_installed_metadata_declares_them():
    """Stale metadata (an install from before the entry points) hides these commands from `arag`."""
    installed = {e.name: e.value for e in entry_points(group=COMMAND_GROUP)}
    assert installed == DECLARED, "refresh the install's metadata: pip install --no-deps -e ."


def test_a_broken_command_is_one_line_and_the_others_still_work(monkeypatch, capsys):
    broken = EntryPoint(name="broken", value="no_such_package.cli", group=COMMAND_GROUP)
    monkeypatch.setattr(rag.cli, "entry_points", lambda group: [broken])
    parser = build_parser()
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "'broken'" in err and "no_such_package.cli" in err and "Traceback" not in err
    assert parser.parse_args(["ask", "a question"]).command == "ask"
    with pytest.raises(SystemExit) as exc:
        main(["broken"])
    assert exc.value.code == 2
