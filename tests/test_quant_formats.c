/*
 * test_quant_formats.c - the packed weight formats through the public API:
 * quantization error bounds per format, NaN/Inf errors naming the tensor,
 * determinism, exact packed sizes and bits/weight, code packing (GPTQ/AWQ
 * entry point with act-order g_idx), schemes and activation quantization.
 * qb-test-labels: arm64
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "dtype.h"
#include "fp_formats.h"
#include "quant.h"
#include "quant_blocks.h"

/* Error bound of the group formats, in steps of the stored f16 scale: half a
 * step, plus the drift the f16 rounding of the scale (relative 2^-11) causes at
 * the far end of the grid, (2^b - 1) * 2^-11 steps. */
#define INT_ERR_STEPS(bits) (0.5f + (float)((1 << (bits)) - 1) * 0x1p-11f + 1e-4f)
#define NF4DQ_ABSMAX_HALF_GAP 0.0071f /* half the largest gap of the dynamic map */

static uint64_t rng = 0x243f6a8885a308d3ull;

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

static float *rand_weights(int64_t rows, int64_t cols, float sigma)
{
    float *w = malloc((size_t)(rows * cols) * sizeof(float));
    for (int64_t i = 0; i < rows * cols; i++)
        w[i] = sigma * gauss();
    /* an outlier and an all-zero stretch, as real checkpoints have */
    w[3] = 8.0f * sigma;
    for (int64_t i = cols; i < cols + 32 && i < rows * cols; i++)
        w[i] = 0.0f;
    return w;
}

static float *dequant_all(const struct qb_linear *l)
{
    float *d = malloc((size_t)(l->rows * l->cols) * sizeof(float));
    qb_wfmt_get(l->fmt)->dequant_rows(l, 0, l->rows, d);
    return d;
}

static void quantize_ok(const float *w, int64_t rows, int64_t cols, enum qb_wfmt fmt,
                        const struct qb_quant_params *qp, struct qb_linear *l)
{
    struct qb_err err = {0};
    enum qb_status st = qb_linear_quantize(w, rows, cols, fmt, qp, "t", l, &err);
    cr_assert_eq(st, QB_OK, "%s: %s", qb_wfmt_get(fmt)->name, err.msg);
    cr_assert_eq(l->data_bytes, qb_wfmt_get(fmt)->packed_bytes(rows, cols, &l->qp));
}

Test(int8, error_at_most_half_a_step)
{
    int64_t R = 6, C = 256;
    float *w = rand_weights(R, C, 0.02f);
    struct qb_linear l;
    quantize_ok(w, R, C, QB_WFMT_INT8, NULL, &l);
    float *d = dequant_all(&l);
    for (int64_t r = 0; r < R; r++) {
        float amax = 0;
        for (int64_t c = 0; c < C; c++)
            amax = fmaxf(amax, fabsf(w[r * C + c]));
        float scale = amax / 127.0f;
        cr_assert_eq(((const float *)l.data)[r], scale);
        for (int64_t c = 0; c < C; c++)
            cr_assert_leq(fabsf(w[r * C + c] - d[r * C + c]), scale * 0.5f * (1 + 1e-6f) + 1e-12f);
    }
    cr_assert_float_eq(qb_wfmt_bits_per_weight(QB_WFMT_INT8, R, C, NULL), 8.0 + 32.0 / C, 1e-12);
    qb_linear_release(&l);
    free(w);
    free(d);
}

/* For the group formats: every element within INT_ERR_STEPS of its group's step. */
static void check_groups(enum qb_wfmt fmt, int group, int bits)
{
    int64_t R = 5, C = 512;
    float *w = rand_weights(R, C, 0.05f);
    struct qb_quant_params qp = {.group = group, .bits = bits};
    struct qb_linear l;
    quantize_ok(w, R, C, fmt, &qp, &l);
    float *d = dequant_all(&l);
    for (int64_t r = 0; r < R; r++) {
        for (int64_t g = 0; g < C / group; g++) {
            const uint8_t *rec = (const uint8_t *)l.data +
                                 qb_group_record_offset(r, g, C, group, bits);
            struct qb_group_header h;
            memcpy(&h, rec, sizeof h);
            float s = qb_f16_to_f32(h.scale_f16);
            cr_assert_eq(h.bits, bits);
            float ps;
            int pz;
            qb_group_params(w + r * C + g * group, group, bits, fmt == QB_WFMT_INT4_SYM, &ps,
                            &pz);
            cr_assert_eq(ps, s);
            cr_assert_eq(pz, h.zero);
            for (int j = 0; j < group; j++) {
                int64_t i = r * C + g * group + j;
                cr_assert_leq(fabsf(w[i] - d[i]), INT_ERR_STEPS(bits) * s,
                              "%s g%d b%d (%lld,%lld): %g vs %g, step %g",
                              qb_wfmt_get(fmt)->name, group, bits, (long long)r,
                              (long long)(g * group + j), (double)w[i], (double)d[i], (double)s);
            }
        }
    }
    /* bits/weight: b + 32/G (f16 scale, u8 zero, u8 bits per group) */
    cr_assert_float_eq(qb_wfmt_bits_per_weight(fmt, R, C, &l.qp), bits + 32.0 / group, 1e-12);
    qb_linear_release(&l);
    free(w);
    free(d);
}

