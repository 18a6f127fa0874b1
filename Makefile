# `make demo` and `make test` work on a fresh machine: they create .venv, install the package
# (torch pinned to the CPU build this project is developed with; override with TORCH=...),
# and make sure Fashion-MNIST is on disk.
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH ?= torch==2.13.0
STAMP := $(VENV)/.longtail-installed

.PHONY: install data demo test bench bench-throughput clean

$(STAMP): pyproject.toml
	test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check "$(TORCH)"
	$(PY) -m pip install -q --disable-pip-version-check -e '.[test]'
	touch $(STAMP)

install: $(STAMP)

data: install
	$(VENV)/bin/longtail fetch fashion_mnist

demo: data
	$(VENV)/bin/longtail train configs/demo.yaml

test: data
	$(PY) -m pytest

bench: data  # the quick tier of the full grid (about an hour on 2 CPU cores); continues a killed one
	$(VENV)/bin/longtail bench benchmarks/suites/fashion_mnist_lt.yaml --resume

bench-throughput: data
	$(PY) benchmarks/throughput.py

clean:
	rm -rf $(VENV) runs .pytest_cache
