#!/usr/bin/env bash
# Multi-GPU checks for issue 13, on the GPU machine. Build first:
#   make gpu-build   (bin/compact, bin/*.test; shards in .carry/data)
# Needs libnccl.so.2 (LD_LIBRARY_PATH or COMPACT_NCCL_LIB). Logs and runs go
# to $OUT (default out/multigpu). Prints a table last.
#  1. NCCL collectives against the host (1 or 2 GPUs), reduce-scatter,
#     all-gather and side-stream issue included, and the pipelined fused
#     update over a one-rank NCCL job against the synchronous one;
#  2. llama-60m: `--gpus 1` (through NCCL) vs the plain single-GPU path;
#  with >= 2 GPUs:
#  3. llama-350m, global batch 128, 50 steps: 2 GPUs x grad_accum 1 vs
#     1 GPU x grad_accum 2, CompAct and full rank: losses, tok/s, gradient
#     bytes of the block weights; then the fused update with and without
#     overlap (train.overlap_comm) and with train.zero 0 and 1: tok/s;
#  4. kill -9 of rank 1 mid-run stops rank 0; --resume finishes the run.
set -uo pipefail
OUT=${OUT:-out/multigpu}
STEPS=${STEPS:-50}
mkdir -p "$OUT"
export COMPACT_CACHE=${COMPACT_CACHE:-/tmp/compact-cache}
NGPU=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
echo "GPUs: $NGPU"
DATA=${DATA:-}
if [ -z "$DATA" ] && ls .carry/data/train_*.bin >/dev/null 2>&1; then
  DATA="--set data.train=.carry/data/train_*.bin --set data.val=.carry/data/val_*.bin"
fi
declare -a rows
row() { rows+=("$(printf '%-44s %s' "$1" "$2")"); }

# Compare two metrics.jsonl: max relative loss difference, mean tok/s of
# steps after the first 10, and the last line's block all-reduce bytes.
cmp_py='
import json, sys
def load(p): return [json.loads(l) for l in open(p)]
a, b = load(sys.argv[1]), load(sys.argv[2])
n = min(len(a), len(b))
d = max(abs(x["loss"] - y["loss"]) / abs(x["loss"]) for x, y in zip(a[:n], b[:n]))
def tps(m):
    v = [x["tok_per_s"] for x in m if x["step"] > 10]
    return sum(v) / len(v) if v else float("nan")
print(f"{d:.2e} {tps(a):.0f} {tps(b):.0f} {len(a)} {len(b)}")
'
bytes_py='
import json, sys
c = json.loads(open(sys.argv[1]).readlines()[-1]).get("comm") or {}
print(c.get("allreduce_block_compressed_bytes", 0) + c.get("allreduce_block_full_bytes", 0),
      c.get("allreduce_bytes", 0) + c.get("reduce_scatter_bytes", 0), c.get("allgather_bytes", 0))
'

# 1. collectives
if bin/dist.test -test.v -test.run 'NCCL' >"$OUT/nccl-test.log" 2>&1 && bin/gpu.test -test.v -test.run 'TestNCCLDeviceComm' >>"$OUT/nccl-test.log" 2>&1; then r=PASS; else r=FAIL; fi
row "nccl collectives vs host" "$r ($(grep -o 'SKIP.*' "$OUT/nccl-test.log" | head -1))"
if bin/train.test -test.v -test.run TestCUDANCCLPipelinedFusedStep >"$OUT/pipelined-test.log" 2>&1; then r=PASS; else r=FAIL; fi
row "pipelined fused update (NCCL, 1 rank)" "$r ($(grep -o 'SKIP.*' "$OUT/pipelined-test.log" | head -1))"

# 2. --gpus 1 vs plain
common60="--config configs/llama-60m.yaml --device cuda --steps 30 --set train.grad_accum=1 --set train.log_every=1 --set train.eval_every=0 --set train.checkpoint_every=0 $DATA"
bin/compact pretrain $common60 --out "$OUT/60m-plain" --overwrite >"$OUT/60m-plain.log" 2>&1
bin/compact pretrain $common60 --gpus 1 --out "$OUT/60m-gpus1" --overwrite >"$OUT/60m-gpus1.log" 2>&1
read -r d _ _ _ _ < <(python3 -c "$cmp_py" "$OUT/60m-plain/metrics.jsonl" "$OUT/60m-gpus1/metrics.jsonl" 2>/dev/null || echo "nan")
row "60m --gpus 1 vs plain: max rel loss diff" "$d (want 0: same kernels, NCCL sum of one)"

