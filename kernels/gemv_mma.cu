/*
 * gemv_mma.cu - the decode GEMV of the 4-bit formats on the tensor cores.
 *
 * The fused dequantize-GEMV of gemv_packed.cu spends ~10 instructions per
 * weight (nibble extraction, a table lookup, an f32 FMA, x conversions) and
 * runs out of issue slots long before the memory bus is busy (ncu: issue
 * slots 44 % busy, DRAM 19 %). Here the weights become f16 pairs with one to
 * four instructions per pair (nf4: five and two table loads) and the
 * multiply-adds go to mma.sync
 * m16n8k16 (f16 inputs, f32 accumulation), 256 weights per instruction:
 *
 *   D[16 x 8] += A[16 x 16] . B[16 x 8]
 *   A = the weights of rows g (tile 0) and g + 8 (tile 1), B = x masked so
 *   that D[g][2t] + D[g][2t + 1] is row g's dot over lane t's columns alone
 *
 * Layout of one step (128 columns) of a tile of 8 rows: lane (g = lane / 4,
 * t = lane % 4) reads 16 bytes = 32 nibbles of row g, columns
 * [128 s + 32 t, +32). The mma sums over k, so any permutation of k applied
 * to A and B alike gives the same result; we pick the one that makes the
 * dequantization cheap: word w (8 nibbles = columns 8w .. 8w+7) gives the
 * f16 pairs (nibble p, nibble p + 4), p = 0..3, and mma j (0..7) of the step
 * takes A registers {pair 2(j%2), pair 2(j%2)+1} of word j/2 of both tiles,
 * i.e. columns (c, c+4) and (c+1, c+5) with c = 8(j/2) + 2(j%2).
 *
 * B (x_smem): lane (g, t) supplies B's column g at the k slots lane t gives
 * A. Lane (2t, t) gives x of lane t's first pair, lane (2t + 1, t) x of its
 * second, every other lane zeros, so D's columns 2t and 2t + 1 are sums over
 * lane t's own columns, and D[g][2t], D[g][2t+1], D[g+8][2t], D[g+8][2t+1]
 * are exactly what lane (g, t) holds. Since a lane's 32 columns lie in one
 * group (two for nvfp4's 16: mma 0..3 and 4..7), its scale multiplies them
 * after the mma, in f32: acc += s * (D[g][2t] + D[g][2t+1]); the four lanes of
 * a row are added at the end. x is staged once per block in shared memory,
 * 16 bytes per (step, j, t): {x pair 1, 0, 0, x pair 2}; the lanes off the
 * diagonal read a block of zeros that sits in the other half of the banks.
 * Integer groups of 128 or more need no masking: a row's 4 lanes share the
 * scale of a step, so B is x itself, every column of D the row's dot over
 * the step, and the staging is half as large (x_smem's "whole").
 *
 * The weights go into A unscaled, so most formats are exact in f16:
 *   - int4, int4-sym, GPTQ/AWQ (uint_g): the codes plus an offset, one LOP3
 *     a pair: 1024 + n for the even nibbles of a word (the 0x6400 exponent)
 *     and 64 + n for the odd ones (0x5400, the nibble in place); the block
 *     stages per (step, t) the offset sums corr = (1024 sum x_even + 64 sum
 *     x_odd, sum x) from the same f16 x, and acc += s (dot - corr.x - zero
 *     corr.y). The offsets add 1024 |x| per product to the f32 sums, whose
 *     rounding (~2^-24 of that) stays far below the weights' own error.
 *   - nvfp4, mxfp4: E2M1 is a sign, 2 exponent bits and a mantissa bit: moved
 *     into an f16's sign and bits 9..11 it reads as its value times 2^-14,
 *     subnormals included; the scale takes the 2^14. A word's codes become
 *     f16 high bytes four at a time, and a PRMT makes a pair of two of them
 *     (e2m1_bytes: columns c and c + 2 pair up; against two shifts and two
 *     LOP3 a pair, SASS of the ring: mxfp4 746 -> 629 instructions, H200
 *     tg128 run 54, two rounds: nvfp4 435.8/438.2 -> 450.8/439.9 t/s, mxfp4
 *     458.4/457.9 -> 467.0/469.4).
 *   - nf4, nf4-dq: two lookups in shared memory tables of the f16 values
 *     (each value rounded once to f16, 11 significant bits: ~1.5e-4 GEMV
 *     error against the double reference).
 * x is rounded from bf16 to f16 (exact for |x| in [2^-14, 65504]).
 * Against the previous layout (A = x, B = 8 rows of scaled f16 weights, 128
 * weights a mma) on the H100, tg128 of the 8B shape: nvfp4 247 -> 340 t/s,
 * mxfp4 266 -> 354, nf4 263 -> 282; the GEMV of the integer and E2M1 formats
 * is exact up to f32 summation (rel L2 error 1e-7..1e-5).
 *
 * Row group: MMA_WARPS warps share 2 tiles (16 output rows; with SwiGLU 8
 * rows of gate and the same 8 of up) and split the columns by steps (warp w
 * takes steps w, w + MMA_WARPS, ...); their partial sums meet in shared
 * memory. A block is MMA_GROUPS row groups over consecutive rows that share
 * one x staging, so each block stages x for twice the rows (H100 tg128 of the
 * 8B shape, run 47: nvfp4 374.5 -> 387.3 t/s; int4, whose staging is half
 * as large (whole steps), 426.2/426.3 -> 422.4/424.4).
 * Each warp keeps a ring of MMA_UNROLL steps of codes and scales in
 * registers: a slot is reloaded with the step MMA_UNROLL ahead as soon as its
 * mma are issued, so the loads never drain while the warp computes (the
 * Llama-3.1-8B down projection, 14336 columns: 26.4 -> 24.7 us). With
 * programmatic dependent launch the first loads are issued before waiting
 * for the previous kernel (see qb_cuda_common.cuh).
 *
 * Persistent SwiGLU (gemv_mma_swiglu_persistent): gate/up has 1792 row
 * groups of the 8B shape, three and a half waves of this kernel's blocks, each
 * staging x and filling and draining its ring for 16 rows. Where the row
 * groups fill two waves or more, one wave of resident blocks of MMA_PW warps
 * takes them in turn instead, x staged once per block and each warp's ring
 * running on into its next row group (H100 tg128 of the 8B shape, run 51:
 * int4 420.5/421.3 -> 448.3/449.1 t/s, nvfp4 382.8 -> 408.9, nf4 322.8 ->
 * 330.8; with 4 warps a row group: int4 438.9, nvfp4 390.9).
 *
 * Split K (y += W x: the o and down projections, 256 row groups of the 8B
 * shape): gridDim.y = QB_MMA_KSPLIT blocks share a row block, each
 * over a contiguous part of the steps with only its part of x staged (int4
 * tg128 on the H100: 309 -> 324 t/s; nf4 220 -> 240). The parts of a row
 * block form a thread block cluster: each writes its partial sums into part
 * 0's shared memory, and after the cluster barrier part 0 adds them in part
 * order, so the result does not depend on timing. (Before, they went through
 * global scratch, a fence and an arrival counter, the last part adding them:
 * H100 tg128 of the 8B shape with the tail below, int4 398 -> 414 t/s, nvfp4
 * 355 -> 364, nf4 304 -> 310.) More parts lose on the H200 too (run 55, two
 * rounds, tg128 int4 / nvfp4: 522 / 446 t/s as is; q|k|v split in 2 as well:
 * 494 / 432; o and down in 4: 472 / 403).
 *
 * Fused RMSNorm (struct qb_gemv_in without x): each block computes the
 * row's mean square and builds its x fragments from the f32 residual and the
 * norm weight, rounding to bf16 as qb_cuda_rmsnorm does, which saves the
 * RMSNorm kernel before q|k|v (then 384 blocks for the 8B shape: 16.2 us
 * against 9.7 + 12.7 us in isolation). The gate/up launch refuses it: its
 * 3584 blocks of the time would each read the 32 KB of residual and weight
 * (54 us against 9.4 + 36.5 us measured); its input comes from the o
 * projection's RMSNorm tail (below). Deferring the norm instead (o and down
 * leave y * nw and their sums of squares, gate/up and q|k|v read those: no
 * tail) was slower still with two row groups a block, H100 tg128 run 48:
 * int4 422 -> 418, nvfp4 383 -> 377, nf4 323 -> 318, mxfp4 398 -> 393 t/s.
 *
 * RMSNorm tail (accumulating launches with next: the o and down projections
 * in decode): each row group leaves the sum of squares of its 16 outputs in
 * the weight's tail_ss and each block then counts itself in; the last
 * adds those sums and normalizes the whole of y into the next layer's bf16
 * input, so the RMSNorm kernel before gate/up (8.7 us per layer in the graph,
 * for 16 KB) and the norm prologue of the next q|k|v launch are gone (H100
 * int4 tg128: 347 -> 371 t/s). The tail sits on the critical path between two
 * launches: with it skipped (wrong results, timing only) int4 gives 435
 * against 397 t/s, so it reads y once, its loads in flight during the sum.
 *
 * Taken when every matrix of the launch is a 4-bit format without g_idx
 * whose rows are a multiple of 8, whose columns are a multiple of 32 (16-byte
 * lane loads) and whose group is a power of two (at least 32, or nvfp4's
 * 16), with x in shared memory (about 57K columns a block part).
 * qb_gemv_mma_launch answers cudaErrorNotSupported otherwise and
 * gemv_packed.cu's kernel runs.
 */
