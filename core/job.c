/*
 * job.c - the job queue and its single worker thread (see job.h).
 *
 * State: a mutex-guarded FIFO of pending specs, the running job's id, a list
 * of finished jobs, and a condition variable the worker sleeps on. The worker
 * pops one spec, runs it with qb_job_run() outside the lock, publishing into
 * the queue's one struct qb_progress, then appends a qb_job_done record and
 * calls the wake function. Like redis' bio.c, one thread keeps the ordering
 * trivially FIFO and the UI never races the work for the model's memory.
 *
 * Lock order: q->mu is never held while calling into a job, the progress
 * object or the wake function.
 *
 * The worker runs at nice +5 (and so do the threads its jobs start), so the
 * thread that submits jobs (the dashboard's UI) wins the CPU when it needs it.
 */
#include "job.h"

#include <errno.h>
#include <pthread.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define QB_JOBQ_NICE 5

struct pending {
    uint64_t id;
    struct qb_job_spec spec;
};

struct qb_jobq {
    pthread_mutex_t mu;
    pthread_cond_t cv;        /* signals: new job, stop, job ended */
    pthread_t thread;
    int started;
    int stopping;
    struct pending *pend;     /* FIFO ring would be overkill: jobs are few */
    size_t n_pend, cap_pend;
    struct qb_job_done *done;
    size_t n_done, cap_done;
    uint64_t next_id;
    uint64_t running_id;      /* 0 when idle */
    int begun;                /* the running job's progress has begun */
    int cancel_pending;       /* cancel asked before it began: apply after begin */
    struct qb_progress *progress;
    qb_jobq_wake_fn wake;
    void *wake_ctx;
};

static void wake_caller(struct qb_jobq *q)
{
    pthread_mutex_lock(&q->mu);
    qb_jobq_wake_fn fn = q->wake;
    void *ctx = q->wake_ctx;
    pthread_mutex_unlock(&q->mu);
    if (fn)
        fn(ctx);
}

static void on_publish(void *ctx, const struct qb_progress *p)
{
    (void)p;
    wake_caller(ctx);
}

/* Caller holds q->mu. On OOM the record is dropped (the progress snapshot
 * still shows the final status). */
static void push_done_locked(struct qb_jobq *q, const struct qb_job_done *d)
{
    if (q->n_done == q->cap_done) {
        size_t cap = q->cap_done ? q->cap_done * 2 : 8;
        struct qb_job_done *items = qb_realloc_array(q->done, cap, sizeof *items);
        if (!items) {
            struct qb_job_output tmp = d->out;
            qb_job_output_clear(&tmp);
            return;
        }
        q->done = items;
        q->cap_done = cap;
    }
    q->done[q->n_done++] = *d;
}

static void run_one(struct qb_jobq *q, const struct pending *job)
{
    struct qb_job_done d;
    struct qb_err err = {0};
    memset(&d, 0, sizeof d);
    d.id = job->id;
    d.kind = job->spec.kind;
    double t0 = qb_now_seconds();
    /* begin resets the cancel flag: mark it begun, then replay a cancel that
     * came in between the pop and here */
    qb_progress_begin(q->progress, job->spec.kind, "starting");
    pthread_mutex_lock(&q->mu);
    q->begun = 1;
    int cancel = q->cancel_pending;
    q->cancel_pending = 0;
    pthread_mutex_unlock(&q->mu);
    if (cancel)
        qb_progress_cancel(q->progress);
    d.status = qb_job_run_begun(&job->spec, q->progress, &d.out, &err);
    d.seconds = qb_now_seconds() - t0;
    if (d.status)
        snprintf(d.error, sizeof d.error, "%s", err.msg[0] ? err.msg : qb_status_str(d.status));
    pthread_mutex_lock(&q->mu);
    push_done_locked(q, &d);
    q->running_id = 0;
    q->begun = 0;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
    wake_caller(q);
}

static void *worker_main(void *arg)
{
    struct qb_jobq *q = arg;
    /* Linux nice values are per thread and inherited by the threads a job
     * creates (the engine's pool): lowering ours keeps the submitting UI
     * thread responsive while a job saturates every core. Best effort. */
    if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), QB_JOBQ_NICE) != 0)
        errno = 0;
    for (;;) {
        pthread_mutex_lock(&q->mu);
        while (!q->stopping && q->n_pend == 0)
            pthread_cond_wait(&q->cv, &q->mu);
        if (q->stopping) {
            pthread_mutex_unlock(&q->mu);
            return NULL;
        }
        struct pending *job = qb_malloc_array(1, sizeof *job);
        if (!job) {
            /* Leave the spec queued and retry after a short pause. */
            pthread_mutex_unlock(&q->mu);
            nanosleep(&(struct timespec){0, 50 * 1000 * 1000}, NULL);
            continue;
        }
        *job = q->pend[0];
        memmove(q->pend, q->pend + 1, (q->n_pend - 1) * sizeof *q->pend);
        q->n_pend--;
        q->running_id = job->id;
        pthread_mutex_unlock(&q->mu);
        run_one(q, job);
        free(job);
    }
}

