/*
 * progress.c - the shared progress snapshot (see progress.h).
 *
 * One mutex guards the snapshot; publishing copies small strings and numbers
 * only, so readers hold the lock for microseconds. The cancel flag is an
 * atomic int so workers can poll it without taking the lock.
 */
#include "progress.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <string.h>

struct qb_progress {
    pthread_mutex_t mu;
    struct qb_progress_snapshot snap;
    double t_begin;
    atomic_int cancel;
    qb_progress_listener listener;
    void *listener_ctx;
};

const char *qb_job_kind_name(enum qb_job_kind kind)
{
    switch (kind) {
    case QB_JOB_NONE: return "idle";
    case QB_JOB_PULL: return "pull";
    case QB_JOB_QUANTIZE: return "quantize";
    case QB_JOB_EVAL: return "eval";
    case QB_JOB_BENCH: return "bench";
    case QB_JOB_COMPARE: return "compare";
    case QB_JOB_DOCTOR: return "doctor";
    case QB_JOB_KIND_COUNT: break;
    }
    return "?";
}

struct qb_progress *qb_progress_create(void)
{
    struct qb_progress *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    pthread_mutex_init(&p->mu, NULL);
    p->snap.eta_s = -1;
    atomic_init(&p->cancel, 0);
    return p;
}

void qb_progress_free(struct qb_progress *p)
{
    if (!p)
        return;
    pthread_mutex_destroy(&p->mu);
    free(p);
}

void qb_progress_set_listener(struct qb_progress *p, qb_progress_listener fn, void *ctx)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->listener = fn;
    p->listener_ctx = ctx;
    pthread_mutex_unlock(&p->mu);
}

static void copy_str(char *dst, size_t size, const char *src)
{
    if (!src)
        return;
    size_t n = strlen(src);
    if (n >= size)
        n = size - 1;
    memcpy(dst, src, n);
    dst[n] = '\0';
}

/* Update timing fields and bump seq; caller holds the lock. */
static void touch_locked(struct qb_progress *p)
{
    struct qb_progress_snapshot *s = &p->snap;
    s->elapsed_s = qb_now_seconds() - p->t_begin;
    if (s->fraction > 0.001 && s->fraction < 1.0 && s->running)
        s->eta_s = s->elapsed_s * (1.0 - s->fraction) / s->fraction;
    else if (s->fraction >= 1.0)
        s->eta_s = 0;
    else
        s->eta_s = -1;
    s->rate = (s->elapsed_s > 0 && s->done > 0) ? (double)s->done / s->elapsed_s : 0;
    s->seq++;
}

static void publish(struct qb_progress *p)
{
    qb_progress_listener fn = p->listener;
    void *ctx = p->listener_ctx;
    pthread_mutex_unlock(&p->mu);
    if (fn)
        fn(ctx, p);
}

void qb_progress_begin(struct qb_progress *p, enum qb_job_kind kind, const char *stage)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    uint64_t seq = p->snap.seq;
    memset(&p->snap, 0, sizeof p->snap);
    p->snap.seq = seq;
    p->snap.kind = kind;
    p->snap.running = 1;
    p->snap.eta_s = -1;
    copy_str(p->snap.stage, sizeof p->snap.stage, stage ? stage : "");
    p->t_begin = qb_now_seconds();
    atomic_store(&p->cancel, 0);
    touch_locked(p);
    publish(p);
}

void qb_progress_stage(struct qb_progress *p, const char *stage)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    copy_str(p->snap.stage, sizeof p->snap.stage, stage);
    touch_locked(p);
    publish(p);
}

void qb_progress_layer(struct qb_progress *p, int layer, int n_layers)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->snap.layer = layer;
    p->snap.n_layers = n_layers;
    touch_locked(p);
    publish(p);
}

void qb_progress_step(struct qb_progress *p, int step, int n_steps)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->snap.step = step;
    p->snap.n_steps = n_steps;
    touch_locked(p);
    publish(p);
}

void qb_progress_update(struct qb_progress *p, double fraction, int64_t done, int64_t total,
                        const char *unit)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    if (fraction < 0)
        fraction = 0;
    if (fraction > 1)
        fraction = 1;
    p->snap.fraction = fraction;
    p->snap.done = done;
    p->snap.total = total;
    if (unit)
        copy_str(p->snap.unit, sizeof p->snap.unit, unit);
    touch_locked(p);
    publish(p);
}

void qb_progress_metric(struct qb_progress *p, const char *name, double value)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    copy_str(p->snap.metric_name, sizeof p->snap.metric_name, name);
    p->snap.metric = value;
    p->snap.metric_valid = 1;
    touch_locked(p);
    publish(p);
}

