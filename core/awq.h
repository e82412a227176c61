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
 * Clip search (auto_clip): per (row, group), shrink the range to max|w| (1 - i/20)
 * for i = 0 .. 9, clamp, quantize, and keep the shrink minimising the mean over
 * tokens of (sum over the group of x (q - w))^2 on at most 512 sampled tokens.
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
#define QB_AWQ_CLIP_TOKENS 512

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

/* Clip search on x[n][cols] (already subsampled): max_val[rows][cols/group]. */
enum qb_status qb_awq_clip_search(const float *w, int64_t rows, int64_t cols, int bits, int group,
                                  const float *x, int64_t n, struct qb_pool *pool, float *max_val,
                                  struct qb_err *err);
/* w = clamp(w, -max_val, max_val) per (row, group). */
void qb_awq_apply_clip(float *w, int64_t rows, int64_t cols, int group, const float *max_val);

#endif /* QB_AWQ_H */
