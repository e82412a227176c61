/*
 * packed.cuh - the device layouts of the packed weight formats and the
 * per-group decode shared by the fused GEMV and the dequantize kernel
 * (gemv_packed.cu); weight.cu repacks host payloads (core/quant_blocks.h)
 * into these layouts at upload.
 *
 * Every packed format becomes codes + per-group scales (+ zeros), with rows of
 * codes 16-byte aligned so a lane reads 16 codes (8-bit) or 32 codes (4-bit)
 * in one load. 4-bit codes are tiled where the shape allows (pk_code4_at).
 * Value of column c of row r, group g = c / group (or g_idx[c]):
 *
 *   format          codes     scale per (r, g)       w
 *   int8            s8        f32, group = cols      s * code
 *   fp8 / fp8-e5m2  E4M3/E5M2 f32, group = cols      s * fp8(code)
 *   int4 / uint_g4  u4        f16 + u8 zero          s * (code - zero)
 *   nf4             u4        f32 absmax, group 64   nf4[code] * absmax
 *   nf4-dq          u4        u8 code, group 64      nf4[code] * (dyn[sc] * nested[b/256] + offset)
 *   nvfp4           E2M1      u8 E4M3, group 16      e2m1[code] * e4m3(sc) / global_scale
 *   mxfp4           E2M1      u8 E8M0, group 32      e2m1[code] * 2^(sc - 127)
 *
 * (b = r * groups + g, the block index over the flattened tensor for nf4-dq.)
 * A 4-bit value is lut[code]; int groups use lut[code] = code and fold the zero
 * into an offset: w = lut[code] * s + o with o = -zero * s (0 elsewhere).
 */
#ifndef QB_PACKED_CUH
#define QB_PACKED_CUH

#include <cuda_fp8.h>
#include <string.h>

#include "qb_cuda_common.cuh"
#include "quant_blocks.h"

#define QB_LUT_DYN_OFFSET 16 /* nf4-dq: the 256-entry dynamic map follows the 16 nf4 values */
#define QB_TILE_ROWS 8       /* tiled 4-bit codes (pk_code4_at) */
#define QB_TILE_COLS 128

/* 1 for the formats stored as 8-bit codes with one f32 scale per row. */
static inline __host__ __device__ int qb_packed_is_8bit(enum qb_wfmt f)
{
    return f == QB_WFMT_INT8 || f == QB_WFMT_FP8_E4M3 || f == QB_WFMT_FP8_E5M2;
}

/* What a kernel needs of a struct qb_cuda_weight, by value. */
struct packed_view {
    const uint8_t *codes;
    const void *scales;
    const uint8_t *zeros;
    const float *nested;
    const float *lut;
    const int32_t *g_idx;
    int64_t rows;
    int cols, group, groups;
    float scale_mul;
    int tiled; /* 4-bit codes in tiles (pk_code4_at) */
};

static inline struct packed_view packed_view_of(const struct qb_cuda_weight *w)
{
    struct packed_view v;
    v.codes = (const uint8_t *)w->data;
    v.scales = w->scales;
    v.zeros = w->zeros;
    v.nested = w->nested;
    v.lut = w->lut;
    v.g_idx = w->g_idx;
    v.rows = w->rows;
    v.cols = (int)w->cols;
    v.group = w->group;
    v.groups = (int)(w->cols / w->group);
    v.scale_mul = w->scale_mul;
    v.tiled = w->tiled;
    return v;
}

/* The decode below is host+device: weight.cu runs it on the host to check the
 * repacking against the C reference without a GPU (qb_cuda_emulate_dequant). */
#define QB_PK_HD static __host__ __device__ __forceinline__

QB_PK_HD float qb_pk_bits_to_float(uint32_t u)
{
#ifdef __CUDA_ARCH__
    return __uint_as_float(u);
#else
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
#endif
}

QB_PK_HD float qb_fp8_to_f32(uint8_t code, __nv_fp8_interpretation_t k)
{
    __half_raw h = __nv_cvt_fp8_to_halfraw((__nv_fp8_storage_t)code, k);
    return __half2float(__half(h));
}

