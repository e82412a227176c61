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

/* 1 when the CUDA engine has kernels for weight format fmt with activations
 * act (0 without CUDA). Shapes are checked at upload. */
int qb_cuda_supports(enum qb_wfmt fmt, enum qb_act_mode act);

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
/* Synchronous copies (host memory may be pageable): they wait for all earlier
 * device work on every stream, and the data has landed when they return. */
enum qb_status qb_cuda_upload(void *dst, const void *src, size_t bytes, struct qb_err *err);
enum qb_status qb_cuda_download(void *dst, const void *src, size_t bytes, struct qb_err *err);

/* ---- weights on the device ------------------------------------------------ */

/* One linear layer's weights in device memory, in the layout the kernels read.
 * Dtype views (f32/f16/bf16) are stored as bf16 [rows][cols]. Packed formats
 * are repacked at upload into the same information, split so that codes are
 * 16-byte aligned rows (see packed.cuh for the layouts):
 *   codes   8-bit formats [rows][cols]; 4-bit formats [rows][cols/2], element
 *           2i in the low nibble, or in 8-row x 128-column tiles (`tiled`)
 *   scales  per (row, group of `group` columns), in the format's own width
 *   zeros   int groups only; nested: nf4-dq only */
struct qb_cuda_weight {
    enum qb_wfmt fmt;
    int64_t rows, cols;
    void *data;             /* bf16 values, or the codes of a packed format */
    size_t bytes;           /* device bytes a GEMV reads (codes + scales + zeros) */
    float *bias;            /* device [rows] or NULL */
    void *scales;           /* packed: per (row, group) scale */
    uint8_t *zeros;         /* int groups: per (row, group) zero point */
    float *nested;          /* nf4-dq: nested absmax per 256 blocks */
    float *lut;             /* packed 4-bit: 16 code values (+ 256 nf4-dq dynamic map) */
    int32_t *g_idx;         /* act-order group of each column, or NULL */
    int group;              /* columns per scale (cols for per-row scales) */
    float scale_mul;        /* nvfp4: 1 / global_scale; nf4-dq: absmax offset */
    enum qb_act_mode act;   /* QB_ACT_FP8_E4M3: W8A8 (activations quantized per token) */
    float *tail_ss;         /* 4-bit: the decode GEMV's RMSNorm tail: per 16 rows, the sum
                             * of squares of their outputs (gemv_mma.cu), or NULL */
    unsigned *tail_done;    /* its count of finished blocks (zero between launches) */
    int tiled;              /* 4-bit codes in 8 x 128 tiles (packed.cuh's pk_code4_at) */
};

/* Upload a host linear (any dtype view or a packed format the GPU supports;
 * QB_ERR_UNSUPPORTED naming the tensor otherwise). */
enum qb_status qb_cuda_weight_upload(const struct qb_linear *lin, const char *name,
                                     struct qb_cuda_weight *out, struct qb_err *err);
void qb_cuda_weight_free(struct qb_cuda_weight *w); /* NULL-safe; zeroes it */

/* Reserve the bf16 scratch the prefill path dequantizes packed weights into
 * (elems = the largest rows*cols of a packed linear). Call before running. */
enum qb_status qb_cuda_ctx_reserve_dequant(struct qb_cuda_ctx *c, size_t elems,
                                           struct qb_err *err);

/* Reserve the per-token activation buffers of W8A8 linears for up to n_max
 * tokens of cols_max inputs. Call before running. */
enum qb_status qb_cuda_ctx_reserve_act(struct qb_cuda_ctx *c, int n_max, int64_t cols_max,
                                       struct qb_err *err);

/* The device decode of a packed linear run on the host over the repacked
 * layout (no GPU needed): out[rows][cols] f32. For tests of the repacking. */
enum qb_status qb_cuda_emulate_dequant(const struct qb_linear *lin, float *out,
                                       struct qb_err *err);

/* Dequantize a packed weight to bf16 [rows][cols] (device out). */
enum qb_status qb_cuda_dequant(struct qb_cuda_ctx *c, const struct qb_cuda_weight *w,
                               uint16_t *out, struct qb_err *err);

/* ---- kernels (device pointers; n = tokens of the call) --------------------- */

/* x[t] = embed[ids[t]] (bf16 table [vocab][dim] -> f32). ids must be < vocab. */
enum qb_status qb_cuda_embed(struct qb_cuda_ctx *c, const uint16_t *embed, const int32_t *ids,
                             int n, int dim, float *x, struct qb_err *err);

/* out[t] = bf16(x[t] / rms(x[t]) * w), rms = sqrt(mean(x^2) + eps). */
enum qb_status qb_cuda_rmsnorm(struct qb_cuda_ctx *c, const float *x, const float *w, float eps,
                               int n, int dim, uint16_t *out, struct qb_err *err);

/* qb_cuda_rmsnorm for a W8A8 consumer: out[t] = the E4M3 code values (as
 * bf16, exact) and scale[t] the per-token scale that W8A8's activation
 * quantization (w8a8.cu, core/quant.c act_fp8_row) gives qb_cuda_rmsnorm's
 * output, in one kernel. */
enum qb_status qb_cuda_rmsnorm_fp8(struct qb_cuda_ctx *c, const float *x, const float *w,
                                   float eps, int n, int dim, uint16_t *out, float *scale,
                                   struct qb_err *err);

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

