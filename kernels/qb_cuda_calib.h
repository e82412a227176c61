/*
 * qb_cuda_calib.h - calibration on the GPU: one decoder layer at a time on the
 * device, input Hessians through cuBLAS, and GPTQ with the Cholesky factor from
 * cuSOLVER and the column loop and lazy block updates on the GPU. The twin of
 * core/gptq.c (the reference) and of the CPU side of core/quant_pipeline.c.
 *
 * A struct qb_cuda_calib holds a CUDA context (stream + cuBLAS), a cuSOLVER
 * handle, the calibration activations x [n_samples][seqlen][hidden] (f32, on the
 * device only), the device copy of ONE decoder layer (weights, norms, a KV cache
 * of seqlen positions), one Hessian accumulator, and the last Hessian-inverse
 * factor (reused while the Hessian and the options do not change: q, k and v
 * share one). Peak device memory is about one layer + the activations + two
 * cols x cols f64 matrices (down: 2 x 1.6 GB for the Llama-3.1-8B shape).
 *
 * Layer forward (per sample, as engine_cuda.cu's prefill: bf16 linear inputs,
 * f32 residual stream, positions 0..seqlen-1):
 *   x -rmsnorm-> a [q,k,v input] -> qkv -rope/cache-> attention -> a [o input]
 *   -> x += o a -rmsnorm-> a [gate,up input] -> swiglu -> a2 [down input]
 *   -> x += down a2
 * With capture = a slot, the bf16 input of that linear is added to the Hessian
 * (sum += X^T X: cuBLAS bf16 x bf16 products (exact in f32) summed in f32 over the
 * sample's tokens, then added to an f64 sum, as qb_hessian_add adds one call's f32
 * Gram matrix to its f64 sum) and, unless in_place, the pass stops there on a
 * copy of the sample; in_place = 1 runs the whole layer and overwrites x.
 *
 * GPTQ (qb_cuda_gptq_quantize) follows qb_gptq_quantize step by step: dead
 * columns, act-order permutation and mean diagonal on the host (the same qsort
 * and sums), damped permuted H on the device, cusolverDnDpotrf + Dpotri + Dpotrf
 * in f64 (retried with 10x damping, up to 4 times, when not positive definite),
 * the upper factor in f32; then per 128-column block one warp per row quantizes
 * the block's columns in order (gptq.py's quantizer, f16 scales) and a cuBLAS
 * f32 GEMM (no TF32) applies the lazy update W[:, end:] -= Err U[block, end:].
 * Rounding differs from the CPU only in summation order (cuSOLVER's Cholesky, the
 * GEMM), so a few codes can flip on near-ties; tests/test_cuda_gptq.c names the
 * bound. The reconstruction errors 1/2 sum_r d_r^T H d_r of the result and of RTN
 * on the same grid are computed on the device in f64 (DGEMM).
 *
 * Every entry returns enum qb_status (QB_ERR_CUDA naming the failing call,
 * QB_ERR_NUMERIC for a Hessian that stays indefinite, QB_ERR_NOMEM for device
 * memory). Entries exist only when QB_HAVE_CUDA is defined, except
 * qb_cuda_calib_check.
 */
#ifndef QB_CUDA_CALIB_H
#define QB_CUDA_CALIB_H

#include <stddef.h>
#include <stdint.h>

#include "gptq.h"
#include "model.h"
#include "qb_common.h"