void qb_progress_log(struct qb_progress *p, const char *fmt, ...)
{
    if (!p)
        return;
    char line[QB_PROGRESS_LINE_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    pthread_mutex_lock(&p->mu);
    struct qb_progress_snapshot *s = &p->snap;
    if (s->n_log == QB_PROGRESS_LOG_LINES) {
        memmove(s->log[0], s->log[1], sizeof s->log[0] * (QB_PROGRESS_LOG_LINES - 1));
        s->n_log--;
    }
    copy_str(s->log[s->n_log], sizeof s->log[0], line);
    s->n_log++;
    touch_locked(p);
    publish(p);
}

void qb_progress_finish(struct qb_progress *p, enum qb_status status, const struct qb_err *err)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->mu);
    p->snap.running = 0;
    p->snap.finished = 1;
    p->snap.status = status;
    if (status == QB_OK) {
        p->snap.fraction = 1.0;
        p->snap.error[0] = '\0';
    } else {
        const char *msg = (err && err->msg[0]) ? err->msg : qb_status_str(status);
        copy_str(p->snap.error, sizeof p->snap.error, msg);
    }
    touch_locked(p);
    publish(p);
}

void qb_progress_read(const struct qb_progress *p, struct qb_progress_snapshot *out)
{
    if (!p) {
        memset(out, 0, sizeof *out);
        out->eta_s = -1;
        return;
    }
    struct qb_progress *mp = (struct qb_progress *)p;
    pthread_mutex_lock(&mp->mu);
    *out = p->snap;
    if (out->running)
        out->elapsed_s = qb_now_seconds() - p->t_begin;
    pthread_mutex_unlock(&mp->mu);
}

void qb_progress_cancel(struct qb_progress *p)
{
    if (p)
        atomic_store(&p->cancel, 1);
}

int qb_progress_cancelled(const struct qb_progress *p)
{
    if (!p)
        return 0;
    return atomic_load(&((struct qb_progress *)p)->cancel);
}

static void json_escape(char *dst, size_t size, const char *src)
{
    size_t j = 0;
    for (size_t i = 0; src[i] && j + 7 < size; i++) {
        unsigned char c = (unsigned char)src[i];
        if (c == '"' || c == '\\') {
            dst[j++] = '\\';
            dst[j++] = (char)c;
        } else if (c < 0x20) {
            j += (size_t)snprintf(dst + j, size - j, "\\u%04x", c);
        } else {
            dst[j++] = (char)c;
        }
    }
    dst[j] = '\0';
}

char *qb_progress_to_json(const struct qb_progress_snapshot *s, char *buf, size_t size)
{
    char stage[160], metric[80], last[QB_PROGRESS_LINE_MAX * 2], error[QB_ERR_MSG_MAX * 2];
    json_escape(stage, sizeof stage, s->stage);
    json_escape(metric, sizeof metric, s->metric_name);
    json_escape(last, sizeof last, s->n_log ? s->log[s->n_log - 1] : "");
    json_escape(error, sizeof error, s->error);
    char eta[32], met[48];
    if (s->eta_s >= 0)
        snprintf(eta, sizeof eta, "%.3f", s->eta_s);
    else
        snprintf(eta, sizeof eta, "null");
    if (s->metric_valid)
        snprintf(met, sizeof met, "%.9g", s->metric);
    else
        snprintf(met, sizeof met, "null");
    snprintf(buf, size,
             "{\"job\":\"%s\",\"stage\":\"%s\",\"layer\":%d,\"n_layers\":%d,\"step\":%d,"
             "\"n_steps\":%d,\"fraction\":%.6f,\"done\":%lld,\"total\":%lld,\"unit\":\"%s\","
             "\"elapsed_s\":%.3f,\"eta_s\":%s,\"metric_name\":\"%s\",\"metric\":%s,"
             "\"log\":\"%s\",\"running\":%s,\"finished\":%s,\"status\":\"%s\",\"error\":%s%s%s}",
             qb_job_kind_name(s->kind), stage, s->layer, s->n_layers, s->step, s->n_steps,
             s->fraction, (long long)s->done, (long long)s->total, s->unit, s->elapsed_s, eta,
             metric, met, last, s->running ? "true" : "false", s->finished ? "true" : "false",
             qb_status_str(s->status), s->error[0] ? "\"" : "null", s->error[0] ? error : "",
             s->error[0] ? "\"" : "");
    return buf;
}

void qb_progress_relay_logs(struct qb_progress *outer, const struct qb_progress_snapshot *s,
                            char last_log[QB_PROGRESS_LINE_MAX])
{
    int start = 0;
    for (int i = s->n_log - 1; i >= 0 && last_log[0]; i--) {
        if (strcmp(s->log[i], last_log) == 0) {
            start = i + 1;
            break;
        }
    }
    for (int i = start; i < s->n_log; i++)
        qb_progress_log(outer, "%s", s->log[i]);
    if (s->n_log > 0)
        snprintf(last_log, QB_PROGRESS_LINE_MAX, "%s", s->log[s->n_log - 1]);
}
