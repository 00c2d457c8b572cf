#!/usr/bin/env bash
# Re-check on the GPU machine after the optimizer and fine-tuning changes:
# the kernel/model/transformers checks and short training runs
# (gpu_check.sh), the transformers round trip of fine-tuning
# (hf_roundtrip.sh), and the fine-tuning memory of llama-350m at micro-batch
# 16 x 512 (full fine-tuning vs CompAct r=8), measured.
set -uo pipefail
OUT=${OUT:-out/final}; mkdir -p "$OUT"
STEPS=60 OUT="$OUT/check" bash scripts/gpu_check.sh > "$OUT/check.txt" 2>&1
tail -12 "$OUT/check.txt"
bash scripts/hf_roundtrip.sh /tmp/hfrt > "$OUT/roundtrip.txt" 2>&1; tail -14 "$OUT/roundtrip.txt"
bin/compact memreport --config configs/llama-350m.yaml --device cuda --set model.max_seq_len=512 --set train.seq_len=512 \
  --batch 16 --ranks 8 --variants full+none,r8+none,full+mlp,r8+mlp --measure > "$OUT/finetune-memory.txt" 2>&1
head -8 "$OUT/finetune-memory.txt"
tar czf "$OUT/logs.tgz" -C "$OUT" check && rm -rf "$OUT/check"
