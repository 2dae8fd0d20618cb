# kubensage — see README.md. Every target works from a clean checkout.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
VERSION ?= $(shell sed -n 's/^VERSION = "\(.*\)"/\1/p' kubensage_common/_version.py)
UNAME_M := $(shell uname -m)
ARCH ?= $(if $(filter x86_64,$(UNAME_M)),amd64,$(if $(filter aarch64 arm64,$(UNAME_M)),arm64,$(UNAME_M)))
RELAY_GRPC ?= 127.0.0.1:9190
RELAY_METRICS ?= 127.0.0.1:9191
RUN_DIR := .run

.PHONY: all venv run demo monitoring test test-unit lint fmt proto proto-check golden docs build build-linux-amd64 build-linux-arm64 build-all bench clean

all: lint test

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' || \
	  { echo "kubensage needs Python >= 3.11 (found $$($(PYTHON) -V))"; exit 1; }
	@$(PYTHON) -m venv --help >/dev/null 2>&1 || \
	  { echo "python venv module missing: apt-get install -y python3-venv"; exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	$(BIN)/python -m compileall -q -j 0 kubensage_agent kubensage_common kubensage_api relay advisor
	@touch $(STAMP)

venv: $(STAMP)

run: $(STAMP)
	@scripts/run-local.sh "$(BIN)" "$(RELAY_GRPC)" "$(RELAY_METRICS)" "$(RUN_DIR)"

demo: $(STAMP)
	@scripts/demo.sh "$(BIN)"

monitoring: $(STAMP)
	$(BIN)/python -m kubensage_mixin.render $(if $(RUNBOOK_URL),--runbook-url '$(RUNBOOK_URL)') \
	  $(if $(RELAY_SELECTOR),--relay-selector '$(RELAY_SELECTOR)')

test: $(STAMP)
	$(BIN)/pytest -q

test-unit: $(STAMP)
	$(BIN)/pytest -q -m "not integration"

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check kubensage_agent kubensage_common kubensage_mixin kubensage_lab relay advisor tests scripts
	$(BIN)/mypy

fmt: $(STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format kubensage_agent kubensage_common kubensage_mixin kubensage_lab relay advisor tests scripts

build: build-linux-$(ARCH)

build-linux-amd64 build-linux-arm64: build-linux-%: $(STAMP)
	scripts/build.sh $(BIN)/python $(VERSION) $*

build-all: build-linux-amd64 build-linux-arm64

bench: $(STAMP)
	scripts/system-deps.sh
	$(BIN)/python -m bench

proto: $(STAMP)
	$(BIN)/python scripts/gen_proto.py

golden: $(STAMP)
	$(BIN)/python -m tests.support.golden --write

docs: $(STAMP)
	$(BIN)/python scripts/gen_docs.py

proto-check: $(STAMP)
	$(BIN)/pytest -q tests/test_proto_generated.py

clean:
	rm -rf $(VENV) build dist $(RUN_DIR) .pytest_cache .mypy_cache .ruff_cache .hypothesis *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
