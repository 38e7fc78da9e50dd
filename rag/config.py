"""Settings a user keeps between runs (e.g. a threshold picked by `arag calibrate`).

A TOML file: `--config FILE`, else `$ARAG_CONFIG`, else `./arag.toml` when present. Layout:

    [triggers.token-confidence]
    threshold = 0.35
    aggregation = "min_prob"

    [loop]
    repetition_penalty = 1.2
    no_repeat_ngram_size = 0
    relevance_gate = 0.3681   # drop retrieved passages less relevant to the question than this
    abstain = false

Command-line flags win over the file; the file wins over built-in defaults. The file is checked
when it is read: a misspelt key, an unknown trigger table or a value of the wrong type is one line
naming the file and the key, never silently ignored (a typo'd ``threshhold`` would otherwise leave
the default threshold in force without a word). `write_trigger_settings` edits the file through
tomlkit, so its comments, layout and other tables survive.
"""
from __future__ import annotations

import difflib
import math
import os
import tomllib
import uuid
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """The config file is missing (when named explicitly), is not valid TOML, or holds a key or value
    that no trigger reads."""


_NUMBER, _INT, _STR, _BOOL = "a finite number", "an integer", "a string", "a boolean"
# Per trigger: the keys its factory reads (see rag.registry) and the type each must have.
TRIGGER_KEYS: dict[str, dict[str, str]] = {
    "token-confidence": {"threshold": _NUMBER, "aggregation": _STR},
    "semantic-entropy": {"threshold": _NUMBER, "samples": _INT, "temperature": _NUMBER, "top_p": _NUMBER, "judge": _STR,
                         "variant": _STR, "estimator": _STR, "sample_tokens": _INT},
    "quco": {"threshold": _NUMBER, "corpus_index": _STR, "corpus_tokenizer": _STR, "question_threshold": _NUMBER,
             "window": _INT, "max_clause_freq": _INT, "pairing": _STR},
    "always": {},
    "never": {},
}
_SAMPLING = {"threshold": _NUMBER, "samples": _INT, "temperature": _NUMBER, "top_p": _NUMBER, "judge": _STR,
             "variant": _STR, "sample_tokens": _INT}
TRIGGER_KEYS.update({name: {"threshold": _NUMBER} for name in (
    "msp", "perplexity", "mean-entropy", "p-true", "question-length", "retrieval-top1", "retrieval-gap",
    "retrieval-support")})
TRIGGER_KEYS.update({name: dict(_SAMPLING) for name in ("lexical-similarity", "num-sem-sets", "eigval", "degree")})
TRIGGER_KEYS["entity-frequency"] = {k: v for k, v in TRIGGER_KEYS["quco"].items() if k not in ("question_threshold", "pairing")}
# Parametrised trigger names (rag.registry.PARAMETRISED): a table per full name, as TOML quotes it,
# e.g. [triggers."cascade:msp,semantic-entropy"] band_lo = 2.0; its members keep their own tables.
PARAMETRISED_KEYS: dict[str, dict[str, str]] = {"learned": {"threshold": _NUMBER},
                                                "cascade": {"band_lo": _NUMBER, "band_hi": _NUMBER}}
# The loop's settings a config file may hold (flags win over them; see rag.cli.common.loop_options).
LOOP_KEYS: dict[str, str] = {"repetition_penalty": _NUMBER, "no_repeat_ngram_size": _INT, "relevance_gate": _NUMBER,
                             "abstain": _BOOL}
TOP_LEVEL_KEYS = ("triggers", "loop")


def table_keys(name: str) -> dict[str, str] | None:
    """The keys of trigger table ``name`` (``learned:PATH`` and ``cascade:A,B`` by their prefix), or None."""
    if name in TRIGGER_KEYS:
        return TRIGGER_KEYS[name]
    prefix, sep, arg = name.partition(":")
    return PARAMETRISED_KEYS.get(prefix) if sep and arg.strip() else None


def config_path(explicit: str | None = None) -> Path | None:
    if explicit:
        return Path(explicit)
    if os.environ.get("ARAG_CONFIG"):
        return Path(os.environ["ARAG_CONFIG"])
    local = Path("arag.toml")
    return local if local.exists() else None


def load_config(explicit: str | None = None) -> dict[str, Any]:
    """The checked settings of the config file in force ({} when there is none)."""
    path = config_path(explicit)
    if path is None:
        return {}
    if not path.exists():
        origin = "--config" if explicit else "ARAG_CONFIG"
        raise ConfigError(f"{path}: config file not found (named by {origin})")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: invalid config ({exc})") from None
    validate_config(data, path)
    return data


def _suggest(word: str, known: Any) -> str:
    close = difflib.get_close_matches(word, list(known), n=1)
    return f"did you mean {close[0]!r}? " if close else ""


