"""Triggers from outside this package: entry points of the ``adaptive_rag.triggers`` group, and
``package.module:ClassName`` for a class that is importable but not installed as a plugin.

An entry point's object is a `TriggerSpec`, or a class that satisfies the `Trigger` protocol and
may declare ``SETTINGS`` (a tuple of `Setting`), ``COST`` (one of `triggers.spec.COSTS`; default
free) and ``RUNTIME`` (what it needs from the process, e.g. ``("lm",)``); the class is built as
``Class(**settings)``. A plugin that fails to import, clashes with another trigger's name or is not
a trigger is one `TriggerConfigError` line naming it, raised when that plugin is used or listed, so
a broken plugin never stops the built-ins.
"""
from __future__ import annotations

import dataclasses
import importlib
from importlib.metadata import EntryPoint, entry_points
from typing import Any

from triggers.base import TriggerConfigError
from triggers.spec import TriggerSpec

GROUP = "adaptive_rag.triggers"


def _is_trigger_class(obj: Any) -> bool:
    return isinstance(obj, type) and callable(getattr(obj, "score", None)) and callable(getattr(obj, "check_question", None))


def spec_of(obj: Any, name: str, origin: str) -> TriggerSpec:
    """``obj`` (a TriggerSpec or a trigger class) as the spec of trigger ``name``; ``origin`` says
    where it came from in an error."""
    if isinstance(obj, TriggerSpec):
        return dataclasses.replace(obj, name=name)
    if not _is_trigger_class(obj):
        raise TriggerConfigError(f"{origin}: {obj!r} is neither a TriggerSpec nor a Trigger class "
                                 "(a class with score(state) and check_question(state))")
    doc = (obj.__doc__ or "").strip().splitlines()
    try:
        return TriggerSpec(name, getattr(obj, "COST", "free"), obj, tuple(getattr(obj, "SETTINGS", ())),
                           help=doc[0] if doc else "", runtime=tuple(getattr(obj, "RUNTIME", ())))
    except TriggerConfigError as exc:
        raise TriggerConfigError(f"{origin}: {exc}") from None


def is_class_path(name: str) -> bool:
    """``package.module:ClassName`` (the caller has ruled out learned:, cascade: and inverse:)."""
    module, sep, attr = name.partition(":")
    return bool(sep and module and attr.isidentifier())


def class_spec(path: str) -> TriggerSpec:
    """The trigger class at ``package.module:ClassName``, imported now."""
    module, _, attr = path.partition(":")
    try:
        obj = getattr(importlib.import_module(module), attr)
    except Exception as exc:  # an import runs arbitrary code: any failure is the named class's
        raise TriggerConfigError(f"trigger class {path}: cannot import it ({type(exc).__name__}: {exc})") from None
    return spec_of(obj, path, f"trigger class {path}")


def _entry_points() -> tuple[EntryPoint, ...]:
    """Read from the installed distributions on each call (only names that are no built-in get here)."""
    return tuple(entry_points(group=GROUP))


def plugin_names() -> list[str]:
    """Every plugin trigger name, broken ones included (they fail when used or listed)."""
    return list(dict.fromkeys(ep.name for ep in _entry_points()))


def _origin(ep: EntryPoint) -> str:
    dist = getattr(ep.dist, "name", None)
    return f"trigger plugin {ep.name!r} ({ep.value}{f', from {dist}' if dist else ''})"


def plugin_spec(name: str, builtins: frozenset[str]) -> TriggerSpec:
    """The spec of plugin ``name``; TriggerConfigError (one line) when it is missing or broken."""
    found = [ep for ep in _entry_points() if ep.name == name]
    if not found:
        raise KeyError(name)
    origin = _origin(found[0])
    if name in builtins:
        raise TriggerConfigError(f"{origin}: clashes with the built-in trigger {name!r}; rename the entry point")
    if len(found) > 1:
        raise TriggerConfigError(f"{origin}: another plugin ({found[1].value}) registers the same name; uninstall one")
    try:
        obj = found[0].load()
    except Exception as exc:  # a plugin's import runs its code: any failure is the plugin's
        raise TriggerConfigError(f"{origin}: cannot import it ({type(exc).__name__}: {exc})") from None
    return spec_of(obj, name, origin)
