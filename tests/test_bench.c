/*
 * test_bench.c - qb_bench_run (core/bench.c) on the demo model with the CPU
 * engine: option ranges, the decode-byte and roofline arithmetic against
 * hand-computed values, progress and cancellation. Speeds themselves are
 * only checked to be positive and finite (they depend on the machine).
 */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "bench.h"
#include "model.h"
#include "progress.h"

#define DEMO_MODEL QB_TEST_DATA "/ref-llama-10m"

static struct qb_model *load_demo(void)
{
    struct qb_model *m = NULL;
    struct qb_model_load_opts lo = {.no_tokenizer = 1};
    struct qb_err err = {0};
    cr_assert_eq(qb_model_load(DEMO_MODEL, &lo, &m, &err), QB_OK, "%s", err.msg);
    return m;
}

Test(bench, bad_options_are_range_errors)
{
    struct qb_model *m = load_demo();
    struct qb_bench_result r;
    struct qb_err err = {0};
    struct qb_bench_opts none = {.p = 0, .n = 0, .r = 1, .backend = QB_BACKEND_CPU};
    struct qb_bench_opts no_reps = {.p = 4, .n = 0, .r = 0, .backend = QB_BACKEND_CPU};
    struct qb_bench_opts too_long = {.p = QB_BENCH_MAX_TOKENS + 1, .r = 1,
                                     .backend = QB_BACKEND_CPU};
    cr_assert_eq(qb_bench_run(m, &none, NULL, &r, &err), QB_ERR_RANGE);
    cr_assert(strstr(err.msg, "bench"), "%s", err.msg);
    cr_assert_eq(qb_bench_run(m, &no_reps, NULL, &r, &err), QB_ERR_RANGE);
    cr_assert_eq(qb_bench_run(m, &too_long, NULL, &r, &err), QB_ERR_RANGE);
    qb_model_free(m);
}

Test(bench, cpu_run_fills_every_figure)
{
    struct qb_model *m = load_demo();
    const struct qb_config *c = &m->cfg;
    struct qb_bench_opts o = {.p = 8, .n = 4, .r = 3, .threads = 2, .backend = QB_BACKEND_CPU};
    struct qb_bench_result r;
    struct qb_progress *p = qb_progress_create();
    struct qb_progress_snapshot snap;
    struct qb_err err = {0};
    cr_assert(p);
    cr_assert_eq(qb_bench_run(m, &o, p, &r, &err), QB_OK, "%s", err.msg);
    cr_assert_eq(r.backend, QB_BACKEND_CPU);
    cr_assert(r.pp.mean > 0 && isfinite(r.pp.mean) && r.pp.stddev >= 0);
    cr_assert(r.tg.mean > 0 && isfinite(r.tg.mean) && r.tg.stddev >= 0);
    cr_assert_eq(r.weight_bytes, qb_model_weight_bytes(m));
    /* f16 K and V of every layer, mean over positions 1..n+1 */
    double kv = 2.0 * c->n_layers * c->n_kv_heads * c->head_dim * 2 * (o.n + 1) / 2.0;
    cr_assert_float_eq(r.kv_bytes, kv, 1e-9);
    double norms = (double)c->hidden * 4 * (2.0 * c->n_layers + 1);
    double dec = (double)qb_model_decoder_bytes(m) + (double)m->lm_head.data_bytes + norms +
                 (double)m->embed.data_bytes / (double)m->embed.rows;
    cr_assert_float_eq(r.decode_weight_bytes, dec, 1e-6);
    cr_assert(r.bandwidth_gbs > 0);
    cr_assert_float_eq(r.roofline_tps, r.bandwidth_gbs * 1e9 / (dec + kv), 1e-6 * r.roofline_tps);
    cr_assert_float_eq(r.roofline_frac, r.tg.mean / r.roofline_tps, 1e-12);
    cr_assert(strstr(r.device, "CPU"), "%s", r.device);
    cr_assert_eq(r.gpu_used_bytes, 0);
    qb_progress_read(p, &snap);
    cr_assert_str_eq(snap.stage, "bandwidth");
    cr_assert_eq(snap.done, 3);
    cr_assert_eq(snap.total, 3);
    qb_progress_free(p);
    qb_model_free(m);
}

Test(bench, skipped_test_stays_zero_and_cancel_stops)
{
    struct qb_model *m = load_demo();
    struct qb_bench_opts o = {.p = 0, .n = 3, .r = 1, .threads = 1, .backend = QB_BACKEND_CPU};
    struct qb_bench_result r;
    struct qb_progress *p = qb_progress_create();
    struct qb_err err = {0};
    cr_assert_eq(qb_bench_run(m, &o, NULL, &r, &err), QB_OK, "%s", err.msg);
    cr_assert(r.pp.mean == 0 && r.pp.stddev == 0 && r.tg.mean > 0);
    qb_progress_cancel(p);
    cr_assert_eq(qb_bench_run(m, &o, p, &r, &err), QB_ERR_CANCELLED);
    cr_assert(strstr(err.msg, "cancelled"), "%s", err.msg);
    qb_progress_free(p);
    qb_model_free(m);
}
