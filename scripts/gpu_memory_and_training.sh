#!/usr/bin/env bash
# On the GPU machine after `make gpu-build`: memreport predictions against
# measured peaks for the paper's sizes (micro-batch 16 and 64, full rank and
# CompAct r=0.25), the largest-micro-batch check, and a short real-text run
# of every size with CompAct on and off. Outputs in $OUT.
set -uo pipefail
OUT=${OUT:-out/gpu-mem}; mkdir -p "$OUT"
export COMPACT_CACHE=/tmp/compact-cache
DATA="--set data.train=.carry/data/train_*.bin --set data.val=.carry/data/val_*.bin"
for s in 60m 130m 350m 1b; do
  for b in 16 64; do
    echo "== llama-$s micro-batch $b"
    bin/compact memreport --config configs/llama-$s.yaml --device cuda --batch $b --variants full+none,r0.25+none \
      --measure --json > "$OUT/mem-$s-b$b.json" || echo "memreport $s $b FAILED"
    python3 - "$OUT/mem-$s-b$b.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
for row in r["rows"]:
    print(f'{row["variant"]["name"]:14s} predicted {row["predicted_bytes"]["total"]/2**30:7.3f} GiB  measured {row["measured_bytes"]["total"]/2**30:7.3f} GiB  error {row["error_percent"]:+.2f}%  driver {row["driver_used_bytes"]/2**30:7.3f} GiB')
PY
  done
done | tee "$OUT/memreport.txt"
bin/compact memreport --config configs/llama-350m.yaml --device cuda --variants full,r0.25 --plot "$OUT/memreport-350m.png" > "$OUT/memreport-350m.txt"
# Largest micro-batch under a 24 GiB limit: it must run, the next must not fit.
bin/compact memreport --config configs/llama-350m.yaml --device cuda --memory 24GiB --variants r0.25+none --json > "$OUT/maxb.json"
MAXB=$(python3 -c "import json;print(json.load(open('$OUT/maxb.json'))['rows'][0]['max_micro_batch'])")
echo "llama-350m r0.25 largest micro-batch under 24 GiB (1 GiB reserve): $MAXB" | tee "$OUT/maxbatch.txt"
for b in $MAXB $((MAXB+1)); do
  bin/compact memreport --config configs/llama-350m.yaml --device cuda --memory 24GiB --batch $b --variants r0.25+none --measure \
    | grep -E "r0.25\+none" | head -1 | sed "s/^/batch $b: /" | tee -a "$OUT/maxbatch.txt"
done
for s in 60m 130m 350m 1b; do
  for mode in true false; do
    bin/compact pretrain --config configs/llama-$s.yaml --device cuda --steps ${STEPS:-60} --set train.grad_accum=1 \
      --set train.log_every=10 --set train.eval_every=0 --set train.eval_batches=4 --set train.checkpoint_every=0 \
      --set train.warmup_steps=10 --set compact.enabled=$mode $DATA --out /tmp/run-$s-$mode > "$OUT/train-$s-$mode.log" 2>&1 \
      || echo "train $s $mode FAILED"
    python3 - /tmp/run-$s-$mode/metrics.jsonl $s $mode <<'PY' | tee -a "$OUT/training.txt"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
f, l = rows[0], rows[-1]
print(f'llama-{sys.argv[2]} compact={sys.argv[3]}: loss {f["loss"]:.3f} (step {f["step"]}) -> {l["loss"]:.3f} (step {l["step"]}), val {l.get("val_loss", float("nan")):.3f}, {l["tok_per_s"]:.0f} tok/s, peak {l["peak_bytes"]/2**30:.2f} GiB')
PY
  done
done
echo "== summary"; cat "$OUT/memreport.txt" "$OUT/maxbatch.txt" "$OUT/training.txt"
