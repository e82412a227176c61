/*
 * progress.h - the one progress snapshot the whole product shares.
 *
 * A job (eval, quantize with calibration, compare, bench, pull, doctor) runs on
 * a worker thread and publishes its state into a struct qb_progress. Readers
 * (the CLI progress bar, --progress-json, the dashboard) never look at the
 * worker's internals: they copy a struct qb_progress_snapshot under a short
 * lock with qb_progress_read(), and may register a listener that is called
 * (on the worker thread, outside the lock) after every publish so they can
 * wake up (the dashboard writes a byte to its self-pipe there).
 *
 * Cancellation is cooperative: qb_progress_cancel() sets a flag, and workers
 * call qb_progress_cancelled() between steps and unwind with QB_ERR_CANCELLED,
 * leaving nothing half-written on disk.
 *
 * Every function accepts a NULL progress and then does nothing (returns 0 for
 * qb_progress_cancelled), so library code can report unconditionally.
 * Thread safety: all functions may be called from any thread.
 */
#ifndef QB_PROGRESS_H
#define QB_PROGRESS_H

#include <stdint.h>

#include "qb_common.h"

enum qb_job_kind {
    QB_JOB_NONE = 0,
    QB_JOB_PULL,
    QB_JOB_QUANTIZE,
    QB_JOB_EVAL,
    QB_JOB_BENCH,
    QB_JOB_COMPARE,
    QB_JOB_DOCTOR,
    QB_JOB_KIND_COUNT
};

const char *qb_job_kind_name(enum qb_job_kind kind); /* "eval"; never NULL */

#define QB_PROGRESS_LOG_LINES 8
#define QB_PROGRESS_LINE_MAX 160

struct qb_progress_snapshot {
    enum qb_job_kind kind;
    int running;                 /* 1 between begin and finish */
    int finished;                /* 1 after finish (status valid) */
    enum qb_status status;       /* final status once finished */
    char stage[64];              /* "baseline logits", "gptq layer", ... */
    int layer, n_layers;         /* layer i of N (1-based); n_layers 0 = not layered */
    int step, n_steps;           /* step within the layer; n_steps 0 = none */
    double fraction;             /* 0..1 of the whole job */
    int64_t done, total;         /* samples/bytes/tokens done of total (total 0 = unknown) */
    char unit[16];               /* "tokens", "bytes", "samples", "chunks" */
    double elapsed_s;            /* seconds since begin */
    double eta_s;                /* seconds left; < 0 when unknown */
    double rate;                 /* units per second; 0 when unknown */
    char metric_name[32];        /* "ppl", "recon err", ... */
    double metric;
    int metric_valid;
    int n_log;                   /* lines in log[], oldest first */
    char log[QB_PROGRESS_LOG_LINES][QB_PROGRESS_LINE_MAX];
    char error[QB_ERR_MSG_MAX];  /* the error line when status != QB_OK */
    uint64_t seq;                /* bumps on every publish */
};

struct qb_progress;

typedef void (*qb_progress_listener)(void *ctx, const struct qb_progress *p);

struct qb_progress *qb_progress_create(void); /* NULL on OOM; free with qb_progress_free */
void qb_progress_free(struct qb_progress *p);

/* Called after every publish, outside the lock, on the publishing thread. */
void qb_progress_set_listener(struct qb_progress *p, qb_progress_listener fn, void *ctx);

/* Start a job: resets the snapshot (keeps the listener), clears cancel. */
void qb_progress_begin(struct qb_progress *p, enum qb_job_kind kind, const char *stage);
void qb_progress_stage(struct qb_progress *p, const char *stage);
void qb_progress_layer(struct qb_progress *p, int layer, int n_layers);
void qb_progress_step(struct qb_progress *p, int step, int n_steps);
/* fraction of the whole job in [0,1]; done/total in `unit` (unit may be NULL to keep). */
void qb_progress_update(struct qb_progress *p, double fraction, int64_t done, int64_t total,
                        const char *unit);
void qb_progress_metric(struct qb_progress *p, const char *name, double value);
void qb_progress_log(struct qb_progress *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* End the job; err may be NULL (or hold the error line for a failed status). */
void qb_progress_finish(struct qb_progress *p, enum qb_status status, const struct qb_err *err);

void qb_progress_read(const struct qb_progress *p, struct qb_progress_snapshot *out);

void qb_progress_cancel(struct qb_progress *p);
int qb_progress_cancelled(const struct qb_progress *p);

/* Relaying an inner job's progress into an outer one: log onto outer the lines
 * of s that come after last_log (the newest line relayed so far, "" at first),
 * then remember s's newest line in last_log. */
void qb_progress_relay_logs(struct qb_progress *outer, const struct qb_progress_snapshot *s,
                            char last_log[QB_PROGRESS_LINE_MAX]);

/* One JSON line (no newline) describing the snapshot, into buf; returns buf. */
char *qb_progress_to_json(const struct qb_progress_snapshot *s, char *buf, size_t size);

#endif /* QB_PROGRESS_H */
