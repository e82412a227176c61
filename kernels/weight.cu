/*
 * weight.cu - uploading one linear layer's weights to the device.
 *
 * Dtype views (f32/f16/bf16) go up as bf16 [rows][cols] (converted on the host
 * when they are not bf16 already). Packed formats (core/quant_blocks.h) are
 * split into the layouts of packed.cuh: 16-byte aligned rows of codes (NF4
 * nibbles swapped to element-2i-low like the others), then the per-group
 * scales, zeros and nested scales in their own width, and the 16-value code
 * table (plus the 256-entry dynamic map for nf4-dq). The device copy holds the
 * same information as the host payload, so a GEMV reads about the same bytes.
 * qb_cuda_emulate_dequant runs the device decode on the host over the staged
 * layout, so the repacking is checked against the C reference without a GPU.
 * W4A4 linears (FP4 activations) go to qb_w4a4_weight_upload instead: codes
 * plus scales swizzled for cuBLASLt's block-scaled FP4 GEMM (qb_w4a4.h).
 */
#include <stdlib.h>
#include <string.h>

#include "packed.cuh"
#include "qb_w4a4.h"

extern "C" {
#include "fp_formats.h"
}

/* Host staging of a packed weight before upload. */
struct staged {
    uint8_t *codes;
    void *scales;
    uint8_t *zeros;
    float lut[QB_LUT_DYN_OFFSET + 256];
    int lut_len;
    size_t codes_bytes, scales_bytes, zeros_bytes;
    int tiled; /* 4-bit codes in tiles (codes_tile, packed.cuh's pk_code4_at) */
};

/* W4A4 (nvfp4-w4a4, mxfp4-w4a4) only where the GPU and cuBLASLt have the
 * block-scaled FP4 GEMM (sm_100+, w4a4.cu; compiled, never executed by us):
 * elsewhere 0, and callers fall back to the CPU reference. */
extern "C" int qb_cuda_supports(enum qb_wfmt fmt, enum qb_act_mode act)
{
    if (act == QB_ACT_NVFP4 || act == QB_ACT_MXFP4)
        return fmt == (act == QB_ACT_NVFP4 ? QB_WFMT_NVFP4 : QB_WFMT_MXFP4) &&
               qb_w4a4_device_supported(act);
    if (act != QB_ACT_F32 && !(act == QB_ACT_FP8_E4M3 && fmt == QB_WFMT_FP8_E4M3))
        return 0;
    switch (fmt) {
    case QB_WFMT_F32: case QB_WFMT_F16: case QB_WFMT_BF16: case QB_WFMT_INT8:
    case QB_WFMT_FP8_E4M3: case QB_WFMT_FP8_E5M2: case QB_WFMT_INT4: case QB_WFMT_INT4_SYM:
    case QB_WFMT_UINT_G: case QB_WFMT_NF4: case QB_WFMT_NF4_DQ: case QB_WFMT_NVFP4:
    case QB_WFMT_MXFP4:
        return 1;
    default:
        return 0;
    }
}

static enum qb_status upload_new(void **dst, const void *src, size_t bytes, const char *what,
                                 struct qb_err *err)
{
    enum qb_status st = qb_cuda_alloc(dst, bytes, what, err);
    if (!st)
        st = qb_cuda_upload(*dst, src, bytes, err);
    return st;
}

/* bf16 host copy of a dtype view; NULL when it already is bf16. */
static enum qb_status to_bf16_host(const struct qb_linear *lin, const char *name,
                                   uint16_t **out, struct qb_err *err)
{
    size_t n = (size_t)lin->rows * (size_t)lin->cols;
    uint16_t *h;
    *out = NULL;
    if (lin->fmt == QB_WFMT_BF16)
        return QB_OK;
    h = (uint16_t *)qb_malloc_array(n, sizeof *h);
    if (!h)
        return qb_err_set(err, QB_ERR_NOMEM, "out of host memory converting %s to bf16", name);
    for (size_t i = 0; i < n; i++) {
        float f = lin->fmt == QB_WFMT_F32 ? ((const float *)lin->data)[i]
                                          : qb_f16_to_f32(((const uint16_t *)lin->data)[i]);
        h[i] = qb_f32_to_bf16(f);
    }
    *out = h;
    return QB_OK;
}

