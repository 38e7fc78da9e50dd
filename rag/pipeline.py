"""The facade that wires model, retriever and trigger together: what the CLI, the chat, the
server and user code construct."""
from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from typing import Any

from rag.hf_model import HFLanguageModel
from rag.lm import LanguageModel
from rag.loop import AdaptiveRAG, LoopConfig
from rag.trace import Answer
from retrievers.base import Retriever
from triggers.base import Trigger


def load_language_model(model: str | None) -> LanguageModel:
    """``default`` / None → the shipped SmolLM2; ``openai:BASE_URL/MODEL`` → an HTTP backend; else transformers."""
    if model and model.startswith("openai:"):
        from rag.openai_backend import OpenAICompatibleModel

        return OpenAICompatibleModel.from_spec(model)
    return HFLanguageModel.load(None if model in (None, "default") else model)


@dataclass
class Pipeline:
    lm: LanguageModel
    retriever: Retriever | None
    trigger: Trigger
    config: LoopConfig
    trigger_options: dict[str, Any] = field(default_factory=dict)  # CLI/config settings, for triggers chosen later


    @property
    def loop(self) -> AdaptiveRAG:
        return AdaptiveRAG(self.lm, self.retriever, self.trigger, config=self.config)

    def ask(self, question: str) -> Answer:
        return self.loop.answer(question)

    def make_trigger(self, name: str) -> Trigger:
        """Another trigger by name (chat's /trigger, a server request's ``arag.trigger``) with this
        pipeline's settings (corpus index, judge, samples...), less the threshold, which is per trigger."""
        from rag.registry import build_trigger

        options = {k: v for k, v in self.trigger_options.items() if k != "threshold"}
        return build_trigger(name, lm=self.lm, **options)

    @classmethod
    def from_args(cls, args: argparse.Namespace, lm: LanguageModel | None = None) -> "Pipeline":
        """Build from parsed CLI arguments; the retriever is opened before the model is loaded so
        that a bad index path fails in a second, not after a model load."""
        from rag.commands.common import loop_options, show_progress, trigger_options
        from rag.components import open_retriever
        from rag.registry import build_trigger

        options = trigger_options(args)
        config = LoopConfig(k=args.k, max_steps=getattr(args, "max_steps", 6),
                            max_retrievals=getattr(args, "max_retrievals", 3), seed=getattr(args, "seed", 0),
                            **loop_options(args))
        retriever = open_retriever(args.retriever, index=args.index, corpus=getattr(args, "corpus", None),
                                   progress=show_progress(), es_url=args.es_url, es_index=args.es_index,
                                   es_mode=getattr(args, "es_mode", "bm25"), es_ca_file=getattr(args, "es_ca_file", None))
        lm = lm or load_language_model(args.model)
        trigger = build_trigger(args.trigger, lm=lm, **options)
        return cls(lm=lm, retriever=retriever, trigger=trigger, config=config, trigger_options=options)
