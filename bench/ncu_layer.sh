#!/usr/bin/env bash
# ncu_layer.sh - where a decode layer's time goes: Nsight Compute on the first
# four tensor-core GEMV launches of a decode (q|k|v, o, gate/up, down of layer
# 0) of the Llama-3.1-8B shape, for each scheme given.
#
# usage: bench/ncu_layer.sh [SCHEME...]   (default: int4 nvfp4 nf4)
# Env: BUILD (default build-cuda), MODEL8B (default /tmp/qb-synth-llama-3.1-8b,
# written by bench/run_gpu.sh's synth step if missing), OUT (default
# /tmp/qb-ncu-out; the full ncu reports land there).
# ncu replays each kernel alone at its base clock with cold caches, so its
# durations exceed those inside the decode graph (no PDL overlap); the ratios
# it prints (DRAM busy, occupancy, cycles between a warp's instructions) are
# what to read. Prints the summary lines of each kernel.
set -u
BUILD=${BUILD:-build-cuda}
MODEL8B=${MODEL8B:-/tmp/qb-synth-llama-3.1-8b}
OUTDIR=${OUT:-/tmp/qb-ncu-out}
NCU=$(command -v ncu || ls /usr/local/cuda*/bin/ncu 2>/dev/null | head -1)
[ -n "$NCU" ] || { echo "ncu_layer: ncu not found (Nsight Compute, part of the CUDA toolkit)" >&2; exit 2; }
[ -x "$BUILD/quantbench" ] || { echo "ncu_layer: no quantbench in '$BUILD' (build first or set BUILD)" >&2; exit 2; }
mkdir -p "$OUTDIR"
if [ ! -f "$MODEL8B/model.safetensors.index.json" ]; then
    "$BUILD/quantbench" synth --like bench/llama-3.1-8b \
        --tokenizer tests/data/ref-llama-10m/tokenizer.json --out "$MODEL8B" | tail -1
fi
nvidia-smi --query-gpu=name,driver_version --format=csv,noheader
for s in "${@:-int4 nvfp4 nf4}"; do
    for scheme in $s; do
        echo "=== $scheme"
        timeout 300 "$NCU" -k regex:gemv_mma --launch-count 4 --section SpeedOfLight \
            --section Occupancy --section WarpStateStats --section LaunchStats \
            "$BUILD/quantbench" bench "$MODEL8B" --scheme "$scheme" -p 16 -n 2 -r 1 --backend cuda \
            > "$OUTDIR/ncu-$scheme.txt" 2>&1 || echo "ncu exit $? (see $OUTDIR/ncu-$scheme.txt)"
        grep -E "gemv_mma|Duration|DRAM Throughput|Memory Throughput|Registers Per|Grid Size|Achieved Occ|Theoretical Occ|Warp Cycles Per Issued|stalled" \
            "$OUTDIR/ncu-$scheme.txt" | sed 's/  */ /g' | cut -c1-200
    done
done
