# The README's two commands: `make demo` and `make test`. Both set themselves up.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install test lint format demo bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

# One test process per core (at most 8: each holds torch and a model or two in memory).
test: lint
	$(BIN)/python -m pytest -q -n auto --maxprocesses 8 --durations=15

demo: $(STAMP)
	$(BIN)/multibyte quickstart

# The compression case measures the demo's checkpoints: train them first when they are missing.
bench: $(STAMP) runs/quickstart/report.md
	$(BIN)/python -m benchmarks run all

runs/quickstart/report.md: | $(STAMP)
	$(BIN)/multibyte quickstart

clean:
	rm -rf $(VENV) runs build *.egg-info
