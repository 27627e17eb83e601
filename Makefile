# clviz: two commands do all the set-up on a fresh machine.
#   make run    train and evaluate on the embedded default, write the outputs under results/
#   make test   the whole test suite: unit tests and every notebook (nbval)
# and one more for people:
#   make lab    open JupyterLab on notebooks/ with the clviz kernel

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: setup browser run test lab lint pretrain clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	$(BIN)/python -m ipykernel install --sys-prefix --name clviz --display-name "Python (clviz)"
	$(BIN)/python -c "from clviz.analysis.drift.umap_map import warm_up; warm_up()"  # numba, once
	touch $(STAMP)

run: setup
	$(BIN)/clviz main

# CI (CI=true, as root) installs Debian's Chromium for the real-browser tests; elsewhere they
# skip with a message when no Chromium is on PATH.
browser:
	@if [ -n "$$CI" ] && [ "$$(id -u)" = 0 ] && ! command -v chromium >/dev/null; then \
		echo "installing Debian's chromium for the browser tests"; \
		apt-get install -y -qq chromium >/dev/null 2>&1 || \
		{ apt-get update -qq && apt-get install -y -qq chromium >/dev/null; }; \
	fi

# The tests never reuse runs cached by earlier code: they get a fresh results folder. They
# run in one pytest-xdist worker per core, one thread each, a whole file per worker (a
# notebook's cells share one kernel).
test: setup browser
	rm -rf .cache/test-runs
	CLVIZ_FAST=1 CLVIZ_RESULTS=$(CURDIR)/.cache/test-runs $(BIN)/python -m pytest -n auto --dist loadfile

lab: setup
	$(BIN)/jupyter lab notebooks/

lint: setup
	$(BIN)/ruff check . && $(BIN)/ruff format --check .

pretrain: setup
	$(BIN)/python data_prep/pretrain_tiny_clip.py

clean:
	rm -rf $(VENV) results .pytest_cache
