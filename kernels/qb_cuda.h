/*
 * qb_cuda.h - the C ABI of the CUDA backend: device queries, a context
 * (stream + cuBLAS handle), device buffers, weights on the device and the
 * kernels the CUDA engine (engine_cuda.cu) is built from.
 *
 * Plain C, no CUDA types: the CLI (bench, gpu) and the tests include it. The
 * device-query entries (qb_cuda_device_query, qb_cuda_measure_bandwidth) exist
 * in every build and answer QB_ERR_NO_DEVICE without CUDA (cuda_stub.c); the
 * context, buffer and kernel entries exist only when QB_HAVE_CUDA is defined.
 *
 * Every entry returns enum qb_status and fills struct qb_err with the failing
 * CUDA/cuBLAS call, its error string, function, file and line. Kernels are
 * launched on the context's stream and return without synchronising; a
 * launch error is reported at once (cudaGetLastError), an execution error at
 * the next qb_cuda_sync().
 *
 * Activation conventions (all row-major, one row per token):
 *   residual stream x     f32  [n][hidden]
 *   linear input a        bf16 [n][in]          (normed activations, attention out, SwiGLU)
 *   linear output y       f32  [n][ldy]         (ldy >= out; outputs can be concatenated)
 *   KV cache (per layer)  f16  [n_kv_heads][max_ctx][head_dim]   K and V separately
 *   positions             int32 on the device:  token t of a call sits at *d_pos + t,
 *                         so a captured CUDA graph replays with a new position.
 * bf16 and f16 values are passed as uint16_t bit patterns.
 */
#ifndef QB_CUDA_H
#define QB_CUDA_H

#include <stddef.h>
#include <stdint.h>

#include "qb_common.h"
#include "quant.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- device queries (every build) ---------------------------------------- */

struct qb_cuda_device {
    char name[256];
    int cc_major, cc_minor;     /* compute capability */
    int sm_count;
    size_t mem_total, mem_free; /* bytes, from cudaMemGetInfo */
    double peak_bw_gbs;         /* datasheet-style bus * clock estimate, GB/s */
};

/* Device 0. QB_ERR_NO_DEVICE without CUDA or a usable GPU. */
enum qb_status qb_cuda_device_query(struct qb_cuda_device *out, struct qb_err *err);

/* Device-to-device copy bandwidth in GB/s (bytes read + bytes written over the
 * time), median of several copies of a 1 GiB buffer: the practical ceiling
 * the decode roofline divides by. */
enum qb_status qb_cuda_measure_bandwidth(double *gbs, struct qb_err *err);

/* 1 when the CUDA engine has kernels for weight format fmt (0 without CUDA). */
int qb_cuda_wfmt_supported(enum qb_wfmt fmt);

#ifdef QB_HAVE_CUDA

/* ---- context and buffers ------------------------------------------------- */

struct qb_cuda_ctx; /* a stream, a cuBLAS handle and its workspace */

enum qb_status qb_cuda_ctx_create(struct qb_cuda_ctx **out, struct qb_err *err);
void qb_cuda_ctx_free(struct qb_cuda_ctx *c); /* NULL-safe; synchronises first */

/* Wait for the stream; reports any execution error of earlier kernels. */
enum qb_status qb_cuda_sync(struct qb_cuda_ctx *c, struct qb_err *err);

/* Device memory; what names the buffer in the out-of-memory message. */
enum qb_status qb_cuda_alloc(void **p, size_t bytes, const char *what, struct qb_err *err);
void qb_cuda_free(void *p); /* NULL-safe */
/* Synchronous copies (host memory may be pageable). */
enum qb_status qb_cuda_upload(void *dst, const void *src, size_t bytes, struct qb_err *err);
enum qb_status qb_cuda_download(void *dst, const void *src, size_t bytes, struct qb_err *err);

/* ---- weights on the device ------------------------------------------------ */

/* One linear layer's weights in device memory, in the format the GEMV reads.
 * Dtype views (f32/f16/bf16) are stored as bf16 [rows][cols]. */
struct qb_cuda_weight {
    enum qb_wfmt fmt;       /* QB_WFMT_BF16 for dtype views */
    int64_t rows, cols;
    void *data;             /* device payload */
    size_t bytes;           /* payload bytes (what a decode step reads) */
    float *bias;            /* device [rows] or NULL */
};

/* Upload a host linear (any dtype view). QB_ERR_UNSUPPORTED for packed
 * formats this build cannot run on the GPU. */
enum qb_status qb_cuda_weight_upload(const struct qb_linear *lin, const char *name,
                                     struct qb_cuda_weight *out, struct qb_err *err);
void qb_cuda_weight_free(struct qb_cuda_weight *w); /* NULL-safe; zeroes it */

/* ---- kernels (device pointers; n = tokens of the call) --------------------- */

