"""Argument types and option groups shared by several subcommands."""
from __future__ import annotations

import argparse
import math
import os
import sys
from typing import TYPE_CHECKING

from retrievers.kinds import RETRIEVER_KINDS
from triggers.token_confidence import AGGREGATIONS

if TYPE_CHECKING:
    from rag.models.lm import LanguageModel
    from rag.pipeline import Pipeline


def finite_float(text: str) -> float:
    try:
        x = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(x):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text!r}")
    return x


def positive_int(text: str) -> int:
    try:
        x = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if x <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return x


def add_retriever_args(p: argparse.ArgumentParser, corpus_flag: bool = True) -> None:
    g = p.add_argument_group("retrieval")
    src = g.add_mutually_exclusive_group()
    src.add_argument("--index", metavar="DIR", help="a saved index (from `arag index build`)")
    if corpus_flag:
        src.add_argument("--corpus", metavar="PATH", nargs="+", help="JSONL(.gz) files or folders of .txt/.md (default: the shipped demo corpus)")
    add_retriever_arg(g)
    g.add_argument("--k", type=positive_int, default=3, help="passages per retrieval (default: 3)")
    add_elasticsearch_args(g, mode_help="Elasticsearch query: BM25, kNN over MiniLM vectors, or both fused with RRF")


def add_elasticsearch_args(g: argparse._ActionsContainer, mode_help: str) -> None:
    """Where the Elasticsearch index is. Credentials come only from the environment (ARAG_ES_API_KEY, or
    ARAG_ES_USER + ARAG_ES_PASSWORD), so they never show in `ps` or a shell history."""
    g.add_argument("--es-url", default=None, help="Elasticsearch URL (or $ARAG_ES_URL); credentials: $ARAG_ES_API_KEY or $ARAG_ES_USER/$ARAG_ES_PASSWORD")
    g.add_argument("--es-index", default=None, help="Elasticsearch index name (or $ARAG_ES_INDEX)")
    g.add_argument("--es-mode", default="bm25", choices=("bm25", "knn", "hybrid"), help=mode_help)
    g.add_argument("--es-ca-file", default=None, metavar="PEM", help="CA certificate(s) to trust for an https:// Elasticsearch URL (or $ARAG_ES_CA_FILE)")


def add_batch_size_arg(p: argparse._ActionsContainer) -> None:
    from rag.loop.batch import DEFAULT_BATCH_SIZE

    p.add_argument("--batch-size", type=positive_int, default=DEFAULT_BATCH_SIZE, metavar="N",
                   help="questions decoded together, step by step; the answers are the same (default: %(default)s)")


def add_model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", default="default", help="smollm2-135m (the default, from its wheel), gemma3-270m, a hub id, "
                   "local folder or .gguf file, or openai:BASE_URL/MODEL for an OpenAI-compatible server")
    p.add_argument("--concurrency", type=positive_int, default=None, metavar="N",
                   help="openai: models: requests in flight at once when many prompts are generated together (default: 16)")


def add_trigger_args(p: argparse.ArgumentParser, default: str = "token-confidence") -> None:
    g = p.add_argument_group("trigger")
    g.add_argument("--trigger", default=default, help="a trigger name (`arag triggers` lists them, plugins included), "
                   "package.module:ClassName, or a+b (any of), a&b (all of), -a (fires where a does not; "
                   "alone write --trigger=-a), learned:PATH (from `arag calibrate --learn`), "
                   "cascade:CHEAP,COSTLY (default: %(default)s)")
    g.add_argument("--threshold", type=finite_float, default=None, help="the trigger's threshold (default: from --config, else the trigger's default)")
    add_trigger_options(g)


def add_trigger_options(g) -> None:
    """Per-trigger settings (everything but the trigger's name and threshold), shared with `arag bench`:
    any declared setting through ``--trigger-option KEY=VALUE``, the common ones as flags too."""
    g.add_argument("--trigger-option", action="append", default=None, metavar="KEY=VALUE",
                   help="a setting of the trigger, typed as it declares it (repeatable; `arag triggers show NAME` lists them)")
    g.add_argument("--aggregation", default=None, choices=AGGREGATIONS, help="token-confidence aggregation (default: min_prob)")
    g.add_argument("--samples", type=positive_int, default=None, help="semantic-entropy: samples per step (default: 10)")
    g.add_argument("--temperature", type=finite_float, default=None, help="semantic-entropy: sampling temperature (default: 1.0)")
    g.add_argument("--top-p", type=finite_float, default=None, help="semantic-entropy: nucleus sampling mass (default: 1.0)")
    g.add_argument("--judge", default=None, help="semantic-entropy: equivalence judge: lexical+embedding (default), lexical, embedding, lm, nli:MODEL_DIR")
    g.add_argument("--variant", default=None, choices=("strict", "non-contradiction"), help="semantic-entropy: clustering variant")
    g.add_argument("--corpus-index", default=None, metavar="DIR", help="quco: corpus-statistics index (default: the demo index)")
    g.add_argument("--corpus-tokenizer", default=None, metavar="PATH", help="quco: tokenizer of a plain infini-gram index folder")
    g.add_argument("--window", type=positive_int, default=None, help="quco: co-occurrence window in tokens (default: 1000)")
    g.add_argument("--question-threshold", type=finite_float, default=None, help="quco: pre-generation threshold, entity frequency per million tokens")
    g.add_argument("--pairing", default=None, choices=("all", "any", "rarest"), help="quco: which question entities an answer entity is paired with (default: all)")
    g.add_argument("--band-lo", type=finite_float, default=None, help="cascade:CHEAP,COSTLY: below this CHEAP score, do not retrieve")
    g.add_argument("--band-hi", type=finite_float, default=None, help="cascade:CHEAP,COSTLY: above this CHEAP score, retrieve; "
                   "in between COSTLY decides (default: from --config, as `arag calibrate` writes it)")
    g.add_argument("--config", default=None, metavar="FILE", help="TOML per-trigger settings, e.g. thresholds from `arag calibrate` (default: $ARAG_CONFIG or ./arag.toml)")


