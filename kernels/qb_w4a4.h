/*
 * qb_w4a4.h - native FP4 W4A4 (schemes nvfp4-w4a4 and mxfp4-w4a4) in the
 * block-scaled layout of cuBLASLt's FP4 GEMM, plus the host code that builds,
 * reads and emulates that layout.
 *
 * Where it runs: the block-scaled FP4 tensor cores exist from sm_100 (B200,
 * sm_120 RTX Blackwell, sm_121 GB10). The GEMM path is compiled for those
 * architectures but has never been executed by us (no such GPU): it is
 * "compiled, not executed". The activation quantizer kernel runs on any GPU
 * (sm_90 included) and is tested bit-exactly against the host quantizer here;
 * the product itself is checked by qb_w4a4_emulate_linear, a CPU emulation of
 * what the GEMM computes from the very bytes uploaded to the GPU.
 *
 * One FP4 operand X [rows][cols] (K = cols; weights: rows = out features;
 * activations: rows = tokens) is three arrays:
 *
 *   codes   u8 [rows][cols/2]   E2M1, element 2i in the low nibble of byte i
 *                               (the core payloads' order; CUDA_R_4F_E2M1)
 *   scales  u8, swizzled        one per (row, k-block of `block` columns):
 *                               NVFP4: UE4M3, block 16 (VEC16_UE4M3)
 *                               MXFP4: UE8M0, block 32 (VEC32_UE8M0)
 *   global  f32 per row         NVFP4: the tensor/token scale g, value =
 *                               e2m1 * e4m3(s) / g; MXFP4: 1
 *
 * Scale swizzle ("1D block scaling factors layout" of cuBLAS): the [rows][kb]
 * scale matrix is padded to sf_rows = ceil(rows/128)*128 by sf_cols =
 * ceil(kb/4)*4 (padding bytes 0) and cut into 128 x 4 tiles of 512 bytes,
 * tiles in row-major order (k tiles of one 128-row band are adjacent). Inside
 * a tile, row r (0..127) and k-block c (0..3) sit at
 *
 *     (r % 32) * 16 + (r / 32) * 4 + c
 *
 *   tile bytes:  0..15   rows 0,32,64,96 of lane 0 (4 scales each)
 *                16..31  rows 1,33,65,97 ...
 *                496..511 rows 31,63,95,127
 *
 * The GEMM (cuBLASLt, TN, f32 compute) gives D[t][r] = sum_k A[t][k] W[r][k]
 * with each E2M1 value times its block scale; the per-token and per-tensor
 * NVFP4 scales are applied after it:
 *     y[t][r] (+)= D[t][r] / g_a[t] * inv_g_w (+ bias[r])
 * where inv_g_w = 1 / g_w (NVFP4) or 1 (MXFP4).
 */
#ifndef QB_W4A4_H
#define QB_W4A4_H

#include <stddef.h>
#include <stdint.h>

#include "qb_common.h"
#include "quant.h"