/* x[t] = embed[ids[t]] (bf16 table [vocab][dim] -> f32). ids must be < vocab. */
enum qb_status qb_cuda_embed(struct qb_cuda_ctx *c, const uint16_t *embed, const int32_t *ids,
                             int n, int dim, float *x, struct qb_err *err);

/* out[t] = bf16(x[t] / rms(x[t]) * w), rms = sqrt(mean(x^2) + eps). */
enum qb_status qb_cuda_rmsnorm(struct qb_cuda_ctx *c, const float *x, const float *w, float eps,
                               int n, int dim, uint16_t *out, struct qb_err *err);

/* Shapes of one attention layer. */
struct qb_cuda_attn_shape {
    int n_heads, n_kv_heads, head_dim; /* head_dim in {64, 128, 256} */
    int max_ctx;                       /* KV cache positions */
};

/* On qkv f32 [n][ldq] laid out q | k | v (n_heads, n_kv, n_kv heads of
 * head_dim): optional per-head RMSNorm of q and k (q_norm/k_norm [head_dim],
 * NULL to skip; eps), then RoPE (rotate-half, angle = pos * inv_freq[i],
 * inv_freq [head_dim/2]) on q and k. q is written back in place; k and v go
 * to the f16 caches at positions *d_pos + t. */
enum qb_status qb_cuda_rope_kv(struct qb_cuda_ctx *c, const struct qb_cuda_attn_shape *s,
                               float *qkv, int ldq, int n, const int32_t *d_pos,
                               const float *inv_freq, const float *q_norm, const float *k_norm,
                               float eps, uint16_t *k_cache, uint16_t *v_cache,
                               struct qb_err *err);

/* Causal GQA attention of n new queries (q in qkv as left by qb_cuda_rope_kv)
 * over cache positions 0 .. *d_pos + t: out bf16 [n][n_heads*head_dim]. */
enum qb_status qb_cuda_attention(struct qb_cuda_ctx *c, const struct qb_cuda_attn_shape *s,
                                 const float *qkv, int ldq, int n, const int32_t *d_pos,
                                 const uint16_t *k_cache, const uint16_t *v_cache, uint16_t *out,
                                 struct qb_err *err);

/* out[t][i] = bf16(silu(gu[t][i]) * gu[t][inter + i]) for gu f32 [n][2*inter]. */
enum qb_status qb_cuda_swiglu(struct qb_cuda_ctx *c, const float *gu, int n, int inter,
                              uint16_t *out, struct qb_err *err);

/* y[t][0..rows) (+)= a[t] W^T (+ bias): the linear layer for any n. n = 1
 * goes through the GEMV (qb_cuda_gemv); n > 1 through cuBLAS with bf16 inputs
 * and f32 accumulation. accumulate = 1 adds to y (the residual add). */
enum qb_status qb_cuda_linear(struct qb_cuda_ctx *c, const struct qb_cuda_weight *w,
                              const uint16_t *a, int n, float *y, int ldy, int accumulate,
                              struct qb_err *err);

/* Decode GEMV over up to 3 weights sharing cols (q|k|v): y = concatenation of
 * W_i x (+ bias_i), written (accumulate = 0) or added (1). */
enum qb_status qb_cuda_gemv(struct qb_cuda_ctx *c, const struct qb_cuda_weight *const *w,
                            int n_w, const uint16_t *x, float *y, int accumulate,
                            struct qb_err *err);

/* Decode gate/up GEMV with the SwiGLU epilogue: out[i] = bf16(silu(g_i . x) * (u_i . x)). */
enum qb_status qb_cuda_gemv_swiglu(struct qb_cuda_ctx *c, const struct qb_cuda_weight *gate,
                                   const struct qb_cuda_weight *up, const uint16_t *x,
                                   uint16_t *out, struct qb_err *err);

/* ---- graphs (decode) ------------------------------------------------------- */

/* Begin/end capturing the context's stream into a CUDA graph (instantiated on
 * end; *graph is opaque) and replay it. */
enum qb_status qb_cuda_graph_begin(struct qb_cuda_ctx *c, struct qb_err *err);
enum qb_status qb_cuda_graph_end(struct qb_cuda_ctx *c, void **graph, struct qb_err *err);
enum qb_status qb_cuda_graph_launch(struct qb_cuda_ctx *c, void *graph, struct qb_err *err);
void qb_cuda_graph_free(void *graph); /* NULL-safe */

/* Asynchronous copies on the context's stream (host side must stay valid until
 * the next qb_cuda_sync). */
enum qb_status qb_cuda_upload_async(struct qb_cuda_ctx *c, void *dst, const void *src,
                                    size_t bytes, struct qb_err *err);
enum qb_status qb_cuda_download_async(struct qb_cuda_ctx *c, void *dst, const void *src,
                                      size_t bytes, struct qb_err *err);

#endif /* QB_HAVE_CUDA */

#ifdef __cplusplus
}
#endif

#endif /* QB_CUDA_H */
