/*
 * bench.h - prefill (pp) and decode (tg) speed of a loaded model, llama-bench
 * style, with the decode roofline: what `quantbench bench` prints and what
 * compare and the dashboard put in their pp/tg columns.
 *
 * pp = one forward call over p tokens from an empty cache (logits of the last
 * one); tg = n single-token calls from an empty cache, logits each time. Each
 * test runs once to warm up, then r times; tokens/s is mean ± sample stddev
 * over the r runs. The ids are fixed pseudo-random (speed does not depend on
 * them). The decode roofline is
 *   bytes per token = decoder weights as held (incl. scales/zeros) + lm_head
 *                     + norms + one embedding row + KV read (mean over tg)
 *   roofline t/s    = measured copy bandwidth / bytes per token
 * with the bandwidth of a 1 GiB device-to-device copy (read + write) on the
 * GPU, or of a host memcpy on the CPU.
 */
#ifndef QB_BENCH_H
#define QB_BENCH_H

#include <stddef.h>

#include "engine.h"
#include "model.h"
#include "progress.h"
#include "qb_common.h"

#define QB_BENCH_MAX_TOKENS 65536

struct qb_bench_opts {
    int p;                   /* prompt tokens of the pp test; 0 = skip pp */
    int n;                   /* generated tokens of the tg test; 0 = skip tg */
    int r;                   /* timed repetitions after the warm-up (>= 1) */
    int threads;             /* CPU engine threads (0 = all cores) */
    enum qb_backend backend; /* auto resolves like eval */
};

struct qb_bench_stat {
    double mean, stddev; /* tokens/s over the repetitions (stddev 0 when r = 1) */
};

struct qb_bench_result {
    enum qb_backend backend;     /* the backend actually used */
    struct qb_bench_stat pp, tg; /* zero for a skipped test */
    size_t weight_bytes;         /* every weight as held */
    double decode_weight_bytes;  /* weights read per decode token */
    double kv_bytes;             /* KV bytes read per decode token (mean over tg) */
    double bandwidth_gbs;        /* measured copy bandwidth, GB/s (read + write) */
    double roofline_tps;         /* decode tokens/s at that bandwidth */
    double roofline_frac;        /* tg mean / roofline (0 without tg) */
    char device[300];            /* "NVIDIA H100 80GB HBM3 (sm_90, 132 SMs)" or "CPU (16 threads)" */
    size_t gpu_used_bytes;       /* device memory in use after the run (0 on CPU) */
};

/* Run the pp and tg tests of o on m (already in the scheme to measure). progress
 * (may be NULL) gets a stage per test and one update per timed run; a cancel
 * there ends the run with QB_ERR_CANCELLED. *res is zeroed first and filled on
 * QB_OK. QB_ERR_RANGE when p or n is outside 0..QB_BENCH_MAX_TOKENS, both are 0,
 * or r < 1. The engine is created here with a KV cache of max(p, n) positions
 * and freed before returning. */
enum qb_status qb_bench_run(const struct qb_model *m, const struct qb_bench_opts *o,
                            struct qb_progress *progress, struct qb_bench_result *res,
                            struct qb_err *err);

#endif /* QB_BENCH_H */
