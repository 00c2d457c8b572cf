#!/usr/bin/env bash
# One call on the GPU machine: kernel and model checks against the CPU
# backend, the transformers reference (CPU and CUDA), and short real-text
# training runs with CompAct on and off. Build first, here:
#   make gpu-build   (bin/compact, bin/*.test; shards in .carry/data)
# Logs go to $OUT (or ./out/gpu-check). Prints a summary table last.
set -uo pipefail
OUT=${OUT:-out/gpu-check}
mkdir -p "$OUT"
export COMPACT_CACHE=/tmp/compact-cache
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
declare -a summary
step() { # name, command...
  local name=$1; shift
  local t0=$SECONDS
  if "$@" >"$OUT/$name.log" 2>&1; then r=PASS; else r=FAIL; fi
  summary+=("$(printf '%-34s %s  %4ds' "$name" "$r" $((SECONDS - t0)))")
}
step gpu-kernels       bin/gpu.test -test.v -test.run 'CUDA|Cuda'
step model-vs-cpu      bin/model.test -test.v -test.run CUDA
step lean-step-vs-cpu    bin/train.test -test.v -test.run TestCUDALeanStepMatchesCPU
step hf-ref-export-cpu env COMPACT_REFERENCE_OUT=/tmp/ref-cpu bin/train.test -test.v -test.run TestExportHFReference
step hf-ref-check-cpu  python3 scripts/hf_reference.py /tmp/ref-cpu
step hf-ref-export-gpu env COMPACT_REFERENCE_OUT=/tmp/ref-gpu COMPACT_REFERENCE_DEVICE=cuda bin/train.test -test.v -test.run TestExportHFReference
step hf-ref-check-gpu  python3 scripts/hf_reference.py /tmp/ref-gpu --tol-loss 1e-2 --tol-grad 6e-2
DATA="--set data.train=.carry/data/train_*.bin --set data.val=.carry/data/val_*.bin"
for mode in true false; do
  step "train-60m-compact-$mode" bin/compact pretrain --config configs/llama-60m.yaml --device cuda --steps ${STEPS:-200} \
    --set train.grad_accum=1 --set train.log_every=20 --set train.eval_every=100 --set train.checkpoint_every=0 \
    --set compact.enabled=$mode $DATA --out /tmp/run-$mode
  cp /tmp/run-$mode/metrics.jsonl "$OUT/metrics-60m-compact-$mode.jsonl" 2>/dev/null
done
printf '%s\n' "${summary[@]}" | tee "$OUT/summary.txt"
grep -h '"step":' /tmp/run-*/metrics.jsonl | tail -n 2
