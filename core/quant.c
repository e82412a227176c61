/*
 * quant.c - the format traits table, shape/parameter checks, the scheme table,
 * activation quantization (W4A4/W8A8) and the linear-layer lifecycle.
 *
 * The dtype views (f32, f16, bf16) are implemented here; packed formats live
 * in core/quant_<fmt>.c (int, nf4, fp8, fp4) and register through the
 * designated-initializer table below via quant_impl.h.
 */
#include "quant.h"

#include <math.h>
#include <string.h>

#include "dtype.h"
#include "fp_formats.h"
#include "ggml_quants.h"
#include "quant_blocks.h"
#include "quant_impl.h"

/* ---- dtype views ---- */

static size_t view_bytes_f32(int64_t rows, int64_t cols, const struct qb_quant_params *p)
{
    (void)p;
    return (size_t)rows * (size_t)cols * 4;
}

static size_t view_bytes_16(int64_t rows, int64_t cols, const struct qb_quant_params *p)
{
    (void)p;
    return (size_t)rows * (size_t)cols * 2;
}

enum qb_status qb_check_finite(const float *w, int64_t rows, int64_t cols, const char *name,
                               struct qb_err *err)
{
    for (int64_t i = 0; i < rows * cols; i++) {
        if (!isfinite(w[i]))
            return qb_err_set(err, QB_ERR_NUMERIC,
                              "tensor '%s' holds %s at row %lld, column %lld; fix or re-export "
                              "the checkpoint",
                              name ? name : "?", isnan(w[i]) ? "NaN" : "Inf",
                              (long long)(i / cols), (long long)(i % cols));
    }
    return QB_OK;
}

static enum qb_status quantize_f32(const float *w, struct qb_linear *out, const char *name,
                                   struct qb_err *err)
{
    size_t n = (size_t)out->rows * (size_t)out->cols;
    enum qb_status st = qb_check_finite(w, out->rows, out->cols, name, err);
    if (st)
        return st;
    memcpy(out->owned, w, n * 4);
    return QB_OK;
}

/* The finite weights w rounded to a 16-bit float type by round16. */
static enum qb_status quantize_16bit(const float *w, struct qb_linear *out, const char *name,
                                     uint16_t (*round16)(float), struct qb_err *err)
{
    size_t n = (size_t)out->rows * (size_t)out->cols;
    enum qb_status st = qb_check_finite(w, out->rows, out->cols, name, err);
    if (st)
        return st;
    uint16_t *d = out->owned;
    for (size_t i = 0; i < n; i++)
        d[i] = round16(w[i]);
    return QB_OK;
}

static enum qb_status quantize_f16(const float *w, struct qb_linear *out, const char *name,
                                   struct qb_err *err)
{
    return quantize_16bit(w, out, name, qb_f32_to_f16, err);
}

static enum qb_status quantize_bf16(const float *w, struct qb_linear *out, const char *name,
                                    struct qb_err *err)
{
    return quantize_16bit(w, out, name, qb_f32_to_bf16, err);
}

static void dequant_f32(const struct qb_linear *w, int64_t row0, int64_t n, float *out)
{
    memcpy(out, (const float *)w->data + row0 * w->cols, (size_t)(n * w->cols) * 4);
}

static void dequant_f16(const struct qb_linear *w, int64_t row0, int64_t n, float *out)
{
    const uint16_t *s = (const uint16_t *)w->data + row0 * w->cols;
    for (int64_t i = 0; i < n * w->cols; i++)
        out[i] = qb_f16_to_f32(s[i]);
}

static void dequant_bf16(const struct qb_linear *w, int64_t row0, int64_t n, float *out)
{
    const uint16_t *s = (const uint16_t *)w->data + row0 * w->cols;
    for (int64_t i = 0; i < n * w->cols; i++)
        out[i] = qb_bf16_to_f32(s[i]);
}

static float dot_f32(const struct qb_linear *w, int64_t row, const float *x)
{
    const float *r = (const float *)w->data + row * w->cols;
    float acc = 0.0f;
    for (int64_t c = 0; c < w->cols; c++)
        acc += r[c] * x[c];
    return acc;
}