Test(int4, asymmetric_groups_error_bound)
{
    check_groups(QB_WFMT_INT4, 32, 4);
    check_groups(QB_WFMT_INT4, 64, 4);
    check_groups(QB_WFMT_INT4, 128, 4);
}

Test(int4, symmetric_groups_error_bound)
{
    check_groups(QB_WFMT_INT4_SYM, 128, 4);
    check_groups(QB_WFMT_INT4_SYM, 32, 4);
}

Test(uint_g, two_three_eight_bits_error_bound)
{
    check_groups(QB_WFMT_UINT_G, 128, 2);
    check_groups(QB_WFMT_UINT_G, 128, 3);
    check_groups(QB_WFMT_UINT_G, 64, 3);
    check_groups(QB_WFMT_UINT_G, 32, 8);
}

Test(int4, hand_computed_group)
{
    /* one group of 32: values -1..+2 spread; scale = 3/15 = 0.2, zero = round(5) = 5 */
    float w[32];
    for (int i = 0; i < 32; i++)
        w[i] = -1.0f + 3.0f * (float)i / 31.0f;
    struct qb_quant_params qp = {.group = 32};
    struct qb_linear l;
    quantize_ok(w, 1, 32, QB_WFMT_INT4, &qp, &l);
    struct qb_group_header h;
    memcpy(&h, l.data, sizeof h);
    cr_assert_eq(h.scale_f16, qb_f32_to_f16(0.2f));
    cr_assert_eq(h.zero, 5);
    const uint8_t *codes = (const uint8_t *)l.data + 4;
    cr_assert_eq(codes[0] & 0xf, 0);  /* -1 / 0.2 + 5 = 0 */
    cr_assert_eq(codes[15] >> 4, 15); /* +2 / 0.2 + 5 = 15 */
    cr_assert_eq(l.data_bytes, 4 + 16);
    qb_linear_release(&l);
}

Test(nf4, codes_are_nearest_and_layout_matches_bitsandbytes)
{
    int64_t R = 3, C = 96; /* 288 weights: blocks straddle rows, last block partial */
    float *w = rand_weights(R, C, 0.03f);
    struct qb_linear l;
    quantize_ok(w, R, C, QB_WFMT_NF4, NULL, &l);
    cr_assert_eq(l.data_bytes, 5 * sizeof(struct qb_block_nf4));
    const struct qb_block_nf4 *blk = l.data;
    float *d = dequant_all(&l);
    for (int64_t i = 0; i < R * C; i++) {
        const struct qb_block_nf4 *b = &blk[i / 64];
        int j = (int)(i % 64);
        unsigned code = (j & 1) ? b->qs[j / 2] & 0xf : b->qs[j / 2] >> 4; /* even: high */
        float u = w[i] / b->absmax;
        for (int k = 0; k < 16; k++)
            cr_assert_leq(fabsf(u - qb_nf4_values[code]), fabsf(u - qb_nf4_values[k]) + 1e-6f);
        cr_assert_eq(d[i], qb_nf4_values[code] * b->absmax);
    }
    /* the partial last block's padding is code 7 (0.0) */
    cr_assert_eq(blk[4].qs[31] & 0xf, 7);
    cr_assert_float_eq(qb_wfmt_bits_per_weight(QB_WFMT_NF4, 64, 64, NULL), 4.5, 1e-12);
    qb_linear_release(&l);
    free(w);
    free(d);
}

