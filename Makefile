# The two commands of a fresh machine:
#   make run    installs klambda and runs the platform locally with the example function
#   make test   installs everything the tests need (incl. the Kubernetes test binaries) and runs them
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PORT ?= 9000

.PHONY: install run test test-fast k8s-bins lint

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

install: $(PY)
	$(PY) -m pip install --quiet -e '.[test,dev]'

run: install
	$(VENV)/bin/klambda up --port $(PORT) -f examples/hello.yaml

k8s-bins:
	nice -n 5 tools/build-k8s.sh

test: install k8s-bins
	KLAMBDA_REQUIRE_CLUSTER=1 $(PY) -m pytest -p no:cacheprovider -ra

test-fast: install
	$(PY) -m pytest -p no:cacheprovider -ra -m "not cluster"

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
