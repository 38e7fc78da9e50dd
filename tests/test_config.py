"""The TOML config file: every mistake names the file and the key (one line, exit 2, before any model
loads), and `arag calibrate --write-config` edits a file without losing its comments or other tables."""
from __future__ import annotations

import pytest

from rag.cli import main


@pytest.mark.parametrize("text, needle", [
    ("[triggers.token-confidence]\nthreshhold = 0.2\n", "[triggers.token-confidence] threshhold: unknown key (did you mean 'threshold'?"),
    ("[triggers.token-confidance]\nthreshold = 0.2\n", "unknown trigger table [triggers.token-confidance] (did you mean 'token-confidence'?"),
    ("[triggers.token-confidence]\nthreshold = true\n", "[triggers.token-confidence] threshold must be a finite number, got True"),
    ("[triggers.quco]\nwindow = 2.5\n", "[triggers.quco] window must be an integer, got 2.5"),
    ("triggers = 5\n", "'triggers' must be a table of per-trigger tables"),
    ("[triggers]\ntoken-confidence = 0.3\n", "triggers.token-confidence must be a table"),
    ("[trigger.token-confidence]\nthreshold = 0.2\n", "unknown key 'trigger' (did you mean 'triggers'?"),
    ("[triggers.token-confidence\n", "invalid config"),
    ("[triggers.quco]\npairing = 3\n", "[triggers.quco] pairing must be a string, got 3"),
    ("[loop]\nno_repeat_ngram_size = 2.5\n", "[loop] no_repeat_ngram_size must be an integer, got 2.5"),
    ("[loop]\nrepetition_penalti = 1.2\n", "[loop] repetition_penalti: unknown key (did you mean 'repetition_penalty'?"),
])
def test_config_mistakes_name_file_and_key(tmp_path, capsys, text, needle):
    cfg = tmp_path / "arag.toml"
    cfg.write_text(text)
    assert main(["ask", "q?", "--config", str(cfg), "--index", str(tmp_path / "no-index")]) == 2
    err = capsys.readouterr().err
    assert str(cfg) in err and needle in err and err.count("\n") == 1, err


def test_arag_config_naming_a_missing_file(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ARAG_CONFIG", str(tmp_path / "gone.toml"))
    assert main(["ask", "q?", "--index", str(tmp_path / "no-index")]) == 2
    assert "gone.toml: config file not found (named by ARAG_CONFIG)" in capsys.readouterr().err


def test_a_bad_value_the_trigger_rejects_names_the_config_file():
    from triggers.registry import build_trigger
    from triggers.base import TriggerConfigError

    with pytest.raises(TriggerConfigError, match=r"samples must be .* \(with the settings of my\.toml \[triggers\.semantic-entropy\]\)"):
        build_trigger("semantic-entropy", per_trigger={"semantic-entropy": {"samples": 1}}, config_file="my.toml")


def test_write_config_keeps_comments_and_other_tables(tmp_path):
    import tomllib

    from rag.config import load_config, write_trigger_settings

    cfg = tmp_path / "arag.toml"
    cfg.write_text("# my settings\n[triggers.quco]  # corpus statistics\nwindow = 500 # tokens\n\n"
                   "[triggers.token-confidence]\n# picked by hand\nthreshold = 0.2\n")
    write_trigger_settings(cfg, "token-confidence", {"threshold": 0.35, "aggregation": "min_prob"})
    write_trigger_settings(cfg, "semantic-entropy", {"threshold": 1.5})
    text = cfg.read_text()
    for kept in ("# my settings", "# corpus statistics", "window = 500 # tokens", "# picked by hand"):
        assert kept in text, text
    data = tomllib.loads(text)
    assert data["triggers"] == {"quco": {"window": 500}, "token-confidence": {"threshold": 0.35, "aggregation": "min_prob"},
                                "semantic-entropy": {"threshold": 1.5}}
    assert "[triggers]\n" not in text  # no bare super-table header
    assert load_config(str(cfg)) == data
    fresh = tmp_path / "new" / "arag.toml"
    write_trigger_settings(fresh, "quco", {"threshold": 1.0})
    assert fresh.read_text().startswith("[triggers.quco]") and load_config(str(fresh))["triggers"]["quco"]["threshold"] == 1.0


def test_calibrate_checks_the_config_destination_before_running(tmp_path, capsys):
    """`--write-config /proc/x/cal.toml` fails at once, not after the whole calibration."""
    qa = tmp_path / "qa.jsonl"
    qa.write_text('{"question": "q?", "answers": ["a"]}\n')
    assert main(["calibrate", "--trigger", "token-confidence", "--questions", str(qa), "--corpus", str(qa),
                 "--write-config", "/proc/nope/cal.toml"]) == 2
    err = capsys.readouterr().err
    assert "/proc/nope/cal.toml: cannot write the config file there" in err


def test_every_trigger_config_table_is_its_declaration():
    """The config's keys are the declared settings, so `calibrate --write-config` can write any
    trigger's table and a new trigger needs no second list."""
    from rag.config import table_keys
    from triggers.registry import BUILTINS, get_spec

    for name in BUILTINS:
        spec = get_spec(name)
        assert spec.name == name and list(table_keys(name)) == [s.name for s in spec.settings], name
    assert table_keys("no-such-trigger") is None


def test_every_trigger_flag_has_readers_and_sampling_flags_reach_every_sampled_signal():
    """The CLI refuses a trigger flag none of the chosen triggers reads; the readers come from the
    config keys, so a new signal that samples (or thresholds) is covered without a second list."""
    from rag.cli.common import TRIGGER_FLAGS, flag_readers

    for flag, dest in TRIGGER_FLAGS:
        assert flag_readers(dest), flag
    assert {"semantic-entropy", "eigval", "degree", "num-sem-sets", "lexical-similarity"} <= set(flag_readers("samples"))
    assert {"msp", "p-true", "retrieval-top1", "learned"} <= set(flag_readers("threshold"))
    assert "always" not in flag_readers("threshold")
