/*
 * gemv_packed.cu - fused dequantize-GEMV for decode and dequantize-to-bf16
 * for prefill, over every packed format of packed.cuh.
 *
 * GEMV block: 8 warps; each warp owns two output rows for the 4-bit formats
 * and one for the 8-bit ones (with SwiGLU, row r of gate and row r of up, one
 * output). Along the rows each lane reads 16-byte chunks of codes (chunk c =
 * lane + 32 j):
 *
 *   4-bit: 32 weights per chunk = two 16-column halves, each inside one group
 *          (group % 16 == 0): acc += s * sum(lut[code] x) + o * sum(x)
 *   8-bit: 16 weights per chunk; the row's single scale is applied at the end
 *
 *   row r codes | lane0 | lane1 | ... | lane31 | lane0 | ...
 *
 * The loads of a step (4-bit: four chunks of both rows and their group scales
 * and zeros; 8-bit: two chunks) are all issued before any is used, so a scale
 * load never waits behind the codes. Two rows share each x chunk (bf16
 * through the read-only cache) and, for the zero-point formats, its sum.
 * The 4-bit value table (and nf4-dq's 256-entry second-level map) sits in
 * shared memory: 16 entries in 16 banks, conflict-free for any code pattern.
 * With act-order (g_idx) each weight looks up its own group's scale (the
 * slow, exact path).
 *
 * The 4-bit formats normally take the tensor-core GEMV of gemv_mma.cu; this
 * kernel runs them with act-order (g_idx) or shapes that one does not take.
 * Launched like the bf16 GEMV (gemv.cu): with programmatic dependent launch
 * a warp issues its first code loads before waiting for the kernel before it.
 *
 * Dequantize (prefill): one thread per 8 consecutive weights of a row; it
 * reads their codes (4 or 8 bytes) and the group's scale once and writes the
 * 8 bf16 values as one 16-byte store, so both sides are coalesced. Values are
 * those of decode_weight (packed.cuh), the decode the host emulation checks.
 */
#include "packed.cuh"

#define PK_WARPS 8
#define PK_UNROLL 4   /* 4-bit: 16-byte chunks of each of a warp's two rows in flight */
#define PK_UNROLL_8 2 /* 8-bit: one row per warp (measured faster than two on the H100) */
#define PK_MAX_MATS 3
#define PK_LUT_MAX (QB_LUT_DYN_OFFSET + 256)

enum { PK_STORE = 0, PK_ACCUM = 1, PK_SWIGLU = 2 };

struct pk_args {
    struct packed_view m[PK_MAX_MATS];
    const float *bias[PK_MAX_MATS];
    int n_mats;
    int64_t total_rows;   /* output rows (SwiGLU: rows of gate) */
    const uint16_t *x;
    const float *x_scale; /* NULL or one float multiplying every dot (W8A8 decode) */
    float *y;
    uint16_t *y_bf16;
};

