/*
 * test_gptq.c - GPTQ unit tests on small matrices: Cholesky on known matrices,
 * the inverse factor, Hessian accumulation against a plain f64 sum, GPTQ beating
 * RTN's reconstruction error, act-order g_idx consistency, dead columns and
 * thread-count independence.
 * qb-test-labels: arm64
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "gptq.h"
#include "qb_test_util.h"

Test(cholesky, known_3x3)
{
    double a[9] = {4, 12, -16, 12, 37, -43, -16, -43, 98};
    const double l[9] = {2, 0, 0, 6, 1, 0, -8, 5, 3};
    cr_assert_eq(qb_cholesky_lower(a, 3, NULL, NULL), QB_OK);
    for (int i = 0; i < 9; i++)
        cr_assert(fabs(a[i] - l[i]) < 1e-12, "L[%d] = %g, expected %g", i, a[i], l[i]);
}

Test(cholesky, rejects_indefinite)
{
    double a[4] = {1, 2, 2, 1};
    struct qb_err err = {0};
    cr_assert_eq(qb_cholesky_lower(a, 2, NULL, &err), QB_ERR_NUMERIC);
    cr_assert(strstr(err.msg, "positive definite"));
}

Test(cholesky, inverse_upper_factor)
{
    /* A = B B^T + n I; check U^T U A = I and U upper */
    enum { N = 40 };
    uint64_t s = 7;
    double *b = malloc(sizeof(double) * N * N), *a = malloc(sizeof(double) * N * N);
    double *a2 = malloc(sizeof(double) * N * N), *u = malloc(sizeof(double) * N * N);
    for (int i = 0; i < N * N; i++)
        b[i] = qbt_nrand(&s);
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            double t = i == j ? N : 0;
            for (int k = 0; k < N; k++)
                t += b[i * N + k] * b[j * N + k];
            a[i * N + j] = a2[i * N + j] = t;
        }
    struct qb_pool *pool = qb_pool_create(2);
    cr_assert_eq(qb_cholesky_inverse_upper(a2, N, u, pool, NULL), QB_OK);
    double worst = 0;
    for (int i = 0; i < N; i++) {
        for (int j = 0; j < i; j++)
            cr_assert_eq(u[i * N + j], 0.0);
        for (int j = 0; j < N; j++) {
            double t = 0; /* (U^T U A)[i][j] */
            for (int k = 0; k < N; k++) {
                double uu = 0;
                for (int m = 0; m < N; m++)
                    uu += u[m * N + i] * u[m * N + k];
                t += uu * a[k * N + j];
            }
            worst = fmax(worst, fabs(t - (i == j)));
        }
    }
    cr_assert(worst < 1e-9, "U^T U A differs from I by %g", worst);
    qb_pool_free(pool);
    free(b), free(a), free(a2), free(u);
}

/* Correlated inputs: x = z M with a random mixing matrix, a few strong channels. */
static float *make_inputs(int64_t n, int64_t d, uint64_t seed)
{
    float *x = qbt_correlated_inputs(n, d, seed);
    cr_assert(x, "out of memory");
    return x;
}

static double *hessian_of(const float *x, int64_t n, int64_t d, struct qb_pool *pool)
{
    struct qb_hessian h;
    cr_assert_eq(qb_hessian_init(&h, d, NULL), QB_OK);
    for (int64_t t0 = 0; t0 < n; t0 += 100)
        cr_assert_eq(qb_hessian_add(&h, x + t0 * d, n - t0 < 100 ? n - t0 : 100, pool, NULL),
                     QB_OK);
    double *H = malloc(sizeof(double) * d * d);
    qb_hessian_finish(&h, H);
    qb_hessian_free(&h);
    return H;
}

Test(hessian, matches_plain_sum)
{
    enum { N = 333, D = 24 };
    float *x = make_inputs(N, D, 3);
    double *H = hessian_of(x, N, D, NULL);
    for (int i = 0; i < D; i++)
        for (int j = 0; j < D; j++) {
            double t = 0;
            for (int k = 0; k < N; k++)
                t += (double)x[k * D + i] * x[k * D + j];
            t = 2 * t / N;
            cr_assert(fabs(H[i * D + j] - t) <= 1e-5 * (fabs(t) + 1), "H[%d][%d]", i, j);
        }
    free(x);
    free(H);
}

static float *make_weights(int64_t rows, int64_t cols, uint64_t seed)
{
    uint64_t s = seed;
    float *w = malloc(sizeof(float) * rows * cols);
    for (int64_t i = 0; i < rows * cols; i++)
        w[i] = (float)(0.05 * qbt_nrand(&s));
    return w;
}

