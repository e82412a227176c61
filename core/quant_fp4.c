/*
 * quant_fp4.c - the two FP4 (E2M1) block formats: NVFP4 (blocks of 16, E4M3
 * block scale, one fp32 tensor scale) and OCP MXFP4 (blocks of 32, E8M0 scale),
 * plus their block encoders that activation quantization (quant.c) reuses.
 *
 *   NVFP4 payload:
 *     [ f32 global_scale | 12 bytes 0 ]
 *     [ u8 E4M3 scale | qs[8] ] x R*C/16     byte k = code[2k] | code[2k+1] << 4
 *   global g = 448*6 / max|W|   (compressed-tensors' weight_global_scale; the
 *                                modelopt weight_scale_2 is 1/g)
 *   block scale s = e4m3(max|block| / 6 * g)
 *   (g is clamped to FLT_MAX for max|W| below ~8e-36)
 *   element = e2m1(w / (s/g));  w ~= e2m1 * (s/g)   (s/g: one fp32 division)
 *   A block whose scale rounds to E4M3 zero stores zero codes (modelopt would
 *   store 1.0 there, giving the same zero codes). An all-zero tensor uses g = 1.
 *
 *   MXFP4 payload:
 *     [ u8 E8M0 scale | qs[16] ] x R*C/32     byte k = code[2k] | code[2k+1] << 4
 *   scale e = floor(log2 max|block|) - 2 + 127 (clamped to [0, 254]; an all-zero
 *   block gets 0); element = e2m1(w / 2^(e-127)), saturating at 6;
 *   w ~= e2m1 * 2^(e-127) exactly.
 *
 * Both orders match the producers (modelopt/compressed-tensors NVFP4, gpt-oss
 * MXFP4): the even element in the low nibble. E2M1 rounding is to nearest even.
 */
#include <float.h>
#include <math.h>
#include <string.h>

#include "fp_formats.h"
#include "quant_blocks.h"
#include "quant_impl.h"
#include "quant_simd.h"

static float block_amax(const float *x, int n)
{
    float m = 0.0f;
    for (int i = 0; i < n; i++)
        m = fmaxf(m, fabsf(x[i]));
    return m;
}

static void pack_nibbles(const uint8_t *codes, int n, uint8_t *qs)
{
    for (int i = 0; i < n; i += 2)
        qs[i / 2] = (uint8_t)((codes[i] & 0xf) | (i + 1 < n ? (codes[i + 1] & 0xf) << 4 : 0));
}

static unsigned nibble(const uint8_t *qs, int64_t j)
{
    return (qs[j / 2] >> ((j & 1) * 4)) & 0xfu;
}

/* ================================ NVFP4 ================================ */

float qb_nvfp4_global_scale(float amax)
{
    if (!(amax > 0.0f))
        return 1.0f;
    float g = 448.0f * 6.0f / amax;
    return isfinite(g) ? g : FLT_MAX; /* max|W| below ~8e-36: keep g finite */
}

uint8_t qb_nvfp4_block_encode(const float *x, int n, float g, uint8_t *codes)
{
    uint8_t sc = qb_e4m3_from_f32(block_amax(x, n) / 6.0f * g);
    float s = qb_e4m3_to_f32(sc) / g;
    for (int i = 0; i < n; i++)
        codes[i] = s > 0.0f ? qb_e2m1_from_f32(x[i] / s) : 0;
    return sc;
}

static float nvfp4_global(const struct qb_linear *w)
{
    struct qb_nvfp4_header h;
    memcpy(&h, w->data, sizeof h);
    return h.global_scale;
}

static const struct qb_block_nvfp4 *nvfp4_row(const struct qb_linear *w, int64_t row)
{
    return (const struct qb_block_nvfp4 *)((const uint8_t *)w->data +
                                           sizeof(struct qb_nvfp4_header)) +
           row * (w->cols / QB_NVFP4_BLOCK);
}

size_t qb_nvfp4_packed_bytes(int64_t rows, int64_t cols, const struct qb_quant_params *p)
{
    (void)p;
    return sizeof(struct qb_nvfp4_header) +
           (size_t)(rows * cols / QB_NVFP4_BLOCK) * sizeof(struct qb_block_nvfp4);
}

enum qb_status qb_nvfp4_quantize(const float *w, struct qb_linear *out, const char *name,
                                 struct qb_err *err)
{
    enum qb_status st = qb_check_finite(w, out->rows, out->cols, name, err);
    if (st)
        return st;
    int64_t n = out->rows * out->cols;
    float amax = 0.0f;
    for (int64_t i = 0; i < n; i++)
        amax = fmaxf(amax, fabsf(w[i]));
    struct qb_nvfp4_header h = {0};
    h.global_scale = qb_nvfp4_global_scale(amax);
    memcpy(out->owned, &h, sizeof h);
    out->qp.global_scale = h.global_scale;
    struct qb_block_nvfp4 *blk =
        (struct qb_block_nvfp4 *)((uint8_t *)out->owned + sizeof h);
    for (int64_t b = 0; b < n / QB_NVFP4_BLOCK; b++) {
        uint8_t codes[QB_NVFP4_BLOCK];
        blk[b].scale = qb_nvfp4_block_encode(w + b * QB_NVFP4_BLOCK, QB_NVFP4_BLOCK,
                                             h.global_scale, codes);
        pack_nibbles(codes, QB_NVFP4_BLOCK, blk[b].qs);
    }
    return QB_OK;
}

/* decode the 2*nbytes E2M1 codes of qs (even element low) times s into out */
static void e2m1_block_decode(const uint8_t *qs, int nbytes, float s, float *out)
{
    for (int k = 0; k < nbytes; k++) {
        out[2 * k] = qb_e2m1_values[qs[k] & 0xf] * s;
        out[2 * k + 1] = qb_e2m1_values[qs[k] >> 4] * s;
    }
}