#include "packed.cuh"

/* The tuning constants below can be set with -D for A/B builds. Row groups
 * of 8 warps (one group a block) and 4 row groups of 2 warps were slower
 * (H100 run 50, int4 415 -> 356 and 382 t/s), as was one row group a block
 * for int4 (400-405).
 * What bounds these kernels on the H200 (ncu, run 54, one decode layer of
 * the 8B shape, int4): 16 warps an SM (115-128 registers a thread), 18-24 %
 * achieved occupancy, 7-11 cycles between a warp's instructions (shared
 * memory and L1 scoreboard waits), DRAM 14-48 % busy; gate/up, the largest,
 * reaches 48 %. Not the issue slots: loads without bounds checks or 64-bit
 * index arithmetic (tiled codes at fixed offsets from a cursor a ring cycle)
 * cut the SASS of the persistent int4 ring from 700 to 463 instructions for
 * 4 steps (nvfp4 908 -> 687, nf4 1352 -> 1118) and gave int4 517 -> 525,
 * nf4 346 -> 345, nvfp4 447 -> 401 t/s (128 registers reached), run 53. */
#ifndef MMA_WARPS
#define MMA_WARPS 4
#endif
/* steps in flight per warp (H100 tg128: int4 4 > 6 > 3, nvfp4 and mxfp4 4 > 3, 6) */
#ifndef MMA_UNROLL
#define MMA_UNROLL 4
#endif
#define MMA_MIN_BLOCKS 4 /* resident blocks per SM the registers must allow (4 > 3, 5) */
#define MMA_TILES 2      /* tiles of 8 rows per row group (one tile and twice the groups: slower) */
/* row groups per block sharing its x staging (H100 tg128: nvfp4 2 > 1; 4 for
 * gate/up alone: slower, one block of 16 warps per SM) */
#ifndef MMA_GROUPS
#define MMA_GROUPS 2
#endif
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
    float *row_ss;                /* RMSNorm tail: the sums of squares of each row group's y */
    struct qb_gemv_norm_out next; /* next.out == NULL: no RMSNorm tail */
    float *y;
    uint16_t *y_bf16;
};

/* One tile of 8 rows as a lane sees it: its row's codes and its matrix. */
struct mma_tile {
    struct packed_view v;
    int64_t row;        /* this lane's row inside v */
    const uint4 *codes; /* the lane's 16 bytes of step 0 of that row; step s at + stride s */
    int stride;         /* 32 (tiled codes, packed.cuh) or 4 */
    int64_t sbase;      /* flat index of the row's first group scale: row * groups */
    int gshift;         /* log2(group): the group of column c is c >> gshift */
    int lane_steps;     /* the steps whose lane columns lie inside the row (0: no row) */
};

/* ---- B: x in fragment order --------------------------------------------------- */

static __device__ __forceinline__ uint32_t half2_bits(float lo, float hi)
{
    __half2 h = __floats2half2_rn(lo, hi);
    return *(uint32_t *)&h;
}

/* 1 / rms of the row xf[cols] (every thread gets it): rmsnorm.cu's value up to
 * the summation order. cols % 32 == 0 (mma_applies). */
static __device__ float block_inv_rms(const struct qb_gemv_in &in, int cols, float *scratch)
{
    float ss = 0.0f;
    for (int i = 4 * threadIdx.x; i < cols; i += 4 * blockDim.x) {
        float4 v = __ldg((const float4 *)(in.xf + i));
        ss += v.x * v.x + v.y * v.y + v.z * v.z + v.w * v.w;
    }
    return rsqrtf(qb_block_sum(ss, scratch) / (float)cols + in.eps);
}

/* Input columns base .. base + 8 of the fused RMSNorm as floats: bf16(xf *
 * inv * nw), as qb_cuda_rmsnorm rounds it. */
static __device__ __forceinline__ void load_x8_normed(const struct qb_gemv_in &in, int base,
                                                      float inv, float *f)
{
#pragma unroll
    for (int h = 0; h < 2; h++) {
        float4 x = __ldg((const float4 *)(in.xf + base) + h);
        float4 w = __ldg((const float4 *)(in.nw + base) + h);
        const float xv[4] = {x.x, x.y, x.z, x.w}, wv[4] = {w.x, w.y, w.z, w.w};
#pragma unroll
        for (int k = 0; k < 4; k++)
            f[4 * h + k] =
                __uint_as_float((uint32_t)qb_f32_to_bf16_bits(xv[k] * inv * wv[k]) << 16);
    }
}

/* The x side of the mma (struct x_smem), per (step s, mma j, lane t): the
 * 16 bytes {x(c), x(c+4)}, 0, 0, {x(c+1), x(c+5)} as f16 pairs, c = 128 s +
 * 32 t + 8 (j / 2) + 2 (j % 2) (E2M1: {x(c), x(c+2)}, 0, 0, {x(c+1), x(c+3)},
 * c = 128 s + 32 t + 4 j): the first 8 bytes are the B registers of lane
 * (g = 2t, t), the last 8 those of lane (g = 2t + 1, t), every other lane
 * reads zeros (mma_lane_b). For the integer formats, per (s, t) the offsets
 * the codes carry into the mma over lane t's 32 columns: corr = (1024 * sum
 * of x over the even columns of each 8-column word + 64 * sum over the odd
 * ones, sum of x), from the f16 x the mma reads.
 *
 * Whole (integer groups of 128 or more: a step lies in one group of each row,
 * so a row's 4 lanes share its scale): no masking, every lane reads the 8
 * bytes {x pair 1, x pair 2} of its t, every column of D is the row's dot over
 * the whole step, and corr is one per step. Half the staging, and no sum over
 * the lanes at the end (H100 tg128 of the 8B shape: int4-sym 384.8/380.3 ->
 * 392.4/393.8 t/s, int4 385.6/384.3 -> 388.6/386.3). */
