/*
 * job_run.c - the bodies of the job kinds, run on whichever thread calls
 * qb_job_run() (the CLI's main thread or the job queue's worker).
 *
 * eval/compare: tokenize the text once, then the shared baseline-vs-scheme
 * runner (core/compare.h: baseline scored once with its log-probs kept, each
 * scheme loaded fresh, quantized and scored against it for KLD and top-1).
 * Rows: the baseline first, then one per scheme. Nothing is recorded unless
 * every run finished (a cancel or failure part-way records nothing), so the
 * history never holds a half comparison.
 *
 * Kinds whose module is not in this build end with QB_ERR_UNSUPPORTED.
 */
#include "job.h"

#include "bench.h"
#include "doctor.h"
#include "quantize.h"

#include <math.h>
#include <string.h>

#include "compare.h"
#include "fileutil.h"
#include "model.h"

#if defined(__has_include)
#if __has_include("hub/hub.h")
#include "hub/hub.h"
#define QB_JOB_HAVE_HUB 1
#endif
#endif

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
#ifdef QB_JOB_HAVE_HUB
    if (kind == QB_JOB_PULL)
        return 1;
#endif
    return kind == QB_JOB_EVAL || kind == QB_JOB_COMPARE || kind == QB_JOB_DOCTOR ||
           kind == QB_JOB_QUANTIZE || kind == QB_JOB_BENCH;
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

void qb_job_result_from_row(const struct qb_compare_row *row, const struct qb_compare_row *base,
                            const struct qb_job_spec *spec, struct qb_result *r)
{
    qb_result_init(r);
    snprintf(r->kind, sizeof r->kind, "%s", qb_job_kind_name(spec->kind));
    snprintf(r->model, sizeof r->model, "%s", spec->model);
    snprintf(r->revision, sizeof r->revision, "%s", spec->revision);
    snprintf(r->scheme, sizeof r->scheme, "%s", row->scheme);
    snprintf(r->base_dtype, sizeof r->base_dtype, "%.15s", base->scheme);
    if (spec->group && !row->is_baseline)
        snprintf(r->options, sizeof r->options, "group=%d%s", spec->group,
                 spec->act_order ? " act_order" : "");
    r->baseline = row->is_baseline;
    r->ppl = row->r.ppl;
    r->ppl_stderr = row->r.ppl_stderr;
    r->ppl_baseline = base->r.ppl;
    r->delta_ppl = row->is_baseline ? 0.0 : row->delta_ppl;
    if (row->r.has_kld) {
        r->kld = row->r.kld_mean;
        r->top1 = row->r.top1_agreement;
    }
    r->bits_per_weight = row->bits_per_weight;
    r->size_bytes = (int64_t)row->weights_bytes;
    r->baseline_bytes = (int64_t)base->weights_bytes;
    if (row->has_speed && base->has_speed) { /* the llama-bench test */
        r->pp_tps = row->pp.mean > 0 ? row->pp.mean : NAN;
        r->tg_tps = row->tg.mean > 0 ? row->tg.mean : NAN;
        r->pp_tps_baseline = base->pp.mean > 0 ? base->pp.mean : NAN;
        r->tg_tps_baseline = base->tg.mean > 0 ? base->tg.mean : NAN;
    } else { /* the eval's own throughput (ctx-token prefills) */
        r->pp_tps = row->r.tokens_per_s;
        r->pp_tps_baseline = base->r.tokens_per_s;
    }
    r->ctx = row->r.ctx;
    r->chunks = row->r.chunks;
    snprintf(r->backend, sizeof r->backend, "%s", qb_backend_name(row->r.backend));
    snprintf(r->gpu, sizeof r->gpu, "%s", spec->gpu);
    snprintf(r->driver, sizeof r->driver, "%s", spec->driver);
    snprintf(r->cuda, sizeof r->cuda, "%s", spec->cuda);
}

