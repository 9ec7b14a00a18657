# The two set-up commands: `make run` and `make test` (mypy, then trial). Both build .venv first.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
TRIAL_ARGS ?= tests

.PHONY: run test check install clean bench

$(STAMP): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip "setuptools>=77"
	# compat mode: a plain .pth to the checkout, so twistd sees twisted/plugins here
	$(BIN)/python -m pip install --quiet -e '.[test,check]' --config-settings editable_mode=compat
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(BIN)/openclaw gateway --allow-unconfigured --bind loopback

# The type gate (setup.cfg [mypy]); `make test` runs it first.
check: $(STAMP)
	$(BIN)/mypy

test: check
	@set -o pipefail; $(BIN)/python -m twisted.trial --reporter=text $(TRIAL_ARGS) 2>&1 | tee .trial.out; \
	status=$$?; $(BIN)/python tools/trial_summary.py < .trial.out; exit $$status

# The benchmark suite (bench/run.py): figures against bench/baseline/, never pass/fail on speed.
# BENCH_ARGS e.g. "--only chat,fanout", "--save-baseline", "--profile bench/out", "--upstream none"
# (by default connect and chat also run against the cached upstream gateway, side by side).
BENCH_ARGS ?=
bench: $(STAMP)
	$(BIN)/python bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build dist *.egg-info _trial_temp* .trial.out twisted/plugins/dropin.cache
