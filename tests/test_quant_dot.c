/*
 * test_quant_dot.c - the fused dot products: each format's SIMD path (AVX2 on
 * x86-64, NEON on arm64) against its plain C reference, and the fused reference
 * against dequantize-then-dot in double; plus the raw SIMD kernels against
 * scalar loops. Tolerances are relative to sum |w_i x_i|.
 * qb-test-labels: arm64
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "fp_formats.h"
#include "quant.h"
#include "quant_simd.h"

/* SIMD vs reference: both fp32, different summation order. */
#define DOT_SIMD_TOL 2e-6
/* fused fp32 reference vs dequantize then dot in double. */
#define DOT_FUSED_TOL 2e-6
/* raw kernels vs scalar fp32 loops */
#define KERNEL_TOL 2e-6

static uint64_t rng = 0x13198a2e03707344ull;

static float urand(void)
{
    rng = rng * 6364136223846793005ull + 1442695040888963407ull;
    return (float)((double)(rng >> 11) / 9007199254740992.0);
}

static float gauss(void)
{
    float u = fmaxf(urand(), 1e-12f), v = urand();
    return sqrtf(-2.0f * logf(u)) * cosf(6.2831853f * v);
}

struct dot_case {
    enum qb_wfmt fmt;
    int group, bits;
    int64_t cols;
};

static void check_case(const struct dot_case *k)
{
    int64_t R = 5, C = k->cols;
    float *w = malloc((size_t)(R * C) * sizeof(float)), *x = malloc((size_t)C * sizeof(float));
    float *d = malloc((size_t)(R * C) * sizeof(float));
    for (int64_t i = 0; i < R * C; i++)
        w[i] = 0.02f * gauss();
    for (int64_t c = 0; c < C; c++)
        x[c] = gauss();
    struct qb_quant_params qp = {.group = k->group, .bits = k->bits};
    struct qb_linear l;
    struct qb_err err = {0};
    cr_assert_eq(qb_linear_quantize(w, R, C, k->fmt, &qp, "t", &l, &err), QB_OK, "%s", err.msg);
    const struct qb_wfmt_traits *t = qb_wfmt_get(k->fmt);
    t->dequant_rows(&l, 0, R, d);
    for (int64_t r = 0; r < R; r++) {
        double ref = 0, mag = 0;
        for (int64_t c = 0; c < C; c++) {
            ref += (double)d[r * C + c] * x[c];
            mag += fabs((double)d[r * C + c] * x[c]);
        }
        float fused_ref = t->vec_dot_ref(&l, r, x);
        float fused = t->vec_dot(&l, r, x);
        cr_assert_leq(fabs(fused_ref - ref), DOT_FUSED_TOL * mag + 1e-30,
                      "%s g%d b%d cols %lld row %lld: ref %g vs dequant %g", t->name, k->group,
                      k->bits, (long long)C, (long long)r, (double)fused_ref, ref);
        cr_assert_leq(fabs(fused - fused_ref), DOT_SIMD_TOL * mag + 1e-30,
                      "%s (%s) cols %lld row %lld: %g vs ref %g", t->name, qb_simd_name(),
                      (long long)C, (long long)r, (double)fused, (double)fused_ref);
    }
    qb_linear_release(&l);
    free(w);
    free(x);
    free(d);
}