Test(gptq, beats_rtn_reconstruction_at_every_bit_width)
{
    enum { ROWS = 48, COLS = 256, N = 1024 };
    float *x = make_inputs(N, COLS, 11), *w = make_weights(ROWS, COLS, 12);
    struct qb_pool *pool = qb_pool_create(2);
    double *H = hessian_of(x, N, COLS, pool);
    float *dg = malloc(sizeof(float) * ROWS * COLS), *dr = malloc(sizeof(float) * ROWS * COLS);
    static const int bits[] = {2, 3, 4, 8};
    for (int b = 0; b < 4; b++) {
        for (int act = 0; act < 2; act++) {
            struct qb_qresult g, r;
            struct qb_gptq_opts o = {.bits = bits[b], .group = 64, .act_order = act};
            cr_assert_eq(qb_gptq_quantize(w, ROWS, COLS, H, &o, pool, &g, dg, NULL), QB_OK);
            cr_assert_eq(qb_rtn_group_quantize(w, ROWS, COLS, bits[b], 64, 0, &r, dr, NULL),
                         QB_OK);
            double eg = qb_recon_error(w, dg, ROWS, COLS, H, pool);
            double er = qb_recon_error(w, dr, ROWS, COLS, H, pool);
            cr_assert(eg < er, "%d-bit act_order=%d: GPTQ %g >= RTN %g", bits[b], act, eg, er);
            if (bits[b] <= 4)
                cr_assert(eg < 0.8 * er, "%d-bit: GPTQ %g not clearly below RTN %g", bits[b], eg,
                          er);
            /* the dequantized output is exactly what the codes say */
            float *again = malloc(sizeof(float) * ROWS * COLS);
            qb_qresult_dequant(&g, again);
            cr_assert_eq(memcmp(again, dg, sizeof(float) * ROWS * COLS), 0);
            free(again);
            qb_qresult_free(&g);
            qb_qresult_free(&r);
        }
    }
    qb_pool_free(pool);
    free(x), free(w), free(H), free(dg), free(dr);
}

Test(gptq, act_order_g_idx_is_consistent)
{
    enum { ROWS = 16, COLS = 128, N = 512, G = 32 };
    float *x = make_inputs(N, COLS, 21), *w = make_weights(ROWS, COLS, 22);
    double *H = hessian_of(x, N, COLS, NULL);
    struct qb_qresult g;
    struct qb_gptq_opts o = {.bits = 4, .group = G, .act_order = 1};
    cr_assert_eq(qb_gptq_quantize(w, ROWS, COLS, H, &o, NULL, &g, NULL, NULL), QB_OK);
    cr_assert_not_null(g.g_idx);
    int count[COLS / G] = {0};
    for (int c = 0; c < COLS; c++) {
        cr_assert(g.g_idx[c] >= 0 && g.g_idx[c] < COLS / G);
        count[g.g_idx[c]]++;
    }
    for (int k = 0; k < COLS / G; k++)
        cr_assert_eq(count[k], G, "group %d has %d columns", k, count[k]);
    /* groups follow descending H diagonal: every column of group k has a diagonal
     * >= every column of group k+1 */
    for (int a = 0; a < COLS; a++)
        for (int b = 0; b < COLS; b++)
            if (g.g_idx[a] < g.g_idx[b])
                cr_assert(H[a * COLS + a] >= H[b * COLS + b]);
    qb_qresult_free(&g);
    /* static groups keep column order and record no g_idx */
    o.static_groups = 1;
    cr_assert_eq(qb_gptq_quantize(w, ROWS, COLS, H, &o, NULL, &g, NULL, NULL), QB_OK);
    cr_assert_null(g.g_idx);
    qb_qresult_free(&g);
    free(x), free(w), free(H);
}

Test(gptq, dead_columns_quantize_to_zero)
{
    enum { ROWS = 8, COLS = 64, N = 200 };
    float *x = make_inputs(N, COLS, 31), *w = make_weights(ROWS, COLS, 32);
    for (int t = 0; t < N; t++)
        x[t * COLS + 5] = 0;
    double *H = hessian_of(x, N, COLS, NULL);
    cr_assert_eq(H[5 * COLS + 5], 0.0);
    float deq[ROWS * COLS];
    struct qb_qresult g;
    struct qb_gptq_opts o = {.bits = 4, .group = 32};
    cr_assert_eq(qb_gptq_quantize(w, ROWS, COLS, H, &o, NULL, &g, deq, NULL), QB_OK);
    for (int r = 0; r < ROWS; r++)
        cr_assert_eq(deq[r * COLS + 5], 0.0f);
    qb_qresult_free(&g);
    free(x), free(w), free(H);
}

Test(gptq, same_result_for_any_thread_count)
{
    enum { ROWS = 33, COLS = 192, N = 600 };
    float *x = make_inputs(N, COLS, 41), *w = make_weights(ROWS, COLS, 42);
    double *H = hessian_of(x, N, COLS, NULL);
    struct qb_qresult a, b;
    struct qb_gptq_opts o = {.bits = 3, .group = 64, .act_order = 1, .sym = 1};
    struct qb_pool *pool = qb_pool_create(3);
    cr_assert_eq(qb_gptq_quantize(w, ROWS, COLS, H, &o, NULL, &a, NULL, NULL), QB_OK);
    cr_assert_eq(qb_gptq_quantize(w, ROWS, COLS, H, &o, pool, &b, NULL, NULL), QB_OK);
    cr_assert_eq(memcmp(a.codes, b.codes, ROWS * COLS), 0);
    cr_assert_eq(memcmp(a.scales, b.scales, sizeof(float) * ROWS * COLS / 64), 0);
    for (int i = 0; i < ROWS * COLS / 64; i++)
        cr_assert_eq(a.zeros[i], 4, "symmetric 3-bit zero is 4");
    qb_qresult_free(&a);
    qb_qresult_free(&b);
    qb_pool_free(pool);
    free(x), free(w), free(H);
}

Test(gptq, rejects_bad_group)
{
    struct qb_err err = {0};
    cr_assert_eq(qb_qresult_check_shape(100, 4, 128, &err), QB_ERR_UNSUPPORTED);
    cr_assert(strstr(err.msg, "--group"));
    cr_assert_eq(qb_qresult_check_shape(128, 5, 128, &err), QB_ERR_UNSUPPORTED);
}
