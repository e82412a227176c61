/*
 * dashboard_bridge.c - the dashboard's side of the worker: submitting jobs to
 * the queue, copying the progress snapshot, turning finished jobs into
 * Results rows, and the GPU telemetry adapter.
 *
 * The worker's wake function writes one byte to the self-pipe (non-blocking;
 * a full pipe already means "wake up", so EAGAIN is fine). The UI thread never
 * looks at the worker's state: it reads qb_progress snapshots and takes done
 * records.
 *
 * Telemetry: when core/telemetry.h is in the build, a qb_tel sampler thread
 * runs at 4 Hz and the GPU pane reads its latest snapshot and history; else
 * the pane says the module is missing. Either way values carry validity flags
 * and render as N/A, never as stale numbers.
 */
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tui/dashboard_impl.h"

#if defined(__has_include)
#if __has_include("core/telemetry.h")
#include "core/telemetry.h"
#define DASH_HAVE_TELEMETRY 1
#endif
#endif

static void wake_ui(void *ctx)
{
    int fd = (int)(intptr_t)ctx;
    ssize_t w = write(fd, "w", 1);
    (void)w;
}

static void gpu_start(struct qb_dash *d)
{
    struct dash_gpu *g = &d->gpu;
#ifdef DASH_HAVE_TELEMETRY
    struct qb_tel *tel = NULL;
    struct qb_err err = {0};
    g->present = 1;
    if (qb_tel_create(NULL, &tel, &err) || qb_tel_start(tel, &err)) {
        snprintf(g->notice, sizeof g->notice, "telemetry: %.170s", err.msg);
        qb_tel_free(tel);
        return;
    }
    g->tel = tel;
    g->n_gpus = qb_tel_device_count(tel);
    if (g->n_gpus == 0) {
        const char *why = qb_tel_status(tel);
        if (why && strncmp(why, "no NVIDIA driver", 16) == 0)
            snprintf(g->notice, sizeof g->notice, "no GPU (no NVIDIA driver found)");
        else
            snprintf(g->notice, sizeof g->notice, "no GPU: %.180s", why ? why : "none found");
    }
#else
    g->present = 0;
    snprintf(g->notice, sizeof g->notice, "no GPU telemetry in this build");
#endif
}

static void gpu_stop(struct qb_dash *d)
{
#ifdef DASH_HAVE_TELEMETRY
    qb_tel_free(d->gpu.tel);
#endif
    d->gpu.tel = NULL;
}

#ifdef DASH_HAVE_TELEMETRY
static size_t copy_hist(struct qb_tel *tel, enum qb_tel_field f, float *v, unsigned char *ok)
{
    return qb_tel_history(tel, 0, f, v, ok, DASH_GPU_HIST);
}
#endif

void dash_gpu_sample(struct qb_dash *d)
{
#ifdef DASH_HAVE_TELEMETRY
    struct dash_gpu *g = &d->gpu;
    if (!g->tel || g->n_gpus == 0)
        return;
    struct qb_tel_snapshot snap;
    qb_tel_read(g->tel, &snap);
    if (snap.n_gpus < 1)
        return;
    const struct qb_tel_gpu *x = &snap.gpus[0];
    snprintf(g->name, sizeof g->name, "%s", qb_tel_has(x, QB_TEL_NAME) ? x->name : "");
    snprintf(g->driver, sizeof g->driver, "%.31s",
             qb_tel_has(x, QB_TEL_DRIVER_VERSION) ? x->driver_version : "");
    if (qb_tel_has(x, QB_TEL_CUDA_DRIVER_VERSION))
        snprintf(g->cuda, sizeof g->cuda, "%d.%d", x->cuda_driver_version / 1000,
                 (x->cuda_driver_version % 1000) / 10);
    g->cc_major = qb_tel_has(x, QB_TEL_COMPUTE_CAP) ? x->cc_major : 0;
    g->cc_minor = qb_tel_has(x, QB_TEL_COMPUTE_CAP) ? x->cc_minor : 0;
    g->v_mem = qb_tel_has(x, QB_TEL_MEM_USED) && qb_tel_has(x, QB_TEL_MEM_TOTAL);
    g->mem_used_gib = (double)x->mem_used_bytes / (1u << 30);
    g->mem_total_gib = (double)x->mem_total_bytes / (1u << 30);
    g->v_sm = qb_tel_has(x, QB_TEL_CLOCK_SM);
    g->sm_mhz = x->clock_sm_mhz;
    g->v_memclk = qb_tel_has(x, QB_TEL_CLOCK_MEM);
    g->mem_mhz = x->clock_mem_mhz;
    g->v_util = qb_tel_has(x, QB_TEL_UTIL_GPU);
    g->util_pct = x->util_gpu_pct;
    g->v_temp = qb_tel_has(x, QB_TEL_TEMPERATURE);
    g->temp_c = x->temperature_c;
    g->v_power = qb_tel_has(x, QB_TEL_POWER);
    g->power_w = x->power_mw / 1000.0;
    g->v_power_limit = qb_tel_has(x, QB_TEL_POWER_LIMIT);
    g->power_limit_w = x->power_limit_mw / 1000.0;
    g->n_hist = copy_hist(g->tel, QB_TEL_UTIL_GPU, g->hist_util, g->ok_util);
    copy_hist(g->tel, QB_TEL_MEM_USED, g->hist_mem, g->ok_mem);
    copy_hist(g->tel, QB_TEL_POWER, g->hist_power, g->ok_power);
    copy_hist(g->tel, QB_TEL_TEMPERATURE, g->hist_temp, g->ok_temp);
#else
    (void)d;
#endif
}

