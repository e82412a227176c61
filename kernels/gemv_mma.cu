/*
 * gemv_mma.cu - the decode GEMV of the 4-bit formats on the tensor cores.
 *
 * The fused dequantize-GEMV of gemv_packed.cu spends ~10 instructions per
 * weight (nibble extraction, a table lookup, an f32 FMA, x conversions) and
 * runs out of issue slots long before the memory bus is busy (ncu: issue
 * slots 44 % busy, DRAM 19 %). Here the weights become f16 pairs with two or
 * three instructions per pair and the multiply-adds go to mma.sync
 * m16n8k16 (f16 inputs, f32 accumulation), 128 weights per instruction:
 *
 *   D[16 x 8] += A[16 x 16] . B[16 x 8]
 *   B = 8 weight rows (n) x 16 columns (k), A = x in every one of its 16 rows
 *   (so every row of D is the same 8 outputs; the extra rows cost nothing
 *   that matters: decode is bound by the weight stream, not the tensor cores)
 *
 * Layout of one step (128 columns) of a tile of 8 rows: lane (g = lane / 4,
 * t = lane % 4) reads 16 bytes = 32 nibbles of row g, columns
 * [128 s + 32 t, +32). The mma sums over k, so any permutation of k applied
 * to A and B alike gives the same result; we pick the one that makes the
 * dequantization cheap: word w (8 nibbles = columns 8w .. 8w+7) gives the
 * f16 pairs (nibble p, nibble p + 4), p = 0..3, with one LOP3 each, and mma
 * j (0..7) of the step takes B registers {pair 2(j%2), pair 2(j%2)+1} of word
 * j/2, i.e. columns (c, c+4) and (c+1, c+5) with c = 8(j/2) + 2(j%2). A's
 * registers hold x at the same columns; they are built once per block in
 * shared memory (as f16, one 16-byte entry per (step, j, t): the register
 * quad of the mma, rows 8..15 zero), since every warp of the block reads the
 * same x.
 *
 * Dequantization to f16: int groups (1024 + code via the 0x6400 exponent
 * trick) - (1024 + zero), exact, times the group's f16 scale (exact: the
 * stored precision); taking the scale after the mma per 128-column group
 * measured slower (its per-step chains and extra registers cost more than the
 * f16 multiplies they save). The table formats (nf4, nf4-dq, nvfp4, mxfp4)
 * multiply their f32 table value by the f32 scale and round the product. Each weight
 * is thus rounded once to f16 (11 significant bits), finer than the bf16 the
 * prefill path dequantizes to; x is rounded from bf16 to f16 (exact for
 * |x| in [2^-14, 65504]). Accumulation is f32.
 *
 * Block: MMA_WARPS warps share 2 tiles (16 output rows; with SwiGLU 8 rows
 * of gate and the same 8 of up) and split the columns by steps (warp w takes
 * steps w, w + MMA_WARPS, ...); their partial sums meet in shared memory.
 * MMA_UNROLL steps of codes and scales are loaded before any is used. With
 * programmatic dependent launch the first loads are issued before waiting
 * for the previous kernel (see qb_cuda_common.cuh).
 *
 * Taken when every matrix of the launch is a 4-bit format without g_idx
 * whose rows are a multiple of 8 and whose group is a power of two (at least
 * 32, or nvfp4's 16) (qb_gemv_mma_launch answers
 * cudaErrorNotSupported otherwise and gemv_packed.cu's kernel runs).
 */
#include "packed.cuh"

#define MMA_WARPS 4
#define MMA_UNROLL 8 /* 4096 columns: a warp's whole share in flight at once (8 > 4 measured) */
#define MMA_TILES 2
#define MMA_STEP 128
#define MMA_MAX_MATS 3
#define MMA_LUT_MAX (QB_LUT_DYN_OFFSET + 256)
#define MMA_STATIC_SMEM_MAX (48 * 1024)

enum { MMA_STORE = 0, MMA_ACCUM = 1, MMA_SWIGLU = 2 };

struct mma_args {
    struct packed_view m[MMA_MAX_MATS];
    const float *bias[MMA_MAX_MATS];
    int n_mats;
    int64_t total_rows; /* output rows (SwiGLU: rows of gate) */
    int n_steps;        /* ceil(cols / 128) */
    const uint16_t *x;
    float *y;
    uint16_t *y_bf16;
};

