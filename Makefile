# Set-up is part of every target: a fresh machine needs only `make demo` or `make test`.
VENV ?= .venv
PYTHON ?= python3
PY := $(VENV)/bin/python
# The CPU wheel of torch, installed before the package so that its `torch>=2.4` range is already met.
TORCH ?= torch==2.13.0
WEB_DEPS := web/node_modules/.package-lock.json

.PHONY: demo test test-python web bench bench-instructions clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

$(WEB_DEPS): web/package-lock.json
	cd web && npm ci --no-audit --no-fund

demo: $(VENV)/.installed
	$(VENV)/bin/cardloop run examples/basic_training_loop.yaml

# The editor's unit tests and bundle (src/cardloop/web), then every Python test (API and browser included).
test: $(VENV)/.installed web
	cd web && npm test
	$(PY) -m pytest -q

test-python: $(VENV)/.installed
	$(PY) -m pytest -q --ignore=tests/e2e

web: $(WEB_DEPS)
	cd web && npm run build

bench: $(VENV)/.installed
	$(PY) benchmarks/bench_local.py
	$(PY) benchmarks/bench_cli.py
	$(PY) benchmarks/bench_parts.py
	$(PY) benchmarks/bench_process.py
	$(PY) benchmarks/bench_files.py

# Instructions per training step, counted by Valgrind (needs valgrind and a C compiler: not part of `bench`).
bench-instructions: $(VENV)/.installed
	$(PY) benchmarks/bench_instructions.py

clean:
	rm -rf $(VENV) .cardloop web/node_modules
