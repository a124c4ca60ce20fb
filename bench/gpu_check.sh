#!/usr/bin/env bash
# One prepared call of the device tool, for a session that is lent a GPU:
#   run(command="bash bench/gpu_check.sh", timeout_s=600)
# GPU smoke test (projection fingerprint on CUDA, bf16 training that learns) and a
# BERT-sized training step time; the JSON report also lands in $OUT when it is set.
set -euo pipefail
cd "$(dirname "$0")/.."
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
python3 -c "import torch, transformers; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
PYTHONUNBUFFERED=1 python3 bench/gpu_smoke.py | tee "${OUT:-/tmp}/gpu_smoke.json"
