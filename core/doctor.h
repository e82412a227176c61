/*
 * doctor.h - the quick check after a driver update (`quantbench doctor`, the
 * dashboard's `d` key).
 *
 * On the demo model (or any model) and for every RTN scheme it records:
 * whether the hardware runs the format natively, a self-test of the compute
 * path against the CPU reference (on the GPU: the CUDA engine's logits
 * against the CPU engine's on a short sequence; on the CPU: the SIMD dot
 * against the plain C dot), perplexity and KL divergence over a few chunks,
 * and prefill / decode tokens per second. Plus the driver, CUDA and GPU
 * identity and the measured memory bandwidth.
 *
 * A report can be saved as JSON and later compared: any NaN, a failed
 * self-test, perplexity drifting beyond QB_DOCTOR_PPL_RTOL or speed more than
 * QB_DOCTOR_SPEED_DROP below the saved figure is a regression.
 */
#ifndef QB_DOCTOR_H
#define QB_DOCTOR_H

#include <cjson/cJSON.h>

#include "eval.h"
#include "progress.h"

#define QB_DOCTOR_MAX_SCHEMES 24
#define QB_DOCTOR_PPL_RTOL 1e-3    /* relative perplexity drift allowed vs a baseline */
#define QB_DOCTOR_SPEED_DROP 0.10  /* speed may fall at most 10 % below a baseline */

struct qb_doctor_opts {
    const char *model_dir;   /* NULL: the bundled demo model */
    const char *data_path;   /* NULL: the bundled eval text */
    enum qb_backend backend;
    int chunks;              /* perplexity chunks of 512 (default 2) */
    int n_threads;
};

struct qb_doctor_scheme {
    char scheme[32];
    double bits_per_weight;
    int native;                  /* runs on native hardware units here */
    char support[128];           /* hardware-support line */
    double selftest_err;         /* relative error of the self-test */
    double selftest_tol;
    int selftest_ok;
    double ppl, kld;             /* kld 0 for the baseline */
    double pp_tok_s, tg_tok_s;   /* prefill (512) and decode tokens/s */
    char error[160];             /* non-empty when the scheme could not run */
};

struct qb_doctor_report {
    char version[32];
    char backend[8];             /* "cpu" or "cuda" */
    char gpu_name[96];           /* "" without a GPU */
    char compute_capability[16];
    char driver_version[96];
    int cuda_driver_version;     /* 13000 = 13.0; 0 unknown */
    int cuda_runtime_version;    /* 0 when built without CUDA */
    double bandwidth_gbs;        /* measured; < 0 when not measured */
    double seconds;
    int n_schemes;
    struct qb_doctor_scheme schemes[QB_DOCTOR_MAX_SCHEMES];
};

enum qb_status qb_doctor_run(const struct qb_doctor_opts *o, struct qb_progress *progress,
                             struct qb_doctor_report *out, struct qb_err *err);

/* The report as a JSON object (caller deletes). */
cJSON *qb_doctor_to_json(const struct qb_doctor_report *r);
/* Parse a saved report; origin names the file in errors. */
enum qb_status qb_doctor_from_json(const char *json, size_t len, const char *origin,
                                   struct qb_doctor_report *out, struct qb_err *err);

/* Compare now against base; writes one line per regression into lines (each at
 * most 160 bytes, up to max_lines) and returns the number of regressions. */
int qb_doctor_compare(const struct qb_doctor_report *now, const struct qb_doctor_report *base,
                      char (*lines)[160], int max_lines);

#endif /* QB_DOCTOR_H */
