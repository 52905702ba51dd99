# The two commands of the README: `make demo` and `make test`. Everything they need is installed here.
PYTHON ?= python3.11
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed

.PHONY: venv demo test test-slow test-all lint bench-deps clean

venv: $(STAMP)

$(STAMP): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip>=24" -c constraints.txt
	$(PY) -m pip install --quiet -c constraints.txt -e ".[dev]"
	touch $(STAMP)

demo: venv
	$(PY) -m pipelines.showcase.demo

test: venv
	$(PY) -m pytest -q

# The slow tests only (about a minute): CI runs them after `make test`.
test-slow: venv
	$(PY) -m pytest -q -m slow

test-all: venv
	$(PY) -m pytest -q -m ""

lint: venv
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

# The loader benchmark's peers (LitData, MosaicML Streaming, WebDataset); see the file for why --no-deps.
bench-deps: venv
	$(PY) -m pip install --quiet --no-deps -c constraints.txt -r benchmarks/requirements-peers.txt

clean:
	rm -rf $(VENV) lake-data demo-output .pytest_cache .mypy_cache .ruff_cache
