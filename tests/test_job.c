/*
 * test_job.c - the job queue: FIFO order on one worker, wake-ups, cooperative
 * cancel (running and queued), kinds whose module is missing, and a real
 * eval/compare of the demo model on the CPU backend through the queue, with
 * its rows recorded in the results history.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "job.h"

static char tmpdir[256];

static void setup(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/qb_job_XXXXXX");
    cr_assert_not_null(mkdtemp(tmpdir));
}

static void teardown(void)
{
    char cmd[320];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    cr_expect_eq(system(cmd), 0);
}

TestSuite(job, .init = setup, .fini = teardown, .timeout = 300);

/* A trivial body: n steps of 10 ms, appending its tag to a shared log. */
struct trace {
    pthread_mutex_t mu;
    char order[64];
    atomic_int wakes;
};

static enum qb_status steps_body(const struct qb_job_spec *spec, struct qb_progress *p,
                                 struct qb_job_output *out, struct qb_err *err)
{
    struct trace *t = spec->user;
    int n = spec->max_chunks;
    for (int i = 0; i < n; i++) {
        if (qb_progress_cancelled(p))
            return qb_err_set(err, QB_ERR_CANCELLED, "cancelled at step %d", i);
        usleep(10000);
        qb_progress_update(p, (i + 1.0) / n, i + 1, n, "steps");
    }
    pthread_mutex_lock(&t->mu);
    size_t len = strlen(t->order);
    if (len + 1 < sizeof t->order) {
        t->order[len] = spec->model[0];
        t->order[len + 1] = '\0';
    }
    pthread_mutex_unlock(&t->mu);
    snprintf(out->verdict, sizeof out->verdict, "done %.8s", spec->model);
    return QB_OK;
}

static void count_wake(void *ctx)
{
    struct trace *t = ctx;
    atomic_fetch_add(&t->wakes, 1);
}

static struct qb_job_spec step_spec(struct trace *t, const char *tag, int steps)
{
    struct qb_job_spec s;
    qb_job_spec_init(&s, QB_JOB_BENCH);
    snprintf(s.model, sizeof s.model, "%s", tag);
    s.max_chunks = steps;
    s.custom = steps_body;
    s.user = t;
    return s;
}

Test(job, runs_jobs_in_submission_order_and_wakes_the_caller)
{
    struct trace t = {.mu = PTHREAD_MUTEX_INITIALIZER};
    struct qb_jobq *q = NULL;
    struct qb_err err = {0};
    cr_assert_eq(qb_jobq_create(&q, &err), QB_OK);
    qb_jobq_set_wake(q, count_wake, &t);
    const char *tags[] = {"a", "b", "c", "d"};
    uint64_t ids[4];
    for (int i = 0; i < 4; i++) {
        struct qb_job_spec s = step_spec(&t, tags[i], 3);
        cr_assert_eq(qb_jobq_submit(q, &s, &ids[i], &err), QB_OK);
    }
    cr_assert(qb_jobq_busy(q));
    cr_assert(qb_jobq_wait_idle(q, 30));
    cr_assert_str_eq(t.order, "abcd");
    cr_assert_gt(atomic_load(&t.wakes), 4 * 3);
    struct qb_job_done d;
    for (int i = 0; i < 4; i++) {
        cr_assert(qb_jobq_take_done(q, &d));
        cr_assert_eq(d.id, ids[i]);
        cr_assert_eq(d.status, QB_OK);
        char want[32];
        snprintf(want, sizeof want, "done %s", tags[i]);
        cr_assert_str_eq(d.out.verdict, want);
        qb_job_output_clear(&d.out);
    }
    cr_assert_not(qb_jobq_take_done(q, &d));
    struct qb_progress_snapshot snap;
    qb_progress_read(qb_jobq_progress(q), &snap);
    cr_assert(snap.finished);
    cr_assert_float_eq(snap.fraction, 1.0, 1e-9);
    qb_jobq_free(q);
}

