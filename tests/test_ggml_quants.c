/*
 * test_ggml_quants.c - ggml block types: block bytes equal ggml's reference
 * quantizers (golden blocks made by ggml-quants.c itself, see
 * tests/data/gguf/README.md), dequantization error bounds, the F16 rounding
 * helper, and the SIMD row dot product against the plain C reference.
 * qb-test-labels: arm64
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "dtype.h"
#include "ggml_quants.h"

#define NROW 64
#define NCOL 256

/* ---- deterministic inputs (must match the generator behind the golden files) ---- */

static uint64_t sm_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static float sm_unif(uint64_t *s) { return (float)(sm_next(s) >> 40) * (1.0f / 16777216.0f); }

static float sm_gauss(uint64_t *s)
{
    /* evaluated left to right, as in the generator */
    float a = sm_unif(s);
    a = a + sm_unif(s);
    a = a + sm_unif(s);
    a = a + sm_unif(s);
    return a - 2.0f;
}

static void gen_row(int r, float *x, int n)
{
    uint64_t s = 0x51ed2701u + (uint64_t)r * 7919u;
    float scale = 1e-3f * (float)(1 + (r * 37) % 1000);
    for (int i = 0; i < n; i++) {
        switch (r % 8) {
        case 0: x[i] = sm_gauss(&s) * scale; break;
        case 1:
            x[i] = sm_gauss(&s) * scale;
            if (sm_next(&s) % 17 == 0)
                x[i] *= 20;
            break;
        case 2: x[i] = sm_unif(&s) * scale; break;
        case 3: x[i] = -sm_unif(&s) * scale; break;
        case 4:
            x[i] = (sm_next(&s) % 5 == 0 && (i < 32 || i >= 64)) ? sm_gauss(&s) * scale : 0;
            break;
        case 5: x[i] = (float)((i / 16) % 3 - 1) * scale; break;
        case 6: x[i] = sm_gauss(&s) * 1e-8f; break;
        default: x[i] = qb_f16_to_f32(qb_f32_to_f16(sm_gauss(&s) * scale * 10)); break;
        }
    }
}

static const int quant_types[] = {QB_GGML_Q4_0, QB_GGML_Q4_1, QB_GGML_Q5_0, QB_GGML_Q5_1,
                                  QB_GGML_Q8_0, QB_GGML_IQ4_NL, QB_GGML_Q2_K, QB_GGML_Q3_K,
                                  QB_GGML_Q4_K, QB_GGML_Q5_K, QB_GGML_Q6_K};
#define N_QTYPES (sizeof quant_types / sizeof quant_types[0])

/* Round-trip RMSE bound per type, relative to the row's RMS (gaussian rows). */
static double rel_rmse_tol(int type)
{
    switch (type) {
    case QB_GGML_Q8_0: return 0.008;
    case QB_GGML_Q6_K: return 0.02;
    case QB_GGML_Q5_0: case QB_GGML_Q5_1: case QB_GGML_Q5_K: return 0.05;
    case QB_GGML_Q4_0: case QB_GGML_Q4_1: case QB_GGML_Q4_K: case QB_GGML_IQ4_NL: return 0.11;
    case QB_GGML_Q3_K: return 0.22;
    default: return 0.45; /* Q2_K */
    }
}

static uint8_t *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "cannot open %s", path);
    fseek(f, 0, SEEK_END);
    *len = (size_t)ftell(f);
    fseek(f, 0, SEEK_SET);
    uint8_t *p = malloc(*len);
    cr_assert_eq(fread(p, 1, *len, f), *len);
    fclose(f);
    return p;
}

