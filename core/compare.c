/*
 * compare.c - baseline-vs-scheme evaluation runner (see compare.h).
 */
#include "compare.h"

#include <math.h>
#include <string.h>

/* ---- the progress of one run -------------------------------------------------------
 * A run (one row) is its eval and then, with speed on, its speed test. Both report
 * their own 0..1 (the speed test once per pp/tg test), while the job relay
 * (job_run.c) reads a falling fraction, or a new stage after 1.0, as the next run.
 * So with speed on each goes through a private progress whose listener maps it into
 * its share of the run: the eval into [0, EVAL_SHARE], the speed test into
 * [EVAL_SHARE, 1) split once more per test (the last part is the bandwidth probe),
 * and the runner publishes 1.0 when the run ends. Stage, counts, metric and log
 * lines pass through unchanged; a cancel travels inwards. */

#define EVAL_SHARE 0.8

struct span {
    struct qb_progress *outer;
    double lo, hi;
    int n_parts, part;       /* the inner fraction falling starts the next part */
    double last_f;
    char last_stage[64];
    char last_log[QB_PROGRESS_LINE_MAX];
};

static void span_publish(void *ctx, const struct qb_progress *inner)
{
    struct span *sp = ctx;
    struct qb_progress_snapshot s;
    if (qb_progress_cancelled(sp->outer))
        qb_progress_cancel((struct qb_progress *)inner);
    qb_progress_read(inner, &s);
    if (s.fraction + 1e-9 < sp->last_f && sp->part + 1 < sp->n_parts)
        sp->part++;
    sp->last_f = s.fraction;
    if (strcmp(s.stage, sp->last_stage) != 0) {
        snprintf(sp->last_stage, sizeof sp->last_stage, "%s", s.stage);
        qb_progress_stage(sp->outer, s.stage);
    }
    double f = sp->lo + (sp->hi - sp->lo) * (sp->part + s.fraction) / sp->n_parts;
    qb_progress_update(sp->outer, f, s.done, s.total, s.unit[0] ? s.unit : NULL);
    if (s.metric_valid)
        qb_progress_metric(sp->outer, s.metric_name, s.metric);
    qb_progress_relay_logs(sp->outer, &s, sp->last_log);
}

/* A private progress reporting into [lo, hi] of outer in n_parts parts; NULL (report
 * nothing) when outer is NULL or on OOM. Free with span_end. */
static struct qb_progress *span_begin(struct span *sp, struct qb_progress *outer, double lo,
                                      double hi, int n_parts)
{
    struct qb_progress *inner = outer ? qb_progress_create() : NULL;
    memset(sp, 0, sizeof *sp);
    if (!inner)
        return NULL;
    *sp = (struct span){.outer = outer, .lo = lo, .hi = hi, .n_parts = n_parts};
    qb_progress_begin(inner, QB_JOB_COMPARE, "");
    qb_progress_set_listener(inner, span_publish, sp);
    if (qb_progress_cancelled(outer))
        qb_progress_cancel(inner);
    return inner;
}

static void span_end(struct qb_progress *inner)
{
    qb_progress_set_listener(inner, NULL, NULL);
    qb_progress_free(inner);
}

/* ---- one row ------------------------------------------------------------------------- */

static int speed_on(const struct qb_compare_opts *o)
{
    return o->speed.p > 0 || o->speed.n > 0;
}

/* The row's eval, through a span of the run when a speed test follows. */
static enum qb_status row_eval(const struct qb_compare_opts *o, const struct qb_model *m,
                               const struct qb_eval_baseline *base,
                               struct qb_eval_baseline **keep, struct qb_progress *progress,
                               struct qb_compare_row *row, struct qb_err *err)
{
    struct span sp;
    struct qb_progress *p = speed_on(o) ? span_begin(&sp, progress, 0, EVAL_SHARE, 1) : NULL;
    enum qb_status st = qb_eval_run(m, o->ids, o->n_ids, &o->eval, base, keep,
                                    p ? p : progress, &row->r, err);
    if (p)
        span_end(p);
    return st;
}