Test(job, cancel_stops_the_running_job_and_drops_queued_ones)
{
    struct trace t = {.mu = PTHREAD_MUTEX_INITIALIZER};
    struct qb_jobq *q = NULL;
    struct qb_err err = {0};
    cr_assert_eq(qb_jobq_create(&q, &err), QB_OK);
    struct qb_job_spec slow = step_spec(&t, "s", 100000);
    struct qb_job_spec quick = step_spec(&t, "q", 1);
    cr_assert_eq(qb_jobq_submit(q, &slow, NULL, &err), QB_OK);
    cr_assert_eq(qb_jobq_submit(q, &quick, NULL, &err), QB_OK);
    struct qb_progress_snapshot snap;
    for (int i = 0; i < 500; i++) { /* wait until the slow job publishes */
        qb_progress_read(qb_jobq_progress(q), &snap);
        if (snap.running && snap.done > 0)
            break;
        usleep(2000);
    }
    cr_assert(snap.running);
    double t0 = qb_now_seconds();
    qb_jobq_cancel(q, 1);
    cr_assert(qb_jobq_wait_idle(q, 5));
    cr_assert_lt(qb_now_seconds() - t0, 1.0, "cancel is answered within a step");
    cr_assert_str_eq(t.order, "", "neither job completed");
    struct qb_job_done d;
    int n = 0;
    while (qb_jobq_take_done(q, &d)) {
        cr_assert_eq(d.status, QB_ERR_CANCELLED);
        qb_job_output_clear(&d.out);
        n++;
    }
    cr_assert_eq(n, 2);
    qb_progress_read(qb_jobq_progress(q), &snap);
    cr_assert_eq(snap.status, QB_ERR_CANCELLED);
    /* the queue keeps working after a cancel */
    cr_assert_eq(qb_jobq_submit(q, &quick, NULL, &err), QB_OK);
    cr_assert(qb_jobq_wait_idle(q, 5));
    cr_assert_str_eq(t.order, "q");
    qb_jobq_free(q);
}

/* A cancel right after submit, racing the worker's pop, is never lost. */
Test(job, cancel_right_after_submit_is_not_lost)
{
    struct trace t = {.mu = PTHREAD_MUTEX_INITIALIZER};
    struct qb_jobq *q = NULL;
    struct qb_err err = {0};
    cr_assert_eq(qb_jobq_create(&q, &err), QB_OK);
    struct qb_job_spec slow = step_spec(&t, "s", 100000);
    for (int i = 0; i < 50; i++) {
        cr_assert_eq(qb_jobq_submit(q, &slow, NULL, &err), QB_OK);
        if (i % 2)
            usleep((useconds_t)(i * 7));
        qb_jobq_cancel(q, 1);
        cr_assert(qb_jobq_wait_idle(q, 5), "round %d: the cancel was lost", i);
        struct qb_job_done d;
        cr_assert(qb_jobq_take_done(q, &d));
        cr_assert_eq(d.status, QB_ERR_CANCELLED);
    }
    cr_assert_str_eq(t.order, "");
    qb_jobq_free(q);
}

Test(job, free_while_running_cancels_and_joins)
{
    struct trace t = {.mu = PTHREAD_MUTEX_INITIALIZER};
    struct qb_jobq *q = NULL;
    struct qb_err err = {0};
    cr_assert_eq(qb_jobq_create(&q, &err), QB_OK);
    struct qb_job_spec slow = step_spec(&t, "s", 100000);
    cr_assert_eq(qb_jobq_submit(q, &slow, NULL, &err), QB_OK);
    usleep(50000);
    qb_jobq_free(q); /* must return promptly: the criterion timeout catches a hang */
}

Test(job, missing_modules_report_a_clear_error)
{
    enum qb_job_kind kinds[] = {QB_JOB_PULL, QB_JOB_QUANTIZE, QB_JOB_BENCH, QB_JOB_DOCTOR};
    for (size_t i = 0; i < QB_ARRAY_LEN(kinds); i++) {
        if (qb_job_kind_available(kinds[i]))
            continue;
        struct qb_job_spec s;
        struct qb_err err = {0};
        qb_job_spec_init(&s, kinds[i]);
        snprintf(s.model, sizeof s.model, "x/y");
        cr_assert_eq(qb_job_run(&s, NULL, NULL, &err), QB_ERR_UNSUPPORTED);
        cr_assert(strstr(err.msg, "not in this build"), "%s", err.msg);
        cr_assert(strstr(err.msg, qb_job_kind_name(kinds[i])), "%s", err.msg);
    }
}

Test(job, bad_specs_are_usage_errors)
{
    struct qb_job_spec s;
    struct qb_err err = {0};
    qb_job_spec_init(&s, QB_JOB_COMPARE);
    snprintf(s.model, sizeof s.model, "m");
    cr_assert_eq(qb_job_run(&s, NULL, NULL, &err), QB_ERR_USAGE);
    cr_assert(strstr(err.msg, "at least one scheme"), "%s", err.msg);
    qb_job_spec_init(&s, QB_JOB_EVAL);
    cr_assert_eq(qb_job_run(&s, NULL, NULL, &err), QB_ERR_USAGE);
    cr_assert(strstr(err.msg, "no model"), "%s", err.msg);
    qb_job_spec_init(&s, QB_JOB_NONE);
    cr_assert_eq(qb_job_run(&s, NULL, NULL, &err), QB_ERR_USAGE);
}