struct x_smem {
    uint4 *b;     /* [steps][8][4]; whole: uint2 [steps][8][4] */
    float2 *corr; /* [steps][4]; whole: [steps] (integer formats) */
};

/* 8 columns of the bf16 row x as floats. */
static __device__ __forceinline__ void unpack_bf16x8(uint4 v, float *f)
{
    const uint32_t *u = (const uint32_t *)&v;
#pragma unroll
    for (int k = 0; k < 4; k++) {
        f[2 * k] = __uint_as_float(u[k] << 16);
        f[2 * k + 1] = __uint_as_float(u[k] & 0xffff0000u);
    }
}

/* The first input column of item (s, t, w) of build_x_fragments: 128 s + 32 t + 8 w. */
static __device__ __forceinline__ int x_item_col(int item, int s_lo)
{
    return (s_lo + (item >> 4)) * MMA_STEP + 8 * (item & 15);
}

/* Whether a format's f16 pairs are the columns (c, c + 2) and (c + 1, c + 3)
 * of a word (E2M1: e2m1_bytes) rather than (c, c + 4) and (c + 1, c + 5). */
template <int FMT> static constexpr bool mma_stride2()
{
    return FMT == QB_WFMT_NVFP4 || FMT == QB_WFMT_MXFP4;
}

/* One item (s, t, w) of build_x_fragments from its 8 x values f: rounds them
 * to f16, stores the two B entries and (first item of a corr's span) corr.
 * Every lane of the warp calls it (the shuffles); `in` says whether the item
 * exists. */
template <bool STRIDE2>
static __device__ __forceinline__ void put_x_item(float *f, int item, bool in, int s_lo,
                                                  bool want_corr, bool whole, struct x_smem sm)
{
    int s = s_lo + (item >> 4), t = (item >> 2) & 3, w = item & 3;
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
    for (int o = 1; o < (whole ? 16 : 4); o <<= 1) {
        c1 += __shfl_xor_sync(0xffffffffu, c1, o);
        sx += __shfl_xor_sync(0xffffffffu, sx, o);
    }
    if (!in)
        return;
#pragma unroll
    for (int h = 0; h < 2; h++) {
        int at = ((s - s_lo) * 8 + 2 * w + h) * 4 + t;
        uint32_t x1 = STRIDE2 ? half2_bits(f[4 * h], f[4 * h + 2]) : half2_bits(f[2 * h], f[2 * h + 4]);
        uint32_t x2 =
            STRIDE2 ? half2_bits(f[4 * h + 1], f[4 * h + 3]) : half2_bits(f[2 * h + 1], f[2 * h + 5]);
        if (whole)
            ((uint2 *)sm.b)[at] = make_uint2(x1, x2);
        else
            sm.b[at] = make_uint4(x1, 0u, 0u, x2);
    }
    if (want_corr && (whole ? (item & 15) == 0 : w == 0))
        sm.corr[whole ? s - s_lo : (s - s_lo) * 4 + t] = make_float2(c1, sx);
}

/* Stage x_smem for steps [s_lo, s_hi): 16 items (t, w) per step on adjacent
 * lanes (corr of (s, t) sums 4 of them, whole 16). A thread takes X_BATCH
 * items at a time with their loads of the bf16 x in flight together (H100
 * int4 tg128: 393.0 -> 398.9 t/s, two runs; 4 at a time: 394.3, the registers
 * cost a resident block). */
#define X_BATCH 2
template <bool STRIDE2>
static __device__ void build_x_fragments(const struct qb_gemv_in &in, float inv, int cols, int s_lo,
                                         int s_hi, bool want_corr, bool whole, struct x_smem sm)
{
    int n_items = (s_hi - s_lo) * 16, lane = threadIdx.x & 31, n = blockDim.x;
    for (int first = threadIdx.x & ~31; first < n_items; first += X_BATCH * n) {
        uint4 raw[X_BATCH];
#pragma unroll
        for (int k = 0; k < X_BATCH; k++) {
            int item = first + k * n + lane, base = x_item_col(item, s_lo);
            raw[k] = make_uint4(0u, 0u, 0u, 0u);
            if (in.x && item < n_items && base < cols)
                raw[k] = __ldg((const uint4 *)(in.x + base));
        }
#pragma unroll
        for (int k = 0; k < X_BATCH; k++) {
            int item = first + k * n + lane;
            if (first + k * n >= n_items) /* warp-uniform */
                break;
            int base = x_item_col(item, s_lo);
            float f[8] = {};
            if (in.x)
                unpack_bf16x8(raw[k], f);
            else if (item < n_items && base < cols)
                load_x8_normed(in, base, inv, f);
            put_x_item<STRIDE2>(f, item, item < n_items, s_lo, want_corr, whole, sm);
        }
    }
}

/* Where lane (g, t) reads its B registers: for step s (relative to the block's
 * first) at lb.p + s * lb.step, mma j at + 8 j; lanes g = 2t and 2t + 1 read
 * their half of x_smem's entry, the others zeros. The zeros sit 64 bytes off
 * the entries' bank alignment, so the two groups of lanes never share a
 * bank: those lanes read bytes 64 .. 575 of the zeros, and x_smem follows
 * them at MMA_ZEROS_BYTES, 576 rounded up to a multiple of 128. */
#define MMA_ZEROS_BYTES 640
struct mma_lane_b {
    const uint2 *p;
    int step;
};

static __device__ __forceinline__ struct mma_lane_b lane_b_of(struct x_smem sm, const uint4 *zeros,
                                                              bool whole)
{
    int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
    bool on = (g >> 1) == t;
    struct mma_lane_b lb;
    if (whole) {
        lb.p = (const uint2 *)sm.b + t;
        lb.step = 32; /* 256 bytes a step, mma j at + 4 j */
        return lb;
    }
    lb.p = (const uint2 *)(on ? sm.b : zeros + 4) + 2 * t + (g & 1);
    lb.step = on ? 64 : 0; /* 512 bytes a step */
    return lb;
}

/* ---- A: weights as f16 pairs -------------------------------------------------- */

/* lop3 (q & MASK) | MAGIC: two codes as f16 in a pair's halves. With MAGIC
 * 0x64006400 (1024, ulp 1) the mask 0x000f000f gives 1024 + code; with
 * 0x54005400 (64, ulp 1/16) 0x00f000f0 gives 64 + code. */
template <uint32_t MASK, uint32_t MAGIC>
static __device__ __forceinline__ uint32_t codes_as_f16(uint32_t q)
{
    uint32_t d;
    asm("lop3.b32 %0, %1, %2, %3, 0xea;" : "=r"(d) : "r"(q), "n"(MASK), "n"(MAGIC));
    return d;
}

/* The E2M1 codes of word q as the high bytes of f16 values times 2^-14: the
 * sign to bit 7, exponent and mantissa to bits 1..3 (bits 15 and 9..11 of the
 * f16: 2^(e-15) (1 + m/2) for e > 0, the subnormal 2^-14 m/2 for e = 0, the
 * E2M1 value times 2^-14); the even codes (columns 0, 2, 4, 6) in e's bytes,
 * the odd ones in o's. Four codes take two shifts and two LOP3, and a PRMT
 * makes a pair (weight_pairs), against two shifts and two LOP3 a pair when
 * each pair was built in place. */