Test(nf4_dq, double_quantized_absmax_bound_and_same_codes)
{
    int64_t R = 64, C = 512; /* 512 blocks: two nested groups of 256 */
    float *w = rand_weights(R, C, 0.02f);
    struct qb_linear a, b;
    quantize_ok(w, R, C, QB_WFMT_NF4, NULL, &a);
    quantize_ok(w, R, C, QB_WFMT_NF4_DQ, NULL, &b);
    struct qb_nf4dq_header h;
    memcpy(&h, b.data, sizeof h);
    cr_assert_eq(h.n_blocks, 512);
    cr_assert_eq(h.n_nested, 2);
    const float *nested = (const float *)((const uint8_t *)b.data + sizeof h);
    const struct qb_block_nf4dq *bq = (const void *)(nested + 2);
    const struct qb_block_nf4 *ba = a.data;
    double mean = 0;
    for (int k = 0; k < 512; k++)
        mean += ba[k].absmax;
    cr_assert_float_eq(h.offset, (float)(mean / 512), 1e-7);
    for (int k = 0; k < 512; k++) {
        cr_assert_eq(memcmp(ba[k].qs, bq[k].qs, 32), 0, "block %d codes", k);
        float rec = qb_bnb_dynamic_map[bq[k].absmax_code] * nested[k / 256] + h.offset;
        cr_assert_leq(fabsf(rec - ba[k].absmax), NF4DQ_ABSMAX_HALF_GAP * nested[k / 256] + 1e-9f);
    }
    /* 4 + 8/64 + 32/(64*256) plus the 16-byte header */
    double bpw = qb_wfmt_bits_per_weight(QB_WFMT_NF4_DQ, R, C, NULL);
    cr_assert_float_eq(bpw, 4.125 + 32.0 / 16384 + 128.0 / (R * C), 1e-12);
    qb_linear_release(&a);
    qb_linear_release(&b);
    free(w);
}

static void check_fp8(enum qb_wfmt fmt, float fmax, float rel, float sub)
{
    int64_t R = 4, C = 256;
    float *w = rand_weights(R, C, 0.02f);
    struct qb_linear l;
    quantize_ok(w, R, C, fmt, NULL, &l);
    float *d = dequant_all(&l);
    for (int64_t r = 0; r < R; r++) {
        float amax = 0;
        for (int64_t c = 0; c < C; c++)
            amax = fmaxf(amax, fabsf(w[r * C + c]));
        float s = ((const float *)l.data)[r];
        cr_assert_eq(s, amax / fmax);
        for (int64_t c = 0; c < C; c++) {
            float e = fabsf(w[r * C + c] - d[r * C + c]);
            /* half an ulp: relative 2^-(m+1) for normals, absolute below */
            cr_assert_leq(e, fmaxf(fabsf(w[r * C + c]) * rel, s * sub) * (1 + 1e-5f));
        }
    }
    qb_linear_release(&l);
    free(w);
    free(d);
}

Test(fp8, e4m3_and_e5m2_per_row_error_bounds)
{
    check_fp8(QB_WFMT_FP8_E4M3, 448.0f, 0x1p-4f, 0x1p-10f);
    check_fp8(QB_WFMT_FP8_E5M2, 57344.0f, 0x1p-3f, 0x1p-17f);
}

Test(nvfp4, layout_scales_and_error_bound)
{
    int64_t R = 4, C = 128;
    float *w = rand_weights(R, C, 0.02f);
    struct qb_linear l;
    quantize_ok(w, R, C, QB_WFMT_NVFP4, NULL, &l);
    float amax = 0;
    for (int64_t i = 0; i < R * C; i++)
        amax = fmaxf(amax, fabsf(w[i]));
    struct qb_nvfp4_header h;
    memcpy(&h, l.data, sizeof h);
    cr_assert_eq(h.global_scale, 448.0f * 6.0f / amax);
    cr_assert_eq(l.qp.global_scale, h.global_scale);
    const struct qb_block_nvfp4 *blk = (const void *)((const uint8_t *)l.data + 16);
    float *d = dequant_all(&l);
    for (int64_t b = 0; b < R * C / 16; b++) {
        float bmax = 0;
        for (int j = 0; j < 16; j++)
            bmax = fmaxf(bmax, fabsf(w[b * 16 + j]));
        cr_assert_eq(blk[b].scale, qb_e4m3_from_f32(bmax / 6.0f * h.global_scale));
        float s = qb_e4m3_to_f32(blk[b].scale) / h.global_scale;
        for (int j = 0; j < 16; j++) {
            unsigned code = (blk[b].qs[j / 2] >> ((j & 1) * 4)) & 0xf; /* even: low */
            cr_assert_eq(code, qb_e2m1_from_f32(w[b * 16 + j] / s));
            cr_assert_eq(d[b * 16 + j], qb_e2m1_to_f32((uint8_t)code) * s);
            cr_assert_leq(fabsf(d[b * 16 + j] - w[b * 16 + j]), s * 1.0f);
        }
    }
    /* the tensor maximum lands exactly on 6 * 448 / global */
    cr_assert_float_eq(qb_wfmt_bits_per_weight(QB_WFMT_NVFP4, R, C, NULL),
                       4.5 + 128.0 / (R * C), 1e-12);
    qb_linear_release(&l);
    free(w);
    free(d);
}