enum qb_status dash_bridge_start(struct qb_dash *d, int wake_fd, struct qb_err *err)
{
    enum qb_status st = qb_jobq_create(&d->jobq, err);
    if (st)
        return st;
    qb_jobq_set_wake(d->jobq, wake_ui, (void *)(intptr_t)wake_fd);
    qb_progress_read(qb_jobq_progress(d->jobq), &d->snap);
    gpu_start(d);
    return QB_OK;
}

/* Cancel everything and join the worker. A job stuck in a call that does not
 * poll the cancel flag (a Hub request waiting on its timeout) is left to the
 * process exit after a few seconds rather than holding the user's shell:
 * pulls keep only resumable .incomplete parts, evals write nothing. */
void dash_bridge_stop(struct qb_dash *d)
{
    if (d->jobq) {
        qb_jobq_set_wake(d->jobq, NULL, NULL);
        qb_jobq_cancel(d->jobq, 1);
        if (qb_jobq_wait_idle(d->jobq, 5.0)) {
            qb_jobq_free(d->jobq);
        } else {
            fprintf(stderr, "quantbench: the running job did not stop within 5 s; "
                            "leaving it to the process exit\n");
            d->search_req = NULL; /* the worker may still write into it */
        }
        d->jobq = NULL;
    }
    gpu_stop(d);
}

int dash_job_running(const struct qb_dash *d)
{
    return d->jobq && qb_jobq_busy(d->jobq);
}

/* ---- results view ----------------------------------------------------------- */

/* The newest baseline row of model in rs, or NULL. */
static const struct qb_result *latest_baseline(const struct qb_results *rs, const char *model)
{
    for (size_t i = rs->n; i-- > 0;) {
        if (rs->items[i].baseline && (!model || strcmp(rs->items[i].model, model) == 0))
            return &rs->items[i];
    }
    return NULL;
}

void dash_results_resort(struct qb_dash *d)
{
    struct qb_results *v = &d->view;
    const struct qb_results *src = d->show_history ? &d->history : &d->session;
    v->n = 0;
    d->view_base = -1;
    const struct dash_model *m = dash_model_active(d);
    if (!m)
        m = dash_model_selected(d);
    const struct qb_result *base = latest_baseline(src, m ? m->path : NULL);
    if (!base)
        base = latest_baseline(src, NULL);
    for (size_t i = 0; i < src->n; i++) {
        const struct qb_result *r = &src->items[i];
        if (r == base || (!d->show_history && r->baseline))
            continue;
        if (qb_results_push(v, r))
            dash_fatal_oom(d);
    }
    qb_results_sort(v, d->sort_key, d->sort_desc);
    if (base) {
        if (qb_results_push(v, base))
            dash_fatal_oom(d);
        memmove(v->items + 1, v->items, (v->n - 1) * sizeof *v->items);
        v->items[0] = *base;
        d->view_base = 0;
    }
    if (d->results_sel >= (int)v->n)
        d->results_sel = v->n ? (int)v->n - 1 : 0;
}

