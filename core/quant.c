/*
 * quant.c - the format traits table, scheme names and linear-layer lifecycle.
 *
 * The dtype views (f32, f16, bf16) are implemented here; packed formats live
 * in core/quant_<fmt>.c and register through qb_wfmt_get()'s table.
 */
#include "quant.h"

#include <math.h>
#include <string.h>

#include "dtype.h"

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

static enum qb_status check_finite(const float *w, size_t n, const char *name, struct qb_err *err)
{
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(w[i]))
            return qb_err_set(err, QB_ERR_NUMERIC, "tensor '%s' holds NaN or Inf at element %zu",
                              name ? name : "?", i);
    }
    return QB_OK;
}

static enum qb_status quantize_f32(const float *w, struct qb_linear *out, const char *name,
                                   struct qb_err *err)
{
    size_t n = (size_t)out->rows * (size_t)out->cols;
    enum qb_status st = check_finite(w, n, name, err);
    if (st)
        return st;
    memcpy(out->owned, w, n * 4);
    return QB_OK;
}

static enum qb_status quantize_f16(const float *w, struct qb_linear *out, const char *name,
                                   struct qb_err *err)
{
    size_t n = (size_t)out->rows * (size_t)out->cols;
    enum qb_status st = check_finite(w, n, name, err);
    if (st)
        return st;
    uint16_t *d = out->owned;
    for (size_t i = 0; i < n; i++)
        d[i] = qb_f32_to_f16(w[i]);
    return QB_OK;
}

static enum qb_status quantize_bf16(const float *w, struct qb_linear *out, const char *name,
                                    struct qb_err *err)
{
    size_t n = (size_t)out->rows * (size_t)out->cols;
    enum qb_status st = check_finite(w, n, name, err);
    if (st)
        return st;
    uint16_t *d = out->owned;
    for (size_t i = 0; i < n; i++)
        d[i] = qb_f32_to_bf16(w[i]);
    return QB_OK;
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

static const struct qb_wfmt_traits traits_table[QB_WFMT_COUNT] = {
    [QB_WFMT_F32] = {"f32", 1, view_bytes_f32, quantize_f32, dequant_f32},
    [QB_WFMT_F16] = {"f16", 1, view_bytes_16, quantize_f16, dequant_f16},
    [QB_WFMT_BF16] = {"bf16", 1, view_bytes_16, quantize_bf16, dequant_bf16},
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

/* ---- schemes ---- */

struct scheme_entry {
    const char *name;
    enum qb_method method;
    enum qb_wfmt fmt;
    int group;
};

static const struct scheme_entry scheme_table[] = {
    {"bf16", QB_METHOD_NONE, QB_WFMT_BF16, 0},
    {"fp16", QB_METHOD_NONE, QB_WFMT_F16, 0},
    {"f32", QB_METHOD_NONE, QB_WFMT_F32, 0},
};

const char *qb_scheme_names(void)
{
    return "bf16, fp16, f32";
}

enum qb_status qb_scheme_parse(const char *name, int group, struct qb_scheme *out,
                               struct qb_err *err)
{
    memset(out, 0, sizeof *out);
    for (size_t i = 0; i < QB_ARRAY_LEN(scheme_table); i++) {
        const struct scheme_entry *e = &scheme_table[i];
        if (strcmp(name, e->name) != 0)
            continue;
        snprintf(out->name, sizeof out->name, "%s", e->name);
        out->method = e->method;
        out->fmt = e->fmt;
        out->qp.group = group ? group : e->group;
        out->needs_calibration = e->method == QB_METHOD_GPTQ || e->method == QB_METHOD_AWQ;
        return QB_OK;
    }
    return qb_err_set(err, QB_ERR_USAGE, "unknown scheme '%s' (known: %s)", name,
                      qb_scheme_names());
}

/* ---- linear lifecycle ---- */

enum qb_status qb_linear_quantize(const float *w, int64_t rows, int64_t cols, enum qb_wfmt fmt,
                                  const struct qb_quant_params *qp, const char *name,
                                  struct qb_linear *out, struct qb_err *err)
{
    const struct qb_wfmt_traits *t = qb_wfmt_get(fmt);
    memset(out, 0, sizeof *out);
    out->fmt = fmt;
    out->rows = rows;
    out->cols = cols;
    if (qp)
        out->qp = *qp;
    size_t bytes = t->packed_bytes(rows, cols, &out->qp);
    out->owned = qb_aligned_alloc(bytes);
    if (!out->owned)
        return qb_err_set(err, QB_ERR_NOMEM, "cannot allocate %zu bytes for '%s'", bytes,
                          name ? name : "?");
    out->data = out->owned;
    out->data_bytes = bytes;
    enum qb_status st = t->quantize(w, out, name, err);
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
