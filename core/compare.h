/*
 * compare.h - several schemes side by side against the unquantized baseline.
 *
 * The baseline model (the checkpoint's own dtype) is evaluated once and its
 * log-probs kept; each scheme is then loaded fresh, quantized in memory and
 * scored against them (perplexity, delta, KL divergence, top-1 agreement),
 * so every row is comparable. With speed on, each row's model (as scored)
 * then gets the llama-bench pp/tg test of bench.h on the backend its eval
 * ran on, and every row its speed-up over the baseline row. The same runner
 * serves `quantbench compare`, `quantbench eval --scheme` and the dashboard's
 * jobs.
 */
#ifndef QB_COMPARE_H
#define QB_COMPARE_H

#include <stddef.h>

#include "bench.h"
#include "eval.h"
#include "quant.h"
#include "quant_pipeline.h"

#define QB_COMPARE_MAX_SCHEMES 32

/* Speed test defaults of `compare` and the dashboard's compare job. */
#define QB_COMPARE_SPEED_PP 512
#define QB_COMPARE_SPEED_TG 128
#define QB_COMPARE_SPEED_REPS 3

struct qb_compare_opts {
    const char *model_dir;
    const int32_t *ids;          /* evaluation tokens, BOS first */
    size_t n_ids;
    const char *schemes[QB_COMPARE_MAX_SCHEMES];
    int n_schemes;
    int group;                   /* group-size override, 0 = scheme default */
    struct qb_eval_opts eval;
    /* calibrated schemes (GPTQ/AWQ): calibration file, samples, seqlen, seed and
     * GPTQ options; method/bits/group are taken from each scheme */
    struct qb_qpipe_opts calib;
    /* speed test of every row: p, n and r as in bench.h (p = n = 0, the zero
     * value, skips it); backend and threads are the eval's (the backend each
     * row's eval actually ran on, so a CPU fallback is timed on the CPU) */
    struct qb_bench_opts speed;
};

struct qb_compare_row {
    char scheme[32];             /* "int4"; the baseline row holds its dtype ("bf16") */
    int is_baseline;
    double bits_per_weight;      /* decoder linears, scales and zeros included */
    size_t decoder_bytes;        /* packed decoder linears */
    size_t weights_bytes;        /* every weight as held in memory */
    double quantize_seconds;
    long peak_rss_kb;            /* calibrated schemes: process peak RSS after quantizing */
    struct qb_eval_result r;
    double delta_ppl;            /* ppl - baseline ppl */
    char note[96];               /* "emulated (no FP4 tensor cores on this backend)" or "" */
    int has_speed;               /* the speed fields below were measured */
    struct qb_bench_stat pp, tg; /* tokens/s; zero for a skipped test (p or n = 0) */
    double pp_speedup;           /* pp mean / the baseline row's (1 for the baseline row;
                                    NAN when either was not measured) */
    double tg_speedup;           /* the same for tg */
};

/* Evaluate the baseline and then each scheme in opts (and time each when
 * opts->speed asks). *rows (malloced; caller frees) gets 1 + n_schemes entries,
 * the baseline first. A scheme equal to the baseline dtype is reported as the
 * baseline row only once. Progress: each row is one run whose fraction goes
 * 0..1 without falling (eval first, then the speed test). */
enum qb_status qb_compare_run(const struct qb_compare_opts *opts, struct qb_progress *progress,
                              struct qb_compare_row **rows, int *n_rows, struct qb_err *err);

/* Split "a,b,c" into opts->schemes (pointers into buf, which is modified). */
enum qb_status qb_compare_parse_list(char *buf, struct qb_compare_opts *opts, struct qb_err *err);

#endif /* QB_COMPARE_H */
