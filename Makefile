# The two commands a newcomer needs: `make demo` and `make test`.
# TORCH_SPEC defaults to the local CPU wheel; override it to install another torch
# build, e.g. `make test-gpu TORCH_SPEC=torch` for a CUDA build.
PYTHON ?= python3
VENV ?= .venv
TORCH_SPEC ?= torch==2.13.0
# `make bench BENCH_ARGS="--quick --fastai-python /path/to/venv/bin/python"`
BENCH_ARGS ?=
BIN := $(VENV)/bin

.PHONY: demo test test-gpu fuzz lint format bench notebook clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# Stamps make a second `make demo` reuse the environment; they are redone when
# pyproject.toml changes.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q "$(TORCH_SPEC)"
	$(BIN)/python -m pip install -q -e .
	touch $@

$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $@

# --overwrite: a second `make demo` replaces the first demo's files in runs/demo
demo: $(VENV)/.installed
	$(BIN)/descent demo --out runs/demo --overwrite

test: $(VENV)/.installed-test
	$(BIN)/python -m pytest

# The tests marked `cuda` (skipped by `make test` without a GPU), then bench/gpu.py's
# throughput on the GPU; needs a CUDA build of torch (TORCH_SPEC) and a GPU.
test-gpu: $(VENV)/.installed-test
	$(BIN)/python -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 'no CUDA GPU: torch ' + torch.__version__ + ' sees none')"
	$(BIN)/python -m pytest -m cuda -rs
	$(BIN)/python bench/gpu.py

# The fuzz suite (tests/test_fuzz.py) with many more examples than `make test` gives it
# (the hypothesis profile "fuzz"); it prints cases tried, tracebacks, hangs and files
# changed outside --out. FUZZ_EXAMPLES sets the examples per target.
FUZZ_EXAMPLES ?= 400
fuzz: $(VENV)/.installed-test
	DESCENT_FUZZ=$(FUZZ_EXAMPLES) $(BIN)/python -m pytest tests/test_fuzz.py -p no:cacheprovider

# ruff, and the layers contract in pyproject.toml (imports point down, no cycles)
lint: $(VENV)/.installed-test
	$(BIN)/ruff check src tests bench scripts
	$(BIN)/ruff format --check src tests bench scripts
	$(BIN)/lint-imports

format: $(VENV)/.installed-test
	$(BIN)/ruff format src tests bench scripts
	$(BIN)/ruff check --fix src tests bench scripts

# The chapter's notebook (examples/chapter4.ipynb) in JupyterLab, or the classic
# notebook where Lab is missing; Jupyter comes with the optional extra descent[notebook].
# `make notebook JUPYTER_ARGS="--no-browser --allow-root"` in a container.
NOTEBOOK ?= examples/chapter4.ipynb
JUPYTER_ARGS ?=

$(VENV)/.installed-notebook: $(VENV)/.installed
	$(BIN)/python -m pip install -q -e ".[notebook]"
	touch $@

notebook: $(VENV)/.installed-notebook
	if [ -x $(BIN)/jupyter-lab ]; then $(BIN)/jupyter lab $(JUPYTER_ARGS) $(NOTEBOOK); \
	else $(BIN)/jupyter notebook $(JUPYTER_ARGS) $(NOTEBOOK); fi

bench: $(VENV)/.installed-test
	$(BIN)/python bench/run_all.py $(BENCH_ARGS)

clean:
	rm -rf runs build dist src/*.egg-info