/* One tile of 8 rows as a lane sees it: its row's codes and its matrix. */
struct mma_tile {
    struct packed_view v;
    int64_t row;        /* this lane's row inside v */
    const uint4 *codes; /* that row's 16-byte chunks */
    int64_t sbase;      /* flat index of the row's first group scale: row * groups */
    int gshift;         /* log2(group): the group of column c is c >> gshift */
    bool valid;
};

/* ---- A: x in fragment order --------------------------------------------------- */

static __device__ __forceinline__ uint32_t half2_bits(float lo, float hi)
{
    __half2 h = __floats2half2_rn(lo, hi);
    return *(uint32_t *)&h;
}

/* xs[(s * 8 + j) * 4 + t] = the A registers of lane t for mma j of step s:
 * {x(c), x(c+4)}, 0, {x(c+1), x(c+5)}, 0 as f16 pairs (rows 8..15 of A are
 * zero; one 16-byte load fills the register quad the mma reads), c = 128 s +
 * 32 t + 8 (j / 2) + 2 (j % 2); zero past cols. */
static __device__ void build_x_fragments(const uint16_t *x, int cols, int n_steps, uint4 *xs)
{
    for (int item = threadIdx.x; item < n_steps * 16; item += blockDim.x) {
        int s = item >> 4, t = (item >> 2) & 3, w = item & 3;
        int base = s * MMA_STEP + 32 * t + 8 * w;
        float f[8];
        if (base < cols) {
            uint4 v = __ldg((const uint4 *)(x + base));
            const uint32_t *u = (const uint32_t *)&v;
#pragma unroll
            for (int k = 0; k < 4; k++) {
                f[2 * k] = __uint_as_float(u[k] << 16);
                f[2 * k + 1] = __uint_as_float(u[k] & 0xffff0000u);
            }
        } else {
#pragma unroll
            for (int k = 0; k < 8; k++)
                f[k] = 0.0f;
        }
#pragma unroll
        for (int h = 0; h < 2; h++) { /* j = 2w + h: c = 8w + 2h */
            int j = 2 * w + h;
            xs[(s * 8 + j) * 4 + t] = make_uint4(half2_bits(f[2 * h], f[2 * h + 4]), 0u,
                                                 half2_bits(f[2 * h + 1], f[2 * h + 5]), 0u);
        }
    }
}

/* ---- B: weights as f16 pairs -------------------------------------------------- */

/* The group scale of a lane's 16 columns: for the integer groups as f16
 * pairs (s, s) and (1024 + zero, 1024 + zero), for the table formats in f32. */
struct mma_scale {
    __half2 s, z;
    float f;
};

template <int FMT>
static __device__ __forceinline__ struct mma_scale to_mma_scale(const struct packed_view &v,
                                                                struct pk_scale_raw r,
                                                                const float *lut)
{
    struct mma_scale m = {};
    if constexpr (pk_has_zero<FMT>()) {
        __half_raw h;
        h.x = (uint16_t)r.s;
        m.s = __half2half2(__half(h));
        m.z = __float2half2_rn(1024.0f + (float)r.zero);
    } else {
        m.f = decode_scale<FMT>(v, r, lut).x;
    }
    return m;
}

/* (q & 0x000f000f) | 0x64006400 in one LOP3: f16 pair (1024 + lo code, 1024 + hi code). */
static __device__ __forceinline__ __half2 nibbles_plus_1024(uint32_t q)
{
    uint32_t d;
    asm("lop3.b32 %0, %1, %2, %3, 0xea;" : "=r"(d) : "r"(q), "n"(0x000f000f), "n"(0x64006400));
    return *(__half2 *)&d;
}

/* Pair p (nibbles p and p + 4 of word q) dequantized to f16. */
template <int FMT>
static __device__ __forceinline__ uint32_t dequant_pair(uint32_t q, int p, struct mma_scale sc,
                                                        const float *lut)
{
    __half2 v;
    if constexpr (pk_has_zero<FMT>()) {
        v = __hmul2(__hsub2(nibbles_plus_1024(q >> (4 * p)), sc.z), sc.s); /* (code-zero) s */
    } else { /* one rounding, of the f32 product */
        v = __floats2half2_rn(lut[(q >> (4 * p)) & 15] * sc.f,
                              lut[(q >> (4 * p + 16)) & 15] * sc.f);
    }
    return *(uint32_t *)&v;
}