if [ "$NGPU" -ge 2 ]; then
  # 3. 350m global batch 128 = 64 x 2 on one GPU = 64 x 1 x 2 GPUs.
  common350="--config configs/llama-350m.yaml --device cuda --steps $STEPS --set train.micro_batch=64 --set train.log_every=1 --set train.eval_every=0 --set train.checkpoint_every=0 $DATA"
  for mode in true false; do
    name=$([ $mode = true ] && echo compact || echo full)
    bin/compact pretrain $common350 --set compact.enabled=$mode --set train.grad_accum=2 --out "$OUT/350m-$name-1gpu" --overwrite >"$OUT/350m-$name-1gpu.log" 2>&1
    bin/compact pretrain $common350 --set compact.enabled=$mode --set train.grad_accum=1 --gpus 2 --out "$OUT/350m-$name-2gpu" --overwrite >"$OUT/350m-$name-2gpu.log" 2>&1
    read -r d t1 t2 _ _ < <(python3 -c "$cmp_py" "$OUT/350m-$name-1gpu/metrics.jsonl" "$OUT/350m-$name-2gpu/metrics.jsonl" 2>/dev/null || echo "nan nan nan")
    row "350m $name: max rel loss diff 2 GPU vs 1" "$d (bf16 tolerance: want < 1e-2)"
    row "350m $name: tok/s 1 GPU, 2 GPUs, ratio" "$t1 $t2 $(python3 -c "print(f'{$t2/$t1:.2f}x (want >= 1.85)')" 2>/dev/null)"
    read -r blk tot ag < <(python3 -c "$bytes_py" "$OUT/350m-$name-2gpu/metrics.jsonl" 2>/dev/null || echo "0 0 0")
    eval "blk_$name=$blk"
    row "350m $name: gradient bytes/step block, all; all-gather" "$blk $tot $ag"
  done
  row "CompAct / full block gradient bytes" "$(python3 -c "print(f'{$blk_compact/$blk_full:.3f} (want 0.54 at compact.rank 0.5)')" 2>/dev/null)"

  # 3b. Fused update (grad_clip 0): the reduction overlapped with backward
  # or not, the state sharded (reduce-scatter + all-gather) or not.
  for zero in 0 1; do
    for ov in false true; do
      tag="350m-compact-fused-zero$zero-overlap-$ov"
      bin/compact pretrain $common350 --set train.grad_accum=1 --set train.fused_update=true --set train.grad_clip=0 \
        --set train.zero=$zero --set train.overlap_comm=$ov --gpus 2 --out "$OUT/$tag" --overwrite >"$OUT/$tag.log" 2>&1
      read -r _ t _ _ _ < <(python3 -c "$cmp_py" "$OUT/$tag/metrics.jsonl" "$OUT/$tag/metrics.jsonl" 2>/dev/null || echo "nan nan")
      row "350m compact fused zero $zero overlap $ov: tok/s" "$t"
    done
  done

  # 4. kill -9 rank 1 after the step-10 checkpoint, then resume.
  run="$OUT/350m-kill"
  killargs="$common350 --set train.grad_accum=1 --set train.checkpoint_every=10 --steps 30 --gpus 2 --out $run"
  bin/compact pretrain $killargs --overwrite >"$OUT/kill.log" 2>&1 &
  launcher=$!
  for _ in $(seq 600); do [ -d "$run/checkpoints/step-0000010" ] && break; sleep 1; done
  victim=$(pgrep -P "$launcher" | sed -n 2p)   # the second child: rank 1
  kill -9 "$victim"
  t0=$SECONDS
  wait "$launcher"; code=$?
  row "kill -9 rank 1: launcher exit, seconds to stop" "$code $((SECONDS - t0)) (want non-zero, seconds)"
  if bin/compact pretrain $killargs --resume >"$OUT/resume.log" 2>&1; then r=PASS; else r=FAIL; fi
  row "--resume after kill -9" "$r, last step $(tail -1 "$run/metrics.jsonl" | python3 -c 'import json,sys; print(json.load(sys.stdin)["step"])')"
fi

echo
printf '%s\n' "${rows[@]}"
