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
 * Scale after the mma (the integer formats with groups of 128, so a step is
 * one group of each row: int4, int4-sym, GPTQ/AWQ g128): the roles swap, A =
 * the weights of rows g (tile 0) and g + 8 (tile 1), B = x, so one mma takes
 * 256 weights and D holds each lane's own two rows. A's pairs are the raw
 * codes plus an offset, one LOP3 each: 1024 + n for the even nibbles of a
 * word (the 0x6400 exponent) and 64 + n for the odd ones (0x5400, the nibble
 * in place), exact; the block stages with x the step's offset sums corr =
 * (1024 sum x_even + 64 sum x_odd, sum x) from the same f16 x, and per step
 * acc += s (d - corr.x - zero corr.y) in f32. A word costs 5 instructions
 * instead of 13 and the weights are never rounded (H100, int4 tg128 of the
 * 8B shape: 324 -> 347 t/s; GEMV rel L2 error vs the double reference 2.5e-5
 * against 2e-4). The offsets add 1024 |x| per product to the f32 sums, whose
 * rounding (~2^-24 of that) stays far below the weights' own quantization error.
 *
 * Dequantization to f16: int groups (1024 + code via the 0x6400 exponent
 * trick) - (1024 + zero), exact, times the group's f16 scale (exact: the
 * stored precision); the odd pairs take the nibble in place, 1024 + 16 code,
 * and one HFMA2 by 1/16 minus (64 + zero), also exact, so a word costs one
 * shift instead of three (int4 tg128 on the H100: 299.5 -> 304.7 t/s). The
 * integer groups of 128 skip all of this (the scale-after path above). The
 * table formats (nf4, nf4-dq, nvfp4, mxfp4) multiply their f32 table value by
 * the f32 scale and round the product. Each weight
 * is thus rounded once to f16 (11 significant bits), finer than the bf16 the
 * prefill path dequantizes to; x is rounded from bf16 to f16 (exact for
 * |x| in [2^-14, 65504]). Accumulation is f32.
 *
 * Block: MMA_WARPS warps share 2 tiles (16 output rows; with SwiGLU 8 rows
 * of gate and the same 8 of up) and split the columns by steps (warp w takes
 * steps w, w + MMA_WARPS, ...); their partial sums meet in shared memory.
 * Each warp keeps a ring of MMA_UNROLL steps of codes and scales in
 * registers: a slot is reloaded with the step MMA_UNROLL ahead as soon as its
 * mma are issued, so the loads never drain while the warp computes (the
 * Llama-3.1-8B down projection, 14336 columns: 26.4 -> 24.7 us). With
 * programmatic dependent launch the first loads are issued before waiting
 * for the previous kernel (see qb_cuda_common.cuh).
 *
 * Split K (y += W x: the o and down projections, 256 blocks for the 8B
 * shape, two per SM): gridDim.y = QB_MMA_KSPLIT blocks share a row block, each
 * over a contiguous part of the steps with only its part of x staged; they
 * publish their partial sums to the weight's scratch (qb_cuda_weight's
 * splitk_*), and the last to arrive adds them in part order, so the result
 * does not depend on timing (int4 tg128 on the H100: 309 -> 324 t/s; nf4 220 ->
 * 240).
 *
 * Fused RMSNorm (struct qb_gemv_in without x): each block computes the
 * row's mean square and builds its x fragments from the f32 residual and the
 * norm weight, rounding to bf16 as qb_cuda_rmsnorm does, which saves the
 * RMSNorm kernel before q|k|v (384 blocks for the 8B shape: 16.2 us against
 * 9.7 + 12.7 us in isolation). The gate/up launch refuses it: its 3584 blocks
 * would each read the 32 KB of residual and weight (54 us against 9.4 + 36.5
 * us measured); its input comes from the o projection's RMSNorm tail (below).
 *
 * RMSNorm tail (accumulating launches with next: the o and down projections
 * in decode): after its row block's outputs are stored, each block counts
 * itself in; the last normalizes the whole of y into the next layer's bf16
 * input, so the RMSNorm kernel before gate/up (8.7 us per layer in the graph,
 * for 16 KB) and the norm prologue of the next q|k|v launch are gone (H100
 * int4 tg128: 347 -> 371 t/s).
 *
 * Taken when every matrix of the launch is a 4-bit format without g_idx
 * whose rows are a multiple of 8 and whose group is a power of two (at least
 * 32, or nvfp4's 16) (qb_gemv_mma_launch answers
 * cudaErrorNotSupported otherwise and gemv_packed.cu's kernel runs).
 */
#include "packed.cuh"

#define MMA_WARPS 4
/* steps in flight per warp (H100 tg128: int4 4 > 5, 6 > 8; nf4 4 > 6) */
#define MMA_UNROLL 4
#define MMA_MIN_BLOCKS 4 /* resident blocks per SM the registers must allow (4 > 3, 5) */
#define MMA_TILES 2 /* tiles of 8 rows per block (one tile and twice the blocks: slower) */
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
    struct qb_gemv_in in;
    float *partial;      /* split K: [blocks][gridDim.y][16] partial sums */
    unsigned *arrivals;  /* split K: [blocks] blocks done, reset by the last (and next.done) */
    struct qb_gemv_norm_out next; /* next.out == NULL: no RMSNorm tail */
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
    const uint16_t *sa_scales; /* the scale-after path: the row's f16 scales */
    const uint8_t *sa_zeros;   /* and zeros, one per step */
};

