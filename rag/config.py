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
import os
import tomllib
import uuid
from pathlib import Path
from typing import Any

from corpora.settings import Setting
from triggers.base import TriggerConfigError


class ConfigError(ValueError):
    """The config file is missing (when named explicitly), is not valid TOML, or holds a key or value
    that no trigger reads."""


# The loop's settings a config file may hold (flags win over them; see rag.cli.common.loop_options).
LOOP_KEYS: dict[str, Setting] = {s.name: s for s in (
    Setting("repetition_penalty", float, None, "divide the scores of tokens the answer already holds by this"),
    Setting("no_repeat_ngram_size", int, None, "never repeat an n-gram of the answer this long (0 = off)"),
    Setting("relevance_gate", float, None, "drop retrieved passages less relevant to the question than this"),
    Setting("abstain", bool, None, "with the gate: say the documents do not hold the answer instead of the draft"),
)}
TOP_LEVEL_KEYS = ("triggers", "loop")


def table_keys(name: str) -> dict[str, Setting] | None:
    """The declared settings of trigger table ``name`` (``learned:PATH`` and ``cascade:A,B`` by their
    prefix, a plugin's or a ``module:Class``'s from its declaration), or None for no such trigger."""
    from triggers.registry import PARAMETRISED, UnknownTrigger, get_spec, parametrised

    param = parametrised(name)
    if param is not None:
        return {s.name: s for s in PARAMETRISED[param[0]]} if param[1] else None
    try:
        return {s.name: s for s in get_spec(name).settings}
    except UnknownTrigger:
        return None


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
        if (problem := LOOP_KEYS[key].problem(value)):
            raise ConfigError(f"{path}: [loop] {key} {problem}")
    triggers = data.get("triggers", {})
    if not isinstance(triggers, dict):
        raise ConfigError(f"{path}: 'triggers' must be a table of per-trigger tables ([triggers.token-confidence] ...), "
                          f"got {type(triggers).__name__}")
    for name, table in triggers.items():
        try:
            keys = table_keys(name)
        except TriggerConfigError as exc:  # a broken plugin or trigger class
            raise ConfigError(f"{path}: [triggers.{name}] {exc}") from None
        if keys is None:
            from triggers.registry import trigger_names

            known = trigger_names()
            raise ConfigError(f"{path}: unknown trigger table [triggers.{name}] ({_suggest(name, known)}"
                              f"known: {', '.join(known)}, \"learned:PATH\", \"cascade:CHEAP,COSTLY\")")
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: triggers.{name} must be a table (e.g. [triggers.{name}] threshold = ...), "
                              f"got {type(table).__name__}")
        for key, value in table.items():
            where = f"{path}: [triggers.{name}] {key}"
            if key not in keys:
                known = ", ".join(keys) or "none"
                raise ConfigError(f"{where}: unknown key ({_suggest(key, keys)}{name} takes: {known})")
            if (problem := keys[key].problem(value)):
                raise ConfigError(f"{where} {problem}")


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