enum qb_status qb_jobq_create(struct qb_jobq **out, struct qb_err *err)
{
    *out = NULL;
    struct qb_jobq *q = calloc(1, sizeof *q);
    if (!q)
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory creating the job queue");
    pthread_mutex_init(&q->mu, NULL);
    pthread_cond_init(&q->cv, NULL);
    q->next_id = 1;
    q->progress = qb_progress_create();
    if (!q->progress) {
        qb_jobq_free(q);
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory creating the job queue");
    }
    qb_progress_set_listener(q->progress, on_publish, q);
    if (pthread_create(&q->thread, NULL, worker_main, q) != 0) {
        qb_jobq_free(q);
        return qb_err_set(err, QB_ERR_INTERNAL, "cannot start the worker thread");
    }
    q->started = 1;
    *out = q;
    return QB_OK;
}

void qb_jobq_free(struct qb_jobq *q)
{
    if (!q)
        return;
    pthread_mutex_lock(&q->mu);
    q->stopping = 1;
    q->wake = NULL;
    pthread_cond_broadcast(&q->cv);
    pthread_mutex_unlock(&q->mu);
    qb_progress_cancel(q->progress);
    if (q->started)
        pthread_join(q->thread, NULL);
    for (size_t i = 0; i < q->n_done; i++)
        qb_job_output_clear(&q->done[i].out);
    free(q->done);
    free(q->pend);
    qb_progress_free(q->progress);
    pthread_cond_destroy(&q->cv);
    pthread_mutex_destroy(&q->mu);
    free(q);
}

void qb_jobq_set_wake(struct qb_jobq *q, qb_jobq_wake_fn fn, void *ctx)
{
    pthread_mutex_lock(&q->mu);
    q->wake = fn;
    q->wake_ctx = ctx;
    pthread_mutex_unlock(&q->mu);
}

enum qb_status qb_jobq_submit(struct qb_jobq *q, const struct qb_job_spec *spec, uint64_t *id,
                              struct qb_err *err)
{
    enum qb_status st = QB_OK;
    pthread_mutex_lock(&q->mu);
    if (q->n_pend == q->cap_pend) {
        size_t cap = q->cap_pend ? q->cap_pend * 2 : 8;
        struct pending *items = qb_realloc_array(q->pend, cap, sizeof *items);
        if (!items) {
            st = qb_err_set(err, QB_ERR_NOMEM, "out of memory queueing a job");
            goto out;
        }
        q->pend = items;
        q->cap_pend = cap;
    }
    struct pending *p = &q->pend[q->n_pend++];
    p->id = q->next_id++;
    p->spec = *spec;
    if (id)
        *id = p->id;
    pthread_cond_broadcast(&q->cv);
out:
    pthread_mutex_unlock(&q->mu);
    return st;
}

void qb_jobq_cancel(struct qb_jobq *q, int drop_queued)
{
    pthread_mutex_lock(&q->mu);
    int running = q->running_id != 0 && q->begun;
    if (q->running_id != 0 && !q->begun)
        q->cancel_pending = 1;
    if (drop_queued) {
        for (size_t i = 0; i < q->n_pend; i++) {
            struct qb_job_done d;
            memset(&d, 0, sizeof d);
            d.id = q->pend[i].id;
            d.kind = q->pend[i].spec.kind;
            d.status = QB_ERR_CANCELLED;
            snprintf(d.error, sizeof d.error, "cancelled before it started");
            push_done_locked(q, &d);
        }
        q->n_pend = 0;
    }
    pthread_mutex_unlock(&q->mu);
    if (running)
        qb_progress_cancel(q->progress);
    wake_caller(q);
}

struct qb_progress *qb_jobq_progress(struct qb_jobq *q)
{
    return q->progress;
}

int qb_jobq_busy(struct qb_jobq *q)
{
    pthread_mutex_lock(&q->mu);
    int busy = q->running_id != 0 || q->n_pend > 0;
    pthread_mutex_unlock(&q->mu);
    return busy;
}

int qb_jobq_queued(struct qb_jobq *q)
{
    pthread_mutex_lock(&q->mu);
    int n = (int)q->n_pend;
    pthread_mutex_unlock(&q->mu);
    return n;
}

int qb_jobq_take_done(struct qb_jobq *q, struct qb_job_done *done)
{
    pthread_mutex_lock(&q->mu);
    int have = q->n_done > 0;
    if (have) {
        *done = q->done[0];
        memmove(q->done, q->done + 1, (q->n_done - 1) * sizeof *q->done);
        q->n_done--;
    }
    pthread_mutex_unlock(&q->mu);
    return have;
}

int qb_jobq_wait_idle(struct qb_jobq *q, double timeout_s)
{
    struct timespec deadline;
    clock_gettime(CLOCK_REALTIME, &deadline);
    double whole = (double)(time_t)timeout_s;
    deadline.tv_sec += (time_t)timeout_s;
    deadline.tv_nsec += (long)((timeout_s - whole) * 1e9);
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&q->mu);
    int rc = 0;
    while ((q->running_id != 0 || q->n_pend > 0) && rc == 0)
        rc = pthread_cond_timedwait(&q->cv, &q->mu, &deadline);
    int idle = q->running_id == 0 && q->n_pend == 0;
    pthread_mutex_unlock(&q->mu);
    return idle;
}
