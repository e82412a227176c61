/*
 * quant_int.c - the integer weight formats: INT8 (per output row, symmetric)
 * and the group formats INT4 (asymmetric), INT4_SYM and UINT_G (2/3/4/8-bit
 * asymmetric groups written by GPTQ/AWQ, or by RTN here).
 *
 * Layouts (see quant_blocks.h for the full picture):
 *
 *   INT8:  [ f32 scale[R] ][ int8 q[R][C] ]       w = scale[r] * q
 *          scale = max|w|/127, q = clamp(round(w/scale), -127, 127)
 *
 *   groups: one record per (row, group of G input columns), row-major:
 *     byte 0      2      3      4                               4 + G*b/8
 *          +------+------+------+------------------------------+
 *          | f16 scale   | zero | bits | codes, LSB-first bit stream     |
 *          +------+------+------+------------------------------+
 *     w = scale * (code - zero); int4 g128 = 68 bytes per 128 weights = 4.25 b/w.
 *
 * RTN rules (issue 3): asymmetric scale = (max-min)/(2^b-1), zero =
 * clamp(round(-min/scale), 0, 2^b-1), q = clamp(round(w/scale) + zero, 0, 2^b-1);
 * symmetric int4 scale = max|w|/7, q = clamp(round(w/scale), -8, 7) stored as
 * q+8 with zero 8. The scale is rounded to f16 (saturating; an underflow becomes
 * the smallest f16 subnormal) BEFORE zero and codes are computed, so the stored
 * scale is the one the codes were made for. round() is rintf: ties to even.
 */
#include <math.h>
#include <string.h>

#include "dtype.h"
#include "quant_blocks.h"
#include "quant_impl.h"
#include "quant_simd.h"

/* ================================ INT8 ================================ */

size_t qb_int8_packed_bytes(int64_t rows, int64_t cols, const struct qb_quant_params *p)
{
    (void)p;
    return (size_t)rows * 4 + (size_t)rows * (size_t)cols;
}

static const float *int8_scales(const struct qb_linear *w)
{
    return (const float *)w->data;
}

static const int8_t *int8_row(const struct qb_linear *w, int64_t row)
{
    return (const int8_t *)w->data + (size_t)w->rows * 4 + (size_t)row * (size_t)w->cols;
}

enum qb_status qb_int8_quantize(const float *w, struct qb_linear *out, const char *name,
                                struct qb_err *err)
{
    enum qb_status st = qb_check_finite(w, out->rows, out->cols, name, err);
    if (st)
        return st;
    float *scales = out->owned;
    int8_t *q = (int8_t *)out->owned + (size_t)out->rows * 4;
    for (int64_t r = 0; r < out->rows; r++) {
        const float *wr = w + r * out->cols;
        int8_t *qr = q + r * out->cols;
        float amax = 0.0f;
        for (int64_t c = 0; c < out->cols; c++)
            amax = fmaxf(amax, fabsf(wr[c]));
        float scale = amax / 127.0f;
        scales[r] = scale;
        for (int64_t c = 0; c < out->cols; c++) {
            float v = scale > 0.0f ? rintf(wr[c] / scale) : 0.0f;
            qr[c] = (int8_t)fminf(fmaxf(v, -127.0f), 127.0f);
        }
    }
    return QB_OK;
}

void qb_int8_dequant_rows(const struct qb_linear *w, int64_t row0, int64_t n, float *out)
{
    for (int64_t r = 0; r < n; r++) {
        const int8_t *q = int8_row(w, row0 + r);
        float s = int8_scales(w)[row0 + r];
        for (int64_t c = 0; c < w->cols; c++)
            out[r * w->cols + c] = s * (float)q[c];
    }
}

float qb_int8_vec_dot_ref(const struct qb_linear *w, int64_t row, const float *x)
{
    const int8_t *q = int8_row(w, row);
    float acc = 0.0f;
    for (int64_t c = 0; c < w->cols; c++)
        acc += (float)q[c] * x[c];
    return acc * int8_scales(w)[row];
}

float qb_int8_vec_dot(const struct qb_linear *w, int64_t row, const float *x)
{
    return qb_simd_i8_dot(int8_row(w, row), w->cols, x) * int8_scales(w)[row];
}

/* ============================ group formats ============================ */

int qb_grp_group(const struct qb_quant_params *p)
{
    return p && p->group > 0 ? p->group : QB_GROUP_DEFAULT;
}

