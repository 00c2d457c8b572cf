#!/usr/bin/env bash
# One GPU call for the lean and fast work: CUDA-vs-CPU checks (kernels, whole
# model, lean and fused optimizer steps), the transformers reference step,
# measured memory of the lean variants against memreport's prediction, and
# the same-lease benchmark (scripts/bench.sh). Build first: make gpu-build.
set -uo pipefail
OUT=${OUT:-out/lean-fast}; mkdir -p "$OUT"
export COMPACT_CACHE=/tmp/compact-cache
t() { local n=$1; shift; local s=$SECONDS; if "$@" > "$OUT/$n.log" 2>&1; then r=PASS; else r=FAIL; fi; printf '%-22s %s %4ds\n' "$n" $r $((SECONDS-s)) | tee -a "$OUT/summary.txt"; }
t gpu-kernels bin/gpu.test -test.v -test.run 'CUDA|Cuda'
t model-cuda bin/model.test -test.v -test.run 'CUDA|Cuda'
t train-cuda bin/train.test -test.v -test.run 'TestCUDA'
t hf-export env COMPACT_REFERENCE_OUT=/tmp/ref-gpu COMPACT_REFERENCE_DEVICE=cuda bin/train.test -test.v -test.run TestExportHFReference
t hf-check python3 scripts/hf_reference.py /tmp/ref-gpu --tol-loss 1e-2 --tol-grad 6e-2
V=${VARIANTS:-r0.25+none,r0.25+block,r0.25-bf16_sr-bf16+block,r0.25-bf16_sr-bf16-fused+block,full-bf16_sr-bf16-fused+block}
for s in ${MEM_SIZES:-350m 1b}; do
  t mem-$s bin/compact memreport --config configs/llama-$s.yaml --device cuda --batch 64 --variants $V --measure
done
OUT="$OUT" bash scripts/bench.sh > "$OUT/bench.log" 2>&1
cat "$OUT/summary.txt"
