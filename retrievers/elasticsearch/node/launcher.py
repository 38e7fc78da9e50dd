"""A real Elasticsearch 9 node on 127.0.0.1, built from Maven Central jars, for tests and local use.

No Elasticsearch comes from PyPI or Debian, so `maven/` beside this file is a tiny Maven
project: the server jar, its netty4 HTTP/transport module and a launcher class (see its pom.xml for
why not codelibs' cluster runner), and `maven/security/`, which adds Elasticsearch's own
security (x-pack-core, x-pack-security). `build()` runs `mvn package` on both once (jars land in ~/.m2
and `maven/target/`); `ElasticsearchNode` starts a node on free ports, waits for the cluster
health it needs, and stops it on SIGTERM. Elasticsearch 9 needs Java 21+: the JDK is found through
``ARAG_ES_JAVA_HOME``, ``JAVA_HOME`` or the usual install folders.

    python -m retrievers.elasticsearch.node build             # once; ~85 s cold (127 MB of jars into ~/.m2)
    python -m retrievers.elasticsearch.node start             # background node; prints its URL
    ARAG_ES_PASSWORD=... python -m retrievers.elasticsearch.node start --user arag [--tls]
                                                   # the same with security: a superuser, HTTPS
    python -m retrievers.elasticsearch.node stop              # stops the node `start` left running
    python -m retrievers.elasticsearch.node run               # foreground node until Ctrl-C

The node skips the distribution's launcher, which refuses to run as root: CI runs as root. It binds
to loopback only (so production bootstrap checks do not apply) and turns the disk-watermark allocator
off so a nearly full disk cannot make indexes read-only. Without ``security`` it loads no x-pack at
all (open HTTP); with it, see `security.py`.
"""
from __future__ import annotations

import argparse
import fcntl
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

from retrievers.base import RetrieverError
from retrievers.elasticsearch.node.security import CA_FILE, NodeSecurity, NodeSecurityError

NODE_PROJECT = Path(__file__).resolve().parent / "maven"
TARGET = NODE_PROJECT / "target"
LAUNCHER_JAR = TARGET / "elasticsearch-node-1.0.jar"
SECURITY_PROJECT = NODE_PROJECT / "security"
SECURE_MODULES = TARGET / "modules-security"  # the modules plus x-pack-core and x-pack-security
MAIN_CLASS = "org.adaptiverag.esnode.EsNode"
MIN_JAVA = 21
STATE_DIR = Path(__file__).resolve().parents[3] / ".arag-cache" / "es-node"  # the repository root's
JVM_FLAGS = (  # the distribution's jvm.options that matter here
    "-XX:+UseG1GC",
    "-Dfile.encoding=UTF-8",
    "-Djava.locale.providers=CLDR",
    "-Dio.netty.noUnsafe=true",
    "-Dio.netty.noKeySetOptimization=true",
    "-Dio.netty.recycler.maxCapacityPerThread=0",
    "-Dlog4j.shutdownHookEnabled=false",
    "-Dlog4j2.disable.jmx=true",
    "-Dlog4j2.formatMsgNoLookups=true",
    "--add-modules=jdk.incubator.vector",
    "--enable-native-access=ALL-UNNAMED",
)


class NodeError(RetrieverError):
    """The local test node could not be built or started (no JDK 21+, Maven failure, node died)."""


def java_home() -> Path:
    """A JDK of version >= 21: $ARAG_ES_JAVA_HOME, then $JAVA_HOME, then /usr/lib/jvm/* and /opt/*."""
    candidates = [os.environ.get("ARAG_ES_JAVA_HOME"), os.environ.get("JAVA_HOME")]
    for root in ("/usr/lib/jvm", "/opt", "/usr/local"):
        if Path(root).is_dir():
            candidates += sorted((str(p) for p in Path(root).iterdir() if p.is_dir()), reverse=True)
    for c in candidates:
        if c and _java_version(Path(c)) >= MIN_JAVA and (Path(c) / "bin" / "java").is_file():
            return Path(c)
    raise NodeError(f"no Java {MIN_JAVA}+ JDK found (Elasticsearch 9 needs one): set ARAG_ES_JAVA_HOME")


