#!/usr/bin/env python3
"""Tokenize throughput of HuggingFace `tokenizers` on the file that
scripts/tokenize_bench.sh times `compact tokenize` on, for
docs/benchmarks.md: GPT-2 BPE from the tokenizer.json our checkpoints carry
(no download), the JSONL's "text" fields encoded with encode_batch on every
core (RAYON_NUM_THREADS to change it), MB/s of text. It prints the token
count with one EOT per document, which should equal compact's.

usage: python3 scripts/tokenize_bench_hf.py TOKENIZER_JSON CORPUS_JSONL [BATCH]
"""
import json
import os
import sys
import time


def main():
    from tokenizers import Tokenizer
    import tokenizers
    tok_path, corpus = sys.argv[1], sys.argv[2]
    batch = int(sys.argv[3]) if len(sys.argv) > 3 else 1024
    tok = Tokenizer.from_file(tok_path)
    with open(corpus, encoding="utf-8") as f:
        docs = [json.loads(line)["text"] for line in f if line.strip()]
    docs = [d for d in docs if d]
    nbytes = sum(len(d.encode()) for d in docs)
    tok.encode_batch(docs[:64], add_special_tokens=False)  # warm up the thread pool
    start = time.perf_counter()
    tokens = 0
    for i in range(0, len(docs), batch):
        for e in tok.encode_batch(docs[i:i + batch], add_special_tokens=False):
            tokens += len(e.ids) + 1  # and an EOT, as compact appends
    secs = time.perf_counter() - start
    print("tokenizers %s, %d threads: %d documents, %.1f MB of text in %.2f s: %.1f MB/s; %d tokens (EOT included)" % (
        tokenizers.__version__, int(os.environ.get("RAYON_NUM_THREADS", os.cpu_count())), len(docs),
        nbytes / 1e6, secs, nbytes / 1e6 / secs, tokens))


if __name__ == "__main__":
    main()
