/*
 * linear.c - CPU matmul for linear layers in any weight format (see linear.h).
 *
 * Work split: the pool's threads take contiguous ranges of output rows. Each
 * thread dequantizes TILE rows of W at a time into a private f32 scratch
 * (so a packed format is read once per call, never expanded in full), then
 * runs the register-blocked kernel over every token for that tile:
 *
 *   for each tile of W rows (dequantized once)      <- packed bytes read once
 *     for tokens t in steps of 4
 *       for rows r in steps of 2: 4x2 dot products over k, 8-lane vectors
 *
 * The kernel body is written once with vector extensions and compiled twice
 * on x86-64 (baseline SSE2 and an avx2+fma clone picked at run time).
 */
#include "linear.h"

#include <string.h>

#define TILE_BYTES (192 * 1024)

/* ---- reference -------------------------------------------------------------- */

void qb_gemm_f32_ref(const float *x, const float *w, int64_t n, int64_t m, int64_t k, float *y,
                     int64_t ldy)
{
    for (int64_t t = 0; t < n; t++) {
        for (int64_t r = 0; r < m; r++) {
            float acc = 0.0f;
            for (int64_t i = 0; i < k; i++)
                acc += x[t * k + i] * w[r * k + i];
            y[t * ldy + r] = acc;
        }
    }
}

/* ---- vector kernel ---------------------------------------------------------- */

#if defined(__GNUC__)
/* the vector helpers are all inlined; their by-value ABI never crosses a call */
#pragma GCC diagnostic ignored "-Wpsabi"
typedef float v8f __attribute__((vector_size(32)));

static inline __attribute__((always_inline)) v8f load8(const float *p)
{
    v8f v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline __attribute__((always_inline)) float hsum8(v8f v)
{
    return ((v[0] + v[4]) + (v[1] + v[5])) + ((v[2] + v[6]) + (v[3] + v[7]));
}

/* 4 tokens x 2 rows of dot products over k; tails handled by the caller. */
static inline __attribute__((always_inline)) void
kernel_4x2(const float *x, const float *w, int64_t k, float *y, int64_t ldy)
{
    v8f a00 = {0}, a01 = {0}, a10 = {0}, a11 = {0}, a20 = {0}, a21 = {0}, a30 = {0}, a31 = {0};
    int64_t i = 0;
    for (; i + 8 <= k; i += 8) {
        v8f w0 = load8(w + i), w1 = load8(w + k + i);
        v8f x0 = load8(x + i), x1 = load8(x + k + i);
        v8f x2 = load8(x + 2 * k + i), x3 = load8(x + 3 * k + i);
        a00 += x0 * w0, a01 += x0 * w1, a10 += x1 * w0, a11 += x1 * w1;
        a20 += x2 * w0, a21 += x2 * w1, a30 += x3 * w0, a31 += x3 * w1;
    }
    float s[4][2] = {{hsum8(a00), hsum8(a01)}, {hsum8(a10), hsum8(a11)},
                     {hsum8(a20), hsum8(a21)}, {hsum8(a30), hsum8(a31)}};
    for (; i < k; i++) {
        for (int t = 0; t < 4; t++) {
            s[t][0] += x[t * k + i] * w[i];
            s[t][1] += x[t * k + i] * w[k + i];
        }
    }
    for (int t = 0; t < 4; t++) {
        y[t * ldy] = s[t][0];
        y[t * ldy + 1] = s[t][1];
    }
}

static inline __attribute__((always_inline)) float dot_body(const float *a, const float *b,
                                                            int64_t n)
{
    v8f acc0 = {0}, acc1 = {0};
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        acc0 += load8(a + i) * load8(b + i);
        acc1 += load8(a + i + 8) * load8(b + i + 8);
    }
    for (; i + 8 <= n; i += 8)
        acc0 += load8(a + i) * load8(b + i);
    float s = hsum8(acc0 + acc1);
    for (; i < n; i++)
        s += a[i] * b[i];
    return s;
}

static inline __attribute__((always_inline)) void
gemm_body(const float *x, const float *w, int64_t n, int64_t m, int64_t k, float *y, int64_t ldy)
{
    int64_t t = 0;
    for (; t + 4 <= n; t += 4) {
        int64_t r = 0;
        for (; r + 2 <= m; r += 2)
            kernel_4x2(x + t * k, w + r * k, k, y + t * ldy + r, ldy);
        for (; r < m; r++) {
            for (int u = 0; u < 4; u++)
                y[(t + u) * ldy + r] = dot_body(x + (t + u) * k, w + r * k, k);
        }
    }
    for (; t < n; t++) {
        for (int64_t r = 0; r < m; r++)
            y[t * ldy + r] = dot_body(x + t * k, w + r * k, k);
    }
}

static void gemm_generic(const float *x, const float *w, int64_t n, int64_t m, int64_t k, float *y,
                         int64_t ldy)
{
    gemm_body(x, w, n, m, k, y, ldy);
}

static float dot_generic(const float *a, const float *b, int64_t n)
{
    return dot_body(a, b, n);
}

#if defined(__x86_64__)
__attribute__((target("avx2,fma"))) static void
gemm_avx2(const float *x, const float *w, int64_t n, int64_t m, int64_t k, float *y, int64_t ldy)
{
    gemm_body(x, w, n, m, k, y, ldy);
}

