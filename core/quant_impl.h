/*
 * quant_impl.h - private glue between quant.c (traits table, schemes, linear
 * lifecycle) and the format modules core/quant_<fmt>.c. Not a public header.
 *
 * Each module exports, per format F, the five functions of a traits entry:
 *   size_t qb_F_packed_bytes(rows, cols, params)
 *   enum qb_status qb_F_quantize(w, out, name, err)    (reference quantizer)
 *   void qb_F_dequant_rows(w, row0, n, out)             (reference dequantizer)
 *   float qb_F_vec_dot(w, row, x)                       (fused, SIMD dispatch)
 *   float qb_F_vec_dot_ref(w, row, x)                   (fused, plain C)
 */
#ifndef QB_QUANT_IMPL_H
#define QB_QUANT_IMPL_H

#include "quant.h"

#define QB_DECLARE_WFMT_FNS(F)                                                             \
    size_t qb_##F##_packed_bytes(int64_t rows, int64_t cols, const struct qb_quant_params *p); \
    enum qb_status qb_##F##_quantize(const float *w, struct qb_linear *out, const char *name, \
                                     struct qb_err *err);                                  \
    void qb_##F##_dequant_rows(const struct qb_linear *w, int64_t row0, int64_t n, float *out); \
    float qb_##F##_vec_dot(const struct qb_linear *w, int64_t row, const float *x);        \
    float qb_##F##_vec_dot_ref(const struct qb_linear *w, int64_t row, const float *x)

QB_DECLARE_WFMT_FNS(int8);      /* quant_int.c */
QB_DECLARE_WFMT_FNS(grp);       /* quant_int.c: INT4 / INT4_SYM / UINT_G records */
QB_DECLARE_WFMT_FNS(nf4);       /* quant_nf4.c */
QB_DECLARE_WFMT_FNS(nf4dq);     /* quant_nf4.c */
QB_DECLARE_WFMT_FNS(fp8);       /* quant_fp8.c: E4M3 and E5M2 (by w->fmt) */
QB_DECLARE_WFMT_FNS(nvfp4);     /* quant_fp4.c */
QB_DECLARE_WFMT_FNS(mxfp4);     /* quant_fp4.c */
QB_DECLARE_WFMT_FNS(ggmlw);     /* quant_ggml.c: QB_WFMT_GGML (type in qp.ggml_type) */

/* QB_ERR_NUMERIC naming the tensor and the (row, col) of the first NaN/Inf. */
enum qb_status qb_check_finite(const float *w, int64_t rows, int64_t cols, const char *name,
                               struct qb_err *err);

/* Effective group size / bits of the group formats (defaults applied). */
int qb_grp_group(const struct qb_quant_params *p);
int qb_grp_bits(enum qb_wfmt fmt, const struct qb_quant_params *p);

/* NVFP4 global scale 448*6/amax (1 for amax 0, at most FLT_MAX). */
float qb_nvfp4_global_scale(float amax);
/* NVFP4 activation/weight block: quantize n (<= 16) values with global scale g into
 * E2M1 codes (low 4 bits) and return the E4M3 scale code. */
uint8_t qb_nvfp4_block_encode(const float *x, int n, float g, uint8_t *codes);
/* MXFP4 block: n (<= 32) values into E2M1 codes; returns the E8M0 scale. */
uint8_t qb_mxfp4_block_encode(const float *x, int n, uint8_t *codes);

#endif /* QB_QUANT_IMPL_H */