def _java_version(home: Path) -> int:
    """The major version from a JDK's `release` file (0 when it is not a JDK folder)."""
    try:
        m = re.search(r'^JAVA_VERSION="(\d+)', (home / "release").read_text(), re.M)
    except OSError:
        return 0
    return int(m.group(1)) if m else 0


def _built() -> bool:
    if not (LAUNCHER_JAR.is_file() and (TARGET / "lib").is_dir() and SECURE_MODULES.is_dir()):
        return False
    sources = [NODE_PROJECT / "pom.xml", SECURITY_PROJECT / "pom.xml",
               *(p for d in (NODE_PROJECT / "src", SECURITY_PROJECT / "modules") for p in d.rglob("*") if p.is_file())]
    return min(LAUNCHER_JAR.stat().st_mtime, SECURE_MODULES.stat().st_mtime) >= max(p.stat().st_mtime for p in sources)


def build(force: bool = False, quiet: bool = True) -> Path:
    """`mvn package` the node project, then its security layout, unless built from the current sources; returns target/."""
    STATE_DIR.mkdir(parents=True, exist_ok=True)
    with open(STATE_DIR / "build.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # concurrent test sessions build once
        if not force and _built():
            return TARGET
        mvn = shutil.which("mvn")
        if mvn is None:
            raise NodeError("Maven (mvn) not found: it builds the local Elasticsearch node from Maven Central jars")
        env = {**os.environ, "JAVA_HOME": str(java_home())}
        for project in (NODE_PROJECT, SECURITY_PROJECT):
            cmd = [mvn, "-B", "-q" if quiet else "-ntp", "-f", str(project / "pom.xml"), "clean", "package"]
            done = subprocess.run(cmd, env=env, capture_output=quiet, text=True)
            if done.returncode != 0:
                tail = (done.stdout or "")[-2000:] if quiet else ""
                raise NodeError(f"building the Elasticsearch node failed ({' '.join(cmd)}):\n{tail}")
    return TARGET


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _health(url: str, nodes: int, wait_s: int = 1, *, headers: dict[str, str] | None = None,
            context: ssl.SSLContext | None = None) -> dict | None:
    """Cluster health once it is green with at least ``nodes`` nodes; None while not (or unreachable)."""
    query = f"wait_for_status=green&wait_for_nodes=%3E%3D{nodes}&timeout={wait_s}s"
    request = urllib.request.Request(f"{url}/_cluster/health?{query}", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=wait_s + 5, context=context) as r:
            body = json.load(r)
    except (urllib.error.URLError, OSError, ValueError):
        return None
    return None if body.get("timed_out") else body


class ElasticsearchNode:
    """One node process. ``seed`` joins an existing node's cluster (as a data-only node by default).

    The first node of a cluster is master-eligible; nodes that join it hold data only, so stopping
    one of them never costs the cluster its elected master (with two master-eligible nodes the
    voting configuration would keep only one of them, and stopping that one would stall the cluster).
    """

    def __init__(self, home: str | Path | None = None, *, cluster_name: str = "arag-test", node_name: str = "node-1",
                 seed: "ElasticsearchNode | None" = None, roles: Sequence[str] | None = None, heap: str = "512m",
                 peers_expected: bool = False, security: NodeSecurity | None = None):
        self.home = Path(home) if home else Path(tempfile.mkdtemp(prefix="arag-es-"))
        self._own_home = home is None
        self.cluster_name = seed.cluster_name if seed else cluster_name
        self.node_name = node_name
        self.seed = seed
        self.roles = list(roles) if roles is not None else (["data"] if seed else ["master", "data", "ingest"])
        self.heap = heap
        self.peers_expected = peers_expected  # first node of a multi-node cluster: bootstrap it, do not use single-node discovery
        self.security = security  # None: no x-pack, open HTTP (the default test node)
        self.http_port = 0
        self.transport_port = 0
        self.process: subprocess.Popen | None = None
        self._security_settings: list[str] = []

    @property
    def url(self) -> str:
        scheme = "https" if self.security and self.security.tls else "http"
        return f"{scheme}://127.0.0.1:{self.http_port}"

    @property
    def ca_file(self) -> Path | None:
        """The CA that signed the node's HTTP certificate (a client's ``ca_certs``); None without TLS."""
        return self.home / "config" / CA_FILE if self.security and self.security.tls else None

    @property
    def log_path(self) -> Path:
        return self.home / "node.log"

    def settings(self) -> list[str]:
        s = {
            "path.home": str(self.home),
            "cluster.name": self.cluster_name,
            "node.name": self.node_name,
            "node.roles": ",".join(self.roles),
            "network.host": "127.0.0.1",
            "http.port": str(self.http_port),
            "transport.port": str(self.transport_port),
            "cluster.routing.allocation.disk.threshold_enabled": "false",
            "action.destructive_requires_name": "false",
        }
        if self.seed is None and not self.peers_expected:
            s["discovery.type"] = "single-node"
        elif self.seed is None:
            s["cluster.initial_master_nodes"] = self.node_name
        else:
            s["discovery.seed_hosts"] = f"127.0.0.1:{self.seed.transport_port}"
        return [f"{k}={v}" for k, v in s.items()]

    def command(self) -> list[str]:
        java = java_home() / "bin" / "java"
        classpath = os.pathsep.join([str(LAUNCHER_JAR), str(TARGET / "lib" / "*")])
        return [str(java), f"-Xms{self.heap}", f"-Xmx{self.heap}", *JVM_FLAGS, f"-Djava.io.tmpdir={self.home / 'tmp'}",
                f"-Desnode.modules={SECURE_MODULES if self.security else TARGET / 'modules'}", "-cp", classpath, MAIN_CLASS,
                *self.settings(), *self._security_settings]

    def start(self, timeout: float = 180.0, attempts: int = 3) -> "ElasticsearchNode":
        """Start and wait until the cluster has this node and is green; retry on a port taken meanwhile."""
        build()
        self._security_settings = self.security.write_config(self.home / "config") if self.security else []
        for attempt in range(attempts):
            self.http_port, self.transport_port = free_port(), free_port()
            (self.home / "tmp").mkdir(parents=True, exist_ok=True)
            with open(self.log_path, "ab") as log:
                self.process = subprocess.Popen(self.command(), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                                start_new_session=True)
            if self._wait_ready(timeout):
                return self
            if self.process.poll() is None:
                self.stop()
                raise NodeError(f"Elasticsearch node {self.node_name} not green after {timeout:.0f} s; log: {self.log_path}")
            if "BindException" not in self._log_tail() or attempt == attempts - 1:
                raise NodeError(f"Elasticsearch node {self.node_name} exited with {self.process.returncode}:\n{self._log_tail()}")
        raise AssertionError("unreachable")

    def _wait_ready(self, timeout: float) -> bool:
        """Green, with every node of this node's chain of seeds (itself included) in the cluster."""
        nodes, n = 1, self.seed
        while n is not None:
            nodes, n = nodes + 1, n.seed
        headers = {"Authorization": self.security.auth_header()} if self.security else None
        context = ssl.create_default_context(cafile=str(self.ca_file)) if self.ca_file else None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                return False
            if _health(self.url, nodes, headers=headers, context=context) is not None:
                return True
            time.sleep(0.5)
        return False

    def _log_tail(self, chars: int = 3000) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        lines = [ln for ln in text.splitlines() if not ln.startswith(("WARNING:", "\tat "))]
        return "\n".join(lines)[-chars:]

    def stop(self, timeout: float = 60.0) -> None:
        """SIGTERM (the node closes cleanly), then SIGKILL if it has not exited within ``timeout``."""
        p, self.process = self.process, None
        if p is not None and p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()

    def cleanup(self) -> None:
        self.stop()
        if self._own_home:
            shutil.rmtree(self.home, ignore_errors=True)

    def __enter__(self) -> "ElasticsearchNode":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.cleanup()


@contextmanager
def running_node(**kwargs) -> Iterator[ElasticsearchNode]:
    node = ElasticsearchNode(**kwargs)
    try:
        yield node.start()
    finally:
        node.cleanup()


def _state_file() -> Path:
    return STATE_DIR / "node.json"


def _cmd_start(args: argparse.Namespace) -> int:
    state = _state_file()
    if state.exists():
        info = json.loads(state.read_text())
        if _alive(info["pid"]):
            print(info["url"])
            return 0
    home = Path(args.home) if args.home else STATE_DIR / "home"
    node = ElasticsearchNode(home, heap=args.heap, security=_security(args)).start()
    state.write_text(json.dumps({"pid": node.process.pid, "url": node.url, "home": str(home)}))
    print(node.url)
    if node.ca_file:
        print(f"CA file: {node.ca_file}")
    return 0


def _security(args: argparse.Namespace) -> NodeSecurity | None:
    """--user NAME (password from ARAG_ES_PASSWORD, never from the command line) and --tls."""
    if args.user is None:
        if args.tls:
            raise NodeError("--tls needs --user: TLS comes with Elasticsearch's security")
        return None
    password = os.environ.get("ARAG_ES_PASSWORD")
    if not password:
        raise NodeError("--user needs its password in ARAG_ES_PASSWORD")
    return NodeSecurity({args.user: password}, tls=args.tls)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except OSError:
        return False
    return True


def _cmd_stop(args: argparse.Namespace) -> int:
    state = _state_file()
    if not state.exists():
        print("no node started by `python -m retrievers.elasticsearch.node start`", file=sys.stderr)
        return 0
    pid = json.loads(state.read_text())["pid"]
    if _alive(pid):
        os.kill(pid, signal.SIGTERM)
        for _ in range(120):
            if not _alive(pid):
                break
            time.sleep(0.5)
    state.unlink()
    return 0


def _cmd_run(args: argparse.Namespace) -> int:
    node = ElasticsearchNode(Path(args.home) if args.home else None, heap=args.heap, security=_security(args)).start()
    ca = f", CA file {node.ca_file}" if node.ca_file else ""
    print(f"Elasticsearch node at {node.url}{ca} (Ctrl-C stops it)", flush=True)
    try:
        node.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        node.cleanup()
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m retrievers.elasticsearch.node", description="A local Elasticsearch node built from Maven Central jars.")
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("build", help="mvn package the node (once)").set_defaults(func=lambda a: (build(force=a.force, quiet=False), 0)[1])
    sub.choices["build"].add_argument("--force", action="store_true")
    for name, func in (("start", _cmd_start), ("run", _cmd_run)):
        p = sub.add_parser(name, help={"start": "start a node in the background and print its URL", "run": "run a node until Ctrl-C"}[name])
        p.add_argument("--home", default=None, help="node folder (data, logs); default: .arag-cache/es-node/home for start, a temp folder for run")
        p.add_argument("--heap", default="512m")
        p.add_argument("--user", default=None, help="turn on Elasticsearch security with this superuser (password: $ARAG_ES_PASSWORD)")
        p.add_argument("--tls", action="store_true", help="serve HTTPS with a throwaway CA (needs --user and the openssl command)")
        p.set_defaults(func=func)
    sub.add_parser("stop", help="stop the node `start` left running").set_defaults(func=_cmd_stop)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except (NodeError, NodeSecurityError) as exc:
        print(f"retrievers.elasticsearch.node: error: {exc}", file=sys.stderr)
        return 2
