#!/usr/bin/env bash
# Quality table (docs/training.md, the shape of the paper's Table 2): one
# paper size trained on real English text (scripts/real_text_corpus.py) at the
# shipped recipe of each mode, full rank against CompAct at several ranks and
# with the lean precision options, the same tokens for every run. Runs are
# started together: at these sizes one run leaves most of an H200 idle.
#
#   CORPUS=.carry/realtext.jsonl.xz SIZE=60m STEPS=2000 bash scripts/quality.sh
#
# Needs bin/compact (make gpu-build). Output: $OUT/quality-SIZE/*.jsonl and a
# table on stdout (validation loss and perplexity at the last step).
set -uo pipefail
OUT=${OUT:-out}; SIZE=${SIZE:-60m}; STEPS=${STEPS:-2000}
CORPUS=${CORPUS:-.carry/realtext.jsonl.xz}
DIR="$OUT/quality-$SIZE"; mkdir -p "$DIR"
export COMPACT_CACHE=${COMPACT_CACHE:-/tmp/compact-cache}
SHARDS=/tmp/realtext-shards
if [ ! -e $SHARDS/realtext_val_000000.bin ]; then
  python3 -c "import lzma,shutil,sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open('/tmp/realtext.jsonl','wb'))" "$CORPUS"
  bin/compact tokenize --out $SHARDS --tokenizer gpt2 --prefix realtext /tmp/realtext.jsonl | tee "$DIR/tokenize.txt"
fi
COMMON="--config configs/llama-$SIZE.yaml --device cuda --steps $STEPS --set train.grad_accum=1 --set train.micro_batch=64
  --set data.train=$SHARDS/realtext_train_*.bin --set data.val=$SHARDS/realtext_val_*.bin
  --set train.eval_every=500 --set train.eval_batches=16 --set train.log_every=100 --set train.checkpoint_every=100000"
declare -A RUNS=(
  [full]="--set compact.enabled=false"
  [r0.5]="--set compact.rank=0.5"
  [r0.25]="--set compact.rank=0.25"
  [r0.125]="--set compact.rank=0.125"
  [r0.25-sr]="--set compact.rank=0.25 --set train.weights=bf16_sr"
  [r0.25-sr-bf16]="--set compact.rank=0.25 --set train.weights=bf16_sr --set train.optimizer_state=bf16"
  [full-sr]="--set compact.enabled=false --set train.weights=bf16_sr"
  [r0.25-head]="--set compact.rank=0.25 --set compact.head=true"
  [r0.25-sr-bf16-head]="--set compact.rank=0.25 --set train.weights=bf16_sr --set train.optimizer_state=bf16 --set compact.head=true"
)
NAMES=${NAMES:-full r0.5 r0.25 r0.125}
for n in $NAMES; do
  rm -rf /tmp/q-$SIZE-$n
  timeout ${RUN_TIMEOUT:-3000} bin/compact pretrain $COMMON ${RUNS[$n]} --out /tmp/q-$SIZE-$n > "$DIR/$n.log" 2>&1 &
done
wait
for n in $NAMES; do cp /tmp/q-$SIZE-$n/metrics.jsonl "$DIR/$n.jsonl" 2>/dev/null; done
python3 - "$DIR" $NAMES <<'PY'
import json, math, sys
d, names = sys.argv[1], sys.argv[2:]
print(f"| run | lr | val loss | perplexity | tokens | tok/s |")
print("|---|---|---|---|---|---|")
for n in names:
    try:
        rows = [json.loads(l) for l in open(f"{d}/{n}.jsonl")]
    except OSError:
        print(f"| {n} | - | failed (see {n}.log) | | | |"); continue
    ev = [r for r in rows if "val_loss" in r]
    last = ev[-1] if ev else rows[-1]
    lr = max(r["lr"] for r in rows)
    vl = last.get("val_loss", float("nan"))
    tps = sum(r["tok_per_s"] for r in rows[-5:]) / min(5, len(rows))
    print(f"| {n} | {lr:g} | {vl:.4f} | {math.exp(vl):.2f} | {last['tokens']/1e6:.1f}M | {tps/1e3:.0f}k |")
PY
