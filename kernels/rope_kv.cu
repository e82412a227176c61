/*
 * rope_kv.cu - after the q/k/v projections of one layer: optional per-head
 * RMSNorm (Qwen3 q_norm/k_norm), rotary embedding of q and k, and the store
 * of k and v into the f16 KV cache.
 *
 * Layout of one token's row of qkv (f32, ldq >= (n_heads + 2 n_kv) * hd):
 *
 *   | q head 0 | ... | q head H-1 | k head 0 | ... | k head K-1 | v head 0 | ... |
 *
 * Grid: (n tokens, ceil((H + 2K) / 8)); block: 8 warps, one warp per head,
 * the rotation of rope.cuh. Each lane owns the pairs i = lane, lane + 32, ...;
 * the only cross-lane step is the sum of squares for the per-head norm. q is
 * rotated in place; k and v go to cache[kv_head][pos][hd] as f16. Decode
 * (one token) runs the same inside its attention kernel (attention_decode.cu).
 */
#include "rope.cuh"

#define ROPE_WARPS 8

struct rope_args {
    float *qkv;
    int ldq, n_heads, n_kv, hd, max_ctx;
    const int32_t *d_pos;
    const float *inv_freq, *q_norm, *k_norm;
    float eps;
    uint16_t *k_cache, *v_cache;
};

static __global__ void rope_kv_kernel(struct rope_args a)
{
    qb_pdl_trigger(); /* attention may launch; it waits for this kernel to finish */
    qb_pdl_wait();    /* qkv comes from the GEMV before */
    int t = blockIdx.x, lane = threadIdx.x & 31;
    int h = blockIdx.y * ROPE_WARPS + (threadIdx.x >> 5);
    int n_q = a.n_heads, n_k = a.n_kv, half = a.hd / 2;
    int pos = *a.d_pos + t;
    if (h >= n_q + 2 * n_k)
        return;
    float *p = a.qkv + (size_t)t * a.ldq + (size_t)h * a.hd;
    if (h >= n_q + n_k) { /* v: straight to the cache */
        uint16_t *dst = a.v_cache + ((size_t)(h - n_q - n_k) * a.max_ctx + pos) * a.hd;
        for (int i = lane; i < a.hd; i += 32)
            dst[i] = qb_f32_to_f16_bits(p[i]);
        return;
    }
    const float *norm = h < n_q ? a.q_norm : a.k_norm;
    float inv = qb_head_inv_rms(p, a.hd, norm, a.eps);
    uint16_t *kdst = h < n_q ? NULL : a.k_cache + ((size_t)(h - n_q) * a.max_ctx + pos) * a.hd;
    for (int i = lane; i < half; i += 32) {
        float2 r = qb_rope_pair(p, i, half, inv, norm, pos, a.inv_freq);
        if (kdst) {
            kdst[i] = qb_f32_to_f16_bits(r.x);
            kdst[i + half] = qb_f32_to_f16_bits(r.y);
        } else {
            p[i] = r.x;
            p[i + half] = r.y;
        }
    }
}

static cudaError_t rope_kv_launch(const struct rope_args *a, int n, bool pdl, cudaStream_t s)
{
    int heads = a->n_heads + 2 * a->n_kv;
    dim3 grid(n, (heads + ROPE_WARPS - 1) / ROPE_WARPS);
    return qb_launch(pdl, rope_kv_kernel, grid, dim3(ROPE_WARPS * 32), s, *a);
}

extern "C" enum qb_status qb_cuda_rope_kv(struct qb_cuda_ctx *c,
                                          const struct qb_cuda_attn_shape *s, float *qkv,
                                          int ldq, int n, const int32_t *d_pos,
                                          const float *inv_freq, const float *q_norm,
                                          const float *k_norm, float eps, uint16_t *k_cache,
                                          uint16_t *v_cache, struct qb_err *err)
{
    enum qb_status st = QB_OK;
    struct rope_args a = {qkv,    ldq,      s->n_heads, s->n_kv_heads, s->head_dim, s->max_ctx,
                          d_pos,  inv_freq, q_norm,     k_norm,        eps,         k_cache,
                          v_cache};
    if (n <= 0 || s->head_dim % 2 || ldq < (s->n_heads + 2 * s->n_kv_heads) * s->head_dim)
        return qb_err_set(err, QB_ERR_INTERNAL, "qb_cuda_rope_kv: n=%d head_dim=%d ldq=%d", n,
                          s->head_dim, ldq);
    CUDA_CHECK(rope_kv_launch(&a, n, c->pdl, c->stream));
out:
    return st;
}
