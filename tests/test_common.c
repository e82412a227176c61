/*
 * test_common.c - dtype conversions, the error line, checked allocation,
 * the thread pool, the progress snapshot and relaying one job's log into another.
 * qb-test-labels: arm64
 */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "dtype.h"
#include "progress.h"
#include "qb_common.h"
#include "threadpool.h"

Test(dtype, bf16_round_trip_and_rounding)
{
    cr_assert_eq(qb_f32_to_bf16(1.0f), 0x3f80);
    cr_assert_float_eq(qb_bf16_to_f32(0x3f80), 1.0f, 0);
    /* 1 + 2^-8 is a tie between 1 and 1+2^-7: round to even (1.0) */
    cr_assert_eq(qb_f32_to_bf16(1.0f + 1.0f / 256), 0x3f80);
    cr_assert_eq(qb_f32_to_bf16(1.0f + 3.0f / 256), 0x3f82);
    cr_assert(isnan(qb_bf16_to_f32(qb_f32_to_bf16(NAN))));
}

Test(dtype, f16_every_code_round_trips)
{
    for (uint32_t h = 0; h < 0x10000; h++) {
        float f = qb_f16_to_f32((uint16_t)h);
        if (isnan(f))
            continue;
        cr_assert_eq(qb_f32_to_f16(f), h, "code 0x%04x", h);
    }
    cr_assert_float_eq(qb_f16_to_f32(0x0001), 5.960464477539063e-08f, 0);
    cr_assert_eq(qb_f32_to_f16(65520.0f), 0x7c00); /* rounds to inf */
    cr_assert_eq(qb_f32_to_f16(65504.0f), 0x7bff);
    cr_assert_eq(qb_f32_to_f16(2.9802322e-08f), 0x0000); /* tie at 2^-25 -> even (0) */
}

Test(common, err_line_and_exit_codes)
{
    struct qb_err err;
    qb_err_clear(&err);
    cr_assert_eq(qb_err_set(&err, QB_ERR_IO, "cannot open '%s'\nsecond", "x"), QB_ERR_IO);
    cr_assert_str_eq(err.msg, "cannot open 'x' second");
    cr_assert_eq(qb_status_exit_code(QB_OK), 0);
    cr_assert_eq(qb_status_exit_code(QB_ERR_USAGE), 2);
    cr_assert_eq(qb_status_exit_code(QB_ERR_FORMAT), 1);
    for (int s = QB_OK; s <= QB_ERR_INTERNAL; s++)
        cr_assert_neq(strcmp(qb_status_str((enum qb_status)s), "unknown status"), 0);
}

Test(common, checked_allocation)
{
    cr_assert_null(qb_malloc_array(SIZE_MAX / 2, 4));
    cr_assert_null(qb_malloc_array(0, 4));
    void *p = qb_aligned_alloc(100);
    cr_assert_not_null(p);
    cr_assert_eq((uintptr_t)p % 64, 0);
    free(p);
}

struct sum_ctx {
    int64_t *out;
};

static void fill_squares(void *ctx, int64_t b, int64_t e)
{
    struct sum_ctx *c = ctx;
    for (int64_t i = b; i < e; i++)
        c->out[i] = i * i;
}

Test(threadpool, parallel_for_covers_every_index_once)
{
    for (int threads = 1; threads <= 4; threads++) {
        struct qb_pool *pool = qb_pool_create(threads);
        cr_assert_not_null(pool);
        for (int64_t n = 1; n < 50; n += 7) {
            int64_t out[64] = {0};
            struct sum_ctx c = {out};
            qb_pool_for(pool, n, 1, fill_squares, &c);
            for (int64_t i = 0; i < n; i++)
                cr_assert_eq(out[i], i * i);
            cr_assert_eq(out[n], 0);
        }
        qb_pool_free(pool);
    }
}

static void count_publish(void *ctx, const struct qb_progress *p)
{
    (void)p;
    (*(int *)ctx)++;
}

Test(progress, snapshot_log_and_cancel)
{
    struct qb_progress *p = qb_progress_create();
    int calls = 0;
    qb_progress_set_listener(p, count_publish, &calls);
    qb_progress_begin(p, QB_JOB_EVAL, "scoring");
    qb_progress_layer(p, 3, 8);
    qb_progress_update(p, 0.5, 10, 20, "chunks");
    for (int i = 0; i < 12; i++)
        qb_progress_log(p, "line %d", i);
    struct qb_progress_snapshot s;
    qb_progress_read(p, &s);
    cr_assert_eq(s.kind, QB_JOB_EVAL);
    cr_assert_eq(s.layer, 3);
    cr_assert_eq(s.n_log, QB_PROGRESS_LOG_LINES);
    cr_assert_str_eq(s.log[QB_PROGRESS_LOG_LINES - 1], "line 11");
    cr_assert_str_eq(s.unit, "chunks");
    cr_assert(calls >= 15);
    cr_assert_eq(qb_progress_cancelled(p), 0);
    qb_progress_cancel(p);
    cr_assert_eq(qb_progress_cancelled(p), 1);
    struct qb_err err;
    qb_err_set(&err, QB_ERR_CANCELLED, "cancelled by user");
    qb_progress_finish(p, QB_ERR_CANCELLED, &err);
    qb_progress_read(p, &s);
    cr_assert_eq(s.finished, 1);
    cr_assert_str_eq(s.error, "cancelled by user");
    char buf[2048];
    qb_progress_to_json(&s, buf, sizeof buf);
    cr_assert(strstr(buf, "\"job\":\"eval\"") != NULL);
    qb_progress_free(p);
    /* NULL progress is a no-op */
    qb_progress_update(NULL, 1, 1, 1, NULL);
    cr_assert_eq(qb_progress_cancelled(NULL), 0);
}

/* An inner job's new log lines reach the outer job once each, however often
 * the inner snapshot is relayed. */
Test(progress, relay_logs_forwards_each_new_line_once)
{
    struct qb_progress *inner = qb_progress_create(), *outer = qb_progress_create();
    char last[QB_PROGRESS_LINE_MAX] = "";
    struct qb_progress_snapshot s;
    qb_progress_begin(inner, QB_JOB_EVAL, "scoring");
    qb_progress_begin(outer, QB_JOB_COMPARE, "comparing");
    qb_progress_log(inner, "a");
    qb_progress_log(inner, "b");
    qb_progress_read(inner, &s);
    qb_progress_relay_logs(outer, &s, last);
    qb_progress_relay_logs(outer, &s, last); /* nothing new: nothing relayed */
    qb_progress_log(inner, "c");
    qb_progress_read(inner, &s);
    qb_progress_relay_logs(outer, &s, last);
    qb_progress_read(outer, &s);
    cr_assert_eq(s.n_log, 3);
    cr_assert_str_eq(s.log[0], "a");
    cr_assert_str_eq(s.log[1], "b");
    cr_assert_str_eq(s.log[2], "c");
    cr_assert_str_eq(last, "c");
    qb_progress_free(inner);
    qb_progress_free(outer);
}
