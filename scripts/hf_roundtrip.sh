#!/usr/bin/env bash
# Round trip between compact and HuggingFace transformers (needs python3
# with torch and transformers, and bin/compact from `make gpu-build`):
# a tiny random LlamaForCausalLM saved by transformers in fp32 and bf16 is
# evaluated by compact (same loss), fine-tuned by compact (causal and
# classify), and the results are loaded back by transformers, which must
# reproduce compact's reported losses. Prints a table last; exit 1 on a
# mismatch.
set -euo pipefail
cd "$(dirname "$0")/.."
WORK="${1:-${OUT:-/tmp}/hf_roundtrip}"
exec python3 scripts/hf_roundtrip.py --bin bin/compact --work "$WORK"
