/*
 * job.h - the work the product does (pull, quantize, eval, bench, compare,
 * doctor) as jobs, run in the foreground (CLI) or by one worker thread (the
 * dashboard).
 *
 * A job is described by a struct qb_job_spec (plain values, copied on
 * submit). qb_job_run() runs one on the calling thread; struct qb_jobq owns a
 * FIFO queue and ONE worker thread that runs jobs one after another. Both
 * publish through a struct qb_progress (progress.h): the UI copies the
 * snapshot with qb_progress_read() and never touches the worker's state.
 *
 * Wake-ups: qb_jobq_set_wake() registers a function called on the worker
 * thread after every progress publish and after every job ends (the
 * dashboard writes one byte to its self-pipe there; it must not block).
 *
 * Cancel is cooperative: qb_jobq_cancel() sets the running job's cancel flag
 * (qb_progress_cancel) and drops queued jobs if asked; a cancelled job ends
 * with QB_ERR_CANCELLED and records nothing (no results line, no partial
 * file). Finished jobs (ok, failed or cancelled) are kept in a done list the
 * caller drains with qb_jobq_take_done().
 *
 * Results: every finished eval/compare/bench appends its rows to the results
 * history (results.h) unless spec.no_record is set, and returns them in
 * struct qb_job_output.
 *
 * Kinds whose module is not in this build (pull, quantize, bench, doctor
 * until their rooms land) end at once with QB_ERR_UNSUPPORTED and a line
 * saying which module is missing; they never crash the worker.
 */
#ifndef QB_JOB_H
#define QB_JOB_H

#include <stdint.h>

#include "progress.h"
#include "qb_common.h"
#include "results.h"

#define QB_JOB_MAX_SCHEMES 16
#define QB_JOB_PATH_MAX 1024

struct qb_job_output;
struct qb_job_spec;

/* A custom job body (tests, and callers with work of their own): runs on the
 * worker thread, publishes through progress, checks qb_progress_cancelled. */
typedef enum qb_status (*qb_job_fn)(const struct qb_job_spec *spec, struct qb_progress *progress,
                                    struct qb_job_output *out, struct qb_err *err);

struct qb_job_spec {
    enum qb_job_kind kind;
    char model[QB_JOB_PATH_MAX];      /* checkpoint dir (eval/compare/quantize/bench) or
                                         ORG/NAME[@REV] (pull) */
    char revision[64];                /* for the results history; "" for a local dir */
    char schemes[QB_JOB_MAX_SCHEMES][32]; /* eval: [0] or none (baseline only); compare: all */
    int n_schemes;
    int group;                        /* group size override, 0 = scheme default */
    int act_order;                    /* GPTQ act-order */
    char calib_path[QB_JOB_PATH_MAX]; /* calibration text ("" = default) */
    int calib_samples;                /* 0 = method default */
    char text_path[QB_JOB_PATH_MAX];  /* eval text file */
    int ctx;                          /* eval tokens per chunk, 0 = 512 */
    int max_chunks;                   /* 0 = all */
    int n_threads;                    /* 0 = all cores */
    char backend[8];                  /* "auto", "cpu", "cuda" ("" = auto) */
    int no_speed;                     /* compare: skip the pp/tg speed test of every row */
    int speed_p, speed_n, speed_r;    /* compare: its -p/-n/-r; 0 = QB_COMPARE_SPEED_* */
    char out_path[QB_JOB_PATH_MAX];   /* quantize: output folder */
    char results_path[QB_JOB_PATH_MAX]; /* "" = the default history file */
    int no_record;                    /* 1 = do not append to the history */
    char gpu[96], driver[32], cuda[16]; /* stamped into result rows (telemetry fills them) */
    qb_job_fn custom;                 /* when non-NULL, runs instead of the kind's body */
    void *user;                       /* for custom bodies */
};

/* Fill a spec with defaults for kind (backend "auto", everything else 0/""). */
void qb_job_spec_init(struct qb_job_spec *spec, enum qb_job_kind kind);

/* What a finished job produced. */
struct qb_job_output {
    struct qb_results rows;           /* result rows, baseline first (eval/compare/bench) */
    char path[QB_JOB_PATH_MAX];       /* a produced folder (pull, quantize), "" when none */
    char verdict[256];                /* doctor's one-line verdict */
};

void qb_job_output_clear(struct qb_job_output *out); /* frees rows; NULL-safe */

/* Run one job on this thread (the CLI's foreground path). progress may be
 * NULL. out may be NULL when the caller wants only the side effects. Appends
 * result rows to the history unless spec->no_record. */
enum qb_status qb_job_run(const struct qb_job_spec *spec, struct qb_progress *progress,
                          struct qb_job_output *out, struct qb_err *err);

/* Append rows to the history named by spec (results_path, "" = default),
 * unless spec->no_record. For CLI commands that run their own loop. */
enum qb_status qb_job_record(const struct qb_job_spec *spec, const struct qb_results *rows,
                             struct qb_err *err);

/* One history row from a compare-runner row (base = the baseline row; the
 * model, revision, kind, options and GPU fields come from spec). */
struct qb_compare_row;
void qb_job_result_from_row(const struct qb_compare_row *row, const struct qb_compare_row *base,
                            const struct qb_job_spec *spec, struct qb_result *r);

/* qb_job_run for a caller that already called qb_progress_begin (the queue
 * does, so a cancel that arrives before the body starts is not lost). */
enum qb_status qb_job_run_begun(const struct qb_job_spec *spec, struct qb_progress *progress,
                                struct qb_job_output *out, struct qb_err *err);

/* 1 when this build can run the kind (its module is linked in). */
int qb_job_kind_available(enum qb_job_kind kind);

/* ---- the queue and its worker ------------------------------------------------ */

struct qb_jobq;

typedef void (*qb_jobq_wake_fn)(void *ctx);

/* Create the queue and start its worker thread. */
enum qb_status qb_jobq_create(struct qb_jobq **out, struct qb_err *err);
/* Cancel the running job, drop queued ones, join the worker, free everything. */
void qb_jobq_free(struct qb_jobq *q);

/* Called on the worker thread after each publish and each job end. */
void qb_jobq_set_wake(struct qb_jobq *q, qb_jobq_wake_fn fn, void *ctx);

/* Queue a copy of spec; *id (may be NULL) gets its id (1, 2, ...). */
enum qb_status qb_jobq_submit(struct qb_jobq *q, const struct qb_job_spec *spec, uint64_t *id,
                              struct qb_err *err);

/* Cancel the running job (if any); with drop_queued, also remove queued jobs
 * (they are reported as cancelled in the done list). */
void qb_jobq_cancel(struct qb_jobq *q, int drop_queued);

/* The progress the running (or last) job publishes into; owned by q. */
struct qb_progress *qb_jobq_progress(struct qb_jobq *q);

/* 1 while a job runs or waits. */
int qb_jobq_busy(struct qb_jobq *q);
int qb_jobq_queued(struct qb_jobq *q); /* jobs waiting (not the running one) */

struct qb_job_done {
    uint64_t id;
    enum qb_job_kind kind;
    enum qb_status status;
    char error[QB_ERR_MSG_MAX];       /* "" when status is QB_OK */
    double seconds;
    struct qb_job_output out;         /* owned by the receiver: qb_job_output_clear */
};

/* Move the oldest finished job into *done; returns 1, or 0 when none. */
int qb_jobq_take_done(struct qb_jobq *q, struct qb_job_done *done);

/* Block until the queue is idle or timeout_s passes; returns 1 when idle. */
int qb_jobq_wait_idle(struct qb_jobq *q, double timeout_s);

#endif /* QB_JOB_H */
