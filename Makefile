# deskphone developer entry points (Debian 12; tools/bootstrap.sh installs what they need).
# `make help` lists the targets; `make test` is what CI runs (.ci/run).
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

IMAGE ?=
TARGET ?=
FLASH_ARGS ?=
DESTDIR ?=

.PHONY: help bootstrap venv install test run demo lint bench board dist flash clean
.DEFAULT_GOAL := help

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | \
	  awk 'BEGIN {FS = ":.*## "} {printf "  make %-10s %s\n", $$1, $$2}'

bootstrap: ## install the Debian packages and SIP test peers the rest needs
	@bash $(REPO)/tools/bootstrap.sh

venv: bootstrap $(VENV)/.stamp-test ## the project's .venv with the test dependencies

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

test: venv lint ## lint, then the whole suite (2 workers; PYTEST_ARGS narrows it)
	cd $(REPO) && $(PY) -m pytest -n $(JOBS) $(PYTEST_ARGS)

run: venv ## the phone: the real one on a Pi, else a simulated one in this terminal
ifeq ($(ON_PI),yes)
	cd $(REPO) && $(VENV)/bin/deskphone run -c $(or $(CONFIG),firmware/etc/phone.example.toml)
else
	@mkdir -p $(REPO)/run
	cd $(REPO) && $(VENV)/bin/deskphone sim $(if $(CONFIG),-c $(CONFIG)) \
	    --state-dir $(REPO)/run/sim-100 --log-file $(REPO)/run/sim-100.log
endif

# phone 100 (SIP 5062) and phone 200 (SIP 5064), each dialling the other's address
demo: venv ## two simulated phones side by side (tmux) that call each other
	@command -v tmux >/dev/null || { echo "make demo needs tmux (apt-get install tmux)"; exit 1; }
	@mkdir -p $(REPO)/run
	cd $(REPO) && TMUX= tmux new-session -s deskphone-demo \
	  "$(VENV)/bin/deskphone sim --compact --user 100 --sip-port 5062 --peer 127.0.0.1:5064 \
	     --console-port 5099 --rtp-port 17000 --state-dir run/sim-100 --log-file run/sim-100.log" \; \
	  split-window -h "$(VENV)/bin/deskphone sim --compact --user 200 --sip-port 5064 \
	     --peer 127.0.0.1:5062 --console-port 5098 --rtp-port 17100 --state-dir run/sim-200 \
	     --log-file run/sim-200.log"

# ruff everywhere; mypy --strict on the pure packages (STYLE.md), plain mypy on the rest
lint: $(VENV)/bin/ruff ## ruff everywhere, mypy (strict on the pure packages)
	cd $(REPO) && $(VENV)/bin/ruff check firmware tests bench tools
	cd $(REPO) && $(VENV)/bin/mypy --strict -p deskphone.sip -p deskphone.sdp \
	    -p deskphone.config -p deskphone.console -p deskphone.phone
	cd $(REPO) && $(VENV)/bin/mypy -p deskphone

bench: venv $(VENV)/.stamp-bench ## every benchmark in bench/, printing its figures
	@bash $(REPO)/tools/bootstrap.sh bench
	@cd $(REPO) && shopt -s nullglob && files=(bench/*.py) && \
	  [ $${#files[@]} -gt 0 ] || { echo "no bench/*.py to run"; exit 0; }; \
	  for f in "$${files[@]}"; do echo "== $$f"; $(PY) "$$f" || exit 1; done

BOARD_OUT ?= build/board

board: venv ## regenerate board/ from the pin map, compile it (CONFIG=phone.toml: into BOARD_OUT)
ifeq ($(CONFIG),)
	cd $(REPO) && $(PY) tools/board.py && mkdir -p build && \
	  $(PY) tools/board.py --dtbo build/deskphone.dtbo
else
	cd $(REPO) && $(PY) tools/board.py --config "$(CONFIG)" --out "$(BOARD_OUT)" && \
	  $(PY) tools/board.py --out "$(BOARD_OUT)" --dtbo "$(BOARD_OUT)/deskphone.dtbo"
endif

VERSION := $(shell sed -n 's/^__version__ = "\(.*\)"/\1/p' $(REPO)/firmware/deskphone/__init__.py)
BUNDLE ?= $(REPO)/dist/deskphone-bundle-$(VERSION).tar.gz
DIST_ARGS ?=
# flash and install run as root and must not rebuild anything: they take the bundle as it
# is (make dist built it as you), with the venv's Python if there is one
TOOL_PY = $(if $(wildcard $(PY)),$(PY),python3)
NEED_BUNDLE = @test -f "$(BUNDLE)" || { echo "no $(BUNDLE): run make dist first (for a \
Raspberry Pi OS card: make dist DIST_ARGS=--with-deps)"; exit 2; }

dist: venv ## the offline install bundle in dist/ (DIST_ARGS=--with-deps adds the Pi's wheels)
	cd $(REPO) && $(PY) tools/dist.py $(DIST_ARGS)

flash: ## write IMAGE to TARGET (SD card or .img) and set it up, from the bundle of make dist
	@test -n "$(IMAGE)" -a -n "$(TARGET)" || \
	  { echo "usage: make flash IMAGE=raspios-lite.img.xz TARGET=/dev/sdX [FLASH_ARGS=...]"; exit 2; }
	$(NEED_BUNDLE)
	cd $(REPO) && $(TOOL_PY) tools/flash.py "$(IMAGE)" "$(TARGET)" --bundle "$(BUNDLE)" $(FLASH_ARGS)

install: ## on a Pi, as root: the bundle of make dist installed as the service
	@test "$$(id -u)" -eq 0 || { echo "make install: run as root (sudo make install)"; exit 2; }
	$(NEED_BUNDLE)
	tmp=$$(mktemp -d) && trap 'rm -rf "$$tmp"' EXIT && tar -xzf "$(BUNDLE)" -C "$$tmp" && \
	  bash "$$tmp/deskphone-bundle-$(VERSION)/deskphone-firstboot.sh" \
	    --bundle "$$tmp/deskphone-bundle-$(VERSION)"

clean: ## remove the venv, build output and caches
	cd $(REPO) && rm -rf .venv build dist .pytest_cache .ruff_cache .mypy_cache .hypothesis run
	find $(REPO) -name __pycache__ -type d -prune -exec rm -rf {} +
	find $(REPO) -name '*.egg-info' -type d -prune -exec rm -rf {} +