static float dot_f16(const struct qb_linear *w, int64_t row, const float *x)
{
    const uint16_t *r = (const uint16_t *)w->data + row * w->cols;
    float acc = 0.0f;
    for (int64_t c = 0; c < w->cols; c++)
        acc += qb_f16_to_f32(r[c]) * x[c];
    return acc;
}

static float dot_bf16(const struct qb_linear *w, int64_t row, const float *x)
{
    const uint16_t *r = (const uint16_t *)w->data + row * w->cols;
    float acc = 0.0f;
    for (int64_t c = 0; c < w->cols; c++)
        acc += qb_bf16_to_f32(r[c]) * x[c];
    return acc;
}

#define QB_TRAITS(F) qb_##F##_packed_bytes, qb_##F##_quantize, qb_##F##_dequant_rows, \
                     qb_##F##_vec_dot, qb_##F##_vec_dot_ref

/* Nominal bits/weight at the default block: payload bytes * 8 / weights for a
 * large tensor (per-row scales amortised over 4096 columns). */
static const struct qb_wfmt_traits traits_table[QB_WFMT_COUNT] = {
    [QB_WFMT_F32] = {"f32", 1, 32.0, view_bytes_f32, quantize_f32, dequant_f32, dot_f32, dot_f32},
    [QB_WFMT_F16] = {"f16", 1, 16.0, view_bytes_16, quantize_f16, dequant_f16, dot_f16, dot_f16},
    [QB_WFMT_BF16] = {"bf16", 1, 16.0, view_bytes_16, quantize_bf16, dequant_bf16, dot_bf16,
                      dot_bf16},
    [QB_WFMT_INT8] = {"int8", 1, 8.0 + 32.0 / 4096, QB_TRAITS(int8)},
    [QB_WFMT_INT4] = {"int4", QB_GROUP_DEFAULT, 4.25, QB_TRAITS(grp)},
    [QB_WFMT_INT4_SYM] = {"int4-sym", QB_GROUP_DEFAULT, 4.25, QB_TRAITS(grp)},
    [QB_WFMT_UINT_G] = {"uint_g", QB_GROUP_DEFAULT, 4.25, QB_TRAITS(grp)},
    [QB_WFMT_NF4] = {"nf4", QB_NF4_BLOCK, 4.5, QB_TRAITS(nf4)},
    [QB_WFMT_NF4_DQ] = {"nf4-dq", QB_NF4_BLOCK, 4.0 + 8.0 / 64 + 32.0 / (64 * 256),
                        QB_TRAITS(nf4dq)},
    [QB_WFMT_FP8_E4M3] = {"fp8-e4m3", 1, 8.0 + 32.0 / 4096, QB_TRAITS(fp8)},
    [QB_WFMT_FP8_E5M2] = {"fp8-e5m2", 1, 8.0 + 32.0 / 4096, QB_TRAITS(fp8)},
    [QB_WFMT_NVFP4] = {"nvfp4", QB_NVFP4_BLOCK, 4.5, QB_TRAITS(nvfp4)},
    [QB_WFMT_MXFP4] = {"mxfp4", QB_MXFP4_BLOCK, 4.25, QB_TRAITS(mxfp4)},
    [QB_WFMT_GGML] = {"ggml", 1, 0.0, QB_TRAITS(ggmlw)}, /* block and bits: per ggml type */
};

const struct qb_wfmt_traits *qb_wfmt_get(enum qb_wfmt fmt)
{
    CHECK((unsigned)fmt < QB_WFMT_COUNT && traits_table[fmt].name);
    return &traits_table[fmt];
}

double qb_wfmt_bits_per_weight(enum qb_wfmt fmt, int64_t rows, int64_t cols,
                               const struct qb_quant_params *p)
{
    const struct qb_wfmt_traits *t = qb_wfmt_get(fmt);
    double n = (double)rows * (double)cols;
    return n > 0 ? 8.0 * (double)t->packed_bytes(rows, cols, p) / n : 0.0;
}

static int is_group_fmt(enum qb_wfmt fmt)
{
    return fmt == QB_WFMT_INT4 || fmt == QB_WFMT_INT4_SYM || fmt == QB_WFMT_UINT_G;
}

