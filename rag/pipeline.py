"""The facade that wires model, retriever and trigger together: what the CLI, the chat, the
server and user code construct. Building one from command-line arguments is the CLI's job
(`rag.cli.common.build_pipeline`): the pipeline knows nothing of argparse."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from rag.errors import UsageError
from rag.loop import AdaptiveRAG, LoopConfig
from rag.loop.trace import Answer
from rag.models.hf_model import HFLanguageModel
from rag.models.lm import LanguageModel
from rag.models.shipped import gguf_path, is_shipped
from retrievers.base import Retriever
from triggers.base import Trigger


def check_concurrency(model: str | None, concurrency: int | None) -> None:
    """``concurrency`` (concurrent HTTP requests) means something only for an ``openai:`` model: refused
    elsewhere, before anything loads, rather than ignored."""
    if concurrency is not None and not (model or "").startswith("openai:"):
        raise UsageError("--concurrency applies to an openai:BASE_URL/MODEL model (concurrent HTTP requests)")


def load_language_model(model: str | None, concurrency: int | None = None) -> LanguageModel:
    """``default`` / None / ``smollm2-135m`` → the shipped SmolLM2; ``gemma3-270m`` → the shipped Gemma GGUF
    (rag/models/shipped.py); ``openai:BASE_URL/MODEL`` → an HTTP backend (``concurrency``: requests in
    flight, default 16); else transformers (hub id, folder, GGUF file)."""
    check_concurrency(model, concurrency)
    if model and model.startswith("openai:"):
        from rag.models.openai_backend import DEFAULT_CONCURRENCY, OpenAICompatibleModel

        return OpenAICompatibleModel.from_spec(model, concurrency=concurrency or DEFAULT_CONCURRENCY)
    if model in (None, "default", "smollm2-135m"):
        return HFLanguageModel.load(None)
    if is_shipped(model):
        return HFLanguageModel.load(str(gguf_path(model)))
    return HFLanguageModel.load(model)


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

    def make_trigger(self, name: str, settings: dict[str, Any] | None = None) -> Trigger:
        """Another trigger by name (chat's /trigger, a server request's ``arag.trigger``) with this
        pipeline's settings (corpus index, judge, samples...) where it declares them, less the
        threshold, which is per trigger; ``settings`` (a request's ``arag.trigger_options``) win and
        must all be declared by the trigger."""
        from triggers.registry import applicable, build_trigger

        options = {k: v for k, v in self.trigger_options.items() if k != "threshold"}
        return build_trigger(name, lm=self.lm, **{**applicable(name, options), **(settings or {})})