int qb_grp_bits(enum qb_wfmt fmt, const struct qb_quant_params *p)
{
    if (fmt != QB_WFMT_UINT_G)
        return 4;
    return p && p->bits > 0 ? p->bits : 4;
}

size_t qb_grp_packed_bytes(int64_t rows, int64_t cols, const struct qb_quant_params *p)
{
    /* the format is not passed here: UINT_G reads p->bits, INT4 leaves it 0 (= 4) */
    int bits = p && p->bits > 0 ? p->bits : 4;
    int g = qb_grp_group(p);
    return (size_t)rows * (size_t)(cols / g) * qb_group_record_bytes(g, bits);
}

static uint16_t f16_scale_saturating(float s)
{
    uint16_t h = qb_f32_to_f16(s);
    if ((h & 0x7fffu) >= 0x7c00u)
        h = 0x7bff; /* 65504 */
    if (h == 0)
        h = 0x0001; /* smallest subnormal: never a zero scale */
    return h;
}

static void group_params_f16(const float *w, int64_t n, int bits, int sym, uint16_t *scale_h,
                             int *zero)
{
    int maxq = (1 << bits) - 1;
    float scale;
    if (sym) {
        float amax = 0.0f;
        for (int64_t i = 0; i < n; i++)
            amax = fmaxf(amax, fabsf(w[i]));
        scale = amax > 0.0f ? amax / 7.0f : 1.0f;
        *scale_h = f16_scale_saturating(scale);
        *zero = 8;
        return;
    }
    float mn = w[0], mx = w[0];
    for (int64_t i = 1; i < n; i++) {
        mn = fminf(mn, w[i]);
        mx = fmaxf(mx, w[i]);
    }
    if (mx > mn)
        scale = (mx - mn) / (float)maxq;
    else /* constant group: put its value on the grid's end */
        scale = mx != 0.0f ? fabsf(mx) / (float)maxq : 1.0f;
    *scale_h = f16_scale_saturating(scale);
    float z = rintf(-mn / qb_f16_to_f32(*scale_h));
    *zero = (int)fminf(fmaxf(z, 0.0f), (float)maxq);
}

void qb_group_params(const float *w, int64_t n, int bits, int sym, float *scale, int *zero)
{
    uint16_t h;
    group_params_f16(w, n, bits, sym, &h, zero);
    *scale = qb_f16_to_f32(h);
}

static void put_code(uint8_t *codes, int j, int bits, unsigned q)
{
    unsigned bit = (unsigned)j * (unsigned)bits;
    unsigned v = q << (bit & 7u);
    codes[bit >> 3] |= (uint8_t)v;
    if ((bit & 7u) + (unsigned)bits > 8u)
        codes[(bit >> 3) + 1] |= (uint8_t)(v >> 8);
}

static uint8_t *grp_record(const struct qb_linear *w, int64_t row, int64_t g, int group, int bits)
{
    return (uint8_t *)w->data + qb_group_record_offset(row, g, w->cols, group, bits);
}

enum qb_status qb_grp_quantize(const float *w, struct qb_linear *out, const char *name,
                               struct qb_err *err)
{
    enum qb_status st = qb_check_finite(w, out->rows, out->cols, name, err);
    if (st)
        return st;
    int group = qb_grp_group(&out->qp), bits = qb_grp_bits(out->fmt, &out->qp);
    int sym = out->fmt == QB_WFMT_INT4_SYM;
    int maxq = (1 << bits) - 1;
    int64_t ngroups = out->cols / group;
    for (int64_t r = 0; r < out->rows; r++) {
        for (int64_t g = 0; g < ngroups; g++) {
            const float *wg = w + r * out->cols + g * group;
            uint8_t *rec = grp_record(out, r, g, group, bits);
            struct qb_group_header h = {0};
            int zero;
            group_params_f16(wg, group, bits, sym, &h.scale_f16, &zero);
            h.zero = (uint8_t)zero;
            h.bits = (uint8_t)bits;
            memcpy(rec, &h, sizeof h);
            float s = qb_f16_to_f32(h.scale_f16);
            uint8_t *codes = rec + sizeof h;
            memset(codes, 0, (size_t)group * (size_t)bits / 8);
            for (int j = 0; j < group; j++) {
                float q = rintf(wg[j] / s) + (float)zero;
                put_code(codes, j, bits, (unsigned)fminf(fmaxf(q, 0.0f), (float)maxq));
            }
        }
    }
    return QB_OK;
}

static void read_header(const uint8_t *rec, float *scale, float *zero)
{
    struct qb_group_header h;
    memcpy(&h, rec, sizeof h);
    *scale = qb_f16_to_f32(h.scale_f16);
    *zero = (float)h.zero;
}

