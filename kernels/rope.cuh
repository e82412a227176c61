/*
 * rope.cuh - one head's optional RMSNorm and rotary embedding as a warp
 * computes it, shared by rope_kv.cu (prefill: q in place, k/v to the cache)
 * and attention_decode.cu (decode: the same, fused into the attention).
 *
 * Rotate-half RoPE as in HF Llama: for i < hd/2, with a = x[i], b = x[i+hd/2]
 * and angle = pos * inv_freq[i] (f32, like transformers):
 *   x[i] = a cos - b sin,   x[i + hd/2] = b cos + a sin.
 * The per-head norm (Qwen3 q_norm/k_norm) comes first: x = x / rms(x) * norm.
 */
#ifndef QB_ROPE_CUH
#define QB_ROPE_CUH

#include "qb_cuda_common.cuh"

/* 1 / rms of one head's hd values p[hd], or 1 when there is no norm (every
 * lane of the warp gets it). */
static __device__ __forceinline__ float qb_head_inv_rms(const float *p, int hd,
                                                        const float *norm, float eps)
{
    float ss = 0.0f;
    if (!norm)
        return 1.0f;
    for (int i = threadIdx.x & 31; i < hd; i += 32)
        ss += p[i] * p[i];
    return rsqrtf(qb_warp_sum(ss) / hd + eps);
}

/* The rotated pair (x[i], x[i + hd/2]) of head p at position pos, i < hd/2;
 * inv is qb_head_inv_rms of the head. */
static __device__ __forceinline__ float2 qb_rope_pair(const float *p, int i, int half, float inv,
                                                      const float *norm, int pos,
                                                      const float *inv_freq)
{
    float x0 = p[i] * inv * (norm ? norm[i] : 1.0f);
    float x1 = p[i + half] * inv * (norm ? norm[i + half] : 1.0f);
    float sn, cs;
    sincosf((float)pos * inv_freq[i], &sn, &cs);
    return make_float2(x0 * cs - x1 * sn, x1 * cs + x0 * sn);
}

#endif /* QB_ROPE_CUH */
