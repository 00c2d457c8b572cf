#!/usr/bin/env bash
# SPEC section 9 benchmark, one GPU session: compact (full rank, CompAct
# r=0.25, and CompAct with the lean options in $LEAN) and the PyTorch
# baselines (eager, torch.compile, torch.compile + per-block checkpointing;
# bf16 weights, no master copy) for the paper's sizes at sequence length 256,
# micro-batch 64, no accumulation, then the same-lease ratio table
# (scripts/bench_table.py). Run on the GPU machine after `make gpu-build`;
# tables go to $OUT.
set -uo pipefail
OUT=${OUT:-out/bench}; mkdir -p "$OUT"
SIZES=${SIZES:-60m 130m 350m 1b}
LEAN=${LEAN:---set train.recompute=block}
COMMON="--device cuda --set train.grad_accum=1 --set train.micro_batch=64 --set compact.rank=0.25 --steps ${STEPS:-10} --warmup 3"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
for s in $SIZES; do
  prof=""; [ "${PROFILE:-60m}" = "$s" ] && prof="--profile"
  bin/compact bench --config configs/llama-$s.yaml $COMMON --modes full,compact $prof \
    --json "$OUT/compact-$s.json" 2>&1 | tee -a "$OUT/compact.txt"
  if [ -z "${SKIP_LEAN:-}" ]; then
    bin/compact bench --config configs/llama-$s.yaml $COMMON $LEAN --modes compact \
      --json "$OUT/compact-lean-$s.json" 2>&1 | tee -a "$OUT/compact.txt"
  fi
done
if [ -z "${SKIP_TORCH:-}" ]; then
  PYTHONUNBUFFERED=1 python3 scripts/torch_baseline.py --sizes "$(echo $SIZES | tr ' ' ,)" \
    --modes ${TORCH_MODES:-compile,compile_ckpt} --steps ${STEPS:-10} \
    --json "$OUT/torch.json" 2>&1 | grep -v Warning | tee "$OUT/torch.txt"
fi
echo "== same-lease table ($(head -1 "$OUT/gpu.txt"))"
python3 scripts/bench_table.py "$OUT" $SIZES | tee "$OUT/table.md"