/* ---- A: x in fragment order --------------------------------------------------- */

static __device__ __forceinline__ uint32_t half2_bits(float lo, float hi)
{
    __half2 h = __floats2half2_rn(lo, hi);
    return *(uint32_t *)&h;
}

/* 1 / rms of the row xf[cols] (every thread gets it): rmsnorm.cu's value up to
 * the summation order. cols % 8 == 0 (mma_applies). */
static __device__ float block_inv_rms(const struct qb_gemv_in &in, int cols, float *scratch)
{
    float ss = 0.0f;
    for (int i = 4 * threadIdx.x; i < cols; i += 4 * blockDim.x) {
        float4 v = __ldg((const float4 *)(in.xf + i));
        ss += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
    }
    return rsqrtf(qb_block_sum(ss, scratch) / (float)cols + in.eps);
}

/* Input columns base .. base + 8 as floats: the bf16 x, or bf16(xf * inv * nw) as
 * qb_cuda_rmsnorm rounds it. */
static __device__ __forceinline__ void load_x8(const struct qb_gemv_in &in, int base, float inv,
                                               float *f)
{
    if (in.x) {
        uint4 v = __ldg((const uint4 *)(in.x + base));
        const uint32_t *u = (const uint32_t *)&v;
#pragma unroll
        for (int k = 0; k < 4; k++) {
            f[2 * k] = __uint_as_float(u[k] << 16);
            f[2 * k + 1] = __uint_as_float(u[k] & 0xffff0000u);
        }
        return;
    }
#pragma unroll
    for (int h = 0; h < 2; h++) {
        float4 x = __ldg((const float4 *)(in.xf + base) + h);
        float4 w = __ldg((const float4 *)(in.nw + base) + h);
        const float xv[4] = {x.x, x.y, x.z, x.w}, wv[4] = {w.x, w.y, w.z, w.w};
#pragma unroll
        for (int k = 0; k < 4; k++)
            f[4 * h + k] = __uint_as_float((uint32_t)qb_f32_to_bf16_bits(xv[k] * inv * wv[k])
                                           << 16);
    }
}

/* xs[(s * 8 + j) * 4 + t] = the A registers of lane t for mma j of step s:
 * {x(c), x(c+4)}, 0, {x(c+1), x(c+5)}, 0 as f16 pairs (rows 8..15 of A are
 * zero; one 16-byte load fills the register quad the mma reads), c = 128 s +
 * 32 t + 8 (j / 2) + 2 (j % 2); zero past cols. */
static __device__ void build_x_fragments(const struct qb_gemv_in &in, float inv, int cols,
                                         int s_lo, int s_hi, uint4 *xs)
{
    for (int item = threadIdx.x; item < (s_hi - s_lo) * 16; item += blockDim.x) {
        int s = s_lo + (item >> 4), t = (item >> 2) & 3, w = item & 3;
        int base = s * MMA_STEP + 32 * t + 8 * w;
        float f[8];
        if (base < cols) {
            load_x8(in, base, inv, f);
        } else {
#pragma unroll
            for (int k = 0; k < 8; k++)
                f[k] = 0.0f;
        }
#pragma unroll
        for (int h = 0; h < 2; h++) { /* j = 2w + h: c = 8w + 2h */
            int j = 2 * w + h;
            xs[((s - s_lo) * 8 + j) * 4 + t] = make_uint4(half2_bits(f[2 * h], f[2 * h + 4]), 0u,
                                                 half2_bits(f[2 * h + 1], f[2 * h + 5]), 0u);
        }
    }
}

