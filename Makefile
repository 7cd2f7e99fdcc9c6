# gradviz-lab: `make lab` (set up, then JupyterLab on the lessons) and `make test` (set up, then
# every test). Setup is a stamp file: it reruns only when pyproject.toml or the torch pair change.

PYTHON     ?= python3
VENV       ?= .venv
BIN        := $(VENV)/bin
STAMP      := $(VENV)/.gradviz-installed
TORCH_PAIR ?= -r requirements/torch-pair.txt
PORT       ?= 8888
# One token per `make lab`, generated once (`:=`) so the printed URL matches the server.
ifndef GRADVIZ_TOKEN
GRADVIZ_TOKEN := $(shell $(PYTHON) -c 'import secrets; print(secrets.token_hex(24))')
endif
ALLOW_ROOT := $(if $(filter 0,$(shell id -u)),--allow-root,)
PYTEST_ARGS ?=

.PHONY: help setup lab test test-portable unit nbval bench exercises system-deps clean

help:
	@echo "make lab          set up .venv, then start JupyterLab on notebooks/ (127.0.0.1, token)"
	@echo "make test         set up .venv, then run unit tests and nbval on notebooks/ and solutions/"
	@echo "make test-portable nbval on notebooks/ and solutions/ again, as on other CPUs (tests/emulate_cpu.py)"
	@echo "make bench        run the benchmarks in benchmarks/"
	@echo "make exercises    regenerate exercises/ from solutions/"
	@echo "make system-deps  (root) Debian packages for the browser test: chromium"
	@echo "make setup        only create/update .venv (lab and test do it first)"
	@echo "make clean        remove .venv and build files (then TORCH_PAIR=... setup picks another pair)"

$(STAMP): pyproject.toml requirements/torch-pair.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet $(TORCH_PAIR)
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	$(BIN)/python -c "import torch, torchvision; print('torch', torch.__version__, '/ torchvision', torchvision.__version__, 'import together')"
	@touch $(STAMP)

setup: $(STAMP)

lab: setup
	@echo ""
	@echo "  gradviz-lab: open http://127.0.0.1:$(PORT)/lab/tree/notebooks?token=$(GRADVIZ_TOKEN)"
	@echo "  (Ctrl-C to stop)"
	@echo ""
	$(BIN)/jupyter lab --no-browser $(ALLOW_ROOT) \
	    --ServerApp.ip=127.0.0.1 --ServerApp.port=$(PORT) --ServerApp.port_retries=0 \
	    --ServerApp.root_dir=. --ServerApp.default_url=/lab/tree/notebooks \
	    --IdentityProvider.token=$(GRADVIZ_TOKEN)

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
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	@for f in benchmarks/bench_*.py; do echo "== $$f"; $(BIN)/python $$f || exit 1; done

exercises: setup
	$(BIN)/gradviz exercises

system-deps:
	apt-get update
	apt-get install -y --no-install-recommends chromium

clean:
	rm -rf $(VENV) build *.egg-info
