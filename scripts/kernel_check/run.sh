#!/bin/bash
# Usage (repo root, on the GPU machine): bash scripts/kernel_check/run.sh [check.py args]
OUT=${OUT:-/tmp/out}; mkdir -p $OUT
nvidia-smi -L
nvcc --version | tail -2
for f in csrc/*.cu; do
  nvcc -cubin -arch=sm_90 -std=c++17 -Xptxas -v -I csrc -o /tmp/$(basename $f .cu).cubin $f > $OUT/ptxas_$(basename $f .cu).txt 2>&1 || echo "NVCC FAIL $f"
done
cat $OUT/ptxas_*.txt | grep -E "error|warning" | head -30
echo "non-zero stack/spill lines (all files):"; cat $OUT/ptxas_*.txt | grep -E "stack frame" | grep -vE "^\s*ptxas info\s*:\s*0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads" | head
grep -hE "Compiling entry|registers|spill" $OUT/ptxas_attention.txt | paste - - - 2>/dev/null | sed 's/ptxas info    ://g' | cut -c1-220
set -o pipefail
PYTHONUNBUFFERED=1 python3 scripts/kernel_check/check.py "$@" 2>&1 | tee $OUT/log.txt | grep -vE "^PASS"
