#!/usr/bin/env bash
# ab_tg.sh - decode tokens/s of several builds of quantbench, alternating, so
# clock and thermal drift fall on all of them alike: the A/B behind the
# tuning comments in kernels/gemv_mma.cu.
#
# usage: bench/ab_tg.sh ROUNDS "SCHEME..." QUANTBENCH...
#   e.g. bench/ab_tg.sh 2 "int4 nvfp4" /tmp/a/quantbench build-cuda/quantbench
# Env: MODEL8B (default /tmp/qb-synth-llama-3.1-8b: the 8B shape from
# `quantbench synth --like bench/llama-3.1-8b`). Each figure: tg128 mean of 3
# repetitions (-p 16 -n 128 -r 3) and its roofline fraction.
set -u
ROUNDS=${1:?usage: ab_tg.sh ROUNDS "SCHEME..." QUANTBENCH...}
SCHEMES=${2:?usage: ab_tg.sh ROUNDS "SCHEME..." QUANTBENCH...}
shift 2
[ $# -ge 1 ] || { echo "ab_tg: give at least one quantbench binary" >&2; exit 2; }
MODEL8B=${MODEL8B:-/tmp/qb-synth-llama-3.1-8b}
[ -f "$MODEL8B/model.safetensors.index.json" ] ||
    { echo "ab_tg: no checkpoint at $MODEL8B (quantbench synth --like bench/llama-3.1-8b --out $MODEL8B)" >&2; exit 2; }
tg() {
    timeout 200 "$1" bench "$MODEL8B" --scheme "$2" -p 16 -n 128 -r 3 --backend cuda --json 2>/dev/null |
        python3 -c 'import json, sys
try:
    r = json.load(sys.stdin)
    print("%.1f (%.1f%%)" % (r["tg_tps_mean"], 100 * r["roofline_fraction"]))
except Exception as e:
    print("failed")'
}
for round in $(seq "$ROUNDS"); do
    for s in $SCHEMES; do
        line="round $round $s:"
        for qb in "$@"; do
            line="$line $qb $(tg "$qb" "$s") |"
        done
        echo "$line"
    done
done
