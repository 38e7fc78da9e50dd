"""Connecting to Elasticsearch: settings from arguments or the environment, and errors a user can act on.

Credentials come from arguments or ``ARAG_ES_API_KEY`` / ``ARAG_ES_USER`` + ``ARAG_ES_PASSWORD``,
the CA file from ``ARAG_ES_CA_FILE``, the URL from ``ARAG_ES_URL``. No message, repr or log line
carries a secret: URLs are shown without their ``user:password@`` part, and server replies are
reduced to their error type and reason.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from retrievers.base import RetrieverError

DEFAULT_INDEX = "arag"
_BAD_INDEX_CHARS = re.compile(r'[\\/*?"<>| ,#:A-Z]')


class ElasticsearchError(RetrieverError):
    """Any Elasticsearch problem a user can fix; one line, never a secret."""


class ElasticsearchUnreachable(ElasticsearchError):
    """No answer from the URL (refused, timed out, TLS failure, not an Elasticsearch server)."""


class ElasticsearchAuthError(ElasticsearchError):
    """The server refused the credentials (401) or the permissions (403)."""


class ElasticsearchIndexMissing(ElasticsearchError):
    """The index to search does not exist (build it with `arag index build ... --retriever elasticsearch`)."""


def redact(url: str) -> str:
    """The URL without a ``user:password@`` part."""
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ElasticsearchError(f"Elasticsearch URL must look like http(s)://host:port, got {redact(url)!r}")
    return url.rstrip("/")


def check_index_name(name: str) -> str:
    """Elasticsearch's own rules, checked before any request so the message names the problem."""
    if not name or name in (".", "..") or name[0] in "-_+" or _BAD_INDEX_CHARS.search(name) or len(name.encode()) > 255:
        raise ElasticsearchError(
            f"invalid Elasticsearch index name {name!r}: lowercase, no spaces or \\/*?\"<>|,#:, not starting with -, _ or +"
        )
    return name


