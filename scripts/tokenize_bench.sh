#!/usr/bin/env bash
# Tokenize throughput (docs/benchmarks.md): MB/s of text through
# `compact tokenize --tokenizer gpt2` on every core of this machine, on a
# JSONL corpus made from the Go distribution's sources (one document per
# file, about 32 MB). It also leaves what scripts/tokenize_bench_hf.py needs
# to time HuggingFace `tokenizers` on the same file elsewhere: the corpus
# and GPT-2's tokenizer.json as our checkpoints carry it (from a one-step
# run on the shards just made).
#
# usage: scripts/tokenize_bench.sh [OUT] (default out/tokbench); then carry
# OUT/corpus.jsonl and OUT/tokenizer.json and run
#   python3 scripts/tokenize_bench_hf.py OUT/tokenizer.json OUT/corpus.jsonl
set -euo pipefail
OUT=${1:-out/tokbench}
MB=${MB:-32}
mkdir -p "$OUT"
make -s build
B=bin/compact
GOROOT=$(go env GOROOT)
python3 - "$GOROOT" "$OUT/corpus.jsonl" "$MB" <<'PY'
import json, os, sys
root, out, mb = sys.argv[1], sys.argv[2], int(sys.argv[3])
n = 0
with open(out, "w", encoding="utf-8") as f:
    for d, _, files in sorted(os.walk(os.path.join(root, "src"))):
        for name in sorted(files):
            if not name.endswith((".go", ".s", ".md", ".txt")):
                continue
            try:
                text = open(os.path.join(d, name), encoding="utf-8").read()
            except (UnicodeDecodeError, OSError):
                continue
            f.write(json.dumps({"text": text}) + "\n")
            n += len(text.encode())
            if n >= mb << 20:
                sys.exit(0)
PY
echo "corpus: $(du -h "$OUT/corpus.jsonl" | cut -f1) in $OUT/corpus.jsonl; $(nproc) cores ($(lscpu | sed -n 's/^Model name: *//p'))"
rm -rf "$OUT/shards"
$B tokenize --tokenizer gpt2 --val-fraction 0.01 --out "$OUT/shards" "$OUT/corpus.jsonl"
# GPT-2's tokenizer.json as a checkpoint carries it: one step of a small
# model on these shards.
rm -rf "$OUT/run"
$B pretrain --config builtin:tiny.yaml --device cpu --steps 1 --out "$OUT/run" \
  --set data.tokenizer=gpt2 --set model.vocab_size=50304 --set train.micro_batch=2 \
  --set "data.train=$OUT/shards/train_*.bin" --set "data.val=$OUT/shards/val_*.bin" > /dev/null 2>&1
cp "$OUT/run/checkpoints/step-0000001/tokenizer.json" "$OUT/tokenizer.json"
python3 - "$OUT/shards/tokenize.json" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
print("compact tokens (EOT included): %d in %d documents" % (m["train_tokens"] + m["val_tokens"], m["documents"]))
PY
