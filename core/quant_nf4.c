/*
 * quant_nf4.c - bitsandbytes NF4 (blocks of 64 weights, fp32 absmax) and NF4
 * with bitsandbytes' double quantization of the absmax values (nf4-dq).
 *
 * As in bitsandbytes, blocks run over the FLATTENED weight W[rows][cols]
 * (row-major), so with cols % 64 != 0 a block can straddle two rows; the last
 * block may be partial (its padding codes are 7, the value 0).
 *
 *   NF4 block (36 bytes):
 *     +------------+---------------------------------------------+
 *     | f32 absmax | qs[32]: byte k = (code[2k] << 4) | code[2k+1] |
 *     +------------+---------------------------------------------+
 *     w = nf4[code] * absmax
 *   Quantize (bitsandbytes kQuantizeBlockwise): absmax = max|w| of the block,
 *   code = dQuantizeNF4(w * (1/absmax)) (the decision tree in fp_formats.c).
 *
 *   NF4-DQ payload:
 *     [ header: f32 offset | u32 n_blocks | u32 n_nested | u32 0 ]
 *     [ f32 nested_absmax[n_nested] ]            one per 256 blocks
 *     [ block: u8 absmax_code | qs[32] ] x n_blocks   (33 bytes each)
 *   The 4-bit codes are those of plain NF4 (computed with the exact absmax);
 *   then, as bitsandbytes' quantize_4bit(compress_statistics=True):
 *   offset = mean(absmax); a = absmax - offset is quantized blockwise (256) with
 *   the signed 8-bit dynamic map: nested = max|a|, absmax_code =
 *   nearest(a * (1/nested)). Dequant: absmax = dyn[code] * nested + offset.
 */
#include <math.h>
#include <string.h>

#include "fp_formats.h"
#include "quant_blocks.h"
#include "quant_impl.h"
#include "quant_simd.h"

static int64_t nf4_blocks(int64_t rows, int64_t cols)
{
    return (rows * cols + QB_NF4_BLOCK - 1) / QB_NF4_BLOCK;
}

/* absmax of block b of the flattened tensor w[n] */
static float block_absmax(const float *w, int64_t n, int64_t b)
{
    float amax = 0.0f;
    for (int64_t i = b * QB_NF4_BLOCK; i < QB_MIN(n, (b + 1) * QB_NF4_BLOCK); i++)
        amax = fmaxf(amax, fabsf(w[i]));
    return amax;
}

static void encode_block(const float *w, int64_t n, int64_t b, float absmax, uint8_t *qs)
{
    float inv = absmax > 0.0f ? 1.0f / absmax : 0.0f;
    for (int j = 0; j < QB_NF4_BLOCK; j += 2) {
        int64_t i = b * QB_NF4_BLOCK + j;
        uint8_t hi = i < n && absmax > 0.0f ? qb_nf4_from_unit(w[i] * inv) : 7;
        uint8_t lo = i + 1 < n && absmax > 0.0f ? qb_nf4_from_unit(w[i + 1] * inv) : 7;
        qs[j / 2] = (uint8_t)(hi << 4 | lo);
    }
}

static unsigned nf4_code(const uint8_t *qs, int64_t j)
{
    return (j & 1) ? qs[j / 2] & 0xfu : qs[j / 2] >> 4;
}

/* ---- plain NF4 ---- */

size_t qb_nf4_packed_bytes(int64_t rows, int64_t cols, const struct qb_quant_params *p)
{
    (void)p;
    return (size_t)nf4_blocks(rows, cols) * sizeof(struct qb_block_nf4);
}

enum qb_status qb_nf4_quantize(const float *w, struct qb_linear *out, const char *name,
                               struct qb_err *err)
{
    enum qb_status st = qb_check_finite(w, out->rows, out->cols, name, err);
    if (st)
        return st;
    int64_t n = out->rows * out->cols;
    struct qb_block_nf4 *blk = out->owned;
    for (int64_t b = 0; b < nf4_blocks(out->rows, out->cols); b++) {
        blk[b].absmax = block_absmax(w, n, b);
        encode_block(w, n, b, blk[b].absmax, blk[b].qs);
    }
    return QB_OK;
}

