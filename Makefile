# perfkit: two commands.  `make demo`  and  `make test`.
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed

.PHONY: demo test test-fast lint format bench clean install

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[postgres,report,notebook,engines,spark,dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/perfkit demo

test: $(STAMP)
	$(PY) -m pytest --doctest-modules perfkit tests

test-fast: $(STAMP)
	$(PY) -m pytest --doctest-modules -m "not slow" perfkit tests

lint: $(STAMP)
	$(VENV)/bin/ruff check perfkit tests benchmarks

format: $(STAMP)
	$(VENV)/bin/ruff format perfkit tests benchmarks

bench: $(STAMP)
	$(PY) benchmarks/metrics.py

clean:
	rm -rf $(VENV) .pytest_cache build dist *.egg-info
