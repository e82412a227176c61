#!/usr/bin/env bash
# gptq_gpu.sh - issue 5's calibration target on the H100: GPTQ int4 g128 of the
# Llama-3.1-8B shape with 128 x 2048 calibration tokens, on the GPU, in under
# 5 minutes.
#
# Builds nothing: it expects a CUDA build of this tree in $BUILD (default
# build-cuda). Steps:
#   1. the GPU and the GPU-GPTQ test suite (tests/test_cuda_gptq.c) unless
#      SKIP_TESTS=1;
#   2. `quantbench synth` of the 8B shape into $MODEL8B unless it is there
#      (shared with bench/run_gpu.sh; random weights are exact for timing);
#   3. `quantbench quantize --scheme gptq-int4 --backend cuda` timed, with
#      nvidia-smi polled every 0.5 s for the peak GPU memory in use, and our
#      own figures (peak RSS, peak GPU memory by cudaMemGetInfo, calib device);
#   4. a summary: wall time vs the 300 s target, peak GPU memory, peak RSS, the
#      per-layer reconstruction errors (GPTQ below RTN on every linear?).
# The quantized checkpoint (~5.7 GB) is written to $QOUT and removed at the
# end unless KEEP=1. Raw outputs go to $OUT (or /tmp/qb-gptq-gpu-out).
# One device command may run 10 minutes: if the synth step is not cached yet,
# run with STEPS=synth first, then again (the machine keeps /tmp while warm).
set -u
BUILD=${BUILD:-build-cuda}
OUTDIR=${OUT:-/tmp/qb-gptq-gpu-out}
MODEL8B=${MODEL8B:-/tmp/qb-synth-llama-3.1-8b}
QOUT=${QOUT:-/tmp/qb-gptq-8b-out}
CALIB=${CALIB:-tests/data/calib-gutenberg.txt}
SAMPLES=${SAMPLES:-128}
SEQLEN=${SEQLEN:-2048}
BACKEND=${BACKEND:-cuda}
STEPS=${STEPS:-"tests synth quantize"}
TARGET_S=300
QB="$BUILD/quantbench"
mkdir -p "$OUTDIR"
START=$(date +%s)

step() { printf '\n=== %s (t+%ds) ===\n' "$1" $(( $(date +%s) - START )); }
want() { [[ " $STEPS " == *" $1 "* ]]; }

step "device"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>&1
"$QB" --version 2>&1 | head -1

if want tests && [ "${SKIP_TESTS:-0}" != 1 ]; then
    step "test_cuda_gptq"
    if [ -x "$BUILD/test_cuda_gptq" ]; then
        timeout 900 "$BUILD/test_cuda_gptq" --verbose -j1 > "$OUTDIR/test_cuda_gptq.log" 2>&1
        rc=$?
        grep -E "^\[----\]|^\[FAIL\]|^\[SKIP\]|Synthesis|[Aa]ssert|codes differ|recon err|ppl" \
            "$OUTDIR/test_cuda_gptq.log" | sed 's/^/  /'
        echo "test_cuda_gptq: exit $rc"
    else
        echo "test_cuda_gptq: not built in $BUILD"
    fi
fi

if want synth; then
    step "synth Llama-3.1-8B shape"
    if [ ! -f "$MODEL8B/model.safetensors.index.json" ]; then
        "$QB" synth --like bench/llama-3.1-8b --tokenizer tests/data/ref-llama-10m/tokenizer.json \
            --out "$MODEL8B" 2>&1 | tail -2
    fi
    du -sh "$MODEL8B" 2>&1
fi

if want quantize; then
    step "quantize gptq-int4 g128, ${SAMPLES} x ${SEQLEN} tokens, --backend $BACKEND"
    rm -rf "$QOUT"
    SMI_LOG="$OUTDIR/nvidia-smi-mem.csv"
    nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 500 > "$SMI_LOG" 2>/dev/null &
    SMI_PID=$!
    T0=$(date +%s.%N)
    "$QB" quantize "$MODEL8B" --scheme gptq-int4 --calib "$CALIB" --calib-samples "$SAMPLES" \
        --calib-seqlen "$SEQLEN" --backend "$BACKEND" --out "$QOUT" --json --progress-json \
        > "$OUTDIR/quantize.json" 2> "$OUTDIR/quantize.err"
    rc=$?
    T1=$(date +%s.%N)
    kill "$SMI_PID" 2>/dev/null
    wait "$SMI_PID" 2>/dev/null
    grep -v '^{' "$OUTDIR/quantize.err" | tail -5
    echo "quantize: exit $rc"
    python3 - "$OUTDIR" "$T0" "$T1" "$TARGET_S" "$SMI_LOG" <<'PY'
import json, sys
out, t0, t1, target, smi = sys.argv[1], float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4]), sys.argv[5]
wall = t1 - t0
try:
    peak_smi = max(int(l) for l in open(smi) if l.strip().isdigit())
except ValueError:
    peak_smi = 0
print(f"wall time            {wall:8.1f} s   (target < {target:.0f} s: {'MET' if wall < target else 'NOT MET'})")
print(f"peak GPU memory      {peak_smi / 1024:8.2f} GiB (nvidia-smi memory.used, 0.5 s polling)")
try:
    r = json.load(open(f"{out}/quantize.json"))
except Exception as e:
    print(f"no JSON result ({e}); see {out}/quantize.err")
    sys.exit(0)
print(f"pipeline seconds     {r['seconds']:8.1f} s   (load excluded)")
print(f"peak GPU (ours)      {r.get('peak_gpu_bytes', 0) / 2**30:8.2f} GiB (cudaMemGetInfo at the peaks)")
print(f"peak RSS             {r['peak_rss_kb'] / 1024:8.1f} MiB")
print(f"calibrated on        {r.get('calib_device', '?')}")
print(f"calibration          {r['calib_samples']} x {r['calib_seqlen']} tokens")
print(f"packed bytes         {r['packed_bytes'] / 1e9:8.2f} GB")
worse, n, ratios = [], 0, []
for L in r["layers"]:
    for name, v in L.items():
        if name == "layer":
            continue
        n += 1
        ratios.append(v["recon_err"] / v["rtn_recon_err"] if v["rtn_recon_err"] > 0 else 0)
        if not v["recon_err"] < v["rtn_recon_err"]:
            worse.append(f"layer {L['layer']} {name}")
print(f"GPTQ below RTN       {n - len(worse)}/{n} linears; recon err / RTN's: "
      f"min {min(ratios):.3f} median {sorted(ratios)[len(ratios) // 2]:.3f} max {max(ratios):.3f}")
for w in worse[:10]:
    print(f"  not below RTN: {w}")
PY
    [ "${KEEP:-0}" = 1 ] || rm -rf "$QOUT"
fi
step "done"