/* 64 codes (even element high) times absmax into out */
static void nf4_block_decode(const uint8_t *qs, float absmax, float *out)
{
    for (int k = 0; k < QB_NF4_BLOCK / 2; k++) {
        out[2 * k] = qb_nf4_values[qs[k] >> 4] * absmax;
        out[2 * k + 1] = qb_nf4_values[qs[k] & 0xf] * absmax;
    }
}

void qb_nf4_dequant_rows(const struct qb_linear *w, int64_t row0, int64_t n, float *out)
{
    const struct qb_block_nf4 *blk = w->data;
    int64_t i0 = row0 * w->cols;
    if (w->cols % QB_NF4_BLOCK == 0) { /* blocks align with rows */
        for (int64_t b = 0; b < n * w->cols / QB_NF4_BLOCK; b++)
            nf4_block_decode(blk[i0 / QB_NF4_BLOCK + b].qs, blk[i0 / QB_NF4_BLOCK + b].absmax,
                             out + b * QB_NF4_BLOCK);
        return;
    }
    for (int64_t k = 0; k < n * w->cols; k++) {
        int64_t i = i0 + k;
        const struct qb_block_nf4 *b = &blk[i / QB_NF4_BLOCK];
        out[k] = qb_nf4_values[nf4_code(b->qs, i % QB_NF4_BLOCK)] * b->absmax;
    }
}

float qb_nf4_vec_dot_ref(const struct qb_linear *w, int64_t row, const float *x)
{
    const struct qb_block_nf4 *blk = w->data;
    int64_t i0 = row * w->cols;
    float acc = 0.0f, part = 0.0f;
    for (int64_t c = 0; c < w->cols; c++) {
        int64_t i = i0 + c;
        const struct qb_block_nf4 *b = &blk[i / QB_NF4_BLOCK];
        part += qb_nf4_values[nf4_code(b->qs, i % QB_NF4_BLOCK)] * x[c];
        if ((i + 1) % QB_NF4_BLOCK == 0 || c + 1 == w->cols) {
            acc += part * b->absmax;
            part = 0.0f;
        }
    }
    return acc;
}

float qb_nf4_vec_dot(const struct qb_linear *w, int64_t row, const float *x)
{
    if (w->cols % QB_NF4_BLOCK)
        return qb_nf4_vec_dot_ref(w, row, x);
    const struct qb_block_nf4 *blk = (const struct qb_block_nf4 *)w->data +
                                     row * (w->cols / QB_NF4_BLOCK);
    float acc = 0.0f;
    for (int64_t b = 0; b < w->cols / QB_NF4_BLOCK; b++)
        acc += blk[b].absmax *
               qb_simd_lut4_dot(blk[b].qs, QB_NF4_BLOCK, qb_nf4_values, x + b * QB_NF4_BLOCK, 1);
    return acc;
}

/* ---- NF4 with double-quantized absmax ---- */

struct nf4dq_view {
    struct qb_nf4dq_header h;
    const float *nested;
    const struct qb_block_nf4dq *blk;
};

static struct nf4dq_view nf4dq_view(const void *data)
{
    struct nf4dq_view v;
    memcpy(&v.h, data, sizeof v.h);
    v.nested = (const float *)((const uint8_t *)data + sizeof v.h);
    v.blk = (const struct qb_block_nf4dq *)(v.nested + v.h.n_nested);
    return v;
}

static float nf4dq_absmax(const struct nf4dq_view *v, int64_t b)
{
    return qb_bnb_dynamic_map[v->blk[b].absmax_code] * v->nested[b / QB_NF4_DQ_NEST] +
           v->h.offset;
}

size_t qb_nf4dq_packed_bytes(int64_t rows, int64_t cols, const struct qb_quant_params *p)
{
    (void)p;
    int64_t nb = nf4_blocks(rows, cols);
    int64_t nn = (nb + QB_NF4_DQ_NEST - 1) / QB_NF4_DQ_NEST;
    return sizeof(struct qb_nf4dq_header) + (size_t)nn * 4 +
           (size_t)nb * sizeof(struct qb_block_nf4dq);
}