static __device__ __forceinline__ void e2m1_bytes(uint32_t q, uint32_t *e, uint32_t *o)
{
    *e = ((q << 1) & 0x0e0e0e0eu) | ((q << 4) & 0x80808080u);
    *o = ((q >> 3) & 0x0e0e0e0eu) | (q & 0x80808080u);
}

/* 16-entry tables of the f16 bits of nf4's values, in the low (lo) and high
 * (hi) half of a word, so a pair is one OR of two lookups; 32 words in 32
 * banks: no lookup ever conflicts. 128-byte aligned, so the address of entry n
 * is base | 4n, one LOP3 from the shifted codes (lut16_at). */
struct __align__(128) mma_lut16
{
    uint32_t lo[16], hi[16];
};

/* The lo entry of code n of word q (n = 0..7) from shared address base; hi
 * is 64 bytes on. */
static __device__ __forceinline__ uint32_t lut16_at(uint32_t q, int n, uint32_t base, int hi)
{
    uint32_t v, a = ((n ? q >> (4 * n - 2) : q << 2) & 0x3cu) | base;
    if (hi)
        asm volatile("ld.shared.u32 %0, [%1+64];" : "=r"(v) : "r"(a));
    else
        asm volatile("ld.shared.u32 %0, [%1];" : "=r"(v) : "r"(a));
    return v;
}

/* Codes p and p + 4 of word q (columns c and c + 4) as the f16 pair the mma
 * multiplies; p + 1 and p + 5 as the second: A's registers of one row. The
 * E2M1 formats (mma_stride2) pair codes 2p, 2p + 2, then 2p + 1, 2p + 3
 * instead. t16: the shared address of nf4's struct mma_lut16. */
template <int FMT>
static __device__ __forceinline__ uint2 weight_pairs(uint32_t q, int p, uint32_t t16)
{
    if constexpr (pk_has_zero<FMT>()) { /* 1024 + n, 64 + n: exact, corr takes the offsets off */
        uint32_t w = q >> (4 * p);
        return make_uint2(codes_as_f16<0x000f000f, 0x64006400>(w),
                          codes_as_f16<0x00f000f0, 0x54005400>(w));
    } else if constexpr (FMT == QB_WFMT_NVFP4 || FMT == QB_WFMT_MXFP4) {
        uint32_t e, o, sel = p ? 0x3424u : 0x1404u; /* zero, byte p / 2, zero, byte p / 2 + 1 */
        e2m1_bytes(q, &e, &o);
        return make_uint2(__byte_perm(e, 0u, sel), __byte_perm(o, 0u, sel));
    } else { /* nf4, nf4-dq */
        return make_uint2(lut16_at(q, p, t16, 0) | lut16_at(q, p + 4, t16, 1),
                          lut16_at(q, p + 1, t16, 0) | lut16_at(q, p + 5, t16, 1));
    }
}

static __device__ __forceinline__ void mma_16816(float *d, uint4 a, uint32_t b0, uint32_t b1)
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 "
                 "{%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a.x), "r"(a.y), "r"(a.z), "r"(a.w), "r"(b0), "r"(b1));
}

/* ---- the step ----------------------------------------------------------------- */

/* Groups in a lane's 32 columns: nvfp4's groups of 16 make two (columns 0..15
 * are words 0 and 1, mma 0..3); every other format's group is a multiple of
 * 32 here (mma_applies). */
template <int FMT> static constexpr int mma_lane_groups()
{
    return FMT == QB_WFMT_NVFP4 ? 2 : 1;
}

/* The f32 factor of a lane's partial sums: the group scale, times 2^14 for
 * the E2M1 formats (weight_pairs' values are E2M1 * 2^-14). */
template <int FMT>
static __device__ __forceinline__ float lane_scale(const struct packed_view &v,
                                                   struct pk_scale_raw r, const float *lut)
{
    float s = decode_scale<FMT>(v, r, lut).x;
    return FMT == QB_WFMT_NVFP4 || FMT == QB_WFMT_MXFP4 ? s * 16384.0f : s;
}

/* Step s of both tiles: A = the weights of rows g (tile 0) and g + 8 (tile 1)
 * of lane t's 32 columns, B = x masked to lane t's own columns (x_smem), so
 * D[g][2t] + D[g][2t + 1] is row g's dot over those columns alone and the
 * lane's group scale multiplies it after the mma, in f32: acc += s * dot, for
 * the integer formats acc += s * (dot - corr.x - zero * corr.y). WHOLE: B = x
 * unmasked, D[g][2t] is the dot over the whole step. */
template <int FMT, bool WHOLE>
static __device__ __forceinline__ void
mma_step(const struct mma_tile *tl, const uint4 *qs, const struct pk_scale_raw (*sr)[2],
         const uint2 *xb, float2 corr, uint32_t t16, const float *lut, float acc[MMA_TILES])
{
    constexpr int G = mma_lane_groups<FMT>();
    float d[G][4] = {};
    const uint32_t *q0 = (const uint32_t *)&qs[0], *q1 = (const uint32_t *)&qs[1];
#pragma unroll
    for (int j = 0; j < 8; j++) {
        uint2 b = xb[(WHOLE ? 4 : 8) * j];
        int p = 2 * (j & 1);
        uint2 r0 = weight_pairs<FMT>(q0[j >> 1], p, t16);
        uint2 r1 = weight_pairs<FMT>(q1[j >> 1], p, t16);
        mma_16816(d[j * G / 8], make_uint4(r0.x, r1.x, r0.y, r1.y), b.x, b.y);
    }
#pragma unroll
    for (int i = 0; i < MMA_TILES; i++)
#pragma unroll
        for (int h = 0; h < G; h++) {
            float dot = WHOLE ? d[h][2 * i] : d[h][2 * i] + d[h][2 * i + 1];
            if constexpr (pk_has_zero<FMT>()) { /* the offsets the codes carried in */
                float zero = __uint_as_float(0x4B000000u | sr[i][h].zero) - 8388608.0f;
                dot = fmaf(-zero, corr.y, dot - corr.x);
            }
            acc[i] = fmaf(lane_scale<FMT>(tl[i].v, sr[i][h], lut), dot, acc[i]);
        }
}

/* The codes and raw scales of U steps in flight: slot u holds step s0 + u * MMA_WARPS. */
template <int U> struct mma_batch {
    uint4 q[U][MMA_TILES];
    struct pk_scale_raw sr[U][MMA_TILES][2]; /* columns [0,16) and [16,32) */
};

/* Load step s < s_hi of both tiles into q[] and sr[]: zeros where the lane's
 * 32 columns lie past the row's end or the tile is past the last row (the
 * ring never reads a slot of a step past s_hi: nothing is loaded there).
 * drows (a multiple of 8): the tiles that many rows further on, which the
 * caller knows to exist (the persistent SwiGLU kernel's next row group). */
template <int FMT>
static __device__ __forceinline__ void load_step(const struct mma_tile *tl, int s, int s_hi,
                                                 uint4 *q, struct pk_scale_raw (*sr)[2],
                                                 int64_t drows = 0)
{
    if (s >= s_hi)
        return;
    int col = s * MMA_STEP + 32 * (threadIdx.x & 3);
#pragma unroll
    for (int i = 0; i < MMA_TILES; i++) {
        q[i] = make_uint4(0, 0, 0, 0);
        sr[i][0] = sr[i][1] = {0u, 0u, 0.0f};
        if (s >= tl[i].lane_steps)
            continue;
        int64_t g = tl[i].sbase + drows * tl[i].v.groups + (col >> tl[i].gshift);
        q[i] = __ldcs(tl[i].codes + drows * (tl[i].v.cols / 32) + tl[i].stride * s);
        sr[i][0] = load_scale_at<FMT>(tl[i].v, g);
        if constexpr (mma_lane_groups<FMT>() == 2) /* nvfp4: columns 16..31, the next group */
            sr[i][1] = load_scale_at<FMT>(tl[i].v, g + 1);
    }
}

