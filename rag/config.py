"""Settings a user keeps between runs (e.g. a threshold picked by `arag calibrate`).

A TOML file: `--config FILE`, else `$ARAG_CONFIG`, else `./arag.toml` when present. Layout:

    [triggers.token-confidence]
    threshold = 0.35
    aggregation = "min_prob"

    [loop]
    repetition_penalty = 1.2
    no_repeat_ngram_size = 0

Command-line flags win over the file; the file wins over built-in defaults.
"""
from __future__ import annotations

import os
import tempfile
import tomllib
from pathlib import Path
from typing import Any


class ConfigError(ValueError):
    """The config file is missing (when named explicitly) or is not valid TOML."""


def config_path(explicit: str | None = None) -> Path | None:
    if explicit:
        return Path(explicit)
    if os.environ.get("ARAG_CONFIG"):
        return Path(os.environ["ARAG_CONFIG"])
    local = Path("arag.toml")
    return local if local.exists() else None


def load_config(explicit: str | None = None) -> dict[str, Any]:
    path = config_path(explicit)
    if path is None:
        return {}
    if not path.exists():
        if explicit:
            raise ConfigError(f"{path}: config file not found")
        return {}
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: invalid config ({exc})") from None


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return '"' + str(v).replace("\\", "\\\\").replace('"', '\\"') + '"'


def write_trigger_settings(path: Path, trigger: str, settings: dict[str, Any]) -> None:
    """Merge ``settings`` into ``[triggers.<trigger>]`` of the file, atomically (temp file + rename)."""
    config = load_config(str(path)) if path.exists() else {}
    config.setdefault("triggers", {}).setdefault(trigger, {}).update(settings)
    lines: list[str] = []
    for key, value in config.items():
        if not isinstance(value, dict):
            lines.append(f"{key} = {_toml_value(value)}")
    tables = [(key, value) for key, value in config.items() if isinstance(value, dict) and key != "triggers"]
    tables += [(f"triggers.{name}", table) for name, table in config.get("triggers", {}).items()]
    for name, table in tables:  # e.g. [loop] survives a threshold update
        lines.append(f"\n[{name}]")
        lines.extend(f"{k} = {_toml_value(v)}" for k, v in table.items())
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".arag-", suffix=".toml")
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write("\n".join(lines).lstrip("\n") + "\n")
    os.replace(tmp, path)