Test(mxfp4, layout_scales_edge_blocks)
{
    int64_t R = 2, C = 128;
    float *w = rand_weights(R, C, 0.02f);
    for (int j = 0; j < 32; j++) {
        w[32 + j] = 0.0f;                     /* all-zero block */
        w[64 + j] = (float)(j + 1) * 1e-40f;  /* fp32 subnormal block */
        w[96 + j] = (j & 1 ? -1 : 1) * 3e37f * ((float)(j + 1) / 32); /* huge block */
    }
    struct qb_linear l;
    quantize_ok(w, R, C, QB_WFMT_MXFP4, NULL, &l);
    const struct qb_block_mxfp4 *blk = l.data;
    float *d = dequant_all(&l);
    cr_assert_eq(blk[1].scale, 0);
    cr_assert_eq(blk[2].scale, 0);
    cr_assert_eq(blk[3].scale, qb_e8m0_mx_scale(3e37f, 2));
    for (int64_t b = 0; b < R * C / 32; b++) {
        float s = qb_e8m0_to_f32(blk[b].scale);
        for (int j = 0; j < 32; j++) {
            float x = w[b * 32 + j];
            cr_assert(isfinite(d[b * 32 + j]));
            /* [4, 8) * s can saturate at 6 * s: at most 2 steps of s */
            cr_assert_leq(fabsf(d[b * 32 + j] - x), 2.0f * s, "block %lld", (long long)b);
            if (b == 1)
                cr_assert_eq(d[b * 32 + j], 0.0f);
        }
    }
    cr_assert_float_eq(qb_wfmt_bits_per_weight(QB_WFMT_MXFP4, R, C, NULL), 4.25, 1e-12);
    qb_linear_release(&l);
    free(w);
    free(d);
}

static const enum qb_wfmt all_packed[] = {
    QB_WFMT_INT8,     QB_WFMT_INT4,     QB_WFMT_INT4_SYM, QB_WFMT_UINT_G, QB_WFMT_NF4,
    QB_WFMT_NF4_DQ,   QB_WFMT_FP8_E4M3, QB_WFMT_FP8_E5M2, QB_WFMT_NVFP4,  QB_WFMT_MXFP4,
    QB_WFMT_F16,      QB_WFMT_BF16,
};

Test(formats, nan_and_inf_are_errors_naming_the_tensor)
{
    float *w = rand_weights(4, 128, 0.02f);
    for (size_t f = 0; f < sizeof all_packed / sizeof all_packed[0]; f++) {
        for (int k = 0; k < 2; k++) {
            float *bad = malloc(4 * 128 * sizeof(float));
            memcpy(bad, w, 4 * 128 * sizeof(float));
            bad[2 * 128 + 5] = k ? INFINITY : NAN;
            struct qb_linear l;
            struct qb_err err = {0};
            enum qb_status st = qb_linear_quantize(bad, 4, 128, all_packed[f], NULL,
                                                   "model.layers.3.mlp.up_proj.weight", &l,
                                                   &err);
            cr_assert_eq(st, QB_ERR_NUMERIC, "%s", qb_wfmt_get(all_packed[f])->name);
            cr_assert(strstr(err.msg, "model.layers.3.mlp.up_proj.weight"), "%s", err.msg);
            cr_assert(strstr(err.msg, "row 2, column 5"), "%s", err.msg);
            cr_assert(strstr(err.msg, k ? "Inf" : "NaN"), "%s", err.msg);
            cr_assert_null(l.owned);
            free(bad);
        }
    }
    free(w);
}

Test(formats, deterministic_bytes)
{
    float *w = rand_weights(8, 256, 0.02f);
    for (size_t f = 0; f < sizeof all_packed / sizeof all_packed[0]; f++) {
        struct qb_linear a, b;
        quantize_ok(w, 8, 256, all_packed[f], NULL, &a);
        quantize_ok(w, 8, 256, all_packed[f], NULL, &b);
        cr_assert_eq(a.data_bytes, b.data_bytes);
        cr_assert_eq(memcmp(a.data, b.data, a.data_bytes), 0, "%s",
                     qb_wfmt_get(all_packed[f])->name);
        qb_linear_release(&a);
        qb_linear_release(&b);
    }
    free(w);
}

