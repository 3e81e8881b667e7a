#!/usr/bin/env bash
# The GPU checks, in one short run (about 4 minutes expected on one H200; each step has a time
# limit, together 8 minutes):
#   1. the gpu test tier (pytest -m gpu): the engine on CUDA against the CPU, and bf16 against
#      the plain forward on a Llama-shaped model;
#   2. bench/engine_throughput.py on GPT-2 small and a 0.5B Llama in bfloat16 on cuda: pairs/s
#      of the engine against pyvene (batched at its best batch size, and per pair);
#   3. bench/ray_gpu_share.py: one job's IIA scoring on the local Ray, 4 actors sharing the GPU
#      (0.25 each) against 1 actor.
#
#   bench/gpu_check.sh            # stops at once, saying so, where torch sees no CUDA device
#   bench/gpu_check.sh --dry-run  # no GPU: syntax, options and set-up of every step, on the CPU
#
# PYTHON (default .venv/bin/python) is the interpreter. Exit status: the first failing step's.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}
export OMP_WAIT_POLICY=PASSIVE NUMBA_NUM_THREADS=1
DRY=0
case "${1:-}" in
  --dry-run) DRY=1 ;;
  "") ;;
  *) echo "usage: $0 [--dry-run]" >&2; exit 2 ;;
esac

step() { printf '\n=== %s ===\n' "$*"; }

if [[ $DRY == 0 ]]; then
  "$PYTHON" - <<'EOF' || exit 1
import sys
import torch
if not torch.cuda.is_available():
    sys.exit(f"gpu_check: torch {torch.__version__} sees no CUDA device (CUDA build: "
             f"{torch.version.cuda}); run it on a GPU machine, or with --dry-run")
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.get_device_name(0)}")
EOF
fi

if [[ $DRY == 1 ]]; then
  step "dry run: compile, collect the gpu tier, option parsing, CPU set-up"
  "$PYTHON" -m py_compile bench/engine_throughput.py bench/ray_gpu_share.py
  "$PYTHON" -m pytest -m gpu -q --collect-only -p no:cacheprovider | tail -3
  "$PYTHON" bench/engine_throughput.py --help > /dev/null
  "$PYTHON" bench/engine_throughput.py --families llama --seconds 0.2 --batch-sizes 64 \
    --pyvene-batch-sizes 16 --dtype bfloat16
  timeout 300 "$PYTHON" bench/ray_gpu_share.py --dry-run
  if "$PYTHON" bench/engine_throughput.py --shape llama-0.5b --device cuda 2>/dev/null; then
    echo "gpu_check: engine_throughput ran on cuda without a CUDA device?" >&2; exit 1
  fi
  echo "dry run: ok"
  exit 0
fi

step "1/4 pytest -m gpu"
timeout 120 "$PYTHON" -m pytest -m gpu -q -p no:cacheprovider -rs

step "2/4 engine_throughput: GPT-2 small (12 x 768, vocab 50257), bfloat16, cuda"
timeout 90 "$PYTHON" bench/engine_throughput.py --shape gpt2-small --device cuda --dtype bfloat16

step "3/4 engine_throughput: Llama 0.5B (24 x 896, vocab 151936), bfloat16, cuda"
timeout 120 "$PYTHON" bench/engine_throughput.py --shape llama-0.5b --device cuda --dtype bfloat16

step "4/4 ray_gpu_share: 4 actors x 0.25 GPU against 1 actor x 1 GPU"
timeout 150 "$PYTHON" bench/ray_gpu_share.py

echo
echo "gpu_check: all steps passed"
