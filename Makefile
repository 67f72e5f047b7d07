# Every target sets up .venv itself, so a fresh clone needs only Python 3.11 and make.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
export DAGSTER_HOME ?= $(CURDIR)/.dagster_home

.PHONY: demo test ui bench lint clean

$(INSTALLED): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

$(DAGSTER_HOME)/dagster.yaml: dagster.yaml
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $@

## demo: backfill the latest 60 sessions of offline sample data into DuckDB, then summarise
demo: $(INSTALLED) $(DAGSTER_HOME)/dagster.yaml
	ASX_MARKET_DATA=sample $(BIN)/asx-pipeline demo

## test: lint, load the definitions (dg check defs), then the whole suite on two workers (no network; Postgres found or started by the tests)
test: $(INSTALLED)
	$(BIN)/ruff check asx_pipeline asx_pipeline_tests bench
	VIRTUAL_ENV=$(CURDIR)/$(VENV) $(BIN)/dg check defs
	$(BIN)/pytest -n 2 --dist loadscope

## ui: the Dagster web UI and daemon on http://127.0.0.1:3000
ui: $(INSTALLED) $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/asx-pipeline init
	$(BIN)/dagster dev -h 127.0.0.1 -p 3000 -w workspace.yaml

## bench: benchmarks that print figures (write.py needs a Postgres server; see its --help)
bench: $(INSTALLED)
	$(BIN)/python bench/refresh.py
	$(BIN)/python bench/backfill.py
	$(BIN)/python bench/analytics.py
	$(BIN)/python bench/write.py
	$(BIN)/python bench/yahoo.py
	$(BIN)/python bench/universe.py

lint: $(INSTALLED)
	$(BIN)/ruff check asx_pipeline asx_pipeline_tests bench

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .hypothesis
