# deskphone developer entry points (Debian 12; see tools/bootstrap.sh for what gets installed)
#   make test     whole suite, 2 xdist workers (PYTEST_ARGS='-m "not peers"' to narrow it)
#   make run      the phone: on a Pi the real one with CONFIG (default the example config);
#                 elsewhere the simulated phone in this terminal (CONFIG optional: without one
#                 an offline phone on the embedded default)
#   make demo     two simulated phones side by side (tmux) that call each other: dial 200
#   make venv | lint | bench | clean
SHELL := /bin/bash
REPO := $(patsubst %/,%,$(dir $(abspath $(lastword $(MAKEFILE_LIST)))))
SHARED_DIR ?= $(abspath $(REPO)/../shared)
export SHARED_DIR

PYTHON ?= python3
VENV := $(REPO)/.venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip install -q --disable-pip-version-check
CONFIG ?=
ON_PI := $(shell grep -qs "Raspberry Pi" /proc/device-tree/model && echo yes)
JOBS ?= 2
PYTEST_ARGS ?=

.PHONY: bootstrap venv test run demo lint bench clean
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
ifeq ($(ON_PI),yes)
	cd $(REPO) && $(VENV)/bin/deskphone run -c $(or $(CONFIG),firmware/etc/phone.example.toml)
else
	@mkdir -p $(REPO)/run
	cd $(REPO) && $(VENV)/bin/deskphone sim $(if $(CONFIG),-c $(CONFIG)) \
	    --state-dir $(REPO)/run/sim-100 --log-file $(REPO)/run/sim-100.log
endif

# phone 100 (SIP 5062) and phone 200 (SIP 5064), each dialling the other's address
demo: venv
	@command -v tmux >/dev/null || { echo "make demo needs tmux (apt-get install tmux)"; exit 1; }
	@mkdir -p $(REPO)/run
	cd $(REPO) && TMUX= tmux new-session -s deskphone-demo \
	  "$(VENV)/bin/deskphone sim --compact --user 100 --sip-port 5062 --peer 127.0.0.1:5064 \
	     --console-port 5099 --rtp-port 17000 --state-dir run/sim-100 --log-file run/sim-100.log" \; \
	  split-window -h "$(VENV)/bin/deskphone sim --compact --user 200 --sip-port 5064 \
	     --peer 127.0.0.1:5062 --console-port 5098 --rtp-port 17100 --state-dir run/sim-200 \
	     --log-file run/sim-200.log"

# ruff everywhere; mypy --strict on the pure packages (STYLE.md), plain mypy on the rest
lint: $(VENV)/bin/ruff
	cd $(REPO) && $(VENV)/bin/ruff check firmware tests bench
	cd $(REPO) && $(VENV)/bin/mypy --strict -p deskphone.sip -p deskphone.sdp \
	    -p deskphone.config -p deskphone.console -p deskphone.phone
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
