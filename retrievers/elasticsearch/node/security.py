"""Elasticsearch's own security on the local node: file-realm users, API keys, TLS on HTTP.

The node built from `maven/security/` loads x-pack-core and x-pack-security, so a wrong
password, a bad API key or a missing CA file meet the real server's answers (401, TLS handshake
failure), not a stand-in. `NodeSecurity` says what the node gets; `ElasticsearchNode(security=...)`
writes it into the node's config folder before the node starts:

- users: ``config/users`` and ``config/users_roles`` in the format `elasticsearch-users` writes
  (PBKDF2-HMAC-SHA512, 10,000 iterations, 32-byte salt: Elasticsearch's ``pbkdf2`` hasher), every user
  a ``superuser``; API keys are then created through the API by one of these users.
- TLS: a throwaway CA and a node certificate for 127.0.0.1/localhost, made with the ``openssl``
  command; clients trust the node with ``ca_file`` (``--es-ca-file`` / ``ARAG_ES_CA_FILE``).

Transport (node-to-node) TLS stays off: the node binds to loopback, where Elasticsearch does not
require it.
"""
from __future__ import annotations

import base64
import hashlib
import os
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

from retrievers.base import RetrieverError

PBKDF2_ITERATIONS = 10_000  # Elasticsearch's Hasher.PBKDF2
CA_FILE = "ca.crt"


class NodeSecurityError(RetrieverError):
    """The node's security could not be set up (no openssl, bad user name)."""


def pbkdf2_hash(password: str) -> str:
    """The ``{PBKDF2}`` hash Elasticsearch's file realm reads (the same as `elasticsearch-users -p`)."""
    salt = os.urandom(32)
    key = hashlib.pbkdf2_hmac("sha512", password.encode(), salt, PBKDF2_ITERATIONS, 32)
    return f"{{PBKDF2}}{PBKDF2_ITERATIONS}${base64.b64encode(salt).decode()}${base64.b64encode(key).decode()}"


@dataclass(frozen=True)
class NodeSecurity:
    """Users (name -> password, all superusers) and whether HTTP is served over TLS."""

    users: Mapping[str, str] = field(repr=False)
    tls: bool = False

    def __post_init__(self) -> None:
        if not self.users:
            raise NodeSecurityError("a secured node needs at least one user")
        for name in self.users:
            if not name or not all(c.isalnum() or c in "_-.@" for c in name):
                raise NodeSecurityError(f"invalid user name {name!r}: letters, digits, _ - . @ only")

    def write_config(self, config: Path) -> list[str]:
        """Write the realm files (and certificates) into ``config``; return the node settings that use them."""
        config.mkdir(parents=True, exist_ok=True)
        (config / "users").write_text("".join(f"{u}:{pbkdf2_hash(p)}\n" for u, p in self.users.items()))
        (config / "users_roles").write_text(f"superuser:{','.join(self.users)}\n")
        settings = {
            "xpack.security.enabled": "true",
            "xpack.security.authc.password_hashing.algorithm": "pbkdf2",
            "xpack.security.transport.ssl.enabled": "false",
            "xpack.security.http.ssl.enabled": "false",
        }
        if self.tls:
            make_certificates(config)
            settings.update({
                "xpack.security.http.ssl.enabled": "true",
                "xpack.security.http.ssl.key": "node.key",
                "xpack.security.http.ssl.certificate": "node.crt",
                "xpack.security.http.ssl.certificate_authorities": CA_FILE,
            })
        return [f"{k}={v}" for k, v in settings.items()]

    def auth_header(self) -> str:
        """``Authorization`` for the node's own health checks: the first user."""
        user, password = next(iter(self.users.items()))
        return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def make_certificates(config: Path) -> None:
    """A CA (``ca.crt``) and a node certificate it signs (``node.crt``/``node.key``) for 127.0.0.1 and localhost."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise NodeSecurityError("the openssl command is needed to make the TLS certificates of a secured test node")

    def run(*args: str) -> None:
        done = subprocess.run([openssl, *args], cwd=config, capture_output=True, text=True)
        if done.returncode != 0:
            raise NodeSecurityError(f"openssl {args[0]} failed: {done.stderr.strip()[-500:]}")

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", CA_FILE, "-days", "2",
        "-subj", "/CN=adaptive-rag test CA")
    run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "node.key", "-out", "node.csr", "-subj", "/CN=localhost")
    (config / "node.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run("x509", "-req", "-in", "node.csr", "-CA", CA_FILE, "-CAkey", "ca.key", "-CAcreateserial", "-out", "node.crt",
        "-days", "2", "-extfile", "node.ext")
