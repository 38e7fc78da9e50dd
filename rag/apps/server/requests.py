"""Request bodies as pydantic models, and the `Job` the service runs.

Why strict models: a client that sends ``"logprobs": "false"`` or ``"temperature": "hot"`` made a
mistake, and reading the string as a value would answer a question it did not ask; strict types
turn it into a 400 that names the parameter (``messages[0].role``, ``arag.retrieval``) as OpenAI
does. ``null`` means the default (some clients send every field), unknown fields are ignored (as
vLLM does), and integral floats (``"n": 2.0``) count as integers.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator, model_validator

from rag.apps.conversation import ROLES
from rag.apps.server.errors import APIError

MAX_TOP_LOGPROBS = 20  # OpenAI's limit
MAX_STOPS = 16
# fields an answer in plain text cannot honour, with the values that ask for nothing
UNSUPPORTED = {"tools": ([],), "tool_choice": ("none",), "functions": ([],), "function_call": ("none",),
               "response_format": ({"type": "text"},)}


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 1_000_000
    max_messages: int = 64
    max_tokens: int = 1024  # largest max_tokens a request may ask for
    max_n: int = 16


@dataclass
class Job:
    """One piece of model work: a chat request, or one prompt of a completions request."""

    messages: list[tuple[str, str]]
    n: int = 1
    temperature: float = 0.0
    top_p: float = 1.0
    max_tokens: int | None = None
    stop: list[str] = field(default_factory=list)
    seed: int | None = None
    logprobs: bool = False
    top_logprobs: int = 0
    continue_final: bool = False
    retrieval: bool = True
    trigger: str | None = None
    trigger_options: dict[str, Any] = field(default_factory=dict)  # settings of the trigger, as it declares them
    repetition: dict[str, Any] = field(default_factory=dict)  # the repetition controls the request sets
    loop: dict[str, Any] = field(default_factory=dict)  # the relevance gate / abstain settings the request sets
    source: str = "messages"  # the parameter the prompt came from, for errors about it


def _integral(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() else value


def _stop_list(value: Any) -> Any:
    return [value] if isinstance(value, str) else value


Int = Annotated[int, BeforeValidator(_integral)]
Stop = Annotated[list[str], BeforeValidator(_stop_list), Field(max_length=MAX_STOPS)]


class Body(BaseModel):
    """Strict types, finite numbers, ``null`` = default, unknown fields ignored."""

    model_config = ConfigDict(strict=True, extra="ignore", allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _null_is_default(cls, data: Any) -> Any:
        return {k: v for k, v in data.items() if v is not None} if isinstance(data, dict) else data


class AragOptions(Body):
    """The ``arag`` extension: ``retrieval: false`` for the raw model, ``trigger`` for one request and
    ``trigger_options`` (its declared settings, e.g. ``{"threshold": 0.3}``; checked when the trigger is
    built), ``relevance_gate`` (a threshold; the server's when absent) and ``abstain`` (the loop's settings)."""

    retrieval: bool = True
    trigger: str | None = None
    trigger_options: dict[str, Any] = {}
    relevance_gate: float | None = Field(None, ge=-1.0, le=1.0)
    abstain: bool | None = None

    def loop(self) -> dict[str, Any]:
        """The loop settings this request overrides."""
        return {k: v for k, v in (("relevance_gate", self.relevance_gate), ("abstain", self.abstain)) if v is not None}


class StreamOptions(Body):
    include_usage: bool = False


class Message(Body):
    role: str
    content: str = ""

    @field_validator("role")
    @classmethod
    def _role(cls, value: str) -> str:
        role = "system" if value == "developer" else value
        if role not in ROLES:
            raise ValueError(f"unsupported role {value!r}; expected one of {', '.join(ROLES)}")
        return role

    @field_validator("content", mode="before")
    @classmethod
    def _content(cls, value: Any) -> Any:
        """A string, or OpenAI content parts of type text (joined)."""
        if isinstance(value, list):
            if not all(isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str) for p in value):
                raise ValueError("only text parts are supported")
            return "".join(p["text"] for p in value)
        if value is not None and not isinstance(value, str):
            raise ValueError("must be a string or a list of text parts")
        return value


class Sampling(Body):
    """Fields both endpoints share."""

    model: str = "default"
    stream: bool = False
    stream_options: StreamOptions = StreamOptions()
    n: Int = Field(1, ge=1)
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, ge=0.0, le=1.0)
    max_tokens: Int | None = Field(None, ge=1)
    stop: Stop = []
    seed: Int | None = Field(None, ge=-(2**63), le=2**63 - 1)
    arag: AragOptions = AragOptions()
    repetition_penalty: float | None = Field(None, ge=0.01, le=10.0)  # vLLM's extra field; None = the server's
    no_repeat_ngram_size: Int | None = Field(None, ge=0, le=64)
    frequency_penalty: float = Field(0.0, ge=-2.0, le=2.0)
    presence_penalty: float = Field(0.0, ge=-2.0, le=2.0)

    def check(self, limits: Limits) -> None:
        """Checks that need the server's limits or span several fields."""
        for name in ("frequency_penalty", "presence_penalty"):  # OpenAI's additive penalties: no transformers processor
            if getattr(self, name) != 0.0:
                raise APIError(400, f"{name} is not supported; use repetition_penalty or no_repeat_ngram_size", name)
        if self.n > limits.max_n:
            raise APIError(400, f"n: at most {limits.max_n}, got {self.n}", "n")
        if self.max_tokens is not None and self.max_tokens > limits.max_tokens:
            raise APIError(400, f"max_tokens: at most {limits.max_tokens} (the server's cap: `arag serve "
                                f"--max-tokens`), got {self.max_tokens}", "max_tokens")
        if self.arag.retrieval and self.n != 1:
            raise APIError(400, "n > 1 needs \"arag\": {\"retrieval\": false} (the adaptive loop gives one answer)", "n")

    def job(self, messages: list[tuple[str, str]], **extra: Any) -> Job:
        seed = None if self.seed is None else self.seed % 2**63  # torch seeds are unsigned
        return Job(messages=messages, n=self.n, temperature=self.temperature, top_p=self.top_p,
                   max_tokens=self.max_tokens, stop=[s for s in self.stop if s], seed=seed,
                   retrieval=self.arag.retrieval, trigger=self.arag.trigger, trigger_options=dict(self.arag.trigger_options),
                   repetition={k: v for k, v in (("repetition_penalty", self.repetition_penalty),
                                                 ("no_repeat_ngram_size", self.no_repeat_ngram_size)) if v is not None},
                   loop=self.arag.loop(), **extra)


