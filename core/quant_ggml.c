/*
 * quant_ggml.c - the QB_WFMT_GGML traits entry: a linear layer whose rows are
 * stored as ggml blocks of one type (qp.ggml_type: q8_0, q4_K, f16, ...), as
 * GGUF files hold them. Each row is qb_ggml_row_bytes(type, cols) bytes and
 * rows follow each other, so a [rows][cols] payload is exactly the tensor
 * data of a GGUF tensor with ne = {cols, rows}.
 *
 * Quantize, dequantize and the fused dot are llama.cpp's reference
 * quantizers and dequantizers from ggml_quants.c (bit-exact); vec_dot uses
 * its SIMD row dot, vec_dot_ref the plain C one. The F16 rounding llama.cpp's
 * HF->GGUF conversion applies first is the caller's job (gguf_model.c).
 */
#include <string.h>

#include "ggml_quants.h"
#include "quant_impl.h"

static size_t row_bytes(const struct qb_linear *w)
{
    return qb_ggml_row_bytes(w->qp.ggml_type, w->cols);
}

size_t qb_ggmlw_packed_bytes(int64_t rows, int64_t cols, const struct qb_quant_params *p)
{
    return (size_t)rows * qb_ggml_row_bytes(p ? p->ggml_type : QB_GGML_F32, cols);
}

enum qb_status qb_ggmlw_quantize(const float *w, struct qb_linear *out, const char *name,
                                struct qb_err *err)
{
    enum qb_status st = qb_check_finite(w, out->rows, out->cols, name, err);
    if (st)
        return st;
    const struct qb_ggml_type_info *ti = qb_ggml_type_info(out->qp.ggml_type);
    if (!ti || !ti->can_quantize)
        return qb_err_set(err, QB_ERR_UNSUPPORTED, "tensor '%s': ggml type %d cannot be "
                          "quantized here", name, out->qp.ggml_type);
    size_t rb = row_bytes(out);
    uint8_t *dst = out->owned;
    for (int64_t r = 0; r < out->rows; r++) {
        if (qb_ggml_quantize_row(out->qp.ggml_type, w + r * out->cols, dst + (size_t)r * rb,
                                 out->cols) != 0)
            return qb_err_set(err, QB_ERR_UNSUPPORTED, "tensor '%s': %s rows of %lld do not "
                              "fit its block", name, ti->name, (long long)out->cols);
    }
    return QB_OK;
}

void qb_ggmlw_dequant_rows(const struct qb_linear *w, int64_t row0, int64_t n, float *out)
{
    size_t rb = row_bytes(w);
    const uint8_t *src = w->data;
    for (int64_t r = 0; r < n; r++)
        qb_ggml_dequantize_row(w->qp.ggml_type, src + (size_t)(row0 + r) * rb,
                               out + r * w->cols, w->cols);
}

float qb_ggmlw_vec_dot(const struct qb_linear *w, int64_t row, const float *x)
{
    const uint8_t *src = w->data;
    return qb_ggml_vec_dot(w->qp.ggml_type, src + (size_t)row * row_bytes(w), x, w->cols);
}

float qb_ggmlw_vec_dot_ref(const struct qb_linear *w, int64_t row, const float *x)
{
    const uint8_t *src = w->data;
    return qb_ggml_vec_dot_ref(w->qp.ggml_type, src + (size_t)row * row_bytes(w), x, w->cols);
}