/* pp/tg tokens/s of m on the backend its eval used; the run's fraction ends at 1. */
static enum qb_status row_speed(const struct qb_compare_opts *o, const struct qb_model *m,
                                struct qb_progress *progress, struct qb_compare_row *row,
                                struct qb_err *err)
{
    struct qb_bench_opts bo = o->speed;
    struct qb_bench_result res;
    struct span sp;
    if (!speed_on(o))
        return QB_OK;
    bo.threads = o->eval.n_threads;
    bo.backend = row->r.backend;
    struct qb_progress *p = span_begin(&sp, progress, EVAL_SHARE, 1.0,
                                       (bo.p > 0) + (bo.n > 0) + 1);
    enum qb_status st = qb_bench_run(m, &bo, p ? p : progress, &res, err);
    if (p)
        span_end(p);
    if (st)
        return st;
    row->has_speed = 1;
    row->pp = res.pp;
    row->tg = res.tg;
    qb_progress_update(progress, 1.0, 0, 0, NULL);
    qb_progress_log(progress, "%s pp %.1f t/s, tg %.1f t/s", row->scheme, res.pp.mean,
                    res.tg.mean);
    return QB_OK;
}

/* x / the baseline's x; NAN when either was not measured. */
static double speedup(double x, double base)
{
    return x > 0 && base > 0 ? x / base : NAN;
}

static void fill_speedups(struct qb_compare_row *rows, int n)
{
    for (int i = 0; i < n; i++) {
        rows[i].pp_speedup = speedup(rows[i].pp.mean, rows[0].pp.mean);
        rows[i].tg_speedup = speedup(rows[i].tg.mean, rows[0].tg.mean);
    }
}

static void fill_sizes(const struct qb_model *m, struct qb_compare_row *row)
{
    row->decoder_bytes = qb_model_decoder_bytes(m);
    row->weights_bytes = qb_model_weight_bytes(m);
    int64_t params = qb_model_decoder_params(m);
    row->bits_per_weight = params ? 8.0 * (double)row->decoder_bytes / (double)params : 0;
}

static void fill_note(const struct qb_scheme *s, enum qb_backend used, struct qb_compare_row *row)
{
    int fp4 = s->fmt == QB_WFMT_NVFP4 || s->fmt == QB_WFMT_MXFP4;
    row->note[0] = '\0';
    if (fp4)
        snprintf(row->note, sizeof row->note, "emulated (no FP4 tensor cores on %s)",
                 qb_backend_name(used));
    else if (s->fmt == QB_WFMT_FP8_E4M3 || s->fmt == QB_WFMT_FP8_E5M2)
        snprintf(row->note, sizeof row->note, "%s", used == QB_BACKEND_CPU
                 ? "emulated (fp8 dequantized on the CPU)" : "");
}

static enum qb_status run_baseline(const struct qb_compare_opts *o, struct qb_progress *progress,
                                   struct qb_compare_row *row, struct qb_eval_baseline **base,
                                   struct qb_err *err)
{
    struct qb_model *m = NULL;
    struct qb_model_load_opts lo = {.no_tokenizer = 1};
    enum qb_status st = qb_model_load(o->model_dir, &lo, &m, err);
    if (st)
        return st;
    qb_progress_log(progress, "baseline %s", m->scheme.name);
    row->is_baseline = 1;
    memcpy(row->scheme, m->scheme.name, sizeof row->scheme);
    row->scheme[sizeof row->scheme - 1] = '\0';
    fill_sizes(m, row);
    st = row_eval(o, m, NULL, base, progress, row, err);
    if (!st)
        st = row_speed(o, m, progress, row, err);
    qb_model_free(m);
    return st;
}

