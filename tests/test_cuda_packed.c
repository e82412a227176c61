/*
 * test_cuda_packed.c - the packed weight formats on the GPU against the C
 * reference of each format (core/quant_*.c): quantize random weights with
 * qb_linear_quantize, upload (repacking), then compare
 *   - qb_cuda_dequant (bf16)            with the reference dequant_rows,
 *   - the fused dequantize-GEMV          with a double dot over the reference weights,
 *   - the prefill linear (dequant+cuBLAS) the same way,
 *   - the gate/up SwiGLU GEMV            with its reference.
 *   - the GEMVs of an RMSNorm'd input   with the norm (qb_cuda_rmsnorm's bf16
 *     rounding) and the same dots: fused into the 4-bit tensor-core GEMV,
 *     a separate kernel for the rest; and the RMSNorm after y += W x (the
 *     tensor-core GEMV's tail, or a separate kernel).
 * Every format, int4 with an act-order g_idx, the tensor-core GEMV over
 * concatenated matrices with partial tiles, and fp8-w8a8 against the CPU's
 * per-token activation quantization. Skips without a GPU.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "qb_test_util.h"
#include "dtype.h"
#include "engine.h"
#include "kernels/qb_cuda.h"
#include "quant.h"

#ifdef QB_HAVE_CUDA

/* bf16 output of f32 math that differs from the reference only in order */
#define TOL_DEQUANT 4e-3
/* f32 accumulation over reference-identical weights */
#define TOL_GEMV 1e-4
/* the 4-bit formats' tensor-core GEMV (gemv_mma.cu): the scale comes after
 * the mma, so the integer and E2M1 codes enter it exactly (measured 1e-7 ..
 * 1e-5); nf4's table values are rounded once to f16 (relative error within
 * half an ulp, 2^-11..2^-12: RMS about 2e-4, measured 1.5e-4); x is rounded
 * from bf16 to f16 (exact in f16's normal range) */
#define TOL_GEMV_MMA 5e-4
/* cuBLAS over the bf16-rounded dequantized weights (bf16 weight rounding) */
#define TOL_PREFILL 4e-3
/* SwiGLU output stored as bf16 */
#define TOL_SWIGLU 8e-3
/* W8A8 prefill: FP8 tensor-core accumulation (decode multiplies the exact E4M3
 * code values in f32 and applies the token scale after the dot: TOL_GEMV) */
#define TOL_W8A8 5e-3
/* host emulation of the device decode vs the reference: the same formula up to
 * operation order (s*code - s*zero vs s*(code - zero), x*(1/g) vs x/g) */
#define TOL_EMULATED 1e-6

#define ROWS 320
#define COLS 1024
#define NTOK 9

static struct qb_err err;


static uint64_t rng = 0x243f6a8885a308d3ull;

static float frand(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (float)((rng >> 40) * (2.0 / 16777216.0) - 1.0);
}

static void expect_close(const char *fmt, const char *what, const float *got, const float *ref,
                         size_t n, double tol)
{
    double e = qbt_rel_l2(got, ref, n);
    cr_log_info("%-10s %-16s rel L2 error %.3g (tolerance %.3g)", fmt, what, e, tol);
    cr_assert(e <= tol, "%s %s: rel L2 error %.3g > %.3g", fmt, what, e, tol);
}

static void *dev(const void *h, size_t bytes)
{
    void *d = NULL;
    QBT_OK(qb_cuda_alloc(&d, bytes, "test buffer", &err));
    if (h)
        QBT_OK(qb_cuda_upload(d, h, bytes, &err));
    return d;
}

static float *from_dev_f32(const void *d, size_t n)
{
    float *h = malloc(n * sizeof *h);
    QBT_OK(qb_cuda_download(h, d, n * sizeof *h, &err));
    return h;
}

static float *from_dev_bf16(const void *d, size_t n)
{
    uint16_t *b = malloc(n * 2);
    float *f = malloc(n * sizeof *f);
    QBT_OK(qb_cuda_download(b, d, n * 2, &err));
    for (size_t i = 0; i < n; i++)
        f[i] = qb_bf16_to_f32(b[i]);
    free(b);
    return f;
}

/* y[t][r] = sum_k w[r][k] x[t][k], double accumulation. */
static void ref_matmul(const float *w, const float *x, int n, float *y)
{
    for (int t = 0; t < n; t++)
        for (int r = 0; r < ROWS; r++) {
            double s = 0;
            for (int k = 0; k < COLS; k++)
                s += (double)w[(size_t)r * COLS + k] * x[(size_t)t * COLS + k];
            y[(size_t)t * ROWS + r] = (float)s;
        }
}

/* A random packed weight: quantized from random values, or, with an act-order
 * g_idx (which RTN does not take), packed from random codes, scales and zeros. */
