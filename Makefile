# The two commands of the README: `make demo` and `make test`. Each installs what it needs.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-unit build bench clean

$(STAMP): pyproject.toml setup.py
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip setuptools wheel "Cython>=3.0,<4"
	$(PY) -m pip install -q --no-build-isolation -e '.[test]'
	$(PY) setup.py -q build_ext --inplace
	touch $(STAMP)

## a sidecar next to the sample app, on the embedded default (no server needed)
demo: $(STAMP)
	$(VENV)/bin/pydapr run --app-id orders --app-port 8700 -- $(PY) examples/order_app.py

## the whole test suite (needs the local servers: see .ci/run)
test: $(STAMP)
	$(PY) -m pytest -q

## unit and meta tests only (fast); CI runs these again with PYDAPR_NO_EXTENSIONS=1
test-unit: $(STAMP)
	$(PY) -m pytest -q tests/unit tests/meta

## rebuild the Cython twins after editing a .pyx
build: $(STAMP)
	$(PY) setup.py -q build_ext --inplace

clean:
	rm -rf $(VENV) build *.egg-info _speedups/*.so _speedups/*.c