def _type_error(value: Any, expected: str) -> bool:
    if expected == _BOOL:
        return not isinstance(value, bool)
    if isinstance(value, bool):  # TOML's true/false are not 1.0/0.0
        return True
    if expected == _NUMBER:
        return not isinstance(value, (int, float)) or not math.isfinite(value)
    if expected == _INT:
        return not isinstance(value, int)
    return not isinstance(value, str)


def validate_config(data: dict[str, Any], path: Path) -> None:
    """Every key known and every value of its type, or a ConfigError naming the file and the key."""
    for key in data:
        if key not in TOP_LEVEL_KEYS:
            raise ConfigError(f"{path}: unknown key {key!r} ({_suggest(key, TOP_LEVEL_KEYS)}known: {', '.join(TOP_LEVEL_KEYS)})")
    loop = data.get("loop", {})
    if not isinstance(loop, dict):
        raise ConfigError(f"{path}: 'loop' must be a table ([loop] repetition_penalty = ...), got {type(loop).__name__}")
    for key, value in loop.items():
        if key not in LOOP_KEYS:
            raise ConfigError(f"{path}: [loop] {key}: unknown key ({_suggest(key, LOOP_KEYS)}known: {', '.join(LOOP_KEYS)})")
        if _type_error(value, LOOP_KEYS[key]):
            raise ConfigError(f"{path}: [loop] {key} must be {LOOP_KEYS[key]}, got {value!r}")
    triggers = data.get("triggers", {})
    if not isinstance(triggers, dict):
        raise ConfigError(f"{path}: 'triggers' must be a table of per-trigger tables ([triggers.token-confidence] ...), "
                          f"got {type(triggers).__name__}")
    for name, table in triggers.items():
        keys = table_keys(name)
        if keys is None:
            raise ConfigError(f"{path}: unknown trigger table [triggers.{name}] ({_suggest(name, TRIGGER_KEYS)}"
                              f"known: {', '.join(TRIGGER_KEYS)}, \"learned:PATH\", \"cascade:CHEAP,COSTLY\")")
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: triggers.{name} must be a table (e.g. [triggers.{name}] threshold = ...), "
                              f"got {type(table).__name__}")
        for key, value in table.items():
            where = f"{path}: [triggers.{name}] {key}"
            if key not in keys:
                known = ", ".join(keys) or "none"
                raise ConfigError(f"{where}: unknown key ({_suggest(key, keys)}{name} takes: {known})")
            if _type_error(value, keys[key]):
                raise ConfigError(f"{where} must be {keys[key]}, got {value!r}")


def check_writable_config(path: Path) -> None:
    """Fail now, not after a long calibration: the folder must take a new file and an existing file
    must be a valid config (it will be edited, not replaced)."""
    if path.exists():
        if not path.is_file():
            raise ConfigError(f"{path}: not a file")
        load_config(str(path))
    parent = path.parent
    probe = parent / f".{path.name}.probe-{uuid.uuid4().hex[:8]}"
    try:
        parent.mkdir(parents=True, exist_ok=True)
        probe.touch()
        probe.unlink()
    except OSError as exc:
        raise ConfigError(f"{path}: cannot write the config file there ({exc.strerror or exc})") from None


def write_trigger_settings(path: Path, trigger: str, settings: dict[str, Any]) -> None:
    """Merge ``settings`` into ``[triggers.<trigger>]`` of the file, keeping its comments and other
    tables; atomically (temp file + rename)."""
    import tomlkit

    check_writable_config(path)
    doc = tomlkit.parse(path.read_text(encoding="utf-8")) if path.exists() else tomlkit.document()
    if "triggers" not in doc:
        doc["triggers"] = tomlkit.table(is_super_table=True)  # only [triggers.NAME] headers, no bare [triggers]
    triggers = doc["triggers"]
    if trigger not in triggers:
        triggers[trigger] = tomlkit.table()
    for key, value in settings.items():
        triggers[trigger][key] = value
    _write_checked(path, doc)


def write_loop_settings(path: Path, settings: dict[str, Any]) -> None:
    """Merge ``settings`` into ``[loop]`` of the file (e.g. the relevance gate `arag calibrate` chose),
    keeping its comments and other tables; atomically."""
    import tomlkit

    check_writable_config(path)
    doc = tomlkit.parse(path.read_text(encoding="utf-8")) if path.exists() else tomlkit.document()
    if "loop" not in doc:
        doc["loop"] = tomlkit.table()
    for key, value in settings.items():
        doc["loop"][key] = value
    _write_checked(path, doc)


def _write_checked(path: Path, doc: Any) -> None:
    import tomlkit

    from corpora.atomic import write_text_atomic

    text = tomlkit.dumps(doc)
    validate_config(tomllib.loads(text), path)
    write_text_atomic(path, text)