/* Output rows per row group: 2 tiles of 8 (SwiGLU: 8 rows of gate and the same of up). */
template <int MODE> static constexpr int mma_rows_per_group()
{
    return MODE == MMA_SWIGLU ? 8 : 8 * MMA_TILES;
}

/* Tile i of row group rg: rows [row0, row0 + 8) of the concatenated outputs
 * (SwiGLU: the same rows of gate, then of up). Every matrix's rows are a
 * multiple of 8, so a tile lies inside one matrix. */
template <int MODE>
static __device__ __forceinline__ struct mma_tile locate_tile(const struct mma_args &a, int64_t rg,
                                                              int i, int *mat)
{
    struct mma_tile tl = {};
    int g = (threadIdx.x & 31) >> 2;
    int64_t r = rg * mma_rows_per_group<MODE>() + (MODE == MMA_SWIGLU ? 0 : 8 * i);
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
    int t = threadIdx.x & 3;
    tl.row = r + g;
    tl.codes = (const uint4 *)(tl.v.codes + pk_code4_at(tl.v, tl.row, 0)) + t;
    tl.stride = (int)pk_chunk4(tl.v, 4);
    tl.sbase = tl.row * tl.v.groups;
    tl.gshift = __ffs(tl.v.group) - 1; /* a power of two (mma_applies) */
    tl.lane_steps = (tl.v.cols - 32 * t + MMA_STEP - 1) / MMA_STEP; /* cols % 32 == 0 */
    return tl;
}

/* Lane r < 16 of the first warp of row group rg: output r of the group from
 * its NW warps' partial sums red[NW]. */
template <int MODE, int NW = MMA_WARPS>
static __device__ __forceinline__ void store_output(const struct mma_args &a, int64_t rg,
                                                    const struct mma_tile *tl, const int *mat,
                                                    const float (*red)[MMA_TILES * 8])
{
    int r = threadIdx.x & 31, i = r >> 3, g = r >> 2; /* g: this lane's row inside its tile */
    float v = 0.0f;
    for (int w = 0; w < NW; w++)
        v += red[w][r];
    if constexpr (MODE == MMA_SWIGLU) {
        if (r < 8 && mat[0] >= 0) {
            float u = 0.0f;
            for (int w = 0; w < NW; w++)
                u += red[w][8 + r];
            a.y_bf16[rg * 8 + r] = qb_f32_to_bf16_bits(qb_silu(v) * u);
        }
    } else {
        int64_t out = rg * mma_rows_per_group<MODE>() + r;
        int m = i ? mat[1] : mat[0]; /* selects, not indexing: no local-memory copies */
        bool valid = m >= 0 && out < a.total_rows;
        if (valid) {
            int64_t local = (i ? tl[1].row : tl[0].row) - g + (r & 7); /* tile row 0 + r's place */
            const float *bias = m == 0 ? a.bias[0] : m == 1 ? a.bias[1] : a.bias[2];
            v += bias ? bias[local] : 0.0f;
            v = MODE == MMA_ACCUM ? a.y[out] + v : v;
            a.y[out] = v;
        }
        if (MODE == MMA_ACCUM && a.next.out) { /* the group's share of the RMSNorm tail */
            static_assert(MMA_TILES * 8 == 16, "the mask: lanes 0..15 of the warp");
            float sq = valid ? v * v : 0.0f;
            for (int o = 8; o > 0; o >>= 1)
                sq += __shfl_xor_sync(0x0000ffffu, sq, o);
            if (r == 0 && rg * 16 < a.total_rows)
                a.row_ss[rg] = sq;
        }
    }
}

/* Inline PTX of the cluster code (sm_90+); where there are no clusters it is
 * never reached (cluster_fits keeps split K off) and traps if it is. */
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define CLUSTER_ASM(text) asm volatile(text ::: "memory")
#elif defined(__CUDA_ARCH__)
#define CLUSTER_ASM(text) __trap()
#else
#define CLUSTER_ASM(text) ((void)0)
#endif

/* barrier.cluster in two halves: arrive (relaxed: orders nothing; release)
 * and wait (acquire). Only in cluster launches (split K). */
static __device__ __forceinline__ void cluster_arrive_relaxed(void)
{
    CLUSTER_ASM("barrier.cluster.arrive.relaxed.aligned;");
}

static __device__ __forceinline__ void cluster_arrive(void)
{
    CLUSTER_ASM("barrier.cluster.arrive.aligned;");
}

static __device__ __forceinline__ void cluster_wait(void)
{
    CLUSTER_ASM("barrier.cluster.wait.aligned;");
}

/* Store v at the same shared-memory variable *p of the cluster's block 0. */
static __device__ __forceinline__ void st_cluster_rank0(float *p, float v)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    uint32_t local = (uint32_t)__cvta_generic_to_shared(p), remote;
    asm volatile("mapa.shared::cluster.u32 %0, %1, 0;" : "=r"(remote) : "r"(local));
    asm volatile("st.shared::cluster.f32 [%0], %1;" ::"r"(remote), "f"(v) : "memory");
#elif defined(__CUDA_ARCH__)
    __trap();
#endif
}

/* Split K (accumulating launches only): the gridDim.y parts of a row block
 * form a cluster; each writes the 16 partial sums of each of its row groups
 * into parts[its part] of part 0's shared memory, and after the cluster
 * barrier part 0 turns each group's red into their sum in part order
 * (deterministic); true for it. Every thread of every part calls it once,
 * after the cluster_arrive_relaxed at the kernel's start (so part 0's shared
 * memory is known to be live when written). */
static __device__ bool split_k_gather(float (*red)[MMA_TILES * 8], float (*parts)[16 * MMA_GROUPS])
{
    int warp = threadIdx.x >> 5, r = threadIdx.x & 31, gi = warp / MMA_WARPS;
    bool lead = warp % MMA_WARPS == 0 && r < 16; /* lane r of the group's first warp */
    float(*gred)[MMA_TILES * 8] = red + gi * MMA_WARPS;
    cluster_wait();
    if (lead) {
        float v = 0.0f;
        for (int w = 0; w < MMA_WARPS; w++)
            v += gred[w][r];
        st_cluster_rank0(&parts[blockIdx.y][16 * gi + r], v);
    }
    cluster_arrive();
    cluster_wait();
    if (blockIdx.y != 0)
        return false;
    if (lead) {
        float v = 0.0f;
        for (unsigned k = 0; k < gridDim.y; k++)
            v += parts[k][16 * gi + r];
        gred[0][r] = v;
        for (int w = 1; w < MMA_WARPS; w++)
            gred[w][r] = 0.0f;
    }
    __syncthreads();
    return true;
}

#define TAIL_PER 8 /* float4 of y (and of the norm weight) per thread in flight */

/* Elements i0 + k * blockDim.x (k < TAIL_PER, those below n4) of y and the norm weight. */
static __device__ __forceinline__ void tail_load(const struct mma_args &a, int i0, int n4,
                                                 float4 *v, float4 *w)
{
#pragma unroll
    for (int k = 0; k < TAIL_PER; k++) {
        int i = i0 + k * blockDim.x;
        if (i < n4) {
            v[k] = __ldcg((const float4 *)a.y + i);
            w[k] = __ldg((const float4 *)a.next.nw + i);
        }
    }
}

