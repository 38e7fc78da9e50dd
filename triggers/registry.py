"""Names → triggers, so the CLI, the config file, the server and the benchmarks build them the same way.

Each trigger declares itself (`triggers.spec.TriggerSpec`: cost, settings, build) in its own module;
`BUILTINS` says in which module each built-in's declaration lives, one line per trigger, and the
module is imported only when that trigger is used or listed (`arag ask --trigger never` loads
neither spaCy nor the samplers). Plugins add names through entry points, and
``package.module:ClassName`` names a trigger class directly (`triggers.plugins`).

``a+b`` is AnyOf(a, b), ``a&b`` AllOf(a, b) (one operator per name), ``-a`` (or ``inverse:a``) fires
where ``a`` does not and reads ``a``'s settings. Parametrised names (`PARAMETRISED`): ``learned:PATH``
(a fitted model over other signals, `triggers.learned`) and ``cascade:CHEAP,COSTLY``
(`triggers.cascade`); in a comma-separated list of policies a cascade takes the name after it as its
COSTLY member (`split_names`). An option is applied to the parts of a name that declare it; one that
no part declares is an error naming the trigger and its settings, never silently ignored.
"""
from __future__ import annotations

import importlib
from typing import Any

from corpora.settings import Setting, unknown_setting
from triggers import AllOf, AnyOf, Inverted, Trigger, TriggerConfigError
from triggers.plugins import class_spec, is_class_path, plugin_names, plugin_spec
from triggers.spec import RUNTIME, TriggerSpec

# name → the module whose SPECS declare it; a built-in joins with one line here
BUILTINS: dict[str, str] = {
    "token-confidence": "triggers.token_confidence",
    "semantic-entropy": "triggers.semantic_entropy",
    "quco": "triggers.quco",
    "always": "triggers.combinators",
    "never": "triggers.combinators",
    "msp": "triggers.token_confidence",
    "perplexity": "triggers.token_confidence",
    "mean-entropy": "triggers.token_confidence",
    "margin": "triggers.margin",
    "lexical-similarity": "triggers.consistency",
    "num-sem-sets": "triggers.consistency",
    "eigval": "triggers.consistency",
    "degree": "triggers.consistency",
    "p-true": "triggers.p_true",
    "question-length": "triggers.question_features",
    "entity-frequency": "triggers.question_features",
    "retrieval-top1": "triggers.retrieval_evidence",
    "retrieval-gap": "triggers.retrieval_evidence",
    "retrieval-support": "triggers.retrieval_evidence",
}


class UnknownTrigger(TriggerConfigError):
    """A name that is no built-in, plugin or importable ``module:Class``."""


def trigger_names() -> list[str]:
    """Every trigger name: the built-ins, then the installed plugins."""
    return [*BUILTINS, *(n for n in plugin_names() if n not in BUILTINS)]


def clashing_plugins() -> list[str]:
    """One line per plugin that names a built-in (the built-in wins; `arag triggers` reports these)."""
    out = []
    for name in (n for n in plugin_names() if n in BUILTINS):
        try:
            plugin_spec(name, frozenset(BUILTINS))
        except TriggerConfigError as exc:
            out.append(str(exc))
    return out


def get_spec(name: str) -> TriggerSpec:
    """The declaration of one plain trigger name (a built-in, a plugin, or ``module:Class``)."""
    if name in BUILTINS:
        return next(s for s in importlib.import_module(BUILTINS[name]).SPECS if s.name == name)
    try:
        return plugin_spec(name, frozenset(BUILTINS))
    except KeyError:
        pass
    if is_class_path(name):
        return class_spec(name)
    raise UnknownTrigger(f"unknown trigger {name!r}; choose from {', '.join(trigger_names())} "
                             "(or a+b, a&b, -a, learned:PATH, cascade:CHEAP,COSTLY, package.module:ClassName)")


PARAMETRISED: dict[str, tuple[Setting, ...]] = {
    "learned": (Setting("threshold", float, None, "fire when the fitted probability exceeds this (default: the file's)"),),
    "cascade": (Setting("band_lo", float, None, "below this CHEAP score, do not retrieve"),
                Setting("band_hi", float, None, "above this CHEAP score, retrieve; in between COSTLY decides")),
}


def parametrised(name: str) -> tuple[str, str] | None:
    """(prefix, argument) of ``learned:PATH`` / ``cascade:A,B``, else None."""
    prefix, sep, arg = name.partition(":")
    return (prefix, arg.strip()) if sep and prefix in PARAMETRISED else None


