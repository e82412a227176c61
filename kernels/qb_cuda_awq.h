/*
 * qb_cuda_awq.h - the expensive parts of the AWQ search on the GPU: the trial
 * quantization of a scale candidate, the scale-search losses of the linear-only
 * groups (o, gate/up, down) and the clip/range search. The twin of core/awq.c
 * (the reference) as core/quant_pipeline.c's AWQ driver uses it; the driver
 * calls these when the backend resolves to CUDA and keeps the layer forwards
 * (the capture pass, the fp stream and q/k/v's whole-layer loss) on the CPU.
 *
 * A struct qb_cuda_awq holds a CUDA context (stream + cuBLAS) and grow-only
 * device buffers: one scaling group's search data (inputs, target, up to three
 * weights and two trials) and the range search's weights and Gram blocks.
 * Host arrays are row-major f32 unless said otherwise; groups of `group`
 * columns, group in {32, 64, 128} (QB_CUDA_AWQ_GROUP_OK), cols % group == 0.
 *
 * Trial (qb_cuda_awq_scaled_trial; inside the losses): one warp per (row, group),
 *   w' = Q(w s) / s with awq.h's quantizer: min/max of the group, scale =
 *   max(max - min, 1e-5) / maxq rounded to f16 (0 -> 2^-24), zero = clamp(-rint(min /
 *   scale)), code = clamp(rint(v / scale) + zero), value = scale (code - zero).
 *   Every operation is the CPU's, in IEEE f32 with explicit rounding (no FMA
 *   contraction), so the result is bit-exact to qb_awq_scaled_trial, except where
 *   v / scale or min / scale leaves the int range (a constant group of |w| > ~1400,
 *   whose C conversion is undefined and differs between x86 and arm64 already).
 *
 * Losses (qb_cuda_awq_loss) of a candidate s[cols] on n tokens, MSE in f64 over
 * n x out values against the target (out = rows of the last linear):
 *   QB_CUDA_AWQ_LINEAR  y = x (w0')^T                               (o, down)
 *   QB_CUDA_AWQ_MLP     y = (silu(x (w0')^T) * x (w1')^T) w2^T        (gate/up; w2 = down)
 * The products are cuBLAS SGEMMs with CUBLAS_COMPUTE_32F_PEDANTIC (f32, no TF32);
 * only their summation order differs from the CPU's qb_linear_matmul, and expf
 * differs by an ulp or two, so the losses agree to a relative ~1e-6 (the bound
 * tests/test_cuda_awq.c names) and the deterministic two-pass f64 MSE reduction
 * makes a loss the same bytes on every call.
 *
 * Range search (qb_cuda_awq_range_search): awq.h's qb_awq_range_search on the
 * diagonal blocks G_g of gram = h[a][b] / (s[a] s[b]) (h: the f64 Hessian; s the
 * input scales, NULL = 1), built on the host exactly as the CPU driver builds its
 * f32 blocks. One warp per (row, group), a block of warps per group shares G_g
 * (transposed, in shared memory). Per candidate the clamp and quantizer are
 * bit-exact to the CPU, t = G_g d is summed in f32 in the CPU's order, and only
 * d^T t (f64) is summed in another order: losses agree to ~1e-15 relative, so a
 * (lo, hi) can differ from the CPU's only between candidates whose losses tie
 * to that precision (the first one in the CPU's order wins ties).
 *
 * Every entry returns enum qb_status (QB_ERR_CUDA naming the failing call,
 * QB_ERR_NOMEM for device memory, QB_ERR_UNSUPPORTED for a group the kernels do
 * not take). Every entry exists in every build; without CUDA they answer
 * QB_ERR_NO_DEVICE (awq_cuda_stub.c).
 */
#ifndef QB_CUDA_AWQ_H
#define QB_CUDA_AWQ_H

#include <stddef.h>
#include <stdint.h>

#include "awq.h"
#include "qb_common.h"

#ifdef __cplusplus
extern "C" {
#endif

#define QB_CUDA_AWQ_MAX_GROUP 128
#define QB_CUDA_AWQ_GROUP_OK(g) ((g) >= 32 && (g) <= QB_CUDA_AWQ_MAX_GROUP && (g) % 32 == 0)

struct qb_cuda_awq;

enum qb_cuda_awq_loss_kind {
    QB_CUDA_AWQ_LINEAR, /* one linear (weight 0) */
    QB_CUDA_AWQ_MLP,    /* gate (0) and up (1) trials, down (2) as is */
};

/* A context on device 0 (QB_ERR_NO_DEVICE without a GPU). */
enum qb_status qb_cuda_awq_create(struct qb_cuda_awq **out, struct qb_err *err);
void qb_cuda_awq_free(struct qb_cuda_awq *a); /* NULL-safe */
/* Name of the device ("NVIDIA H100 80GB HBM3"). */
const char *qb_cuda_awq_device_name(const struct qb_cuda_awq *a);
/* Most device memory seen in use (cudaMemGetInfo total - free) after the allocations so far. */
size_t qb_cuda_awq_peak_bytes(const struct qb_cuda_awq *a);

/* out[rows][cols] = Q(w diag(s)) / s (host in and out; for tests). */
enum qb_status qb_cuda_awq_scaled_trial(struct qb_cuda_awq *a, const float *w, int64_t rows,
                                        int64_t cols, int bits, int group, const float *s,
                                        float *out, struct qb_err *err);

/* A scaling group's search data: inputs x[n][cols] and target[n][out] (copied). */
enum qb_status qb_cuda_awq_set_inputs(struct qb_cuda_awq *a, const float *x, int64_t n,
                                      int64_t cols, const float *target, int64_t out,
                                      struct qb_err *err);
/* Weight k (0..2) of the group: w[rows][cols] (copied). */
enum qb_status qb_cuda_awq_set_weight(struct qb_cuda_awq *a, int k, const float *w,
                                      int64_t rows, int64_t cols, struct qb_err *err);
/* *loss = MSE of candidate s[cols] (see the top comment). Shapes must chain: LINEAR
 * w0 [out][cols]; MLP w0, w1 [I][cols], w2 [out][I]. */
enum qb_status qb_cuda_awq_loss(struct qb_cuda_awq *a, enum qb_cuda_awq_loss_kind kind,
                                const float *s, int bits, int group, double *loss,
                                struct qb_err *err);

/* qb_awq_range_search of w[rows][cols] on gram = h / (s s^T) (h f64 [cols][cols], s[cols]
 * or NULL): lo, hi [rows][cols / group] (host out). */
enum qb_status qb_cuda_awq_range_search(struct qb_cuda_awq *a, const float *w, int64_t rows,
                                        int64_t cols, int bits, int group, const double *h,
                                        const float *s, const struct qb_awq_range_opts *o,
                                        float *lo, float *hi, struct qb_err *err);

#ifdef __cplusplus
}
#endif

#endif /* QB_CUDA_AWQ_H */