/* bf16(y * inv * nw) of those elements into next.out. */
static __device__ __forceinline__ void tail_store(const struct mma_args &a, int i0, int n4,
                                                  float inv, const float4 *v, const float4 *w)
{
#pragma unroll
    for (int k = 0; k < TAIL_PER; k++) {
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

/* The RMSNorm tail (accumulating launches with a.next.out): every row group
 * has left the sum of squares of its outputs in row_ss (store_output); once
 * all blocks have arrived, the last adds those sums and normalizes the whole
 * of y into next.out as rmsnorm.cu does (up to the summation order), its
 * first loads of y and the norm weight issued before that sum, and resets the
 * counter.
 * total_rows % 4 == 0 (qb_gemv_mma_launch). */
static __device__ void norm_tail(const struct mma_args &a, float *scratch)
{
    __shared__ bool last;
    int n4 = (int)(a.total_rows / 4), step = TAIL_PER * blockDim.x;
    float4 v[TAIL_PER], w[TAIL_PER];
    __threadfence(); /* this block's outputs and row_ss, before its arrival */
    __syncthreads();
    if (threadIdx.x == 0)
        last = atomicAdd(a.next.done, 1u) == gridDim.x - 1;
    __syncthreads();
    if (!last)
        return;
    __threadfence();
    float ss = 0.0f;
    for (int i = threadIdx.x; i < (int)((a.total_rows + 15) / 16); i += blockDim.x)
        ss += __ldcg(a.row_ss + i);      /* one per row group (store_output) */
    tail_load(a, threadIdx.x, n4, v, w); /* in flight during the sum */
    float inv = rsqrtf(qb_block_sum(ss, scratch) / (float)a.total_rows + a.next.eps);
    for (int i0 = threadIdx.x; i0 < n4; i0 += step) {
        tail_store(a, i0, n4, inv, v, w);
        if (i0 + step < n4)
            tail_load(a, i0 + step, n4, v, w);
    }
    if (threadIdx.x == 0)
        *a.next.done = 0;
}

/* Bytes of x staging per step: the B entries, and for the integer formats the
 * lanes' corr. */
template <int FMT, bool WHOLE> static constexpr int mma_smem_per_step()
{
    return WHOLE ? 32 * (int)sizeof(uint2) + (int)sizeof(float2)
                 : 32 * (int)sizeof(uint4) + (pk_has_zero<FMT>() ? 4 * (int)sizeof(float2) : 0);
}

/* Dynamic shared memory of a launch: the zeros, then struct x_smem. */
template <int FMT, bool WHOLE> static size_t mma_smem_bytes(int steps)
{
    return MMA_ZEROS_BYTES + (size_t)steps * mma_smem_per_step<FMT, WHOLE>();
}

/* The row group of this warp: MMA_GROUPS per block, MMA_WARPS warps each. */
static __device__ __forceinline__ int64_t row_group(void)
{
    return (int64_t)blockIdx.x * MMA_GROUPS + (threadIdx.x >> 5) / MMA_WARPS;
}

/* The block's constant tables: the zeros lanes off the diagonal read as B,
 * nf4-dq's scale map (lut) and nf4's f16 values (t16). */
template <int FMT>
static __device__ void init_tables(const struct mma_args &a, uint4 *zeros, float *lut,
                                   struct mma_lut16 *t16)
{
    constexpr bool is_nf4 = FMT == QB_WFMT_NF4 || FMT == QB_WFMT_NF4_DQ;
    constexpr int lut_len = FMT == QB_WFMT_NF4_DQ ? MMA_LUT_MAX : 0;
    for (int i = threadIdx.x; i < MMA_ZEROS_BYTES / 16; i += blockDim.x)
        zeros[i] = make_uint4(0, 0, 0, 0);
    for (int i = threadIdx.x; i < lut_len; i += blockDim.x)
        lut[i] = a.m[0].lut[i];
    if (is_nf4 && threadIdx.x < 16) {
        uint32_t h = __half_as_ushort(__float2half_rn(a.m[0].lut[threadIdx.x]));
        t16->lo[threadIdx.x] = h;
        t16->hi[threadIdx.x] = h << 16;
    }
}

template <int FMT, int MODE, bool WHOLE>
static __global__ void __launch_bounds__(MMA_WARPS * 32 * MMA_GROUPS, MMA_MIN_BLOCKS * 4 / (MMA_WARPS * MMA_GROUPS))
    gemv_mma_kernel(struct mma_args a)
{
    constexpr int U = MMA_UNROLL;
    extern __shared__ uint4 xs[]; /* the zeros lanes off the diagonal read as B, x_smem */
    uint4 *zeros = xs, *xb = xs + MMA_ZEROS_BYTES / 16;
    __shared__ float lut[MMA_LUT_MAX];
    __shared__ struct mma_lut16 t16;
    __shared__ float red[MMA_GROUPS * MMA_WARPS][MMA_TILES * 8];
    __shared__ float parts[QB_MMA_KSPLIT]
                          [16 * MMA_GROUPS]; /* split K: part 0's, written by every part */
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int wig = warp % MMA_WARPS; /* the warp inside its row group */
    struct mma_tile tl[MMA_TILES];
    int mat[MMA_TILES];
    struct mma_batch<U> b;
    float acc[MMA_TILES] = {};
    for (int i = 0; i < MMA_TILES; i++)
        tl[i] = locate_tile<MODE>(a, row_group(), i, &mat[i]);
    /* split K: block (x, y) takes steps [s_lo, s_hi) of row block x */
    int s_lo = (int)(blockIdx.y * a.n_steps / gridDim.y);
    int s_hi = (int)((blockIdx.y + 1) * a.n_steps / gridDim.y);
    struct x_smem sm = {xb, (float2 *)(xb + (s_hi - s_lo) * (WHOLE ? 16 : 32))};
    if (gridDim.y > 1) /* split_k_gather's wait: every part has started */
        cluster_arrive_relaxed();
#pragma unroll
    for (int u = 0; u < U; u++) /* weights only: before the wait */
        load_step<FMT>(tl, s_lo + wig + u * MMA_WARPS, s_hi, b.q[u], b.sr[u]);
    init_tables<FMT>(a, zeros, lut, &t16);
    qb_pdl_wait();
    qb_pdl_trigger();
    float inv = a.in.x ? 1.0f : block_inv_rms(a.in, a.m[0].cols, &red[0][0]);
    build_x_fragments<mma_stride2<FMT>()>(a.in, inv, a.m[0].cols, s_lo, s_hi, pk_has_zero<FMT>(),
                                          WHOLE, sm);
    __syncthreads();
    struct mma_lane_b lb = lane_b_of(sm, zeros, WHOLE);
    uint32_t t16_at = (uint32_t)__cvta_generic_to_shared(&t16);
    /* A ring of U steps: slot u is refilled with the step U * MMA_WARPS ahead as
     * soon as its mma are issued, so U steps stay in flight while this warp works. */
    for (int s0 = s_lo + wig; s0 < s_hi; s0 += U * MMA_WARPS) {
#pragma unroll
        for (int u = 0; u < U; u++) {
            int s = s0 + u * MMA_WARPS;
            if (s >= s_hi)
                break;
            float2 corr = !pk_has_zero<FMT>() ? make_float2(0.0f, 0.0f)
                          : WHOLE             ? sm.corr[s - s_lo]
                                              : sm.corr[(s - s_lo) * 4 + (lane & 3)];
            mma_step<FMT, WHOLE>(tl, b.q[u], b.sr[u], lb.p + (s - s_lo) * lb.step, corr, t16_at,
                                 lut, acc);
            if (s + U * MMA_WARPS < s_hi)
                load_step<FMT>(tl, s + U * MMA_WARPS, s_hi, b.q[u], b.sr[u]);
        }
    }
    /* each lane holds its rows' sums over its own columns: add the 4 lanes of a row
     * (whole: each already holds the rows' sums over all columns) */
#pragma unroll
    for (int i = 0; i < MMA_TILES && !WHOLE; i++) {
        acc[i] += __shfl_xor_sync(0xffffffffu, acc[i], 1);
        acc[i] += __shfl_xor_sync(0xffffffffu, acc[i], 2);
    }
    __syncthreads();     /* red doubled as block_inv_rms's scratch */
    if ((lane & 3) == 0) /* rows g and g + 8 of the row group */
        for (int i = 0; i < MMA_TILES; i++)
            red[warp][8 * i + (lane >> 2)] = acc[i];
    __syncthreads();
    if (gridDim.y > 1 && !split_k_gather(red, parts)) /* not part 0 of this row block */
        return;
    if (wig == 0 && lane < MMA_TILES * 8)
        store_output<MODE>(a, row_group(), tl, mat, red + (warp - wig));
    if (MODE == MMA_ACCUM && a.next.out)
        norm_tail(a, &red[0][0]);
}

/* ---- the persistent SwiGLU kernel ---------------------------------------------- */

/* gate/up, decode's largest launch (1792 row groups of the 8B shape, three
 * and a half waves of the kernel above), as one wave of resident blocks: block
 * b takes row groups b, b + gridDim.x, ..., each over MMA_PW warps (warp w
 * takes steps w, w + MMA_PW, ...: a multiple of MMA_UNROLL, qb_gemv_mma_launch
 * checks), so x is staged once per block instead of once per 16 rows, and each
 * warp's ring runs on from one row group into the next instead of draining at
 * the end of every block: its last MMA_UNROLL refills of a row group load the
 * first steps of the next. The warps' partial sums meet in red[parity], which
 * alternates between row groups, so one barrier a row group suffices: a warp
 * writes red[p] again only after the next barrier, which the warp reading it
 * reaches only after its read. */
#ifndef MMA_PW
#define MMA_PW 8
#endif

template <int FMT, bool WHOLE>
static __global__ void __launch_bounds__(MMA_PW * 32, MMA_MIN_BLOCKS * 4 / MMA_PW)
    gemv_mma_swiglu_persistent(struct mma_args a)
{
    constexpr int U = MMA_UNROLL, W = MMA_PW;
    extern __shared__ uint4 xs[];
    uint4 *zeros = xs, *xb = xs + MMA_ZEROS_BYTES / 16;
    __shared__ float lut[MMA_LUT_MAX];
    __shared__ struct mma_lut16 t16;
    __shared__ float red[2][W][MMA_TILES * 8];
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int64_t n_rg = (a.total_rows + 7) / 8, rg = blockIdx.x;
    int64_t drows = (int64_t)gridDim.x * mma_rows_per_group<MMA_SWIGLU>();
    int spw = a.n_steps / W; /* steps a warp takes of each row group */
    struct mma_tile tl[MMA_TILES];
    int mat[MMA_TILES];
    struct mma_batch<U> b;
    float acc[MMA_TILES] = {};
    for (int i = 0; i < MMA_TILES; i++)
        tl[i] = locate_tile<MMA_SWIGLU>(a, rg, i, &mat[i]);
    struct x_smem sm = {xb, (float2 *)(xb + a.n_steps * (WHOLE ? 16 : 32))};
#pragma unroll
    for (int u = 0; u < U; u++) /* weights only: before the wait */
        load_step<FMT>(tl, warp + u * W, a.n_steps, b.q[u], b.sr[u]);
    init_tables<FMT>(a, zeros, lut, &t16);
    qb_pdl_wait();
    qb_pdl_trigger();
    build_x_fragments<mma_stride2<FMT>()>(a.in, 1.0f, a.m[0].cols, 0, a.n_steps,
                                          pk_has_zero<FMT>(), WHOLE, sm);
    __syncthreads();
    struct mma_lane_b lb = lane_b_of(sm, zeros, WHOLE);
    uint32_t t16_at = (uint32_t)__cvta_generic_to_shared(&t16);
    for (int par = 0;; par ^= 1) {
        bool more = rg + gridDim.x < n_rg;
        for (int j0 = 0; j0 < spw; j0 += U) {
#pragma unroll
            for (int u = 0; u < U; u++) {
                int s = warp + (j0 + u) * W, jn = j0 + u + U;
                float2 corr = !pk_has_zero<FMT>() ? make_float2(0.0f, 0.0f)
                              : WHOLE             ? sm.corr[s]
                                                  : sm.corr[s * 4 + (lane & 3)];
                mma_step<FMT, WHOLE>(tl, b.q[u], b.sr[u], lb.p + s * lb.step, corr, t16_at, lut,
                                     acc);
                if (jn < spw)
                    load_step<FMT>(tl, warp + jn * W, a.n_steps, b.q[u], b.sr[u]);
                else if (more) /* the same slot of the next row group */
                    load_step<FMT>(tl, warp + (jn - spw) * W, a.n_steps, b.q[u], b.sr[u], drows);
            }
        }
#pragma unroll
        for (int i = 0; i < MMA_TILES && !WHOLE; i++) {
            acc[i] += __shfl_xor_sync(0xffffffffu, acc[i], 1);
            acc[i] += __shfl_xor_sync(0xffffffffu, acc[i], 2);
        }
        if ((lane & 3) == 0)
            for (int i = 0; i < MMA_TILES; i++)
                red[par][warp][8 * i + (lane >> 2)] = acc[i];
        __syncthreads();
        if (warp == 0 && lane < MMA_TILES * 8)
            store_output<MMA_SWIGLU, W>(a, rg, tl, mat, red[par]);
        if (!more)
            break;
        rg += gridDim.x;
        for (int i = 0; i < MMA_TILES; i++) {
            tl[i].codes += drows * (tl[i].v.cols / 32);
            tl[i].sbase += drows * tl[i].v.groups;
            tl[i].row += drows;
            acc[i] = 0.0f;
        }
    }
}

typedef void (*mma_kernel_fn)(struct mma_args);

/* Let kernel take smem bytes of dynamic shared memory: cudaErrorNotSupported
 * when the device has less (more x than it holds: gemv_packed.cu's turn). */
static cudaError_t allow_smem(mma_kernel_fn kernel, size_t smem)
{
    if (smem <= MMA_STATIC_SMEM_MAX - 4096)
        return cudaSuccess;
    if (cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                             (int)smem + 4096) == cudaSuccess)
        return cudaSuccess;
    (void)cudaGetLastError();
    return cudaErrorNotSupported;
}

/* 1 when the ks parts of a row block can run as one cluster of this launch:
 * the kernel was built for sm_90+ (not JIT-compiled from older PTX, which has
 * no cluster barrier: the helpers above trap there) and the device can place
 * such a cluster (none before sm_90; MPS or partitioned SMs may refuse). */
static bool cluster_fits(mma_kernel_fn kernel, unsigned blocks, unsigned threads, size_t smem,
                         int ks)
{
    cudaFuncAttributes fa;
    cudaLaunchConfig_t cfg = {};
    cudaLaunchAttribute attr;
    int n = 0;
    attr.id = cudaLaunchAttributeClusterDimension;
    attr.val.clusterDim.x = 1;
    attr.val.clusterDim.y = (unsigned)ks;
    attr.val.clusterDim.z = 1;
    cfg.gridDim = dim3(blocks, (unsigned)ks);
    cfg.blockDim = dim3(threads);
    cfg.dynamicSmemBytes = smem;
    cfg.attrs = &attr;
    cfg.numAttrs = 1;
    if (cudaFuncGetAttributes(&fa, kernel) == cudaSuccess && fa.ptxVersion >= 90 &&
        cudaOccupancyMaxActiveClusters(&n, kernel, &cfg) == cudaSuccess)
        return n > 0;
    (void)cudaGetLastError();
    return false;
}

template <int FMT, int MODE, bool WHOLE>
static cudaError_t mma_launch_mode(const struct mma_args *a, bool pdl, cudaStream_t s)
{
    mma_kernel_fn kernel = gemv_mma_kernel<FMT, MODE, WHOLE>;
    int64_t per_block = mma_rows_per_group<MODE>() * MMA_GROUPS;
    unsigned threads = MMA_WARPS * 32 * MMA_GROUPS;
    int64_t blocks = (a->total_rows + per_block - 1) / per_block;
    int ks = MODE == MMA_ACCUM ? QB_MMA_KSPLIT : 1;
    while (ks > 1 && a->n_steps < 16 * ks) /* at least 16 steps (4 per warp) a part */
        ks /= 2;
    if (blocks > 0x7fffffff)
        return cudaErrorInvalidValue;
    size_t smem = mma_smem_bytes<FMT, WHOLE>((a->n_steps + ks - 1) / ks);
    cudaError_t e = allow_smem(kernel, smem);
    if (e == cudaSuccess && ks > 1 && !cluster_fits(kernel, (unsigned)blocks, threads, smem, ks)) {
        ks = 1; /* no clusters here: one part a row block */
        smem = mma_smem_bytes<FMT, WHOLE>(a->n_steps);
        e = allow_smem(kernel, smem);
    }
    if (e != cudaSuccess)
        return e;
    return qb_launch_cluster(pdl, ks, kernel, dim3((unsigned)blocks, (unsigned)ks), dim3(threads),
                             smem, s, *a);
}

/* The persistent SwiGLU kernel where its ring fits the row (steps a multiple
 * of MMA_PW * MMA_UNROLL) and the row groups fill at least two waves of it;
 * *taken = false (and cudaSuccess) otherwise: the kernel above's turn. */
template <int FMT, bool WHOLE>
static cudaError_t mma_launch_persistent(const struct mma_args *a, bool pdl, cudaStream_t s,
                                         bool *taken)
{
    mma_kernel_fn kernel = gemv_mma_swiglu_persistent<FMT, WHOLE>;
    int64_t n_rg = (a->total_rows + 7) / 8;
    size_t smem = mma_smem_bytes<FMT, WHOLE>(a->n_steps);
    int dev = 0, sms = 0, per_sm = 0;
    *taken = false;
    if (a->n_steps % (MMA_PW * MMA_UNROLL) || allow_smem(kernel, smem) != cudaSuccess)
        return cudaSuccess;
    if (cudaGetDevice(&dev) != cudaSuccess ||
        cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess ||
        cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, MMA_PW * 32, smem) !=
            cudaSuccess) {
        (void)cudaGetLastError();
        return cudaSuccess;
    }
    int64_t blocks = (int64_t)sms * per_sm;
    if (blocks < 1 || n_rg < 2 * blocks)
        return cudaSuccess;
    *taken = true;
    return qb_launch_smem(pdl, kernel, dim3((unsigned)blocks), dim3(MMA_PW * 32), smem, s, *a);
}

