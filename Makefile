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

# every table of benchmarks/README.md, one script after another, at modest sizes (an hour or more on 2 CPUs;
# the sizes the README quotes are each script's defaults or the flags written there). Each line prints the
# 1-minute load average before it runs, and the scripts print it beside their figures. The peers
# (isic-cli, tcia_utils, idc-index's s5cmd, isicarchive) install into benchmarks/.venv-*/ on first use.
.PHONY: bench bench-peers
BENCH = @$(BIN)/python -c 'import os, sys; print("== load average %.1f %.1f %.1f:" % os.getloadavg(), *sys.argv[1:], flush=True)'

bench-peers: install-test
	$(BENCH) bench_peers; $(BIN)/python benchmarks/bench_peers.py

bench: install-test bench-peers
	$(BENCH) bench_superpixel_read; $(BIN)/python benchmarks/bench_superpixel_read.py --quick
	$(BENCH) bench_superpixel_read --floor; $(BIN)/python benchmarks/bench_superpixel_read.py --floor
	$(BENCH) bench_ingest; $(BIN)/python benchmarks/bench_ingest.py --quick
	$(BENCH) bench_codecs; $(BIN)/python benchmarks/bench_codecs.py --quick
	$(BENCH) bench_open; $(BIN)/python benchmarks/bench_open.py --quick
	$(BENCH) bench_overlap; $(BIN)/python benchmarks/bench_overlap.py --cli --images 256 --raters 6 --repeat 3
	$(BENCH) bench_superpixel_map; $(BIN)/python benchmarks/bench_superpixel_map.py --rounds 2
	$(BENCH) bench_segmentation_overlap; $(BIN)/python benchmarks/bench_segmentation_overlap.py --series 20
	$(BENCH) bench_dicom_ingest; $(BIN)/python benchmarks/bench_dicom_ingest.py --series 4 --slices 60 --repeat 3
	$(BENCH) bench_volume_read; $(BIN)/python benchmarks/bench_volume_read.py --slices 120 --repeat 3
	$(BENCH) bench_ome; $(BIN)/python benchmarks/bench_ome.py --n 10 --slices 120 --z 20 --repeat 2
	$(BENCH) bench_requests; $(BIN)/python benchmarks/bench_requests.py
	$(BENCH) bench_cluster; $(BIN)/python benchmarks/bench_cluster.py --quick
	$(BENCH) bench_scale; $(BIN)/python benchmarks/bench_scale.py --quick
	$(BENCH) bench_scale_sim; $(BIN)/python benchmarks/bench_scale_sim.py cluster --items 1000
	$(BENCH) bench_startup; $(BIN)/python benchmarks/bench_startup.py --repeat 5
