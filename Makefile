# Every target bootstraps .venv on first use, so a fresh clone needs only `make demo` / `make test`.
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
# The index torch 2.13.0 comes from. Empty: pip's configured index, which serves its default
# build (CUDA on Linux from PyPI; the CPU wheel where a local one is configured). For the CPU
# build elsewhere: make setup TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_INDEX ?=
# Shared 2-core machines: OpenMP spin-waiting makes torch 10-20x slower under load.
export OMP_WAIT_POLICY := PASSIVE
export NUMBA_NUM_THREADS ?= 1
# torch's AVX-512 CPU kernels round differently from its AVX2 ones, and training amplifies it:
# the documented demo tables were made with AVX2 kernels, selected here (and in the tests) on
# every machine that has AVX2 so that they repeat; elsewhere torch's default stays.
ifneq ($(shell grep -m1 -ow avx2 /proc/cpuinfo 2>/dev/null),)
export ATEN_CPU_CAPABILITY ?= avx2
endif

.PHONY: setup demo demo-arithmetic demo-table demo-boolean demo-lm demo-authors test lint bench clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	# torch first, pinned; the project's torch range then installs nothing more.
	$(BIN)/pip install --quiet torch==2.13.0 $(if $(TORCH_INDEX),--index-url $(TORCH_INDEX))
	$(BIN)/pip install --quiet -e '.[test,pyvene]'
	touch $@

# The main job: a network with a planted combination, recovered blind, beside its control.
demo: setup
	$(BIN)/ccm run examples/planted.toml

# The paper's six-candidate arithmetic task on a network trained on the task alone.
demo-arithmetic: setup
	$(BIN)/ccm run examples/arithmetic.toml

# Rewrites the demo tables of README.md and bench/RESULTS.md from the last `make demo` and
# `make demo-arithmetic`.
demo-table: setup
	$(BIN)/python bench/demo_table.py results/planted/report.json --update
	$(BIN)/python bench/demo_table.py results/arithmetic/report.json --update

demo-boolean: setup
	$(BIN)/ccm run examples/boolean.toml

# A causal LM trained here on prompts of different lengths, then loaded from its folder on a
# task read from a JSONL file (bring your own network and data).
demo-lm: setup
	$(BIN)/ccm run examples/arithmetic-lm.toml
	$(BIN)/ccm run examples/arithmetic-lm-data.toml

# The authors' published IIA graphs (GPT-2 small, layer 7), solved under the paper's semantics.
demo-authors: setup
	mkdir -p results
	$(BIN)/ccm solve examples/data/arithmetic_layer7_r256.npz --method auto --time-limit 20 \
		--floors 1.0,0.99,0.975,0.95,0.925,0.9,0.8 \
		--json results/authors_frontier.json --plot results/authors_frontier.png

test: setup lint
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check solver intervention service tests bench

bench: setup
	$(BIN)/python bench/greedy_golden.py
	$(BIN)/python bench/pairwise_quality.py
	$(BIN)/python bench/pairwise_exact_small.py
	$(BIN)/python bench/per_input_scale.py
	$(BIN)/python bench/engine_throughput.py

clean:
	rm -rf $(VENV) results .pytest_cache
