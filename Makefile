# The README's two commands. Each creates .venv on first use and installs what it needs.
VENV   ?= .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
# Benchmark data root: the environment's AWSRN_DATA, else ../shared/data when it exists.
AWSRN_DATA ?= $(wildcard $(abspath ../shared/data))
export AWSRN_DATA

.PHONY: reproduce test bench clean-venv

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	# CPU build of torch from the machine's wheel cache; a GPU user installs the CUDA build first (README).
	$(VENV)/bin/pip install -q torch==2.13.0
	$(VENV)/bin/pip install -q -e '.[test,ray]'
	# super-image for the side-by-side checks, without its torchvision/opencv pins (see benchmark/superimage.py)
	$(VENV)/bin/pip install -q --no-deps super-image==0.2.0
	$(VENV)/bin/pip install -q h5py huggingface-hub opencv-python-headless
	touch $(STAMP)

reproduce: $(STAMP)
	$(VENV)/bin/awsrn-bench reproduce $(if $(AWSRN_DATA),--data-root $(AWSRN_DATA),)

test: $(STAMP)
	$(PY) -m pytest

bench: $(STAMP)
	$(PY) -m pytest -n 0 tests/benchmarks --benchmark-only --benchmark-json=results/pytest-benchmark.json

clean-venv:
	rm -rf $(VENV)