static enum qb_status check_cancel(struct qb_progress *p, struct qb_err *err)
{
    if (qb_progress_cancelled(p))
        return qb_err_set(err, QB_ERR_CANCELLED, "cancelled");
    return QB_OK;
}

static enum qb_status tokenize_text(const struct qb_job_spec *spec, int32_t **ids, size_t *n_ids,
                                    struct qb_err *err)
{
    char *text = NULL;
    size_t len = 0;
    struct qb_model *m = NULL;
    enum qb_status st;
    if (!spec->text_path[0])
        return qb_err_set(err, QB_ERR_USAGE, "no evaluation text given (--data FILE)");
    st = qb_file_read_all(spec->text_path, QB_JOB_TEXT_MAX, &text, &len, err);
    if (!st)
        st = qb_model_load(spec->model, NULL, &m, err);
    if (!st)
        st = qb_eval_tokenize(m, text, len, ids, n_ids, err);
    qb_model_free(m);
    free(text);
    return st;
}

static enum qb_status compare_opts_from_spec(const struct qb_job_spec *s,
                                             struct qb_compare_opts *o, struct qb_err *err)
{
    memset(o, 0, sizeof *o);
    o->model_dir = s->model;
    o->group = s->group;
    o->eval.ctx = s->ctx > 0 ? s->ctx : 512;
    o->eval.max_chunks = s->max_chunks;
    o->eval.n_threads = s->n_threads;
    if (s->n_schemes > QB_COMPARE_MAX_SCHEMES)
        return qb_err_set(err, QB_ERR_USAGE, "at most %d schemes at once",
                          QB_COMPARE_MAX_SCHEMES);
    for (int i = 0; i < s->n_schemes; i++)
        o->schemes[o->n_schemes++] = s->schemes[i];
    if (s->kind == QB_JOB_COMPARE && !s->no_speed) {
        o->speed.p = s->speed_p > 0 ? s->speed_p : QB_COMPARE_SPEED_PP;
        o->speed.n = s->speed_n > 0 ? s->speed_n : QB_COMPARE_SPEED_TG;
        o->speed.r = s->speed_r > 0 ? s->speed_r : QB_COMPARE_SPEED_REPS;
    }
    enum qb_status st = qb_backend_parse(s->backend[0] ? s->backend : "auto", &o->eval.backend,
                                         err);
    o->calib.backend = o->eval.backend; /* GPTQ and the AWQ search calibrate where the evals run */
    return st;
}

enum qb_status qb_job_record(const struct qb_job_spec *spec, const struct qb_results *rows,
                             struct qb_err *err)
{
    if (spec->no_record)
        return QB_OK;
    const char *path = spec->results_path[0] ? spec->results_path : NULL;
    for (size_t i = 0; i < rows->n; i++) {
        enum qb_status st = qb_results_append(path, &rows->items[i], err);
        if (st)
            return st;
    }
    return QB_OK;
}

/*
 * The compare runner reports each run (baseline, then every scheme) as its
 * own 0..1. A private progress object sits between it and the job's: this
 * listener (on the worker thread) counts runs (a new run starts when the
 * fraction falls, or when the stage changes after a run completed), and
 * republishes stage "int4 3/5 scoring vs baseline"-style, a fraction of the
 * whole comparison (never decreasing), layer, done/total, metric and new log
 * lines. Cancel travels the other way: the job's flag is copied onto the
 * private object at every publish, where the runner checks it.
 */
struct run_relay {
    struct qb_progress *outer;
    int run, n_runs;
    int fresh;                /* the current run has published a fraction of its own */
    double base_f;            /* the inner fraction left over when the run began */
    double last_f, overall;
    char last_stage[64];
    char last_log[QB_PROGRESS_LINE_MAX];
};

