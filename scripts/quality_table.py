#!/usr/bin/env python3
"""The recipe study's table (scripts/quality.sh): per cell (corpus, size,
steps), every run's validation loss at each evaluation, the final one against
the best full-rank run of the cell, and the training-health events the run
recorded. Usage: quality_table.py RUNS_DIR"""
import json
import pathlib
import sys


def load(run):
    rows = []
    try:
        for line in open(run / "metrics.jsonl"):
            rows.append(json.loads(line))
    except OSError:
        return None
    return rows


def describe(name):
    parts = name.split("_")
    mode = "full" if parts[0] == "f" else "CompAct"
    return mode, parts[1], " ".join(parts[2:])


def main():
    root = pathlib.Path(sys.argv[1])
    for sha in sorted(root.glob("corpus-*.sha256")):
        digest, path = sha.read_text().split()[:2]
        print(f"corpus {pathlib.Path(path).name}: sha256 {digest}")
    for cell in sorted(p for p in root.iterdir() if p.is_dir()):
        runs = {}
        for log in sorted(cell.glob("*.log")):
            runs[log.stem] = load(cell / log.stem)
        finals = {}
        for n, rows in runs.items():
            ev = [r for r in rows or [] if "val_loss" in r]
            if ev:
                finals[n] = ev[-1]["val_loss"]
        full = {n: v for n, v in finals.items() if n.startswith("f_")}
        best = min(full.values()) if full else None
        print(f"\n## {cell.name}" + (f" (best full rank {best:.4f})" if best else ""))
        print("| mode | lr | options | val loss at each eval | final | vs best full | peak lr | health |")
        print("|---|---|---|---|---|---|---|---|")
        order = sorted(runs, key=lambda n: (n[0] != "f", n.count("_"), n))
        for n in order:
            rows = runs[n]
            mode, lr, opts = describe(n)
            if not rows:
                print(f"| {mode} | {lr} | {opts} | failed (see {n}.log) | | | | |")
                continue
            ev = [r for r in rows if "val_loss" in r]
            curve = " / ".join(f"{r['val_loss']:.3f}" for r in ev)
            fin = finals.get(n)
            rel = f"{(fin / best - 1) * 100:+.1f}%" if fin and best else ""
            events = [e for r in rows for e in r.get("health", [])]
            health = f"{len(events)}: first at step {events[0]['step']} ({events[0]['kind']})" if events else "-"
            last = rows[-1]["step"]
            fin_s = f"{fin:.4f}" if fin else f"(stopped at {last})"
            peak = max(r["lr"] for r in rows)
            print(f"| {mode} | {lr} | {opts} | {curve} | {fin_s} | {rel} | {peak:.3g} | {health} |")


if __name__ == "__main__":
    main()