template <int FMT, int MODE, bool WHOLE>
static cudaError_t mma_launch_shape(const struct mma_args *a, bool pdl, cudaStream_t s)
{
    if constexpr (MODE == MMA_SWIGLU) {
        bool taken;
        cudaError_t e = mma_launch_persistent<FMT, WHOLE>(a, pdl, s, &taken);
        if (taken)
            return e;
    }
    return mma_launch_mode<FMT, MODE, WHOLE>(a, pdl, s);
}

/* Whole steps (x_smem) when every matrix is an integer format whose groups
 * span whole steps (128 columns or more). */
template <int FMT, int MODE>
static cudaError_t mma_launch_whole(const struct mma_args *a, bool pdl, cudaStream_t s)
{
    if constexpr (pk_has_zero<FMT>()) {
        bool whole = true;
        for (int i = 0; i < a->n_mats; i++)
            whole = whole && a->m[i].group % MMA_STEP == 0;
        if (whole)
            return mma_launch_shape<FMT, MODE, true>(a, pdl, s);
    }
    return mma_launch_shape<FMT, MODE, false>(a, pdl, s);
}

template <int FMT>
static cudaError_t mma_launch_fmt(const struct mma_args *a, int mode, bool pdl, cudaStream_t s)
{
    if (mode == MMA_STORE)
        return mma_launch_whole<FMT, MMA_STORE>(a, pdl, s);
    if (mode == MMA_ACCUM)
        return mma_launch_whole<FMT, MMA_ACCUM>(a, pdl, s);
    return mma_launch_whole<FMT, MMA_SWIGLU>(a, pdl, s);
}

