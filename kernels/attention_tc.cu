/*
 * attention_tc.cu - causal GQA attention for prefill on the tensor cores
 * (flash-attention style: key tiles streamed through shared memory, online
 * softmax, the score matrix never leaves the chip). head_dim 64 or 128; the
 * CUDA-core kernel of attention.cu handles decode and the other sizes.
 *
 * Grid: (ceil(n / 64), n_heads); block: 4 warps, warp w owns query rows
 * 16w .. 16w+15 of the block's 64. WMMA 16x16x16, f16 inputs, f32 accumulate.
 *
 *   per key tile k0 .. k0+63 (all tiles up to the block's last query):
 *     K, V tile (f16, zero past the last key)  -> smem Ks, Vs  [64][hd + 8]
 *     S  = Q K^T         (16 x 64 per warp)     -> smem S      [16][68]  f32
 *     online softmax on S rows (causal mask, scale 1/sqrt(hd)):
 *       m' = max(m, rowmax), P = e^(S - m'), l = l e^(m - m') + rowsum(P)
 *       O *= e^(m - m')  (rows of the warp's O in smem)
 *     P (f16, written over S) ; O += P V       -> smem O      [16][hd + 4] f32
 *   out = O / l  -> bf16
 *
 * Lanes 2r and 2r+1 of a warp own row r of S/P/O (columns split in halves) and
 * keep that row's m and l. Q is converted to f16 through the Ks buffer once
 * and held as WMMA fragments in registers. Rows past n (the last block's
 * padding) attend to key 0 only, so they stay finite, and are not written.
 */
#include <math.h>
#include <mma.h>

#include "attention_tc.cuh"

using namespace nvcuda;

#define TC_WARPS 4
#define TC_BQ 64 /* queries per block */
#define TC_BK 64 /* keys per tile */
#define TC_S_LD (TC_BK + 4)

struct tc_args {
    const float *qkv;
    int ldq, n, n_heads, n_kv, max_ctx;
    const int32_t *d_pos;
    const uint16_t *k_cache, *v_cache;
    uint16_t *out;
};

template <int HD> struct tc_smem {
    static constexpr int KV_LD = HD + 8;  /* halves */
    static constexpr int O_LD = HD + 4;   /* floats */
    static constexpr size_t KS = (size_t)TC_BK * KV_LD * 2;
    static constexpr size_t S = (size_t)TC_WARPS * 16 * TC_S_LD * 4;
    static constexpr size_t O = (size_t)TC_WARPS * 16 * O_LD * 4;
    static constexpr size_t BYTES = 2 * KS + S + O;
};

/* Copy rows [k0, k0+64) of one kv head's cache into dst [64][KV_LD], zero past last. */
template <int HD>
static __device__ void load_tile(const uint16_t *cache, int k0, int last, __half *dst)
{
    constexpr int CHUNKS = HD / 8; /* 16-byte chunks per row */
    for (int i = threadIdx.x; i < TC_BK * CHUNKS; i += blockDim.x) {
        int r = i / CHUNKS, c = i % CHUNKS;
        uint4 v = make_uint4(0, 0, 0, 0);
        if (k0 + r <= last)
            v = *(const uint4 *)(cache + (size_t)(k0 + r) * HD + c * 8);
        *(uint4 *)(dst + r * tc_smem<HD>::KV_LD + c * 8) = v;
    }
}