#ifdef __cplusplus
extern "C" {
#endif

#define QB_W4A4_TILE_ROWS 128  /* rows of one scale tile */
#define QB_W4A4_TILE_KB 4      /* k-blocks of one scale tile */
#define QB_W4A4_TILE_BYTES 512

/* The padded scale matrix of an operand [rows][cols] with blocks of `block`. */
struct qb_w4a4_shape {
    int64_t rows, cols;
    int block;                 /* 16 (NVFP4) or 32 (MXFP4) */
    int64_t sf_rows, sf_cols;  /* padded to 128 and 4 */
};

/* Byte offset of the scale of (row, k-block kb) in the swizzled scale array of
 * an operand whose padded scale matrix has sf_cols k-blocks. Host and device. */
#if defined(__CUDACC__)
static __host__ __device__ __forceinline__
#else
static inline
#endif
size_t qb_w4a4_sf_offset(int64_t row, int64_t kb, int64_t sf_cols)
{
    int64_t tile = (row / QB_W4A4_TILE_ROWS) * (sf_cols / QB_W4A4_TILE_KB) + kb / QB_W4A4_TILE_KB;
    return (size_t)(tile * QB_W4A4_TILE_BYTES + (row % 32) * 16 + ((row / 32) % 4) * 4 +
                    kb % QB_W4A4_TILE_KB);
}

/* Block size of an activation mode: 16 (NVFP4), 32 (MXFP4), 0 for others. */
int qb_w4a4_block(enum qb_act_mode kind);

/* Fill s for an operand [rows][cols] of kind (QB_ACT_NVFP4 / QB_ACT_MXFP4);
 * QB_ERR_UNSUPPORTED naming what when cols is not a multiple of 32 (the FP4
 * GEMM's K granularity) or kind is not an FP4 mode. */
enum qb_status qb_w4a4_shape_init(struct qb_w4a4_shape *s, enum qb_act_mode kind, int64_t rows,
                                  int64_t cols, const char *what, struct qb_err *err);

static inline size_t qb_w4a4_codes_bytes(const struct qb_w4a4_shape *s)
{
    return (size_t)s->rows * (size_t)s->cols / 2;
}

static inline size_t qb_w4a4_scales_bytes(const struct qb_w4a4_shape *s)
{
    return (size_t)s->sf_rows * (size_t)s->sf_cols;
}

/* An FP4 operand on the host (all arrays owned). */
struct qb_w4a4_operand {
    enum qb_act_mode kind;     /* QB_ACT_NVFP4 or QB_ACT_MXFP4 */
    struct qb_w4a4_shape s;
    uint8_t *codes;            /* [rows][cols/2] */
    uint8_t *scales;           /* swizzled, qb_w4a4_scales_bytes */
    float *global;             /* [rows]: g per row (weights: g_w on every row), MXFP4 1 */
};

void qb_w4a4_operand_free(struct qb_w4a4_operand *op); /* NULL-safe; zeroes it */

/* Repack an nvfp4 (act NVFP4) or mxfp4 (act MXFP4) linear from its core
 * payload (core/quant_blocks.h) into the GPU layout: the same codes and scale
 * bytes, rows of codes made contiguous, scales swizzled. name is for errors. */
enum qb_status qb_w4a4_pack_weight(const struct qb_linear *lin, const char *name,
                                   struct qb_w4a4_operand *out, struct qb_err *err);

/* The host reference of the GPU activation quantizer: bf16 a[n][cols] ->
 * operand, with core's encoders (the ones qb_act_quantize_rows uses):
 * NVFP4 g_t = qb_nvfp4_global_scale(max|a_t|), blocks of 16 with
 * qb_nvfp4_block_encode; MXFP4 blocks of 32 with qb_mxfp4_block_encode. */
enum qb_status qb_w4a4_quantize_act(enum qb_act_mode kind, const uint16_t *a, int64_t n,
                                    int64_t cols, struct qb_w4a4_operand *out,
                                    struct qb_err *err);

/* Un-swizzle: scale byte of every (row, k-block), row-major [rows][cols/block]. */
void qb_w4a4_unswizzle(const struct qb_w4a4_operand *op, uint8_t *out);

/* Value of a scale byte of kind (UE4M3 or UE8M0). */
float qb_w4a4_scale_value(enum qb_act_mode kind, uint8_t b);

/* CPU emulation of the block-scaled product the GPU computes, read from the
 * swizzled layouts: D[t][r] = sum over k of (e2m1(a) * s_a) * (e2m1(w) * s_w),
 * accumulated in f32 in k order, then y[t][r] = D / a->global[t] * inv_g_w
 * (+ bias[r]). y is [a->rows][w->rows]. inv_g_w = 1 / w->global[0] (NVFP4). */
void qb_w4a4_emulate_linear(const struct qb_w4a4_operand *w, const float *bias,
                            const struct qb_w4a4_operand *a, float *y);

/* Why W4A4 does not run on this GPU, for bench/doctor when qb_cuda_supports
 * said no: a short static note (< 80 chars) for a GPU of compute capability
 * cc_major (0 = none), e.g. below sm_100 "FP4 GEMM path compiled (sm_121a),
 * not executed: no FP4 tensor cores here"; NULL for schemes without FP4
 * activations. */
const char *qb_w4a4_status_note(enum qb_act_mode act, int cc_major);

#ifdef QB_HAVE_CUDA
struct qb_cuda_ctx;
struct qb_cuda_weight;

/* 1 when this GPU and cuBLASLt run the block-scaled FP4 GEMM of kind: compute
 * capability 10.0 or newer and a cuBLASLt heuristic answer for E2M1 x E2M1
 * with that scale mode. 0 otherwise (sm_90: always 0). */
int qb_w4a4_device_supported(enum qb_act_mode kind);

/* The activation quantizer kernel (any GPU): bf16 a[n][cols] (device) ->
 * codes [n_pad][cols/2], swizzled scales for n_pad rows (the whole
 * scales_bytes of a [n_pad][cols] shape, zeroed first), global [n_pad]
 * (rows n..n_pad-1: zero codes and scales, global 1). Device pointers; runs on
 * the context's stream. Bit-identical to qb_w4a4_quantize_act. */
enum qb_status qb_w4a4_quantize_act_gpu(struct qb_cuda_ctx *c, enum qb_act_mode kind,
                                        const uint16_t *a, int n, int n_pad, int64_t cols,
                                        uint8_t *codes, uint8_t *scales, float *global,
                                        struct qb_err *err);

/* Upload a W4A4 linear in the layout above: w->data = codes, w->scales = the
 * swizzled scales, w->scale_mul = inv_g_w, w->act = the FP4 mode, w->group =
 * block. QB_ERR_UNSUPPORTED naming the tensor when the GPU has no FP4 GEMM. */
enum qb_status qb_w4a4_weight_upload(const struct qb_linear *lin, const char *name,
                                     struct qb_cuda_weight *out, struct qb_err *err);

/* The same upload without asking whether this GPU has the FP4 GEMM (the bias is
 * left to the caller, as qb_cuda_weight_upload does it): the decode GEMV
 * (qb_w4a4_gemv, n = 1) runs on any GPU, and tests run it on sm_90. */
enum qb_status qb_w4a4_weight_upload_any(const struct qb_linear *lin, const char *name,
                                         struct qb_cuda_weight *out, struct qb_err *err);

/* 1 for a weight uploaded by qb_w4a4_weight_upload (its scales are swizzled:
 * the dequantize/GEMV kernels of packed.cuh must not read it). */
int qb_w4a4_is(const struct qb_cuda_weight *w);

/* Activation bytes one call of n tokens of cols inputs needs in the context's
 * act_codes buffer (codes of n_pad rows + swizzled scales). */
size_t qb_w4a4_act_bytes(int n, int64_t cols);

/* What an engine running W4A4 weights of `rows` outputs on up to n_max tokens
 * per call must reserve: qb_cuda_ctx_reserve_dequant elements (the f32 GEMM
 * result, and gate|up of the decode SwiGLU) and qb_cuda_ctx_reserve_act rows
 * (at least 128: one scale tile). */
size_t qb_w4a4_scratch_elems(int n_max, int64_t rows);
int qb_w4a4_act_rows(int n_max);

/* y (+)= a W^T (+ bias) for n >= 1 tokens of bf16 a [n][cols]: quantize a
 * (qb_w4a4_quantize_act_gpu into the context's act buffers), then for n > 1
 * the cuBLASLt block-scaled FP4 GEMM into the dequant scratch (f32
 * [n_pad][rows]) and the scale/bias/accumulate epilogue (sm_100+ only), for
 * n = 1 the SIMT GEMV (qb_w4a4_gemv). Same contract as qb_cuda_linear. */
enum qb_status qb_w4a4_linear(struct qb_cuda_ctx *c, const struct qb_cuda_weight *w,
                              const uint16_t *a, int n, float *y, int ldy, int accumulate,
                              struct qb_err *err);

/* Decode over up to 3 W4A4 weights sharing cols and format (q|k|v): x is
 * quantized once, then y = concatenation of W_i x (+ bias_i), written or added;
 * the contract of qb_cuda_gemv. Plain SIMT code over the FP4 layouts: runs on
 * any GPU, and matches qb_w4a4_emulate_linear up to summation order. */
enum qb_status qb_w4a4_gemv(struct qb_cuda_ctx *c, const struct qb_cuda_weight *const *w,
                            int n_w, const uint16_t *x, float *y, int accumulate,
                            struct qb_err *err);

/* Decode gate/up with the SwiGLU epilogue; the contract of qb_cuda_gemv_swiglu. */
enum qb_status qb_w4a4_gemv_swiglu(struct qb_cuda_ctx *c, const struct qb_cuda_weight *gate,
                                   const struct qb_cuda_weight *up, const uint16_t *x,
                                   uint16_t *out, struct qb_err *err);
#endif /* QB_HAVE_CUDA */

#ifdef __cplusplus
}
#endif

#endif /* QB_W4A4_H */
