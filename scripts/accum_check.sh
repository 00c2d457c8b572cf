#!/usr/bin/env bash
# One GPU call for issue 19's accumulation options (build first: make
# gpu-build; carry bin/): the CUDA checks of bf16 gradient sums
# (train.grad_accum_state bf16: adam_*_gbf16, the sums added in with
# stochastic_round_bf16) and of a compressed o_proj (compact.layers with o),
# then memreport's prediction against measurement and bench's tok/s for the
# done-when of issue 19: llama-1b lean + int8 at 64 x 1 (<= 7.3 GiB) and at
# its config's 64 x 8 (<= 8.3 GiB, >= 0.95x the 64 x 1 tok/s), llama-7b at
# micro-batch 16 (<= 20 GiB, >= 8k tok/s) and at its config's 16 x 32
# (<= 23 GiB). Summary last; logs in $OUT.
set -uo pipefail
OUT=${OUT:-out/accum}; mkdir -p "$OUT"
export COMPACT_CACHE=/tmp/compact-cache
t() { local n=$1; shift; local s=$SECONDS; if "$@" > "$OUT/$n.log" 2>&1; then r=PASS; else r=FAIL; fi; printf '%-22s %s %4ds\n' "$n" $r $((SECONDS-s)) | tee -a "$OUT/summary.txt"; }

# Kernels and whole steps against the CPU and against each other.
t gpu-adam-bf16-grad bin/gpu.test -test.v -test.run 'TestCUDAAdamBF16Gradient|TestCUDAAdamRoundedStores|TestCUDAAdamInt8MatchesCPU|TestCUDAStochasticRound'
t model-cuda bin/model.test -test.v -test.run 'TestCUDAModelMatchesCPU'
t train-fused bin/train.test -test.v -test.run 'TestCUDAFusedStepMatchesUnfused'
t train-graph bin/train.test -test.v -test.run 'TestCUDAGraphStepsMatchEager'
t train-lean bin/train.test -test.v -test.run 'TestCUDALeanStepMatchesCPU|TestCUDAInt8StepMatchesCPU'

# Memory: two real steps per variant, measured beside the prediction. The
# variants are memreport's names: -oproj compresses o_proj, -bf16sums keeps
# bf16 gradient sums (they act at the config's grad_accum > 1).
V1=r0.25-bf16_sr-int8-fused+block,r0.25-oproj-bf16_sr-int8-fused+block
VA=$V1,r0.25-bf16_sr-int8-fused-bf16sums+block,r0.25-oproj-bf16_sr-int8-fused-bf16sums+block
t mem-1b-64x1 bin/compact memreport --config configs/llama-1b.yaml --device cuda --batch 64 --set train.grad_accum=1 --measure --variants $V1
t mem-1b-64x8 bin/compact memreport --config configs/llama-1b.yaml --device cuda --batch 64 --measure --variants $VA
t mem-7b-16x1 bin/compact memreport --config configs/llama-7b.yaml --device cuda --batch 16 --set train.grad_accum=1 --measure --variants $V1
t mem-7b-16x32 bin/compact memreport --config configs/llama-7b.yaml --device cuda --batch 16 --measure --variants $VA

# Speed: the lean options with int8 moments, at grad_accum 1 and at the
# config's accumulation, fp32 and bf16 sums, o_proj full and compressed.
LEAN="--set compact.rank=0.25 --set train.weights=bf16_sr --set train.optimizer_state=int8 --set train.fused_update=true --set train.grad_clip=0 --set train.recompute=block"
O="--set compact.layers=q,k,v,o,gate,up,down"
S="--set train.grad_accum_state=bf16"
b() { local n=$1 cfg=$2; shift 2; t "$n" bin/compact bench --config configs/llama-$cfg.yaml --device cuda --modes compact --steps ${STEPS:-5} --warmup 2 $LEAN "$@"; }
b bench-1b-64x1 1b --set train.micro_batch=64 --set train.grad_accum=1
b bench-1b-64x1-oproj 1b --set train.micro_batch=64 --set train.grad_accum=1 $O
b bench-1b-64x8 1b --set train.micro_batch=64 --set train.grad_accum=8
b bench-1b-64x8-sums 1b --set train.micro_batch=64 --set train.grad_accum=8 $S
b bench-1b-64x8-oproj-sums 1b --set train.micro_batch=64 --set train.grad_accum=8 $O $S
b bench-7b-16x1 7b --set train.micro_batch=16 --set train.grad_accum=1
b bench-7b-16x32-oproj-sums 7b --set train.micro_batch=16 --set train.grad_accum=32 $O $S
cat "$OUT/summary.txt"
