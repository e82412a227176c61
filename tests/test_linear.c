/*
 * test_linear.c - the SIMD matmul kernel against the plain reference, and
 * linear layers in the baseline dtypes (bias, odd shapes, thread counts).
 * qb-test-labels: arm64
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>

#include "dtype.h"
#include "linear.h"

/* Relative error allowed between the SIMD kernel and the reference: both sum
 * in f32, in different orders; k <= 1000 keeps the drift well under this. */
#define GEMM_REL_TOL 1e-5

static float frand(unsigned *s)
{
    *s = *s * 1103515245u + 12345u;
    return (float)((*s >> 8) & 0xffff) / 32768.0f - 1.0f;
}

static void check_close(const float *a, const float *b, int64_t n, double tol, const char *what)
{
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        num += fabs((double)a[i] - b[i]);
        den += fabs((double)b[i]);
    }
    cr_assert(num / (den + 1e-30) < tol, "%s: relative error %g >= %g", what, num / den, tol);
}

Test(gemm, simd_matches_reference_on_odd_shapes)
{
    static const int shapes[][3] = {{1, 1, 1}, {3, 5, 7}, {4, 2, 8}, {5, 9, 17}, {17, 33, 255},
                                    {64, 48, 256}, {7, 3, 1000}};
    unsigned seed = 1;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int n = shapes[s][0], m = shapes[s][1], k = shapes[s][2];
        float *x = malloc(sizeof(float) * n * k), *w = malloc(sizeof(float) * m * k);
        float *y = malloc(sizeof(float) * n * m), *yr = malloc(sizeof(float) * n * m);
        for (int i = 0; i < n * k; i++)
            x[i] = frand(&seed);
        for (int i = 0; i < m * k; i++)
            w[i] = frand(&seed);
        qb_gemm_f32(x, w, n, m, k, y, m);
        qb_gemm_f32_ref(x, w, n, m, k, yr, m);
        check_close(y, yr, (int64_t)n * m, GEMM_REL_TOL, "gemm");
        float d = qb_dot_f32(x, w, k), dr = 0;
        for (int i = 0; i < k; i++)
            dr += x[i] * w[i];
        cr_assert(fabsf(d - dr) <= 1e-4f * (fabsf(dr) + 1), "dot %g vs %g", d, dr);
        free(x), free(w), free(y), free(yr);
    }
}

Test(linear, bf16_view_with_bias_any_thread_count)
{
    int rows = 37, cols = 70, n = 9;
    unsigned seed = 7;
    uint16_t *wb = malloc(2 * rows * cols);
    float *wf = malloc(4 * rows * cols), *x = malloc(4 * n * cols), *bias = malloc(4 * rows);
    for (int i = 0; i < rows * cols; i++) {
        wb[i] = qb_f32_to_bf16(frand(&seed));
        wf[i] = qb_bf16_to_f32(wb[i]);
    }
    for (int i = 0; i < n * cols; i++)
        x[i] = frand(&seed);
    for (int i = 0; i < rows; i++)
        bias[i] = frand(&seed);
    float *ref = malloc(4 * n * rows);
    qb_gemm_f32_ref(x, wf, n, rows, cols, ref, rows);
    for (int t = 0; t < n; t++)
        for (int r = 0; r < rows; r++)
            ref[t * rows + r] += bias[r];
    struct qb_linear lin = {.fmt = QB_WFMT_BF16, .rows = rows, .cols = cols, .data = wb,
                            .data_bytes = 2 * rows * cols, .bias = bias};
    for (int threads = 1; threads <= 3; threads++) {
        struct qb_pool *pool = qb_pool_create(threads);
        float *y = malloc(4 * n * rows);
        qb_linear_matmul(&lin, x, n, y, pool);
        check_close(y, ref, (int64_t)n * rows, GEMM_REL_TOL, "bf16 linear");
        free(y);
        qb_pool_free(pool);
    }
    free(wb), free(wf), free(x), free(bias), free(ref);
}