const struct qb_results *dash_results_rows(const struct qb_dash *d)
{
    return &d->view;
}

void dash_results_reload(struct qb_dash *d)
{
    struct qb_err err = {0};
    qb_results_clear(&d->history);
    if (qb_results_load(NULL, &d->history, &err))
        dash_status(d, QB_TH_WARN, "results history: %s", err.msg);
    else if (d->history.skipped)
        dash_status(d, QB_TH_WARN, "results history: skipped %d bad line(s), first %s",
                    d->history.skipped, d->history.warning);
    dash_results_resort(d);
}

void dash_results_export(struct qb_dash *d)
{
    char base[4096], path[4200];
    struct qb_err err = {0};
    if (d->view.n == 0) {
        dash_status(d, QB_TH_WARN, "nothing to export yet: run an eval first (r)");
        return;
    }
    if (qb_results_default_path(base, sizeof base, &err)) {
        dash_status(d, QB_TH_BAD, "export: %s", err.msg);
        return;
    }
    char *slash = strrchr(base, '/');
    if (slash)
        *slash = '\0';
    long stamp = (long)time(NULL);
    static const enum qb_export_format fmts[] = {QB_EXPORT_CSV, QB_EXPORT_JSON,
                                                 QB_EXPORT_MARKDOWN};
    for (size_t i = 0; i < QB_ARRAY_LEN(fmts); i++) {
        snprintf(path, sizeof path, "%s/export-%ld.%s", base, stamp,
                 qb_export_format_ext(fmts[i]));
        if (qb_results_export_file(&d->view, fmts[i], path, &err)) {
            dash_status(d, QB_TH_BAD, "export: %s", err.msg);
            return;
        }
    }
    dash_status(d, QB_TH_GOOD, "exported %zu rows to %s/export-%ld.{csv,json,md}", d->view.n,
                base, stamp);
}

/* ---- jobs ------------------------------------------------------------------- */

static void default_text_path(const struct qb_dash *d, char *buf, size_t size)
{
    const char *env = getenv("QB_SOURCE_DIR");
    if (d->opt.text_path[0])
        snprintf(buf, size, "%s", d->opt.text_path);
    else
        snprintf(buf, size, "%s/tests/data/eval-gutenberg.txt",
                 env && env[0] ? env : QB_SOURCE_DIR);
}

static int fill_common(struct qb_dash *d, struct qb_job_spec *s, enum qb_job_kind kind)
{
    qb_job_spec_init(s, kind);
    const struct dash_model *m = dash_model_selected(d);
    if (!m) {
        dash_status(d, QB_TH_BAD, "no model selected: pick one in the Models pane");
        return -1;
    }
    if (!m->path[0]) {
        dash_status(d, QB_TH_BAD, "%s is not downloaded: pull it first (quantbench pull %s)",
                    m->id, m->id);
        return -1;
    }
    d->model_active = d->model_sel;
    snprintf(s->model, sizeof s->model, "%s", m->path);
    snprintf(s->revision, sizeof s->revision, "%s", m->revision);
    default_text_path(d, s->text_path, sizeof s->text_path);
    snprintf(s->backend, sizeof s->backend, "%s", d->opt.backend);
    s->ctx = d->opt.ctx;
    s->max_chunks = dash_eval_chunks(d);
    s->group = dash_group_size(d);
    s->act_order = d->act_order;
    s->calib_samples = dash_calib_samples(d);
    dash_calib_path(d, s->calib_path, sizeof s->calib_path);
    snprintf(s->gpu, sizeof s->gpu, "%s", d->gpu.name);
    snprintf(s->driver, sizeof s->driver, "%s", d->gpu.driver);
    snprintf(s->cuda, sizeof s->cuda, "%s", d->gpu.cuda);
    return 0;
}

static int is_baseline_scheme(const struct dash_model *m, const struct dash_scheme *s)
{
    return s->s.method == QB_METHOD_NONE && strcmp(s->s.name, m->dtype) == 0;
}