__attribute__((target("avx2,fma"))) static float dot_avx2(const float *a, const float *b,
                                                           int64_t n)
{
    return dot_body(a, b, n);
}

static int have_avx2(void)
{
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}
#endif

void qb_gemm_f32(const float *x, const float *w, int64_t n, int64_t m, int64_t k, float *y,
                 int64_t ldy)
{
#if defined(__x86_64__)
    if (have_avx2()) {
        gemm_avx2(x, w, n, m, k, y, ldy);
        return;
    }
#endif
    gemm_generic(x, w, n, m, k, y, ldy);
}

float qb_dot_f32(const float *a, const float *b, int64_t n)
{
#if defined(__x86_64__)
    if (have_avx2())
        return dot_avx2(a, b, n);
#endif
    return dot_generic(a, b, n);
}

#else /* no vector extensions: the reference is the kernel */

void qb_gemm_f32(const float *x, const float *w, int64_t n, int64_t m, int64_t k, float *y,
                 int64_t ldy)
{
    qb_gemm_f32_ref(x, w, n, m, k, y, ldy);
}

float qb_dot_f32(const float *a, const float *b, int64_t n)
{
    float s = 0;
    for (int64_t i = 0; i < n; i++)
        s += a[i] * b[i];
    return s;
}
#endif

/* ---- linear layers ----------------------------------------------------------- */

struct matmul_ctx {
    const struct qb_linear *w;
    const float *x;
    int64_t n;
    float *y;
    int64_t tile_rows;
};

static void matmul_rows(void *p, int64_t tile_begin, int64_t tile_end)
{
    struct matmul_ctx *c = p;
    const struct qb_linear *w = c->w;
    const struct qb_wfmt_traits *tr = qb_wfmt_get(w->fmt);
    float *scratch = NULL;
    if (w->fmt != QB_WFMT_F32) {
        scratch = qb_aligned_alloc((size_t)c->tile_rows * (size_t)w->cols * sizeof(float));
        CHECK(scratch != NULL);
    }
    for (int64_t tile = tile_begin; tile < tile_end; tile++) {
        int64_t r0 = tile * c->tile_rows;
        int64_t nr = QB_MIN(c->tile_rows, w->rows - r0);
        const float *wt;
        if (scratch) {
            tr->dequant_rows(w, r0, nr, scratch);
            wt = scratch;
        } else {
            wt = (const float *)w->data + r0 * w->cols;
        }
        qb_gemm_f32(c->x, wt, c->n, nr, w->cols, c->y + r0, w->rows);
        if (w->bias) {
            for (int64_t t = 0; t < c->n; t++) {
                for (int64_t r = 0; r < nr; r++)
                    c->y[t * w->rows + r0 + r] += w->bias[r0 + r];
            }
        }
    }
    free(scratch);
}

struct gemv_ctx {
    const struct qb_linear *w;
    const float *x;
    float *y;
};

/* Decode (one token): the format's fused dot reads the packed rows directly. */
static void gemv_rows(void *p, int64_t r0, int64_t r1)
{
    struct gemv_ctx *c = p;
    float (*dot)(const struct qb_linear *, int64_t, const float *) = qb_wfmt_get(c->w->fmt)->vec_dot;
    for (int64_t r = r0; r < r1; r++)
        c->y[r] = dot(c->w, r, c->x) + (c->w->bias ? c->w->bias[r] : 0.0f);
}

static void matmul_f32_act(const struct qb_linear *w, const float *x, int64_t n, float *y,
                           struct qb_pool *pool)
{
    if (n == 1 && qb_wfmt_get(w->fmt)->vec_dot) {
        struct gemv_ctx c = {w, x, y};
        qb_pool_for(pool, w->rows, 64, gemv_rows, &c);
        return;
    }
    int64_t tile_rows = TILE_BYTES / (int64_t)(w->cols * (int64_t)sizeof(float));
    tile_rows = QB_MAX(tile_rows, 4);
    tile_rows -= tile_rows % 4;
    /* enough tiles that every thread gets work */
    int threads = qb_pool_threads(pool);
    while (tile_rows > 4 && (w->rows + tile_rows - 1) / tile_rows < 4 * threads)
        tile_rows -= 4;
    struct matmul_ctx c = {w, x, n, y, tile_rows};
    int64_t n_tiles = (w->rows + tile_rows - 1) / tile_rows;
    qb_pool_for(pool, n_tiles, 1, matmul_rows, &c);
}

void qb_linear_matmul(const struct qb_linear *w, const float *x, int64_t n, float *y,
                      struct qb_pool *pool)
{
    if (w->qp.act != QB_ACT_F32) {
        /* W4A4 / W8A8: multiply what the hardware would multiply, the quantized activations */
        float *xq = qb_malloc_array((size_t)n * (size_t)w->cols, sizeof(float));
        CHECK(xq != NULL);
        qb_act_quantize_rows(w->qp.act, x, n, w->cols, xq);
        matmul_f32_act(w, xq, n, y, pool);
        free(xq);
        return;
    }
    matmul_f32_act(w, x, n, y, pool);
}
