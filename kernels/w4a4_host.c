/*
 * w4a4_host.c - the host side of native FP4 W4A4 (see qb_w4a4.h): the
 * swizzled block-scale layout of cuBLASLt's FP4 GEMM, the weight repacking
 * done at upload, the host reference of the activation quantizer, and the CPU
 * emulation of the block-scaled product. Plain C, built with and without CUDA,
 * so every layout question is answered by tests on a machine without a GPU.
 *
 * Weight repacking reads the core payloads record by record:
 *   nvfp4: [header g][ {u8 e4m3 scale, 8 code bytes} x rows*cols/16 ]
 *   mxfp4: [ {u8 e8m0 scale, 16 code bytes} x rows*cols/32 ]
 * and writes code bytes unchanged (both sides put element 2i in the low
 * nibble) into contiguous rows, and each scale byte at qb_w4a4_sf_offset.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "dtype.h"
#include "fp_formats.h"
#include "kernels/qb_w4a4.h"
#include "quant_blocks.h"
#include "quant_impl.h"

int qb_w4a4_block(enum qb_act_mode kind)
{
    return kind == QB_ACT_NVFP4 ? QB_NVFP4_BLOCK : kind == QB_ACT_MXFP4 ? QB_MXFP4_BLOCK : 0;
}

static int64_t round_up(int64_t v, int64_t m)
{
    return (v + m - 1) / m * m;
}

enum qb_status qb_w4a4_shape_init(struct qb_w4a4_shape *s, enum qb_act_mode kind, int64_t rows,
                                  int64_t cols, const char *what, struct qb_err *err)
{
    memset(s, 0, sizeof *s);
    s->block = qb_w4a4_block(kind);
    if (!s->block)
        return qb_err_set(err, QB_ERR_UNSUPPORTED, "%s: activation mode %d is not an FP4 "
                          "W4A4 mode", what, (int)kind);
    if (rows <= 0 || cols <= 0 || cols % 32 || cols > 0x7fffffff || rows > 0x7fffffff)
        return qb_err_set(err, QB_ERR_UNSUPPORTED, "%s: a [%lld x %lld] operand does not fit "
                          "the FP4 GEMM (columns must be a positive multiple of 32)", what,
                          (long long)rows, (long long)cols);
    s->rows = rows;
    s->cols = cols;
    s->sf_rows = round_up(rows, QB_W4A4_TILE_ROWS);
    s->sf_cols = round_up(cols / s->block, QB_W4A4_TILE_KB);
    return QB_OK;
}

void qb_w4a4_operand_free(struct qb_w4a4_operand *op)
{
    if (!op)
        return;
    free(op->codes);
    free(op->scales);
    free(op->global);
    memset(op, 0, sizeof *op);
}

static enum qb_status operand_alloc(struct qb_w4a4_operand *op, enum qb_act_mode kind,
                                    int64_t rows, int64_t cols, const char *what,
                                    struct qb_err *err)
{
    enum qb_status st;
    memset(op, 0, sizeof *op);
    st = qb_w4a4_shape_init(&op->s, kind, rows, cols, what, err);
    if (st)
        return st;
    op->kind = kind;
    op->codes = malloc(qb_w4a4_codes_bytes(&op->s));
    op->scales = calloc(qb_w4a4_scales_bytes(&op->s), 1);
    op->global = qb_malloc_array((size_t)rows, sizeof(float));
    if (!op->codes || !op->scales || !op->global) {
        qb_w4a4_operand_free(op);
        return qb_err_set(err, QB_ERR_NOMEM, "%s: out of host memory for the FP4 operand "
                          "(%lld x %lld)", what, (long long)rows, (long long)cols);
    }
    return QB_OK;
}

/* ---- weights ------------------------------------------------------------------- */

enum qb_status qb_w4a4_pack_weight(const struct qb_linear *lin, const char *name,
                                   struct qb_w4a4_operand *out, struct qb_err *err)
{
    enum qb_act_mode kind = lin->qp.act;
    int nvfp4 = lin->fmt == QB_WFMT_NVFP4 && kind == QB_ACT_NVFP4;
    if (!nvfp4 && !(lin->fmt == QB_WFMT_MXFP4 && kind == QB_ACT_MXFP4))
        return qb_err_set(err, QB_ERR_UNSUPPORTED, "%s: format %s with activation mode %d is "
                          "not an FP4 W4A4 layer (nvfp4-w4a4 or mxfp4-w4a4)", name,
                          qb_wfmt_get(lin->fmt)->name, (int)kind);
    enum qb_status st = operand_alloc(out, kind, lin->rows, lin->cols, name, err);
    if (st)
        return st;
    const uint8_t *p = lin->data;
    float g = 1.0f;
    if (nvfp4) {
        struct qb_nvfp4_header h;
        memcpy(&h, p, sizeof h);
        g = h.global_scale;
        p += sizeof h;
    }
    int block = out->s.block;
    size_t rec = 1 + (size_t)block / 2;
    int64_t kbs = lin->cols / block;
    for (int64_t r = 0; r < lin->rows; r++) {
        out->global[r] = g;
        for (int64_t kb = 0; kb < kbs; kb++) {
            const uint8_t *b = p + (size_t)(r * kbs + kb) * rec;
            out->scales[qb_w4a4_sf_offset(r, kb, out->s.sf_cols)] = b[0];
            uint8_t *dst = out->codes + (size_t)r * (size_t)(lin->cols / 2);
            memcpy(dst + (size_t)kb * (size_t)block / 2, b + 1, (size_t)block / 2);
        }
    }
    return QB_OK;
}

/* ---- activations (host reference of the GPU quantizer) ------------------------- */

