# Two commands: `make repro` (set everything up, run the pipeline on the default task) and `make test`.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
export DVC_NO_ANALYTICS := 1
export WANDB_MODE := disabled
export PYTHONWARNINGS := ignore
export PATH := $(CURDIR)/$(BIN):$(PATH)

.PHONY: setup repro suite push test test-fast bench clean-venv

setup: $(STAMP)

# torch first (the CPU wheel), then the pinned set in one resolve, then safety-gymnasium without
# its unbuildable pygame pin, its Python 3.11 fix (idempotent) and this package (editable).
$(STAMP): requirements.txt requirements-nodeps.txt tools/fix_safety_gymnasium.py pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q torch==$$(sed -n 's/^torch==//p' requirements.txt)
	$(BIN)/pip install -q -r requirements.txt
	$(BIN)/pip install -q --no-deps -r requirements-nodeps.txt
	$(BIN)/python tools/fix_safety_gymnasium.py
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	touch $(STAMP)

# the default task's stale stages as units fanned out over the cores at one thread each (the committed
# dvc.lock's thread count, so the core count does not change the artifacts), then `dvc repro` here
repro: setup
	$(BIN)/python scripts/repro.py

# every task of params.yaml `suite.tasks`, units fanned out over the cores (runs the committed HEAD)
suite: setup
	$(BIN)/python scripts/suite.py

# publish what was computed here to the default DVC remote: run-cache entries and every output they name
# (`dvc push --run-cache` alone leaves out the git-tracked metrics, see README "Scaling")
push: setup
	$(BIN)/python -c "from dspo.suite.ray_exec import push_run_cache; push_run_cache()"

test: setup
	$(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

bench: setup
	$(BIN)/python benchmarks/bench.py
	$(BIN)/python benchmarks/suite_fanout.py

clean-venv:
	rm -rf $(VENV)
