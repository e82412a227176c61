/*
 * fuzz_quant.c - libFuzzer entry point for the quantizers and scheme parser.
 *
 * Input layout: byte 0 picks the format, byte 1 the group (32/64/128) and
 * bits, bytes 2..3 the column count (rounded to a multiple of 128), the rest
 * is raw fp32 weights (NaN, Inf, subnormals and huge values included) and a
 * NUL-terminated scheme name at the end. Quantize, dequantize and every dot
 * product must either succeed with finite output or fail with an error line;
 * never crash or read out of bounds.
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "quant.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_scheme(const uint8_t *data, size_t size)
{
    char name[40];
    size_t n = size < sizeof name - 1 ? size : sizeof name - 1;
    memcpy(name, data, n);
    name[n] = 0;
    struct qb_scheme s;
    struct qb_err err;
    int group = size ? (int)data[0] - 64 : 0;
    if (qb_scheme_parse(name, group, &s, &err) == QB_OK)
        (void)qb_scheme_hw_support(&s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 4)
        return 0;
    fuzz_scheme(data + 4, size - 4);
    enum qb_wfmt fmt = (enum qb_wfmt)(data[0] % QB_WFMT_GGML);
    static const int groups[] = {32, 64, 128}, bits[] = {2, 3, 4, 8};
    struct qb_quant_params qp = {.group = groups[data[1] % 3], .bits = bits[(data[1] >> 2) % 4]};
    int64_t cols = 128 * (1 + (data[2] % 4));
    size_t nw = (size - 4) / sizeof(float);
    int64_t rows = (int64_t)nw / cols;
    if (rows < 1 || rows > 64)
        return 0;
    float *w = malloc((size_t)(rows * cols) * sizeof(float));
    float *d = malloc((size_t)(rows * cols) * sizeof(float));
    memcpy(w, data + 4, (size_t)(rows * cols) * sizeof(float));
    struct qb_linear l;
    struct qb_err err;
    if (qb_linear_quantize(w, rows, cols, fmt, &qp, "fuzz", &l, &err) == QB_OK) {
        const struct qb_wfmt_traits *t = qb_wfmt_get(fmt);
        t->dequant_rows(&l, 0, rows, d);
        for (int64_t r = 0; r < rows; r++) {
            (void)t->vec_dot(&l, r, w);
            (void)t->vec_dot_ref(&l, r, w);
        }
        for (int64_t i = 0; i < rows * cols; i++) {
            if (!isfinite(d[i]) && fmt != QB_WFMT_F32)
                abort(); /* finite input must never dequantize to NaN/Inf */
        }
        qb_linear_release(&l);
    }
    qb_act_quantize_rows((enum qb_act_mode)(data[3] % 4), w, rows, cols, d);
    free(w);
    free(d);
    return 0;
}
