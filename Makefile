# Layers: the course's common tasks. Every target sets up .venv first if it is missing or stale
# (python3 -m venv, the pinned requirements, the autograder package), so on a fresh clone
# `make book` and `make test` are all a newcomer needs.

PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# nbgrader runs `alembic` (and notebooks run kernels) from PATH: the venv's tools come first
export PATH := $(CURDIR)/$(BIN):$(PATH)
CHAPTERS := $(notdir $(patsubst %/,%,$(wildcard solutions/*/)))

.PHONY: help setup book browser-check chromium bubblewrap screenshot test lab exercises bench lint constraints clean

help:
	@echo "make book       build the book into _build/html (warnings are errors)"
	@echo "make browser-check  open every page of the built book in headless Chromium and check it"
	@echo "make test       run the whole test suite"
	@echo "make bubblewrap install Debian's bubblewrap, the grading sandbox (apt-get)"
	@echo "make lab        JupyterLab on the exercises"
	@echo "make exercises  regenerate exercises/ from solutions/ with nbgrader"
	@echo "make bench      time the solutions against torch (bench/results.md) and class grading (bench/grading.md)"
	@echo "make lint       ruff on the Python code"

setup: $(STAMP)

$(STAMP): requirements.txt constraints.txt pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.txt -c constraints.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	@touch $(STAMP)

book: $(STAMP)
	$(BIN)/jupyter-book build . --warningiserror --keep-going
	$(BIN)/python tools/check_book.py _build/html
	@echo "The book is built: open file://$(CURDIR)/_build/html/index.html"

# every page of _build/html as a reader sees it (math typeset, figures loaded, no network, no
# solution code); CI=true lets it apt-get Debian's chromium when it is missing
browser-check: $(STAMP)
	@test -f _build/html/index.html || $(MAKE) book
	$(BIN)/python tools/browser_check.py _build/html --require

# Debian's chromium for the browser check and its tests (apt-get, as root or through sudo)
chromium: $(STAMP)
	$(BIN)/python -c "from tools.browser_check import find_chromium; print('chromium:', find_chromium(install=True))"

# Debian's bubblewrap, the sandbox of the trusted grading path (apt-get, as root or through sudo);
# without it grading falls back to plain processes with rlimits and says so in every report
bubblewrap:
	@command -v bwrap >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ]; then SUDO=; else SUDO=sudo; fi; \
		$$SUDO apt-get install -y -q bubblewrap >/dev/null 2>&1 || \
		{ $$SUDO apt-get update -q >/dev/null && $$SUDO apt-get install -y -q bubblewrap; }; }
	@bwrap --version

# the README's picture of a chapter page, and two animations caught in the middle of playing
# (the convolution with stride and dilation, the attention weights forming query by query)
screenshot: $(STAMP)
	@test -f _build/html/index.html || $(MAKE) book
	$(BIN)/python tools/browser_check.py _build/html --screenshot docs/screenshot.png --page book/conv \
		--animation-shot 'book/conv#2' docs/animation-conv.png \
		--animation-shot book/transformer docs/animation-transformer.png

# one worker per core, each on one thread (many small torch ops parallelise better across
# processes); idle workers take queued tests from busy ones, so the long nbgrader tests balance
test: $(STAMP)
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -n auto --dist worksteal

lab: $(STAMP)
	$(BIN)/jupyter lab exercises

exercises: $(STAMP)
	@for ch in $(CHAPTERS); do \
		$(BIN)/nbgrader generate_assignment $$ch --force --log-level=WARN || exit 1; \
	done

bench: $(STAMP)
	$(BIN)/python bench/run.py
	OMP_NUM_THREADS=1 $(BIN)/python bench/grading.py

lint: $(STAMP)
	$(BIN)/ruff check autograder tests tools bench

# refreeze constraints.txt from the current environment (after changing requirements.txt)
constraints: $(STAMP)
	@{ echo "# The full dependency set frozen from a working install of requirements.txt (torch is pinned"; \
	   echo "# there). Regenerate with: make constraints"; \
	   $(BIN)/python -m pip freeze --exclude-editable | grep -viE '^(torch|layers-autograder)[=@ ]'; } > constraints.txt

clean:
	rm -rf _build .jupyter_cache submitted autograded feedback gradebook.db
