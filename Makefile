# Two commands: `make demo` (set up, then run the demo) and `make test` (set up, then run the tests).
PY ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint test-all bench data report results mutate clean

$(STAMP): pyproject.toml
	@command -v $(PY) >/dev/null 2>&1 || { echo "need $(PY) (set PY=python3.x)"; exit 1; }
	test -d $(VENV) || $(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	# torch==2.13.0 is the CPU build on this machine; pinning it keeps pip off multi-GB CUDA wheels.
	$(BIN)/pip install --quiet torch==2.13.0
	$(BIN)/pip install --quiet -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/sobolev --threads 1 demo --out runs/demo --overwrite

test: $(STAMP)
	$(BIN)/python -m pytest

# ruff: the lint rules and the format configured in pyproject.toml (CI runs both).
lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

test-all: $(STAMP)
	$(BIN)/python -m pytest -m "slow or not slow"

bench: $(STAMP)
	$(BIN)/python -m benchmarks --threads 1

# Fashion-MNIST (28×28, MIT) from Debian's dataset-fashion-mnist, for the image experiments' full runs.
FMNIST := /usr/share/datasets/fashion-mnist
data:
	@if [ -f $(FMNIST)/train-images-idx3-ubyte.gz ]; then echo "Fashion-MNIST present in $(FMNIST)"; \
	elif [ "$$(id -u)" = 0 ]; then DEBIAN_FRONTEND=noninteractive apt-get install -y -q dataset-fashion-mnist; \
	else echo "run as root: apt-get install dataset-fashion-mnist (or pass --set data=DIR with IDX files)"; fi

# The tables of README.md, docs/ and mutation/RESULTS.md from the committed summaries in docs/results (no training).
report: $(STAMP)
	$(BIN)/sobolev report

# Re-run every full experiment into runs/results, collect into docs/results, regenerate the README (hours).
results: $(STAMP) data
	$(BIN)/python -m sobolev_lab.results

mutate: $(STAMP)
	$(BIN)/pip install --quiet -e ".[dev,mutate]"
	bash mutation/run.sh

clean:
	rm -rf $(VENV) runs .pytest_cache
