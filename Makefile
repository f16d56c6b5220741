# The two commands a newcomer needs: `make up` and `make test`. Each creates .venv and
# installs the project when needed (a stamp file makes a second run instant), then runs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: up down status test test-slow soak fuzz lint typecheck bench venv clean \
	program program-test program-lint clean-tools

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required (set PYTHON=...)")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing the project into $(VENV) (first run takes a few minutes)..."
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

up: $(STAMP) program
	$(BIN)/clob up

down: $(STAMP)
	$(BIN)/clob down

status: $(STAMP)
	$(BIN)/clob status

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP)
	$(BIN)/mypy

test: lint typecheck program program-lint program-test
	$(BIN)/pytest $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(BIN)/pytest -m slow $(PYTEST_ARGS)

# The chaos tests at soak size: 1,000 kills of market actors and ledger shards among 500
# batches per market, checked at 10 checkpoints, failing past 30 minutes (docs/operations.md);
# then settlement under chain faults and kills, 400 steps (docs/settlement.md).
SOAK_ENV ?= CLOB_CHAOS_KILLS=1000 CLOB_CHAOS_BATCHES=500 CLOB_CHAOS_CHECKPOINTS=10 \
	CLOB_CHAOS_TIMEOUT_S=1800
SETTLEMENT_SOAK_ENV ?= CLOB_SETTLEMENT_CHAOS_STEPS=400 CLOB_SETTLEMENT_CHAOS_TIMEOUT_S=600
soak: $(STAMP)
	$(SOAK_ENV) $(BIN)/pytest tests/integration/test_chaos.py -q $(PYTEST_ARGS)
	$(SETTLEMENT_SOAK_ENV) $(BIN)/pytest tests/integration/test_settlement_chaos.py -q -s \
		$(PYTEST_ARGS)

# The fuzz stage of `make test` (tests/e2e/test_fuzz.py) on a larger budget: FUZZ_TIME
# seconds of schemathesis, FUZZ_EXAMPLES cases per operation and phase, seed FUZZ_SEED.
FUZZ_TIME ?= 1800
FUZZ_EXAMPLES ?= 500
FUZZ_SEED ?= $(shell date +%s)
fuzz: $(STAMP)
	CLOB_FUZZ_MAX_TIME=$(FUZZ_TIME) CLOB_FUZZ_MAX_EXAMPLES=$(FUZZ_EXAMPLES) \
	CLOB_FUZZ_SEED=$(FUZZ_SEED) $(BIN)/pytest tests/e2e/test_fuzz.py -s $(PYTEST_ARGS)

# Benchmarks print figures and assert nothing. BENCH_ARGS reach the market bench, e.g.
# `make bench BENCH_ARGS="--events 1000000"` for the full recovery measurement.
BENCH_ARGS ?= --batches 30 --events 200000
bench: $(STAMP) program
	$(BIN)/python bench/program_cu.py
	$(BIN)/python bench/settlement_bench.py
	$(BIN)/python bench/engine_bench.py
	$(BIN)/python bench/engine_bench.py --gc actor --resting 1000
	$(BIN)/python bench/hop_bench.py
	$(BIN)/python bench/market_bench.py $(BENCH_ARGS)
	$(BIN)/python bench/rest_bench.py
	$(BIN)/python bench/ws_bench.py --points 500@10 --duration 10 --single 30

clean:
	rm -rf $(VENV) .clob .mypy_cache .pytest_cache .ruff_cache

# The exchange program (programs/exchange, programs/README.md). `cargo build-sbf` needs
# platform tools these machines cannot download, so the build uses a pinned nightly's
# LLVM BPF back end and sbpf-linker (../shared/SOLANA_PROGRAMS.md). Both are installed
# into .tools/ (ignored) by the machine's rustup and crates.io on first use; stamp files
# make a second run instant. `clean-tools` removes them.
TOOLS := $(CURDIR)/.tools
RUST_NIGHTLY := nightly-2026-10-30
SBPF_LINKER_VERSION := 0.2.6
RUSTUP ?= $(shell command -v rustup || echo $(HOME)/.cargo/bin/rustup)
TOOLCHAIN_STAMP := $(TOOLS)/.toolchain-$(RUST_NIGHTLY)
LINKER_STAMP := $(TOOLS)/.sbpf-linker-$(SBPF_LINKER_VERSION)
RUST_ENV := RUSTUP_HOME=$(TOOLS)/rustup CARGO_HOME=$(TOOLS)/cargo \
	PATH="$(TOOLS)/sbpf-linker/bin:$$PATH"
CARGO := $(RUST_ENV) $(RUSTUP) run $(RUST_NIGHTLY) cargo
PROGRAM_DIR := programs/exchange
PROGRAM_SO := $(PROGRAM_DIR)/target/deploy/exchange.so
PROGRAM_SRC := $(shell find $(PROGRAM_DIR)/src -name '*.rs') $(PROGRAM_DIR)/Cargo.toml \
	$(PROGRAM_DIR)/Cargo.lock $(PROGRAM_DIR)/.cargo/config.toml

$(TOOLCHAIN_STAMP):
	@test -x "$(RUSTUP)" || { echo "rustup is required to build the program"; exit 1; }
	@mkdir -p $(TOOLS)
	$(RUST_ENV) $(RUSTUP) toolchain install $(RUST_NIGHTLY) --profile minimal \
		--component rust-src,rustfmt,clippy --no-self-update
	@touch $@

$(LINKER_STAMP): $(TOOLCHAIN_STAMP)
	$(CARGO) install sbpf-linker@$(SBPF_LINKER_VERSION) --locked --root $(TOOLS)/sbpf-linker
	@touch $@

$(PROGRAM_SO): $(TOOLCHAIN_STAMP) $(LINKER_STAMP) $(PROGRAM_SRC)
	cd $(PROGRAM_DIR) && $(CARGO) build --release --locked --target bpfel-unknown-none \
		-Zbuild-std=core,alloc
	@mkdir -p $(dir $@)
	cp $(PROGRAM_DIR)/target/bpfel-unknown-none/release/libexchange.so $@

program: $(PROGRAM_SO)

# The program's pure logic (replay window, leaky bucket, netting, arithmetic), native.
program-test: $(TOOLCHAIN_STAMP)
	cd $(PROGRAM_DIR) && $(CARGO) test --locked --quiet

program-lint: $(TOOLCHAIN_STAMP)
	cd $(PROGRAM_DIR) && $(CARGO) fmt --check
	cd $(PROGRAM_DIR) && $(CARGO) clippy --locked --all-targets -- -D warnings

clean-tools:
	rm -rf $(TOOLS) $(PROGRAM_DIR)/target
