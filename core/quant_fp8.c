/*
 * quant_fp8.c - FP8 weights with one fp32 scale per output row: E4M3 (the
 * `fp8` scheme, max 448) and E5M2 (`fp8-e5m2`, max 57344).
 *
 *   [ f32 scale[R] ][ fp8 code[R][C] ]        w = scale[r] * value(code)
 *
 * scale = max|w_row| / FP8_MAX, code = fp8(w / scale) rounded to nearest even
 * and saturated (CUDA __NV_SATFINITE semantics; see fp_formats.c). An all-zero
 * row stores scale 0 and zero codes. This is the compressed-tensors
 * "FP8_DYNAMIC" weight layout (weight F8 [out, in] + weight_scale F32 [out, 1]).
 */
#include <math.h>

#include "fp_formats.h"
#include "quant_impl.h"
#include "quant_simd.h"

static int is_e5m2(const struct qb_linear *w)
{
    return w->fmt == QB_WFMT_FP8_E5M2;
}

static float fp8_decode(uint8_t c, int e5m2)
{
    return e5m2 ? qb_e5m2_to_f32(c) : qb_e4m3_to_f32(c);
}

static const uint8_t *fp8_row(const struct qb_linear *w, int64_t row)
{
    return (const uint8_t *)w->data + (size_t)w->rows * 4 + (size_t)row * (size_t)w->cols;
}

static float fp8_scale(const struct qb_linear *w, int64_t row)
{
    return ((const float *)w->data)[row];
}

size_t qb_fp8_packed_bytes(int64_t rows, int64_t cols, const struct qb_quant_params *p)
{
    (void)p;
    return (size_t)rows * 4 + (size_t)rows * (size_t)cols;
}

enum qb_status qb_fp8_quantize(const float *w, struct qb_linear *out, const char *name,
                               struct qb_err *err)
{
    enum qb_status st = qb_check_finite(w, out->rows, out->cols, name, err);
    if (st)
        return st;
    int e5m2 = is_e5m2(out);
    float fmax = e5m2 ? QB_E5M2_MAX : QB_E4M3_MAX;
    float *scales = out->owned;
    uint8_t *q = (uint8_t *)out->owned + (size_t)out->rows * 4;
    for (int64_t r = 0; r < out->rows; r++) {
        const float *wr = w + r * out->cols;
        uint8_t *qr = q + r * out->cols;
        float amax = 0.0f;
        for (int64_t c = 0; c < out->cols; c++)
            amax = fmaxf(amax, fabsf(wr[c]));
        float scale = amax / fmax;
        scales[r] = scale;
        for (int64_t c = 0; c < out->cols; c++) {
            float v = scale > 0.0f ? wr[c] / scale : 0.0f;
            qr[c] = e5m2 ? qb_e5m2_from_f32(v) : qb_e4m3_from_f32(v);
        }
    }
    return QB_OK;
}

void qb_fp8_dequant_rows(const struct qb_linear *w, int64_t row0, int64_t n, float *out)
{
    int e5m2 = is_e5m2(w);
    float table[256]; /* every code decoded once per call */
    for (int c = 0; c < 256; c++)
        table[c] = fp8_decode((uint8_t)c, e5m2);
    for (int64_t r = 0; r < n; r++) {
        const uint8_t *q = fp8_row(w, row0 + r);
        float s = fp8_scale(w, row0 + r);
        for (int64_t c = 0; c < w->cols; c++)
            out[r * w->cols + c] = s * table[q[c]];
    }
}

float qb_fp8_vec_dot_ref(const struct qb_linear *w, int64_t row, const float *x)
{
    int e5m2 = is_e5m2(w);
    const uint8_t *q = fp8_row(w, row);
    float acc = 0.0f;
    for (int64_t c = 0; c < w->cols; c++)
        acc += fp8_decode(q[c], e5m2) * x[c];
    return acc * fp8_scale(w, row);
}

float qb_fp8_vec_dot(const struct qb_linear *w, int64_t row, const float *x)
{
    return qb_simd_fp8_dot(fp8_row(w, row), w->cols, x, is_e5m2(w)) * fp8_scale(w, row);
}
