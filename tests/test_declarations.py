"""Settings declared once: the declarations agree with the code they describe, and everything that
lists settings (`arag triggers`, `arag retrievers`, the docs' tables) is read from them. No model."""
from __future__ import annotations

import inspect
import json
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import arag_here
from corpora.settings import Setting, SettingError
from triggers.registry import BUILTINS, get_spec

ROOT = Path(__file__).resolve().parents[1]


def test_every_built_in_declares_settings_its_build_accepts():
    """A declared setting the build function does not take would fail only when someone sets it."""
    for name in BUILTINS:
        spec = get_spec(name)
        params = inspect.signature(spec.build).parameters
        takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
        assert takes_any or {s.name for s in spec.settings} <= set(params), name


def test_retriever_defaults_are_the_modules_own():
    from retrievers.bm25 import DEFAULT_B, DEFAULT_K1
    from retrievers.elasticsearch.retriever import DEFAULT_TITLE_BOOST, MODES
    from retrievers.embeddings import DEFAULT_EMBEDDING_MODEL
    from retrievers.hybrid import DEFAULT_POOL, DEFAULT_RRF_K
    from retrievers.kinds import RETRIEVER_KINDS
    from retrievers.specs import BUILTIN_SPECS

    assert tuple(BUILTIN_SPECS) == RETRIEVER_KINDS
    hybrid = {s.name: s.default for s in BUILTIN_SPECS["hybrid"].settings}
    assert hybrid == {"k1": DEFAULT_K1, "b": DEFAULT_B, "embedding_model": DEFAULT_EMBEDDING_MODEL,
                      "rrf_k": DEFAULT_RRF_K, "pool": DEFAULT_POOL}
    es = {s.name: s for s in BUILTIN_SPECS["elasticsearch"].settings}
    assert es["mode"].choices == MODES and es["title_boost"].default == DEFAULT_TITLE_BOOST


def test_a_setting_checks_type_range_and_choices():
    s = Setting("samples", int, 10, "samples", range=(2, None))
    assert s.parse("3") == 3 and s.problem(True) == "must be an integer, got True"
    with pytest.raises(SettingError, match="samples must be at least 2, got 1"):
        s.check(1)
    with pytest.raises(SettingError, match="threshold must be a finite number, got nan"):
        Setting("threshold", float, None, "").parse("nan")
    assert Setting("on", bool, None, "").parse("True") is True


@pytest.mark.parametrize("command, needles", [
    (["triggers"], ["margin", "retriever call", "index look-up", "extra call", "samples"]),
    (["triggers", "show", "quco"], ["pairing", "one of all, any, rarest", "the quco extra"]),
    (["retrievers"], ["bm25", "faiss", "hybrid", "elasticsearch"]),
    (["retrievers", "show", "bm25"], ["k1", "between 0.0 and 1.0"]),
])
def test_listings(command, needles):
    done = arag_here(*command)
    assert done.returncode == 0, done.stderr
    for needle in needles:
        assert needle in done.stdout, needle


def test_the_docs_tables_are_generated_from_the_declarations():
    sys.path.insert(0, str(ROOT))
    try:
        import mkdocs_hooks
    finally:
        sys.path.remove(str(ROOT))
    page = mkdocs_hooks.on_page_markdown("a\n<!-- settings: triggers -->\nb\n<!-- settings: trigger margin -->\n")
    for name in BUILTINS:
        assert f"| `{name}` | {get_spec(name).cost} |" in page
    assert "| `threshold` | float | 0.0057 |" in page and "<!--" not in page
    for doc in ("configuration.md", "retrievers.md"):
        assert "<!-- settings: " in (ROOT / "docs" / doc).read_text(encoding="utf-8")


def test_building_a_cheap_trigger_imports_only_its_own_module():
    """The registry is names → modules: `never` or `msp+never` must not import the samplers, spaCy or scipy."""
    code = ("import json, sys\nfrom triggers.registry import build_trigger\nbuild_trigger('msp+never')\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.startswith(('triggers.', 'spacy', 'scipy', 'faiss')))))")
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    loaded = json.loads(done.stdout)
    assert not any(m.startswith(("spacy", "scipy", "faiss")) for m in loaded), loaded
    assert not {"triggers.semantic_entropy", "triggers.quco", "triggers.consistency"} & set(loaded), loaded