Test(formats, packed_size_is_real_int4_g128_within_2_percent)
{
    /* a decoder MLP projection of the demo model: 768 x 256 */
    int64_t R = 768, C = 256;
    float *w = rand_weights(R, C, 0.02f);
    struct qb_linear l;
    quantize_ok(w, R, C, QB_WFMT_INT4, NULL, &l);
    double expect = (4.0 + 32.0 / 128) * (double)(R * C) / 8; /* bits/weight x params / 8 */
    cr_assert_lt(fabs((double)l.data_bytes - expect) / expect, 0.02);
    cr_assert_float_eq(qb_wfmt_get(QB_WFMT_INT4)->nominal_bits, 4.25, 1e-12);
    cr_assert_lt((double)l.data_bytes, 0.14 * (double)(R * C) * 4); /* vs an fp32 copy */
    qb_linear_release(&l);
    free(w);
}

Test(formats, shape_and_param_errors)
{
    float w[4 * 100] = {0};
    struct qb_linear l;
    struct qb_err err = {0};
    cr_assert_eq(qb_linear_quantize(w, 4, 100, QB_WFMT_INT4, NULL, "x.weight", &l, &err),
                 QB_ERR_UNSUPPORTED);
    cr_assert(strstr(err.msg, "x.weight") && strstr(err.msg, "100"), "%s", err.msg);
    cr_assert_eq(qb_linear_quantize(w, 4, 24, QB_WFMT_NVFP4, NULL, "x", &l, &err),
                 QB_ERR_UNSUPPORTED);
    cr_assert_eq(qb_linear_quantize(w, 4, 48, QB_WFMT_MXFP4, NULL, "x", &l, &err),
                 QB_ERR_UNSUPPORTED);
    struct qb_quant_params qp = {.group = 48};
    cr_assert_eq(qb_linear_quantize(w, 1, 96, QB_WFMT_INT4, &qp, "x", &l, &err), QB_ERR_RANGE);
    qp = (struct qb_quant_params){.group = 32, .bits = 5};
    cr_assert_eq(qb_linear_quantize(w, 1, 96, QB_WFMT_UINT_G, &qp, "x", &l, &err),
                 QB_ERR_RANGE);
    /* an all-zero tensor is fine everywhere and dequantizes to zero */
    for (size_t f = 0; f < sizeof all_packed / sizeof all_packed[0]; f++) {
        float z[2 * 128] = {0}, d[2 * 128];
        quantize_ok(z, 2, 128, all_packed[f], NULL, &l);
        qb_wfmt_get(all_packed[f])->dequant_rows(&l, 0, 2, d);
        for (int i = 0; i < 256; i++)
            cr_assert_eq(d[i], 0.0f, "%s", qb_wfmt_get(all_packed[f])->name);
        qb_linear_release(&l);
    }
}

Test(pack, codes_round_trip_for_every_width)
{
    const int widths[] = {2, 3, 4, 8};
    for (int k = 0; k < 4; k++) {
        int bits = widths[k], R = 3, C = 256, G = 64, NG = 4;
        uint8_t codes[3 * 256], zeros[3 * 4] = {0};
        float scales[3 * 4];
        for (int i = 0; i < R * C; i++)
            codes[i] = (uint8_t)((unsigned)(urand() * 256) & ((1u << bits) - 1));
        for (int i = 0; i < R * NG; i++)
            scales[i] = 1.0f;
        struct qb_quant_params qp = {.group = G, .bits = bits};
        struct qb_linear l;
        struct qb_err err = {0};
        cr_assert_eq(qb_linear_pack_groups(R, C, QB_WFMT_UINT_G, &qp, codes, scales, zeros, "p",
                                           &l, &err),
                     QB_OK, "%s", err.msg);
        float *d = dequant_all(&l);
        for (int i = 0; i < R * C; i++)
            cr_assert_eq(d[i], (float)codes[i], "bits %d element %d", bits, i);
        cr_assert_eq(l.data_bytes, (size_t)(R * NG) * (4 + (size_t)G * bits / 8));
        free(d);
        qb_linear_release(&l);
    }
}

