/*
 * gemv_packed.cu - fused dequantize-GEMV for decode and dequantize-to-bf16
 * for prefill, over every packed format of packed.cuh.
 *
 * GEMV block: 8 warps, one output row per warp (SwiGLU: row r of gate and of
 * up). Along the row each lane reads one 16-byte chunk of codes per step:
 *
 *   4-bit: 32 weights per chunk = two 16-column halves, each with its group's
 *          (s, o): acc += s * sum(lut[c] x) + o * sum(x)
 *   8-bit: 16 weights per chunk; the row's single scale is applied at the end
 *
 *   row r codes | lane0 | lane1 | ... | lane31 | lane0 | ...   (chunk = lane + 32 j)
 *
 * Two chunks are loaded before use; the 4-bit value table sits in shared
 * memory (16 entries in 16 banks: conflict-free for any code pattern); x is
 * bf16 through the read-only cache. With act-order (g_idx) each weight looks
 * up its own group's scale (the slow, exact path).
 *
 * Dequantize: one thread per 16 consecutive weights, bf16 out [rows][cols],
 * through decode_weight (packed.cuh), the same decode the host emulation uses.
 */
#include "packed.cuh"

#define PK_WARPS 8
#define PK_UNROLL 2
#define PK_MAX_MATS 3

enum { PK_STORE = 0, PK_ACCUM = 1, PK_SWIGLU = 2 };

struct pk_args {
    struct packed_view m[PK_MAX_MATS];
    const float *bias[PK_MAX_MATS];
    int n_mats;
    int64_t total_rows;
    const uint16_t *x;
    const float *x_scale; /* NULL or one float multiplying every dot (W8A8 decode) */
    float *y;
    uint16_t *y_bf16;
};

/* x[k0 .. k0+16) as floats. */
static __device__ __forceinline__ void load_x16(const uint16_t *x, int k0, float *xf)
{
    const uint4 *p = (const uint4 *)(x + k0);
#pragma unroll
    for (int h = 0; h < 2; h++) {
        uint4 v = __ldg(p + h);
        const uint32_t *u = (const uint32_t *)&v;
#pragma unroll
        for (int j = 0; j < 4; j++) {
            xf[8 * h + 2 * j] = __uint_as_float(u[j] << 16);
            xf[8 * h + 2 * j + 1] = __uint_as_float(u[j] & 0xffff0000u);
        }
    }
}

/* 16 weights (8 bytes of nibbles, element 2i low) of group g dotted with xf. */
template <int FMT>
static __device__ __forceinline__ float dot16_4bit(const struct packed_view &v, int64_t row,
                                                   int k0, uint2 codes, const float *xf,
                                                   const float *lut)
{
    const uint8_t *b = (const uint8_t *)&codes;
    float d = 0.0f, sx = 0.0f, s, o;
    if (v.g_idx) { /* act-order: a group per column */
        float acc = 0.0f;
#pragma unroll
        for (int j = 0; j < 16; j++) {
            group_scale<FMT>(v, row, v.g_idx[k0 + j], &s, &o);
            acc += (lut[(b[j >> 1] >> (4 * (j & 1))) & 15] * s + o) * xf[j];
        }
        return acc;
    }
    constexpr bool has_zero = FMT == QB_WFMT_INT4 || FMT == QB_WFMT_INT4_SYM ||
                              FMT == QB_WFMT_UINT_G;
#pragma unroll
    for (int j = 0; j < 8; j++) {
        d += lut[b[j] & 15] * xf[2 * j] + lut[b[j] >> 4] * xf[2 * j + 1];
        if constexpr (has_zero)
            sx += xf[2 * j] + xf[2 * j + 1];
    }
    group_scale<FMT>(v, row, k0 / v.group, &s, &o);
    return has_zero ? s * d + o * sx : s * d;
}

/* This lane's share of row . x for a 4-bit format. */
template <int FMT>
static __device__ float row_dot_4bit(const struct packed_view &v, int64_t row, const uint16_t *x,
                                     const float *lut)
{
    const uint4 *codes = (const uint4 *)(v.codes + row * (v.cols / 2));
    int n_chunks = v.cols / 32, c = threadIdx.x & 31;
    float acc = 0.0f;
    for (; c < n_chunks; c += 32 * PK_UNROLL) {
        uint4 q[PK_UNROLL];
#pragma unroll
        for (int u = 0; u < PK_UNROLL; u++)
            if (c + 32 * u < n_chunks)
                q[u] = __ldcs(codes + c + 32 * u);
#pragma unroll
        for (int u = 0; u < PK_UNROLL; u++) {
            if (c + 32 * u >= n_chunks)
                break;
            int k0 = (c + 32 * u) * 32;
            float xf[16];
            load_x16(x, k0, xf);
            acc += dot16_4bit<FMT>(v, row, k0, make_uint2(q[u].x, q[u].y), xf, lut);
            load_x16(x, k0 + 16, xf);
            acc += dot16_4bit<FMT>(v, row, k0 + 16, make_uint2(q[u].z, q[u].w), xf, lut);
        }
    }
    return acc;
}

