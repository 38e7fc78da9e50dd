"""What an OpenAI-compatible server can do for the loop, found out once per model and recorded in traces.

The loop needs three things a plain chat endpoint does not promise:

* **continuation** — the next step continues the answer accepted so far. Servers differ: vLLM and `arag
  serve` continue a final assistant message (``continue_final_message``) and return only the new text;
  llama.cpp's ``llama-server`` continues it but returns the prefix again at the start of ``content``;
  others ignore the prefix and start a new answer. Where the server renders its own chat template
  (llama.cpp's ``/apply-template``), the exact route is a raw prompt — template + prefix, as the
  in-process model builds it — on ``/v1/completions``.
* **samples** — ``n`` choices per request: llama-server allows at most its slot count and gives the same
  seed to every choice, so samples there go out as single-choice requests with distinct seeds.
* **log-probs** — the chosen token's and the top-k alternatives'.

`probe` asks a server in at most four small requests; the result travels in every answer's trace
(``backend`` in ``--json``) so a reader can tell how the answer was made.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from typing import Any, Protocol

ARAG_OWNER = "adaptive-rag"  # `owned_by` in an arag server's /v1/models

# continuation routes
CONTINUE_FINAL_MESSAGE = "continue_final_message"  # vLLM's extension: only the new text comes back
RAW_PROMPT = "raw prompt"  # /v1/completions on the server's own rendering of the chat template + prefix
PREFILL = "assistant prefill"  # a final assistant message without the extension's fields is continued
NOT_PROBED = "not probed"  # a server nothing has been continued on yet (asking costs two requests)
# what llama-server reports as the chat template of a GGUF that has none (common/chat.cpp, CHATML_TEMPLATE_SRC):
# such a model is a base model, and is prompted as the in-process model prompts one (plain text)
LLAMA_CPP_FALLBACK_TEMPLATE = (
    "{%- for message in messages -%}\n"
    "  {{- '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>\n' -}}\n"
    "{%- endfor -%}\n"
    "{%- if add_generation_prompt -%}\n"
    "  {{- '<|im_start|>assistant\n' -}}\n"
    "{%- endif -%}")
PROBE_QUESTION = "Count from 1 to 20, separated by commas."
PROBE_PREFIX = "1, 2, 3, 4, 5, 6,"  # a continuation goes on with 7; a server that ignores the prefix starts at 1


@dataclass(frozen=True)
class Capabilities:
    """One server's answers to the loop's needs (see the module docstring)."""

    server: str  # "arag", "llama.cpp" or "openai-compatible"
    continuation: str | None  # CONTINUE_FINAL_MESSAGE, RAW_PROMPT, PREFILL or NOT_PROBED; None: answers cannot be continued (one step only)
    echoes_prefix: bool  # the reply starts with the continued prefix again (it is cut off here)
    max_n: int | None  # choices one request may ask for; None: no limit found
    chat: bool = True  # the model has a chat template; False: a base model, prompted as plain text

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def missing_continuation(self, where: str) -> str:
        """The one-line reason multi-step answers are refused on this server."""
        return (f"{where} ({self.server}) cannot continue an answer (no continue_final_message, raw completion "
                "or assistant prefill), so answers there are one step: use --max-steps 1")


class Server(Protocol):
    """What `probe` needs of the HTTP backend (`rag.models.openai_backend.OpenAICompatibleModel`)."""

    model: str
    root: str

    def _request(self, method: str, path: str, body: dict[str, Any] | None = None) -> dict[str, Any]: ...


def probe(server: Server) -> Capabilities:
    """`arag serve` (its /v1/models says so) continues with the extension; llama.cpp (``/props`` names its
    slots) gets the raw-prompt route when ``/apply-template`` answers; any other server's continuation
    is `NOT_PROBED` until `probe_continuation` asks it."""
    from rag.models.lm import ModelError

    try:
        models = server._request("GET", "/models").get("data") or []
    except ModelError:
        models = []
    if any(isinstance(m, dict) and m.get("owned_by") == ARAG_OWNER for m in models):
        return Capabilities("arag", CONTINUE_FINAL_MESSAGE, False, None)
    try:
        props = server._request("GET", server.root + "/props")
    except ModelError:
        props = {}
    if isinstance(props.get("total_slots"), int):
        try:
            rendered = server._request("POST", server.root + "/apply-template",
                                       {"messages": [{"role": "user", "content": PROBE_QUESTION}]})
        except ModelError:
            rendered = {}
        chat = props.get("chat_template") != LLAMA_CPP_FALLBACK_TEMPLATE
        if isinstance(rendered.get("prompt"), str):
            return Capabilities("llama.cpp", RAW_PROMPT, False, max(1, props["total_slots"]), chat)
        return Capabilities("llama.cpp", NOT_PROBED, False, max(1, props["total_slots"]), chat)
    return Capabilities("openai-compatible", NOT_PROBED, False, None)


def probe_continuation(server: Server) -> tuple[str | None, bool]:
    """(route, echoes) from asking the server to continue `PROBE_PREFIX` (at most two 4-token requests):
    with vLLM's fields first, then as a bare assistant prefill (a server may refuse fields it does not know)."""
    from rag.models.lm import ModelError

    messages = [{"role": "user", "content": PROBE_QUESTION}, {"role": "assistant", "content": PROBE_PREFIX}]
    for route, fields in ((CONTINUE_FINAL_MESSAGE, {"continue_final_message": True, "add_generation_prompt": False}),
                          (PREFILL, {})):
        body = {"model": server.model, "messages": messages, "max_tokens": 4, "temperature": 0.0, **fields}
        try:
            reply = server._request("POST", "/chat/completions", body)
        except ModelError:
            continue
        text = (((reply.get("choices") or [{}])[0].get("message") or {}).get("content") or "")
        echoes = text.startswith(PROBE_PREFIX)
        if (text[len(PROBE_PREFIX):] if echoes else text).lstrip().startswith("7"):
            return route, echoes
    return None, False


def max_n_from_error(message: str) -> int | None:
    """llama-server's "Field 'n': Value must be between 1 <= value <= 4, but got 10" → 4."""
    m = re.search(r"\bn\b.*?<=\s*value\s*<=\s*(\d+)", message)
    return int(m.group(1)) if m else None