static enum qb_status check_group_params(enum qb_wfmt fmt, int64_t cols,
                                         const struct qb_quant_params *p, const char *name,
                                         struct qb_err *err)
{
    int g = qb_grp_group(p), bits = qb_grp_bits(fmt, p);
    if (g != 32 && g != 64 && g != 128)
        return qb_err_set(err, QB_ERR_RANGE, "tensor '%s': group %d is not 32, 64 or 128", name,
                          g);
    if (bits != 2 && bits != 3 && bits != 4 && bits != 8)
        return qb_err_set(err, QB_ERR_RANGE, "tensor '%s': %d-bit groups are not supported "
                          "(2, 3, 4 or 8)", name, bits);
    if (cols % g)
        return qb_err_set(err, QB_ERR_UNSUPPORTED,
                          "tensor '%s' has %lld input columns, not a multiple of the group %d; "
                          "pick a smaller --group", name, (long long)cols, g);
    if (p && p->g_idx) {
        for (int64_t c = 0; c < cols; c++) {
            if (p->g_idx[c] < 0 || p->g_idx[c] >= cols / g)
                return qb_err_set(err, QB_ERR_RANGE,
                                  "tensor '%s': g_idx[%lld] = %d is outside [0, %lld)", name,
                                  (long long)c, p->g_idx[c], (long long)(cols / g));
        }
    }
    return QB_OK;
}

static enum qb_status check_ggml_params(int64_t cols, const struct qb_quant_params *p,
                                        const char *name, struct qb_err *err)
{
    const struct qb_ggml_type_info *ti = qb_ggml_type_info(p ? p->ggml_type : QB_GGML_F32);
    if (!ti || !ti->can_dequantize)
        return qb_err_set(err, QB_ERR_UNSUPPORTED, "tensor '%s': ggml type %d is not supported",
                          name, p ? p->ggml_type : 0);
    if (cols % ti->block)
        return qb_err_set(err, QB_ERR_UNSUPPORTED, "tensor '%s' has %lld input columns, not a "
                          "multiple of the %s block of %d", name, (long long)cols, ti->name,
                          ti->block);
    return QB_OK;
}

enum qb_status qb_wfmt_check_shape(enum qb_wfmt fmt, int64_t rows, int64_t cols,
                                   const struct qb_quant_params *p, const char *name,
                                   struct qb_err *err)
{
    name = name ? name : "?";
    if ((unsigned)fmt >= QB_WFMT_COUNT || !traits_table[fmt].name)
        return qb_err_set(err, QB_ERR_UNSUPPORTED, "tensor '%s': weight format %d is not "
                          "available", name, (int)fmt);
    if (rows <= 0 || cols <= 0)
        return qb_err_set(err, QB_ERR_RANGE, "tensor '%s' has an empty shape [%lld, %lld]",
                          name, (long long)rows, (long long)cols);
    if (is_group_fmt(fmt))
        return check_group_params(fmt, cols, p, name, err);
    if (fmt == QB_WFMT_GGML)
        return check_ggml_params(cols, p, name, err);
    int block = fmt == QB_WFMT_NVFP4 ? QB_NVFP4_BLOCK : fmt == QB_WFMT_MXFP4 ? QB_MXFP4_BLOCK : 1;
    if (cols % block)
        return qb_err_set(err, QB_ERR_UNSUPPORTED,
                          "tensor '%s' has %lld input columns, not a multiple of the %s block "
                          "of %d", name, (long long)cols, traits_table[fmt].name, block);
    return QB_OK;
}

/* ---- activation quantization ---- */

static float row_amax(const float *x, int64_t n)
{
    float m = 0.0f;
    for (int64_t i = 0; i < n; i++)
        m = fmaxf(m, fabsf(x[i]));
    return m;
}

static void act_nvfp4_row(const float *x, int64_t cols, float *out)
{
    float g = qb_nvfp4_global_scale(row_amax(x, cols));
    for (int64_t c0 = 0; c0 < cols; c0 += QB_NVFP4_BLOCK) {
        int n = (int)QB_MIN((int64_t)QB_NVFP4_BLOCK, cols - c0);
        uint8_t codes[QB_NVFP4_BLOCK];
        float s = qb_e4m3_to_f32(qb_nvfp4_block_encode(x + c0, n, g, codes)) / g;
        for (int i = 0; i < n; i++)
            out[c0 + i] = qb_e2m1_to_f32(codes[i]) * s;
    }
}

