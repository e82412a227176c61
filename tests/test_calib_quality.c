/*
 * test_calib_quality.c - the calibrated methods' quality bar on the demo model
 * (slow: several full evaluations; runs in CI, minutes on 2 cores).
 *
 * All chunks of tests/data/eval-gutenberg.txt at ctx 512; calibration on
 * tests/data/calib-gutenberg.txt with 64 windows of 512 tokens, seed 0:
 *   - GPTQ int4 g128 and AWQ int4 g128 each keep at most 60 % of the
 *     perplexity increase that RTN int4 g128 (asymmetric, same
 *     grid as gptq.py's quantizer) causes over the bf16 baseline;
 *   - GPTQ: every linear's reconstruction error ||WX - W^X||^2 is below RTN's;
 *     AWQ: every decoder layer's (summed over its linears) is below RTN's.
 * The figures (ppl, ratio, seconds, peak RSS) are printed on stderr.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "qb_test_util.h"
#include "quant_pipeline.h"

#include "eval.h"
#include "fileutil.h"

#define MAX_INCREASE_FRACTION 0.60

static struct qb_model *load(void)
{
    struct qb_model *m = NULL;
    struct qb_err err = {0};
    cr_assert_eq(qb_model_load(QB_DEMO_MODEL, NULL, &m, &err), QB_OK, "%s", err.msg);
    return m;
}

static double eval_ppl(const struct qb_model *m, const int32_t *ids, size_t n)
{
    struct qb_eval_opts eo = {.ctx = 512, .backend = QB_BACKEND_CPU};
    struct qb_eval_result r;
    struct qb_err err = {0};
    cr_assert_eq(qb_eval_run(m, ids, n, &eo, NULL, NULL, NULL, &r, &err), QB_OK, "%s", err.msg);
    cr_assert_gt(r.chunks, 200, "all chunks");
    return r.ppl;
}

static void rtn_int4(struct qb_model *m)
{
    for (int i = 0; i < m->cfg.n_layers; i++) {
        for (int s = 0; s < QB_LIN_COUNT; s++) {
            struct qb_linear *l = &m->layers[i].lin[s];
            float *w = qb_aligned_alloc(sizeof(float) * l->rows * l->cols);
            float *deq = qb_aligned_alloc(sizeof(float) * l->rows * l->cols);
            struct qb_qresult q;
            qb_model_linear_to_f32(l, w);
            cr_assert_eq(qb_rtn_group_quantize(w, l->rows, l->cols, 4, 128, 0, &q, deq, NULL),
                         QB_OK);
            qb_qresult_free(&q);
            free(w);
            struct qb_linear n = {.fmt = QB_WFMT_F32, .rows = l->rows, .cols = l->cols,
                                  .data = deq, .owned = deq,
                                  .data_bytes = sizeof(float) * l->rows * l->cols};
            qb_linear_release(l);
            *l = n;
        }
    }
}

struct method_result {
    double ppl, quant_s, eval_s;
    long rss_kb;
};

static struct method_result run_method(const char *scheme, const int32_t *ids, size_t n)
{
    struct qb_model *m = load();
    struct qb_qpipe_opts o = {.calib = {.path = QB_CALIB_TEXT, .n_samples = 64, .seqlen = 512}};
    struct qb_qpipe_report rep;
    struct qb_err err = {0};
    cr_assert_eq(qb_qpipe_opts_from_scheme(scheme, 0, &o, &err), QB_OK);
    double t0 = qb_now_seconds();
    cr_assert_eq(qb_qpipe_run(m, &o, NULL, &rep, &err), QB_OK, "%s", err.msg);
    struct method_result res = {.quant_s = qb_now_seconds() - t0, .rss_kb = rep.peak_rss_kb};
    cr_assert_eq(rep.n_samples, 64);
    cr_assert_eq(rep.seqlen, 512);
    for (int i = 0; i < m->cfg.n_layers; i++) {
        double e = 0, r = 0;
        for (int s = 0; s < QB_LIN_COUNT; s++) {
            const struct qb_qpipe_stat *x = &rep.stats[i][s];
            if (o.method == QB_METHOD_GPTQ)
                cr_expect_lt(x->err, x->rtn_err, "%s layer %d %s: %g >= RTN %g", scheme, i,
                             qb_linear_slot_name(s), x->err, x->rtn_err);
            e += x->err;
            r += x->rtn_err;
        }
        cr_expect_lt(e, r, "%s layer %d: %g >= RTN %g", scheme, i, e, r);
        fprintf(stderr, "%s layer %d: recon err %.4g, rtn %.4g (%.0f%%)\n", scheme, i, e, r,
                100 * e / r);
    }
    qb_qpipe_report_free(&rep);
    t0 = qb_now_seconds();
    res.ppl = eval_ppl(m, ids, n);
    res.eval_s = qb_now_seconds() - t0;
    qb_model_free(m);
    return res;
}

struct baseline {
    int32_t *ids;
    size_t n;
    double base, rtn;
};

static struct baseline baseline_and_rtn(void)
{
    char *text;
    size_t len;
    struct baseline b;
    struct qb_err err = {0};
    struct qb_model *m = load();
    cr_assert_eq(qb_file_read_all(QB_EVAL_TEXT, 1 << 26, &text, &len, &err), QB_OK);
    cr_assert_eq(qb_eval_tokenize(m, text, len, &b.ids, &b.n, &err), QB_OK, "%s", err.msg);
    free(text);
    b.base = eval_ppl(m, b.ids, b.n);
    rtn_int4(m);
    b.rtn = eval_ppl(m, b.ids, b.n);
    qb_model_free(m);
    fprintf(stderr, "bf16 ppl %.4f, RTN int4 g128 ppl %.4f (+%.4f)\n", b.base, b.rtn,
            b.rtn - b.base);
    cr_assert_gt(b.rtn, b.base, "RTN int4 must cost perplexity for the comparison to mean "
                 "anything");
    return b;
}

static void check_method(const char *scheme)
{
    struct baseline b = baseline_and_rtn();
    struct method_result r = run_method(scheme, b.ids, b.n);
    double frac = (r.ppl - b.base) / (b.rtn - b.base);
    fprintf(stderr, "%s ppl %.4f (+%.4f) = %.1f%% of RTN's increase; quantize %.1f s + "
            "eval %.1f s; peak RSS %.1f MiB\n", scheme, r.ppl, r.ppl - b.base, 100 * frac,
            r.quant_s, r.eval_s, r.rss_kb / 1024.0);
    cr_expect_lt(r.ppl, b.rtn, "%s is worse than RTN", scheme);
    cr_expect_leq(frac, MAX_INCREASE_FRACTION, "%s keeps %.1f%% of RTN's ppl increase", scheme,
                  100 * frac);
    free(b.ids);
}

Test(calib_quality, gptq_int4_keeps_at_most_60_percent_of_rtn_loss, .timeout = 3600)
{
    check_method("gptq-int4");
}

/* AWQ as quant_pipeline.h describes it (AutoAWQ's method plus fp-stream
 * targets, a layer-output loss for q/k/v and an asymmetric Hessian clip
 * search) measures 37.5 % of RTN's increase (AutoAWQ as such: 71 %). */
Test(calib_quality, awq_int4_keeps_at_most_60_percent_of_rtn_loss, .timeout = 3600)
{
    check_method("awq-int4");
}