class ChatRequest(Sampling):
    """A `/v1/chat/completions` body (only the fields this server acts on)."""

    messages: list[Message] = Field(min_length=1)
    max_completion_tokens: Int | None = Field(None, ge=1)
    logprobs: bool = False
    top_logprobs: Int = Field(0, ge=0, le=MAX_TOP_LOGPROBS)
    continue_final_message: bool = False
    tools: Any = None
    tool_choice: Any = None
    functions: Any = None
    function_call: Any = None
    response_format: Any = None

    @model_validator(mode="after")
    def _max_completion_tokens(self) -> "ChatRequest":
        if self.max_tokens is None:
            self.max_tokens = self.max_completion_tokens
        return self

    def check(self, limits: Limits) -> None:
        if len(self.messages) > limits.max_messages:
            raise APIError(400, f"too many messages: {len(self.messages)} > {limits.max_messages}", "messages",
                           "too_many_messages")
        for name, harmless in UNSUPPORTED.items():
            if getattr(self, name) is not None and getattr(self, name) not in harmless:
                raise APIError(400, f"{name} is not supported: this server answers in plain text (leave {name} out)",
                               name, "unsupported_parameter")
        super().check(limits)
        if self.top_logprobs and not self.logprobs:
            raise APIError(400, "top_logprobs needs logprobs: true", "top_logprobs")
        last_role, last_text = self.messages[-1].role, self.messages[-1].content
        if self.arag.retrieval:
            if self.continue_final_message or last_role != "user" or not last_text.strip():
                raise APIError(400, "the last message must be a non-empty user message", "messages")
        elif self.continue_final_message and last_role != "assistant":
            raise APIError(400, "continue_final_message needs a final assistant message", "messages")

    def to_job(self) -> Job:
        return self.job([(m.role, m.content) for m in self.messages], logprobs=self.logprobs,
                        top_logprobs=self.top_logprobs, continue_final=self.continue_final_message)