static void relay_publish(void *ctx, const struct qb_progress *inner)
{
    struct run_relay *r = ctx;
    struct qb_progress_snapshot s;
    if (qb_progress_cancelled(r->outer))
        qb_progress_cancel((struct qb_progress *)inner);
    qb_progress_read(inner, &s);
    int stage_changed = strcmp(s.stage, r->last_stage) != 0;
    if (r->fresh && s.fraction + 1e-9 < r->last_f) {
        /* the fraction fell: this is the next run's first update */
        r->run += r->run + 1 < r->n_runs;
        r->last_f = s.fraction;
    } else if (r->fresh && stage_changed && r->last_f >= 1.0 - 1e-9) {
        /* a new stage after a complete run: the next run began (quantizing);
         * the inner fraction still holds the old run's 1.0 until it scores */
        r->run += r->run + 1 < r->n_runs;
        r->fresh = 0;
        r->base_f = s.fraction;
        r->last_f = 0;
    } else if (!r->fresh && fabs(s.fraction - r->base_f) > 1e-12) {
        r->fresh = 1;
        r->last_f = s.fraction;
    } else if (r->fresh && s.fraction > r->last_f) {
        r->last_f = s.fraction;
    }
    snprintf(r->last_stage, sizeof r->last_stage, "%s", s.stage);
    double overall = (r->run + r->last_f) / r->n_runs;
    if (overall > r->overall)
        r->overall = overall;
    char stage[64];
    snprintf(stage, sizeof stage, "%d/%d %.40s", r->run + 1, r->n_runs, s.stage);
    qb_progress_stage(r->outer, stage);
    qb_progress_layer(r->outer, s.layer, s.n_layers);
    /* before the run scores, done/total are the previous run's: hide them */
    qb_progress_update(r->outer, r->overall, r->fresh ? s.done : 0, r->fresh ? s.total : 0,
                       s.unit[0] ? s.unit : NULL);
    if (s.metric_valid)
        qb_progress_metric(r->outer, s.metric_name, s.metric);
    qb_progress_relay_logs(r->outer, &s, r->last_log);
}

/* n_runs: the baseline plus every scheme that is not the baseline's dtype
 * (the runner reports those once, as the baseline). */
static int count_runs(const struct qb_job_spec *spec)
{
    int n = 1;
    for (int i = 0; i < spec->n_schemes; i++) {
        struct qb_scheme s;
        if (qb_scheme_parse(spec->schemes[i], 0, &s, NULL) || s.method != QB_METHOD_NONE)
            n++;
    }
    return n;
}

static enum qb_status compare_with_relay(const struct qb_job_spec *spec,
                                         const struct qb_compare_opts *o,
                                         struct qb_progress *progress,
                                         struct qb_compare_row **rows, int *n_rows,
                                         struct qb_err *err)
{
    struct run_relay relay;
    memset(&relay, 0, sizeof relay);
    relay.outer = progress;
    relay.n_runs = count_runs(spec);
    struct qb_progress *inner = progress ? qb_progress_create() : NULL;
    if (!inner)
        return qb_compare_run(o, progress, rows, n_rows, err);
    qb_progress_begin(inner, spec->kind, "starting");
    qb_progress_set_listener(inner, relay_publish, &relay);
    if (qb_progress_cancelled(progress))
        qb_progress_cancel(inner);
    enum qb_status st = qb_compare_run(o, inner, rows, n_rows, err);
    qb_progress_set_listener(inner, NULL, NULL);
    qb_progress_free(inner);
    return st;
}

static enum qb_status run_eval_like(const struct qb_job_spec *spec, struct qb_progress *progress,
                                    struct qb_job_output *out, struct qb_err *err)
{
    struct qb_compare_opts o;
    struct qb_compare_row *rows = NULL;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    int n_rows = 0;
    enum qb_status st = compare_opts_from_spec(spec, &o, err);
    if (!st) {
        qb_progress_stage(progress, "tokenizing");
        st = tokenize_text(spec, &ids, &n_ids, err);
    }
    if (!st)
        st = check_cancel(progress, err);
    if (!st) {
        o.ids = ids;
        o.n_ids = n_ids;
        st = compare_with_relay(spec, &o, progress, &rows, &n_rows, err);
    }
    for (int i = 0; !st && i < n_rows; i++) {
        struct qb_result r;
        qb_job_result_from_row(&rows[i], &rows[0], spec, &r);
        if (qb_results_push(&out->rows, &r))
            st = qb_err_set(err, QB_ERR_NOMEM, "out of memory storing a result");
    }
    if (!st)
        st = check_cancel(progress, err);
    if (!st)
        st = qb_job_record(spec, &out->rows, err);
    free(rows);
    free(ids);
    return st;
}