static enum qb_status upload_dtype(const struct qb_linear *lin, const char *name,
                                   struct qb_cuda_weight *out, struct qb_err *err)
{
    uint16_t *conv = NULL;
    enum qb_status st = to_bf16_host(lin, name, &conv, err);
    out->fmt = QB_WFMT_BF16;
    out->group = (int)lin->cols;
    out->bytes = (size_t)lin->rows * (size_t)lin->cols * 2;
    if (!st)
        st = upload_new(&out->data, conv ? (const void *)conv : lin->data, out->bytes, name, err);
    free(conv);
    return st;
}

/* ---- repacking ------------------------------------------------------------------ */

static uint8_t swap_nibbles(uint8_t b)
{
    return (uint8_t)((b << 4) | (b >> 4));
}

static enum qb_status stage_alloc(struct staged *s, size_t codes, size_t scales, size_t zeros)
{
    s->codes_bytes = codes;
    s->scales_bytes = scales;
    s->zeros_bytes = zeros;
    s->codes = (uint8_t *)malloc(codes);
    s->scales = malloc(scales);
    s->zeros = zeros ? (uint8_t *)malloc(zeros) : NULL;
    return s->codes && s->scales && (!zeros || s->zeros) ? QB_OK : QB_ERR_NOMEM;
}

/* int8 / fp8: [f32 scale[R]][code[R][C]]. */
static enum qb_status stage_8bit(const struct qb_linear *lin, struct staged *s)
{
    size_t r = (size_t)lin->rows, c = (size_t)lin->cols;
    if (stage_alloc(s, r * c, r * 4, 0))
        return QB_ERR_NOMEM;
    memcpy(s->scales, lin->data, r * 4);
    memcpy(s->codes, (const uint8_t *)lin->data + r * 4, r * c);
    return QB_OK;
}

/* int4 groups: records {f16 scale, u8 zero, u8 bits, G/2 code bytes} per (row, group). */
static enum qb_status stage_groups(const struct qb_linear *lin, int group, struct staged *s)
{
    int64_t groups = lin->cols / group;
    size_t n_rec = (size_t)lin->rows * (size_t)groups;
    const uint8_t *base = (const uint8_t *)lin->data;
    if (stage_alloc(s, (size_t)lin->rows * (size_t)lin->cols / 2, n_rec * 2, n_rec))
        return QB_ERR_NOMEM;
    for (int64_t r = 0; r < lin->rows; r++)
        for (int64_t g = 0; g < groups; g++) {
            const uint8_t *rec = base + qb_group_record_offset(r, g, lin->cols, group, 4);
            struct qb_group_header h;
            size_t i = (size_t)(r * groups + g);
            memcpy(&h, rec, sizeof h);
            ((uint16_t *)s->scales)[i] = h.scale_f16;
            s->zeros[i] = h.zero;
            memcpy(s->codes + (size_t)r * (size_t)(lin->cols / 2) + (size_t)g * (size_t)(group / 2),
                   rec + sizeof h, (size_t)group / 2);
        }
    for (int i = 0; i < 16; i++)
        s->lut[i] = (float)i;
    s->lut_len = 16;
    return QB_OK;
}

/* nf4: blocks {f32 absmax, 32 bytes, element 2i high} over the flattened tensor. */
static enum qb_status stage_nf4(const struct qb_linear *lin, struct staged *s)
{
    size_t nb = (size_t)lin->rows * (size_t)lin->cols / QB_NF4_BLOCK;
    const struct qb_block_nf4 *b = (const struct qb_block_nf4 *)lin->data;
    if (stage_alloc(s, nb * 32, nb * 4, 0))
        return QB_ERR_NOMEM;
    for (size_t i = 0; i < nb; i++) {
        ((float *)s->scales)[i] = b[i].absmax;
        for (int j = 0; j < 32; j++)
            s->codes[i * 32 + j] = swap_nibbles(b[i].qs[j]);
    }
    memcpy(s->lut, qb_nf4_values, 16 * sizeof(float));
    s->lut_len = 16;
    return QB_OK;
}

