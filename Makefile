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
# `make test` runs the suite against both mint implementations (tests/mints/): Nutshell and CDK's
# cdk-mintd, which stack.sh builds once per machine (about ten minutes) into the user's cache.
TEST_MINTS := nutshell,cdk
# cdk-mintd needs Rust >= 1.85 (Debian 12 ships 1.63): `make rust` installs it with rustup if not.
RUST_MIN := 1.85.0
CARGO_BIN := $(or $(CARGO_HOME),$(HOME)/.cargo)/bin
CDK_VERSION := $(shell sed -n 's/^CDK_VERSION=//p' $(STACK))
CDK_BIN := $(or $(PROOFRECON_CACHE_DIR),$(or $(XDG_CACHE_HOME),$(HOME)/.cache)/proofrecon)/cdk/bin/cdk-mintd
# Debian packages as command:package.
APT_PACKAGES := kcat:kcat docker-compose:docker-compose chromium:chromium protoc:protobuf-compiler \
                shellcheck:shellcheck cc:build-essential curl:curl

.PHONY: help venv sysdeps rust stack-up stack-down stack-status stack-clean topics test test-fast lint \
        test-hostile test-node test-reliability \
        fmt demo bench bench-quick schemas constraints clean

help:
	@echo "make demo          start the stack and run the end-to-end demo"
	@echo "make test          install, start the stack (with a CDK mint), run the whole suite"
	@echo "make stack-up      start Kafka (127.0.0.1:9092) and the Nutshell mint (127.0.0.1:3338)"
	@echo "make stack-up KAFKA_NODES=3 MINTS=nutshell,cdk"
	@echo "                   also a 3-node Kafka cluster (127.0.0.1:19092-19094) and a CDK mint (:3339)"
	@echo "make stack-down    stop everything;  make stack-status  show it"
	@echo "make test-reliability  the full fault campaign on the 3-node cluster (<= 30 min)"
	@echo "make lint          ruff + mypy;  make bench  the benchmarks (make bench-quick: smaller)"

venv: $(BIN)/.installed

$(BIN)/.installed: pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is needed")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev]'
	@touch $@

# Debian packages the tests use as neutral peers: kcat (a second Kafka client), docker-compose
# (parses docker-compose.yml without an engine), chromium (renders the analytics report);
# shellcheck (checks stack/stack.sh); protoc (protobuf-compiler) and a C toolchain
# (build-essential) build cdk-mintd for MINTS=cdk; curl fetches rustup when Rust is missing.
sysdeps:
	@missing=""; for cp in $(APT_PACKAGES); do command -v $${cp%%:*} >/dev/null || missing="$$missing $${cp#*:}"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  if [ "$$(id -u)" = 0 ]; then SUDO=""; else SUDO="sudo"; fi; \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing >/dev/null; \
	fi

# Rust for building cdk-mintd, when MINTS has cdk and the pinned binary is not built yet:
# rustc >= RUST_MIN on the PATH or in ~/.cargo/bin, else rustup installs a minimal stable
# toolchain for this user (~/.cargo, ~/.rustup; nothing outside the home directory).
rust:
	@case ",$(MINTS)," in *,cdk,*) ;; *) exit 0 ;; esac; \
	if "$(CDK_BIN)" --version 2>/dev/null | grep -q " $(CDK_VERSION)$$"; then exit 0; fi; \
	export PATH="$(CARGO_BIN):$$PATH"; \
	have=$$(rustc --version 2>/dev/null | cut -d' ' -f2); \
	if command -v cargo >/dev/null && [ -n "$$have" ] && \
	   [ "$$(printf '%s\n' "$(RUST_MIN)" "$$have" | sort -V | head -n 1)" = "$(RUST_MIN)" ]; then exit 0; fi; \
	echo "installing Rust with rustup: cdk-mintd $(CDK_VERSION) needs >= $(RUST_MIN) (found: $${have:-none})"; \
	curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs \
	  | sh -s -- -y -q --profile minimal --default-toolchain stable --no-modify-path

stack-up: venv rust
	@PATH="$(CARGO_BIN):$$PATH" PROOFRECON_STACK_KAFKA_NODES=$(KAFKA_NODES) \
	  PROOFRECON_STACK_MINTS=$(MINTS) bash $(STACK) up

stack-down:
	@bash $(STACK) down

stack-status:
	@bash $(STACK) status

stack-clean:
	@bash $(STACK) clean

topics: stack-up
	$(BIN)/proofrecon topics create

test: MINTS = $(TEST_MINTS)
test: export PROOFRECON_TEST_CDK_MINT ?= http://127.0.0.1:$(CDK_PORT)
test: venv sysdeps rust stack-up
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

# The fault campaign at full size (tests/reliability, at most 30 minutes; `make test` runs a reduced
# one): 3 workers on the 3-node cluster, kill -9, a zombie, a Kafka node lost, a rolling restart,
# the sink and the mint down. Its table lands in tests/artifacts/reliability-full-*.json.
test-reliability: KAFKA_NODES = 3
test-reliability: venv stack-up
	PROOFRECON_RELIABILITY_SCALE=full $(BIN)/pytest -p no:cacheprovider -s tests/reliability

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

# Every benchmark at a smaller size (a few minutes): that they run, and the rough figures.
bench-quick: venv stack-up
	$(BIN)/python -m bench --quick

schemas: venv
	$(BIN)/proofrecon schemas export schemas

constraints: venv
	$(BIN)/pip freeze --exclude-editable | { echo "# Versions of every package the project installs, direct and transitive (pip constraints)."; echo "# Regenerate after changing pyproject.toml: make constraints"; cat; } > constraints.txt

clean:
	rm -rf $(VENV) .data .pytest_cache .mypy_cache .ruff_cache