/* This lane's share of row . x for an 8-bit format, row scale applied. */
template <int FMT>
static __device__ float row_dot_8bit(const struct packed_view &v, int64_t row, const uint16_t *x)
{
    const uint4 *codes = (const uint4 *)(v.codes + row * v.cols);
    int n_chunks = v.cols / 16, c = threadIdx.x & 31;
    float acc = 0.0f;
    for (; c < n_chunks; c += 32 * PK_UNROLL) {
        uint4 q[PK_UNROLL];
#pragma unroll
        for (int u = 0; u < PK_UNROLL; u++)
            if (c + 32 * u < n_chunks)
                q[u] = __ldcs(codes + c + 32 * u);
#pragma unroll
        for (int u = 0; u < PK_UNROLL; u++) {
            if (c + 32 * u >= n_chunks)
                break;
            const uint8_t *b = (const uint8_t *)&q[u];
            float xf[16];
            load_x16(x, (c + 32 * u) * 16, xf);
#pragma unroll
            for (int j = 0; j < 16; j += 2) {
                float2 w = code8_pair<FMT>(b[j], b[j + 1]);
                acc += w.x * xf[j] + w.y * xf[j + 1];
            }
        }
    }
    return acc * ((const float *)v.scales)[row];
}

template <int FMT>
static __device__ __forceinline__ float row_dot(const struct packed_view &v, int64_t row,
                                                const uint16_t *x, const float *lut)
{
    if constexpr (FMT == QB_WFMT_INT8 || FMT == QB_WFMT_FP8_E4M3 || FMT == QB_WFMT_FP8_E5M2)
        return row_dot_8bit<FMT>(v, row, x);
    else
        return row_dot_4bit<FMT>(v, row, x, lut);
}

template <int FMT, int MODE>
static __global__ void __launch_bounds__(PK_WARPS * 32) gemv_packed_kernel(struct pk_args a)
{
    __shared__ float lut[16];
    int lane = threadIdx.x & 31;
    int64_t r = (int64_t)blockIdx.x * PK_WARPS + (threadIdx.x >> 5);
    if (threadIdx.x < 16 && a.m[0].lut)
        lut[threadIdx.x] = a.m[0].lut[threadIdx.x];
    __syncthreads();
    if (r >= a.total_rows)
        return;
    float xs = a.x_scale ? *a.x_scale : 1.0f;
    if constexpr (MODE == PK_SWIGLU) {
        float g = qb_warp_sum(row_dot<FMT>(a.m[0], r, a.x, lut)) * xs;
        float u = qb_warp_sum(row_dot<FMT>(a.m[1], r, a.x, lut)) * xs;
        if (lane == 0)
            a.y_bf16[r] = qb_f32_to_bf16_bits(qb_silu(g) * u);
    } else {
        int m = 0;
        int64_t local = r;
        while (local >= a.m[m].rows) /* r < total_rows: always found */
            local -= a.m[m++].rows;
        float v = qb_warp_sum(row_dot<FMT>(a.m[m], local, a.x, lut)) * xs;
        if (lane == 0) {
            v += a.bias[m] ? a.bias[m][local] : 0.0f;
            a.y[r] = MODE == PK_ACCUM ? a.y[r] + v : v;
        }
    }
}

template <int FMT>
static cudaError_t gemv_packed_fmt(const struct pk_args *a, int mode, cudaStream_t s)
{
    int64_t blocks = (a->total_rows + PK_WARPS - 1) / PK_WARPS;
    dim3 grid((unsigned)blocks);
    if (mode == PK_STORE)
        gemv_packed_kernel<FMT, PK_STORE><<<grid, PK_WARPS * 32, 0, s>>>(*a);
    else if (mode == PK_ACCUM)
        gemv_packed_kernel<FMT, PK_ACCUM><<<grid, PK_WARPS * 32, 0, s>>>(*a);
    else
        gemv_packed_kernel<FMT, PK_SWIGLU><<<grid, PK_WARPS * 32, 0, s>>>(*a);
    return cudaGetLastError();
}

