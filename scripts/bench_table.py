#!/usr/bin/env python3
"""Same-lease ratio table for scripts/bench.sh (issue: fast CompAct).

Reads DIR/compact-SIZE.json (modes full and compact), DIR/compact-lean-SIZE.json
(CompAct with the lean options of LEAN in bench.sh) and DIR/torch.json, and
prints tok/s and peak GiB per recipe, then the ratios the targets are stated in.

usage: bench_table.py DIR [SIZES...]
"""
import json
import os
import sys


def load(path):
    try:
        return json.load(open(path))
    except (OSError, ValueError):
        return []


def main():
    d = sys.argv[1]
    sizes = sys.argv[2:] or ["60m", "130m", "350m", "1b"]
    torch = {(r.get("size"), r.get("mode")): r for r in load(os.path.join(d, "torch.json"))}
    cols = ["CompAct r=0.25", "full rank", "CompAct lean", "torch.compile", "compile+ckpt"]
    rows = []
    for s in sizes:
        c = {}
        for r in load(os.path.join(d, f"compact-{s}.json")):
            c["full rank" if r["name"].endswith(" full") else "CompAct r=0.25"] = r
        for r in load(os.path.join(d, f"compact-lean-{s}.json")):
            c["CompAct lean"] = r
        if (s, "compile") in torch:
            c["torch.compile"] = torch[(s, "compile")]
        if (s, "compile_ckpt") in torch:
            c["compile+ckpt"] = torch[(s, "compile_ckpt")]
        rows.append((s, c))

    def cell(r):
        return f"{r['tok_per_s'] / 1e3:.1f}k, {r['peak_bytes'] / 2**30:.2f}" if r else "-"

    print("| model | " + " | ".join(cols) + " |")
    print("|---" * (len(cols) + 1) + "|")
    for s, c in rows:
        print(f"| {s} | " + " | ".join(cell(c.get(k)) for k in cols) + " |")

    def ratio(c, a, b):
        if a in c and b in c:
            return f"{c[a]['tok_per_s'] / c[b]['tok_per_s']:.2f}x"
        return "-"

    print()
    print("| model | CompAct / full | CompAct / compile | lean / compile+ckpt | lean / full | lean peak GiB |")
    print("|---|---|---|---|---|---|")
    for s, c in rows:
        lean = c.get("CompAct lean")
        print(f"| {s} | {ratio(c, 'CompAct r=0.25', 'full rank')} | {ratio(c, 'CompAct r=0.25', 'torch.compile')} | "
              f"{ratio(c, 'CompAct lean', 'compile+ckpt')} | {ratio(c, 'CompAct lean', 'full rank')} | "
              f"{lean['peak_bytes'] / 2**30:.2f} |" if lean else
              f"| {s} | {ratio(c, 'CompAct r=0.25', 'full rank')} | {ratio(c, 'CompAct r=0.25', 'torch.compile')} | - | - | - |")


if __name__ == "__main__":
    main()
