# Two set-up commands: `make demo` and `make test`. Both create .venv/ with python3 first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint notebooks install install-test clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed
install-test: $(VENV)/.installed-test

demo: install
	$(BIN)/archivestore demo

lint: install-test
	$(BIN)/ruff check archivestore tests benchmarks
	$(BIN)/mypy
	$(BIN)/lint-imports

# the gates, then the suite and every notebook top to bottom in one pytest run
test: lint
	$(BIN)/python -m pytest -q --nbmake --nbmake-timeout=300 tests notebooks

# every notebook top to bottom, offline, failing on any error (outputs are not written back)
notebooks: install-test
	$(BIN)/python -m pytest -q -p no:cacheprovider --nbmake --nbmake-timeout=300 notebooks/

clean:
	rm -rf $(VENV) archivestore-demo.zarr