@dataclass(frozen=True)
class Connection:
    """Where and how to connect. ``repr`` shows the redacted URL and which kind of credentials, never their values."""

    url: str
    api_key: str | None = field(default=None, repr=False)
    basic_auth: tuple[str, str] | None = field(default=None, repr=False)
    ca_file: str | None = None
    timeout: float = 30.0

    def __post_init__(self) -> None:
        object.__setattr__(self, "url", check_url(self.url))
        if self.api_key and self.basic_auth:
            raise ElasticsearchError("give either an API key or a user and password for Elasticsearch, not both")
        if self.ca_file is not None and not Path(self.ca_file).is_file():
            raise ElasticsearchError(f"Elasticsearch CA file {self.ca_file} not found")

    @property
    def safe_url(self) -> str:
        return redact(self.url)

    @classmethod
    def from_env(cls, url: str | None = None, *, api_key: str | None = None, basic_auth: tuple[str, str] | None = None,
                 ca_file: str | None = None, timeout: float = 30.0) -> "Connection":
        """Arguments first, then ARAG_ES_URL, ARAG_ES_API_KEY, ARAG_ES_USER/ARAG_ES_PASSWORD, ARAG_ES_CA_FILE."""
        url = url or os.environ.get("ARAG_ES_URL")
        if not url:
            raise ElasticsearchError("no Elasticsearch URL: pass --es-url or set ARAG_ES_URL")
        api_key = api_key or os.environ.get("ARAG_ES_API_KEY") or None
        if basic_auth is None and not api_key:
            user, password = os.environ.get("ARAG_ES_USER"), os.environ.get("ARAG_ES_PASSWORD")
            if user and password is None:
                raise ElasticsearchError("ARAG_ES_USER is set but ARAG_ES_PASSWORD is not")
            basic_auth = (user, password) if user else None
        return cls(url, api_key=api_key, basic_auth=basic_auth, ca_file=ca_file or os.environ.get("ARAG_ES_CA_FILE") or None,
                   timeout=timeout)

    def client(self):
        """An `elasticsearch.Elasticsearch` client; it connects lazily, on the first request."""
        from elasticsearch import Elasticsearch

        try:
            return Elasticsearch(
                self.url, api_key=self.api_key, basic_auth=self.basic_auth, ca_certs=self.ca_file,
                request_timeout=self.timeout, max_retries=1, retry_on_timeout=True,
            )
        except ValueError as exc:
            raise ElasticsearchError(f"bad Elasticsearch settings for {self.safe_url}: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _reason(exc) -> str:
    """``type: reason`` from an ApiError's body (root cause first), without the rest of the reply."""
    body = getattr(exc, "body", None)
    err = body.get("error") if isinstance(body, dict) else None
    if isinstance(err, dict):
        cause = (err.get("root_cause") or [err])[0]
        return f"{cause.get('type', 'error')}: {cause.get('reason', '')}".strip()
    if hasattr(exc, "meta") and not body:
        return "no details in the reply"  # e.g. the reply to a HEAD request (the client's message would be "None")
    return getattr(exc, "message", None) or _first_line(exc)


def index_missing(conn: Connection, index: str) -> ElasticsearchIndexMissing:
    return ElasticsearchIndexMissing(
        f"Elasticsearch at {conn.safe_url} has no index {index!r}: build it with "
        f"`arag index build CORPUS --retriever elasticsearch --es-index {index}`"
    )


def translate(exc: Exception, conn: Connection, index: str, doing: str) -> ElasticsearchError:
    """One error type per thing a user fixes differently; ``doing`` says what was attempted ("search", "bulk indexing")."""
    import elasticsearch as es
    from elastic_transport import ConnectionTimeout, TlsError, TransportError

    where = f"Elasticsearch at {conn.safe_url}"
    if isinstance(exc, es.AuthenticationException):
        if conn.api_key is None and conn.basic_auth is None:
            return ElasticsearchAuthError(f"{where} needs credentials (401) for {doing}: set ARAG_ES_API_KEY or ARAG_ES_USER/ARAG_ES_PASSWORD")
        kind = "API key" if conn.api_key else f"password of user {conn.basic_auth[0]!r}"
        return ElasticsearchAuthError(f"{where} rejected the {kind} (401) during {doing}: check ARAG_ES_API_KEY or ARAG_ES_USER/ARAG_ES_PASSWORD")
    if isinstance(exc, es.AuthorizationException):
        return ElasticsearchAuthError(f"{where}: not allowed to do {doing} on index {index!r} (403: {_reason(exc)})")
    if isinstance(exc, es.NotFoundError) and "index_not_found" in _reason(exc):
        return index_missing(conn, index)
    if isinstance(exc, es.UnsupportedProductError):
        return ElasticsearchUnreachable(f"{conn.safe_url} is not an Elasticsearch server")
    if isinstance(exc, TlsError):
        return ElasticsearchUnreachable(f"TLS failure talking to {where}: {_tls_reason(exc)} (trust its CA with --es-ca-file or ARAG_ES_CA_FILE)")
    if isinstance(exc, ConnectionTimeout):
        return ElasticsearchUnreachable(f"{where} did not answer within {conn.timeout:g} s during {doing}")
    if isinstance(exc, es.ApiError):
        return ElasticsearchError(f"{where} refused {doing} on index {index!r} ({exc.meta.status}: {_reason(exc)})")
    if isinstance(exc, TransportError):
        return ElasticsearchUnreachable(f"cannot reach {where} during {doing}: {_connection_reason(exc)}")
    return ElasticsearchError(f"{where}: {doing} failed: {_first_line(exc)}")


def _tls_reason(exc) -> str:
    """The SSL library's own words ("certificate verify failed: unable to get local issuer certificate")."""
    m = re.search(r"\[SSL[^\]]*\] ([^(]+?)\s*\(_ssl", str(exc))
    return m.group(1) if m else _first_line(exc)


def _connection_reason(exc) -> str:
    """The innermost OS-level reason ("Connection refused", "Name or service not known")."""
    text = str(getattr(exc, "errors", None) and exc.errors[-1] or exc)
    for pattern in (r"\[Errno -?\d+\] ([^'\")\]]+)", r"(Connection refused|timed out|Name or service not known)"):
        m = re.search(pattern, text)
        if m:
            return m.group(1).strip()
    return _first_line(exc)
