# Two set-up commands: `make demo` and `make test`. Both create .venv/ with python3 first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# pins of every package the test extras install (a new release changes CI only when this file changes)
CONSTRAINTS := constraints.txt

.PHONY: demo test lint notebooks install install-test constraints clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml $(CONSTRAINTS) | $(BIN)/python
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml $(CONSTRAINTS) | $(BIN)/python
	$(BIN)/python -m pip install --quiet -c $(CONSTRAINTS) -e '.[test]'
	touch $@ $(VENV)/.installed

# the one command that renews the pins: the test extras at their newest releases into a fresh
# .venv-constraints/, frozen into constraints.txt (review the diff, then commit it)
constraints:
	rm -rf .venv-constraints
	$(PYTHON) -m venv .venv-constraints
	.venv-constraints/bin/python -m pip install --quiet --upgrade pip
	.venv-constraints/bin/python -m pip install --quiet -e '.[test]'
	{ sed -n '1,2p' $(CONSTRAINTS); .venv-constraints/bin/python -m pip freeze --exclude-editable; } > $(CONSTRAINTS).new
	mv $(CONSTRAINTS).new $(CONSTRAINTS)
	rm -rf .venv-constraints

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
	rm -rf $(VENV) .venv-constraints archivestore-demo.zarr