static void act_mxfp4_row(const float *x, int64_t cols, float *out)
{
    for (int64_t c0 = 0; c0 < cols; c0 += QB_MXFP4_BLOCK) {
        int n = (int)QB_MIN((int64_t)QB_MXFP4_BLOCK, cols - c0);
        uint8_t codes[QB_MXFP4_BLOCK];
        float s = qb_e8m0_to_f32(qb_mxfp4_block_encode(x + c0, n, codes));
        for (int i = 0; i < n; i++)
            out[c0 + i] = qb_e2m1_to_f32(codes[i]) * s;
    }
}

static void act_fp8_row(const float *x, int64_t cols, float *out)
{
    float s = row_amax(x, cols) / QB_E4M3_MAX;
    for (int64_t c = 0; c < cols; c++)
        out[c] = s > 0.0f ? qb_e4m3_to_f32(qb_e4m3_from_f32(x[c] / s)) * s : 0.0f * x[c];
}

void qb_act_quantize_rows(enum qb_act_mode mode, const float *x, int64_t n, int64_t cols,
                          float *out)
{
    for (int64_t r = 0; r < n; r++) {
        const float *xr = x + r * cols;
        float *o = out + r * cols;
        switch (mode) {
        case QB_ACT_F32:
            if (o != xr)
                memcpy(o, xr, (size_t)cols * sizeof(float));
            break;
        case QB_ACT_NVFP4:
            act_nvfp4_row(xr, cols, o);
            break;
        case QB_ACT_MXFP4:
            act_mxfp4_row(xr, cols, o);
            break;
        case QB_ACT_FP8_E4M3:
            act_fp8_row(xr, cols, o);
            break;
        }
    }
}

/* ---- schemes ---- */

struct scheme_entry {
    const char *name;
    enum qb_method method;
    enum qb_wfmt fmt;
    int bits;              /* UINT_G bits, else 0 */
    enum qb_act_mode act;
};

static const struct scheme_entry scheme_table[] = {
    {"bf16", QB_METHOD_NONE, QB_WFMT_BF16, 0, QB_ACT_F32},
    {"fp16", QB_METHOD_NONE, QB_WFMT_F16, 0, QB_ACT_F32},
    {"f32", QB_METHOD_NONE, QB_WFMT_F32, 0, QB_ACT_F32},
    {"int8", QB_METHOD_RTN, QB_WFMT_INT8, 0, QB_ACT_F32},
    {"int4", QB_METHOD_RTN, QB_WFMT_INT4, 0, QB_ACT_F32},
    {"int4-sym", QB_METHOD_RTN, QB_WFMT_INT4_SYM, 0, QB_ACT_F32},
    {"nf4", QB_METHOD_RTN, QB_WFMT_NF4, 0, QB_ACT_F32},
    {"nf4-dq", QB_METHOD_RTN, QB_WFMT_NF4_DQ, 0, QB_ACT_F32},
    {"fp8", QB_METHOD_RTN, QB_WFMT_FP8_E4M3, 0, QB_ACT_F32},
    {"fp8-e5m2", QB_METHOD_RTN, QB_WFMT_FP8_E5M2, 0, QB_ACT_F32},
    {"nvfp4", QB_METHOD_RTN, QB_WFMT_NVFP4, 0, QB_ACT_F32},
    {"mxfp4", QB_METHOD_RTN, QB_WFMT_MXFP4, 0, QB_ACT_F32},
    {"nvfp4-w4a4", QB_METHOD_RTN, QB_WFMT_NVFP4, 0, QB_ACT_NVFP4},
    {"mxfp4-w4a4", QB_METHOD_RTN, QB_WFMT_MXFP4, 0, QB_ACT_MXFP4},
    {"fp8-w8a8", QB_METHOD_RTN, QB_WFMT_FP8_E4M3, 0, QB_ACT_FP8_E4M3},
    {"gptq-int4", QB_METHOD_GPTQ, QB_WFMT_INT4, 4, QB_ACT_F32},
    {"gptq-int3", QB_METHOD_GPTQ, QB_WFMT_UINT_G, 3, QB_ACT_F32},
    {"gptq-int8", QB_METHOD_GPTQ, QB_WFMT_UINT_G, 8, QB_ACT_F32},
    {"gptq-int2", QB_METHOD_GPTQ, QB_WFMT_UINT_G, 2, QB_ACT_F32},
    {"awq-int4", QB_METHOD_AWQ, QB_WFMT_INT4, 4, QB_ACT_F32},
    /* llama.cpp mixes: per-tensor ggml types chosen by gguf_model.c (gguf_mix.c rules) */
    {"gguf-f16", QB_METHOD_GGUF, QB_WFMT_GGML, 0, QB_ACT_F32},
    {"gguf-q8_0", QB_METHOD_GGUF, QB_WFMT_GGML, 0, QB_ACT_F32},
    {"gguf-q6_k", QB_METHOD_GGUF, QB_WFMT_GGML, 0, QB_ACT_F32},
    {"gguf-q5_k_m", QB_METHOD_GGUF, QB_WFMT_GGML, 0, QB_ACT_F32},
    {"gguf-q5_k_s", QB_METHOD_GGUF, QB_WFMT_GGML, 0, QB_ACT_F32},
    {"gguf-q4_k_m", QB_METHOD_GGUF, QB_WFMT_GGML, 0, QB_ACT_F32},
    {"gguf-q4_k_s", QB_METHOD_GGUF, QB_WFMT_GGML, 0, QB_ACT_F32},
    {"gguf-q4_0", QB_METHOD_GGUF, QB_WFMT_GGML, 0, QB_ACT_F32},
    {"gguf-q3_k_m", QB_METHOD_GGUF, QB_WFMT_GGML, 0, QB_ACT_F32},
    {"gguf-q3_k_s", QB_METHOD_GGUF, QB_WFMT_GGML, 0, QB_ACT_F32},
    {"gguf-q2_k", QB_METHOD_GGUF, QB_WFMT_GGML, 0, QB_ACT_F32},
};

