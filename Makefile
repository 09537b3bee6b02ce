# Two commands matter: `make demo` and `make test`. Each builds .venv on first use.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
UV     := $(VENV)/bin/uv
STAMP  := $(VENV)/.installed
# The folders that install as batchlake.<name>: the links batchlake/<name> -> ../<name> are the
# one list of them (pyproject.toml's package discovery and the tests read them too).
LAYERS := $(notdir $(shell find batchlake -maxdepth 1 -type l))

.PHONY: demo test lint typecheck browser bench bench-incremental bench-overhead bench-results bench-history bench-latency bench-retry report-png lock clean

# --compile-bytecode: uv (unlike pip) leaves .pyc files to the first import, and where
# PYTHONDONTWRITEBYTECODE is set (as on this machine) every process compiles Prefect, polars
# and the rest from source again: +1.2 s per flow run, +0.5 s per CLI run, measured.
# The editable install is setuptools' strict mode: a tree of links in build/ on a static path,
# which mypy, pyright and editors follow (the default mode's import hook they cannot). The
# tree lists files, so a module added or removed re-installs: the folders are prerequisites
# (a folder's time changes when a file in it is added, removed or renamed).
$(STAMP): requirements.lock pyproject.toml batchlake $(LAYERS) $(wildcard sql/*/)
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check uv==0.13.8
	$(UV) pip install --quiet --compile-bytecode --python $(PY) -r requirements.lock
	rm -rf build/__editable__.batchlake-*
	$(UV) pip install --quiet --python $(PY) --no-deps -e . --config-settings editable_mode=strict
	$(PY) -m compileall -q batchlake $(LAYERS) build
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/batchlake demo --db data/batchlake.duckdb

# The report's browser test needs Debian's chromium (no browser download: the network here
# reaches package registries only). Installed with apt-get where it can be; elsewhere the test
# is skipped and says why.
browser:
	@command -v chromium >/dev/null 2>&1 || command -v chromium-browser >/dev/null 2>&1 || \
	{ if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    (apt-get install -y -q chromium >/dev/null 2>&1 || \
	     (apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null)) && \
	    echo "installed chromium (for the report's browser test)"; \
	  else echo "chromium is not installed and apt-get (as root) is not available: the" \
	    "report's browser test will be skipped (install Debian's chromium to run it)"; fi; } || \
	echo "could not install chromium with apt-get: the report's browser test will be skipped"

# Three pytest workers (pytest-xdist) on a 2-core machine: tests wait on gateways'
# latency, locks and child processes, and a third worker fills those waits (measured: 315 s
# on 3 workers, 415 s on 2, 348 s on 4; docs/testing.md). loadgroup keeps the tests that
# share the session's Prefect server on one worker (tests/conftest.py).
test: $(STAMP) browser
	$(PY) -m ruff check .
	$(MAKE) --no-print-directory typecheck
	$(PY) -m pytest -q -n 3 --dist loadgroup </dev/null  # a closed stdin (CI) breaks kernel and pty tests

# The README's report picture (docs/report.png), from today's report in headless Chromium
report-png: $(STAMP) browser
	REPORT_SCREENSHOT=docs/report.png $(PY) -m pytest -q tests/test_report_browser.py

# batchlake/ holds every layer (links), so mypy reads the package straight from the tree.
typecheck: $(STAMP)
	$(PY) -m mypy -p batchlake

bench: $(STAMP)
	$(UV) pip install --quiet --compile-bytecode --python $(PY) -r requirements-bench.lock
	$(PY) bench/bench_sync.py --sizes 100000 --runs 3

bench-incremental: $(STAMP)
	$(PY) bench/bench_incremental.py --size 100000

bench-overhead: $(STAMP)
	$(PY) bench/bench_overhead.py --size 100000 --repeat 3

# ijson, the parser measured as a peer, comes with the bench extras (make bench installs them)
bench-results: $(STAMP)
	$(PY) bench/bench_results.py --requests 200000

bench-history: $(STAMP)
	$(PY) bench/bench_history.py --batches 100000 --route missing
	$(PY) bench/bench_history.py --batches 100000 --route ok

# A gateway as slow as a real one (list 300 ms, retrieve 200 ms, results 600 ms), with and
# without a cap of 12 results requests in flight: the listing's floor, the drain's rate
bench-latency: $(STAMP)
	$(PY) bench/bench_latency.py --batches 4000

# batchlake retry on a ~200 MB, 50,000-request input file: peak RSS against the 300 MB target
bench-retry: $(STAMP)
	$(PY) bench/bench_retry.py --requests 50000 --padding 2600

# Re-lock after changing pins in pyproject.toml.
lock: $(STAMP)
	$(UV) pip compile pyproject.toml --extra dev -o requirements.lock --python-version 3.11 -q
	$(UV) pip compile pyproject.toml --extra dev --extra bench -o requirements-bench.lock --python-version 3.11 -q

clean:
	rm -rf $(VENV) build data/*.duckdb data/*.wal