/* GPTQ/AWQ: the layer-by-layer pipeline with the run's calibration options. */
static enum qb_status run_calibrated(const struct qb_compare_opts *o, const struct qb_scheme *s,
                                     struct qb_model *m, struct qb_progress *progress,
                                     struct qb_compare_row *row, struct qb_err *err)
{
    struct qb_qpipe_opts po = o->calib;
    struct qb_qpipe_report rep;
    if (!po.calib.path)
        return qb_err_set(err, QB_ERR_USAGE, "scheme '%s' needs calibration data (--calib FILE)",
                          s->name);
    enum qb_status st = qb_qpipe_opts_from_scheme(s->name, s->qp.group, &po, err);
    if (!st)
        st = qb_qpipe_run(m, &po, progress, &rep, err);
    if (st)
        return st;
    row->peak_rss_kb = rep.peak_rss_kb;
    qb_qpipe_report_free(&rep);
    return QB_OK;
}

static enum qb_status run_scheme(const struct qb_compare_opts *o, const struct qb_scheme *s,
                                 const struct qb_eval_baseline *base, double base_ppl,
                                 struct qb_progress *progress, struct qb_compare_row *row,
                                 struct qb_err *err)
{
    struct qb_model *m = NULL;
    struct qb_model_load_opts lo = {.no_tokenizer = !s->needs_calibration};
    enum qb_status st = qb_model_load(o->model_dir, &lo, &m, err);
    if (st)
        return st;
    memcpy(row->scheme, s->name, sizeof row->scheme);
    row->scheme[sizeof row->scheme - 1] = '\0';
    qb_progress_log(progress, "quantizing %s", s->name);
    double t0 = qb_now_seconds();
    if (s->needs_calibration)
        st = run_calibrated(o, s, m, progress, row, err);
    else
        st = qb_model_apply_scheme(m, s, progress, err);
    row->quantize_seconds = qb_now_seconds() - t0;
    if (!st) {
        fill_sizes(m, row);
        st = row_eval(o, m, base, NULL, progress, row, err);
    }
    if (!st) {
        row->delta_ppl = row->r.ppl - base_ppl;
        fill_note(s, row->r.backend, row);
        qb_progress_log(progress, "%s ppl %.4f kld %.5f", s->name, row->r.ppl, row->r.kld_mean);
        st = row_speed(o, m, progress, row, err);
    }
    qb_model_free(m);
    return st;
}

enum qb_status qb_compare_run(const struct qb_compare_opts *o, struct qb_progress *progress,
                              struct qb_compare_row **rows, int *n_rows, struct qb_err *err)
{
    struct qb_scheme schemes[QB_COMPARE_MAX_SCHEMES];
    struct qb_eval_baseline *base = NULL;
    *rows = NULL;
    *n_rows = 0;
    for (int i = 0; i < o->n_schemes; i++) {
        enum qb_status st = qb_scheme_parse(o->schemes[i], o->group, &schemes[i], err);
        if (st)
            return st;
    }
    struct qb_compare_row *out = qb_calloc_array((size_t)o->n_schemes + 1, sizeof *out);
    if (!out)
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory");
    int n = 0;
    enum qb_status st = run_baseline(o, progress, &out[n++], &base, err);
    for (int i = 0; !st && i < o->n_schemes; i++) {
        if (schemes[i].method == QB_METHOD_NONE && strcmp(schemes[i].name, out[0].scheme) == 0)
            continue; /* the baseline itself */
        st = run_scheme(o, &schemes[i], base, out[0].r.ppl, progress, &out[n], err);
        if (!st)
            n++;
    }
    qb_eval_baseline_free(base);
    if (st) {
        free(out);
        return st;
    }
    fill_speedups(out, n);
    *rows = out;
    *n_rows = n;
    return QB_OK;
}

enum qb_status qb_compare_parse_list(char *buf, struct qb_compare_opts *opts, struct qb_err *err)
{
    opts->n_schemes = 0;
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        while (*tok == ' ')
            tok++;
        if (!*tok)
            continue;
        if (opts->n_schemes == QB_COMPARE_MAX_SCHEMES)
            return qb_err_set(err, QB_ERR_USAGE, "at most %d schemes at once",
                              QB_COMPARE_MAX_SCHEMES);
        opts->schemes[opts->n_schemes++] = tok;
    }
    if (opts->n_schemes == 0)
        return qb_err_set(err, QB_ERR_USAGE, "--schemes needs at least one scheme (known: %s)",
                          qb_scheme_names());
    return QB_OK;
}