/* One row of one matrix, as the inner loops read it. */
struct pk_row {
    const uint4 *codes;   /* the row's 16-byte chunks */
    struct packed_view v; /* its matrix */
    int64_t row;          /* row index inside that matrix */
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

/* Programmatic dependent launch: the first loads of weights are issued before
 * this, x (written by the previous kernel) is read after it. */
static __device__ __forceinline__ void pdl_wait_once(bool *waited)
{
    if (!*waited) {
        qb_pdl_wait();
        qb_pdl_trigger();
        *waited = true;
    }
}

/* ---- 4-bit ------------------------------------------------------------------- */

/* sum_j lut[code_j] x_j over 16 codes (8 bytes, element 2i low). */
static __device__ __forceinline__ float dot16_codes(uint32_t lo, uint32_t hi, const float *xf,
                                                    const float *lut)
{
    float d = 0.0f;
#pragma unroll
    for (int j = 0; j < 4; j++) {
        uint32_t b = (lo >> (8 * j)) & 0xffu;
        d += lut[b & 15] * xf[2 * j] + lut[b >> 4] * xf[2 * j + 1];
    }
#pragma unroll
    for (int j = 0; j < 4; j++) {
        uint32_t b = (hi >> (8 * j)) & 0xffu;
        d += lut[b & 15] * xf[8 + 2 * j] + lut[b >> 4] * xf[8 + 2 * j + 1];
    }
    return d;
}

/* Act-order (g_idx): every weight finds its own group. */
template <int FMT>
static __device__ float row_dot_4bit_gidx(const struct pk_row &r, const uint16_t *x,
                                          const float *lut)
{
    int n_chunks = r.v.cols / 32;
    float acc = 0.0f;
    qb_pdl_wait(); /* idempotent: the second row's call passes straight through */
    qb_pdl_trigger();
    for (int c = threadIdx.x & 31; c < n_chunks; c += 32) {
        uint4 q = __ldcs(r.codes + pk_chunk4(r.v, c));
        const uint8_t *b = (const uint8_t *)&q;
        float xf[16];
#pragma unroll
        for (int h = 0; h < 2; h++) {
            int k0 = c * 32 + 16 * h;
            load_x16(x, k0, xf);
#pragma unroll
            for (int j = 0; j < 16; j++) {
                float s, o;
                group_scale<FMT>(r.v, r.row, r.v.g_idx[k0 + j], &s, &o);
                acc += (lut[(b[8 * h + (j >> 1)] >> (4 * (j & 1))) & 15] * s + o) * xf[j];
            }
        }
    }
    return acc;
}

/* acc[i] += this lane's share of row_i . x for two rows of a 4-bit format
 * (grouped scales, no g_idx). */
template <int FMT>
static __device__ __forceinline__ void dot_two_rows_4bit(const struct pk_row *r,
                                                         const uint16_t *x, const float *lut,
                                                         float acc[2])
{
    constexpr bool zp = pk_has_zero<FMT>();
    const int n_chunks = r[0].v.cols / 32;
    bool waited = false;
    for (int c0 = threadIdx.x & 31; c0 < n_chunks; c0 += 32 * PK_UNROLL) {
        uint4 q[2][PK_UNROLL];
        struct pk_scale_raw sr[2][PK_UNROLL][2];
#pragma unroll
        for (int u = 0; u < PK_UNROLL; u++) {
            int c = c0 + 32 * u;
            if (c >= n_chunks)
                break;
#pragma unroll
            for (int i = 0; i < 2; i++) {
                int g0 = c * 32 / r[i].v.group, g1 = (c * 32 + 16) / r[i].v.group;
                q[i][u] = __ldcs(r[i].codes + pk_chunk4(r[i].v, c));
                sr[i][u][0] = load_scale<FMT>(r[i].v, r[i].row, g0);
                sr[i][u][1] = g1 == g0 ? sr[i][u][0] : load_scale<FMT>(r[i].v, r[i].row, g1);
            }
        }
        pdl_wait_once(&waited);
#pragma unroll
        for (int u = 0; u < PK_UNROLL; u++) {
            int c = c0 + 32 * u;
            if (c >= n_chunks)
                break;
#pragma unroll
            for (int h = 0; h < 2; h++) {
                float xf[16], sx = 0.0f;
                load_x16(x, c * 32 + 16 * h, xf);
                if constexpr (zp) {
#pragma unroll
                    for (int j = 0; j < 16; j++)
                        sx += xf[j];
                }
#pragma unroll
                for (int i = 0; i < 2; i++) {
                    const uint32_t *w = (const uint32_t *)&q[i][u];
                    float d = dot16_codes(w[2 * h], w[2 * h + 1], xf, lut);
                    float2 so = decode_scale<FMT>(r[i].v, sr[i][u][h], lut);
                    acc[i] += zp ? so.x * d + so.y * sx : so.x * d;
                }
            }
        }
    }
    pdl_wait_once(&waited); /* a lane with no chunk still reads y after the wait */
}

/* ---- 8-bit ------------------------------------------------------------------- */

/* acc[i] += this lane's share of row_i . x for NR rows of an 8-bit format,
 * row scales applied. */
template <int FMT, int NR>
static __device__ __forceinline__ void dot_rows_8bit(const struct pk_row *r, const uint16_t *x,
                                                     float acc[2])
{
    const int n_chunks = r[0].v.cols / 16;
    float part[2] = {0.0f, 0.0f};
    bool waited = false;
    for (int c0 = threadIdx.x & 31; c0 < n_chunks; c0 += 32 * PK_UNROLL_8) {
        uint4 q[NR][PK_UNROLL_8];
#pragma unroll
        for (int u = 0; u < PK_UNROLL_8; u++)
            if (c0 + 32 * u < n_chunks)
#pragma unroll
                for (int i = 0; i < NR; i++)
                    q[i][u] = __ldcs(r[i].codes + c0 + 32 * u);
        pdl_wait_once(&waited);
#pragma unroll
        for (int u = 0; u < PK_UNROLL_8; u++) {
            if (c0 + 32 * u >= n_chunks)
                break;
            float xf[16];
            load_x16(x, (c0 + 32 * u) * 16, xf);
#pragma unroll
            for (int i = 0; i < NR; i++) {
                const uint8_t *b = (const uint8_t *)&q[i][u];
#pragma unroll
                for (int j = 0; j < 16; j += 2) {
                    float2 w = code8_pair<FMT>(b[j], b[j + 1]);
                    part[i] += w.x * xf[j] + w.y * xf[j + 1];
                }
            }
        }
    }
    pdl_wait_once(&waited); /* a lane with no chunk still reads y after the wait */
    for (int i = 0; i < NR; i++)
        acc[i] += part[i] * __ldg((const float *)r[i].v.scales + r[i].row);
}

/* ---- the kernel -------------------------------------------------------------- */

/* Row r (< total_rows) of the concatenated outputs. The loop is unrolled so
 * the kernel parameters are never indexed at run time (which would copy them
 * to local memory). */
static __device__ __forceinline__ struct pk_row locate_row(const struct pk_args &a, int64_t r,
                                                           const float **bias)
{
    struct pk_row out = {};
    bool found = false;
#pragma unroll
    for (int m = 0; m < PK_MAX_MATS; m++) {
        if (found || m >= a.n_mats)
            continue;
        if (r < a.m[m].rows) {
            out.v = a.m[m];
            out.row = r;
            *bias = a.bias[m] ? a.bias[m] + r : NULL;
            found = true;
        } else {
            r -= a.m[m].rows;
        }
    }
    return out;
}

/* The row's codes; 4-bit chunk c at + pk_chunk4(v, c). */
static __device__ __forceinline__ const uint4 *row_codes(const struct packed_view &v, int64_t row,
                                                         bool eight_bit)
{
    return (const uint4 *)(v.codes + (eight_bit ? row * v.cols : pk_code4_at(v, row, 0)));
}

/* Output rows per warp outside SwiGLU: two for 4-bit (x shared by both). */
template <int FMT> static constexpr int pk_rows_per_warp()
{
    return FMT == QB_WFMT_INT8 || FMT == QB_WFMT_FP8_E4M3 || FMT == QB_WFMT_FP8_E5M2 ? 1 : 2;
}

template <int FMT, int MODE>
static __global__ void __launch_bounds__(PK_WARPS * 32) gemv_packed_kernel(struct pk_args a)
{
    constexpr bool eight = FMT == QB_WFMT_INT8 || FMT == QB_WFMT_FP8_E4M3 ||
                           FMT == QB_WFMT_FP8_E5M2;
    constexpr int lut_len = FMT == QB_WFMT_NF4_DQ ? PK_LUT_MAX : 16;
    __shared__ float lut[PK_LUT_MAX];
    int lane = threadIdx.x & 31;
    int64_t slot = (int64_t)blockIdx.x * PK_WARPS + (threadIdx.x >> 5);
    int64_t r0 = MODE == PK_SWIGLU ? slot : pk_rows_per_warp<FMT>() * slot;
    struct pk_row rows[2];
    const float *bias[2] = {NULL, NULL};
    bool has[2] = {true, false};
    float acc[2] = {0.0f, 0.0f};
    if (!eight)
        for (int i = threadIdx.x; i < lut_len; i += blockDim.x)
            lut[i] = a.m[0].lut[i];
    __syncthreads();
    if (r0 >= a.total_rows)
        return;
    if constexpr (MODE == PK_SWIGLU) {
        rows[0] = {NULL, a.m[0], r0};
        rows[1] = {NULL, a.m[1], r0};
        has[1] = true;
    } else {
        rows[0] = locate_row(a, r0, &bias[0]);
        has[1] = pk_rows_per_warp<FMT>() == 2 && r0 + 1 < a.total_rows;
        rows[1] = has[1] ? locate_row(a, r0 + 1, &bias[1]) : rows[0];
    }
    for (int i = 0; i < 2; i++)
        rows[i].codes = row_codes(rows[i].v, rows[i].row, eight);
    if constexpr (eight) {
        if constexpr (MODE == PK_SWIGLU)
            dot_rows_8bit<FMT, 2>(rows, a.x, acc);
        else
            dot_rows_8bit<FMT, 1>(rows, a.x, acc);
    } else {
        if (rows[0].v.g_idx || rows[1].v.g_idx) {
            acc[0] = row_dot_4bit_gidx<FMT>(rows[0], a.x, lut);
            acc[1] = has[1] ? row_dot_4bit_gidx<FMT>(rows[1], a.x, lut) : 0.0f;
        } else {
            dot_two_rows_4bit<FMT>(rows, a.x, lut, acc);
        }
    }
    float xs = a.x_scale ? *a.x_scale : 1.0f;
    acc[0] = qb_warp_sum(acc[0]) * xs;
    acc[1] = qb_warp_sum(acc[1]) * xs;
    if (lane != 0)
        return;
    if constexpr (MODE == PK_SWIGLU) {
        a.y_bf16[r0] = qb_f32_to_bf16_bits(qb_silu(acc[0]) * acc[1]);
    } else {
        for (int i = 0; i < 2; i++) {
            if (!has[i])
                continue;
            float v = acc[i] + (bias[i] ? *bias[i] : 0.0f);
            a.y[r0 + i] = MODE == PK_ACCUM ? a.y[r0 + i] + v : v;
        }
    }
}

template <int FMT>
static cudaError_t gemv_packed_fmt(const struct pk_args *a, int mode, bool pdl, cudaStream_t s)
{
    int64_t per_block = mode == PK_SWIGLU ? PK_WARPS : pk_rows_per_warp<FMT>() * PK_WARPS;
    int64_t blocks = (a->total_rows + per_block - 1) / per_block;
    dim3 grid((unsigned)blocks), block(PK_WARPS * 32);
    if (blocks > 0x7fffffff)
        return cudaErrorInvalidValue;
    if (mode == PK_STORE)
        return qb_launch(pdl, gemv_packed_kernel<FMT, PK_STORE>, grid, block, s, *a);
    if (mode == PK_ACCUM)
        return qb_launch(pdl, gemv_packed_kernel<FMT, PK_ACCUM>, grid, block, s, *a);
    return qb_launch(pdl, gemv_packed_kernel<FMT, PK_SWIGLU>, grid, block, s, *a);
}

cudaError_t qb_gemv_packed_launch(const struct qb_cuda_weight *const *w, int n_w,
                                  const uint16_t *x, const float *x_scale, float *y,
                                  uint16_t *y_bf16, int mode, int pdl, cudaStream_t s)
{
    struct pk_args a = {};
    if (n_w < 1 || n_w > PK_MAX_MATS)
        return cudaErrorInvalidValue;
    if (!x_scale) { /* 4-bit formats go to the tensor cores when they can (gemv_mma.cu) */
        struct qb_gemv_in in = {x, NULL, NULL, 0.0f};
        cudaError_t e = qb_gemv_mma_launch(w, n_w, &in, y, y_bf16, mode, NULL, pdl, s);
        if (e != cudaErrorNotSupported)
            return e;
    }
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
    case QB_WFMT_INT8: return gemv_packed_fmt<QB_WFMT_INT8>(&a, mode, pdl, s);
    case QB_WFMT_FP8_E4M3: return gemv_packed_fmt<QB_WFMT_FP8_E4M3>(&a, mode, pdl, s);
    case QB_WFMT_FP8_E5M2: return gemv_packed_fmt<QB_WFMT_FP8_E5M2>(&a, mode, pdl, s);
    case QB_WFMT_INT4: return gemv_packed_fmt<QB_WFMT_INT4>(&a, mode, pdl, s);
    case QB_WFMT_INT4_SYM: return gemv_packed_fmt<QB_WFMT_INT4_SYM>(&a, mode, pdl, s);
    case QB_WFMT_UINT_G: return gemv_packed_fmt<QB_WFMT_UINT_G>(&a, mode, pdl, s);
    case QB_WFMT_NF4: return gemv_packed_fmt<QB_WFMT_NF4>(&a, mode, pdl, s);
    case QB_WFMT_NF4_DQ: return gemv_packed_fmt<QB_WFMT_NF4_DQ>(&a, mode, pdl, s);
    case QB_WFMT_NVFP4: return gemv_packed_fmt<QB_WFMT_NVFP4>(&a, mode, pdl, s);
    case QB_WFMT_MXFP4: return gemv_packed_fmt<QB_WFMT_MXFP4>(&a, mode, pdl, s);
    default: return cudaErrorInvalidValue;
    }
}