/* W8A8's activation code of v at the token scale s = amax / 448 (core/quant.c
 * act_fp8_row): e4m3(v / s), round to nearest even, saturating; 0 when s is 0. */
static __device__ __forceinline__ uint8_t qb_act_e4m3(float v, float s)
{
    return s > 0.0f ? (uint8_t)__nv_cvt_float_to_fp8(v / s, __NV_SATFINITE, __NV_E4M3)
                    : (uint8_t)0;
}

/* Scale s and offset o of (row, group g) for the 4-bit formats: w = lut[code] * s + o. */
template <int FMT>
QB_PK_HD void group_scale(const struct packed_view &v, int64_t row, int g, float *s, float *o)
{
    int64_t i = row * v.groups + g;
    *o = 0.0f;
    if constexpr (FMT == QB_WFMT_INT4 || FMT == QB_WFMT_INT4_SYM || FMT == QB_WFMT_UINT_G) {
        __half_raw h;
        h.x = ((const uint16_t *)v.scales)[i];
        *s = __half2float(__half(h));
        *o = -*s * (float)v.zeros[i];
    } else if constexpr (FMT == QB_WFMT_NF4) {
        *s = ((const float *)v.scales)[i];
    } else if constexpr (FMT == QB_WFMT_NF4_DQ) {
        uint8_t c = ((const uint8_t *)v.scales)[i];
        *s = v.lut[QB_LUT_DYN_OFFSET + c] * v.nested[i / QB_NF4_DQ_NEST] + v.scale_mul;
    } else if constexpr (FMT == QB_WFMT_NVFP4) {
        *s = qb_fp8_to_f32(((const uint8_t *)v.scales)[i], __NV_E4M3) * v.scale_mul;
    } else { /* MXFP4: E8M0, 2^(e-127); e = 0 is the fp32 subnormal 2^-127 */
        uint8_t e = ((const uint8_t *)v.scales)[i];
        *s = qb_pk_bits_to_float(e ? (uint32_t)e << 23 : 0x00400000u);
    }
}

/* Values of the 8-bit codes lo (first) and hi. int8 avoids the quarter-rate
 * int-to-float conversion: 2^23 + 128 + c, read as a float, minus 2^23 + 128;
 * fp8 pairs go through one f16x2 conversion. */
template <int FMT>
QB_PK_HD float2 code8_pair(uint8_t lo, uint8_t hi)
{
    if constexpr (FMT == QB_WFMT_INT8) {
        return make_float2(qb_pk_bits_to_float(0x4B000000u | (lo ^ 0x80u)) - 8388736.0f,
                           qb_pk_bits_to_float(0x4B000000u | (hi ^ 0x80u)) - 8388736.0f);
    } else {
        __nv_fp8x2_storage_t two = (__nv_fp8x2_storage_t)(lo | (hi << 8));
        __half2_raw h = __nv_cvt_fp8x2_to_halfraw2(two, FMT == QB_WFMT_FP8_E4M3 ? __NV_E4M3
                                                                               : __NV_E5M2);
        return __half22float2(__half2(h));
    }
}

/* 4-bit codes (element 2i in the low nibble of byte i) are row-major, or
 * tiled where the shape allows (qb_cuda_weight.tiled: rows % 8 == 0, cols %
 * 128 == 0, no g_idx): the 8 rows of a tile and the 128 columns of a step make
 * one 512-byte block, row by row (64 bytes each); blocks go in step order
 * inside a tile, tiles in row order. The tensor-core GEMV's warp then reads
 * each block as one contiguous span (gemv_mma.cu; H100 tg128 of the 8B shape:
 * int4 414 -> 424 t/s, nvfp4 364 -> 374, nf4 310 -> 317).
 * The byte holding columns col & ~1 and col | 1 of row: */
QB_PK_HD int64_t pk_code4_at(const struct packed_view &v, int64_t row, int col)
{
    if (v.tiled)
        return ((row / QB_TILE_ROWS) * (v.cols / QB_TILE_COLS) + col / QB_TILE_COLS) *
                   (QB_TILE_ROWS * QB_TILE_COLS / 2) +
               (row % QB_TILE_ROWS) * (QB_TILE_COLS / 2) + (col % QB_TILE_COLS) / 2;
    return row * (v.cols / 2) + col / 2;
}

