# The two commands a newcomer needs: `make up` and `make test`. Each creates .venv and
# installs the project when needed (a stamp file makes a second run instant), then runs.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: up down status test test-slow soak fuzz lint typecheck bench venv clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required (set PYTHON=...)")'
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@echo "installing the project into $(VENV) (first run takes a few minutes)..."
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	@$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

up: $(STAMP)
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

test: lint typecheck
	$(BIN)/pytest $(PYTEST_ARGS)

test-slow: $(STAMP)
	$(BIN)/pytest -m slow $(PYTEST_ARGS)

# The chaos test at soak size: 1,000 kills of market actors and ledger shards among 500
# batches per market, checked at 10 checkpoints, failing past 30 minutes (docs/operations.md).
SOAK_ENV ?= CLOB_CHAOS_KILLS=1000 CLOB_CHAOS_BATCHES=500 CLOB_CHAOS_CHECKPOINTS=10 \
	CLOB_CHAOS_TIMEOUT_S=1800
soak: $(STAMP)
	$(SOAK_ENV) $(BIN)/pytest tests/integration/test_chaos.py -q $(PYTEST_ARGS)

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
bench: $(STAMP)
	$(BIN)/python bench/engine_bench.py
	$(BIN)/python bench/engine_bench.py --gc actor --resting 1000
	$(BIN)/python bench/hop_bench.py
	$(BIN)/python bench/market_bench.py $(BENCH_ARGS)
	$(BIN)/python bench/rest_bench.py
	$(BIN)/python bench/ws_bench.py --points 500@10 --duration 10 --single 30

clean:
	rm -rf $(VENV) .clob .mypy_cache .pytest_cache .ruff_cache