/* ---- dequantize (prefill) ------------------------------------------------------ */

/* Eight bf16 values as one 16-byte store. */
static __device__ __forceinline__ uint4 pack8_bf16(const float *f)
{
    uint4 o;
    uint32_t *u = (uint32_t *)&o;
#pragma unroll
    for (int j = 0; j < 4; j++)
        u[j] = (uint32_t)qb_f32_to_bf16_bits(f[2 * j]) |
               ((uint32_t)qb_f32_to_bf16_bits(f[2 * j + 1]) << 16);
    return o;
}

/* Weights k0 .. k0+8 of row `row` (k0 % 8 == 0) as floats. */
template <int FMT>
static __device__ __forceinline__ void decode8(const struct packed_view &v, int64_t row, int k0,
                                               const float *lut, float *f)
{
    if constexpr (FMT == QB_WFMT_INT8 || FMT == QB_WFMT_FP8_E4M3 || FMT == QB_WFMT_FP8_E5M2) {
        uint2 q = __ldcs((const uint2 *)(v.codes + row * v.cols + k0));
        const uint8_t *b = (const uint8_t *)&q;
        float s = __ldg((const float *)v.scales + row);
#pragma unroll
        for (int j = 0; j < 8; j += 2) {
            float2 w = code8_pair<FMT>(b[j], b[j + 1]);
            f[j] = w.x * s;
            f[j + 1] = w.y * s;
        }
    } else {
        uint32_t q = __ldcs((const uint32_t *)(v.codes + pk_code4_at(v, row, k0)));
        if (v.g_idx) {
#pragma unroll
            for (int j = 0; j < 8; j++)
                f[j] = decode_weight<FMT>(v, row, k0 + j);
            return;
        }
        float2 so = decode_scale<FMT>(v, load_scale<FMT>(v, row, k0 / v.group), lut);
#pragma unroll
        for (int j = 0; j < 8; j++)
            f[j] = lut[(q >> (4 * j)) & 15] * so.x + so.y;
    }
}

template <int FMT>
static __global__ void __launch_bounds__(256) dequant_kernel(struct packed_view v, uint16_t *out)
{
    constexpr int lut_len = FMT == QB_WFMT_NF4_DQ ? PK_LUT_MAX : 16;
    __shared__ float lut[PK_LUT_MAX];
    int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    int per_row = v.cols / 8;
    if (!qb_packed_is_8bit((enum qb_wfmt)FMT))
        for (int i = threadIdx.x; i < lut_len; i += blockDim.x)
            lut[i] = v.lut[i];
    __syncthreads();
    if (t >= v.rows * per_row)
        return;
    int64_t row = t / per_row;
    int k0 = (int)(t % per_row) * 8;
    float f[8];
    decode8<FMT>(v, row, k0, lut, f);
    *(uint4 *)(out + row * v.cols + k0) = pack8_bf16(f);
}

template <int FMT>
static cudaError_t dequant_fmt(const struct packed_view &v, uint16_t *out, cudaStream_t s)
{
    int64_t threads = v.rows * (v.cols / 8);
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