/* one group of codes, no act-order, into o[group] */
static void grp_decode(const uint8_t *rec, int group, int bits, float *o)
{
    const uint8_t *codes = rec + sizeof(struct qb_group_header);
    float s, z;
    read_header(rec, &s, &z);
    if (bits == 4) {
        for (int k = 0; k < group / 2; k++) {
            o[2 * k] = s * ((float)(codes[k] & 0xf) - z);
            o[2 * k + 1] = s * ((float)(codes[k] >> 4) - z);
        }
    } else if (bits == 8) {
        for (int j = 0; j < group; j++)
            o[j] = s * ((float)codes[j] - z);
    } else {
        for (int j = 0; j < group; j++)
            o[j] = s * ((float)qb_group_code(codes, j, bits) - z);
    }
}

void qb_grp_dequant_rows(const struct qb_linear *w, int64_t row0, int64_t n, float *out)
{
    int group = qb_grp_group(&w->qp), bits = qb_grp_bits(w->fmt, &w->qp);
    int64_t ngroups = w->cols / group;
    const int32_t *g_idx = w->qp.g_idx;
    for (int64_t r = 0; r < n; r++) {
        float *o = out + r * w->cols;
        for (int64_t g = 0; g < ngroups; g++) {
            const uint8_t *rec = grp_record(w, row0 + r, g, group, bits);
            if (!g_idx) {
                grp_decode(rec, group, bits, o + g * group);
                continue;
            }
            const uint8_t *codes = rec + sizeof(struct qb_group_header);
            for (int j = 0; j < group; j++) { /* act-order: parameters per column */
                int64_t c = g * group + j;
                float s, z;
                read_header(grp_record(w, row0 + r, g_idx[c], group, bits), &s, &z);
                o[c] = s * ((float)qb_group_code(codes, j, bits) - z);
            }
        }
    }
}

/* act-order: every column takes the parameters of its own group */
static float grp_dot_g_idx(const struct qb_linear *w, int64_t row, const float *x, int group,
                           int bits)
{
    float acc = 0.0f;
    for (int64_t c = 0; c < w->cols; c++) {
        const uint8_t *codes = grp_record(w, row, c / group, group, bits) +
                               sizeof(struct qb_group_header);
        float s, z;
        read_header(grp_record(w, row, w->qp.g_idx[c], group, bits), &s, &z);
        acc += s * ((float)qb_group_code(codes, (int)(c % group), bits) - z) * x[c];
    }
    return acc;
}

float qb_grp_vec_dot_ref(const struct qb_linear *w, int64_t row, const float *x)
{
    int group = qb_grp_group(&w->qp), bits = qb_grp_bits(w->fmt, &w->qp);
    if (w->qp.g_idx)
        return grp_dot_g_idx(w, row, x, group, bits);
    int64_t ngroups = w->cols / group;
    float acc = 0.0f;
    for (int64_t g = 0; g < ngroups; g++) {
        const uint8_t *rec = grp_record(w, row, g, group, bits);
        const uint8_t *codes = rec + sizeof(struct qb_group_header);
        float s, z, part = 0.0f;
        read_header(rec, &s, &z);
        for (int j = 0; j < group; j++)
            part += ((float)qb_group_code(codes, j, bits) - z) * x[g * group + j];
        acc += s * part;
    }
    return acc;
}

float qb_grp_vec_dot(const struct qb_linear *w, int64_t row, const float *x)
{
    int group = qb_grp_group(&w->qp), bits = qb_grp_bits(w->fmt, &w->qp);
    if (w->qp.g_idx || (bits != 4 && bits != 8))
        return qb_grp_vec_dot_ref(w, row, x);
    int64_t ngroups = w->cols / group;
    float acc = 0.0f;
    for (int64_t g = 0; g < ngroups; g++) {
        const uint8_t *rec = grp_record(w, row, g, group, bits);
        const uint8_t *codes = rec + sizeof(struct qb_group_header);
        const float *xg = x + g * group;
        float s, z;
        read_header(rec, &s, &z);
        if (bits == 4) {
            float lut[16];
            for (int k = 0; k < 16; k++)
                lut[k] = (float)k - z;
            acc += s * qb_simd_lut4_dot(codes, group, lut, xg, 0);
        } else {
            float sx = 0.0f;
            for (int j = 0; j < group; j++)
                sx += xg[j];
            acc += s * (qb_simd_u8_dot(codes, group, xg) - z * sx);
        }
    }
    return acc;
}

