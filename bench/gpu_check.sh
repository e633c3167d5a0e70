#!/usr/bin/env bash
# The one script to run on a machine with a CUDA GPU: the CUDA tests, then the training-speed
# benchmark for GPT-2 small. Results are printed and, where $OUT is set, saved there.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp/embcli-gpu}
mkdir -p "$OUT"
export EMBCLI_CACHE=/tmp/embcli-cache
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv | tee "$OUT/gpu.txt"
python3 -c "import torch, tiktoken, typer; print('torch', torch.__version__, 'tiktoken', tiktoken.__version__, 'typer', typer.__version__)" | tee -a "$OUT/gpu.txt"
timeout 240 python3 -m pytest -q -p no:cacheprovider tests/test_cuda.py tests/test_model.py 2>&1 | tail -15 | tee "$OUT/cuda_tests.txt"
timeout 300 python3 bench/train_speed.py --device cuda --config gpt2-small --steps 10 --rounds 2 \
  --set batch_size=16 --set grad_accum=1 --variants plain-bf16,plain-bf16-compile,fused-bf16-compile 2>&1 \
  | grep -v "^W[0-9]" | tail -15 | tee "$OUT/train_speed_gpt2_small.txt"
