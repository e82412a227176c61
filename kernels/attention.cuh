/*
 * attention.cuh - what the two CUDA-core attention kernels share: the f16
 * cache rows as floats and the merge of the warps' online-softmax partials.
 * attention.cu (prefill fallbacks) and attention_decode.cu (decode) split
 * the keys of one query head over the warps of a block; each warp keeps a
 * running max m, normaliser l and accumulator acc[P] over its keys (lane l
 * holds dims [l*P, l*P + P), P = head_dim / 32), and the block merges them:
 *   M = max m_w,  out = sum_w acc_w e^(m_w - M) / sum_w l_w e^(m_w - M).
 * A warp without keys has m = -inf, l = 0, acc = 0 and adds nothing.
 */
#ifndef QB_ATTENTION_CUH
#define QB_ATTENTION_CUH

#include "qb_cuda_common.cuh"

/* Load P f16 values (2P bytes, aligned; global or shared) as floats. */
template <int P> static __device__ __forceinline__ void qb_load_f16x(const uint16_t *src, float *dst)
{
    if constexpr (P == 8) {
        uint4 v = *(const uint4 *)src;
        const uint16_t *h = (const uint16_t *)&v;
#pragma unroll
        for (int j = 0; j < 8; j++)
            dst[j] = qb_f16_bits_to_f32(h[j]);
    } else if constexpr (P == 4) {
        uint2 v = *(const uint2 *)src;
        const uint16_t *h = (const uint16_t *)&v;
#pragma unroll
        for (int j = 0; j < 4; j++)
            dst[j] = qb_f16_bits_to_f32(h[j]);
    } else {
        uint32_t v = *(const uint32_t *)src;
        dst[0] = qb_f16_bits_to_f32((uint16_t)(v & 0xffffu));
        dst[1] = qb_f16_bits_to_f32((uint16_t)(v >> 16));
    }
}

/* The W warps' partials of one head, in shared memory. */
template <int HD, int W> struct qb_attn_partials {
    float m[W], l[W], acc[W][HD];
};

/* Every warp's (m, l, acc) into sh, then the head's output o[HD] as bf16. */
template <int HD, int W>
static __device__ void qb_attn_merge(struct qb_attn_partials<HD, W> &sh, float m, float l,
                                     const float *acc, uint16_t *o)
{
    constexpr int P = HD / 32;
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) {
        sh.m[warp] = m;
        sh.l[warp] = l;
    }
#pragma unroll
    for (int j = 0; j < P; j++)
        sh.acc[warp][lane * P + j] = acc[j];
    __syncthreads();
    float mx = -INFINITY, den = 0.0f;
#pragma unroll
    for (int w = 0; w < W; w++)
        mx = fmaxf(mx, sh.m[w]);
#pragma unroll
    for (int w = 0; w < W; w++)
        den += sh.l[w] * __expf(sh.m[w] - mx);
    for (int d = threadIdx.x; d < HD; d += blockDim.x) {
        float num = 0.0f;
#pragma unroll
        for (int w = 0; w < W; w++)
            num += sh.acc[w][d] * __expf(sh.m[w] - mx);
        o[d] = qb_f32_to_bf16_bits(num / den);
    }
}

#endif /* QB_ATTENTION_CUH */