cudaError_t qb_gemv_packed_launch(const struct qb_cuda_weight *const *w, int n_w,
                                  const uint16_t *x, const float *x_scale, float *y,
                                  uint16_t *y_bf16, int mode, cudaStream_t s)
{
    struct pk_args a = {};
    if (n_w < 1 || n_w > PK_MAX_MATS)
        return cudaErrorInvalidValue;
    for (int i = 0; i < n_w; i++) {
        a.m[i] = packed_view_of(w[i]);
        a.bias[i] = w[i]->bias;
        a.total_rows += w[i]->rows;
    }
    if (mode == PK_SWIGLU)
        a.total_rows = w[0]->rows;
    a.n_mats = n_w;
    a.x = x;
    a.x_scale = x_scale;
    a.y = y;
    a.y_bf16 = y_bf16;
    switch (w[0]->fmt) {
    case QB_WFMT_INT8: return gemv_packed_fmt<QB_WFMT_INT8>(&a, mode, s);
    case QB_WFMT_FP8_E4M3: return gemv_packed_fmt<QB_WFMT_FP8_E4M3>(&a, mode, s);
    case QB_WFMT_FP8_E5M2: return gemv_packed_fmt<QB_WFMT_FP8_E5M2>(&a, mode, s);
    case QB_WFMT_INT4: return gemv_packed_fmt<QB_WFMT_INT4>(&a, mode, s);
    case QB_WFMT_INT4_SYM: return gemv_packed_fmt<QB_WFMT_INT4_SYM>(&a, mode, s);
    case QB_WFMT_UINT_G: return gemv_packed_fmt<QB_WFMT_UINT_G>(&a, mode, s);
    case QB_WFMT_NF4: return gemv_packed_fmt<QB_WFMT_NF4>(&a, mode, s);
    case QB_WFMT_NF4_DQ: return gemv_packed_fmt<QB_WFMT_NF4_DQ>(&a, mode, s);
    case QB_WFMT_NVFP4: return gemv_packed_fmt<QB_WFMT_NVFP4>(&a, mode, s);
    case QB_WFMT_MXFP4: return gemv_packed_fmt<QB_WFMT_MXFP4>(&a, mode, s);
    default: return cudaErrorInvalidValue;
    }
}

/* ---- dequantize (prefill) ------------------------------------------------------ */

template <int FMT>
static __global__ void dequant_kernel(struct packed_view v, uint16_t *out)
{
    int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    int per_row = v.cols / 16;
    if (t >= v.rows * per_row)
        return;
    int64_t row = t / per_row;
    int k0 = (int)(t % per_row) * 16;
    uint16_t *o = out + row * v.cols + k0;
    for (int j = 0; j < 16; j++)
        o[j] = qb_f32_to_bf16_bits(decode_weight<FMT>(v, row, k0 + j));
}

template <int FMT>
static cudaError_t dequant_fmt(const struct packed_view &v, uint16_t *out, cudaStream_t s)
{
    int64_t threads = v.rows * (v.cols / 16);
    dequant_kernel<FMT><<<(unsigned)((threads + 255) / 256), 256, 0, s>>>(v, out);
    return cudaGetLastError();
}

cudaError_t qb_dequant_launch(const struct qb_cuda_weight *w, uint16_t *out, cudaStream_t s)
{
    struct packed_view v = packed_view_of(w);
    switch (w->fmt) {
    case QB_WFMT_INT8: return dequant_fmt<QB_WFMT_INT8>(v, out, s);
    case QB_WFMT_FP8_E4M3: return dequant_fmt<QB_WFMT_FP8_E4M3>(v, out, s);
    case QB_WFMT_FP8_E5M2: return dequant_fmt<QB_WFMT_FP8_E5M2>(v, out, s);
    case QB_WFMT_INT4: return dequant_fmt<QB_WFMT_INT4>(v, out, s);
    case QB_WFMT_INT4_SYM: return dequant_fmt<QB_WFMT_INT4_SYM>(v, out, s);
    case QB_WFMT_UINT_G: return dequant_fmt<QB_WFMT_UINT_G>(v, out, s);
    case QB_WFMT_NF4: return dequant_fmt<QB_WFMT_NF4>(v, out, s);
    case QB_WFMT_NF4_DQ: return dequant_fmt<QB_WFMT_NF4_DQ>(v, out, s);
    case QB_WFMT_NVFP4: return dequant_fmt<QB_WFMT_NVFP4>(v, out, s);
    case QB_WFMT_MXFP4: return dequant_fmt<QB_WFMT_MXFP4>(v, out, s);
    default: return cudaErrorInvalidValue;
    }
}

extern "C" enum qb_status qb_cuda_dequant(struct qb_cuda_ctx *c, const struct qb_cuda_weight *w,
                                          uint16_t *out, struct qb_err *err)
{
    enum qb_status st = QB_OK;
    if (w->fmt == QB_WFMT_BF16)
        return qb_err_set(err, QB_ERR_INTERNAL, "qb_cuda_dequant: weight is already bf16");
    CUDA_CHECK(qb_dequant_launch(w, out, c->stream));
out:
    return st;
}