/* ---- pull ---------------------------------------------------------------------- */

#ifdef QB_JOB_HAVE_HUB
/* spec->model is ORG/NAME[@REV]; the snapshot folder goes to out->path. */
static enum qb_status run_pull(const struct qb_job_spec *spec, struct qb_progress *progress,
                               struct qb_job_output *out, struct qb_err *err)
{
    struct qb_hub *hub = NULL;
    char *repo = NULL, *rev = NULL, *dir = NULL;
    struct qb_hub_pull_opts po;
    memset(&po, 0, sizeof po);
    po.progress = progress;
    enum qb_status st = qb_hub_parse_repo_arg(spec->model, &repo, &rev, err);
    if (!st)
        st = qb_hub_open_env(&hub, err);
    if (!st) {
        qb_progress_stage(progress, "downloading");
        st = qb_hub_pull(hub, repo, rev, &po, &dir, err);
    }
    if (!st && dir)
        snprintf(out->path, sizeof out->path, "%s", dir);
    free(dir);
    free(repo);
    free(rev);
    qb_hub_free(hub);
    return st;
}
#endif

/* ---- doctor ------------------------------------------------------------------------ */

static void doctor_rows(const struct qb_job_spec *spec, const struct qb_doctor_report *r,
                        struct qb_job_output *out, struct qb_err *err)
{
    for (int i = 0; i < r->n_schemes; i++) {
        const struct qb_doctor_scheme *s = &r->schemes[i];
        struct qb_result row;
        qb_result_init(&row);
        snprintf(row.kind, sizeof row.kind, "doctor");
        snprintf(row.model, sizeof row.model, "%s", spec->model[0] ? spec->model : "demo");
        snprintf(row.scheme, sizeof row.scheme, "%s", s->scheme);
        snprintf(row.options, sizeof row.options, "self-test %s",
                 s->error[0] ? "not run" : s->selftest_ok ? "ok" : "FAILED");
        row.baseline = i == 0;
        row.ppl = s->error[0] ? NAN : s->ppl;
        row.ppl_baseline = r->schemes[0].ppl;
        row.delta_ppl = row.ppl - row.ppl_baseline;
        row.kld = i == 0 ? NAN : s->kld;
        row.bits_per_weight = s->bits_per_weight;
        row.pp_tps = s->pp_tok_s;
        row.tg_tps = s->tg_tok_s;
        row.pp_tps_baseline = r->schemes[0].pp_tok_s;
        row.tg_tps_baseline = r->schemes[0].tg_tok_s;
        snprintf(row.backend, sizeof row.backend, "%s", r->backend);
        snprintf(row.gpu, sizeof row.gpu, "%s", r->gpu_name);
        snprintf(row.driver, sizeof row.driver, "%.31s", r->driver_version);
        if (qb_results_push(&out->rows, &row)) {
            qb_err_set(err, QB_ERR_NOMEM, "out of memory");
            return;
        }
    }
}

