#!/usr/bin/env bash
# One prepared call of the device tool, for a session that is lent a GPU:
#   run(command="bash bench/gpu_check.sh", timeout_s=600)
# 1. GPU smoke test (projection fingerprint on CUDA, bf16 training that learns) and a
#    BERT-sized training step time.
# 2. Packed training (issue 12 §6): 64 users on MiniLM (or a random BERT of its shape where
#    the package is not installed) and on a tiny Llama, packed against train() one after
#    another; target ≥ 10× over sequential. PEFT is left out here (device time is short).
# 3. The inference server over HTTP (issue 14): serve-model on the GPU with a tiny Llama,
#    64 users: mixed vs one-user throughput, publish-to-served, and the PEFT baseline server.
# JSON reports land in $OUT when it is set. DRY=1: the same calls at tiny sizes (a CPU
# check: DRY=1 PYTHON=.venv/bin/python bash bench/gpu_check.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-/tmp}
PYTHON=${PYTHON:-python3}
nvidia-smi --query-gpu=name,memory.total --format=csv,noheader || true
"$PYTHON" -c "import torch, transformers; print('torch', torch.__version__, 'cuda', torch.cuda.is_available())"
if [ "${DRY:-0}" = 1 ]; then
  SIZES=(--users 4 --rows 16 --epochs 1 --step-samples 2 --length 16)
  SERVE_SIZES=(--users 4 --clients 4 --duration 2 --rounds 1 --swaps 2 --hidden 64 --layers 2 --r 16)
  SERVE_DEVICE=${SERVE_DEVICE:-cpu}
else
  SIZES=(--users 64 --rows 200 --epochs 3 --step-samples 10)
  SERVE_SIZES=(--users 64 --clients 64 --duration 10 --rounds 2 --swaps 5 --threads 4
    --serve-arg=--max-batch-tokens --serve-arg=16384)
  SERVE_DEVICE=cuda
  PYTHONUNBUFFERED=1 "$PYTHON" bench/gpu_smoke.py | tee "$OUT/gpu_smoke.json"
fi
for model in minilm tiny-llama; do
  PYTHONUNBUFFERED=1 timeout 240 "$PYTHON" bench/train_packed.py --model "$model" "${SIZES[@]}" \
    --repeat 1 --target 10 --only sequential packed steps --json "$OUT/train_packed_$model.json" \
    || echo "train_packed $model: exit $?"
done
PYTHONUNBUFFERED=1 timeout 300 "$PYTHON" bench/serve_http.py --device "$SERVE_DEVICE" \
  "${SERVE_SIZES[@]}" --no-append --json "$OUT/serve_http.json" || echo "serve_http: exit $?"