Test(pack, rtn_codes_repack_to_identical_bytes)
{
    int64_t R = 4, C = 256;
    float *w = rand_weights(R, C, 0.02f);
    struct qb_linear a, b;
    quantize_ok(w, R, C, QB_WFMT_INT4, NULL, &a);
    uint8_t codes[4 * 256], zeros[4 * 2];
    float scales[4 * 2];
    for (int64_t r = 0; r < R; r++)
        for (int64_t g = 0; g < 2; g++) {
            const uint8_t *rec = (const uint8_t *)a.data + qb_group_record_offset(r, g, C, 128, 4);
            struct qb_group_header h;
            memcpy(&h, rec, 4);
            scales[r * 2 + g] = qb_f16_to_f32(h.scale_f16);
            zeros[r * 2 + g] = h.zero;
            for (int j = 0; j < 128; j++)
                codes[r * C + g * 128 + j] = (uint8_t)qb_group_code(rec + 4, j, 4);
        }
    struct qb_err err = {0};
    cr_assert_eq(qb_linear_pack_groups(R, C, QB_WFMT_INT4, NULL, codes, scales, zeros, "p", &b,
                                       &err), QB_OK, "%s", err.msg);
    cr_assert_eq(a.data_bytes, b.data_bytes);
    cr_assert_eq(memcmp(a.data, b.data, a.data_bytes), 0);
    qb_linear_release(&a);
    qb_linear_release(&b);
    free(w);
}

Test(pack, act_order_g_idx_is_honoured)
{
    int R = 2, C = 128, G = 32, NG = 4;
    uint8_t codes[2 * 128], zeros[2 * 4];
    float scales[2 * 4];
    int32_t g_idx[128];
    for (int i = 0; i < R * C; i++)
        codes[i] = (uint8_t)(i % 16);
    for (int i = 0; i < R * NG; i++) {
        scales[i] = 0.25f * (float)(i + 1);
        zeros[i] = (uint8_t)(i + 3);
    }
    for (int c = 0; c < C; c++)
        g_idx[c] = (c * 7) % NG; /* non-monotonic, like GPTQ desc_act */
    struct qb_quant_params qp = {.group = G, .g_idx = g_idx};
    struct qb_linear l;
    struct qb_err err = {0};
    cr_assert_eq(qb_linear_pack_groups(R, C, QB_WFMT_INT4, &qp, codes, scales, zeros, "p", &l,
                                       &err), QB_OK, "%s", err.msg);
    cr_assert_neq(l.qp.g_idx, g_idx); /* copied */
    float *d = dequant_all(&l);
    float x[128];
    double ref_dot[2] = {0, 0};
    for (int c = 0; c < C; c++)
        x[c] = gauss();
    for (int r = 0; r < R; r++)
        for (int c = 0; c < C; c++) {
            int g = g_idx[c];
            float expect = scales[r * NG + g] * ((float)codes[r * C + c] - zeros[r * NG + g]);
            cr_assert_eq(d[r * C + c], expect, "(%d,%d)", r, c);
            ref_dot[r] += (double)expect * x[c];
        }
    for (int r = 0; r < R; r++) {
        cr_assert_float_eq(qb_wfmt_get(QB_WFMT_INT4)->vec_dot(&l, r, x), ref_dot[r], 1e-4);
        cr_assert_float_eq(qb_wfmt_get(QB_WFMT_INT4)->vec_dot_ref(&l, r, x), ref_dot[r], 1e-4);
    }
    free(d);
    qb_linear_release(&l);
    /* bad inputs */
    g_idx[5] = NG;
    cr_assert_eq(qb_linear_pack_groups(R, C, QB_WFMT_INT4, &qp, codes, scales, zeros, "p", &l,
                                       &err), QB_ERR_RANGE);
    cr_assert(strstr(err.msg, "g_idx[5]"), "%s", err.msg);
    qp.g_idx = NULL;
    codes[7] = 16;
    cr_assert_eq(qb_linear_pack_groups(R, C, QB_WFMT_INT4, &qp, codes, scales, zeros, "p", &l,
                                       &err), QB_ERR_RANGE);
    codes[7] = 0;
    scales[1] = NAN;
    cr_assert_eq(qb_linear_pack_groups(R, C, QB_WFMT_INT4, &qp, codes, scales, zeros, "p", &l,
                                       &err), QB_ERR_RANGE);
}

Test(schemes, every_listed_name_parses)
{
    char names[512];
    snprintf(names, sizeof names, "%s", qb_scheme_names());
    int n = 0;
    for (char *tok = strtok(names, ", "); tok; tok = strtok(NULL, ", ")) {
        struct qb_scheme s;
        struct qb_err err = {0};
        cr_assert_eq(qb_scheme_parse(tok, 0, &s, &err), QB_OK, "%s: %s", tok, err.msg);
        cr_assert_str_eq(s.name, tok);
        cr_assert_neq(strlen(qb_scheme_hw_support(&s)), 0);
        n++;
    }
    cr_assert_eq(n, 31);
}

