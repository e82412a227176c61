/*
 * job_run.c - the bodies of the job kinds, run on whichever thread calls
 * qb_job_run() (the CLI's main thread or the job queue's worker).
 *
 * eval/compare: load the model, tokenize the text once, score the baseline
 * (keeping its log-probs), then for every scheme load a fresh view of the
 * checkpoint (mmap, cheap), apply the scheme and score it against the kept
 * baseline for KLD and top-1 agreement. Rows: the baseline first, then one per
 * scheme. Nothing is recorded unless every run finished (a cancel or failure
 * part-way records nothing), so the history never holds a half comparison.
 *
 * Kinds whose module is not in this build end with QB_ERR_UNSUPPORTED.
 */
#include "job.h"

#include <math.h>
#include <string.h>

#include "dtype.h"
#include "eval.h"
#include "fileutil.h"
#include "model.h"

#define QB_JOB_TEXT_MAX (256u << 20)

void qb_job_spec_init(struct qb_job_spec *spec, enum qb_job_kind kind)
{
    memset(spec, 0, sizeof *spec);
    spec->kind = kind;
    snprintf(spec->backend, sizeof spec->backend, "auto");
}

void qb_job_output_clear(struct qb_job_output *out)
{
    if (!out)
        return;
    qb_results_clear(&out->rows);
    memset(out, 0, sizeof *out);
}

int qb_job_kind_available(enum qb_job_kind kind)
{
    return kind == QB_JOB_EVAL || kind == QB_JOB_COMPARE;
}

static const char *missing_module(enum qb_job_kind kind)
{
    switch (kind) {
    case QB_JOB_PULL: return "the Hub client (hub/)";
    case QB_JOB_QUANTIZE: return "the quantize writer";
    case QB_JOB_BENCH: return "the bench module";
    case QB_JOB_DOCTOR: return "the doctor module";
    case QB_JOB_NONE:
    case QB_JOB_EVAL:
    case QB_JOB_COMPARE:
    case QB_JOB_KIND_COUNT: break;
    }
    return "its module";
}

/* ---- eval and compare ------------------------------------------------------- */

struct eval_ctx {
    const struct qb_job_spec *spec;
    struct qb_progress *progress;
    int32_t *ids;
    size_t n_ids;
    struct qb_eval_opts opts;
    struct qb_eval_baseline *base;
    struct qb_result base_row;
    int n_runs, run;          /* for the stage line "int4 (2/3)" */
};

static void stage(struct eval_ctx *c, const char *what)
{
    char line[64];
    snprintf(line, sizeof line, "%s (%d/%d)", what, c->run, c->n_runs);
    qb_progress_stage(c->progress, line);
    qb_progress_log(c->progress, "%s: run %d of %d", what, c->run, c->n_runs);
}

static void lowercase(char *s)
{
    for (; *s; s++) {
        if (*s >= 'A' && *s <= 'Z')
            *s = (char)(*s - 'A' + 'a');
    }
}

static void fill_row(const struct eval_ctx *c, const struct qb_model *m,
                     const struct qb_eval_result *er, const char *scheme, struct qb_result *r)
{
    const struct qb_job_spec *s = c->spec;
    qb_result_init(r);
    snprintf(r->kind, sizeof r->kind, "%s", qb_job_kind_name(s->kind));
    snprintf(r->model, sizeof r->model, "%s", s->model);
    snprintf(r->revision, sizeof r->revision, "%s", s->revision);
    snprintf(r->scheme, sizeof r->scheme, "%s", scheme);
    snprintf(r->base_dtype, sizeof r->base_dtype, "%s", qb_dtype_name(m->base_dtype));
    lowercase(r->base_dtype);
    if (s->group)
        snprintf(r->options, sizeof r->options, "group=%d%s", s->group,
                 s->act_order ? " act_order" : "");
    r->ppl = er->ppl;
    r->ppl_stderr = er->ppl_stderr;
    if (er->has_kld) {
        r->kld = er->kld_mean;
        r->top1 = er->top1_agreement;
    }
    int64_t params = qb_model_decoder_params(m);
    if (params > 0)
        r->bits_per_weight = 8.0 * (double)qb_model_decoder_bytes(m) / (double)params;
    r->size_bytes = (int64_t)qb_model_weight_bytes(m);
    r->pp_tps = er->tokens_per_s;
    r->ctx = er->ctx;
    r->chunks = er->chunks;
    snprintf(r->backend, sizeof r->backend, "%s", qb_backend_name(er->backend));
    snprintf(r->gpu, sizeof r->gpu, "%s", s->gpu);
    snprintf(r->driver, sizeof r->driver, "%s", s->driver);
    snprintf(r->cuda, sizeof r->cuda, "%s", s->cuda);
}

