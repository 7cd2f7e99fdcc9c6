# gradviz-lab: `make lab` (set up, then JupyterLab on your copy of the lessons) and `make test` (set
# up, then every test). Setup is a stamp file: it reruns only when pyproject.toml or the torch pair change.

PYTHON     ?= python3
VENV       ?= .venv
BIN        := $(VENV)/bin
STAMP      := $(VENV)/.gradviz-installed
TORCH_PAIR ?= -r requirements/torch-pair.txt
# The students' working copy of the course (git-ignored; made and refreshed by `gradviz course`,
# which never overwrites a file you changed). notebooks/, exercises/, solutions/ are the sources.
WORKSPACE  ?= workspace
# Empty: `gradviz lab` takes the first free port from 8888. The token is made by `gradviz lab` and
# handed to JupyterLab in its environment, never on a command line.
PORT       ?=
PORT_ARG   := $(if $(PORT),--port $(PORT),)
PYTEST_ARGS ?=

.PHONY: help setup lab lab-sources test test-portable unit nbval bench exercises system-deps clean

help:
	@echo "make lab          set up .venv, copy the course into $(WORKSPACE)/, start JupyterLab there (127.0.0.1, token)"
	@echo "make lab-sources  (instructors) JupyterLab on the course's sources: notebooks/, solutions/"
	@echo "make test         set up .venv, then run unit tests and nbval on notebooks/ and solutions/"
	@echo "make test-portable nbval on notebooks/ and solutions/ again, as on other CPUs (tests/emulate_cpu.py)"
	@echo "make bench        run the benchmarks in benchmarks/"
	@echo "make exercises    regenerate exercises/ from solutions/"
	@echo "make system-deps  (root) Debian packages for the browser test: chromium"
	@echo "make setup        only create/update .venv (lab and test do it first)"
	@echo "make clean        remove .venv and build files (then TORCH_PAIR=... setup picks another pair)"

# setuptools reports every editable install with a "please be careful" notice meant for its own
# developers; setup hides that one warning (its message only) and nothing else.
QUIET_EDITABLE := PYTHONWARNINGS="ignore:Editable installation"

$(STAMP): pyproject.toml requirements/torch-pair.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_PAIR)
	$(QUIET_EDITABLE) $(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -c "import torch, torchvision; print('torch', torch.__version__, '/ torchvision', torchvision.__version__, 'import together')"
	@touch $(STAMP)

setup: $(STAMP)

lab: setup
	$(BIN)/gradviz lab $(WORKSPACE) $(PORT_ARG)

# Edits here change the sources that nbval checks and the wheel ships: run `make test` after.
lab-sources: setup
	$(BIN)/gradviz lab --no-copy . $(PORT_ARG)

NBVAL := --nbval --nbval-current-env --nbval-sanitize-with nbval_sanitize.cfg
# The emulated CPUs of test-portable (names of tests/emulate_cpu.py's SETTINGS).
PORTABLE_CPUS ?= sse41 avx2

# One pytest run, so one summary line: unit tests, then nbval over lessons and solutions
# (stored text outputs compared; volatile parts sanitised by nbval_sanitize.cfg).
test: setup
	$(BIN)/python -m pytest tests notebooks solutions $(NBVAL) $(PYTEST_ARGS)

# The stored outputs must not depend on the CPU that made them: nbval again, once per emulated
# CPU (other kernels of ATen, oneDNN and MKL, another thread count). CI runs it after `test`.
test-portable: setup
	@for cpu in $(PORTABLE_CPUS); do \
	    $(BIN)/python tests/emulate_cpu.py $$cpu -- $(BIN)/python -m pytest notebooks solutions $(NBVAL) \
	        $(PYTEST_ARGS) || exit 1; \
	done

bench: setup
	$(QUIET_EDITABLE) $(BIN)/python -m pip install --quiet -e '.[bench]'
	@for f in benchmarks/bench_*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

exercises: setup
	$(BIN)/gradviz exercises

system-deps:
	apt-get update
	apt-get install -y --no-install-recommends chromium

clean:
	rm -rf $(VENV) build dist *.egg-info