/* ====================== packing codes from GPTQ/AWQ ====================== */

static enum qb_status check_pack_inputs(int64_t rows, int64_t cols, enum qb_wfmt fmt, int group,
                                        int bits, const uint8_t *codes, const float *scales,
                                        const uint8_t *zeros, const char *name,
                                        struct qb_err *err)
{
    int maxq = (1 << bits) - 1;
    int64_t ngroups = cols / group;
    for (int64_t i = 0; i < rows * cols; i++) {
        if (codes[i] > maxq)
            return qb_err_set(err, QB_ERR_RANGE,
                              "tensor '%s': code %u at (%lld, %lld) exceeds the %d-bit range",
                              name, codes[i], (long long)(i / cols), (long long)(i % cols), bits);
    }
    for (int64_t i = 0; i < rows * ngroups; i++) {
        if (!isfinite(scales[i]) || scales[i] < 0.0f)
            return qb_err_set(err, QB_ERR_RANGE,
                              "tensor '%s': scale %g of group %lld of row %lld is not a finite "
                              "non-negative number",
                              name, (double)scales[i], (long long)(i % ngroups),
                              (long long)(i / ngroups));
        if (zeros[i] > maxq || (fmt == QB_WFMT_INT4_SYM && zeros[i] != 8))
            return qb_err_set(err, QB_ERR_RANGE,
                              "tensor '%s': zero point %u of group %lld of row %lld is invalid "
                              "for %s",
                              name, zeros[i], (long long)(i % ngroups), (long long)(i / ngroups),
                              qb_wfmt_get(fmt)->name);
    }
    return QB_OK;
}

enum qb_status qb_linear_pack_groups(int64_t rows, int64_t cols, enum qb_wfmt fmt,
                                     const struct qb_quant_params *qp, const uint8_t *codes,
                                     const float *scales, const uint8_t *zeros,
                                     const char *name, struct qb_linear *out,
                                     struct qb_err *err)
{
    enum qb_status st;
    memset(out, 0, sizeof *out);
    name = name ? name : "?";
    if (fmt != QB_WFMT_INT4 && fmt != QB_WFMT_INT4_SYM && fmt != QB_WFMT_UINT_G)
        return qb_err_set(err, QB_ERR_UNSUPPORTED,
                          "tensor '%s': packing codes needs int4, int4-sym or uint_g, not %s",
                          name, qb_wfmt_get(fmt)->name);
    st = qb_wfmt_check_shape(fmt, rows, cols, qp, name, err);
    if (st)
        return st;
    struct qb_quant_params p = qp ? *qp : (struct qb_quant_params){0};
    p.group = qb_grp_group(&p);
    p.bits = qb_grp_bits(fmt, &p);
    st = check_pack_inputs(rows, cols, fmt, p.group, p.bits, codes, scales, zeros, name, err);
    if (st)
        return st;
    size_t bytes = qb_grp_packed_bytes(rows, cols, &p);
    out->fmt = fmt;
    out->rows = rows;
    out->cols = cols;
    out->qp = p;
    out->owned = qb_aligned_alloc(bytes);
    if (p.g_idx)
        out->owned_g_idx = qb_malloc_array((size_t)cols, sizeof(int32_t));
    if (!out->owned || (p.g_idx && !out->owned_g_idx)) {
        qb_linear_release(out);
        return qb_err_set(err, QB_ERR_NOMEM, "cannot allocate %zu bytes for '%s'", bytes, name);
    }
    memset(out->owned, 0, bytes);
    out->data = out->owned;
    out->data_bytes = bytes;
    if (p.g_idx) {
        memcpy(out->owned_g_idx, p.g_idx, (size_t)cols * sizeof(int32_t));
        out->qp.g_idx = out->owned_g_idx;
    }
    int64_t ngroups = cols / p.group;
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t g = 0; g < ngroups; g++) {
            uint8_t *rec = grp_record(out, r, g, p.group, p.bits);
            struct qb_group_header h = {0};
            uint16_t sh = qb_f32_to_f16(scales[r * ngroups + g]);
            h.scale_f16 = (sh & 0x7fffu) >= 0x7c00u ? 0x7bff : sh;
            h.zero = zeros[r * ngroups + g];
            h.bits = (uint8_t)p.bits;
            memcpy(rec, &h, sizeof h);
            for (int j = 0; j < p.group; j++)
                put_code(rec + sizeof h, j, p.bits, codes[r * cols + g * p.group + j]);
        }
    }
    return QB_OK;
}