/* The scale-after path (struct sa_smem): per (step, j, t) the two f16 pairs
 * lane t gives mma j as B, {x(c), x(c+4)} and {x(c+1), x(c+5)}, c = 128 s +
 * 32 t + 8 (j / 2) + 2 (j % 2), and per step the offsets the codes carry into
 * the mma: corr = (1024 * sum of x over the even columns of each 8-column word
 * + 64 * sum over the odd ones, sum of x), from the f16 x the mma reads. */
struct sa_smem {
    uint2 *b;     /* [steps][8][4] */
    float2 *corr; /* [steps] */
};

static __device__ void build_x_fragments_sa(const struct qb_gemv_in &in, float inv, int cols,
                                            int s_lo, int s_hi, struct sa_smem sm)
{
    int n_items = (s_hi - s_lo) * 16, lane = threadIdx.x & 31;
    /* 16 items (t, w) per step: a step lies in one half-warp, summed by shuffles */
    for (int first = threadIdx.x & ~31; first < n_items; first += blockDim.x) {
        int item = first + lane;
        int s = s_lo + (item >> 4), t = (item >> 2) & 3, w = item & 3;
        int base = s * MMA_STEP + 32 * t + 8 * w;
        float f[8] = {};
        if (item < n_items && base < cols)
            load_x8(in, base, inv, f);
        float even = 0.0f, odd = 0.0f;
#pragma unroll
        for (int k = 0; k < 8; k++) {
            f[k] = __half2float(__float2half_rn(f[k])); /* what the mma multiplies */
            if (k & 1)
                odd += f[k];
            else
                even += f[k];
        }
        float c1 = 1024.0f * even + 64.0f * odd, sx = even + odd;
#pragma unroll
        for (int o = 8; o; o >>= 1) {
            c1 += __shfl_xor_sync(0xffffffffu, c1, o);
            sx += __shfl_xor_sync(0xffffffffu, sx, o);
        }
        if (item >= n_items)
            continue;
#pragma unroll
        for (int h = 0; h < 2; h++)
            sm.b[((s - s_lo) * 8 + 2 * w + h) * 4 + t] = make_uint2(
                half2_bits(f[2 * h], f[2 * h + 4]), half2_bits(f[2 * h + 1], f[2 * h + 5]));
        if ((lane & 15) == 0)
            sm.corr[s - s_lo] = make_float2(c1, sx);
    }
}

/* ---- B: weights as f16 pairs -------------------------------------------------- */

/* The group scale of a lane's 16 columns: for the integer groups as f16
 * pairs (s, s) and (1024 + zero, 1024 + zero), for the table formats in f32. */
struct mma_scale {
    __half2 s, z, zh; /* zh = -(64 + zero): the high-nibble pairs' offset */
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
        m.zh = __float2half2_rn(-64.0f - (float)r.zero);
    } else {
        m.f = decode_scale<FMT>(v, r, lut).x;
    }
    return m;
}

/* lop3 (q & MASK) | MAGIC: two codes as f16 in a pair's halves. With MAGIC
 * 0x64006400 (1024, ulp 1) the mask 0x000f000f gives 1024 + code and 0x00f000f0
 * gives 1024 + 16 code; with 0x54005400 (64, ulp 1/16) 0x00f000f0 gives 64 + code. */
template <uint32_t MASK, uint32_t MAGIC>
static __device__ __forceinline__ uint32_t codes_as_f16(uint32_t q)
{
    uint32_t d;
    asm("lop3.b32 %0, %1, %2, %3, 0xea;" : "=r"(d) : "r"(q), "n"(MASK), "n"(MAGIC));
    return d;
}

static __device__ __forceinline__ __half2 bits_as_half2(uint32_t u)
{
    return *(__half2 *)&u;
}

