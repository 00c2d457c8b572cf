#!/usr/bin/env bash
# The recipe study (docs/training.md): validation loss of CompAct and full
# rank on real text that is not the default corpus, per size, budget and
# learning rate, every run of a cell seeing the same tokens in the same order.
# One command runs the whole grid on the GPU machine and prints the table:
#
#   bash scripts/quality.sh                       # every cell (hours)
#   CELLS="realtext:130m:2000" bash scripts/quality.sh
#   CELLS="realtext:60m:2000" GRID="f:2e-3 c:3e-3 c:3e-3:r0.25" bash scripts/quality.sh
#   CELLS="realtext:60m:2000=f:2e-3,c:cfg prose:130m:2000=f:1e-3,c:cfg" bash scripts/quality.sh
#
# A cell is CORPUS:SIZE:STEPS. A run is MODE:LR[:OPTION...]: MODE c (CompAct,
# compact.lr = LR) or f (full rank, train.lr = LR), LR "cfg" for the shipped
# config's own rate; options r0.25 (compact.rank), w100 (warmup steps), g50
# (update_gap), master / bf16sr (train.weights), o0.5 (o_proj_scale), clip1,
# i8 / mbf16 (train.optimizer_state int8 / bf16), acc4 (the same 64 sequences
# a step as 16 x 4 accumulated, fused update), stop (train.on_instability).
# A cell's runs are GRID, or those after its '=', or the default sweep below. Every other setting is
# the shipped configs/llama-SIZE.yaml, one micro-batch of 64 x 256 per step
# (EXTRA adds --set flags to every run).
#
# Corpora (both built from package registries, carried as .carry/*.jsonl.xz):
#   realtext  scripts/real_text_corpus.py: five Debian documentation packages (90.9 MB)
#   prose     scripts/prose_corpus.py: State of the Union addresses, Moby-Dick and
#             SpamAssassin ham mail from npm (17.6 MB)
#
# The runs of a cell start together on one GPU (at these sizes one run leaves
# most of it idle): their tok/s is a share of the machine and says nothing
# about speed. Needs bin/compact (make gpu-build). Output: the table on
# stdout, and $OUT/quality.tgz with every run's metrics.jsonl and log.
set -uo pipefail
OUT=${OUT:-out}; mkdir -p "$OUT"
WORK=${WORK:-/tmp/quality}; mkdir -p "$WORK"
export COMPACT_CACHE=${COMPACT_CACHE:-/tmp/compact-cache}
CELLS=${CELLS:-"realtext:60m:2000 realtext:130m:2000 realtext:350m:2000 realtext:60m:8000 realtext:130m:8000 prose:60m:2000 prose:130m:2000"}
SWEEP="f:5e-4 f:1e-3 f:2e-3 f:3e-3 c:1e-3 c:2e-3 c:3e-3 c:5e-3 c:1e-2 c:cfg c:cfg:r0.25"
declare -A VALFRAC=([realtext]=0.01 [prose]=0.05)

shards() { # corpus -> shard directory, tokenized once
  local c=$1 d=$WORK/shards-$1
  if [ ! -e "$d/${c}_val_000000.bin" ]; then
    python3 -c "import lzma,shutil,sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2],'wb'))" \
      ".carry/$c.jsonl.xz" "$WORK/$c.jsonl" || return 1
    mkdir -p "$WORK/runs" && sha256sum "$WORK/$c.jsonl" > "$WORK/runs/corpus-$c.sha256"  # the corpus drifts with Debian
    bin/compact tokenize --out "$d" --tokenizer gpt2 --prefix "$c" --val-fraction "${VALFRAC[$c]}" "$WORK/$c.jsonl" >&2 || return 1
  fi
  echo "$d"
}

flags() { # run spec -> --set flags
  local IFS=: ; set -- $1
  local mode=$1 lr=$2; shift 2
  if [ "$mode" = f ]; then echo -n "--set compact.enabled=false"; [ "$lr" != cfg ] && echo -n " --set train.lr=$lr"
  else [ "$lr" != cfg ] && echo -n " --set compact.lr=$lr"; fi
  for o in "$@"; do case $o in
    r*) echo -n " --set compact.rank=${o#r}" ;;
    w*) echo -n " --set train.warmup_steps=${o#w}" ;;
    g*) echo -n " --set compact.update_gap=${o#g}" ;;
    o*) echo -n " --set compact.o_proj_scale=${o#o}" ;;
    master) echo -n " --set train.weights=master" ;;
    bf16sr) echo -n " --set train.weights=bf16_sr" ;;
    clip*) echo -n " --set train.grad_clip=${o#clip}" ;;
    i8) echo -n " --set train.optimizer_state=int8" ;;
    mbf16) echo -n " --set train.optimizer_state=bf16" ;;
    acc4) echo -n " --set train.micro_batch=16 --set train.grad_accum=4 --set train.fused_update=true --set train.eval_batches=64" ;;  # eval reads micro-batches: 64 x 16 = the same 1024 sequences
    stop) echo -n " --set train.on_instability=stop" ;;
    *) echo "unknown run option $o" >&2; return 1 ;;
  esac; done
}

for cellspec in $CELLS; do
  cell=${cellspec%%=*}; grid=${GRID:-$SWEEP}
  [ "$cell" != "$cellspec" ] && grid=${cellspec#*=} && grid=${grid//,/ }
  IFS=: read -r corpus size steps <<< "$cell"
  d=$(shards "$corpus") || { echo "cell $cell: no shards" >&2; continue; }
  cdir=$WORK/runs/$corpus-$size-$steps; mkdir -p "$cdir"
  cfg=configs/llama-$size.yaml; [ "$size" = tiny ] && cfg=configs/tiny.yaml  # tiny: a CPU check of this script
  common="--config $cfg --device ${DEVICE:-cuda} --steps $steps --set train.grad_accum=1 --set train.micro_batch=64
    --set data.train=$d/${corpus}_train_*.bin --set data.val=$d/${corpus}_val_*.bin
    --set train.eval_every=$((steps / 4)) --set train.eval_batches=16 --set train.log_every=10 --set train.checkpoint_every=0"
  for run in $grid; do
    name=${run//:/_}; f=$(flags "$run") || exit 2
    rm -rf "$cdir/$name"
    timeout "${RUN_TIMEOUT:-36000}" bin/compact pretrain $common $f ${EXTRA:-} --out "$cdir/$name" > "$cdir/$name.log" 2>&1 &
  done
  [ -z "${PARALLEL_CELLS:-}" ] && wait  # PARALLEL_CELLS=1 starts every cell at once
done
wait
tar czf "$OUT/quality.tgz" -C "$WORK" --exclude='*/checkpoints' runs 2>/dev/null
python3 scripts/quality_table.py "$WORK/runs"