/* The 16-byte chunk c (columns 32c .. 32c + 31) of a row of 4-bit codes, in
 * uint4 from pk_code4_at(v, row, 0). */
QB_PK_HD int64_t pk_chunk4(const struct packed_view &v, int c)
{
    return v.tiled ? (c / 4) * (QB_TILE_ROWS * 4) + c % 4 : c;
}

/* Weight (row, col) as every kernel decodes it. */
template <int FMT> QB_PK_HD float decode_weight(const struct packed_view &v, int64_t row, int col)
{
    if constexpr (FMT == QB_WFMT_INT8 || FMT == QB_WFMT_FP8_E4M3 || FMT == QB_WFMT_FP8_E5M2) {
        return code8_pair<FMT>(v.codes[row * v.cols + col], 0).x *
               ((const float *)v.scales)[row];
    } else {
        uint8_t b = v.codes[pk_code4_at(v, row, col)];
        int g = v.g_idx ? v.g_idx[col] : col / v.group;
        float s, o;
        group_scale<FMT>(v, row, g, &s, &o);
        return v.lut[(b >> (4 * (col & 1))) & 15] * s + o;
    }
}

/* ---- scales as the decode kernels load them (device only) ---- */

/* The stored bits of the scale of (row, g), loaded now, decoded later. */
struct pk_scale_raw {
    uint32_t s;      /* f16 bits, f32 bits, or a u8 code */
    uint32_t zero;   /* int groups */
    float nested;    /* nf4-dq */
};

/* The scale of flat group index i = row * groups + g. */
template <int FMT>
static __device__ __forceinline__ struct pk_scale_raw load_scale_at(const struct packed_view &v,
                                                                    int64_t i)
{
    struct pk_scale_raw r = {0u, 0u, 0.0f};
    if constexpr (FMT == QB_WFMT_INT4 || FMT == QB_WFMT_INT4_SYM || FMT == QB_WFMT_UINT_G) {
        r.s = __ldg((const uint16_t *)v.scales + i);
        r.zero = __ldg(v.zeros + i);
    } else if constexpr (FMT == QB_WFMT_NF4) {
        r.s = __float_as_uint(__ldg((const float *)v.scales + i));
    } else {
        r.s = __ldg((const uint8_t *)v.scales + i);
        if constexpr (FMT == QB_WFMT_NF4_DQ)
            r.nested = __ldg(v.nested + i / QB_NF4_DQ_NEST);
    }
    return r;
}

template <int FMT>
static __device__ __forceinline__ struct pk_scale_raw load_scale(const struct packed_view &v,
                                                                 int64_t row, int g)
{
    return load_scale_at<FMT>(v, row * v.groups + g);
}

/* (s, o) of a loaded scale, as group_scale (packed.cuh) defines them. */
template <int FMT>
static __device__ __forceinline__ float2 decode_scale(const struct packed_view &v,
                                                      struct pk_scale_raw r, const float *lut)
{
    float s;
    if constexpr (FMT == QB_WFMT_INT4 || FMT == QB_WFMT_INT4_SYM || FMT == QB_WFMT_UINT_G) {
        s = qb_f16_bits_to_f32((uint16_t)r.s);
        return make_float2(s, -s * (float)r.zero);
    } else if constexpr (FMT == QB_WFMT_NF4) {
        s = __uint_as_float(r.s);
    } else if constexpr (FMT == QB_WFMT_NF4_DQ) {
        s = lut[QB_LUT_DYN_OFFSET + r.s] * r.nested + v.scale_mul;
    } else if constexpr (FMT == QB_WFMT_NVFP4) {
        s = qb_fp8_to_f32((uint8_t)r.s, __NV_E4M3) * v.scale_mul;
    } else {
        s = __uint_as_float(r.s ? r.s << 23 : 0x00400000u);
    }
    return make_float2(s, 0.0f);
}

template <int FMT> static constexpr bool pk_has_zero()
{
    return FMT == QB_WFMT_INT4 || FMT == QB_WFMT_INT4_SYM || FMT == QB_WFMT_UINT_G;
}