static void pack_codes(const uint8_t *codes, int n, uint8_t *out)
{
    for (int i = 0; i < n; i += 2)
        out[i / 2] = (uint8_t)((codes[i] & 0xf) | (codes[i + 1] & 0xf) << 4);
}

static void quantize_row(struct qb_w4a4_operand *op, int64_t t, const float *x)
{
    int block = op->s.block;
    float amax = 0.0f;
    if (op->kind == QB_ACT_NVFP4) {
        for (int64_t i = 0; i < op->s.cols; i++)
            amax = fmaxf(amax, fabsf(x[i]));
    }
    float g = op->kind == QB_ACT_NVFP4 ? qb_nvfp4_global_scale(amax) : 1.0f;
    op->global[t] = g;
    for (int64_t kb = 0; kb < op->s.cols / block; kb++) {
        uint8_t codes[QB_MXFP4_BLOCK], sc;
        const float *xb = x + kb * block;
        sc = op->kind == QB_ACT_NVFP4 ? qb_nvfp4_block_encode(xb, block, g, codes)
                                      : qb_mxfp4_block_encode(xb, block, codes);
        op->scales[qb_w4a4_sf_offset(t, kb, op->s.sf_cols)] = sc;
        pack_codes(codes, block, op->codes + (size_t)t * (size_t)(op->s.cols / 2) +
                                     (size_t)kb * (size_t)block / 2);
    }
}

enum qb_status qb_w4a4_quantize_act(enum qb_act_mode kind, const uint16_t *a, int64_t n,
                                    int64_t cols, struct qb_w4a4_operand *out,
                                    struct qb_err *err)
{
    enum qb_status st = operand_alloc(out, kind, n, cols, "FP4 activations", err);
    if (st)
        return st;
    float *row = qb_malloc_array((size_t)cols, sizeof(float));
    if (!row) {
        qb_w4a4_operand_free(out);
        return qb_err_set(err, QB_ERR_NOMEM, "out of host memory quantizing FP4 activations");
    }
    for (int64_t t = 0; t < n; t++) {
        for (int64_t i = 0; i < cols; i++)
            row[i] = qb_bf16_to_f32(a[t * cols + i]);
        quantize_row(out, t, row);
    }
    free(row);
    return QB_OK;
}

/* ---- reading the layout ----------------------------------------------------------- */

void qb_w4a4_unswizzle(const struct qb_w4a4_operand *op, uint8_t *out)
{
    int64_t kbs = op->s.cols / op->s.block;
    for (int64_t r = 0; r < op->s.rows; r++)
        for (int64_t kb = 0; kb < kbs; kb++)
            out[r * kbs + kb] = op->scales[qb_w4a4_sf_offset(r, kb, op->s.sf_cols)];
}

float qb_w4a4_scale_value(enum qb_act_mode kind, uint8_t b)
{
    /* UE4M3: the sign bit is ignored by the tensor cores; ours is always clear */
    return kind == QB_ACT_NVFP4 ? qb_e4m3_to_f32(b & 0x7f) : qb_e8m0_to_f32(b);
}

/* Decode one operand row to the f32 values the tensor cores multiply
 * (e2m1 * block scale, exact in f32 for both formats in range). */
static void decode_row(const struct qb_w4a4_operand *op, int64_t r, float *out)
{
    const uint8_t *codes = op->codes + (size_t)r * (size_t)(op->s.cols / 2);
    for (int64_t kb = 0; kb < op->s.cols / op->s.block; kb++) {
        float s = qb_w4a4_scale_value(op->kind,
                                      op->scales[qb_w4a4_sf_offset(r, kb, op->s.sf_cols)]);
        for (int j = 0; j < op->s.block; j++) {
            int64_t k = kb * op->s.block + j;
            out[k] = qb_e2m1_to_f32((uint8_t)(codes[k / 2] >> ((k & 1) * 4))) * s;
        }
    }
}

void qb_w4a4_emulate_linear(const struct qb_w4a4_operand *w, const float *bias,
                            const struct qb_w4a4_operand *a, float *y)
{
    int64_t k = w->s.cols, rows = w->s.rows;
    float inv_g_w = w->kind == QB_ACT_NVFP4 ? 1.0f / w->global[0] : 1.0f;
    float *wv = qb_malloc_array((size_t)(rows * k), sizeof(float));
    float *av = qb_malloc_array((size_t)k, sizeof(float));
    CHECK(wv && av && a->s.cols == k && a->kind == w->kind);
    for (int64_t r = 0; r < rows; r++)
        decode_row(w, r, wv + r * k);
    for (int64_t t = 0; t < a->s.rows; t++) {
        decode_row(a, t, av);
        for (int64_t r = 0; r < rows; r++) {
            float d = 0.0f;
            for (int64_t i = 0; i < k; i++)
                d += av[i] * wv[r * k + i];
            y[t * rows + r] = d / a->global[t] * inv_g_w + (bias ? bias[r] : 0.0f);
        }
    }
    free(wv);
    free(av);
}

/* ---- reporting -------------------------------------------------------------------- */

const char *qb_w4a4_status_note(enum qb_act_mode act, int cc_major)
{
    if (act != QB_ACT_NVFP4 && act != QB_ACT_MXFP4)
        return NULL;
#ifdef QB_HAVE_CUDA
    if (cc_major >= 10) /* only when the cuBLASLt probe failed (qb_w4a4_device_supported) */
        return "FP4 GEMM path compiled, not executed: this cuBLASLt has no FP4 kernel for it";
    return "FP4 GEMM path compiled (sm_121a), not executed: no FP4 tensor cores here";
#else
    (void)cc_major;
    return "FP4 GEMM path not built (CUDA off)";
#endif
}
