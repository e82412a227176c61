/*
 * gptq.h - GPTQ (Frantar et al. 2022) on f32 matrices, as IST-DASLab gptq.py and
 * AutoGPTQ implement it, plus the integer-group result both GPTQ and AWQ produce.
 *
 * Per linear W[rows][cols] (y = x W^T) with calibration inputs X[n][cols]:
 *   H = 2 X^T X / n                     (struct qb_hessian, accumulated in f64)
 *   dead columns (H_ii = 0): H_ii = 1 and W[:, i] = 0
 *   act-order: columns sorted by descending H_ii (perm; g_idx[c] = group of c)
 *   H += damp * mean(diag H) * I;  U = upper Cholesky factor of H^-1
 *   for column blocks of 128 (lazy batch updates), for each column i:
 *     group start (non-static): find scale/zero on the current W[:, i:i+G]
 *     q = quantize(w_i); err = (w_i - q) / U_ii; W[:, i+1:] -= err * U[i, i+1:]
 * Rows are independent given U, so the pool splits the rows; within a row the
 * order of operations is fixed, so results do not depend on the thread count.
 *
 * Quantizer (gptq.py's Quantizer, weight mode, per row and group):
 *   xmin = min(0, min w), xmax = max(0, max w) (sym: xmax = max(|xmin|, xmax),
 *   xmin = -xmax); both 0 -> [-1, 1]; scale = (xmax - xmin) / maxq rounded to
 *   f16 (the stored precision, so error feedback sees the stored weights);
 *   zero = round(-xmin / scale) (sym: (maxq + 1) / 2), clamped to [0, maxq];
 *   code = clamp(round(w / scale) + zero, 0, maxq); w^ = scale * (code - zero).
 *
 * Reconstruction error reported per linear: ||W X^T - W^ X^T||^2 / n, i.e. the
 * squared output error per calibration token, = 1/2 sum_r d_r^T H d_r.
 */
#ifndef QB_GPTQ_H
#define QB_GPTQ_H

#include <stdint.h>

#include "qb_common.h"
#include "threadpool.h"

#define QB_GPTQ_BLOCK 128
#define QB_GPTQ_DEFAULT_DAMP 0.01

/* An integer-group quantized linear (GPTQ or AWQ output, before packing). */
struct qb_qresult {
    int64_t rows, cols;
    int bits;          /* 2, 3, 4, 8 */
    int group;         /* columns per group; cols % group == 0 */
    int sym;           /* zero fixed at (maxq + 1) / 2 */
    uint8_t *codes;    /* [rows][cols], original column order */
    float *scales;     /* [rows][cols / group], exactly f16-representable */
    uint8_t *zeros;    /* [rows][cols / group] */
    int32_t *g_idx;    /* [cols] group of each column (act-order), or NULL: c / group */
};

enum qb_status qb_qresult_alloc(struct qb_qresult *r, int64_t rows, int64_t cols, int bits,
                                int group, int sym, int with_g_idx, struct qb_err *err);
void qb_qresult_free(struct qb_qresult *r); /* NULL-safe; zeroes */
/* w[rows][cols] = scale * (code - zero). */
void qb_qresult_dequant(const struct qb_qresult *r, float *w);
/* Group of column c. */
static inline int64_t qb_qresult_group_of(const struct qb_qresult *r, int64_t c)
{
    return r->g_idx ? r->g_idx[c] : c / r->group;
}
/* Check bits (2/3/4/8) and group (multiple of 8 dividing cols). */
enum qb_status qb_qresult_check_shape(int64_t cols, int bits, int group, struct qb_err *err);

/* ---- Hessian accumulation ---- */
struct qb_hessian {
    int64_t cols;
    int64_t n;        /* tokens accumulated */
    double *sum;      /* [cols][cols] sum over tokens of x x^T (only while accumulating) */
};

enum qb_status qb_hessian_init(struct qb_hessian *h, int64_t cols, struct qb_err *err);
/* sum += X^T X for x[n][cols] (f32 products per call, accumulated in f64). */
enum qb_status qb_hessian_add(struct qb_hessian *h, const float *x, int64_t n,
                              struct qb_pool *pool, struct qb_err *err);
/* H = 2 sum / n into out[cols][cols] (f64). */
void qb_hessian_finish(const struct qb_hessian *h, double *out);
void qb_hessian_free(struct qb_hessian *h);

/* ---- dense linear algebra (f64, row-major n x n) ---- */
/* In-place lower Cholesky factor (upper triangle zeroed); QB_ERR_NUMERIC if not PD. */
enum qb_status qb_cholesky_lower(double *a, int64_t n, struct qb_pool *pool, struct qb_err *err);
/* out = upper Cholesky factor U of inverse(a) (a SPD), a is overwritten. */
enum qb_status qb_cholesky_inverse_upper(double *a, int64_t n, double *out, struct qb_pool *pool,
                                         struct qb_err *err);

/* ---- GPTQ ---- */
struct qb_gptq_opts {
    int bits;          /* 2, 3, 4, 8 */
    int group;         /* columns per group */
    int sym;
    int act_order;
    int static_groups;
    double damp;       /* fraction of the mean diagonal; 0 -> QB_GPTQ_DEFAULT_DAMP */
};

/* Quantize w[rows][cols] with Hessian h[cols][cols] (2 X^T X / n, not modified).
 * Fills *out (allocated here) and, when deq is non-NULL, deq[rows][cols] with the
 * dequantized weights. A Hessian that stays non-PD after damping is retried with
 * 10x damping (up to 4 times) before failing with QB_ERR_NUMERIC. */
enum qb_status qb_gptq_quantize(const float *w, int64_t rows, int64_t cols, const double *h,
                                const struct qb_gptq_opts *o, struct qb_pool *pool,
                                struct qb_qresult *out, float *deq, struct qb_err *err);

/* Round-to-nearest with the same quantizer (the baseline GPTQ is compared with). */
enum qb_status qb_rtn_group_quantize(const float *w, int64_t rows, int64_t cols, int bits,
                                     int group, int sym, struct qb_qresult *out, float *deq,
                                     struct qb_err *err);

/* ||(W - W^) X^T||^2 / n = 1/2 sum_r d_r^T H d_r with d = w - deq. */
double qb_recon_error(const float *w, const float *deq, int64_t rows, int64_t cols,
                      const double *h, struct qb_pool *pool);

#endif /* QB_GPTQ_H */
