#!/usr/bin/env bash
# cpu_speed.sh: CPU tokens/s of configs/tiny.yaml, this checkout against a
# base revision, measured interleaved (A B A B ...) in one window so that
# load from other processes hits both alike. Prints every run, then the
# median and best of each and their ratios.
#
#   scripts/cpu_speed.sh [BASE_REV] [ROUNDS] [STEPS]   (defaults 794356f 5 10)
#
# Uses --device cpu and the config's thread setting (all cores).
set -euo pipefail
base=${1:-794356f}
rounds=${2:-5}
steps=${3:-10}
root=$(git rev-parse --show-toplevel)
work=$(mktemp -d)
trap 'git -C "$root" worktree remove --force "$work/base" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT

git -C "$root" worktree add -q --detach "$work/base" "$base"
(cd "$work/base" && CGO_ENABLED=0 go build -o "$work/compact-base" ./cmd/compact)
(cd "$root" && CGO_ENABLED=0 go build -o "$work/compact-head" ./cmd/compact)

run() { # binary -> tok/s
	"$1" bench --config "$root/configs/tiny.yaml" --device cpu --modes compact \
		--steps "$steps" --warmup 2 --json "$work/r.json" >/dev/null
	sed -n 's/.*"tok_per_s": *\([0-9.e+]*\).*/\1/p' "$work/r.json" | head -1
}
: >"$work/base.txt"
: >"$work/head.txt"
for i in $(seq "$rounds"); do
	b=$(run "$work/compact-base"); echo "$b" >>"$work/base.txt"
	h=$(run "$work/compact-head"); echo "$h" >>"$work/head.txt"
	printf 'round %d: base %8.0f tok/s   head %8.0f tok/s\n' "$i" "$b" "$h"
done
stats() { sort -g "$1" | awk '{v[NR]=$1} END {m=(NR%2)?v[(NR+1)/2]:(v[NR/2]+v[NR/2+1])/2; printf "%.0f %.0f\n", m, v[NR]}'; }
read -r bm bx < <(stats "$work/base.txt")
read -r hm hx < <(stats "$work/head.txt")
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) CPUs"
printf 'base %s: median %s tok/s, best %s\n' "$base" "$bm" "$bx"
printf 'head %s: median %s tok/s, best %s\n' "$(git -C "$root" rev-parse --short HEAD)" "$hm" "$hx"
awk -v a="$hm" -v b="$bm" -v c="$hx" -v d="$bx" 'BEGIN {printf "ratio: median %.2fx, best %.2fx\n", a/b, c/d}'