def add_pipeline_args(p: argparse.ArgumentParser) -> None:
    """Everything `build_pipeline` reads: retriever, trigger, model and answer budget."""
    add_retriever_args(p)
    add_trigger_args(p)
    add_model_args(p)
    add_loop_args(p)


def add_loop_args(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("answer budget")
    g.add_argument("--max-steps", type=positive_int, default=6, help="sentences per answer (default: 6)")
    g.add_argument("--max-retrievals", type=int, default=3, help="retrieval budget per answer (default: 3)")
    g.add_argument("--seed", type=int, default=0, help="seed for triggers that sample (default: 0)")
    g = p.add_argument_group("repetition (transformers' logits processors; also [loop] in --config)")
    g.add_argument("--repetition-penalty", type=finite_float, default=None, metavar="X",
                   help="divide the scores of tokens the answer already holds by X (1.0 = off; default: [loop] in the config, else 1.0)")
    g.add_argument("--no-repeat-ngram-size", type=int, default=None, metavar="N",
                   help="never repeat an N-gram of the answer (0 = off; default: [loop] in the config, else 3)")
    add_gate_args(p)


def add_gate_args(p: argparse.ArgumentParser) -> None:
    from retrievers.relevance import DEFAULT_GATE_THRESHOLD

    g = p.add_argument_group("relevance gate (also [loop] relevance_gate / abstain in --config)")
    g.add_argument("--relevance-gate", type=finite_float, nargs="?", const=DEFAULT_GATE_THRESHOLD, default=None,
                   metavar="THRESHOLD", help="drop retrieved passages whose relevance to the question (MiniLM cosine) is "
                   f"below THRESHOLD (default when given without a value: {DEFAULT_GATE_THRESHOLD}); with none left the "
                   "step keeps its draft (off unless given or set in the config)")
    g.add_argument("--abstain", action=argparse.BooleanOptionalAction, default=None,
                   help="with the gate: when the trigger fired and nothing relevant was found, answer "
                   "'I could not find this in the documents.' instead of the unsupported draft")


def loop_options(args: argparse.Namespace) -> dict:
    """The loop's repetition controls and relevance gate: flags, else the config file's ``[loop]`` table
    (checked by rag.config when read), else LoopConfig's defaults."""
    from rag.config import LOOP_KEYS, load_config

    table = load_config(getattr(args, "config", None)).get("loop", {})
    out = {}
    for name in LOOP_KEYS:
        value = getattr(args, name, None)
        if value is None:
            value = table.get(name)
        if value is not None:
            out[name] = value
    return out


def trigger_options(args: argparse.Namespace, triggers: str | None = None) -> dict:
    """The trigger options given on the command line plus the config file's per-trigger settings;
    ``triggers`` (default ``--trigger``): the names whose declarations type ``--trigger-option``."""
    from rag.cli.trigger_option import parse_trigger_options
    from rag.config import config_path, load_config
    from rag.errors import UsageError

    config = load_config(getattr(args, "config", None))
    flags = {
        "threshold": getattr(args, "threshold", None),
        "aggregation": getattr(args, "aggregation", None),
        "samples": getattr(args, "samples", None),
        "temperature": getattr(args, "temperature", None),
        "top_p": getattr(args, "top_p", None),
        "judge": getattr(args, "judge", None),
        "variant": getattr(args, "variant", None),
        "corpus_index": getattr(args, "corpus_index", None),
        "corpus_tokenizer": getattr(args, "corpus_tokenizer", None),
        "window": getattr(args, "window", None),
        "question_threshold": getattr(args, "question_threshold", None),
        "pairing": getattr(args, "pairing", None),
        "band_lo": getattr(args, "band_lo", None),
        "band_hi": getattr(args, "band_hi", None),
    }
    generic = parse_trigger_options(getattr(args, "trigger_option", None) or [], triggers or args.trigger)
    for key in generic:
        if flags.get(key) is not None:
            raise UsageError(f"--trigger-option {key}: given twice (also as --{key.replace('_', '-')})")
    return {**flags, **generic, "per_trigger": config.get("triggers", {}),
            "config_file": str(config_path(getattr(args, "config", None))) if config else None}


# The trigger flags; a flag none of the chosen triggers reads is refused, not ignored. Which triggers
# read each is taken from the triggers' declared settings (triggers.spec), as the config file's keys are.
TRIGGER_FLAGS: tuple[tuple[str, str], ...] = (
    ("--threshold", "threshold"), ("--aggregation", "aggregation"), ("--samples", "samples"),
    ("--temperature", "temperature"), ("--top-p", "top_p"), ("--judge", "judge"), ("--variant", "variant"),
    ("--corpus-index", "corpus_index"), ("--corpus-tokenizer", "corpus_tokenizer"), ("--window", "window"),
    ("--question-threshold", "question_threshold"), ("--pairing", "pairing"), ("--band-lo", "band_lo"),
    ("--band-hi", "band_hi"),
)


def flag_readers(dest: str) -> tuple[str, ...]:
    """The built-in trigger names (and parametrised prefixes) that declare setting ``dest``."""
    from triggers.registry import BUILTINS, PARAMETRISED, part_settings

    declared = {**{n: part_settings(n) for n in BUILTINS}, **PARAMETRISED}
    return tuple(name for name, settings in declared.items() if any(s.name == dest for s in settings))


def check_trigger_flags(args: argparse.Namespace, triggers: str) -> None:
    """Refuse a trigger flag that none of ``triggers`` (``a+b`` or ``a,b``) reads, e.g. ``--threshold``
    with ``always``: accepted silently it looks like it changed something."""
    from rag.errors import UsageError
    from triggers.registry import readers, split_names, trigger_parts

    names = split_names(triggers)
    parts = {p for name in names for p in trigger_parts(name)}
    _check_learned_files(triggers)
    if getattr(args, "relevance_gate", None) is not None and parts == {"never"}:
        raise UsageError("--relevance-gate: the trigger never retrieves, so there is nothing to gate")
    for flag, dest in TRIGGER_FLAGS:
        if getattr(args, dest, None) is not None and not any(readers(name, dest) for name in names):
            raise UsageError(f"{flag} is read by none of the triggers ({triggers}); it applies to {', '.join(flag_readers(dest))}")


def _check_learned_files(triggers: str) -> None:
    """A ``learned:PATH`` file is read and its signals checked now, before any model loads."""
    from triggers.registry import base_part, parametrised, split_names, trigger_parts
    from triggers.learned import read_model

    for name in split_names(triggers):
        for part in map(base_part, trigger_parts(name)):
            members = parametrised(part)[1].split(",") if part.startswith("cascade:") else [part]
            for m in members:
                if m.strip().startswith("learned:"):
                    for signal in read_model(parametrised(m.strip())[1]).signals:
                        trigger_parts(signal)


def show_progress() -> bool:
    return sys.stderr.isatty() and not os.environ.get("CI")


def add_retriever_arg(group: argparse._ActionsContainer) -> None:
    """``--retriever KIND``: a built-in kind or an installed plugin's, checked when the retriever opens
    (before any model loads), so plugin kinds need no list here."""
    group.add_argument("--retriever", default=None, metavar="KIND",
                       help=f"retriever kind: {', '.join(RETRIEVER_KINDS)}, or a plugin's (`arag retrievers`; "
                       "default: bm25; with --index, the index's own kind)")


def build_pipeline(args: argparse.Namespace, lm: LanguageModel | None = None) -> Pipeline:
    """The pipeline the arguments of `add_pipeline_args` describe. The retriever is opened before
    the model is loaded, so a bad index path fails in a second, not after a model load."""
    options = trigger_options(args)  # a bad setting fails before the model stack loads
    from retrievers.components import open_retriever
    from rag.loop import LoopConfig
    from rag.pipeline import Pipeline, check_concurrency, load_language_model
    from triggers.registry import build_trigger

    check_concurrency(args.model, getattr(args, "concurrency", None))
    config = LoopConfig(k=args.k, max_steps=getattr(args, "max_steps", 6),
                        max_retrievals=getattr(args, "max_retrievals", 3), seed=getattr(args, "seed", 0),
                        **loop_options(args))
    retriever = open_retriever(args.retriever, index=args.index, corpus=getattr(args, "corpus", None),
                               progress=show_progress(), es_url=args.es_url, es_index=args.es_index,
                               es_mode=getattr(args, "es_mode", "bm25"), es_ca_file=getattr(args, "es_ca_file", None))
    lm = lm or load_language_model(args.model, getattr(args, "concurrency", None))
    trigger = build_trigger(args.trigger, lm=lm, **options)
    return Pipeline(lm=lm, retriever=retriever, trigger=trigger, config=config, trigger_options=options)


LOG_EVERY = 10  # questions between progress lines when stderr is not a terminal


def log_every(args: argparse.Namespace) -> int:
    """A progress line every `LOG_EVERY` questions unless a bar is drawn or ``--no-progress`` was given."""
    return 0 if getattr(args, "progress", None) is False or show_progress() else LOG_EVERY