static enum qb_status check_cancel(struct qb_progress *p, struct qb_err *err)
{
    if (qb_progress_cancelled(p))
        return qb_err_set(err, QB_ERR_CANCELLED, "cancelled");
    return QB_OK;
}

static enum qb_status run_baseline(struct eval_ctx *c, struct qb_job_output *out,
                                   struct qb_err *err)
{
    struct qb_model *m = NULL;
    struct qb_eval_result er;
    enum qb_status st = qb_model_load(c->spec->model, NULL, &m, err);
    if (st)
        goto out;
    c->run = 1;
    stage(c, "baseline");
    st = qb_eval_run(m, c->ids, c->n_ids, &c->opts, NULL, c->n_runs > 1 ? &c->base : NULL,
                     c->progress, &er, err);
    if (st)
        goto out;
    fill_row(c, m, &er, "", &c->base_row);
    snprintf(c->base_row.scheme, sizeof c->base_row.scheme, "%s", c->base_row.base_dtype);
    c->base_row.baseline = 1;
    c->base_row.ppl_baseline = er.ppl;
    c->base_row.delta_ppl = 0;
    c->base_row.baseline_bytes = c->base_row.size_bytes;
    if (qb_results_push(&out->rows, &c->base_row))
        st = qb_err_set(err, QB_ERR_NOMEM, "out of memory storing a result");
out:
    qb_model_free(m);
    return st;
}

static enum qb_status run_scheme(struct eval_ctx *c, const char *name, struct qb_job_output *out,
                                 struct qb_err *err)
{
    struct qb_model *m = NULL;
    struct qb_scheme scheme;
    struct qb_eval_result er;
    struct qb_result row;
    enum qb_status st = qb_scheme_parse(name, c->spec->group, &scheme, err);
    if (st)
        goto out;
    stage(c, name);
    st = qb_model_load(c->spec->model, NULL, &m, err);
    if (!st)
        st = check_cancel(c->progress, err);
    if (!st)
        st = qb_model_apply_scheme(m, &scheme, c->progress, err);
    if (!st)
        st = check_cancel(c->progress, err);
    if (!st)
        st = qb_eval_run(m, c->ids, c->n_ids, &c->opts, c->base, NULL, c->progress, &er, err);
    if (st)
        goto out;
    fill_row(c, m, &er, scheme.name, &row);
    row.ppl_baseline = c->base_row.ppl;
    row.delta_ppl = er.ppl - c->base_row.ppl;
    row.baseline_bytes = c->base_row.size_bytes;
    if (qb_results_push(&out->rows, &row))
        st = qb_err_set(err, QB_ERR_NOMEM, "out of memory storing a result");
out:
    qb_model_free(m);
    return st;
}

static enum qb_status tokenize_text(struct eval_ctx *c, struct qb_err *err)
{
    char *text = NULL;
    size_t len = 0;
    struct qb_model *m = NULL;
    enum qb_status st;
    if (!c->spec->text_path[0])
        return qb_err_set(err, QB_ERR_USAGE, "no evaluation text given (--text FILE)");
    st = qb_file_read_all(c->spec->text_path, QB_JOB_TEXT_MAX, &text, &len, err);
    if (!st)
        st = qb_model_load(c->spec->model, NULL, &m, err);
    if (!st)
        st = qb_eval_tokenize(m, text, len, &c->ids, &c->n_ids, err);
    qb_model_free(m);
    free(text);
    return st;
}

static enum qb_status eval_opts_from_spec(const struct qb_job_spec *s, struct qb_eval_opts *o,
                                          struct qb_err *err)
{
    memset(o, 0, sizeof *o);
    o->ctx = s->ctx > 0 ? s->ctx : 512;
    o->max_chunks = s->max_chunks;
    o->n_threads = s->n_threads;
    return qb_backend_parse(s->backend[0] ? s->backend : "auto", &o->backend, err);
}