uint64_t dash_submit(struct qb_dash *d, const struct qb_job_spec *s, const char *title)
{
    struct qb_err err = {0};
    int busy = qb_jobq_busy(d->jobq);
    if (qb_jobq_submit(d->jobq, s, &d->job_id, &err)) {
        dash_status(d, QB_TH_BAD, "%s", err.msg);
        return 0;
    }
    d->cancel_requested = 0;
    snprintf(d->job_title, sizeof d->job_title, "%s", title);
    if (busy)
        dash_status(d, QB_TH_TEXT, "queued: %s (runs after the current job)", title);
    else
        dash_status(d, QB_TH_TEXT, "started: %s", title);
    return d->job_id;
}

void dash_submit_eval(struct qb_dash *d, int compare)
{
    struct qb_job_spec s;
    char title[96];
    if (fill_common(d, &s, compare ? QB_JOB_COMPARE : QB_JOB_EVAL))
        return;
    const struct dash_model *m = dash_model_selected(d);
    for (int i = 0; compare && i < d->n_schemes && s.n_schemes < QB_JOB_MAX_SCHEMES; i++) {
        if (d->schemes[i].marked && !is_baseline_scheme(m, &d->schemes[i]))
            snprintf(s.schemes[s.n_schemes++], sizeof s.schemes[0], "%s", d->schemes[i].s.name);
    }
    if (compare && s.n_schemes == 0) {
        dash_status(d, QB_TH_WARN, "mark schemes with Space in Method & precision, then C");
        return;
    }
    if (!compare && d->n_schemes > 0) {
        const struct dash_scheme *sel = &d->schemes[d->scheme_sel];
        if (!is_baseline_scheme(m, sel)) {
            snprintf(s.schemes[0], sizeof s.schemes[0], "%s", sel->s.name);
            s.n_schemes = 1;
        }
    }
    if (compare)
        snprintf(title, sizeof title, "compare %d schemes", s.n_schemes);
    else
        snprintf(title, sizeof title, "eval %.40s", s.n_schemes ? s.schemes[0] : "baseline");
    dash_submit(d, &s, title);
}

void dash_submit_doctor(struct qb_dash *d)
{
    struct qb_job_spec s;
    qb_job_spec_init(&s, QB_JOB_DOCTOR);
    const struct dash_model *m = dash_model_selected(d);
    if (m)
        snprintf(s.model, sizeof s.model, "%s", m->path);
    snprintf(s.backend, sizeof s.backend, "%s", d->opt.backend);
    if (!qb_job_kind_available(QB_JOB_DOCTOR)) {
        snprintf(d->doctor_verdict, sizeof d->doctor_verdict,
                 "doctor: not available, the doctor module is not in this build");
        dash_status(d, QB_TH_WARN, "%s", d->doctor_verdict);
        return;
    }
    dash_submit(d, &s, "doctor");
}

/* Where a quantized copy goes: $XDG_DATA_HOME/quantbench/models/NAME-SCHEME[.gguf]. */
static int quantize_out_path(const struct dash_model *m, const char *scheme, char *buf,
                             size_t size)
{
    const char *data = getenv("XDG_DATA_HOME"), *home = getenv("HOME");
    char base[QB_JOB_PATH_MAX];
    if (data && *data)
        snprintf(base, sizeof base, "%s/quantbench/models", data);
    else if (home && *home)
        snprintf(base, sizeof base, "%s/.local/share/quantbench/models", home);
    else
        return -1;
    const char *name = strrchr(m->path, '/');
    name = name ? name + 1 : m->path;
    char cmd[QB_JOB_PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "%s", base);
    for (char *p = cmd + 1; *p; p++) { /* mkdir -p */
        if (*p == '/') {
            *p = '\0';
            mkdir(cmd, 0755);
            *p = '/';
        }
    }
    mkdir(cmd, 0755);
    int n = snprintf(buf, size, "%s/%.200s-%s%s", base, name, scheme,
                     strncmp(scheme, "gguf-", 5) == 0 ? ".gguf" : "");
    return n < 0 || (size_t)n >= size ? -1 : 0;
}

