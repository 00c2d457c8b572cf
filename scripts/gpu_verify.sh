#!/usr/bin/env bash
# One GPU call that re-verifies main after a change (build first: make
# gpu-build; carry bin/ and .carry/): CUDA-vs-CPU checks of every package,
# the NCCL collectives, the transformers reference step, memreport
# prediction against measurement for the lean variants (with and without
# compact.head, pretraining and fine-tuning shapes), `--gpus 1` against the
# plain path, a kernel profile of the lean 1b step, and, concurrently, the
# 60m quality runs named in QNAMES (scripts/quality.sh). Summary last.
set -uo pipefail
OUT=${OUT:-out/verify}; mkdir -p "$OUT"
export COMPACT_CACHE=/tmp/compact-cache
t() { local n=$1; shift; local s=$SECONDS; if "$@" > "$OUT/$n.log" 2>&1; then r=PASS; else r=FAIL; fi; printf '%-22s %s %4ds\n' "$n" $r $((SECONDS-s)) | tee -a "$OUT/summary.txt"; }
SHARDS=/tmp/realtext-shards
QPID=
if [ -n "${QNAMES:-}" ]; then
  (OUT="$OUT" SIZE=60m STEPS=${QSTEPS:-2000} NAMES="$QNAMES" RUN_TIMEOUT=${QTIMEOUT:-450} bash scripts/quality.sh > "$OUT/quality.txt" 2>&1) &
  QPID=$!
fi
t gpu-kernels bin/gpu.test -test.v -test.run 'CUDA|Cuda'
t model-cuda bin/model.test -test.v -test.run 'CUDA|Cuda'
t train-cuda bin/train.test -test.v -test.run 'CUDA|Cuda'
t dist-nccl bin/dist.test -test.v -test.run 'NCCL'
t gpu-nccl bin/gpu.test -test.v -test.run 'NCCL'
t hf-export env COMPACT_REFERENCE_OUT=/tmp/ref-gpu COMPACT_REFERENCE_DEVICE=cuda bin/train.test -test.v -test.run TestExportHFReference
t hf-check python3 scripts/hf_reference.py /tmp/ref-gpu --tol-loss 1e-2 --tol-grad 6e-2
for s in 350m 1b; do
  t mem-$s bin/compact memreport --config configs/llama-$s.yaml --device cuda --batch 64 --measure --set compact.head=true \
    --variants r0.25-bf16_sr-bf16-fused+block,r0.25-bf16_sr-fused+block,full-bf16_sr-bf16-fused+block,full-bf16_sr-fused+block
  t mem-$s-nohead bin/compact memreport --config configs/llama-$s.yaml --device cuda --batch 64 --measure --variants r0.25-bf16_sr-bf16-fused+block
done
t mem-ft-350m bin/compact memreport --config configs/llama-350m.yaml --device cuda --batch 16 --ranks 8 --measure \
  --set model.max_seq_len=512 --set train.seq_len=512 --set compact.head=true \
  --variants r8-bf16_sr-fused+block,full-bf16_sr-fused+block,r8-bf16_sr-bf16-fused+block,full-bf16_sr-bf16-fused+block
LEAN="--set train.recompute=block --set train.fused_update=true --set train.optimizer_state=bf16"
t profile-lean-1b bin/compact bench --config configs/llama-1b.yaml --device cuda --set train.grad_accum=1 --set train.micro_batch=64 \
  --set compact.rank=0.25 $LEAN --modes compact --steps 5 --warmup 2 --profile
# CUDA graph steps (perf-notes section 10): the same bench with graphs off and on.
for s in 60m 130m; do for g in off on; do
  t bench-$s-graph-$g bin/compact bench --config configs/llama-$s.yaml --device cuda --set train.micro_batch=64 --set train.grad_accum=1 \
    --set compact.rank=0.25 --modes full,compact --set train.cuda_graph=$g
done; done
# The quality job tokenizes the shards; wait for them only while it is alive
# (a failed tokenization must not hang the call until its time limit).
while [ ! -e $SHARDS/realtext_val_000000.bin ] && [ -n "$QPID" ] && kill -0 "$QPID" 2>/dev/null; do sleep 5; done
if [ -e $SHARDS/realtext_val_000000.bin ]; then
  DATA="--set data.train=$SHARDS/realtext_train_*.bin --set data.val=$SHARDS/realtext_val_*.bin" OUT="$OUT/multigpu" \
    bash scripts/multigpu.sh > "$OUT/multigpu.log" 2>&1; tail -3 "$OUT/multigpu.log" >> "$OUT/summary.txt"
fi
wait
cat "$OUT/quality.txt" 2>/dev/null | tail -8
cat "$OUT/summary.txt"