void qb_nvfp4_dequant_rows(const struct qb_linear *w, int64_t row0, int64_t n, float *out)
{
    float g = nvfp4_global(w);
    for (int64_t r = 0; r < n; r++) {
        const struct qb_block_nvfp4 *blk = nvfp4_row(w, row0 + r);
        for (int64_t b = 0; b < w->cols / QB_NVFP4_BLOCK; b++)
            e2m1_block_decode(blk[b].qs, QB_NVFP4_BLOCK / 2, qb_e4m3_to_f32(blk[b].scale) / g,
                              out + r * w->cols + b * QB_NVFP4_BLOCK);
    }
}

float qb_nvfp4_vec_dot_ref(const struct qb_linear *w, int64_t row, const float *x)
{
    float g = nvfp4_global(w);
    const struct qb_block_nvfp4 *blk = nvfp4_row(w, row);
    float acc = 0.0f;
    for (int64_t b = 0; b < w->cols / QB_NVFP4_BLOCK; b++) {
        float part = 0.0f;
        for (int j = 0; j < QB_NVFP4_BLOCK; j++)
            part += qb_e2m1_to_f32((uint8_t)nibble(blk[b].qs, j)) * x[b * QB_NVFP4_BLOCK + j];
        acc += part * (qb_e4m3_to_f32(blk[b].scale) / g);
    }
    return acc;
}

float qb_nvfp4_vec_dot(const struct qb_linear *w, int64_t row, const float *x)
{
    float g = nvfp4_global(w);
    const struct qb_block_nvfp4 *blk = nvfp4_row(w, row);
    float acc = 0.0f;
    for (int64_t b = 0; b < w->cols / QB_NVFP4_BLOCK; b++)
        acc += (qb_e4m3_to_f32(blk[b].scale) / g) *
               qb_simd_lut4_dot(blk[b].qs, QB_NVFP4_BLOCK, qb_e2m1_values,
                                x + b * QB_NVFP4_BLOCK, 0);
    return acc;
}

/* ================================ MXFP4 ================================ */

uint8_t qb_mxfp4_block_encode(const float *x, int n, uint8_t *codes)
{
    uint8_t e = qb_e8m0_mx_scale(block_amax(x, n), 2);
    float s = qb_e8m0_to_f32(e);
    for (int i = 0; i < n; i++)
        codes[i] = qb_e2m1_from_f32(x[i] / s);
    return e;
}

static const struct qb_block_mxfp4 *mxfp4_row(const struct qb_linear *w, int64_t row)
{
    return (const struct qb_block_mxfp4 *)w->data + row * (w->cols / QB_MXFP4_BLOCK);
}

size_t qb_mxfp4_packed_bytes(int64_t rows, int64_t cols, const struct qb_quant_params *p)
{
    (void)p;
    return (size_t)(rows * cols / QB_MXFP4_BLOCK) * sizeof(struct qb_block_mxfp4);
}

enum qb_status qb_mxfp4_quantize(const float *w, struct qb_linear *out, const char *name,
                                 struct qb_err *err)
{
    enum qb_status st = qb_check_finite(w, out->rows, out->cols, name, err);
    if (st)
        return st;
    struct qb_block_mxfp4 *blk = out->owned;
    for (int64_t b = 0; b < out->rows * out->cols / QB_MXFP4_BLOCK; b++) {
        uint8_t codes[QB_MXFP4_BLOCK];
        blk[b].scale = qb_mxfp4_block_encode(w + b * QB_MXFP4_BLOCK, QB_MXFP4_BLOCK, codes);
        pack_nibbles(codes, QB_MXFP4_BLOCK, blk[b].qs);
    }
    return QB_OK;
}

void qb_mxfp4_dequant_rows(const struct qb_linear *w, int64_t row0, int64_t n, float *out)
{
    for (int64_t r = 0; r < n; r++) {
        const struct qb_block_mxfp4 *blk = mxfp4_row(w, row0 + r);
        for (int64_t b = 0; b < w->cols / QB_MXFP4_BLOCK; b++)
            e2m1_block_decode(blk[b].qs, QB_MXFP4_BLOCK / 2, qb_e8m0_to_f32(blk[b].scale),
                              out + r * w->cols + b * QB_MXFP4_BLOCK);
    }
}

float qb_mxfp4_vec_dot_ref(const struct qb_linear *w, int64_t row, const float *x)
{
    const struct qb_block_mxfp4 *blk = mxfp4_row(w, row);
    float acc = 0.0f;
    for (int64_t b = 0; b < w->cols / QB_MXFP4_BLOCK; b++) {
        float part = 0.0f;
        for (int j = 0; j < QB_MXFP4_BLOCK; j++)
            part += qb_e2m1_to_f32((uint8_t)nibble(blk[b].qs, j)) * x[b * QB_MXFP4_BLOCK + j];
        acc += part * qb_e8m0_to_f32(blk[b].scale);
    }
    return acc;
}

float qb_mxfp4_vec_dot(const struct qb_linear *w, int64_t row, const float *x)
{
    const struct qb_block_mxfp4 *blk = mxfp4_row(w, row);
    float acc = 0.0f;
    for (int64_t b = 0; b < w->cols / QB_MXFP4_BLOCK; b++)
        acc += qb_e8m0_to_f32(blk[b].scale) *
               qb_simd_lut4_dot(blk[b].qs, QB_MXFP4_BLOCK, qb_e2m1_values,
                                x + b * QB_MXFP4_BLOCK, 0);
    return acc;
}