static __device__ __forceinline__ void mma_16816(float *d, uint4 a, uint32_t b0, uint32_t b1)
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
                 "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a.x), "r"(a.y), "r"(a.z), "r"(a.w), "r"(b0), "r"(b1));
}

/* ---- the kernel ------------------------------------------------------------- */

/* nvfp4's groups of 16 put two groups in a lane's 32 columns; every other
 * format's group is a multiple of 32 here (mma_applies). */
template <int FMT> static constexpr bool mma_half_groups()
{
    return FMT == QB_WFMT_NVFP4;
}

/* Codes and raw scales of the steps s0, s0 + MMA_WARPS, ... (MMA_UNROLL of them). */
template <int U> struct mma_batch {
    uint4 q[U][MMA_TILES];
    struct pk_scale_raw sr[U][MMA_TILES][2]; /* columns [0,16) and [16,32) */
};

template <int FMT, int U>
static __device__ __forceinline__ void load_batch(const struct mma_tile *tl, int s0, int n_steps,
                                                  struct mma_batch<U> *b)
{
    int t = threadIdx.x & 3;
#pragma unroll
    for (int u = 0; u < U; u++) {
        int s = s0 + u * MMA_WARPS;
#pragma unroll
        for (int i = 0; i < MMA_TILES; i++) {
            int col = s * MMA_STEP + 32 * t;
            b->q[u][i] = make_uint4(0, 0, 0, 0);
            b->sr[u][i][0] = {0u, 0u, 0.0f};
            if constexpr (mma_half_groups<FMT>())
                b->sr[u][i][1] = {0u, 0u, 0.0f};
            if (s >= n_steps || !tl[i].valid || col >= tl[i].v.cols)
                continue;
            b->q[u][i] = __ldcs(tl[i].codes + col / 32);
            b->sr[u][i][0] = load_scale_at<FMT>(tl[i].v, tl[i].sbase + (col >> tl[i].gshift));
            if constexpr (mma_half_groups<FMT>())
                b->sr[u][i][1] = load_scale_at<FMT>(tl[i].v,
                                                    tl[i].sbase + ((col + 16) >> tl[i].gshift));
        }
    }
}

template <int FMT, int U>
static __device__ __forceinline__ void mma_batch_run(const struct mma_tile *tl,
                                                     const struct mma_batch<U> *b, int s0,
                                                     int n_steps, const uint4 *xs,
                                                     const float *lut, float d[MMA_TILES][4])
{
    int t = threadIdx.x & 3;
#pragma unroll
    for (int u = 0; u < U; u++) {
        int s = s0 + u * MMA_WARPS;
        if (s >= n_steps)
            break;
        struct mma_scale sc[MMA_TILES][2];
#pragma unroll
        for (int i = 0; i < MMA_TILES; i++) {
            sc[i][0] = to_mma_scale<FMT>(tl[i].v, b->sr[u][i][0], lut);
            sc[i][1] = mma_half_groups<FMT>() ? to_mma_scale<FMT>(tl[i].v, b->sr[u][i][1], lut)
                                              : sc[i][0];
        }
#pragma unroll
        for (int j = 0; j < 8; j++) {
            uint4 a = xs[(s * 8 + j) * 4 + t];
            int w = j >> 1, p = 2 * (j & 1);
#pragma unroll
            for (int i = 0; i < MMA_TILES; i++) {
                const uint32_t *q = (const uint32_t *)&b->q[u][i];
                struct mma_scale g = sc[i][w >> 1];
                mma_16816(d[i], a, dequant_pair<FMT>(q[w], p, g, lut),
                          dequant_pair<FMT>(q[w], p + 1, g, lut));
            }
        }
    }
}

/* Tile i of this block: rows [row0, row0 + 8) of the concatenated outputs
 * (SwiGLU: the same rows of gate, then of up). Every matrix's rows are a
 * multiple of 8, so a tile lies inside one matrix. */
