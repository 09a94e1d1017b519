# perfkit: two commands.  `make demo`  and  `make test`.
#
# `make demo` installs only what the demo needs (perfkit + its report extra: altair,
# vl-convert, papermill, nbconvert, ipykernel) into $(VENV); `make test` adds the rest
# (PostgreSQL driver, JupyterLab, DuckDB/Arrow, Spark, test tools). Separate stamps, so the
# demo never waits for Spark and the test set-up never repeats the demo's.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
PIP     = $(PY) -m pip install --quiet --disable-pip-version-check
# pytest-xdist workers (`make test JOBS=1` runs serially)
JOBS   ?= auto
DEMO_STAMP = $(VENV)/.installed-demo
STAMP      = $(VENV)/.installed

.PHONY: demo test test-fast lint format bench install install-demo clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PIP) --upgrade pip

$(DEMO_STAMP): pyproject.toml | $(PY)
	$(PIP) -e ".[report]"
	touch $(DEMO_STAMP)

$(STAMP): pyproject.toml | $(PY)
	$(PIP) -e ".[postgres,report,notebook,engines,spark,dev]"
	touch $(DEMO_STAMP) $(STAMP)

install-demo: $(DEMO_STAMP)

install: $(STAMP)

demo: $(DEMO_STAMP)
	$(VENV)/bin/perfkit demo

# independent test files run in parallel (one file per worker: --dist loadfile), the longest
# files first (tests/conftest.py SLOW_FILES_FIRST; --no-loadscope-reorder keeps that order instead
# of xdist's "most tests first", which starts the many quick unit tests and ends on a long file)
XDIST = -n $(JOBS) --dist loadfile --no-loadscope-reorder
test: $(STAMP)
	$(PY) -m pytest $(XDIST) --doctest-modules perfkit tests

test-fast: $(STAMP)
	$(PY) -m pytest $(XDIST) --doctest-modules -m "not slow" perfkit tests

lint: $(STAMP)
	$(VENV)/bin/ruff check perfkit tests benchmarks

format: $(STAMP)
	$(VENV)/bin/ruff format perfkit tests benchmarks

bench: $(STAMP)
	$(PY) benchmarks/metrics.py
	$(PY) benchmarks/review.py

clean:
	rm -rf $(VENV) .pytest_cache build dist *.egg-info