static enum qb_status record_rows(const struct qb_job_spec *s, const struct qb_results *rows,
                                  struct qb_err *err)
{
    if (s->no_record)
        return QB_OK;
    const char *path = s->results_path[0] ? s->results_path : NULL;
    for (size_t i = 0; i < rows->n; i++) {
        enum qb_status st = qb_results_append(path, &rows->items[i], err);
        if (st)
            return st;
    }
    return QB_OK;
}

static enum qb_status run_eval_like(const struct qb_job_spec *spec, struct qb_progress *progress,
                                    struct qb_job_output *out, struct qb_err *err)
{
    struct eval_ctx c;
    memset(&c, 0, sizeof c);
    c.spec = spec;
    c.progress = progress;
    c.n_runs = 1 + spec->n_schemes;
    enum qb_status st = eval_opts_from_spec(spec, &c.opts, err);
    if (!st) {
        qb_progress_stage(progress, "tokenizing");
        st = tokenize_text(&c, err);
    }
    if (!st)
        st = check_cancel(progress, err);
    if (!st)
        st = run_baseline(&c, out, err);
    for (int i = 0; !st && i < spec->n_schemes; i++) {
        c.run = i + 2;
        st = check_cancel(progress, err);
        if (!st)
            st = run_scheme(&c, spec->schemes[i], out, err);
    }
    if (!st)
        st = check_cancel(progress, err);
    if (!st)
        st = record_rows(spec, &out->rows, err);
    qb_eval_baseline_free(c.base);
    free(c.ids);
    return st;
}

/* ---- dispatch ------------------------------------------------------------------ */

static enum qb_status check_spec(const struct qb_job_spec *s, struct qb_err *err)
{
    if ((unsigned)s->kind >= QB_JOB_KIND_COUNT || s->kind == QB_JOB_NONE)
        return qb_err_set(err, QB_ERR_USAGE, "job kind %d is not a job", (int)s->kind);
    if (s->n_schemes < 0 || s->n_schemes > QB_JOB_MAX_SCHEMES)
        return qb_err_set(err, QB_ERR_USAGE, "a job takes 0..%d schemes, not %d",
                          QB_JOB_MAX_SCHEMES, s->n_schemes);
    if (s->kind == QB_JOB_EVAL && s->n_schemes > 1)
        return qb_err_set(err, QB_ERR_USAGE, "eval takes one scheme; use compare for several");
    if (s->kind == QB_JOB_COMPARE && s->n_schemes < 1)
        return qb_err_set(err, QB_ERR_USAGE, "compare needs at least one scheme");
    if (!s->custom && !s->model[0] && s->kind != QB_JOB_DOCTOR)
        return qb_err_set(err, QB_ERR_USAGE, "no model given for the %s job",
                          qb_job_kind_name(s->kind));
    return QB_OK;
}

static enum qb_status dispatch(const struct qb_job_spec *spec, struct qb_progress *progress,
                               struct qb_job_output *out, struct qb_err *err)
{
    if (spec->custom)
        return spec->custom(spec, progress, out, err);
    if (spec->kind == QB_JOB_EVAL || spec->kind == QB_JOB_COMPARE)
        return run_eval_like(spec, progress, out, err);
    return qb_err_set(err, QB_ERR_UNSUPPORTED, "%s is not available: %s is not in this build",
                      qb_job_kind_name(spec->kind), missing_module(spec->kind));
}

enum qb_status qb_job_run(const struct qb_job_spec *spec, struct qb_progress *progress,
                          struct qb_job_output *out, struct qb_err *err)
{
    struct qb_job_output local;
    struct qb_err lerr = {0};
    if (!err)
        err = &lerr;
    if (!out)
        out = &local;
    memset(out, 0, sizeof *out);
    qb_progress_begin(progress, spec->kind, "starting");
    enum qb_status st = check_spec(spec, err);
    if (!st)
        st = dispatch(spec, progress, out, err);
    if (st == QB_ERR_CANCELLED)
        qb_progress_log(progress, "cancelled; nothing recorded");
    else if (st)
        qb_progress_log(progress, "failed: %s", err->msg);
    qb_progress_finish(progress, st, err);
    if (st || out == &local)
        qb_job_output_clear(out);
    return st;
}