static void quantize_random(enum qb_wfmt fmt, const struct qb_quant_params *qp,
                            struct qb_linear *lin)
{
    size_t n = (size_t)ROWS * COLS, ng = (size_t)ROWS * (COLS / (qp->group ? qp->group : 128));
    if (qp->g_idx) {
        uint8_t *codes = malloc(n), *zeros = malloc(ng);
        float *scales = malloc(ng * sizeof *scales);
        for (size_t i = 0; i < n; i++)
            codes[i] = (uint8_t)((frand() + 1) * 7.99f);
        for (size_t i = 0; i < ng; i++) {
            scales[i] = 0.001f + 0.01f * (frand() + 1);
            zeros[i] = (uint8_t)((frand() + 1) * 7.99f);
        }
        QBT_OK(qb_linear_pack_groups(ROWS, COLS, fmt, qp, codes, scales, zeros, "test weight", lin,
                                 &err));
        free(codes), free(zeros), free(scales);
        return;
    }
    float *w = malloc(n * sizeof *w);
    for (size_t i = 0; i < n; i++)
        w[i] = frand() * 0.05f * (1 + (i % 97 == 0) * 4); /* a few outliers */
    QBT_OK(qb_linear_quantize(w, ROWS, COLS, fmt, qp, "test weight", lin, &err));
    free(w);
}

/* A random weight in fmt, its reference f32 values and device copy. */
static void make(enum qb_wfmt fmt, const struct qb_quant_params *qp, struct qb_linear *lin,
                 float **ref_w, struct qb_cuda_weight *dw)
{
    quantize_random(fmt, qp, lin);
    *ref_w = malloc((size_t)ROWS * COLS * sizeof **ref_w);
    qb_wfmt_get(fmt)->dequant_rows(lin, 0, ROWS, *ref_w);
    QBT_OK(qb_cuda_weight_upload(lin, "test weight", dw, &err));
}

static int is_8bit(enum qb_wfmt fmt)
{
    return fmt == QB_WFMT_INT8 || fmt == QB_WFMT_FP8_E4M3 || fmt == QB_WFMT_FP8_E5M2;
}

/* The decode GEMV's tolerance: the 4-bit formats without g_idx run on the
 * tensor cores over f16-rounded weights. */
static double gemv_tolerance(enum qb_wfmt fmt, const struct qb_quant_params *qp)
{
    return is_8bit(fmt) || qp->g_idx ? TOL_GEMV : TOL_GEMV_MMA;
}

/* qb_cuda_gemv_norm of a random residual row against bf16(x * inv_rms * nw)
 * (double mean square) times the reference weights. */
static void check_norm(const char *label, struct qb_cuda_ctx *c, const struct qb_cuda_weight *dw,
                       const float *ref_w, double tol)
{
    float xf[COLS], nw[COLS], xn[COLS], ref_y[ROWS];
    double ss = 0;
    for (int k = 0; k < COLS; k++) {
        xf[k] = frand() * 3.0f;
        nw[k] = 1.0f + 0.5f * frand();
        ss += (double)xf[k] * xf[k];
    }
    float inv = (float)(1.0 / sqrt(ss / COLS + 1e-5));
    for (int k = 0; k < COLS; k++)
        xn[k] = qb_bf16_to_f32(qb_f32_to_bf16(xf[k] * inv * nw[k]));
    ref_matmul(ref_w, xn, 1, ref_y);
    float *d_xf = dev(xf, sizeof xf), *d_nw = dev(nw, sizeof nw), *d_y = dev(NULL, sizeof ref_y);
    uint16_t *d_a = dev(NULL, COLS * 2);
    struct qb_cuda_norm_in in = {d_xf, d_nw, 1e-5f, d_a, NULL};
    const struct qb_cuda_weight *ws[1] = {dw};
    QBT_OK(qb_cuda_gemv_norm(c, ws, 1, &in, d_y, 0, &err));
    QBT_OK(qb_cuda_sync(c, &err));
    float *got = from_dev_f32(d_y, ROWS);
    expect_close(label, "RMSNorm'd GEMV", got, ref_y, ROWS, tol);
    free(got);
    qb_cuda_free(d_xf), qb_cuda_free(d_nw), qb_cuda_free(d_y), qb_cuda_free(d_a);
}