template <int MODE>
static __device__ __forceinline__ struct mma_tile locate_tile(const struct mma_args &a, int i,
                                                              int *mat)
{
    struct mma_tile tl = {};
    int g = (threadIdx.x & 31) >> 2;
    int64_t r = MODE == MMA_SWIGLU ? (int64_t)blockIdx.x * 8 : (int64_t)blockIdx.x * 16 + 8 * i;
    *mat = -1;
    if (r >= a.total_rows)
        return tl;
    if constexpr (MODE == MMA_SWIGLU) {
        tl.v = i == 0 ? a.m[0] : a.m[1];
        *mat = i;
    } else {
        bool found = false;
#pragma unroll
        for (int m = 0; m < MMA_MAX_MATS; m++) {
            if (found || m >= a.n_mats)
                continue;
            if (r < a.m[m].rows) {
                tl.v = a.m[m];
                *mat = m;
                found = true;
            } else {
                r -= a.m[m].rows;
            }
        }
    }
    tl.row = r + g;
    tl.codes = (const uint4 *)(tl.v.codes + tl.row * (tl.v.cols / 2));
    tl.sbase = tl.row * tl.v.groups;
    tl.gshift = __ffs(tl.v.group) - 1; /* a power of two (mma_applies) */
    tl.valid = true;
    return tl;
}

/* Thread r < 16: output r of the block from the warps' partial sums. */
template <int MODE>
static __device__ __forceinline__ void store_output(const struct mma_args &a,
                                                    const struct mma_tile *tl, const int *mat,
                                                    const float (*red)[MMA_TILES * 8])
{
    int r = threadIdx.x, i = r >> 3, g = r >> 2; /* g: this thread's row inside its tile */
    float v = 0.0f;
    for (int w = 0; w < MMA_WARPS; w++)
        v += red[w][r];
    if constexpr (MODE == MMA_SWIGLU) {
        if (r < 8 && mat[0] >= 0) {
            float u = 0.0f;
            for (int w = 0; w < MMA_WARPS; w++)
                u += red[w][8 + r];
            a.y_bf16[(int64_t)blockIdx.x * 8 + r] = qb_f32_to_bf16_bits(qb_silu(v) * u);
        }
    } else {
        int64_t out = (int64_t)blockIdx.x * 16 + r;
        int m = i ? mat[1] : mat[0]; /* selects, not indexing: no local-memory copies */
        if (m < 0 || out >= a.total_rows)
            return;
        int64_t local = (i ? tl[1].row : tl[0].row) - g + (r & 7); /* tile row 0 + r's place */
        const float *bias = m == 0 ? a.bias[0] : m == 1 ? a.bias[1] : a.bias[2];
        v += bias ? bias[local] : 0.0f;
        a.y[out] = MODE == MMA_ACCUM ? a.y[out] + v : v;
    }
}

template <int FMT, int MODE>
static __global__ void __launch_bounds__(MMA_WARPS * 32, 3) gemv_mma_kernel(struct mma_args a)
{
    constexpr int U = MMA_UNROLL;
    extern __shared__ uint4 xs[]; /* [n_steps][8][4] A fragments */
    __shared__ float lut[MMA_LUT_MAX];
    __shared__ float red[MMA_WARPS][MMA_TILES * 8];
    constexpr int lut_len = FMT == QB_WFMT_NF4_DQ ? MMA_LUT_MAX : 16;
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    struct mma_tile tl[MMA_TILES];
    int mat[MMA_TILES];
    struct mma_batch<U> b;
    float d[MMA_TILES][4] = {};
    for (int i = 0; i < MMA_TILES; i++)
        tl[i] = locate_tile<MODE>(a, i, &mat[i]);
    load_batch<FMT, U>(tl, warp, a.n_steps, &b); /* weights only: before the wait */
    for (int i = threadIdx.x; i < lut_len; i += blockDim.x)
        lut[i] = a.m[0].lut[i];
    qb_pdl_wait();
    qb_pdl_trigger();
    build_x_fragments(a.x, a.m[0].cols, a.n_steps, xs);
    __syncthreads();
    for (int s0 = warp;;) {
        mma_batch_run<FMT, U>(tl, &b, s0, a.n_steps, xs, lut, d);
        s0 += MMA_WARPS * U;
        if (s0 >= a.n_steps)
            break;
        load_batch<FMT, U>(tl, s0, a.n_steps, &b);
    }
    if (lane < 4) /* D row 0: outputs 2t, 2t + 1 of each tile */
        for (int i = 0; i < MMA_TILES; i++) {
            red[warp][8 * i + 2 * lane] = d[i][0];
            red[warp][8 * i + 2 * lane + 1] = d[i][1];
        }
    __syncthreads();
    if (threadIdx.x < MMA_TILES * 8)
        store_output<MODE>(a, tl, mat, red);
}