def split_names(text: str) -> list[str]:
    """A comma-separated list of trigger names, where ``cascade:A,B`` keeps its second member:
    ``never,cascade:msp,semantic-entropy,p-true`` → never, cascade:msp,semantic-entropy, p-true."""
    names: list[str] = []
    pending = False
    for piece in (p.strip() for p in text.split(",")):
        if pending:
            names[-1] += "," + piece
            pending = False
        else:
            names.append(piece)
            pending = piece.startswith("cascade:") and "," not in piece
    return names


INVERSE_PREFIXES = ("-", "inverse:")


def inverted(part: str) -> str | None:
    """The trigger name that ``-NAME`` / ``inverse:NAME`` inverts, else None."""
    for prefix in INVERSE_PREFIXES:
        if part.startswith(prefix):
            return part[len(prefix):].strip()
    return None


def base_part(part: str) -> str:
    """The trigger a part builds on: ``-a`` → ``a``; anything else itself."""
    inner = inverted(part)
    return part if inner is None else inner


def _check_part(part: str) -> None:
    inner = inverted(part)
    if inner is not None:
        if not inner or inverted(inner) is not None:
            raise TriggerConfigError(f"{part!r}: an inverted trigger is -NAME (or inverse:NAME) with one trigger name")
        return _check_part(inner)
    param = parametrised(part)
    if param is None:
        spec = get_spec(part)
        if spec.extra:  # checked with the name, before a model loads
            from corpora.extras import require

            require(spec.extra, f"the {part} trigger")
        return
    prefix, arg = param
    if not arg:
        raise TriggerConfigError(f"{part!r}: {prefix}: needs {'a file' if prefix == 'learned' else 'CHEAP,COSTLY'}")
    if prefix == "cascade":
        members = [m.strip() for m in arg.split(",")]
        if len(members) != 2 or not all(members):
            raise TriggerConfigError(f"{part!r}: a cascade is cascade:CHEAP,COSTLY (two trigger names)")
        for m in members:
            if m.startswith("cascade:"):
                raise TriggerConfigError(f"{part!r}: a cascade's member cannot be a cascade")
            _check_part(m)


def operator(name: str) -> str:
    """How the parts of ``name`` combine: "+" (any fires), "&" (all fire); one of them per name."""
    whole = parametrised(base_part(name.strip()))
    if whole and whole[0] == "learned":  # a path may hold "+" or "&"
        return "+"
    if "+" in name and "&" in name:
        raise TriggerConfigError(f"{name!r} mixes + (any of) and & (all of); use one of them")
    return "&" if "&" in name else "+"


def trigger_parts(name: str) -> list[str]:
    """The known trigger names of ``a+b`` / ``a&b``; an empty part (``always+``) or an unknown name is an error."""
    whole = parametrised(base_part(name.strip()))
    parts = [name.strip()] if whole and whole[0] == "learned" else [p.strip() for p in name.split(operator(name))]
    if not all(parts):
        raise TriggerConfigError(f"empty trigger name in {name!r}" if name.strip() else "empty trigger name")
    for part in parts:
        _check_part(part)
    return parts


def names_a_class(name: str) -> bool:
    """Whether ``name`` (any part, a cascade's members included) is a ``module:Class`` path, read from
    the text alone, before anything is imported: a server refuses those from its clients."""
    pieces = [p.strip() for p in name.replace("&", "+").replace(",", "+").split("+")]
    for piece in pieces:
        piece = base_part(piece.removeprefix("cascade:").strip())
        if not parametrised(piece) and is_class_path(piece):
            return True
    return False


def part_settings(part: str) -> tuple[Setting, ...]:
    """The settings one part reads: ``-a`` reads ``a``'s, ``learned:``/``cascade:`` their own
    (a cascade's members keep theirs, set through their config tables)."""
    inner = inverted(part)
    if inner is not None:
        return part_settings(inner)
    param = parametrised(part)
    return PARAMETRISED[param[0]] if param else get_spec(part).settings


def readers(name: str, key: str) -> list[str]:
    """The parts of ``name`` (a cascade's members included) that declare setting ``key``."""
    out = []
    for part in trigger_parts(name):
        if any(s.name == key for s in part_settings(part)):
            out.append(part)
        param = parametrised(base_part(part))
        if param and param[0] == "cascade":
            out += [r for m in param[1].split(",") for r in readers(m.strip(), key)]
    return out


PASSED_ON = (*RUNTIME, "per_trigger", "config_file")  # build_trigger's arguments that are not settings


def applicable(name: str, options: dict[str, Any]) -> dict[str, Any]:
    """The options (set, i.e. not None) that some part of ``name`` reads, plus the runtime objects
    and config tables: for settings shared by several names (a bench's policies, a server's
    per-request trigger)."""
    return {k: v for k, v in options.items() if k in PASSED_ON or (v is not None and readers(name, k))}