void dash_submit_quantize(struct qb_dash *d)
{
    struct qb_job_spec s;
    char title[96];
    if (fill_common(d, &s, QB_JOB_QUANTIZE) || d->n_schemes == 0)
        return;
    const struct dash_model *m = dash_model_selected(d);
    const struct dash_scheme *sel = &d->schemes[d->scheme_sel];
    if (sel->s.method == QB_METHOD_NONE) {
        dash_status(d, QB_TH_WARN, "pick a quantized scheme in Method & precision, then w");
        return;
    }
    snprintf(s.schemes[0], sizeof s.schemes[0], "%s", sel->s.name);
    s.n_schemes = 1;
    if (quantize_out_path(m, sel->s.name, s.out_path, sizeof s.out_path)) {
        dash_status(d, QB_TH_BAD, "no place to write: set HOME or XDG_DATA_HOME");
        return;
    }
    snprintf(title, sizeof title, "quantize %.40s", sel->s.name);
    dash_submit(d, &s, title);
}

void dash_submit_bench(struct qb_dash *d)
{
    struct qb_job_spec s;
    char title[96];
    if (fill_common(d, &s, QB_JOB_BENCH) || d->n_schemes == 0)
        return;
    const struct dash_model *m = dash_model_selected(d);
    const struct dash_scheme *sel = &d->schemes[d->scheme_sel];
    if (!is_baseline_scheme(m, sel)) {
        snprintf(s.schemes[0], sizeof s.schemes[0], "%s", sel->s.name);
        s.n_schemes = 1;
    }
    snprintf(title, sizeof title, "bench %.40s", s.n_schemes ? s.schemes[0] : "baseline");
    dash_submit(d, &s, title);
}

void dash_cancel_job(struct qb_dash *d)
{
    if (!dash_job_running(d)) {
        dash_status(d, QB_TH_DIM, "no job is running");
        return;
    }
    qb_jobq_cancel(d->jobq, 1);
    d->cancel_requested = 1;
    dash_status(d, QB_TH_WARN, "cancelling...");
}

static void take_rows(struct qb_dash *d, const struct qb_results *rows)
{
    for (size_t i = 0; i < rows->n; i++) {
        if (qb_results_push(&d->session, &rows->items[i]) ||
            qb_results_push(&d->history, &rows->items[i]))
            dash_fatal_oom(d);
    }
}

static void finish_job(struct qb_dash *d, struct qb_job_done *done)
{
    if (dash_models_job_done(d, done)) {
        qb_job_output_clear(&done->out);
        return;
    }
    if (done->status == QB_OK) {
        take_rows(d, &done->out.rows);
        if (done->kind == QB_JOB_DOCTOR)
            snprintf(d->doctor_verdict, sizeof d->doctor_verdict, "doctor: %.240s",
                     done->out.verdict);
        const struct qb_results *r = &done->out.rows;
        if (r->n > 0)
            dash_status(d, QB_TH_GOOD, "%s done in %.1f s: %s ppl %.4g",
                        qb_job_kind_name(done->kind), done->seconds,
                        r->items[r->n - 1].scheme, r->items[r->n - 1].ppl);
        else
            dash_status(d, QB_TH_GOOD, "%s done in %.1f s", qb_job_kind_name(done->kind),
                        done->seconds);
        dash_results_resort(d);
    } else if (done->status == QB_ERR_CANCELLED) {
        dash_status(d, QB_TH_WARN, "%s cancelled; nothing recorded",
                    qb_job_kind_name(done->kind));
    } else {
        if (done->kind == QB_JOB_DOCTOR)
            snprintf(d->doctor_verdict, sizeof d->doctor_verdict, "doctor: %.200s",
                     done->error);
        dash_status(d, QB_TH_BAD, "%s failed: %s", qb_job_kind_name(done->kind), done->error);
    }
    qb_job_output_clear(&done->out);
}

int dash_bridge_poll(struct qb_dash *d)
{
    if (!d->jobq)
        return 0;
    uint64_t seq = d->snap.seq;
    qb_progress_read(qb_jobq_progress(d->jobq), &d->snap);
    int changed = d->snap.seq != seq;
    struct qb_job_done done;
    while (qb_jobq_take_done(d->jobq, &done)) {
        finish_job(d, &done);
        changed = 1;
    }
    if (!qb_jobq_busy(d->jobq))
        d->cancel_requested = 0;
    return changed;
}