Test(vec_dot, every_format_simd_vs_reference_vs_dequant)
{
    cr_log_info("SIMD path: %s", qb_simd_name());
    const struct dot_case cases[] = {
        {QB_WFMT_F32, 0, 0, 256},        {QB_WFMT_F16, 0, 0, 256},
        {QB_WFMT_BF16, 0, 0, 256},       {QB_WFMT_INT8, 0, 0, 256},
        {QB_WFMT_INT8, 0, 0, 100},       {QB_WFMT_INT4, 128, 0, 768},
        {QB_WFMT_INT4, 32, 0, 256},      {QB_WFMT_INT4, 64, 0, 256},
        {QB_WFMT_INT4_SYM, 128, 0, 256}, {QB_WFMT_UINT_G, 128, 2, 256},
        {QB_WFMT_UINT_G, 128, 3, 384},   {QB_WFMT_UINT_G, 32, 8, 256},
        {QB_WFMT_NF4, 0, 0, 256},        {QB_WFMT_NF4, 0, 0, 96},
        {QB_WFMT_NF4_DQ, 0, 0, 512},     {QB_WFMT_NF4_DQ, 0, 0, 96},
        {QB_WFMT_FP8_E4M3, 0, 0, 256},   {QB_WFMT_FP8_E4M3, 0, 0, 77},
        {QB_WFMT_FP8_E5M2, 0, 0, 256},   {QB_WFMT_NVFP4, 0, 0, 256},
        {QB_WFMT_NVFP4, 0, 0, 48},       {QB_WFMT_MXFP4, 0, 0, 256},
        {QB_WFMT_MXFP4, 0, 0, 4096},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        check_case(&cases[i]);
}

static float lut4_scalar(const uint8_t *qs, int n, const float *lut, const float *x, int hi_first)
{
    float s = 0;
    for (int i = 0; i < n; i++) {
        unsigned b = qs[i / 2];
        unsigned code = (i & 1) == (hi_first ? 0 : 1) ? b >> 4 : b & 0xf;
        s += lut[code] * x[i];
    }
    return s;
}

Test(kernels, lut4_both_nibble_orders_and_lengths)
{
    uint8_t qs[64];
    float x[128], lut[16];
    for (int i = 0; i < 64; i++)
        qs[i] = (uint8_t)(urand() * 256);
    for (int i = 0; i < 128; i++)
        x[i] = gauss();
    for (int k = 0; k < 16; k++)
        lut[k] = gauss();
    const int lens[] = {16, 32, 48, 64, 128};
    for (int li = 0; li < 5; li++) {
        for (int hi = 0; hi < 2; hi++) {
            int n = lens[li];
            float mag = 0;
            for (int i = 0; i < n; i++)
                mag += fabsf(x[i]) * 3;
            float a = qb_simd_lut4_dot(qs, n, lut, x, hi), b = lut4_scalar(qs, n, lut, x, hi);
            cr_assert_leq(fabsf(a - b), KERNEL_TOL * mag, "n %d even_high %d: %g vs %g", n, hi,
                          (double)a, (double)b);
        }
    }
    /* a one-hot x reads exactly one table entry: proves the nibble order */
    for (int i = 0; i < 32; i++) {
        float oh[32] = {0};
        oh[i] = 1.0f;
        unsigned lo = i & 1 ? qs[i / 2] >> 4 : qs[i / 2] & 0xf;
        unsigned hi = i & 1 ? qs[i / 2] & 0xf : qs[i / 2] >> 4;
        cr_assert_eq(qb_simd_lut4_dot(qs, 32, lut, oh, 0), lut[lo], "element %d", i);
        cr_assert_eq(qb_simd_lut4_dot(qs, 32, lut, oh, 1), lut[hi], "element %d", i);
    }
}

Test(kernels, fp8_every_code_and_integer_bytes)
{
    uint8_t q[256];
    float x[256];
    for (int e5 = 0; e5 < 2; e5++) {
        int n = 0;
        for (unsigned c = 0; c < 256; c++) {
            float v = e5 ? qb_e5m2_to_f32((uint8_t)c) : qb_e4m3_to_f32((uint8_t)c);
            if (isfinite(v))
                q[n++] = (uint8_t)c;
        }
        /* one-hot: every finite code decodes exactly in the SIMD path */
        for (int i = 0; i < n; i++) {
            memset(x, 0, sizeof x);
            x[i] = 1.0f;
            float want = e5 ? qb_e5m2_to_f32(q[i]) : qb_e4m3_to_f32(q[i]);
            cr_assert_eq(qb_simd_fp8_dot(q, n, x, e5), want, "code 0x%02x e5m2 %d", q[i], e5);
        }
    }
    int8_t qi[200];
    uint8_t qu[200];
    float s1 = 0, s2 = 0, mag = 0;
    for (int i = 0; i < 200; i++) {
        qi[i] = (int8_t)(urand() * 255 - 127);
        qu[i] = (uint8_t)(urand() * 255);
        x[i % 256] = gauss();
    }
    for (int i = 0; i < 200; i++) {
        s1 += qi[i] * x[i];
        s2 += qu[i] * x[i];
        mag += 255 * fabsf(x[i]);
    }
    cr_assert_leq(fabsf(qb_simd_i8_dot(qi, 200, x) - s1), KERNEL_TOL * mag);
    cr_assert_leq(fabsf(qb_simd_u8_dot(qu, 200, x) - s2), KERNEL_TOL * mag);
}

Test(kernels, comparator_fires_on_a_seeded_mismatch)
{
    /* self-check: a corrupted payload must break SIMD == dequant agreement */
    float w[256], x[256], d[256];
    for (int i = 0; i < 256; i++) {
        w[i] = gauss();
        x[i] = 1.0f;
    }
    struct qb_linear l;
    struct qb_err err = {0};
    cr_assert_eq(qb_linear_quantize(w, 1, 256, QB_WFMT_MXFP4, NULL, "t", &l, &err), QB_OK);
    qb_wfmt_get(QB_WFMT_MXFP4)->dequant_rows(&l, 0, 1, d);
    ((uint8_t *)l.owned)[1] ^= 0x77; /* flip codes after dequantizing */
    double ref = 0;
    for (int i = 0; i < 256; i++)
        ref += d[i];
    cr_assert_gt(fabs(qb_wfmt_get(QB_WFMT_MXFP4)->vec_dot(&l, 0, x) - ref), 1e-3);
    qb_linear_release(&l);
}