static struct qb_job_spec demo_spec(enum qb_job_kind kind, const char *results)
{
    struct qb_job_spec s;
    qb_job_spec_init(&s, kind);
    snprintf(s.model, sizeof s.model, "%s/ref-llama-10m", QB_TEST_DATA);
    snprintf(s.text_path, sizeof s.text_path, "%s/eval-gutenberg.txt", QB_TEST_DATA);
    snprintf(s.backend, sizeof s.backend, "cpu");
    snprintf(s.results_path, sizeof s.results_path, "%s", results);
    s.ctx = 128;
    s.max_chunks = 2;
    s.n_threads = 2;
    s.speed_p = 16; /* compare's speed test, small: seconds, not minutes */
    s.speed_n = 4;
    s.speed_r = 2;
    return s;
}

/* The real thing: compare f32 and int8 against the bf16 baseline of the demo
 * model on the CPU backend through the worker. f32 holds bf16 values exactly,
 * so its perplexity equals the baseline's and the KLD is ~0; int8 (per-row
 * scales) is smaller and close but not identical. */
Test(job, real_compare_of_the_demo_model_is_recorded)
{
    char results[512];
    snprintf(results, sizeof results, "%s/state/results.jsonl", tmpdir);
    struct qb_job_spec s = demo_spec(QB_JOB_COMPARE, results);
    snprintf(s.schemes[0], sizeof s.schemes[0], "f32");
    snprintf(s.schemes[1], sizeof s.schemes[1], "int8");
    s.n_schemes = 2;
    struct qb_jobq *q = NULL;
    struct qb_err err = {0};
    cr_assert_eq(qb_jobq_create(&q, &err), QB_OK);
    cr_assert_eq(qb_jobq_submit(q, &s, NULL, &err), QB_OK);
    cr_assert(qb_jobq_wait_idle(q, 240));
    struct qb_job_done d;
    cr_assert(qb_jobq_take_done(q, &d));
    cr_assert_eq(d.status, QB_OK, "%s", d.error);
    cr_assert_eq(d.out.rows.n, 3);
    const struct qb_result *base = &d.out.rows.items[0], *f32 = &d.out.rows.items[1];
    const struct qb_result *i8 = &d.out.rows.items[2];
    cr_assert_str_eq(i8->scheme, "int8");
    cr_assert(i8->bits_per_weight > 8.0 && i8->bits_per_weight < 8.5, "%g", i8->bits_per_weight);
    cr_assert_lt(i8->size_bytes, base->size_bytes);
    cr_assert(i8->kld > 0 && i8->kld < 0.05, "int8 kld %g", i8->kld);
    cr_assert(fabs(i8->delta_ppl) < 0.02 * base->ppl, "int8 dppl %g", i8->delta_ppl);
    cr_assert_float_eq(i8->delta_ppl, i8->ppl - base->ppl, 1e-9);
    cr_assert(i8->top1 > 0.9 && i8->top1 <= 1.0, "top1 %g", i8->top1);
    cr_assert(base->baseline);
    cr_assert_str_eq(base->scheme, base->base_dtype);
    cr_assert(isfinite(base->ppl) && base->ppl > 1.0, "ppl %g", base->ppl);
    cr_assert_eq(base->chunks, 2);
    cr_assert_str_eq(f32->scheme, "f32");
    cr_assert_float_eq(f32->ppl, base->ppl, 1e-3 * base->ppl);
    cr_assert(f32->kld >= -1e-6 && f32->kld < 1e-4, "kld %g", f32->kld);
    cr_assert_float_eq(f32->bits_per_weight, 32.0, 1e-9);
    cr_assert_float_eq(f32->pp_tps_baseline, base->pp_tps, 1e-9, "speed-up is vs this run");
    for (size_t i = 0; i < d.out.rows.n; i++) { /* the speed test of every row */
        const struct qb_result *r = &d.out.rows.items[i];
        cr_assert(r->pp_tps > 0 && r->tg_tps > 0, "%s: pp %g tg %g", r->scheme, r->pp_tps,
                  r->tg_tps);
        cr_assert_float_eq(r->tg_tps_baseline, base->tg_tps, 1e-9);
        cr_assert_float_eq(qb_result_tg_speedup(r), r->tg_tps / base->tg_tps, 1e-12);
    }
    cr_assert_float_eq(qb_result_tg_speedup(base), 1.0, 1e-12);
    cr_assert_float_eq(f32->ppl_baseline, base->ppl, 1e-12);
    cr_assert_eq(f32->baseline_bytes, base->size_bytes);
    cr_assert_gt(f32->size_bytes, base->size_bytes, "f32 weights are bigger than bf16");
    qb_job_output_clear(&d.out);
    qb_jobq_free(q);

    struct qb_results rs;
    cr_assert_eq(qb_results_load(results, &rs, &err), QB_OK, "%s", err.msg);
    cr_assert_eq(rs.n, 3);
    cr_assert_str_eq(rs.items[1].kind, "compare");
    cr_assert_str_eq(rs.items[2].scheme, "int8");
    cr_assert_str_eq(rs.items[1].backend, "cpu");
    qb_results_clear(&rs);
}