/* Pair p (nibbles p and p + 4 of word q) dequantized to f16. */
template <int FMT>
static __device__ __forceinline__ uint32_t dequant_pair(uint32_t q, int p, struct mma_scale sc,
                                                        const float *lut)
{
    __half2 v;
    if constexpr (pk_has_zero<FMT>()) {
        /* p even: (1024 + n) - (1024 + z); p odd: (1024 + 16 n) / 16 - (64 + z); exact */
        uint32_t w = q >> (p & 2 ? 8 : 0);
        __half2 c = p & 1 ? __hfma2(bits_as_half2(codes_as_f16<0x00f000f0, 0x64006400>(w)),
                                    __float2half2_rn(0.0625f), sc.zh)
                          : __hsub2(bits_as_half2(codes_as_f16<0x000f000f, 0x64006400>(w)), sc.z);
        v = __hmul2(c, sc.s);
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

/* Step s of the scale-after path: A = the weights of rows g (tile 0) and g + 8
 * (tile 1) as raw codes plus an offset, 1024 + n for the even columns of a
 * word and 64 + n for the odd ones (one LOP3 per pair, exact), B = x; the
 * step's mma sum then carries corr.x + zero * corr.y that is taken off in f32
 * before the group's scale multiplies it: acc += s (d - corr.x - zero corr.y). */
template <int FMT>
static __device__ __forceinline__ void mma_step_sa(const uint4 *qs,
                                                   const struct pk_scale_raw (*sr)[2], int s,
                                                   struct sa_smem sm, float acc[MMA_TILES])
{
    int t = threadIdx.x & 3;
    float d[4] = {};
    const uint32_t *q0 = (const uint32_t *)&qs[0], *q1 = (const uint32_t *)&qs[1];
#pragma unroll
    for (int j = 0; j < 8; j++) {
        uint2 b = sm.b[(s * 8 + j) * 4 + t];
        int sh = j & 1 ? 8 : 0;
        uint32_t w0 = q0[j >> 1] >> sh, w1 = q1[j >> 1] >> sh;
        uint4 a = make_uint4(codes_as_f16<0x000f000f, 0x64006400>(w0),
                             codes_as_f16<0x000f000f, 0x64006400>(w1),
                             codes_as_f16<0x00f000f0, 0x54005400>(w0),
                             codes_as_f16<0x00f000f0, 0x54005400>(w1));
        mma_16816(d, a, b.x, b.y);
    }
    float2 corr = sm.corr[s];
#pragma unroll
    for (int i = 0; i < MMA_TILES; i++) {
        float scale = qb_f16_bits_to_f32((uint16_t)sr[i][0].s);
        float zero = __uint_as_float(0x4B000000u | sr[i][0].zero) - 8388608.0f;
        acc[i] = fmaf(scale, fmaf(-zero, corr.y, d[2 * i] - corr.x), acc[i]);
    }
}

/* ---- the kernel ------------------------------------------------------------- */

/* nvfp4's groups of 16 put two groups in a lane's 32 columns; every other
 * format's group is a multiple of 32 here (mma_applies). */
template <int FMT> static constexpr bool mma_half_groups()
{
    return FMT == QB_WFMT_NVFP4;
}

/* The codes and raw scales of U steps in flight: slot u holds step s0 + u * MMA_WARPS. */
template <int U> struct mma_batch {
    uint4 q[U][MMA_TILES];
    struct pk_scale_raw sr[U][MMA_TILES][2]; /* columns [0,16) and [16,32) */
};

/* Load step s of both tiles (zeros past the end) into q[] and sr[]. */
template <int FMT>
static __device__ __forceinline__ void load_step(const struct mma_tile *tl, int s, int n_steps,
                                                 uint4 *q, struct pk_scale_raw (*sr)[2])
{
    int t = threadIdx.x & 3;
#pragma unroll
    for (int i = 0; i < MMA_TILES; i++) {
        int col = s * MMA_STEP + 32 * t;
        q[i] = make_uint4(0, 0, 0, 0);
        sr[i][0] = {0u, 0u, 0.0f};
        if constexpr (mma_half_groups<FMT>())
            sr[i][1] = {0u, 0u, 0.0f};
        if (s >= n_steps || !tl[i].valid || col >= tl[i].v.cols)
            continue;
        q[i] = __ldcs(tl[i].codes + col / 32);
        sr[i][0] = load_scale_at<FMT>(tl[i].v, tl[i].sbase + (col >> tl[i].gshift));
        if constexpr (mma_half_groups<FMT>())
            sr[i][1] = load_scale_at<FMT>(tl[i].v, tl[i].sbase + ((col + 16) >> tl[i].gshift));
    }
}

/* load_step for the scale-after path (group 128: one scale and zero per row
 * and step; tl.codes already at the lane's 16 bytes, tl.sa_* at the row's
 * first scale and zero): nothing past s_hi is loaded and an invalid tile
 * keeps the zeros it started with (the ring never reads a slot past s_hi). */
template <int FMT>
static __device__ __forceinline__ void load_step_sa(const struct mma_tile *tl, int s, int s_hi,
                                                    uint4 *q, struct pk_scale_raw (*sr)[2])
{
    if (s >= s_hi)
        return;
#pragma unroll
    for (int i = 0; i < MMA_TILES; i++) {
        if (!tl[i].valid)
            continue;
        q[i] = __ldcs(tl[i].codes + 4 * s);
        sr[i][0].s = __ldg(tl[i].sa_scales + s);
        sr[i][0].zero = __ldg(tl[i].sa_zeros + s);
    }
}

/* The 8 mma of step s of both tiles from its loaded codes and scales. */
template <int FMT>
static __device__ __forceinline__ void mma_step(const struct mma_tile *tl, const uint4 *qs,
                                                const struct pk_scale_raw (*sr)[2], int s,
                                                const uint4 *xs, const float *lut,
                                                float d[MMA_TILES][4])
{
    int t = threadIdx.x & 3;
    struct mma_scale sc[MMA_TILES][2];
#pragma unroll
    for (int i = 0; i < MMA_TILES; i++) {
        sc[i][0] = to_mma_scale<FMT>(tl[i].v, sr[i][0], lut);
        sc[i][1] = mma_half_groups<FMT>() ? to_mma_scale<FMT>(tl[i].v, sr[i][1], lut)
                                          : sc[i][0];
    }
#pragma unroll
    for (int j = 0; j < 8; j++) {
        uint4 a = xs[(s * 8 + j) * 4 + t];
        int w = j >> 1, p = 2 * (j & 1);
#pragma unroll
        for (int i = 0; i < MMA_TILES; i++) {
            const uint32_t *q = (const uint32_t *)&qs[i];
            struct mma_scale g = sc[i][w >> 1];
            mma_16816(d[i], a, dequant_pair<FMT>(q[w], p, g, lut),
                      dequant_pair<FMT>(q[w], p + 1, g, lut));
        }
    }
}

/* Output rows per block: 2 tiles of 8 (SwiGLU: 8 rows of gate and the same of up). */
template <int MODE> static constexpr int mma_rows_per_block()
{
    return MODE == MMA_SWIGLU ? 8 : 8 * MMA_TILES;
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
    int64_t r = MODE == MMA_SWIGLU ? (int64_t)blockIdx.x * 8
                                   : (int64_t)blockIdx.x * mma_rows_per_block<MODE>() + 8 * i;
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
        int64_t out = (int64_t)blockIdx.x * mma_rows_per_block<MODE>() + r;
        int m = i ? mat[1] : mat[0]; /* selects, not indexing: no local-memory copies */
        if (m < 0 || out >= a.total_rows)
            return;
        int64_t local = (i ? tl[1].row : tl[0].row) - g + (r & 7); /* tile row 0 + r's place */
        const float *bias = m == 0 ? a.bias[0] : m == 1 ? a.bias[1] : a.bias[2];
        v += bias ? bias[local] : 0.0f;
        a.y[out] = MODE == MMA_ACCUM ? a.y[out] + v : v;
    }
}

/* Split K (accumulating launches only): publish this block's 16 partial sums;
 * the block that arrives last for its row block turns red[0] into the sum of
 * all parts in split order (deterministic) and resets the counter; true for it. */
static __device__ bool split_k_last(const struct mma_args &a, float (*red)[MMA_TILES * 8])
{
    __shared__ bool last;
    float *mine = a.partial + ((size_t)blockIdx.x * gridDim.y + blockIdx.y) * 16;
    if (threadIdx.x < 16) {
        float v = 0.0f;
        for (int w = 0; w < MMA_WARPS; w++)
            v += red[w][threadIdx.x];
        mine[threadIdx.x] = v;
        __threadfence();
    }
    __syncthreads();
    if (threadIdx.x == 0)
        last = atomicAdd(a.arrivals + blockIdx.x, 1u) == gridDim.y - 1;
    __syncthreads();
    if (!last)
        return false;
    __threadfence();
    if (threadIdx.x < 16) {
        const float *parts = a.partial + (size_t)blockIdx.x * gridDim.y * 16;
        float v = 0.0f;
        for (unsigned k = 0; k < gridDim.y; k++)
            v += __ldcg(parts + k * 16 + threadIdx.x);
        red[0][threadIdx.x] = v;
        for (int w = 1; w < MMA_WARPS; w++)
            red[w][threadIdx.x] = 0.0f;
    }
    if (threadIdx.x == 0)
        a.arrivals[blockIdx.x] = 0;
    __syncthreads();
    return true;
}

/* The RMSNorm tail (accumulating launches with a.next.out): once every row
 * block has stored, the last to arrive normalizes the whole of y into
 * next.out as rmsnorm.cu does, 8 float4 per thread in flight, and resets the
 * counter. total_rows % 4 == 0 (qb_gemv_mma_launch). */
static __device__ void norm_tail(const struct mma_args &a, float *scratch)
{
    constexpr int PER = 8;
    __shared__ bool last;
    const float4 *y4 = (const float4 *)a.y;
    int n4 = (int)(a.total_rows / 4);
    __threadfence(); /* this block's outputs, before its arrival */
    __syncthreads();
    if (threadIdx.x == 0)
        last = atomicAdd(a.next.done, 1u) == gridDim.x - 1;
    __syncthreads();
    if (!last)
        return;
    __threadfence();
    float ss = 0.0f;
    for (int i0 = threadIdx.x; i0 < n4; i0 += PER * blockDim.x) {
        float4 v[PER];
#pragma unroll
        for (int k = 0; k < PER; k++) {
            int i = i0 + k * blockDim.x;
            v[k] = i < n4 ? __ldcg(y4 + i) : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        }
#pragma unroll
        for (int k = 0; k < PER; k++)
            ss += v[k].x * v[k].x + v[k].y * v[k].y + v[k].z * v[k].z + v[k].w * v[k].w;
    }
    float inv = rsqrtf(qb_block_sum(ss, scratch) / (float)a.total_rows + a.next.eps);
    for (int i0 = threadIdx.x; i0 < n4; i0 += PER * blockDim.x) {
        float4 v[PER], w[PER];
#pragma unroll
        for (int k = 0; k < PER; k++) {
            int i = i0 + k * blockDim.x;
            if (i < n4) {
                v[k] = __ldcg(y4 + i);
                w[k] = __ldg((const float4 *)a.next.nw + i);
            }
        }
#pragma unroll
        for (int k = 0; k < PER; k++) {
            int i = i0 + k * blockDim.x;
            if (i >= n4)
                continue;
            uint2 o;
            o.x = qb_f32_to_bf16_bits(v[k].x * inv * w[k].x) |
                  (uint32_t)qb_f32_to_bf16_bits(v[k].y * inv * w[k].y) << 16;
            o.y = qb_f32_to_bf16_bits(v[k].z * inv * w[k].z) |
                  (uint32_t)qb_f32_to_bf16_bits(v[k].w * inv * w[k].w) << 16;
            ((uint2 *)a.next.out)[i] = o;
        }
    }
    if (threadIdx.x == 0)
        *a.next.done = 0;
}

template <int FMT, bool SA>
static __device__ __forceinline__ void mma_load(const struct mma_tile *tl, int s, int s_hi,
                                                uint4 *q, struct pk_scale_raw (*sr)[2])
{
    if constexpr (SA)
        load_step_sa<FMT>(tl, s, s_hi, q, sr);
    else
        load_step<FMT>(tl, s, s_hi, q, sr);
}

/* Bytes of x staging per step: A fragments (16-byte quads), or for the
 * scale-after path B pairs (8 bytes) and the step's corr. */
template <bool SA> static constexpr int mma_smem_per_step()
{
    return SA ? 32 * (int)sizeof(uint2) + (int)sizeof(float2) : 32 * (int)sizeof(uint4);
}

/* SA: the scale after the mma (integer formats whose groups are whole steps). */
template <int FMT, int MODE, bool SA>
static __global__ void __launch_bounds__(MMA_WARPS * 32, MMA_MIN_BLOCKS)
    gemv_mma_kernel(struct mma_args a)
{
    constexpr int U = MMA_UNROLL;
    extern __shared__ uint4 xs[]; /* [n_steps][8][4] A fragments, or struct sa_smem */
    __shared__ float lut[MMA_LUT_MAX];
    __shared__ float red[MMA_WARPS][MMA_TILES * 8];
    constexpr int lut_len = SA ? 0 : FMT == QB_WFMT_NF4_DQ ? MMA_LUT_MAX : 16;
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    struct mma_tile tl[MMA_TILES];
    int mat[MMA_TILES];
    struct mma_batch<U> b;
    float d[MMA_TILES][4] = {}, acc[MMA_TILES] = {};
    for (int i = 0; i < MMA_TILES; i++)
        tl[i] = locate_tile<MODE>(a, i, &mat[i]);
    /* split K: block (x, y) takes steps [s_lo, s_hi) of row block x */
    int s_lo = (int)(blockIdx.y * a.n_steps / gridDim.y);
    int s_hi = (int)((blockIdx.y + 1) * a.n_steps / gridDim.y);
    struct sa_smem sm = {(uint2 *)xs, (float2 *)((uint2 *)xs + (s_hi - s_lo) * 32)};
    if constexpr (SA) /* the lane's 32 columns of each step, the row's scales and zeros */
        for (int i = 0; i < MMA_TILES; i++) {
            tl[i].codes += lane & 3;
            tl[i].sa_scales = (const uint16_t *)tl[i].v.scales + tl[i].sbase;
            tl[i].sa_zeros = tl[i].v.zeros + tl[i].sbase;
        }
    for (int u = 0; u < U; u++)
        for (int i = 0; i < MMA_TILES; i++) {
            b.q[u][i] = make_uint4(0, 0, 0, 0);
            b.sr[u][i][0] = b.sr[u][i][1] = {0u, 0u, 0.0f};
        }
#pragma unroll
    for (int u = 0; u < U; u++) /* weights only: before the wait */
        mma_load<FMT, SA>(tl, s_lo + warp + u * MMA_WARPS, s_hi, b.q[u], b.sr[u]);
    for (int i = threadIdx.x; i < lut_len; i += blockDim.x)
        lut[i] = a.m[0].lut[i];
    qb_pdl_wait();
    qb_pdl_trigger();
    float inv = a.in.x ? 1.0f : block_inv_rms(a.in, a.m[0].cols, &red[0][0]);
    if constexpr (SA)
        build_x_fragments_sa(a.in, inv, a.m[0].cols, s_lo, s_hi, sm);
    else
        build_x_fragments(a.in, inv, a.m[0].cols, s_lo, s_hi, xs);
    __syncthreads();
    const uint4 *xs_at = xs - (ptrdiff_t)s_lo * 32; /* indexed by the absolute step */
    struct sa_smem sm_at = {sm.b - (ptrdiff_t)s_lo * 32, sm.corr - s_lo};
    /* A ring of U steps: slot u is refilled with the step U * MMA_WARPS ahead as
     * soon as its mma are issued, so U steps stay in flight while this warp works. */
    for (int s0 = s_lo + warp; s0 < s_hi; s0 += U * MMA_WARPS) {
#pragma unroll
        for (int u = 0; u < U; u++) {
            int s = s0 + u * MMA_WARPS;
            if (s >= s_hi)
                break;
            if constexpr (SA)
                mma_step_sa<FMT>(b.q[u], b.sr[u], s, sm_at, acc);
            else
                mma_step<FMT>(tl, b.q[u], b.sr[u], s, xs_at, lut, d);
            if (s + U * MMA_WARPS < s_hi)
                mma_load<FMT, SA>(tl, s + U * MMA_WARPS, s_hi, b.q[u], b.sr[u]);
        }
    }
    __syncthreads(); /* red doubled as block_inv_rms's scratch */
    if (SA && (lane & 3) == 0) /* rows g and g + 8 of the block */
        for (int i = 0; i < MMA_TILES; i++)
            red[warp][8 * i + (lane >> 2)] = acc[i];
    if (!SA && lane < 4) /* D row 0: outputs 2t, 2t + 1 of each tile */
        for (int i = 0; i < MMA_TILES; i++) {
            red[warp][8 * i + 2 * lane] = d[i][0];
            red[warp][8 * i + 2 * lane + 1] = d[i][1];
        }
    __syncthreads();
    if (gridDim.y > 1 && !split_k_last(a, red)) /* not the last part of this row block */
        return;
    if (threadIdx.x < MMA_TILES * 8)
        store_output<MODE>(a, tl, mat, red);
    if (MODE == MMA_ACCUM && a.next.out)
        norm_tail(a, &red[0][0]);
}

/* 1 when every matrix of the launch takes the scale-after path: integer
 * groups of 128, one per step. */
template <int FMT> static bool mma_scale_after(const struct mma_args *a)
{
    if (!pk_has_zero<FMT>())
        return false;
    for (int i = 0; i < a->n_mats; i++)
        if (a->m[i].group != MMA_STEP)
            return false;
    return true;
}

template <int FMT, int MODE, bool SA>
static cudaError_t mma_launch_mode(const struct mma_args *a, bool pdl, cudaStream_t s)
{
    int64_t per_block = mma_rows_per_block<MODE>();
    int64_t blocks = (a->total_rows + per_block - 1) / per_block;
    int ks = MODE == MMA_ACCUM && a->partial ? QB_MMA_KSPLIT : 1;
    while (ks > 1 && a->n_steps < 16 * ks) /* at least 16 steps (4 per warp) a part */
        ks /= 2;
    size_t smem = (size_t)((a->n_steps + ks - 1) / ks) * mma_smem_per_step<SA>();
    if (blocks > 0x7fffffff)
        return cudaErrorInvalidValue;
    if (smem > MMA_STATIC_SMEM_MAX - 2048) {
        cudaError_t e = cudaFuncSetAttribute(gemv_mma_kernel<FMT, MODE, SA>,
                                             cudaFuncAttributeMaxDynamicSharedMemorySize,
                                             (int)smem + 2048);
        if (e != cudaSuccess)
            return e;
    }
    return qb_launch_smem(pdl, gemv_mma_kernel<FMT, MODE, SA>,
                          dim3((unsigned)blocks, (unsigned)ks), dim3(MMA_WARPS * 32), smem, s,
                          *a);
}

template <int FMT, int MODE>
static cudaError_t mma_launch_sa(const struct mma_args *a, bool pdl, cudaStream_t s)
{
    if constexpr (pk_has_zero<FMT>())
        if (mma_scale_after<FMT>(a))
            return mma_launch_mode<FMT, MODE, true>(a, pdl, s);
    return mma_launch_mode<FMT, MODE, false>(a, pdl, s);
}

template <int FMT>
static cudaError_t mma_launch_fmt(const struct mma_args *a, int mode, bool pdl, cudaStream_t s)
{
    if (mode == MMA_STORE)
        return mma_launch_sa<FMT, MMA_STORE>(a, pdl, s);
    if (mode == MMA_ACCUM)
        return mma_launch_sa<FMT, MMA_ACCUM>(a, pdl, s);
    return mma_launch_sa<FMT, MMA_SWIGLU>(a, pdl, s);
}

/* 1 when the launch of these weights can take the tensor-core path. */
static bool mma_applies(const struct qb_cuda_weight *const *w, int n_w)
{
    if (qb_packed_is_8bit(w[0]->fmt) || w[0]->fmt == QB_WFMT_BF16)
        return false;
    for (int i = 0; i < n_w; i++)
        if (w[i]->g_idx || w[i]->rows % 8 || w[i]->cols != w[0]->cols || w[i]->cols % 8 ||
            (w[i]->group & (w[i]->group - 1)) || (w[i]->group % 32 && w[i]->fmt != QB_WFMT_NVFP4))
            return false;
    return true;
}

cudaError_t qb_gemv_mma_launch(const struct qb_cuda_weight *const *w, int n_w,
                               const struct qb_gemv_in *in, float *y, uint16_t *y_bf16, int mode,
                               const struct qb_gemv_norm_out *next, int pdl, cudaStream_t s)
{
    struct mma_args a = {};
    if (n_w < 1 || n_w > MMA_MAX_MATS || !mma_applies(w, n_w))
        return cudaErrorNotSupported;
    if (!in->x && mode == MMA_SWIGLU) /* see the top comment */
        return cudaErrorNotSupported;
    if (next && (mode != MMA_ACCUM || n_w != 1 || w[0]->rows % 4 || !w[0]->splitk_arrivals))
        return cudaErrorNotSupported;
    if (next) {
        a.next = *next;
        a.next.done = w[0]->splitk_arrivals + qb_mma_row_blocks(w[0]->rows); /* weight.cu */
    }
    for (int i = 0; i < n_w; i++) {
        a.m[i] = packed_view_of(w[i]);
        a.bias[i] = w[i]->bias;
        a.total_rows += w[i]->rows;
    }
    if (mode == MMA_SWIGLU)
        a.total_rows = w[0]->rows;
    a.n_mats = n_w;
    a.n_steps = (int)((w[0]->cols + MMA_STEP - 1) / MMA_STEP);
    a.in = *in;
    a.partial = n_w == 1 ? w[0]->splitk_partial : NULL;
    a.arrivals = n_w == 1 ? w[0]->splitk_arrivals : NULL;
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