#ifdef __cplusplus
extern "C" {
#endif

/* QB_OK when the GPU calibration path takes model m (head_dim 64/128/256, sizes
 * divisible by 8, hidden <= 8192, whole GQA groups, seqlen <= 65535) and a GPU is
 * present; otherwise QB_ERR_NO_DEVICE / QB_ERR_UNSUPPORTED saying why. Every build. */
enum qb_status qb_cuda_calib_check(const struct qb_model *m, int seqlen, struct qb_err *err);

#ifdef QB_HAVE_CUDA

struct qb_cuda_calib;

/* A calibration context for model m (borrowed; must outlive it) with n_samples
 * windows of seqlen tokens. m = NULL: Hessians and GPTQ only (no layer forward). */
enum qb_status qb_cuda_calib_create(const struct qb_model *m, int n_samples, int seqlen,
                                    struct qb_cuda_calib **out, struct qb_err *err);
void qb_cuda_calib_free(struct qb_cuda_calib *c); /* NULL-safe */

/* Name of the device ("NVIDIA H100 80GB HBM3"). */
const char *qb_cuda_calib_device_name(const struct qb_cuda_calib *c);
/* Most device memory seen in use (cudaMemGetInfo total - free, bytes) at the
 * peaks of the calls so far: this process plus anything else on the GPU. */
size_t qb_cuda_calib_peak_bytes(const struct qb_cuda_calib *c);

/* x[sample] = embedding rows of ids[seqlen] (QB_ERR_RANGE for an id outside the vocab). */
enum qb_status qb_cuda_calib_embed(struct qb_cuda_calib *c, int sample, const int32_t *ids,
                                   struct qb_err *err);
/* Upload decoder layer `layer` of the model (its linears as they are now, norms),
 * replacing the previous one. */
enum qb_status qb_cuda_calib_load_layer(struct qb_cuda_calib *c, int layer, struct qb_err *err);
/* Re-upload one linear of the loaded layer from the model (after it was quantized). */
enum qb_status qb_cuda_calib_reload_linear(struct qb_cuda_calib *c, enum qb_linear_slot slot,
                                           struct qb_err *err);
/* Run x[sample] through the loaded layer (see the top comment). capture: a slot
 * whose input is added to the Hessian (begun with that input's width), or -1. */
enum qb_status qb_cuda_calib_forward(struct qb_cuda_calib *c, int sample, int capture,
                                     int in_place, struct qb_err *err);
/* The activations of one sample, f32 [seqlen][hidden] (host out). For tests. */
enum qb_status qb_cuda_calib_get_x(struct qb_cuda_calib *c, int sample, float *out,
                                   struct qb_err *err);

/* ---- the Hessian accumulator ---- */
/* Start a new Hessian of cols x cols (sum = 0, n = 0). */
enum qb_status qb_cuda_hessian_begin(struct qb_cuda_calib *c, int64_t cols, struct qb_err *err);
/* sum += X^T X for x bf16 [n][cols] in HOST memory (tests; the forward adds its own). */
enum qb_status qb_cuda_hessian_add_bf16(struct qb_cuda_calib *c, const uint16_t *x, int64_t n,
                                        struct qb_err *err);
/* H = 2 sum / n (in place, f64 on the device). */
enum qb_status qb_cuda_hessian_finish(struct qb_cuda_calib *c, struct qb_err *err);
/* Replace the Hessian by a finished host one h[cols][cols] (f64). */
enum qb_status qb_cuda_hessian_set(struct qb_cuda_calib *c, const double *h, int64_t cols,
                                   struct qb_err *err);
/* Copy the Hessian (finished or not) to h[cols][cols] (host out). */
enum qb_status qb_cuda_hessian_get(struct qb_cuda_calib *c, double *h, struct qb_err *err);

/* ---- GPTQ ---- */
/* Quantize w[rows][cols] (host f32, original column order) with the finished
 * Hessian, as qb_gptq_quantize: fills *out (allocated here, freed by the caller
 * with qb_qresult_free), deq[rows][cols] when non-NULL, and when non-NULL
 * *recon_err = ||(W - W^) X^T||^2 / n and *rtn_err = the same for RTN on the
 * same grid (qb_rtn_group_quantize). */
enum qb_status qb_cuda_gptq_quantize(struct qb_cuda_calib *c, const float *w, int64_t rows,
                                     int64_t cols, const struct qb_gptq_opts *o,
                                     struct qb_qresult *out, float *deq, double *recon_err,
                                     double *rtn_err, struct qb_err *err);

#endif /* QB_HAVE_CUDA */

#ifdef __cplusplus
}
#endif

#endif /* QB_CUDA_CALIB_H */
