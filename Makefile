# guide_ray — two commands on a fresh machine: `make demo` and `make test`.
# Both create .venv if missing and install once; a second install is a no-op (stamp file).

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   ?= .venv
PY     := $(VENV)/bin/python
# The stamp names a checksum of everything the install step reads, so changing either re-installs.
STAMP  := $(VENV)/.installed-$(shell cat pyproject.toml Makefile | cksum | cut -d' ' -f1)
# facenet-pytorch ships MTCNN's P/R/O-Net weights (the ID metric's face alignment). Its declared
# pins (torch < 2.3, numpy < 2) are stale; its MTCNN runs on this project's torch and numpy, so it
# is installed without its dependencies (docs/weights.md).
NO_DEPS := facenet-pytorch==2.6.0

.PHONY: install demo test test-all bench clean

$(STAMP): pyproject.toml Makefile
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet -e '.[dev]'
	$(PY) -m pip install --quiet --no-deps $(NO_DEPS)
	@rm -f $(VENV)/.installed-*
	@touch $(STAMP)

install: $(STAMP)

## make demo: the main job on the embedded default (tiny stand-in world, CPU, no network)
demo: install
	$(VENV)/bin/guide-ray run jobs/quickstart.yaml

## make test: the fast suite (what CI runs); `make test-all` adds the slow cases
test: install
	$(PY) -m pytest -m "not slow" -q

test-all: install
	$(PY) -m pytest -q

## make bench: step speed on the shipped world, ours vs the official-order reference (see benchmarks/README.md)
bench: install
	$(VENV)/bin/guide-ray bench step --preset world --steps 5 --options ours,fp32 --out runs/bench

clean:
	rm -rf $(VENV) .pytest_cache runs