/* Launchers of gemv_packed.cu for gemv.cu / linear.cu (mode: 0 store, 1 add, 2 SwiGLU;
 * SwiGLU takes w[0] = gate, w[1] = up and writes bf16 y_bf16). x_scale (device, one
 * float, or NULL for 1) multiplies every dot product before bias/epilogue: W8A8
 * decode passes x = the E4M3 code values and x_scale = the token's scale. */
cudaError_t qb_gemv_packed_launch(const struct qb_cuda_weight *const *w, int n_w,
                                  const uint16_t *x, const float *x_scale, float *y,
                                  uint16_t *y_bf16, int mode, int pdl, cudaStream_t s);
/* A decode GEMV's input x [cols]: the bf16 row x, or (x == NULL) the RMSNorm of
 * the f32 row xf with weight nw, bf16(xf * inv_rms * nw) as qb_cuda_rmsnorm
 * writes it, computed by the GEMV itself (one kernel less per norm). */
struct qb_gemv_in {
    const uint16_t *x;
    const float *xf, *nw;
    float eps;
};
/* The RMSNorm an accumulating decode GEMV (y += W x) runs as its tail, for the
 * next layer's input: out = bf16(y * inv_rms(y) * nw) over the whole of y, as
 * qb_cuda_rmsnorm rounds it (up to the summation order). done counts the
 * finished blocks (zero between launches; gemv_mma.cu fills it in from the
 * weight's tail_done): the last one does the norm. */
struct qb_gemv_norm_out {
    const float *nw;
    float eps;
    uint16_t *out;
    unsigned *done;
};
/* The 16-row groups of gemv_mma.cu over a weight of `rows` rows: the length of
 * its RMSNorm tail's sums of squares (weight.cu). */
static inline int64_t qb_mma_row_blocks(int64_t rows)
{
    return (rows + 15) / 16;
}
/* Parts of K of gemv_mma.cu's accumulating launches, one cluster of blocks
 * per block of rows (H100 int4 tg128: 2 > 4 > 1). */
#define QB_MMA_KSPLIT 2

/* gemv_mma.cu: the same GEMV on the tensor cores for the 4-bit formats (mode as
 * above; no x_scale); cudaErrorNotSupported when the weights do not qualify
 * (the caller then runs the RMSNorm and gemv_packed.cu). next (or NULL): the
 * RMSNorm tail of an accumulating launch of one matrix (its done counter is
 * filled in from the weight's scratch). */
cudaError_t qb_gemv_mma_launch(const struct qb_cuda_weight *const *w, int n_w,
                               const struct qb_gemv_in *in, float *y, uint16_t *y_bf16, int mode,
                               const struct qb_gemv_norm_out *next, int pdl, cudaStream_t s);
cudaError_t qb_dequant_launch(const struct qb_cuda_weight *w, uint16_t *out, cudaStream_t s);

/* w8a8.cu: per-token E4M3 quantization of bf16 activations x [n][cols] into
 * codes [n_pad][cols] (rows n.. zero) and scales [n]; qdq (or NULL) gets the
 * code values e4m3(x/s) as bf16 (exact: 4 significant bits), unscaled: the
 * consumer multiplies by scales[t] after its dot product, as the FP8 GEMM does.
 * pdl: a programmatic dependent launch (decode: the GEMV after it starts early). */
cudaError_t qb_act_quant_launch(const uint16_t *x, int n, int n_pad, int cols, uint8_t *codes,
                                float *scales, uint16_t *qdq, int pdl, cudaStream_t s);
/* QB_ERR_INTERNAL unless the context's activation buffers hold n x cols. */
enum qb_status qb_w8a8_check(struct qb_cuda_ctx *c, int n, int64_t cols, struct qb_err *err);
/* The W8A8 linear for n > 1 (see qb_cuda_linear). */
enum qb_status qb_w8a8_linear(struct qb_cuda_ctx *c, const struct qb_cuda_weight *w,
                              const uint16_t *a, int n, float *y, int ldy, int accumulate,
                              struct qb_err *err);

#endif /* QB_PACKED_CUH */