def _prompts(value: Any) -> Any:
    """``prompt``: a string or a list of strings (token-id prompts are not served)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, list) and value and all(isinstance(p, (int, list)) and not isinstance(p, bool) for p in value):
        raise ValueError("token-id prompts are not supported; send text")
    return value


class CompletionRequest(Sampling):
    """A `/v1/completions` body. Each prompt is one user message to the model (an instruct model
    answers it); in the adaptive mode it is the question."""

    prompt: Annotated[list[str], BeforeValidator(_prompts), Field(min_length=1)]
    echo: bool = False
    logprobs: Int | None = Field(None, ge=0, le=MAX_TOP_LOGPROBS)  # legacy: how many alternatives per token
    suffix: str | None = None
    best_of: Int | None = Field(None, ge=1)

    def check(self, limits: Limits) -> None:
        if len(self.prompt) > limits.max_messages:
            raise APIError(400, f"too many prompts: {len(self.prompt)} > {limits.max_messages}", "prompt")
        super().check(limits)
        if self.arag.retrieval and not all(p.strip() for p in self.prompt):
            raise APIError(400, "prompt: a question must be non-empty", "prompt")
        if self.suffix:
            raise APIError(400, "suffix (insertion) is not supported", "suffix", "unsupported_parameter")
        if self.best_of is not None and self.best_of != self.n:
            raise APIError(400, "best_of other than n is not supported", "best_of", "unsupported_parameter")
        if self.echo and self.logprobs is not None:
            raise APIError(400, "echo with logprobs (log-probs of the prompt's tokens) is not supported", "echo",
                           "unsupported_parameter")

    def to_jobs(self) -> list[Job]:
        return [self.job([("user", p)], logprobs=self.logprobs is not None, top_logprobs=self.logprobs or 0,
                         source="prompt") for p in self.prompt]


def _param(loc: tuple) -> str | None:
    """pydantic's error location as OpenAI names a parameter: ``messages[0].role``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or None


def validation_error(exc: ValidationError) -> APIError:
    """The first problem pydantic found, as a 400 naming its parameter."""
    err = exc.errors(include_url=False)[0]
    param = _param(err["loc"])
    if err["type"] == "missing":
        return APIError(400, f"missing required parameter: {param!r}", param, "missing_required_parameter")
    got = repr(err.get("input"))
    got = got if len(got) <= 60 else got[:57] + "..."
    return APIError(400, f"{param}: {err['msg'].removeprefix('Value error, ')}, got {got}", param)


def parse(model: type[Sampling], body: Any, limits: Limits) -> Any:
    """Validate a decoded JSON body into ``model`` and check it against the server's limits."""
    if not isinstance(body, dict):
        raise APIError(400, "the request body must be a JSON object")
    try:
        try:
            req = model.model_validate(body)
        except ValidationError as exc:
            raise validation_error(exc) from None
        req.check(limits)
    except RecursionError:  # a value nested just under json's limit, compared or shown in a message
        raise APIError(400, "the request body is nested too deeply", code="invalid_json") from None
    return req