/* nf4-dq: header, nested f32 absmax, blocks {u8 absmax code, 32 bytes}. */
static enum qb_status stage_nf4dq(const struct qb_linear *lin, struct staged *s, float **nested,
                                  size_t *n_nested, float *offset)
{
    struct qb_nf4dq_header h;
    memcpy(&h, lin->data, sizeof h);
    const float *nest = (const float *)((const uint8_t *)lin->data + sizeof h);
    const struct qb_block_nf4dq *b = (const struct qb_block_nf4dq *)(nest + h.n_nested);
    size_t nb = h.n_blocks;
    if (nb != (size_t)lin->rows * (size_t)lin->cols / QB_NF4_BLOCK)
        return QB_ERR_FORMAT;
    if (stage_alloc(s, nb * 32, nb, 0))
        return QB_ERR_NOMEM;
    for (size_t i = 0; i < nb; i++) {
        ((uint8_t *)s->scales)[i] = b[i].absmax_code;
        for (int j = 0; j < 32; j++)
            s->codes[i * 32 + j] = swap_nibbles(b[i].qs[j]);
    }
    *nested = (float *)nest;
    *n_nested = h.n_nested;
    *offset = h.offset;
    memcpy(s->lut, qb_nf4_values, 16 * sizeof(float));
    memcpy(s->lut + QB_LUT_DYN_OFFSET, qb_bnb_dynamic_map, 256 * sizeof(float));
    s->lut_len = QB_LUT_DYN_OFFSET + 256;
    return QB_OK;
}

/* nvfp4 (block 16, after a 16-byte header) and mxfp4 (block 32): {u8 scale, codes}. */
static enum qb_status stage_fp4(const struct qb_linear *lin, int block, size_t header,
                                struct staged *s)
{
    size_t nb = (size_t)lin->rows * (size_t)lin->cols / (size_t)block, rec = 1 + (size_t)block / 2;
    const uint8_t *p = (const uint8_t *)lin->data + header;
    if (stage_alloc(s, nb * (size_t)block / 2, nb, 0))
        return QB_ERR_NOMEM;
    for (size_t i = 0; i < nb; i++) {
        ((uint8_t *)s->scales)[i] = p[i * rec];
        memcpy(s->codes + i * (size_t)block / 2, p + i * rec + 1, (size_t)block / 2);
    }
    memcpy(s->lut, qb_e2m1_values, 16 * sizeof(float));
    s->lut_len = 16;
    return QB_OK;
}

/* Shape rules of the GPU kernels; the group size of the format in *group. */
static enum qb_status check_packed(const struct qb_linear *lin, const char *name, int *group,
                                   struct qb_err *err)
{
    int bits = lin->fmt == QB_WFMT_UINT_G && lin->qp.bits ? lin->qp.bits : 4;
    switch (lin->fmt) {
    case QB_WFMT_INT8: case QB_WFMT_FP8_E4M3: case QB_WFMT_FP8_E5M2:
        *group = (int)lin->cols; break;
    case QB_WFMT_NF4: case QB_WFMT_NF4_DQ: *group = QB_NF4_BLOCK; break;
    case QB_WFMT_NVFP4: *group = QB_NVFP4_BLOCK; break;
    case QB_WFMT_MXFP4: *group = QB_MXFP4_BLOCK; break;
    default: *group = lin->qp.group > 0 ? lin->qp.group : QB_GROUP_DEFAULT; break;
    }
    if (!qb_cuda_supports(lin->fmt, QB_ACT_F32) || bits != 4)
        return qb_err_set(err, QB_ERR_UNSUPPORTED, "%s: format %s (%d-bit) has no GPU kernel; "
                          "use --backend cpu", name, qb_wfmt_get(lin->fmt)->name, bits);
    if (!qb_cuda_supports(lin->fmt, lin->qp.act))
        return qb_err_set(err, QB_ERR_UNSUPPORTED, "%s: W4A4 (quantized FP4 activations) "
                          "needs an sm_100+ GPU (compiled, not executed here); use --backend "
                          "cpu", name);
    if (lin->cols % 32 || lin->cols % *group || *group % 16 || lin->cols > 0x7fffffff)
        return qb_err_set(err, QB_ERR_UNSUPPORTED, "%s: %lld columns do not split into the GPU "
                          "kernels' chunks (multiple of 32 and of the group %d)", name,
                          (long long)lin->cols, *group);
    return QB_OK;
}

/* 1 when the 4-bit codes of lin go up tiled (packed.cuh's pk_code4_at). */
static int codes_tile(const struct qb_linear *lin)
{
    return !qb_packed_is_8bit(lin->fmt) && !lin->qp.g_idx && lin->rows % QB_TILE_ROWS == 0 &&
           lin->cols % QB_TILE_COLS == 0;
}

