#!/usr/bin/env python3
"""Reduce metrics.jsonl files of real GPU runs (scripts/quality.sh) to the
fields the training-health guard reads (step, loss, grad_norm, val_loss),
for the replay test internal/train/health_replay_test.go.

Usage: health_testdata.py OUT_DIR NAME=RUN_DIR/metrics.jsonl ..."""
import json
import pathlib
import sys

out = pathlib.Path(sys.argv[1])
for arg in sys.argv[2:]:
    name, path = arg.split("=", 1)
    with open(path) as f, open(out / f"{name}.jsonl", "w") as w:
        for line in f:
            r = json.loads(line)
            keep = {k: r[k] for k in ("step", "loss", "grad_norm", "val_loss") if k in r}
            w.write(json.dumps(keep, separators=(",", ":")) + "\n")
