/*
 * compare.c - baseline-vs-scheme evaluation runner (see compare.h).
 */
#include "compare.h"

#include <string.h>

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
    st = qb_eval_run(m, o->ids, o->n_ids, &o->eval, NULL, base, progress, &row->r, err);
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
        st = qb_eval_run(m, o->ids, o->n_ids, &o->eval, base, NULL, progress, &row->r, err);
    }
    if (!st) {
        row->delta_ppl = row->r.ppl - base_ppl;
        fill_note(s, row->r.backend, row);
        qb_progress_log(progress, "%s ppl %.4f kld %.5f", s->name, row->r.ppl, row->r.kld_mean);
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
