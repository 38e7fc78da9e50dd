"""Names → components, so the CLI, the server and the benchmarks build triggers the same way.

Trigger names: token-confidence, always, never, semantic-entropy, quco; the further signals
(draft: msp, perplexity, mean-entropy; samples: lexical-similarity, num-sem-sets, eigval, degree;
one more call: p-true; question: question-length, entity-frequency; a search first:
retrieval-top1, retrieval-gap, retrieval-support); ``a+b`` is AnyOf(a, b), ``a&b`` AllOf(a, b) (one
operator per name), ``-a`` (or ``inverse:a``) fires where ``a`` does not and reads ``a``'s settings. Parametrised names
(`PARAMETRISED`): ``learned:PATH`` (a fitted model over other signals, `triggers.learned`) and
``cascade:CHEAP,COSTLY`` (`triggers.cascade`); in a comma-separated list of policies a cascade
takes the name after it as its COSTLY member (`split_names`).
Factories of the costlier triggers are imported lazily: `arag ask --trigger never` should not
load spaCy.
"""
from __future__ import annotations

import importlib
from typing import Any, Callable

from triggers import AllOf, AnyOf, Always, Inverted, Never, TokenConfidence, Trigger, TriggerConfigError


def _token_confidence(threshold: float | None = None, aggregation: str = "min_prob", **_: Any) -> Trigger:
    return TokenConfidence(aggregation=aggregation, threshold=threshold)


def _aggregation(aggregation: str, name: str) -> Callable[..., Trigger]:
    """A token-confidence aggregation under its own trigger name (its own bench column and config section)."""
    def factory(threshold: float | None = None, **_: Any) -> Trigger:
        return TokenConfidence(aggregation=aggregation, threshold=threshold, name=name)

    return factory


def _lazy(module: str, function: str = "from_options", **fixed: Any) -> Callable[..., Trigger]:
    def factory(**options: Any) -> Trigger:
        return getattr(importlib.import_module(module), function)(**{**options, **fixed})

    return factory


TRIGGERS: dict[str, Callable[..., Trigger]] = {
    "token-confidence": _token_confidence,
    "always": lambda **_: Always(),
    "never": lambda **_: Never(),
    "semantic-entropy": _lazy("triggers.semantic_entropy"),
    "quco": _lazy("triggers.quco"),
    "msp": _aggregation("sequence_prob", "msp"),
    "perplexity": _aggregation("mean_logprob", "perplexity"),
    "mean-entropy": _aggregation("mean_entropy", "mean-entropy"),
    "lexical-similarity": _lazy("triggers.consistency", measure="lexical_similarity"),
    "num-sem-sets": _lazy("triggers.consistency", measure="num_sem_sets"),
    "eigval": _lazy("triggers.consistency", measure="eigval"),
    "degree": _lazy("triggers.consistency", measure="degree"),
    "p-true": _lazy("triggers.p_true"),
    "question-length": _lazy("triggers.question_features", "question_length"),
    "entity-frequency": _lazy("triggers.question_features", "entity_frequency"),
    "retrieval-top1": _lazy("triggers.retrieval_evidence", measure="top1"),
    "retrieval-gap": _lazy("triggers.retrieval_evidence", measure="gap"),
    "retrieval-support": _lazy("triggers.retrieval_evidence", measure="support"),
}


# triggers whose libraries come with an extra (pyproject.toml); the others need only the core install
TRIGGER_EXTRAS: dict[str, str] = {"quco": "quco", "entity-frequency": "quco"}

PARAMETRISED = ("learned", "cascade")
RUNTIME = ("lm", "tokenizer")  # what a trigger needs from the process, not from settings


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
        if part not in TRIGGERS:
            raise TriggerConfigError(f"unknown trigger {part!r}; choose from {', '.join(TRIGGERS)} "
                                     "(or a+b, a&b, -a, learned:PATH, cascade:CHEAP,COSTLY)")
        if part in TRIGGER_EXTRAS:  # checked with the name, before a model loads
            from corpora.extras import require

            require(TRIGGER_EXTRAS[part], f"the {part} trigger")
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


def _build_parametrised(part: str, options: dict[str, Any], table: dict[str, Any], per: dict, config_file: str | None) -> Trigger:
    """``learned:PATH`` or ``cascade:A,B``; ``table``: the part's own config table (``threshold`` /
    ``band_lo``, ``band_hi``), which explicit options override."""
    prefix, arg = parametrised(part)
    merged = {**table, **{k: v for k, v in options.items() if v is not None}}
    if prefix == "learned":
        from triggers.learned import load_learned

        runtime = {k: options[k] for k in RUNTIME if k in options}
        return load_learned(arg, lambda signal, settings: build_trigger(signal, **runtime, **settings),
                            threshold=merged.get("threshold"), name=part)
    from triggers.cascade import Cascade

    if merged.get("threshold") is not None:
        raise TriggerConfigError(f"--threshold is ambiguous for {part}; set the members' thresholds in the config file")
    if merged.get("band_lo") is None or merged.get("band_hi") is None:
        raise TriggerConfigError(f"{part} needs a band on its first member's score: band_lo and band_hi "
                                 f"(`arag calibrate --trigger {part} --write-config FILE` picks them, or --band-lo/--band-hi)")
    member_options = {k: v for k, v in options.items() if k not in ("threshold", "band_lo", "band_hi")}
    cheap, costly = (build_trigger(m.strip(), **member_options, per_trigger=per, config_file=config_file) for m in arg.split(","))
    return Cascade(cheap, costly, merged["band_lo"], merged["band_hi"], name=part)


def build_trigger(name: str, **options: Any) -> Trigger:
    """Build a trigger by name; options that a trigger does not take are ignored.

    ``options`` may carry per-trigger overrides as ``{"per_trigger": {name: {...}}}`` (from a config
    file, named by ``config_file`` so that a bad value there is reported with the file); explicit
    options win.
    """
    per = options.pop("per_trigger", {}) or {}
    config_file = options.pop("config_file", None)
    parts = trigger_parts(name)
    if len(parts) > 1 and options.get("threshold") is not None:
        raise TriggerConfigError("--threshold is ambiguous for a combined trigger; set per-trigger thresholds in the config file")
    built = [_build_part(part, options, per, config_file) for part in parts]
    if len(built) == 1:
        return built[0]
    return AllOf(built, name="&".join(parts)) if operator(name) == "&" else AnyOf(built, name="+".join(parts))


def _build_part(part: str, options: dict[str, Any], per: dict, config_file: str | None) -> Trigger:
    """One part of a name: ``-a`` is `Inverted` of ``a`` built with ``a``'s settings."""
    inner = inverted(part)
    if inner is not None:
        return Inverted(_build_part(inner, options, per, config_file), name=part)
    try:
        if parametrised(part):
            return _build_parametrised(part, options, per.get(part, {}), per, config_file)
        merged = {**per.get(part, {}), **{k: v for k, v in options.items() if v is not None}}
        return TRIGGERS[part](**merged)
    except TriggerConfigError as exc:
        if config_file and per.get(part):
            table = f'"{part}"' if parametrised(part) else part
            raise TriggerConfigError(f"{exc} (with the settings of {config_file} [triggers.{table}])") from None
        raise
