# mcunet-tf: the two commands of the README, and the set-up they need.
#   make demo   the main job on its embedded default (the TinyNAS search, --budget=default)
#   make test   the whole test suite
#   make lint   ruff and mypy over the project's own code (CI runs it before the tests)
SHELL := /bin/bash
VENV ?= $(CURDIR)/.venv
export PATH := $(VENV)/bin:$(PATH)
export TF_CPP_MIN_LOG_LEVEL ?= 2
PYTEST_WORKERS ?= 2

.PHONY: setup demo test test-fast lint

setup:
	@bash scripts/setup.sh

demo: setup
	python -m nas.search --output_dir=build/search --resume

test: setup
	python -m pytest -n $(PYTEST_WORKERS) --dist loadfile -q -rs tests

test-fast: setup
	python -m pytest -n $(PYTEST_WORKERS) --dist loadfile -q -m "not slow" tests

lint: setup
	ruff check .
	mypy