/* Decode (one token at position *d_pos): qb_cuda_rope_kv and qb_cuda_attention
 * in one kernel, with the same inputs and results (up to the order of the
 * softmax sums). qkv f32 [(n_heads + 2 n_kv) * head_dim] (q | k | v, only
 * read: q is not written back); q_norm/k_norm [head_dim] or NULL; inv_freq
 * [head_dim/2]; k and v are stored in the f16 caches [n_kv][max_ctx][head_dim]
 * at *d_pos; out bf16 [n_heads * head_dim]. */
enum qb_status qb_cuda_attention_decode(struct qb_cuda_ctx *c, const struct qb_cuda_attn_shape *s,
                                        const float *qkv, const int32_t *d_pos,
                                        const float *inv_freq, const float *q_norm,
                                        const float *k_norm, float eps, uint16_t *k_cache,
                                        uint16_t *v_cache, uint16_t *out, struct qb_err *err);

/* out[t][i] = bf16(silu(gu[t][i]) * gu[t][inter + i]) for gu f32 [n][2*inter]. */
enum qb_status qb_cuda_swiglu(struct qb_cuda_ctx *c, const float *gu, int n, int inter,
                              uint16_t *out, struct qb_err *err);

/* y[t][0..rows) (+)= a[t] W^T (+ bias): the linear layer for any n. n = 1
 * goes through the GEMV (qb_cuda_gemv); n > 1 through cuBLAS with bf16 inputs
 * and f32 accumulation (packed weights dequantized to the reserved scratch
 * first); W8A8 weights quantize a per token to E4M3 and, for n > 1, run the
 * FP8 tensor cores through cuBLASLt (w8a8.cu). accumulate = 1 adds to y. */
enum qb_status qb_cuda_linear(struct qb_cuda_ctx *c, const struct qb_cuda_weight *w,
                              const uint16_t *a, int n, float *y, int ldy, int accumulate,
                              struct qb_err *err);

/* Decode GEMV over up to 3 weights sharing cols and format (q|k|v): y =
 * concatenation of W_i x (+ bias_i), written (accumulate = 0) or added (1). */
enum qb_status qb_cuda_gemv(struct qb_cuda_ctx *c, const struct qb_cuda_weight *const *w,
                            int n_w, const uint16_t *x, float *y, int accumulate,
                            struct qb_err *err);

/* qb_cuda_gemv of W8A8 weights whose input is already quantized: x holds the
 * token's E4M3 code values and *x_scale its scale, as qb_cuda_rmsnorm_fp8
 * leaves them (so no quantization runs here). */
enum qb_status qb_cuda_gemv_prequant(struct qb_cuda_ctx *c, const struct qb_cuda_weight *const *w,
                                     int n_w, const uint16_t *x, const float *x_scale, float *y,
                                     int accumulate, struct qb_err *err);

/* Decode gate/up GEMV with the SwiGLU epilogue: out[i] = bf16(silu(g_i . x) * (u_i . x)). */
enum qb_status qb_cuda_gemv_swiglu(struct qb_cuda_ctx *c, const struct qb_cuda_weight *gate,
                                   const struct qb_cuda_weight *up, const uint16_t *x,
                                   uint16_t *out, struct qb_err *err);

/* The same over a pre-quantized W8A8 input (qb_cuda_gemv_prequant). */
enum qb_status qb_cuda_gemv_swiglu_prequant(struct qb_cuda_ctx *c,
                                            const struct qb_cuda_weight *gate,
                                            const struct qb_cuda_weight *up, const uint16_t *x,
                                            const float *x_scale, uint16_t *out,
                                            struct qb_err *err);

/* The input of a decode GEMV that starts with an RMSNorm (device pointers). */
struct qb_cuda_norm_in {
    const float *x; /* f32 residual row [cols] */
    const float *w; /* norm weight [cols] */
    float eps;
    uint16_t *a;    /* bf16 scratch [cols]: the normed row where the norm is not fused */
    float *scale;   /* NULL, or the consumer is W8A8: a gets the normed row's E4M3 code
                     * values and *scale its token scale (qb_cuda_rmsnorm_fp8) */
};

/* qb_cuda_gemv of x = bf16(rmsnorm(in)) (the first layer's q|k|v in decode).
 * The 4-bit tensor-core GEMV computes the norm in its own prologue (one
 * kernel less); every other format runs qb_cuda_rmsnorm into in->a first
 * (with in->scale: qb_cuda_rmsnorm_fp8, and the W8A8 GEMV takes a as it is).
 * The two differ only in the summation order of the mean square. */
enum qb_status qb_cuda_gemv_norm(struct qb_cuda_ctx *c, const struct qb_cuda_weight *const *w,
                                 int n_w, const struct qb_cuda_norm_in *in, float *y,
                                 int accumulate, struct qb_err *err);

/* y += W x (one token), then next->a = bf16(rmsnorm(y) * next->w), the input
 * of the next layer's projections (next->x must be y; x may be next->a: every
 * block has read x before the last one writes the norm). The 4-bit
 * tensor-core GEMV runs the norm as its own tail, in its last block (one
 * kernel less per norm on the decode path); every other format runs
 * qb_cuda_rmsnorm after it (with next->scale: qb_cuda_rmsnorm_fp8, for a
 * W8A8 consumer that takes next->a through qb_cuda_gemv_prequant). */
enum qb_status qb_cuda_gemv_add_norm(struct qb_cuda_ctx *c, const struct qb_cuda_weight *w,
                                     const uint16_t *x, float *y,
                                     const struct qb_cuda_norm_in *next, struct qb_err *err);

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