Test(schemes, table_entries)
{
    struct qb_scheme s;
    struct qb_err err = {0};
    cr_assert_eq(qb_scheme_parse("int4", 0, &s, &err), QB_OK);
    cr_assert_eq(s.fmt, QB_WFMT_INT4);
    cr_assert_eq(s.qp.group, 128);
    cr_assert_eq(s.method, QB_METHOD_RTN);
    cr_assert_eq(qb_scheme_parse("int4", 64, &s, &err), QB_OK);
    cr_assert_eq(s.qp.group, 64);
    cr_assert_eq(qb_scheme_parse("gptq-int3", 32, &s, &err), QB_OK);
    cr_assert_eq(s.fmt, QB_WFMT_UINT_G);
    cr_assert_eq(s.qp.bits, 3);
    cr_assert_eq(s.method, QB_METHOD_GPTQ);
    cr_assert(s.needs_calibration);
    cr_assert_eq(qb_scheme_parse("awq-int4", 0, &s, &err), QB_OK);
    cr_assert_eq(s.method, QB_METHOD_AWQ);
    cr_assert_eq(s.fmt, QB_WFMT_INT4);
    cr_assert(s.needs_calibration);
    cr_assert_eq(qb_scheme_parse("nvfp4-w4a4", 0, &s, &err), QB_OK);
    cr_assert_eq(s.fmt, QB_WFMT_NVFP4);
    cr_assert_eq(s.qp.act, QB_ACT_NVFP4);
    cr_assert(strstr(qb_scheme_hw_support(&s), "sm_121"));
    cr_assert_eq(qb_scheme_parse("fp8-w8a8", 0, &s, &err), QB_OK);
    cr_assert_eq(s.qp.act, QB_ACT_FP8_E4M3);
    cr_assert(strstr(qb_scheme_hw_support(&s), "sm_89"));
    cr_assert_eq(qb_scheme_parse("mxfp4-w4a4", 0, &s, &err), QB_OK);
    cr_assert_eq(s.qp.act, QB_ACT_MXFP4);
    cr_assert_eq(qb_scheme_parse("nf4", 64, &s, &err), QB_OK);
    /* bad groups and names */
    cr_assert_eq(qb_scheme_parse("int4", 48, &s, &err), QB_ERR_USAGE);
    cr_assert(strstr(err.msg, "32, 64 or 128"), "%s", err.msg);
    cr_assert_eq(qb_scheme_parse("nf4", 32, &s, &err), QB_ERR_USAGE);
    cr_assert_eq(qb_scheme_parse("fp8", 64, &s, &err), QB_ERR_USAGE);
    cr_assert_eq(qb_scheme_parse("bf16", 128, &s, &err), QB_ERR_USAGE);
    cr_assert_eq(qb_scheme_parse("int5", 0, &s, &err), QB_ERR_USAGE);
    cr_assert(strstr(err.msg, "nvfp4-w4a4"), "%s", err.msg);
}

/* v is an E2M1 grid value times s (one fp32 rounding of the product) */
static int on_e2m1_grid(float v, float s)
{
    for (int k = 0; k < 16; k++)
        if (qb_e2m1_values[k] * s == v)
            return 1;
    return 0;
}

Test(act, nvfp4_per_token_blocks)
{
    int64_t n = 3, cols = 80; /* 5 blocks of 16 */
    float x[3 * 80], out[3 * 80];
    for (int i = 0; i < n * cols; i++)
        x[i] = gauss() * (i < cols ? 10.0f : 0.1f);
    for (int i = 2 * cols; i < 3 * cols; i++)
        x[i] = 0.0f;
    qb_act_quantize_rows(QB_ACT_NVFP4, x, n, cols, out);
    for (int64_t r = 0; r < 2; r++) {
        float amax = 0;
        for (int c = 0; c < cols; c++)
            amax = fmaxf(amax, fabsf(x[r * cols + c]));
        float g = 448.0f * 6.0f / amax;
        for (int b = 0; b < 5; b++) {
            float bmax = 0;
            for (int j = 0; j < 16; j++)
                bmax = fmaxf(bmax, fabsf(x[r * cols + b * 16 + j]));
            float s = qb_e4m3_to_f32(qb_e4m3_from_f32(bmax / 6.0f * g)) / g;
            for (int j = 0; j < 16; j++) {
                float v = out[r * cols + b * 16 + j];
                cr_assert(on_e2m1_grid(v, s), "%g / %g", (double)v, (double)s);
                cr_assert_leq(fabsf(v - x[r * cols + b * 16 + j]), s);
            }
        }
    }
    for (int c = 0; c < cols; c++)
        cr_assert_eq(out[2 * cols + c], 0.0f);
    /* in place gives the same */
    float y[3 * 80];
    memcpy(y, x, sizeof y);
    qb_act_quantize_rows(QB_ACT_NVFP4, y, n, cols, y);
    cr_assert_eq(memcmp(y, out, sizeof y), 0);
}

