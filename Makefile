# deskphone developer entry points (Debian 12; see tools/bootstrap.sh for what gets installed)
#   make test     whole suite, 2 xdist workers (PYTEST_ARGS='-m "not peers"' to narrow it)
#   make run      the firmware with CONFIG (default firmware/etc/phone.example.toml)
#   make venv | lint | bench | clean
SHELL := /bin/bash
REPO := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))
SHARED_DIR ?= $(abspath $(REPO)/../shared)
export SHARED_DIR

PYTHON ?= python3
VENV := $(REPO)/.venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install -q --disable-pip-version-check
CONFIG ?= firmware/etc/phone.example.toml
JOBS ?= 2
PYTEST_ARGS ?=

.PHONY: bootstrap venv test run lint bench clean
.DEFAULT_GOAL := test

bootstrap:
	@bash $(REPO)/tools/bootstrap.sh

venv: bootstrap $(VENV)/.stamp-test

# the stamp is inside .venv: deleting .venv redoes everything; a changed pyproject reinstalls
$(VENV)/.stamp-test: $(REPO)/pyproject.toml | bootstrap
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@$(PIP) -e '$(REPO)[test]'
	@touch $@

$(VENV)/.stamp-bench: $(VENV)/.stamp-test
	@$(PIP) -e '$(REPO)[bench]'
	@touch $@

$(VENV)/bin/ruff: | $(VENV)/.stamp-test
	@$(PIP) -e '$(REPO)[lint]'

test: venv
	cd $(REPO) && $(PY) -m pytest -n $(JOBS) $(PYTEST_ARGS)

run: venv
	cd $(REPO) && $(VENV)/bin/deskphone run -c $(CONFIG)

# ruff everywhere; mypy --strict on the pure packages (STYLE.md), plain mypy on the rest
lint: $(VENV)/bin/ruff
	cd $(REPO) && $(VENV)/bin/ruff check firmware tests bench
	cd $(REPO) && $(VENV)/bin/mypy --strict -p deskphone.sip -p deskphone.sdp \
	    -p deskphone.config -p deskphone.console
	cd $(REPO) && $(VENV)/bin/mypy -p deskphone

bench: venv $(VENV)/.stamp-bench
	@bash $(REPO)/tools/bootstrap.sh bench
	@cd $(REPO) && shopt -s nullglob && files=(bench/*.py) && \
	  [ $${#files[@]} -gt 0 ] || { echo "no bench/*.py to run"; exit 0; }; \
	  for f in "$${files[@]}"; do echo "== $$f"; $(PY) "$$f" || exit 1; done

clean:
	cd $(REPO) && rm -rf .venv build dist .pytest_cache .ruff_cache .mypy_cache .hypothesis run
	find $(REPO) -name __pycache__ -type d -prune -exec rm -rf {} +
	find $(REPO) -name '*.egg-info' -type d -prune -exec rm -rf {} +