const char *qb_scheme_names(void)
{
    return "bf16, fp16, f32, int8, int4, int4-sym, nf4, nf4-dq, fp8, fp8-e5m2, nvfp4, mxfp4, "
           "nvfp4-w4a4, mxfp4-w4a4, fp8-w8a8, gptq-int4, gptq-int3, gptq-int8, gptq-int2, "
           "awq-int4, gguf-f16, gguf-q8_0, gguf-q6_k, gguf-q5_k_m, gguf-q5_k_s, gguf-q4_k_m, "
           "gguf-q4_k_s, gguf-q4_0, gguf-q3_k_m, gguf-q3_k_s, gguf-q2_k";
}

/* The block a --group override must match for formats with a fixed block, 0 when
 * the format has no block along the input (dtype views, per-row scales). */
static int fixed_block(enum qb_wfmt fmt)
{
    switch (fmt) {
    case QB_WFMT_NF4:
    case QB_WFMT_NF4_DQ:
        return QB_NF4_BLOCK;
    case QB_WFMT_NVFP4:
        return QB_NVFP4_BLOCK;
    case QB_WFMT_MXFP4:
        return QB_MXFP4_BLOCK;
    default:
        return 0;
    }
}

static enum qb_status scheme_group(const struct scheme_entry *e, int group, int *out,
                                   struct qb_err *err)
{
    if (is_group_fmt(e->fmt)) {
        if (group != 0 && group != 32 && group != 64 && group != 128)
            return qb_err_set(err, QB_ERR_USAGE,
                              "--group %d is not valid for '%s' (use 32, 64 or 128)", group,
                              e->name);
        *out = group ? group : QB_GROUP_DEFAULT;
        return QB_OK;
    }
    int fixed = fixed_block(e->fmt);
    if (group != 0 && !fixed)
        return qb_err_set(err, QB_ERR_USAGE, "--group %d does not apply to '%s' (no groups)",
                          group, e->name);
    if (group != 0 && group != fixed)
        return qb_err_set(err, QB_ERR_USAGE,
                          "--group %d does not apply to '%s': its block is fixed at %d", group,
                          e->name, fixed);
    *out = fixed;
    return QB_OK;
}

