"""An OpenAI-compatible HTTP server over a `Pipeline`: `POST /v1/chat/completions` and
`POST /v1/completions` (plain and server-sent-event streaming), `GET /v1/models[/{id}]`, `GET /health`.

Why it looks like this:
- One model; requests run side by side on worker threads and the `generate` calls of those that
  arrive within a few milliseconds are decoded as one batch (`batcher`); ``--max-batch 1`` makes
  them queue, one at a time.
- Two modes. By default a request is answered by the adaptive loop (the newest user message is the
  question, earlier turns are history, the retrieval query is condensed from the conversation;
  a completions prompt is a question). ``max_tokens``, ``stop``, ``temperature``, ``top_p`` and
  ``seed`` shape the returned answer (`rag.loop.LoopConfig`).
  With ``"arag": {"retrieval": false}`` the server is a plain completion endpoint over the raw model
  for the exact messages — what `rag.models.openai_backend.OpenAICompatibleModel` needs so that triggers
  can read token log-probs over HTTP. A trailing assistant message with
  ``"continue_final_message": true`` (vLLM's field) is continued, not answered.
- Each response carries the retrieval trace in an extra ``arag`` field that OpenAI clients ignore.
- Errors are OpenAI-style JSON with 4xx codes (`errors`).

Modules: `requests` (validated bodies), `service` (model work), `batcher` (micro-batching), `responses` (OpenAI shapes), `sse`
(streaming), `errors` (the error body), `app` (the app), `routes` (its routes), `helpers` (what the routes share: the
key, the body limit, the model check, work on the model worker), `thread` (a server in a background thread).
"""
from corpora.extras import require

require("server", "rag.apps.server (arag serve)")  # one line, not an ImportError from deep inside, without the extra

from rag.apps.server.app import create_app  # noqa: E402
from rag.apps.server.errors import APIError  # noqa: E402
from rag.apps.server.requests import Limits  # noqa: E402
from rag.apps.server.thread import ServerThread  # noqa: E402

__all__ = ["APIError", "Limits", "ServerThread", "create_app"]