static void check_format(const char *label, enum qb_wfmt fmt, const struct qb_quant_params *qp)
{
    struct qb_linear lin, lin2;
    struct qb_cuda_weight dw, dw2;
    float *ref_w, *ref_w2, x[NTOK * COLS], ref_y[NTOK * ROWS], ref_y2[ROWS];
    uint16_t xb[NTOK * COLS];
    struct qb_cuda_ctx *c = NULL;
    QBT_OK(qb_cuda_ctx_create(&c, &err));
    make(fmt, qp, &lin, &ref_w, &dw);
    for (int i = 0; i < NTOK * COLS; i++) {
        xb[i] = qb_f32_to_bf16(frand());
        x[i] = qb_bf16_to_f32(xb[i]);
    }
    uint16_t *d_x = dev(xb, sizeof xb), *d_w16 = dev(NULL, (size_t)ROWS * COLS * 2);
    float *d_y = dev(NULL, sizeof ref_y);

    /* dequantize */
    QBT_OK(qb_cuda_dequant(c, &dw, d_w16, &err));
    QBT_OK(qb_cuda_sync(c, &err));
    float *got = from_dev_bf16(d_w16, (size_t)ROWS * COLS);
    expect_close(label, "dequant", got, ref_w, (size_t)ROWS * COLS, TOL_DEQUANT);
    free(got);

    /* decode GEMV */
    const struct qb_cuda_weight *ws[1] = {&dw};
    ref_matmul(ref_w, x, NTOK, ref_y);
    QBT_OK(qb_cuda_gemv(c, ws, 1, d_x, d_y, 0, &err));
    QBT_OK(qb_cuda_sync(c, &err));
    got = from_dev_f32(d_y, ROWS);
    expect_close(label, "fused GEMV", got, ref_y, ROWS, gemv_tolerance(fmt, qp));
    free(got);

    /* prefill linear: dequantize into the scratch, then cuBLAS */
    QBT_OK(qb_cuda_ctx_reserve_dequant(c, (size_t)ROWS * COLS, &err));
    QBT_OK(qb_cuda_linear(c, &dw, d_x, NTOK, d_y, ROWS, 0, &err));
    QBT_OK(qb_cuda_sync(c, &err));
    got = from_dev_f32(d_y, (size_t)NTOK * ROWS);
    expect_close(label, "prefill linear", got, ref_y, (size_t)NTOK * ROWS, TOL_PREFILL);
    free(got);

    /* SwiGLU pair (the weight as gate, a second one as up) */
    make(fmt, qp, &lin2, &ref_w2, &dw2);
    ref_matmul(ref_w2, x, 1, ref_y2);
    for (int r = 0; r < ROWS; r++)
        ref_y2[r] = qb_bf16_to_f32(qb_f32_to_bf16(ref_y[r] / (1 + expf(-ref_y[r])) * ref_y2[r]));
    QBT_OK(qb_cuda_gemv_swiglu(c, &dw, &dw2, d_x, d_w16, &err));
    QBT_OK(qb_cuda_sync(c, &err));
    got = from_dev_bf16(d_w16, ROWS);
    expect_close(label, "SwiGLU GEMV", got, ref_y2, ROWS, TOL_SWIGLU);
    free(got);
    check_norm(label, c, &dw, ref_w, gemv_tolerance(fmt, qp));

    qb_cuda_weight_free(&dw), qb_cuda_weight_free(&dw2);
    qb_linear_release(&lin), qb_linear_release(&lin2);
    qb_cuda_free(d_x), qb_cuda_free(d_w16), qb_cuda_free(d_y);
    qb_cuda_ctx_free(c);
    free(ref_w), free(ref_w2);
}