/* The job's progress covers the whole comparison: the fraction never goes
 * back, each run shows up as "k/N ..." in the stage, and the log carries the
 * runner's lines. */
Test(job, compare_progress_spans_every_run)
{
    char results[512];
    snprintf(results, sizeof results, "%s/p.jsonl", tmpdir);
    struct qb_job_spec s = demo_spec(QB_JOB_COMPARE, results);
    s.max_chunks = 3;
    snprintf(s.schemes[0], sizeof s.schemes[0], "int8");
    snprintf(s.schemes[1], sizeof s.schemes[1], "bf16"); /* the baseline: not a run */
    snprintf(s.schemes[2], sizeof s.schemes[2], "int4");
    s.n_schemes = 3;
    struct qb_jobq *q = NULL;
    struct qb_err err = {0};
    cr_assert_eq(qb_jobq_create(&q, &err), QB_OK);
    cr_assert_eq(qb_jobq_submit(q, &s, NULL, &err), QB_OK);
    int seen[4] = {0};
    double last = 0;
    uint64_t seq = 0;
    while (qb_jobq_busy(q)) {
        struct qb_progress_snapshot snap;
        qb_progress_read(qb_jobq_progress(q), &snap);
        if (snap.seq != seq && snap.running) {
            seq = snap.seq;
            cr_assert_geq(snap.fraction, last - 1e-12, "fraction went back: %g after %g",
                          snap.fraction, last);
            last = snap.fraction;
            int k = 0, n = 0;
            if (sscanf(snap.stage, "%d/%d", &k, &n) == 2) {
                cr_assert_eq(n, 3, "runs: baseline, int8, int4 (%s)", snap.stage);
                cr_assert(k >= 1 && k <= 3);
                seen[k] = 1;
                /* run k is the scheme the runner said it is quantizing */
                const char *quant = NULL;
                for (int i = 0; i < snap.n_log; i++) {
                    if (strncmp(snap.log[i], "quantizing ", 11) == 0)
                        quant = snap.log[i] + 11;
                }
                static const char *const want[4] = {NULL, NULL, "int8", "int4"};
                if (k == 1)
                    cr_assert_null(quant, "run 1 is the baseline, not %s", quant);
                else
                    cr_assert(quant && strcmp(quant, want[k]) == 0, "run %d is %s, not %s", k,
                              want[k], quant ? quant : "(none)");
            }
        }
        usleep(200);
    }
    cr_assert(seen[1] && seen[2] && seen[3], "runs seen: %d %d %d", seen[1], seen[2], seen[3]);
    struct qb_progress_snapshot snap;
    qb_progress_read(qb_jobq_progress(q), &snap);
    cr_assert_eq(snap.status, QB_OK, "%s", snap.error);
    cr_assert_float_eq(snap.fraction, 1.0, 1e-12);
    int quantizing = 0;
    for (int i = 0; i < snap.n_log; i++)
        quantizing += strncmp(snap.log[i], "quantizing ", 11) == 0;
    cr_assert_eq(quantizing, 2, "the runner's log lines are relayed");
    qb_jobq_free(q);
}

Test(job, cancelled_eval_records_nothing)
{
    char results[512];
    snprintf(results, sizeof results, "%s/cancel.jsonl", tmpdir);
    struct qb_job_spec s = demo_spec(QB_JOB_EVAL, results);
    s.max_chunks = 0; /* all chunks: long enough to cancel */
    struct qb_jobq *q = NULL;
    struct qb_err err = {0};
    cr_assert_eq(qb_jobq_create(&q, &err), QB_OK);
    cr_assert_eq(qb_jobq_submit(q, &s, NULL, &err), QB_OK);
    struct qb_progress_snapshot snap;
    for (int i = 0; i < 3000; i++) {
        qb_progress_read(qb_jobq_progress(q), &snap);
        if (snap.running && snap.done > 0)
            break;
        usleep(10000);
    }
    qb_jobq_cancel(q, 1);
    cr_assert(qb_jobq_wait_idle(q, 60));
    struct qb_job_done d;
    cr_assert(qb_jobq_take_done(q, &d));
    cr_assert_eq(d.status, QB_ERR_CANCELLED, "%s", d.error);
    cr_assert_eq(d.out.rows.n, 0);
    cr_assert_eq(access(results, F_OK), -1, "no history line for a cancelled job");
    qb_jobq_free(q);
}