def _check_declared(name: str, options: dict[str, Any]) -> None:
    """Every option set is read by some part of ``name``, or one error naming it and the settings."""
    for key, value in options.items():
        if value is None or key in RUNTIME or readers(name, key):
            continue
        parts = trigger_parts(name)
        if len(parts) == 1 and not parametrised(base_part(parts[0])):
            raise TriggerConfigError(unknown_setting(key, name, part_settings(parts[0])))
        takes = sorted({s.name for p in parts for s in part_settings(p)})
        raise TriggerConfigError(f"no part of {name} has a setting {key!r} (its parts take: {', '.join(takes) or 'none'})")


def _own(part: str, options: dict[str, Any]) -> dict[str, Any]:
    """The options (set) that ``part`` itself declares."""
    names = {s.name for s in part_settings(part)}
    return {k: v for k, v in options.items() if k in names and v is not None}


def _build_parametrised(part: str, options: dict[str, Any], runtime: dict[str, Any], per: dict,
                        config_file: str | None) -> Trigger:
    """``learned:PATH`` or ``cascade:A,B``; its config table, which explicit options override."""
    prefix, arg = parametrised(part)
    merged = {**per.get(part, {}), **_own(part, options)}
    if prefix == "learned":
        from triggers.learned import load_learned

        return load_learned(arg, lambda signal, settings: build_trigger(signal, **runtime, **settings),
                            threshold=merged.get("threshold"), name=part)
    from triggers.cascade import Cascade

    if merged.get("band_lo") is None or merged.get("band_hi") is None:
        raise TriggerConfigError(f"{part} needs a band on its first member's score: band_lo and band_hi "
                                 f"(`arag calibrate --trigger {part} --write-config FILE` picks them, or --band-lo/--band-hi)")
    cheap, costly = (build_trigger(m.strip(), **runtime, **applicable(m.strip(), options), per_trigger=per,
                                   config_file=config_file) for m in arg.split(","))
    return Cascade(cheap, costly, merged["band_lo"], merged["band_hi"], name=part)


def build_trigger(name: str, **options: Any) -> Trigger:
    """Build a trigger by name; each option goes to the parts that declare it, and one that no part
    declares is a TriggerConfigError naming the trigger and its settings.

    ``options`` may carry per-trigger overrides as ``{"per_trigger": {name: {...}}}`` (from a config
    file, named by ``config_file`` so that a bad value there is reported with the file); explicit
    options win. ``lm`` and ``tokenizer`` go to the triggers that ask for them (`TriggerSpec.runtime`).
    """
    per = options.pop("per_trigger", {}) or {}
    config_file = options.pop("config_file", None)
    runtime = {k: options.pop(k) for k in RUNTIME if k in options}
    parts = trigger_parts(name)
    if len(parts) > 1 and options.get("threshold") is not None:
        raise TriggerConfigError("--threshold is ambiguous for a combined trigger; set per-trigger thresholds in the config file")
    if options.get("threshold") is not None and any(base_part(p).startswith("cascade:") for p in parts):
        raise TriggerConfigError(f"--threshold is ambiguous for {name}; set the members' thresholds in the config file")
    _check_declared(name, options)
    built = [_build_part(part, options, runtime, per, config_file) for part in parts]
    if len(built) == 1:
        return built[0]
    return AllOf(built, name="&".join(parts)) if operator(name) == "&" else AnyOf(built, name="+".join(parts))


def _build_part(part: str, options: dict[str, Any], runtime: dict[str, Any], per: dict, config_file: str | None) -> Trigger:
    """One part of a name: ``-a`` is `Inverted` of ``a`` built with ``a``'s settings."""
    inner = inverted(part)
    if inner is not None:
        return Inverted(_build_part(inner, options, runtime, per, config_file), name=part)
    try:
        if parametrised(part):
            return _build_parametrised(part, options, runtime, per, config_file)
        spec = get_spec(part)
        trigger = spec.make({**per.get(part, {}), **_own(part, options)}, runtime)
    except TriggerConfigError as exc:
        if config_file and per.get(part):
            table = f'"{part}"' if parametrised(part) or ":" in part else part
            raise TriggerConfigError(f"{exc} (with the settings of {config_file} [triggers.{table}])") from None
        raise
    if not isinstance(trigger, Trigger):
        raise TriggerConfigError(f"trigger {part!r} built {trigger!r}, which is not a Trigger (score and check_question)")
    return trigger