#define FORMAT_TEST(name, fmt, ...)                                                           \
    Test(cuda_packed, name)                                                                   \
    {                                                                                         \
        if (!qb_cuda_available())                                                             \
            cr_skip_test("no CUDA GPU on this machine");                                      \
        struct qb_quant_params qp = {__VA_ARGS__};                                            \
        check_format(#name, fmt, &qp);                                                        \
    }

FORMAT_TEST(int8, QB_WFMT_INT8, 0)
FORMAT_TEST(fp8_e4m3, QB_WFMT_FP8_E4M3, 0)
FORMAT_TEST(fp8_e5m2, QB_WFMT_FP8_E5M2, 0)
FORMAT_TEST(int4_g128, QB_WFMT_INT4, .group = 128)
FORMAT_TEST(int4_g32, QB_WFMT_INT4, .group = 32)
FORMAT_TEST(int4_sym_g64, QB_WFMT_INT4_SYM, .group = 64)
FORMAT_TEST(uint4_g128, QB_WFMT_UINT_G, .group = 128, .bits = 4)
FORMAT_TEST(nf4, QB_WFMT_NF4, 0)
FORMAT_TEST(nf4_dq, QB_WFMT_NF4_DQ, 0)
FORMAT_TEST(nvfp4, QB_WFMT_NVFP4, 0)
FORMAT_TEST(mxfp4, QB_WFMT_MXFP4, 0)

/* The RMSNorm written after y += W x (qb_cuda_gemv_add_norm) against
 * bf16(y * inv_rms * nw) of the y the GPU produced, in double. */
static void check_norm_of(const char *label, const float *y, const float *nw,
                          const uint16_t *d_a, int64_t n)
{
    double ss = 0;
    float *ref = malloc(n * sizeof *ref);
    for (int64_t r = 0; r < n; r++)
        ss += (double)y[r] * y[r];
    double inv = 1.0 / sqrt(ss / n + 1e-5);
    for (int64_t r = 0; r < n; r++)
        ref[r] = qb_bf16_to_f32(qb_f32_to_bf16((float)(y[r] * inv * nw[r])));
    float *got = from_dev_bf16(d_a, (size_t)n);
    expect_close(label, "RMSNorm after it", got, ref, (size_t)n, TOL_DEQUANT);
    free(got), free(ref);
}

/* One launch over several matrices (q|k|v) whose shapes leave partial tiles
 * and steps in the tensor-core GEMV: rows a multiple of 8 but not of 16, cols
 * a multiple of 32 but not of 128 (row-major codes, not tiled); a long row
 * that needs more than the default 48 KiB of shared memory for x, and one
 * longer than shared memory holds. Each output against a double dot. */
static void check_concat(enum qb_wfmt fmt, const struct qb_quant_params *qp, int n_mats,
                         const int64_t *rows, int64_t cols, int accumulate)
{
    struct qb_linear lin[3];
    struct qb_cuda_weight dw[3];
    const struct qb_cuda_weight *ws[3];
    struct qb_cuda_ctx *c = NULL;
    int64_t total = 0, off = 0;
    for (int m = 0; m < n_mats; m++)
        total += rows[m];
    float *x = malloc(cols * sizeof *x), *ref = malloc(total * sizeof *ref);
    uint16_t *xb = malloc(cols * 2);
    QBT_OK(qb_cuda_ctx_create(&c, &err));
    for (int64_t k = 0; k < cols; k++) {
        xb[k] = qb_f32_to_bf16(frand());
        x[k] = qb_bf16_to_f32(xb[k]);
    }
    for (int m = 0; m < n_mats; m++) {
        float *w = malloc((size_t)rows[m] * cols * sizeof *w);
        for (int64_t i = 0; i < rows[m] * cols; i++)
            w[i] = frand() * 0.05f;
        QBT_OK(qb_linear_quantize(w, rows[m], cols, fmt, qp, "test weight", &lin[m], &err));
        qb_wfmt_get(fmt)->dequant_rows(&lin[m], 0, rows[m], w);
        for (int64_t r = 0; r < rows[m]; r++) {
            double acc = 0;
            for (int64_t k = 0; k < cols; k++)
                acc += (double)w[r * cols + k] * x[k];
            ref[off + r] = (float)acc;
        }
        off += rows[m];
        QBT_OK(qb_cuda_weight_upload(&lin[m], "test weight", &dw[m], &err));
        ws[m] = &dw[m];
        free(w);
    }
    float *y0 = malloc(total * sizeof *y0), *nw = malloc(total * sizeof *nw);
    for (int64_t r = 0; r < total; r++) {
        y0[r] = accumulate ? frand() : 0.0f;
        nw[r] = 1.0f + 0.5f * frand();
    }
    uint16_t *d_x = dev(xb, (size_t)cols * 2), *d_a = dev(NULL, (size_t)total * 2);
    float *d_y = dev(NULL, (size_t)total * sizeof(float)), *d_nw = dev(nw, total * sizeof *nw);
    struct qb_cuda_norm_in next = {d_y, d_nw, 1e-5f, d_a, NULL};
    uint16_t *nan_a = malloc((size_t)total * 2);
    for (int64_t r = 0; r < total; r++)
        nan_a[r] = 0x7fc0; /* bf16 NaN: a tail that did not run shows */
    for (int pass = 0; pass < 1 + accumulate; pass++) { /* twice: the counters reset */
        QBT_OK(qb_cuda_upload(d_y, y0, (size_t)total * sizeof(float), &err));
        QBT_OK(qb_cuda_upload(d_a, nan_a, (size_t)total * 2, &err));
        if (accumulate && n_mats == 1) /* y += W x, then the next layer's RMSNorm of y */
            QBT_OK(qb_cuda_gemv_add_norm(c, ws[0], d_x, d_y, &next, &err));
        else
            QBT_OK(qb_cuda_gemv(c, ws, n_mats, d_x, d_y, accumulate, &err));
        QBT_OK(qb_cuda_sync(c, &err));
        float *got = from_dev_f32(d_y, (size_t)total);
        if (accumulate && n_mats == 1)
            check_norm_of(qb_wfmt_get(fmt)->name, got, nw, d_a, total);
        for (int64_t r = 0; r < total; r++)
            got[r] -= y0[r]; /* y0 + W x - y0: W x within rounding of the sum */
        expect_close(qb_wfmt_get(fmt)->name, accumulate ? "accumulating GEMV" : "concat GEMV",
                     got, ref, (size_t)total, is_8bit(fmt) ? TOL_GEMV : TOL_GEMV_MMA);
        free(got);
    }
    for (int m = 0; m < n_mats; m++)
        qb_cuda_weight_free(&dw[m]), qb_linear_release(&lin[m]);
    qb_cuda_free(d_x), qb_cuda_free(d_y), qb_cuda_free(d_a), qb_cuda_free(d_nw);
    qb_cuda_ctx_free(c);
    free(x), free(ref), free(xb), free(y0), free(nw), free(nan_a);
}

Test(cuda_packed, tensor_core_gemv_partial_tiles_and_steps)
{
    if (!qb_cuda_available())
        cr_skip_test("no CUDA GPU on this machine");
    const int64_t qkv[3] = {64, 24, 24}, one[1] = {40};
    struct qb_quant_params g32 = {.group = 32}, g128 = {.group = 128},
                           u128 = {.group = 128, .bits = 4}, none = {0};
    check_concat(QB_WFMT_INT4, &g32, 3, qkv, 1056, 0); /* 8 full steps and a quarter one */
    check_concat(QB_WFMT_INT4, &g128, 3, qkv, 1024, 0); /* one group a step: whole steps */
    check_concat(QB_WFMT_UINT_G, &u128, 3, qkv, 2048, 0);
    check_concat(QB_WFMT_NVFP4, &none, 3, qkv, 1120, 0);
    check_concat(QB_WFMT_NF4, &none, 1, one, 1088, 0);
    check_concat(QB_WFMT_MXFP4, &none, 1, one, 32768, 0); /* x in shared memory: 128 KiB */
    /* x past shared memory (256 KiB): gemv_packed.cu's kernel over tiled codes */
    check_concat(QB_WFMT_NVFP4, &none, 1, one, 65536, 0);
}

/* y += W x (the o and down projections) and the RMSNorm of y after it (the
 * next layer's input), long enough rows for the split-K path (steps split
 * unevenly over a cluster's parts, a partial 16-row block, several matrices
 * in one launch, without the norm); each weight runs twice, so the tail's
 * arrival counter is seen to reset. */
Test(cuda_packed, accumulating_gemv_split_k)
{
    if (!qb_cuda_available())
        cr_skip_test("no CUDA GPU on this machine");
    const int64_t rows[1] = {40}, long_y[1] = {8208}, three[3] = {64, 24, 24};
    struct qb_quant_params g128 = {.group = 128}, none = {0};
    check_concat(QB_WFMT_INT4, &g128, 1, rows, 4096, 1);
    check_concat(QB_WFMT_NVFP4, &none, 1, rows, 4224, 1); /* 33 steps */
    check_concat(QB_WFMT_INT4, &g128, 1, rows, 14336, 1);
    check_concat(QB_WFMT_NF4, &none, 1, rows, 1024, 1); /* one part: no split */
    check_concat(QB_WFMT_INT4_SYM, &g128, 1, rows, 4224, 1); /* 33 steps: parts of 16, 17 */
    check_concat(QB_WFMT_INT4, &g128, 1, long_y, 1024, 1); /* the tail over 2052 float4 */
    check_concat(QB_WFMT_INT8, &none, 1, rows, 4096, 1); /* the norm as its own kernel */
    check_concat(QB_WFMT_INT4, &g128, 3, three, 4096, 1); /* split K over three matrices */
}

/* A random weight of rows x cols in fmt, uploaded, and its dequantized
 * values (the reference) into *ref_w (malloc'd). */
static void make_big(enum qb_wfmt fmt, const struct qb_quant_params *qp, int64_t rows,
                     int64_t cols, struct qb_linear *lin, float **ref_w, struct qb_cuda_weight *dw)
{
    float *w = malloc((size_t)rows * cols * sizeof *w);
    for (int64_t i = 0; i < rows * cols; i++)
        w[i] = frand() * 0.05f;
    QBT_OK(qb_linear_quantize(w, rows, cols, fmt, qp, "test weight", lin, &err));
    qb_wfmt_get(fmt)->dequant_rows(lin, 0, rows, w);
    QBT_OK(qb_cuda_weight_upload(lin, "test weight", dw, &err));
    *ref_w = w;
}

/* gate/up of decode's shape class (cols 4096, row groups for two waves and
 * more of resident blocks, not a multiple of them): the persistent SwiGLU
 * kernel, whose blocks take several row groups each, against
 * bf16(silu(gate x) * up x) of double dots. */
static void check_swiglu_rows(enum qb_wfmt fmt, const struct qb_quant_params *qp)
{
    const int64_t rows = 8 * 701, cols = 4096;
    struct qb_linear lg, lu;
    struct qb_cuda_weight dg, du;
    float *wg, *wu, *x = malloc(cols * sizeof *x), *ref = malloc(rows * sizeof *ref);
    uint16_t *xb = malloc(cols * 2);
    struct qb_cuda_ctx *c = NULL;
    QBT_OK(qb_cuda_ctx_create(&c, &err));
    for (int64_t k = 0; k < cols; k++) {
        xb[k] = qb_f32_to_bf16(frand());
        x[k] = qb_bf16_to_f32(xb[k]);
    }
    make_big(fmt, qp, rows, cols, &lg, &wg, &dg);
    make_big(fmt, qp, rows, cols, &lu, &wu, &du);
    for (int64_t r = 0; r < rows; r++) {
        double g = 0, u = 0;
        for (int64_t k = 0; k < cols; k++) {
            g += (double)wg[r * cols + k] * x[k];
            u += (double)wu[r * cols + k] * x[k];
        }
        ref[r] = qb_bf16_to_f32(qb_f32_to_bf16((float)(g / (1 + exp(-g)) * u)));
    }
    uint16_t *d_x = dev(xb, (size_t)cols * 2), *d_out = dev(NULL, (size_t)rows * 2);
    QBT_OK(qb_cuda_gemv_swiglu(c, &dg, &du, d_x, d_out, &err));
    QBT_OK(qb_cuda_sync(c, &err));
    float *got = from_dev_bf16(d_out, (size_t)rows);
    expect_close(qb_wfmt_get(fmt)->name, "SwiGLU GEMV, many row groups", got, ref, (size_t)rows,
                 TOL_SWIGLU);
    free(got);
    qb_cuda_weight_free(&dg), qb_cuda_weight_free(&du);
    qb_linear_release(&lg), qb_linear_release(&lu);
    qb_cuda_free(d_x), qb_cuda_free(d_out);
    qb_cuda_ctx_free(c);
    free(wg), free(wu), free(x), free(ref), free(xb);
}

Test(cuda_packed, swiglu_many_row_groups)
{
    if (!qb_cuda_available())
        cr_skip_test("no CUDA GPU on this machine");
    struct qb_quant_params g128 = {.group = 128}, g32 = {.group = 32}, none = {0};
    check_swiglu_rows(QB_WFMT_INT4, &g128); /* whole steps */
    check_swiglu_rows(QB_WFMT_INT4, &g32);
    check_swiglu_rows(QB_WFMT_NVFP4, &none);
    check_swiglu_rows(QB_WFMT_NF4, &none);
    check_swiglu_rows(QB_WFMT_NF4_DQ, &none);
}

/* GPTQ act-order: column c takes the scale of group g_idx[c]. */
Test(cuda_packed, int4_act_order_g_idx)
{
    if (!qb_cuda_available())
        cr_skip_test("no CUDA GPU on this machine");
    static int32_t g_idx[COLS];
    for (int c = 0; c < COLS; c++)
        g_idx[c] = ((c * 37) % COLS) / 128;
    struct qb_quant_params qp = {.group = 128, .g_idx = g_idx};
    check_format("int4_g_idx", QB_WFMT_INT4, &qp);
}

/* The repacking, checked on any machine: the device decode run on the host
 * over the staged layout against each format's reference dequantization. */
Test(cuda_packed, repacked_layout_decodes_like_the_reference)
{
    static int32_t g_idx[COLS];
    struct {
        const char *label;
        enum qb_wfmt fmt;
        struct qb_quant_params qp;
    } cases[] = {
        {"int8", QB_WFMT_INT8, {0}},           {"fp8", QB_WFMT_FP8_E4M3, {0}},
        {"fp8-e5m2", QB_WFMT_FP8_E5M2, {0}},   {"int4 g128", QB_WFMT_INT4, {.group = 128}},
        {"int4 g32", QB_WFMT_INT4, {.group = 32}}, {"int4-sym", QB_WFMT_INT4_SYM, {.group = 64}},
        {"uint4 g128", QB_WFMT_UINT_G, {.group = 128, .bits = 4}}, {"nf4", QB_WFMT_NF4, {0}},
        {"nf4-dq", QB_WFMT_NF4_DQ, {0}},       {"nvfp4", QB_WFMT_NVFP4, {0}},
        {"mxfp4", QB_WFMT_MXFP4, {0}},
        {"int4 g_idx", QB_WFMT_INT4, {.group = 128, .g_idx = g_idx}},
    };
    float *ref = malloc((size_t)ROWS * COLS * 4), *emu = malloc((size_t)ROWS * COLS * 4);
    for (int c = 0; c < COLS; c++)
        g_idx[c] = ((c * 37) % COLS) / 128;
    for (size_t k = 0; k < QB_ARRAY_LEN(cases); k++) {
        struct qb_linear lin;
        quantize_random(cases[k].fmt, &cases[k].qp, &lin);
        qb_wfmt_get(cases[k].fmt)->dequant_rows(&lin, 0, ROWS, ref);
        QBT_OK(qb_cuda_emulate_dequant(&lin, emu, &err));
        expect_close(cases[k].label, "host emulation", emu, ref, (size_t)ROWS * COLS,
                     TOL_EMULATED);
        qb_linear_release(&lin);
    }
    free(ref), free(emu);
}

/* A context and a random fp8-w8a8 weight on it (make). */
static struct qb_cuda_ctx *make_w8a8(struct qb_linear *lin, struct qb_cuda_weight *dw,
                                     float **ref_w)
{
    struct qb_quant_params qp = {.act = QB_ACT_FP8_E4M3};
    struct qb_cuda_ctx *c = NULL;
    QBT_OK(qb_cuda_ctx_create(&c, &err));
    make(QB_WFMT_FP8_E4M3, &qp, lin, ref_w, dw);
    return c;
}

/* fp8-w8a8: activations quantized per token like the CPU reference
 * (qb_act_quantize_rows); prefill through cuBLASLt FP8, decode through the
 * fp8 GEMV on the E4M3 code values with the token scale after the dot. */
Test(cuda_packed, fp8_w8a8)
{
    if (!qb_cuda_available())
        cr_skip_test("no CUDA GPU on this machine");
    struct qb_linear lin;
    struct qb_cuda_weight dw;
    float *ref_w, x[NTOK * COLS], xq[NTOK * COLS], ref_y[NTOK * ROWS];
    struct qb_cuda_ctx *c = make_w8a8(&lin, &dw, &ref_w);
    uint16_t xb[NTOK * COLS];
    for (int i = 0; i < NTOK * COLS; i++) {
        xb[i] = qb_f32_to_bf16(frand() * (i % 50 == 0 ? 8.0f : 1.0f));
        x[i] = qb_bf16_to_f32(xb[i]);
    }
    qb_act_quantize_rows(QB_ACT_FP8_E4M3, x, NTOK, COLS, xq);
    ref_matmul(ref_w, xq, NTOK, ref_y);
    QBT_OK(qb_cuda_ctx_reserve_dequant(c, (size_t)ROWS * COLS, &err));
    QBT_OK(qb_cuda_ctx_reserve_act(c, NTOK, COLS, &err));
    uint16_t *d_x = dev(xb, sizeof xb);
    float *d_y = dev(NULL, sizeof ref_y);
    QBT_OK(qb_cuda_linear(c, &dw, d_x, NTOK, d_y, ROWS, 0, &err));
    QBT_OK(qb_cuda_sync(c, &err));
    float *got = from_dev_f32(d_y, (size_t)NTOK * ROWS);
    expect_close("fp8-w8a8", "prefill (FP8 TC)", got, ref_y, (size_t)NTOK * ROWS, TOL_W8A8);
    free(got);
    QBT_OK(qb_cuda_linear(c, &dw, d_x, 1, d_y, ROWS, 0, &err));
    QBT_OK(qb_cuda_sync(c, &err));
    got = from_dev_f32(d_y, ROWS);
    expect_close("fp8-w8a8", "decode GEMV", got, ref_y, ROWS, TOL_GEMV);
    free(got);
    qb_cuda_weight_free(&dw), qb_linear_release(&lin);
    qb_cuda_free(d_x), qb_cuda_free(d_y), qb_cuda_ctx_free(c), free(ref_w);
}

/* The decode norms of a W8A8 model quantize for their consumer in the same
 * kernel (qb_cuda_rmsnorm_fp8): the same bits as the norm, then the W8A8
 * activation quantization, through each entry that takes a pre-quantized
 * input, and within TOL_W8A8 of the CPU (norm and per-token quantization). */
Test(cuda_packed, fp8_w8a8_norm_quantizes)
{
    if (!qb_cuda_available())
        cr_skip_test("no CUDA GPU on this machine");
    struct qb_linear lin;
    struct qb_cuda_weight dw;
    float *ref_w, xf[COLS], nw[COLS], xn[COLS], xq[COLS], ref_y[ROWS], y0[ROWS];
    struct qb_cuda_ctx *c = make_w8a8(&lin, &dw, &ref_w);
    double ss = 0;
    QBT_OK(qb_cuda_ctx_reserve_act(c, 1, COLS, &err));
    for (int k = 0; k < COLS; k++) {
        xf[k] = frand() * (k % 37 == 0 ? 12.0f : 3.0f);
        nw[k] = 1.0f + 0.5f * frand();
        ss += (double)xf[k] * xf[k];
    }
    for (int r = 0; r < ROWS; r++)
        y0[r] = frand();
    float inv = (float)(1.0 / sqrt(ss / COLS + 1e-5));
    for (int k = 0; k < COLS; k++)
        xn[k] = qb_bf16_to_f32(qb_f32_to_bf16(xf[k] * inv * nw[k]));
    qb_act_quantize_rows(QB_ACT_FP8_E4M3, xn, 1, COLS, xq);
    ref_matmul(ref_w, xq, 1, ref_y);
    float *d_xf = dev(xf, sizeof xf), *d_nw = dev(nw, sizeof nw), *d_y = dev(NULL, sizeof ref_y);
    float *d_s = dev(NULL, sizeof(float)), *d_res = dev(NULL, ROWS * sizeof(float));
    uint16_t *d_aq = dev(NULL, COLS * 2), *d_ab = dev(NULL, COLS * 2);
    uint16_t *d_out = dev(NULL, ROWS * 2), *d_out2 = dev(NULL, ROWS * 2);
    const struct qb_cuda_weight *ws[1] = {&dw};
    /* the q|k|v entry of layer 0: the norm quantizes, the GEMV takes it as is */
    struct qb_cuda_norm_in in_q = {d_xf, d_nw, 1e-5f, d_aq, d_s};
    struct qb_cuda_norm_in in_b = {d_xf, d_nw, 1e-5f, d_ab, NULL};
    QBT_OK(qb_cuda_gemv_norm(c, ws, 1, &in_q, d_y, 0, &err));
    QBT_OK(qb_cuda_sync(c, &err));
    float *got = from_dev_f32(d_y, ROWS);
    QBT_OK(qb_cuda_gemv_norm(c, ws, 1, &in_b, d_y, 0, &err));
    QBT_OK(qb_cuda_sync(c, &err));
    float *plain = from_dev_f32(d_y, ROWS);
    cr_assert(!memcmp(got, plain, sizeof ref_y), "fused norm + quantization differs from the two");
    expect_close("fp8-w8a8", "quantizing norm", got, ref_y, ROWS, TOL_W8A8);
    free(got), free(plain);
    /* gate/up over the quantized input against the unquantized one */
    QBT_OK(qb_cuda_gemv_swiglu_prequant(c, &dw, &dw, d_aq, d_s, d_out, &err));
    QBT_OK(qb_cuda_gemv_swiglu(c, &dw, &dw, d_ab, d_out2, &err));
    QBT_OK(qb_cuda_sync(c, &err));
    float *sw = from_dev_bf16(d_out, ROWS), *sw2 = from_dev_bf16(d_out2, ROWS);
    cr_assert(!memcmp(sw, sw2, ROWS * sizeof(float)), "gate/up over the quantized input differs");
    free(sw), free(sw2);
    /* the norm after y += W x (o, down; over y's ROWS), quantizing and not: the
     * codes times the scale are the CPU's quantization of the unquantized norm */
    struct qb_cuda_norm_in next_q = {d_res, d_nw, 1e-5f, d_aq, d_s};
    struct qb_cuda_norm_in next_b = {d_res, d_nw, 1e-5f, d_ab, NULL};
    float s_q, *codes, *normed, want[ROWS];
    QBT_OK(qb_cuda_upload(d_res, y0, sizeof y0, &err));
    QBT_OK(qb_cuda_gemv_add_norm(c, &dw, d_ab, d_res, &next_q, &err));
    QBT_OK(qb_cuda_upload(d_res, y0, sizeof y0, &err));
    QBT_OK(qb_cuda_gemv_add_norm(c, &dw, d_ab, d_res, &next_b, &err));
    QBT_OK(qb_cuda_sync(c, &err));
    codes = from_dev_bf16(d_aq, ROWS), normed = from_dev_bf16(d_ab, ROWS);
    QBT_OK(qb_cuda_download(&s_q, d_s, sizeof s_q, &err));
    qb_act_quantize_rows(QB_ACT_FP8_E4M3, normed, 1, ROWS, want);
    for (int r = 0; r < ROWS; r++)
        cr_assert_eq(codes[r] * s_q, want[r], "quantizing norm after y += W x: %d: %g * %g, "
                     "CPU %g", r, codes[r], s_q, want[r]);
    free(codes), free(normed);
    qb_cuda_weight_free(&dw), qb_linear_release(&lin);
    qb_cuda_free(d_xf), qb_cuda_free(d_nw), qb_cuda_free(d_y), qb_cuda_free(d_s);
    qb_cuda_free(d_res), qb_cuda_free(d_aq), qb_cuda_free(d_ab), qb_cuda_free(d_out);
    qb_cuda_free(d_out2), qb_cuda_ctx_free(c), free(ref_w);
}

/* What the GPU cannot run is refused with a message, not run wrong. */
Test(cuda_packed, unsupported_is_refused)
{
    if (!qb_cuda_available())
        cr_skip_test("no CUDA GPU on this machine");
    struct qb_linear lin;
    struct qb_cuda_weight dw;
    struct qb_quant_params qp = {.group = 128, .bits = 3};
    struct qb_err e = {0};
    float *w = calloc((size_t)ROWS * COLS, sizeof *w);
    w[5] = 1;
    QBT_OK(qb_linear_quantize(w, ROWS, COLS, QB_WFMT_UINT_G, &qp, "w3", &lin, &err));
    cr_assert_eq(qb_cuda_weight_upload(&lin, "w3", &dw, &e), QB_ERR_UNSUPPORTED);
    cr_assert(strstr(e.msg, "w3"), "%s", e.msg);
    qb_linear_release(&lin);
    free(w);
}

#else /* !QB_HAVE_CUDA */

Test(cuda_packed, skipped_without_cuda)
{
    cr_assert_eq(qb_cuda_supports(QB_WFMT_INT4, QB_ACT_F32), 0);
    cr_skip_test("built without CUDA (-DQUANTBENCH_CUDA=OFF)");
}

#endif
