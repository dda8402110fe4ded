# proofrecon — the two commands are `make demo` and `make test`.
SHELL := bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STACK := stack/stack.sh
# `make stack-up KAFKA_NODES=3` adds a three-node Kafka cluster (127.0.0.1:19092-19094) beside the
# one-node broker; `MINTS=nutshell,cdk` adds CDK's cdk-mintd (127.0.0.1:3339) beside Nutshell.
KAFKA_NODES ?= $(or $(PROOFRECON_STACK_KAFKA_NODES),1)
MINTS ?= $(or $(PROOFRECON_STACK_MINTS),nutshell)
CDK_PORT := $(or $(PROOFRECON_STACK_CDK_PORT),3339)
# The CDK mint's URL for tests/test_stack_cdk.py when this run starts it (it also finds a running one).
ifneq ($(findstring cdk,$(MINTS)),)
export PROOFRECON_TEST_CDK_MINT ?= http://127.0.0.1:$(CDK_PORT)
endif
# Debian packages as command:package.
APT_PACKAGES := kcat:kcat docker-compose:docker-compose chromium:chromium protoc:protobuf-compiler \
                shellcheck:shellcheck

.PHONY: help venv sysdeps stack-up stack-down stack-status stack-clean topics test test-fast lint \
        test-hostile test-node \
        fmt demo bench schemas constraints clean

help:
	@echo "make demo          start the stack and run the end-to-end demo"
	@echo "make test          install, start the stack, run the whole suite"
	@echo "make stack-up      start Kafka (127.0.0.1:9092) and the Nutshell mint (127.0.0.1:3338)"
	@echo "make stack-up KAFKA_NODES=3 MINTS=nutshell,cdk"
	@echo "                   also a 3-node Kafka cluster (127.0.0.1:19092-19094) and a CDK mint (:3339)"
	@echo "make stack-down    stop everything;  make stack-status  show it"
	@echo "make lint          ruff + mypy;  make bench  the benchmarks"

venv: $(BIN)/.installed

$(BIN)/.installed: pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@touch $@

# Debian packages the tests use as neutral peers: kcat (a second Kafka client), docker-compose
# (parses docker-compose.yml without an engine), chromium (renders the analytics report);
# shellcheck (checks stack/stack.sh); protoc (protobuf-compiler, builds cdk-mintd for MINTS=cdk).
sysdeps:
	@missing=""; for cp in $(APT_PACKAGES); do command -v $${cp%%:*} >/dev/null || missing="$$missing $${cp#*:}"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

stack-up: venv
	@PROOFRECON_STACK_KAFKA_NODES=$(KAFKA_NODES) PROOFRECON_STACK_MINTS=$(MINTS) bash $(STACK) up

stack-down:
	@bash $(STACK) down

stack-status:
	@bash $(STACK) status

stack-clean:
	@bash $(STACK) clean

topics: stack-up
	$(BIN)/proofrecon topics create

test: venv sysdeps stack-up
	$(BIN)/pytest -p no:cacheprovider
	$(MAKE) test-node

# The Node.js client (clients/typescript): install from its lockfile, build, check its copy of
# schemas/ and the types generated from them, run its tests (they start their own worker).
test-node: venv stack-up
	cd clients/typescript && npm ci --no-audit --no-fund && npm run build && npm run check:types && npm test

# The hostile-input campaign alone, five times larger than in `make test` (10,000 messages).
test-hostile: venv stack-up
	PROOFRECON_HOSTILE_MESSAGES=$${PROOFRECON_HOSTILE_MESSAGES:-10000} \
	  $(BIN)/pytest -p no:cacheprovider -s tests/test_hostile_campaign.py

test-fast: venv
	$(BIN)/pytest -m "not stack and not slow"

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports

fmt: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

demo: venv stack-up
	$(BIN)/python -m devkit.demo

bench: venv stack-up
	$(BIN)/python -m bench

schemas: venv
	$(BIN)/proofrecon schemas export schemas

constraints: venv
	$(BIN)/pip freeze --exclude-editable | { echo "# Versions of every package the project installs, direct and transitive (pip constraints)."; echo "# Regenerate after changing pyproject.toml: make constraints"; cat; } > constraints.txt

clean:
	rm -rf $(VENV) .data .pytest_cache .mypy_cache .ruff_cache