/* 1 when the launch of these weights can take the tensor-core path. */
static bool mma_applies(const struct qb_cuda_weight *const *w, int n_w)
{
    if (qb_packed_is_8bit(w[0]->fmt) || w[0]->fmt == QB_WFMT_BF16)
        return false;
    for (int i = 0; i < n_w; i++) /* weight-only: W4A4 goes to w4a4.cu */
        if (w[i]->act != QB_ACT_F32 || w[i]->g_idx || w[i]->rows % 8 || w[i]->cols != w[0]->cols ||
            w[i]->cols % 32 || (w[i]->group & (w[i]->group - 1)) ||
            (w[i]->group % 32 && w[i]->fmt != QB_WFMT_NVFP4))
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
    if (next && (mode != MMA_ACCUM || n_w != 1 || w[0]->rows % 4 || !w[0]->tail_done))
        return cudaErrorNotSupported;
    if (next) {
        a.next = *next;
        a.next.done = w[0]->tail_done;
        a.row_ss = w[0]->tail_ss;
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
    a.y = y;
    a.y_bf16 = y_bf16;
    switch (w[0]->fmt) {
    case QB_WFMT_INT4:
        return mma_launch_fmt<QB_WFMT_INT4>(&a, mode, pdl, s);
    case QB_WFMT_INT4_SYM:
        return mma_launch_fmt<QB_WFMT_INT4_SYM>(&a, mode, pdl, s);
    case QB_WFMT_UINT_G:
        return mma_launch_fmt<QB_WFMT_UINT_G>(&a, mode, pdl, s);
    case QB_WFMT_NF4:
        return mma_launch_fmt<QB_WFMT_NF4>(&a, mode, pdl, s);
    case QB_WFMT_NF4_DQ:
        return mma_launch_fmt<QB_WFMT_NF4_DQ>(&a, mode, pdl, s);
    case QB_WFMT_NVFP4:
        return mma_launch_fmt<QB_WFMT_NVFP4>(&a, mode, pdl, s);
    case QB_WFMT_MXFP4:
        return mma_launch_fmt<QB_WFMT_MXFP4>(&a, mode, pdl, s);
    default:
        return cudaErrorNotSupported;
    }
}
