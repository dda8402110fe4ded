# proofrecon — the two commands are `make demo` and `make test`.
SHELL := bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STACK := stack/stack.sh
APT_PACKAGES := kcat docker-compose chromium

.PHONY: help venv sysdeps stack-up stack-down stack-status stack-clean topics test test-fast lint \
        fmt demo bench schemas constraints clean

help:
	@echo "make demo          start the stack and run the end-to-end demo"
	@echo "make test          install, start the stack, run the whole suite"
	@echo "make stack-up      start Kafka (127.0.0.1:9092) and the Nutshell mint (127.0.0.1:3338)"
	@echo "make stack-down    stop them;  make stack-status  show them"
	@echo "make lint          ruff + mypy;  make bench  the benchmarks"

venv: $(BIN)/.installed

$(BIN)/.installed: pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@touch $@

# Debian packages the tests use as neutral peers: kcat (a second Kafka client), docker-compose
# (parses docker-compose.yml without an engine), chromium (renders the analytics report).
sysdeps:
	@missing=""; for p in kcat docker-compose chromium; do command -v $$p >/dev/null || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $(APT_PACKAGES) >/dev/null; \
	fi

stack-up: venv
	@bash $(STACK) up

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

test-fast: venv
	$(BIN)/pytest -m "not stack and not slow"

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

fmt: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

demo: venv stack-up
	$(BIN)/proofrecon demo

bench: venv stack-up
	$(BIN)/python -m bench

schemas: venv
	$(BIN)/proofrecon schemas export schemas

constraints: venv
	$(BIN)/pip freeze --exclude-editable | { echo "# Versions of every package the project installs, direct and transitive (pip constraints)."; echo "# Regenerate after changing pyproject.toml: make constraints"; cat; } > constraints.txt

clean:
	rm -rf $(VENV) .data .pytest_cache .mypy_cache .ruff_cache
