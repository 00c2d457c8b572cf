#!/usr/bin/env bash
# SPEC section 9 benchmark, one GPU session: compact (full rank and CompAct
# r=0.25) and the PyTorch baseline (eager, torch.compile) for the paper's
# sizes at sequence length 256, micro-batch 64, no accumulation.
# Run on the GPU machine after `make gpu-build`; tables go to $OUT.
set -uo pipefail
OUT=${OUT:-out/bench}; mkdir -p "$OUT"
SIZES=${SIZES:-60m 130m 350m 1b}
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
for s in $SIZES; do
  prof=""; [ "${PROFILE:-60m}" = "$s" ] && prof="--profile"
  bin/compact bench --config configs/llama-$s.yaml --device cuda --set train.grad_accum=1 --set train.micro_batch=64 --set compact.rank=0.25 \
    --modes full,compact --steps ${STEPS:-10} --warmup 3 $prof --json "$OUT/compact-$s.json" 2>&1 | tee -a "$OUT/compact.txt"
done
if [ -z "${SKIP_TORCH:-}" ]; then
  PYTHONUNBUFFERED=1 python3 scripts/torch_baseline.py --sizes "$(echo $SIZES | tr ' ' ,)" --steps ${STEPS:-10} \
    --json "$OUT/torch.json" 2>&1 | grep -v Warning | tee "$OUT/torch.txt"
fi
echo "== summary"; grep -h "tok/s" "$OUT/compact.txt" "$OUT/torch.txt" 2>/dev/null