Test(act, nvfp4_w4a4_products_match_block_scaled_gemm)
{
    /* what the tensor core computes: sum_blocks sw*sx * sum(e2m1_w * e2m1_x), times
     * 1/(gw*gx); our fp32 path multiplies dequantized values. */
    int64_t C = 256;
    float *w = rand_weights(1, C, 0.02f), x[256], xq[256], wd[256];
    for (int c = 0; c < C; c++)
        x[c] = gauss();
    struct qb_linear l;
    quantize_ok(w, 1, C, QB_WFMT_NVFP4, NULL, &l);
    qb_wfmt_get(QB_WFMT_NVFP4)->dequant_rows(&l, 0, 1, wd);
    qb_act_quantize_rows(QB_ACT_NVFP4, x, 1, C, xq);
    float gw = l.qp.global_scale, ax = 0;
    for (int c = 0; c < C; c++)
        ax = fmaxf(ax, fabsf(x[c]));
    float gx = 448.0f * 6.0f / ax;
    const struct qb_block_nvfp4 *blk = (const void *)((const uint8_t *)l.data + 16);
    double hw = 0, ours = 0, mag = 0;
    for (int b = 0; b < C / 16; b++) {
        float bx = 0;
        for (int j = 0; j < 16; j++)
            bx = fmaxf(bx, fabsf(x[b * 16 + j]));
        float sx = qb_e4m3_to_f32(qb_e4m3_from_f32(bx / 6.0f * gx));
        float sw = qb_e4m3_to_f32(blk[b].scale);
        double part = 0;
        for (int j = 0; j < 16; j++) {
            unsigned code = (blk[b].qs[j / 2] >> ((j & 1) * 4)) & 0xf;
            float ex = qb_e2m1_to_f32(qb_e2m1_from_f32(xq[b * 16 + j] / (sx / gx)));
            part += (double)qb_e2m1_to_f32((uint8_t)code) * ex;
        }
        hw += part * sw * sx;
    }
    hw /= (double)gw * gx;
    for (int c = 0; c < C; c++) {
        ours += (double)wd[c] * xq[c];
        mag += fabs((double)wd[c] * xq[c]);
    }
    cr_assert_leq(fabs(hw - ours), 1e-6 * mag, "%g vs %g", hw, ours);
    qb_linear_release(&l);
    free(w);
}

Test(act, mxfp4_and_fp8_are_exact_grid_values)
{
    int64_t cols = 96;
    float x[96], out[96];
    for (int c = 0; c < cols; c++)
        x[c] = gauss();
    qb_act_quantize_rows(QB_ACT_MXFP4, x, 1, cols, out);
    for (int b = 0; b < 3; b++) {
        float bmax = 0;
        for (int j = 0; j < 32; j++)
            bmax = fmaxf(bmax, fabsf(x[b * 32 + j]));
        float s = qb_e8m0_to_f32(qb_e8m0_mx_scale(bmax, 2));
        for (int j = 0; j < 32; j++) {
            cr_assert(on_e2m1_grid(out[b * 32 + j], s));
            cr_assert_leq(fabsf(out[b * 32 + j] - x[b * 32 + j]), 2 * s);
        }
    }
    qb_act_quantize_rows(QB_ACT_FP8_E4M3, x, 1, cols, out);
    float amax = 0;
    for (int c = 0; c < cols; c++)
        amax = fmaxf(amax, fabsf(x[c]));
    float s = amax / 448.0f;
    for (int c = 0; c < cols; c++) {
        uint8_t code = qb_e4m3_from_f32(out[c] / s);
        cr_assert_eq(qb_e4m3_to_f32(code) * s, out[c]);
        cr_assert_leq(fabsf(out[c] - x[c]), fmaxf(fabsf(x[c]) * 0x1p-4f, s * 0x1p-10f) * 1.0001f);
    }
    qb_act_quantize_rows(QB_ACT_F32, x, 1, cols, out);
    cr_assert_eq(memcmp(x, out, sizeof x), 0);
}