template <int HD> static __global__ void __launch_bounds__(TC_WARPS * 32)
attention_tc_kernel(struct tc_args a)
{
    using L = tc_smem<HD>;
    extern __shared__ __align__(128) unsigned char smem[];
    __half *Ks = (__half *)smem, *Vs = (__half *)(smem + L::KS);
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, h = blockIdx.y;
    float *S = (float *)(smem + 2 * L::KS) + warp * 16 * TC_S_LD;
    __half *P = (__half *)S; /* P[16][TC_S_LD * 2] halves over the same bytes */
    float *O = (float *)(smem + 2 * L::KS + L::S) + warp * 16 * L::O_LD;
    int t0 = blockIdx.x * TC_BQ, pos0 = *a.d_pos, kvh = h / (a.n_heads / a.n_kv);
    int row = lane >> 1, half_ = lane & 1, tq = t0 + warp * 16 + row;
    int qpos = tq < a.n ? pos0 + tq : 0; /* padding rows see key 0 only */
    int last = pos0 + min(t0 + TC_BQ, a.n) - 1;
    const uint16_t *kc = a.k_cache + (size_t)kvh * a.max_ctx * HD;
    const uint16_t *vc = a.v_cache + (size_t)kvh * a.max_ctx * HD;
    const float scale = rsqrtf((float)HD);

    /* Q -> f16 via Ks, then into fragments */
    for (int i = threadIdx.x; i < TC_BQ * HD; i += blockDim.x) {
        int r = i / HD, d = i % HD;
        float q = t0 + r < a.n ? a.qkv[(size_t)(t0 + r) * a.ldq + (size_t)h * HD + d] : 0.0f;
        Ks[r * L::KV_LD + d] = __float2half_rn(q);
    }
    for (int i = lane; i < 16 * HD; i += 32)
        O[(i / HD) * L::O_LD + i % HD] = 0.0f;
    __syncthreads();
    wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major> qf[HD / 16];
#pragma unroll
    for (int kk = 0; kk < HD / 16; kk++)
        wmma::load_matrix_sync(qf[kk], Ks + warp * 16 * L::KV_LD + kk * 16, L::KV_LD);
    float m = -INFINITY, l = 0.0f;

    for (int k0 = 0; k0 <= last; k0 += TC_BK) {
        __syncthreads(); /* previous tile (or Q) fully consumed */
        load_tile<HD>(kc, k0, last, Ks);
        load_tile<HD>(vc, k0, last, Vs);
        __syncthreads();
        /* S = Q K^T */
#pragma unroll
        for (int nb = 0; nb < TC_BK / 16; nb++) {
            wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
            wmma::fill_fragment(acc, 0.0f);
#pragma unroll
            for (int kk = 0; kk < HD / 16; kk++) {
                wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, wmma::col_major> kf;
                wmma::load_matrix_sync(kf, Ks + nb * 16 * L::KV_LD + kk * 16, L::KV_LD);
                wmma::mma_sync(acc, qf[kk], kf, acc);
            }
            wmma::store_matrix_sync(S + nb * 16, acc, TC_S_LD, wmma::mem_row_major);
        }
        __syncwarp();
        /* online softmax over this lane's half row */
        float s[TC_BK / 2], mx = -INFINITY, sum = 0.0f;
#pragma unroll
        for (int j = 0; j < TC_BK / 2; j++) {
            int key = k0 + half_ * (TC_BK / 2) + j;
            s[j] = key <= qpos ? S[row * TC_S_LD + half_ * (TC_BK / 2) + j] * scale : -INFINITY;
            mx = fmaxf(mx, s[j]);
        }
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        float m_new = fmaxf(m, mx); /* finite: key 0 <= qpos was in the first tile */
        float corr = __expf(m - m_new);
        __syncwarp(); /* all of S is in registers before P overwrites it */
#pragma unroll
        for (int j = 0; j < TC_BK / 2; j++) {
            float p = __expf(s[j] - m_new);
            sum += p;
            P[row * (2 * TC_S_LD) + half_ * (TC_BK / 2) + j] = __float2half_rn(p);
        }
        sum += __shfl_xor_sync(0xffffffffu, sum, 1);
        l = l * corr + sum;
        m = m_new;
        for (int d = half_ * (HD / 2); d < (half_ + 1) * (HD / 2); d++)
            O[row * L::O_LD + d] *= corr;
        __syncwarp();
        /* O += P V */
#pragma unroll
        for (int nd = 0; nd < HD / 16; nd++) {
            wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc;
            wmma::load_matrix_sync(acc, O + nd * 16, L::O_LD, wmma::mem_row_major);
#pragma unroll
            for (int kk = 0; kk < TC_BK / 16; kk++) {
                wmma::fragment<wmma::matrix_a, 16, 16, 16, __half, wmma::row_major> pf;
                wmma::fragment<wmma::matrix_b, 16, 16, 16, __half, wmma::row_major> vf;
                wmma::load_matrix_sync(pf, P + kk * 16, 2 * TC_S_LD);
                wmma::load_matrix_sync(vf, Vs + kk * 16 * L::KV_LD + nd * 16, L::KV_LD);
                wmma::mma_sync(acc, pf, vf, acc);
            }
            wmma::store_matrix_sync(O + nd * 16, acc, L::O_LD, wmma::mem_row_major);
        }
        __syncwarp();
    }
    if (tq >= a.n)
        return;
    uint16_t *o = a.out + (size_t)tq * a.n_heads * HD + (size_t)h * HD;
    for (int d = half_ * (HD / 2); d < (half_ + 1) * (HD / 2); d++)
        o[d] = qb_f32_to_bf16_bits(O[row * L::O_LD + d] / l);
}

template <int HD> static cudaError_t attention_tc_hd(const struct tc_args *a, cudaStream_t s)
{
    size_t bytes = tc_smem<HD>::BYTES;
    cudaError_t e = cudaFuncSetAttribute(attention_tc_kernel<HD>,
                                         cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes);
    if (e != cudaSuccess)
        return e;
    dim3 grid((a->n + TC_BQ - 1) / TC_BQ, a->n_heads);
    attention_tc_kernel<HD><<<grid, TC_WARPS * 32, bytes, s>>>(*a);
    return cudaGetLastError();
}

/* Called by qb_cuda_attention for prefill with head_dim 64 or 128. */
cudaError_t qb_attention_tc_launch(const float *qkv, int ldq, int n, int n_heads, int n_kv,
                                   int head_dim, int max_ctx, const int32_t *d_pos,
                                   const uint16_t *k_cache, const uint16_t *v_cache,
                                   uint16_t *out, cudaStream_t s)
{
    struct tc_args a = {qkv, ldq, n, n_heads, n_kv, max_ctx, d_pos, k_cache, v_cache, out};
    if (head_dim == 64)
        return attention_tc_hd<64>(&a, s);
    if (head_dim == 128)
        return attention_tc_hd<128>(&a, s);
    return cudaErrorInvalidValue;
}