Test(ggml_quants, type_table_matches_ggml)
{
    static const struct { int t; const char *name; int block, size; } want[] = {
        {QB_GGML_F32, "f32", 1, 4},        {QB_GGML_F16, "f16", 1, 2},
        {QB_GGML_Q4_0, "q4_0", 32, 18},    {QB_GGML_Q4_1, "q4_1", 32, 20},
        {QB_GGML_Q5_0, "q5_0", 32, 22},    {QB_GGML_Q5_1, "q5_1", 32, 24},
        {QB_GGML_Q8_0, "q8_0", 32, 34},    {QB_GGML_Q2_K, "q2_K", 256, 84},
        {QB_GGML_Q3_K, "q3_K", 256, 110},  {QB_GGML_Q4_K, "q4_K", 256, 144},
        {QB_GGML_Q5_K, "q5_K", 256, 176},  {QB_GGML_Q6_K, "q6_K", 256, 210},
        {QB_GGML_IQ4_NL, "iq4_nl", 32, 18}, {QB_GGML_BF16, "bf16", 1, 2},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        const struct qb_ggml_type_info *ti = qb_ggml_type_info(want[i].t);
        cr_assert_not_null(ti);
        cr_assert_str_eq(ti->name, want[i].name);
        cr_assert_eq(ti->block, want[i].block);
        cr_assert_eq(ti->type_size, want[i].size);
        cr_assert_eq(qb_ggml_type_from_name(want[i].name), want[i].t);
    }
    cr_assert_null(qb_ggml_type_info(4));
    cr_assert_null(qb_ggml_type_info(31));
    cr_assert_null(qb_ggml_type_info(40));
    cr_assert_null(qb_ggml_type_info(-1));
    cr_assert_eq(qb_ggml_row_bytes(QB_GGML_Q4_K, 4096), 16 * 144);
    cr_assert_eq(qb_ggml_row_bytes(QB_GGML_Q4_K, 4000), 0);
    cr_assert_eq(qb_ggml_row_bytes(QB_GGML_Q8_0, 0), 0);
    cr_assert_eq(qb_ggml_type_from_name("Q6_K"), QB_GGML_Q6_K);
    cr_assert_eq(qb_ggml_type_from_name("q9_9"), -1);
}

Test(ggml_quants, blocks_equal_ggml_reference_bit_for_bit)
{
    static float x[NROW * NCOL];
    for (int r = 0; r < NROW; r++)
        gen_row(r, x + r * NCOL, NCOL);
    for (size_t k = 0; k < N_QTYPES; k++) {
        const int t = quant_types[k];
        char path[512];
        size_t len;
        snprintf(path, sizeof path, "%s/gguf/golden-%s.bin", QB_TEST_DATA,
                 qb_ggml_type_info(t)->name);
        uint8_t *golden = read_file(path, &len);
        const size_t rb = qb_ggml_row_bytes(t, NCOL);
        cr_assert_eq(len, rb * NROW, "%s", path);
        uint8_t *ours = malloc(len);
        for (int r = 0; r < NROW; r++) {
            cr_assert_eq(qb_ggml_quantize_row(t, x + r * NCOL, ours + r * rb, NCOL), 0);
            if (memcmp(ours + r * rb, golden + r * rb, rb) != 0) {
                size_t b = 0;
                while (ours[r * rb + b] == golden[r * rb + b])
                    b++;
                cr_assert_fail("%s row %d (kind %d): first differing byte %zu of %zu",
                               qb_ggml_type_info(t)->name, r, r % 8, b, rb);
            }
        }
        /* quantizing all rows in one call gives the same bytes */
        cr_assert_eq(qb_ggml_quantize_row(t, x, ours, (int64_t)NROW * NCOL), 0);
        cr_assert(!memcmp(ours, golden, len), "%s multi-row call", qb_ggml_type_info(t)->name);
        free(ours);
        free(golden);
    }
}

Test(ggml_quants, dequant_error_is_bounded)
{
    for (size_t k = 0; k < N_QTYPES; k++) {
        const int t = quant_types[k];
        uint64_t s = 99 + k;
        float x[1024], y[1024];
        uint8_t q[1024 * 2];
        double err2 = 0, sig2 = 0;
        for (int i = 0; i < 1024; i++)
            x[i] = sm_gauss(&s) * 0.02f;
        cr_assert_eq(qb_ggml_quantize_row(t, x, q, 1024), 0);
        cr_assert_eq(qb_ggml_dequantize_row(t, q, y, 1024), 0);
        for (int i = 0; i < 1024; i++) {
            err2 += (double)(x[i] - y[i]) * (x[i] - y[i]);
            sig2 += (double)x[i] * x[i];
        }
        double rel = sqrt(err2 / sig2);
        cr_assert_lt(rel, rel_rmse_tol(t), "%s: relative RMSE %.4f", qb_ggml_type_info(t)->name,
                     rel);
    }
}