/* Reorder the staged row-major 4-bit codes into tiles. */
static enum qb_status tile_codes(struct staged *s, int64_t rows, int64_t cols)
{
    const size_t span = QB_TILE_COLS / 2, row_bytes = (size_t)cols / 2;
    const size_t steps = (size_t)cols / QB_TILE_COLS;
    uint8_t *tiled = (uint8_t *)malloc(s->codes_bytes);
    if (!tiled)
        return QB_ERR_NOMEM;
    for (size_t r = 0; r < (size_t)rows; r++)
        for (size_t st = 0; st < steps; st++)
            memcpy(tiled + ((r / QB_TILE_ROWS) * steps + st) * QB_TILE_ROWS * span +
                       (r % QB_TILE_ROWS) * span,
                   s->codes + r * row_bytes + st * span, span);
    free(s->codes);
    s->codes = tiled;
    return QB_OK;
}

/* Stage any packed format; nested / scale_mul as the format has them; 4-bit
 * codes tiled where codes_tile says so. */
static enum qb_status stage_any(const struct qb_linear *lin, int group, struct staged *s,
                                float **nested, size_t *n_nested, float *scale_mul,
                                const char *name, struct qb_err *err)
{
    enum qb_status st;
    memset(s, 0, sizeof *s);
    *nested = NULL;
    *n_nested = 0;
    *scale_mul = 0.0f;
    switch (lin->fmt) {
    case QB_WFMT_INT8: case QB_WFMT_FP8_E4M3: case QB_WFMT_FP8_E5M2:
        st = stage_8bit(lin, s); break;
    case QB_WFMT_NF4: st = stage_nf4(lin, s); break;
    case QB_WFMT_NF4_DQ: st = stage_nf4dq(lin, s, nested, n_nested, scale_mul); break;
    case QB_WFMT_NVFP4:
        st = stage_fp4(lin, QB_NVFP4_BLOCK, sizeof(struct qb_nvfp4_header), s);
        *scale_mul = 1.0f / ((const struct qb_nvfp4_header *)lin->data)->global_scale;
        break;
    case QB_WFMT_MXFP4: st = stage_fp4(lin, QB_MXFP4_BLOCK, 0, s); break;
    default: st = stage_groups(lin, group, s); break;
    }
    s->tiled = !st && codes_tile(lin);
    if (s->tiled)
        st = tile_codes(s, lin->rows, lin->cols);
    if (st)
        return qb_err_set(err, st, "%s: cannot stage the %s payload for the GPU (%s)", name,
                          qb_wfmt_get(lin->fmt)->name, qb_status_str(st));
    return QB_OK;
}

static void staged_free(struct staged *s)
{
    free(s->codes);
    free(s->scales);
    free(s->zeros);
}

/* The RMSNorm tail's scratch of the 4-bit decode GEMV (gemv_mma.cu): a sum of
 * squares per 16 rows and a zeroed arrival counter. */
static enum qb_status alloc_norm_tail(struct qb_cuda_weight *out, const char *name,
                                      struct qb_err *err)
{
    enum qb_status st = QB_OK;
    size_t blocks = (size_t)qb_mma_row_blocks(out->rows);
    st = qb_cuda_alloc((void **)&out->tail_ss, blocks * sizeof(float), name, err);
    if (!st)
        st = qb_cuda_alloc((void **)&out->tail_done, sizeof(unsigned), name, err);
    if (!st)
        CUDA_CHECK(cudaMemset(out->tail_done, 0, sizeof(unsigned)));
out:
    return st;
}

static enum qb_status upload_packed(const struct qb_linear *lin, const char *name,
                                    struct qb_cuda_weight *out, struct qb_err *err)
{
    struct staged s;
    float *nested = NULL;
    size_t n_nested = 0;
    enum qb_status st;
    memset(&s, 0, sizeof s);
    st = check_packed(lin, name, &out->group, err);
    if (!st)
        st = stage_any(lin, out->group, &s, &nested, &n_nested, &out->scale_mul, name, err);
    if (st)
        goto out;
    out->fmt = lin->fmt;
    out->act = lin->qp.act;
    out->tiled = s.tiled;
    st = upload_new(&out->data, s.codes, s.codes_bytes, name, err);
    if (!st)
        st = upload_new(&out->scales, s.scales, s.scales_bytes, name, err);
    if (!st && s.zeros)
        st = upload_new((void **)&out->zeros, s.zeros, s.zeros_bytes, name, err);
    if (!st && nested)
        st = upload_new((void **)&out->nested, nested, n_nested * 4, name, err);
    if (!st && s.lut_len)
        st = upload_new((void **)&out->lut, s.lut, (size_t)s.lut_len * 4, name, err);
    if (!st && !qb_packed_is_8bit(lin->fmt) && !lin->qp.g_idx)
        st = alloc_norm_tail(out, name, err);
    if (!st && lin->qp.g_idx)
        st = upload_new((void **)&out->g_idx, lin->qp.g_idx, (size_t)lin->cols * 4, name, err);
    out->bytes = s.codes_bytes + s.scales_bytes + s.zeros_bytes + n_nested * 4;
out:
    staged_free(&s);
    return st;
}