template <int FMT, int MODE>
static cudaError_t mma_launch_mode(const struct mma_args *a, bool pdl, cudaStream_t s)
{
    int64_t per_block = MODE == MMA_SWIGLU ? 8 : 16;
    int64_t blocks = (a->total_rows + per_block - 1) / per_block;
    size_t smem = (size_t)a->n_steps * 32 * sizeof(uint4);
    if (blocks > 0x7fffffff)
        return cudaErrorInvalidValue;
    if (smem > MMA_STATIC_SMEM_MAX - 2048) {
        cudaError_t e = cudaFuncSetAttribute(gemv_mma_kernel<FMT, MODE>,
                                             cudaFuncAttributeMaxDynamicSharedMemorySize,
                                             (int)smem + 2048);
        if (e != cudaSuccess)
            return e;
    }
    cudaLaunchConfig_t cfg = {};
    cudaLaunchAttribute attr[1];
    cfg.gridDim = dim3((unsigned)blocks);
    cfg.blockDim = dim3(MMA_WARPS * 32);
    cfg.dynamicSmemBytes = smem;
    cfg.stream = s;
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = attr;
    cfg.numAttrs = pdl ? 1 : 0;
    return cudaLaunchKernelEx(&cfg, gemv_mma_kernel<FMT, MODE>, *a);
}

template <int FMT>
static cudaError_t mma_launch_fmt(const struct mma_args *a, int mode, bool pdl, cudaStream_t s)
{
    if (mode == MMA_STORE)
        return mma_launch_mode<FMT, MMA_STORE>(a, pdl, s);
    if (mode == MMA_ACCUM)
        return mma_launch_mode<FMT, MMA_ACCUM>(a, pdl, s);
    return mma_launch_mode<FMT, MMA_SWIGLU>(a, pdl, s);
}

/* 1 when the launch of these weights can take the tensor-core path. */
static bool mma_applies(const struct qb_cuda_weight *const *w, int n_w)
{
    if (qb_packed_is_8bit(w[0]->fmt) || w[0]->fmt == QB_WFMT_BF16)
        return false;
    for (int i = 0; i < n_w; i++)
        if (w[i]->g_idx || w[i]->rows % 8 || w[i]->cols != w[0]->cols ||
            (w[i]->group & (w[i]->group - 1)) || (w[i]->group % 32 && w[i]->fmt != QB_WFMT_NVFP4))
            return false;
    return true;
}

cudaError_t qb_gemv_mma_launch(const struct qb_cuda_weight *const *w, int n_w,
                               const uint16_t *x, float *y, uint16_t *y_bf16, int mode, int pdl,
                               cudaStream_t s)
{
    struct mma_args a = {};
    if (n_w < 1 || n_w > MMA_MAX_MATS || !mma_applies(w, n_w))
        return cudaErrorNotSupported;
    for (int i = 0; i < n_w; i++) {
        a.m[i] = packed_view_of(w[i]);
        a.bias[i] = w[i]->bias;
        a.total_rows += w[i]->rows;
    }
    if (mode == MMA_SWIGLU)
        a.total_rows = w[0]->rows;
    a.n_mats = n_w;
    a.n_steps = (int)((w[0]->cols + MMA_STEP - 1) / MMA_STEP);
    a.x = x;
    a.y = y;
    a.y_bf16 = y_bf16;
    switch (w[0]->fmt) {
    case QB_WFMT_INT4: return mma_launch_fmt<QB_WFMT_INT4>(&a, mode, pdl, s);
    case QB_WFMT_INT4_SYM: return mma_launch_fmt<QB_WFMT_INT4_SYM>(&a, mode, pdl, s);
    case QB_WFMT_UINT_G: return mma_launch_fmt<QB_WFMT_UINT_G>(&a, mode, pdl, s);
    case QB_WFMT_NF4: return mma_launch_fmt<QB_WFMT_NF4>(&a, mode, pdl, s);
    case QB_WFMT_NF4_DQ: return mma_launch_fmt<QB_WFMT_NF4_DQ>(&a, mode, pdl, s);
    case QB_WFMT_NVFP4: return mma_launch_fmt<QB_WFMT_NVFP4>(&a, mode, pdl, s);
    case QB_WFMT_MXFP4: return mma_launch_fmt<QB_WFMT_MXFP4>(&a, mode, pdl, s);
    default: return cudaErrorNotSupported;
    }
}
