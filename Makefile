# kartapos — two commands on a fresh machine: `make demo` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed-stamp
SYSSTAMP := $(VENV)/.sysdeps-stamp
PYTEST_ARGS ?=

.PHONY: demo test lint typecheck pytest setup sysdeps bench chaos clean deb

demo: setup
	$(BIN)/kartapos demo

test: setup lint typecheck pytest

setup: $(SYSSTAMP) $(STAMP)

sysdeps $(SYSSTAMP): .ci/sysdeps.sh
	bash .ci/sysdeps.sh
	@mkdir -p $(VENV) && touch $(SYSSTAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $(STAMP)

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: setup
	$(BIN)/mypy

pytest: setup
	$(BIN)/python -m pytest $(PYTEST_ARGS)

bench: setup
	$(BIN)/python -m benchmarks

# One seeded fault-injection run of the whole till: make chaos SEED=42 SALES=1000
# TILLS=3: three tills of one partner against one city, with partitions (SALES per till)
SEED ?= 1
SALES ?= 200
TILLS ?= 1
chaos: setup
	CHAOS_SEEDS=$(SEED) CHAOS_SALES=$(SALES) CHAOS_TILLS=$(TILLS) $(BIN)/python -m pytest -s -q \
		tests/chaos/test_chaos.py -k "$(if $(filter 1,$(TILLS)),chaos_run,chaos_tills)" \
		-p no:cacheprovider

# dist/kartapos_<version>_<arch>.deb (KARTAPOS_DEB_COMPRESSION=xz|gzip|zstd|none)
deb: setup
	$(BIN)/python packaging/deb/build.py --out dist

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