/* The driver-update check; its verdict line and one row per scheme. */
static enum qb_status run_doctor(const struct qb_job_spec *spec, struct qb_progress *progress,
                                 struct qb_job_output *out, struct qb_err *err)
{
    struct qb_doctor_opts o = {.model_dir = spec->model[0] ? spec->model : NULL,
                               .data_path = spec->text_path[0] ? spec->text_path : NULL,
                               .chunks = spec->max_chunks, .n_threads = spec->n_threads};
    enum qb_status st = qb_backend_parse(spec->backend[0] ? spec->backend : "auto", &o.backend,
                                         err);
    struct qb_doctor_report *r = calloc(1, sizeof *r);
    if (!st && !r)
        st = qb_err_set(err, QB_ERR_NOMEM, "out of memory");
    if (!st)
        st = qb_doctor_run(&o, progress, r, err);
    if (!st && out) {
        char lines[4][160];
        int bad = qb_doctor_compare(r, r, lines, 4);
        if (bad)
            snprintf(out->verdict, sizeof out->verdict, "%d problem%s: %.200s", bad,
                     bad > 1 ? "s" : "", lines[0]);
        else
            snprintf(out->verdict, sizeof out->verdict,
                     "ok: %d schemes self-tested on %s%s%s, %.0f GB/s, %.0f s", r->n_schemes,
                     r->backend, r->gpu_name[0] ? " " : "", r->gpu_name, r->bandwidth_gbs,
                     r->seconds);
        doctor_rows(spec, r, out, err);
    }
    free(r);
    return st;
}

/* ---- quantize -------------------------------------------------------------------- */

/* Quantize spec->schemes[0] of spec->model into spec->out_path. */
static enum qb_status run_quantize(const struct qb_job_spec *spec, struct qb_progress *progress,
                                   struct qb_job_output *out, struct qb_err *err)
{
    if (spec->n_schemes != 1 || !spec->out_path[0])
        return qb_err_set(err, QB_ERR_USAGE, "a quantize job needs one scheme and an output path");
    struct qb_quantize_opts q = {.model = spec->model, .scheme = spec->schemes[0],
                                 .out = spec->out_path, .group = spec->group};
    q.po.act_order = spec->act_order;
    q.po.n_threads = spec->n_threads;
    q.po.calib.path = spec->calib_path[0] ? spec->calib_path : NULL;
    q.po.calib.n_samples = spec->calib_samples;
    if (qb_qpipe_is_calibrated(q.scheme) && !q.po.calib.path)
        return qb_err_set(err, QB_ERR_USAGE, "%s needs calibration text", q.scheme);
    enum qb_status bst = qb_backend_parse(spec->backend[0] ? spec->backend : "auto",
                                          &q.po.backend, err);
    if (bst)
        return bst;
    struct qb_model *m = NULL;
    struct qb_qpipe_report rep = {0};
    enum qb_status st = qb_quantize_run(&q, progress, &m, &rep, err);
    if (!st) {
        qb_progress_log(progress, "wrote %s in %.1f s", spec->out_path, rep.seconds);
        if (out)
            snprintf(out->path, sizeof out->path, "%s", spec->out_path);
    }
    qb_qpipe_report_free(&rep);
    qb_model_free(m);
    return st;
}

/* ---- bench ------------------------------------------------------------------------ */

static enum qb_status bench_one(const struct qb_job_spec *spec, const char *scheme,
                                struct qb_progress *progress, struct qb_bench_result *res,
                                struct qb_model **model, struct qb_err *err)
{
    struct qb_model_load_opts lo = {.no_tokenizer = 1};
    struct qb_scheme sc;
    struct qb_bench_opts bo = {.p = spec->ctx > 0 ? spec->ctx : 512, .n = 128, .r = 3,
                               .threads = spec->n_threads};
    enum qb_status st = qb_backend_parse(spec->backend[0] ? spec->backend : "auto", &bo.backend,
                                         err);
    if (!st)
        st = qb_model_load(spec->model, &lo, model, err);
    if (!st && scheme) {
        st = qb_scheme_parse(scheme, spec->group, &sc, err);
        if (!st && sc.needs_calibration)
            st = qb_err_set(err, QB_ERR_USAGE, "bench %s: quantize it first (w), then bench the "
                            "written model", scheme);
        if (!st)
            st = qb_model_apply_scheme(*model, &sc, progress, err);
    }
    if (!st)
        st = qb_bench_run(*model, &bo, progress, res, err);
    return st;
}