enum qb_status qb_nf4dq_quantize(const float *w, struct qb_linear *out, const char *name,
                                 struct qb_err *err)
{
    enum qb_status st = qb_check_finite(w, out->rows, out->cols, name, err);
    if (st)
        return st;
    int64_t n = out->rows * out->cols, nb = nf4_blocks(out->rows, out->cols);
    float *absmax = qb_malloc_array((size_t)nb, sizeof(float));
    if (!absmax)
        return qb_err_set(err, QB_ERR_NOMEM, "cannot allocate absmax for '%s'", name);
    struct qb_nf4dq_header h = {0};
    h.n_blocks = (uint32_t)nb;
    h.n_nested = (uint32_t)((nb + QB_NF4_DQ_NEST - 1) / QB_NF4_DQ_NEST);
    double sum = 0.0;
    for (int64_t b = 0; b < nb; b++) {
        absmax[b] = block_absmax(w, n, b);
        sum += absmax[b];
    }
    h.offset = (float)(sum / (double)nb);
    memcpy(out->owned, &h, sizeof h);
    float *nested = (float *)((uint8_t *)out->owned + sizeof h);
    struct qb_block_nf4dq *blk = (struct qb_block_nf4dq *)(nested + h.n_nested);
    for (int64_t k = 0; k < (int64_t)h.n_nested; k++) {
        int64_t b0 = k * QB_NF4_DQ_NEST, b1 = QB_MIN(nb, b0 + QB_NF4_DQ_NEST);
        float m = 0.0f;
        for (int64_t b = b0; b < b1; b++)
            m = fmaxf(m, fabsf(absmax[b] - h.offset));
        nested[k] = m;
        float inv = m > 0.0f ? 1.0f / m : 0.0f;
        for (int64_t b = b0; b < b1; b++)
            blk[b].absmax_code = qb_bnb_dynamic_from_unit((absmax[b] - h.offset) * inv);
    }
    for (int64_t b = 0; b < nb; b++)
        encode_block(w, n, b, absmax[b], blk[b].qs);
    free(absmax);
    return QB_OK;
}

void qb_nf4dq_dequant_rows(const struct qb_linear *w, int64_t row0, int64_t n, float *out)
{
    struct nf4dq_view v = nf4dq_view(w->data);
    int64_t i0 = row0 * w->cols;
    if (w->cols % QB_NF4_BLOCK == 0) {
        for (int64_t b = 0; b < n * w->cols / QB_NF4_BLOCK; b++)
            nf4_block_decode(v.blk[i0 / QB_NF4_BLOCK + b].qs,
                             nf4dq_absmax(&v, i0 / QB_NF4_BLOCK + b), out + b * QB_NF4_BLOCK);
        return;
    }
    int64_t cur = -1;
    float am = 0.0f;
    for (int64_t k = 0; k < n * w->cols; k++) {
        int64_t i = i0 + k, b = i / QB_NF4_BLOCK;
        if (b != cur) {
            cur = b;
            am = nf4dq_absmax(&v, b);
        }
        out[k] = qb_nf4_values[nf4_code(v.blk[b].qs, i % QB_NF4_BLOCK)] * am;
    }
}

float qb_nf4dq_vec_dot_ref(const struct qb_linear *w, int64_t row, const float *x)
{
    struct nf4dq_view v = nf4dq_view(w->data);
    int64_t i0 = row * w->cols;
    float acc = 0.0f, part = 0.0f;
    for (int64_t c = 0; c < w->cols; c++) {
        int64_t i = i0 + c, b = i / QB_NF4_BLOCK;
        part += qb_nf4_values[nf4_code(v.blk[b].qs, i % QB_NF4_BLOCK)] * x[c];
        if ((i + 1) % QB_NF4_BLOCK == 0 || c + 1 == w->cols) {
            acc += part * nf4dq_absmax(&v, b);
            part = 0.0f;
        }
    }
    return acc;
}

float qb_nf4dq_vec_dot(const struct qb_linear *w, int64_t row, const float *x)
{
    if (w->cols % QB_NF4_BLOCK)
        return qb_nf4dq_vec_dot_ref(w, row, x);
    struct nf4dq_view v = nf4dq_view(w->data);
    int64_t nbr = w->cols / QB_NF4_BLOCK, b0 = row * nbr;
    float acc = 0.0f;
    for (int64_t b = 0; b < nbr; b++)
        acc += nf4dq_absmax(&v, b0 + b) * qb_simd_lut4_dot(v.blk[b0 + b].qs, QB_NF4_BLOCK,
                                                           qb_nf4_values,
                                                           x + b * QB_NF4_BLOCK, 1);
    return acc;
}