enum qb_status qb_scheme_parse(const char *name, int group, struct qb_scheme *out,
                               struct qb_err *err)
{
    memset(out, 0, sizeof *out);
    for (size_t i = 0; name && i < QB_ARRAY_LEN(scheme_table); i++) {
        const struct scheme_entry *e = &scheme_table[i];
        if (strcmp(name, e->name) != 0)
            continue;
        enum qb_status st = scheme_group(e, group, &out->qp.group, err);
        if (st)
            return st;
        snprintf(out->name, sizeof out->name, "%s", e->name);
        out->method = e->method;
        out->fmt = e->fmt;
        out->qp.bits = is_group_fmt(e->fmt) ? (e->bits ? e->bits : 4) : 0;
        out->qp.act = e->act;
        out->needs_calibration = e->method == QB_METHOD_GPTQ || e->method == QB_METHOD_AWQ;
        return QB_OK;
    }
    return qb_err_set(err, QB_ERR_USAGE, "unknown scheme '%s' (known: %s)", name ? name : "",
                      qb_scheme_names());
}

const char *qb_scheme_hw_support(const struct qb_scheme *s)
{
    if (s->qp.act == QB_ACT_NVFP4 || s->qp.act == QB_ACT_MXFP4)
        return "native FP4 tensor cores on Blackwell (sm_100/sm_120/sm_121), emulated here";
    if (s->qp.act == QB_ACT_FP8_E4M3)
        return "native FP8 tensor cores on sm_89+ (Ada, Hopper, Blackwell), emulated here";
    switch (s->fmt) {
    case QB_WFMT_F32:
        return "fp32 reference; no tensor-core path";
    case QB_WFMT_F16:
        return "native fp16 tensor cores on every CUDA GPU";
    case QB_WFMT_BF16:
        return "native bf16 tensor cores on sm_80+";
    case QB_WFMT_INT8:
        return "weight-only: int8 dequantized in the kernel on any GPU (W8A16)";
    case QB_WFMT_INT4:
    case QB_WFMT_INT4_SYM:
    case QB_WFMT_UINT_G:
        return "weight-only: dequantized in the kernel (Marlin/ExLlama-style) on sm_80+";
    case QB_WFMT_NF4:
    case QB_WFMT_NF4_DQ:
        return "weight-only: bitsandbytes-style dequant kernel; no GPU has NF4 tensor cores";
    case QB_WFMT_FP8_E4M3:
    case QB_WFMT_FP8_E5M2:
        return "native FP8 tensor cores on sm_89+ (weights here, activations stay 16-bit)";
    case QB_WFMT_NVFP4:
    case QB_WFMT_MXFP4:
        return "native on Blackwell (sm_100/sm_120/sm_121), emulated here";
    case QB_WFMT_GGML:
        return "llama.cpp/ggml kernels";
    case QB_WFMT_COUNT:
        break;
    }
    return "unknown";
}

/* ---- linear lifecycle ---- */

enum qb_status qb_linear_quantize(const float *w, int64_t rows, int64_t cols, enum qb_wfmt fmt,
                                  const struct qb_quant_params *qp, const char *name,
                                  struct qb_linear *out, struct qb_err *err)
{
    memset(out, 0, sizeof *out);
    name = name ? name : "?";
    enum qb_status st = qb_wfmt_check_shape(fmt, rows, cols, qp, name, err);
    if (st)
        return st;
    if (qp && qp->g_idx)
        return qb_err_set(err, QB_ERR_UNSUPPORTED,
                          "tensor '%s': round-to-nearest takes no g_idx; use "
                          "qb_linear_pack_groups for act-order codes", name);
    const struct qb_wfmt_traits *t = qb_wfmt_get(fmt);
    out->fmt = fmt;
    out->rows = rows;
    out->cols = cols;
    if (qp)
        out->qp = *qp;
    if (is_group_fmt(fmt)) { /* store the effective group and bits */
        out->qp.group = qb_grp_group(&out->qp);
        out->qp.bits = qb_grp_bits(fmt, &out->qp);
    }
    size_t bytes = t->packed_bytes(rows, cols, &out->qp);
    out->owned = qb_aligned_alloc(bytes);
    if (!out->owned)
        return qb_err_set(err, QB_ERR_NOMEM, "cannot allocate %zu bytes for '%s'", bytes, name);
    memset(out->owned, 0, bytes);
    out->data = out->owned;
    out->data_bytes = bytes;
    st = t->quantize(w, out, name, err);
    if (st)
        qb_linear_release(out);
    return st;
}

void qb_linear_release(struct qb_linear *lin)
{
    if (!lin)
        return;
    free(lin->owned);
    free(lin->owned_bias);
    free(lin->owned_g_idx);
    memset(lin, 0, sizeof *lin);
}
