/*
 * awq.h - AWQ (Lin et al. 2023) building blocks on f32 matrices, as AutoAWQ's
 * quantizer.py / llm-awq's auto_scale.py and auto_clip.py define them. The
 * per-layer orchestration (which linears share a scale, which module's output
 * the search inspects) lives in quant_pipeline.c, because it runs the model.
 *
 * Statistics for a scaling group (linears sharing one input, W = rows of all
 * of them stacked, [cols] input channels):
 *   x_mean[c] = mean over tokens of |x[:, c]|
 *   w_mean[c] = mean over rows of |w[r][c]| / max |w| in (r, group of c)
 * Scale candidates, ratio = i / n_grid for i = 0 .. n_grid-1 (duo scaling):
 *   s = max(x_mean^ratio / (w_mean^(1-ratio) + 1e-4), 1e-4)
 *   s = s / sqrt(max(s) * min(s)); non-finite entries -> 1
 * The caller's loss function applies W <- Q(W diag(s)) / s to the group and
 * returns the inspected module's output MSE; the smallest loss wins (the first
 * one on ties). ratio 0 with x_mean = w_mean = const gives s = 1 (plain RTN).
 *
 * Quantizer (pseudo_quantize_tensor, zero point), per row and group of G:
 *   scale = max(max - min, 1e-5) / maxq rounded to f16; zero = clamp(-round(min /
 *   scale), 0, maxq); code = clamp(round(w / scale) + zero, 0, maxq).
 *
 * Clip search, two forms of one loss, per (row, group) of G: the shrink of the
 * range minimising the mean over tokens of (sum over the group of x (q - w))^2,
 * q = Q(clamp(w, range)).
 *   - qb_awq_range_search (what quant_pipeline.c uses): the loss as d^T H_g d
 *     with H_g the group's diagonal block of the inputs' Hessian 2 X^T X / n, so
 *     every calibration token counts at G*G per candidate instead of n*G; and
 *     asymmetric: the quantizer has a zero point, so the low end min(w, 0) and
 *     the high end max(w, 0) shrink separately, by i/20 and k/20 for i, k = 0 .. 9
 *     (100 candidates). On the demo model this alone takes AWQ from 65.5 % to
 *     56.9 % of RTN's perplexity increase, 37.5 % with AWQ's other changes
 *     (quant_pipeline.h); the symmetric grid on the Hessian: 55.2 % instead.
 *   - qb_awq_clip_search: AutoAWQ's auto_clip on given tokens, range +-max|w|
 *     (1 - i/20) for i = 0 .. 9; the plain reference of the range search's
 *     symmetric mode (test_awq checks they agree).
 */
#ifndef QB_AWQ_H
#define QB_AWQ_H

#include <stdint.h>

#include "gptq.h"
#include "qb_common.h"
#include "threadpool.h"

#define QB_AWQ_N_GRID 20
#define QB_AWQ_CLIP_GRID 20
#define QB_AWQ_CLIP_MAX_SHRINK 0.5

/* out[cols] = x_mean given the running sums of |x| over n tokens. */
void qb_awq_abs_sum_add(double *abs_sum, const float *x, int64_t n, int64_t cols);

/* w_mean over a stack of linears w[k] (rows[k] x cols each), groups of `group`. */
void qb_awq_weight_mean(const float *const *w, const int64_t *rows, int n_lin, int64_t cols,
                        int group, float *w_mean);

/* Scale candidate for ratio (see above) into s[cols]. */
void qb_awq_scales_for_ratio(const float *x_mean, const float *w_mean, int64_t cols,
                             double ratio, float *s);

/* Returns the loss of candidate scales s[cols]; < 0 or NaN aborts the search. */
typedef double (*qb_awq_loss_fn)(void *ctx, const float *s);

/* Grid search: best scales into best[cols]; *best_ratio and *best_loss set. */
enum qb_status qb_awq_search_scales(const float *x_mean, const float *w_mean, int64_t cols,
                                    int n_grid, qb_awq_loss_fn loss, void *ctx, float *best,
                                    double *best_ratio, double *best_loss, struct qb_err *err);

/* In place: w <- dequant(quant(w)) with the AWQ quantizer. */
void qb_awq_pseudo_quantize(float *w, int64_t rows, int64_t cols, int bits, int group);

/* w[rows][cols] <- Q(w diag(s)) / s (the search's trial weights). */
void qb_awq_scaled_trial(float *w, int64_t rows, int64_t cols, int bits, int group,
                         const float *s);

/* Final quantization into a result (and deq[rows][cols] when non-NULL). */
enum qb_status qb_awq_quantize(const float *w, int64_t rows, int64_t cols, int bits, int group,
                               struct qb_qresult *out, float *deq, struct qb_err *err);

/* AutoAWQ's clip search on x[n][cols]: max_val[rows][cols/group] (reference form). */
enum qb_status qb_awq_clip_search(const float *w, int64_t rows, int64_t cols, int bits, int group,
                                  const float *x, int64_t n, struct qb_pool *pool, float *max_val,
                                  struct qb_err *err);
/* w = clamp(w, -max_val, max_val) per (row, group). */
void qb_awq_apply_clip(float *w, int64_t rows, int64_t cols, int group, const float *max_val);

struct qb_awq_range_opts {
    int grid;                     /* shrink step 1/grid */
    int steps;                    /* shrinks i/grid for i = 0 .. steps-1 */
    int asym;                     /* search min and max shrinks separately */
};

/* Range search on a Gram matrix gram[cols][cols] of the inputs in w's basis (e.g. the
 * Hessian 2 X^T X / n): per (row, group) the range [lo, hi] minimising d^T G_g d, G_g the
 * group's diagonal block, d = Q(clamp(w, lo, hi)) - w. asym: lo = min(w,0) (1 - i/grid),
 * hi = max(w,0) (1 - k/grid) over all (i, k); else hi = -lo = max|w| (1 - i/grid).
 * lo, hi: [rows][cols/group]. */
enum qb_status qb_awq_range_search(const float *w, int64_t rows, int64_t cols, int bits,
                                   int group, const double *gram,
                                   const struct qb_awq_range_opts *o, struct qb_pool *pool,
                                   float *lo, float *hi, struct qb_err *err);
/* w = clamp(w, lo, hi) per (row, group). */
void qb_awq_apply_range(float *w, int64_t rows, int64_t cols, int group, const float *lo,
                        const float *hi);

#endif /* QB_AWQ_H */