Test(ggml_quants, zero_rows_and_plain_types)
{
    float z[256] = {0}, y[256];
    uint8_t q[512];
    for (size_t k = 0; k < N_QTYPES; k++) {
        cr_assert_eq(qb_ggml_quantize_row(quant_types[k], z, q, 256), 0);
        cr_assert_eq(qb_ggml_dequantize_row(quant_types[k], q, y, 256), 0);
        for (int i = 0; i < 256; i++)
            cr_assert_eq(y[i], 0.0f, "%s", qb_ggml_type_info(quant_types[k])->name);
    }
    float x[4] = {1.0f, -2.5f, 65504.0f, 1e-8f};
    cr_assert_eq(qb_ggml_quantize_row(QB_GGML_F16, x, q, 4), 0);
    cr_assert_eq(qb_ggml_dequantize_row(QB_GGML_F16, q, y, 4), 0);
    cr_assert_eq(y[1], -2.5f);
    cr_assert_eq(y[2], 65504.0f);
    cr_assert_eq(qb_ggml_quantize_row(QB_GGML_BF16, x, q, 4), 0);
    cr_assert_eq(qb_ggml_dequantize_row(QB_GGML_BF16, q, y, 4), 0);
    cr_assert_eq(y[1], -2.5f);
    cr_assert_eq(qb_ggml_quantize_row(QB_GGML_Q4_K, x, q, 4), -1);
    cr_assert_eq(qb_ggml_quantize_row(QB_GGML_IQ2_XXS, z, q, 256), -1);
    cr_assert_eq(qb_ggml_dequantize_row(QB_GGML_Q8_0, q, y, 31), -1);
}

Test(ggml_quants, round_f16_is_the_hf_to_gguf_step)
{
    float x[5] = {1.0f + 1.0f / 4096, 0.1f, -3.14159265f, 1e-9f, 70000.0f}, y[5];
    qb_ggml_round_f16(x, y, 5);
    cr_assert_eq(y[0], 1.0f); /* tie at half an f16 ulp rounds to even */
    cr_assert_eq(y[1], 0.0999755859375f);
    cr_assert_eq(y[2], -3.140625f);
    cr_assert_eq(y[3], 0.0f);
    cr_assert(isinf(y[4]));
    cr_assert_eq(qb_ggml_first_nonfinite(y, 5), 4);
    cr_assert_eq(qb_ggml_first_nonfinite(y, 4), -1);
}

Test(ggml_quants, simd_dot_matches_reference)
{
    const char *path = qb_ggml_simd_name();
    cr_log_info("vec_dot path: %s", path);
    const int types[] = {QB_GGML_F32, QB_GGML_F16, QB_GGML_BF16, QB_GGML_Q4_0, QB_GGML_Q4_1,
                         QB_GGML_Q5_0, QB_GGML_Q5_1, QB_GGML_Q8_0, QB_GGML_IQ4_NL, QB_GGML_Q2_K,
                         QB_GGML_Q3_K, QB_GGML_Q4_K, QB_GGML_Q5_K, QB_GGML_Q6_K};
    enum { N = 2048 };
    static float w[N], x[N], deq[N];
    static uint8_t q[N * 4];
    uint64_t s = 7;
    for (int i = 0; i < N; i++) {
        w[i] = sm_gauss(&s);
        x[i] = sm_gauss(&s);
    }
    for (size_t k = 0; k < sizeof types / sizeof types[0]; k++) {
        const int t = types[k];
        cr_assert_eq(qb_ggml_quantize_row(t, w, q, N), 0);
        cr_assert_eq(qb_ggml_dequantize_row(t, q, deq, N), 0);
        double exact = 0, mag = 0;
        for (int i = 0; i < N; i++) {
            exact += (double)deq[i] * x[i];
            mag += fabs((double)deq[i] * x[i]);
        }
        float ref = qb_ggml_vec_dot_ref(t, q, x, N);
        float simd = qb_ggml_vec_dot(t, q, x, N);
        cr_assert_leq(fabs(ref - exact), QB_GGML_DOT_REL_TOL * mag, "%s ref %g exact %g",
                      qb_ggml_type_info(t)->name, ref, exact);
        cr_assert_leq(fabs(simd - ref), QB_GGML_DOT_REL_TOL * mag, "%s simd %g ref %g",
                      qb_ggml_type_info(t)->name, simd, ref);
    }
    /* the comparator fires on a real mismatch */
    cr_assert_eq(qb_ggml_quantize_row(QB_GGML_Q8_0, w, q, N), 0);
    cr_assert_gt(fabs(qb_ggml_vec_dot(QB_GGML_Q8_0, q, x, N - 32) -
                      qb_ggml_vec_dot_ref(QB_GGML_Q8_0, q, x, N)), 0.0);
    cr_assert(isnan(qb_ggml_vec_dot(QB_GGML_Q4_K, q, x, 100)));
}
