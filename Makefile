# dynofa_ros: the two README commands (`make demo`, `make test`) do all set-up themselves.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
export PYTHONPATH := $(CURDIR)
export PYTHONUNBUFFERED := 1

.PHONY: setup demo test bench lint clean-venv

setup:
	@bash scripts/setup_env.sh

demo: setup
	$(PY) -m dynofa_ros.nodes.bringup $(DEMO_ARGS)

test: setup
	@set -o pipefail; $(PY) -m pytest -q $(PYTEST_ARGS); rc=$$?; \
	if [ $$rc -eq 5 ]; then echo "pytest collected no tests"; fi; exit $$rc

bench: setup
	$(PY) benchmarks/run_all.py $(BENCH_ARGS)

lint: setup
	$(VENV)/bin/ruff check .

clean-venv:
	rm -rf $(VENV) build/interfaces
