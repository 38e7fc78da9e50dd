"""`arag serve`: an OpenAI-compatible HTTP server (chat and text completions with adaptive retrieval)."""
from __future__ import annotations

import argparse
import os
import sys

from rag.cli.common import add_pipeline_args, build_pipeline, finite_float, positive_int


def port_number(text: str) -> int:
    try:
        x = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= x <= 65535:
        raise argparse.ArgumentTypeError(f"port must be in 0..65535, got {x}")
    return x


def window_ms(text: str) -> float:
    x = finite_float(text)
    if x < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return x


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="serve an OpenAI-compatible API with adaptive retrieval",
                       description="POST /v1/chat/completions and /v1/completions (stream or not), GET /v1/models, "
                                   "GET /v1/models/ID, GET /health. "
                                   "The model name `default` is always accepted. Send \"arag\": {\"retrieval\": false} "
                                   "for a plain completion of the raw model. With no --index/--corpus the demo corpus "
                                   "is served.")
    p.add_argument("--host", default="127.0.0.1", help="bind address (default: 127.0.0.1; anything else exposes the model)")
    p.add_argument("--port", type=port_number, default=8000, help="port (default: 8000)")
    p.add_argument("--api-key", default=None, help="require Authorization: Bearer KEY (default: $ARAG_API_KEY, else none)")
    p.add_argument("--max-body-bytes", type=positive_int, default=1_000_000, help="largest request body (default: 1000000)")
    p.add_argument("--max-messages", type=positive_int, default=64, help="most messages per request (default: 64)")
    p.add_argument("--max-tokens", type=positive_int, default=1024,
                   help="largest max_tokens a request may ask for (default: 1024)")
    p.add_argument("--batch-window-ms", type=window_ms, default=5.0, metavar="MS",
                   help="decode together the model calls of requests that arrive within MS milliseconds (default: 5)")
    p.add_argument("--max-batch", type=positive_int, default=16, metavar="N",
                   help="most sequences decoded in one batch, and requests served at once; 1 = one request at a time (default: 16)")
    add_pipeline_args(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from corpora.extras import require

    require("server", "arag serve")
    import uvicorn

    from rag.apps.server import Limits, create_app

    api_key = args.api_key or os.environ.get("ARAG_API_KEY") or None
    if args.host not in ("127.0.0.1", "localhost", "::1") and api_key is None:
        print(f"arag: warning: serving on {args.host} without --api-key: anyone who can reach it can use the model",
              file=sys.stderr)
    pipe = build_pipeline(args)
    app = create_app(pipe, api_key=api_key, limits=Limits(max_body_bytes=args.max_body_bytes,
                                                          max_messages=args.max_messages, max_tokens=args.max_tokens),
                     batch_window_ms=args.batch_window_ms, max_batch=args.max_batch)
    print(f"arag: serving {', '.join(app.state.service.model_ids())} at http://{args.host}:{args.port}/v1",
          file=sys.stderr, flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
    return 0