/* ---- host emulation (tests) ----------------------------------------------------- */

template <int FMT> static void emulate(const struct packed_view &v, float *out)
{
    for (int64_t r = 0; r < v.rows; r++)
        for (int c = 0; c < v.cols; c++)
            out[r * v.cols + c] = decode_weight<FMT>(v, r, c);
}

extern "C" enum qb_status qb_cuda_emulate_dequant(const struct qb_linear *lin, float *out,
                                                  struct qb_err *err)
{
    struct staged s;
    struct packed_view v;
    float *nested = NULL, scale_mul = 0.0f;
    size_t n_nested = 0;
    int group = 0;
    enum qb_status st = check_packed(lin, "emulated weight", &group, err);
    memset(&s, 0, sizeof s);
    if (!st)
        st = stage_any(lin, group, &s, &nested, &n_nested, &scale_mul, "emulated weight", err);
    if (st)
        goto out;
    v.codes = s.codes;
    v.scales = s.scales;
    v.zeros = s.zeros;
    v.nested = nested;
    v.lut = s.lut;
    v.g_idx = lin->qp.g_idx;
    v.rows = lin->rows;
    v.cols = (int)lin->cols;
    v.group = group;
    v.groups = (int)(lin->cols / group);
    v.scale_mul = scale_mul;
    v.tiled = s.tiled;
    switch (lin->fmt) {
    case QB_WFMT_INT8: emulate<QB_WFMT_INT8>(v, out); break;
    case QB_WFMT_FP8_E4M3: emulate<QB_WFMT_FP8_E4M3>(v, out); break;
    case QB_WFMT_FP8_E5M2: emulate<QB_WFMT_FP8_E5M2>(v, out); break;
    case QB_WFMT_INT4: emulate<QB_WFMT_INT4>(v, out); break;
    case QB_WFMT_INT4_SYM: emulate<QB_WFMT_INT4_SYM>(v, out); break;
    case QB_WFMT_UINT_G: emulate<QB_WFMT_UINT_G>(v, out); break;
    case QB_WFMT_NF4: emulate<QB_WFMT_NF4>(v, out); break;
    case QB_WFMT_NF4_DQ: emulate<QB_WFMT_NF4_DQ>(v, out); break;
    case QB_WFMT_NVFP4: emulate<QB_WFMT_NVFP4>(v, out); break;
    default: emulate<QB_WFMT_MXFP4>(v, out); break;
    }
out:
    staged_free(&s);
    return st;
}

extern "C" enum qb_status qb_cuda_weight_upload(const struct qb_linear *lin, const char *name,
                                                struct qb_cuda_weight *out, struct qb_err *err)
{
    enum qb_status st;
    memset(out, 0, sizeof *out);
    out->rows = lin->rows;
    out->cols = lin->cols;
    if (lin->fmt == QB_WFMT_F32 || lin->fmt == QB_WFMT_F16 || lin->fmt == QB_WFMT_BF16)
        st = upload_dtype(lin, name, out, err);
    else if (lin->qp.act == QB_ACT_NVFP4 || lin->qp.act == QB_ACT_MXFP4)
        st = qb_w4a4_weight_upload(lin, name, out, err); /* swizzled FP4 layout (w4a4.cu) */
    else
        st = upload_packed(lin, name, out, err);
    if (!st && lin->bias)
        st = upload_new((void **)&out->bias, lin->bias, (size_t)lin->rows * sizeof(float), name,
                        err);
    if (st)
        qb_cuda_weight_free(out);
    return st;
}

extern "C" void qb_cuda_weight_free(struct qb_cuda_weight *w)
{
    if (!w)
        return;
    qb_cuda_free(w->data);
    qb_cuda_free(w->bias);
    qb_cuda_free(w->scales);
    qb_cuda_free(w->zeros);
    qb_cuda_free(w->nested);
    qb_cuda_free(w->lut);
    qb_cuda_free(w->g_idx);
    qb_cuda_free(w->tail_ss);
    qb_cuda_free(w->tail_done);
    memset(w, 0, sizeof *w);
}