static void bench_row(const struct qb_job_spec *spec, const struct qb_model *m,
                      const struct qb_bench_result *res, const struct qb_bench_result *base,
                      struct qb_result *row)
{
    qb_result_init(row);
    snprintf(row->kind, sizeof row->kind, "bench");
    snprintf(row->model, sizeof row->model, "%s", spec->model);
    snprintf(row->scheme, sizeof row->scheme, "%s", m->scheme.name);
    row->baseline = base == res;
    row->bits_per_weight = 8.0 * (double)qb_model_decoder_bytes(m) /
                           (double)qb_model_decoder_params(m);
    row->size_bytes = (int64_t)qb_model_weight_bytes(m);
    row->pp_tps = res->pp.mean;
    row->tg_tps = res->tg.mean;
    row->pp_tps_baseline = base->pp.mean;
    row->tg_tps_baseline = base->tg.mean;
    snprintf(row->backend, sizeof row->backend, "%s", qb_backend_name(res->backend));
    snprintf(row->gpu, sizeof row->gpu, "%s", spec->gpu);
    snprintf(row->driver, sizeof row->driver, "%s", spec->driver);
    snprintf(row->cuda, sizeof row->cuda, "%s", spec->cuda);
}

/* pp/tg tokens/s of the baseline and then of spec->schemes[0] (llama-bench style). */
static enum qb_status run_bench(const struct qb_job_spec *spec, struct qb_progress *progress,
                                struct qb_job_output *out, struct qb_err *err)
{
    struct qb_bench_result base, res;
    struct qb_model *mb = NULL, *ms = NULL;
    struct qb_result row;
    enum qb_status st = bench_one(spec, NULL, progress, &base, &mb, err);
    if (!st && spec->n_schemes > 0)
        st = bench_one(spec, spec->schemes[0], progress, &res, &ms, err);
    if (!st && out) {
        bench_row(spec, mb, &base, &base, &row);
        if (qb_results_push(&out->rows, &row))
            st = qb_err_set(err, QB_ERR_NOMEM, "out of memory");
        if (!st && ms) {
            bench_row(spec, ms, &res, &base, &row);
            if (qb_results_push(&out->rows, &row))
                st = qb_err_set(err, QB_ERR_NOMEM, "out of memory");
        }
    }
    qb_model_free(mb);
    qb_model_free(ms);
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
    if (spec->kind == QB_JOB_DOCTOR)
        return run_doctor(spec, progress, out, err);
    if (spec->kind == QB_JOB_QUANTIZE)
        return run_quantize(spec, progress, out, err);
    if (spec->kind == QB_JOB_BENCH)
        return run_bench(spec, progress, out, err);
#ifdef QB_JOB_HAVE_HUB
    if (spec->kind == QB_JOB_PULL)
        return run_pull(spec, progress, out, err);
#endif
    return qb_err_set(err, QB_ERR_UNSUPPORTED, "%s is not available: %s is not in this build",
                      qb_job_kind_name(spec->kind), missing_module(spec->kind));
}

enum qb_status qb_job_run(const struct qb_job_spec *spec, struct qb_progress *progress,
                          struct qb_job_output *out, struct qb_err *err)
{
    qb_progress_begin(progress, spec->kind, "starting");
    return qb_job_run_begun(spec, progress, out, err);
}

enum qb_status qb_job_run_begun(const struct qb_job_spec *spec, struct qb_progress *progress,
                                struct qb_job_output *out, struct qb_err *err)
{
    struct qb_job_output local;
    struct qb_err lerr = {0};
    if (!err)
        err = &lerr;
    if (!out)
        out = &local;
    memset(out, 0, sizeof *out);
    enum qb_status st = check_spec(spec, err);
    if (!st)
        st = dispatch(spec, progress, out, err);
    if (st == QB_ERR_CANCELLED)
        qb_progress_log(progress, "cancelled; nothing recorded");
    qb_progress_finish(progress, st, err);
    if (st || out == &local)
        qb_job_output_clear(out);
    return st;
}
