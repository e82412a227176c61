/*
 * attention.cu - causal grouped-query attention over the f16 KV cache on the
 * CUDA cores, for the queries the tensor-core kernel (attention_tc.cu, n > 1
 * with head_dim 64/128) does not take. The engine's decode step runs
 * attention_decode.cu instead, which also does the RoPE and the cache store.
 *
 * Grid: (n_heads, n tokens); block: 8 warps. Query t of head h attends to
 * cache positions 0 .. pos_t = *d_pos + t of kv head h / (n_heads / n_kv).
 *
 *   warp w:  keys w, w+8, w+16, ... <= pos_t      (online softmax per warp)
 *   lane l:  dims [l*P, l*P + P) of the head,      P = head_dim / 32
 *
 * Per key a warp forms q.k with one warp-wide sum, then keeps a running max
 * m, normaliser l and accumulator acc[P] (flash-attention's online softmax).
 * At the end the 8 partial (m, l, acc) are merged through shared memory:
 *   M = max m_w,  out = sum_w acc_w e^(m_w - M) / sum_w l_w e^(m_w - M).
 * Scores and softmax are f32; q is pre-scaled by 1/sqrt(head_dim).
 */
#include <math.h>

#include "attention.cuh"
#include "attention_tc.cuh"

#define ATT_WARPS 8

struct att_args {
    const float *qkv;
    int ldq, n_heads, n_kv, max_ctx;
    const int32_t *d_pos;
    const uint16_t *k_cache, *v_cache;
    uint16_t *out;
};

template <int HD> static __global__ void attention_kernel(struct att_args a)
{
    constexpr int P = HD / 32;
    __shared__ struct qb_attn_partials<HD, ATT_WARPS> part;
    qb_pdl_trigger(); /* the next GEMV may start loading its weights */
    qb_pdl_wait();    /* q and the cache come from rope_kv */
    int h = blockIdx.x, t = blockIdx.y, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    int kvh = h / (a.n_heads / a.n_kv), pos = *a.d_pos + t;
    const float *qrow = a.qkv + (size_t)t * a.ldq + (size_t)h * HD + lane * P;
    const uint16_t *kbase = a.k_cache + (size_t)kvh * a.max_ctx * HD + lane * P;
    const uint16_t *vbase = a.v_cache + (size_t)kvh * a.max_ctx * HD + lane * P;
    float q[P], acc[P], m = -INFINITY, l = 0.0f, scale = rsqrtf((float)HD);
#pragma unroll
    for (int j = 0; j < P; j++) {
        q[j] = qrow[j] * scale;
        acc[j] = 0.0f;
    }
    for (int key = warp; key <= pos; key += ATT_WARPS) {
        float k[P], v[P], s = 0.0f;
        qb_load_f16x<P>(kbase + (size_t)key * HD, k);
        qb_load_f16x<P>(vbase + (size_t)key * HD, v);
#pragma unroll
        for (int j = 0; j < P; j++)
            s += q[j] * k[j];
        s = qb_warp_sum(s);
        float m_new = fmaxf(m, s), corr = __expf(m - m_new), p = __expf(s - m_new);
        l = l * corr + p;
#pragma unroll
        for (int j = 0; j < P; j++)
            acc[j] = acc[j] * corr + p * v[j];
        m = m_new;
    }
    qb_attn_merge<HD, ATT_WARPS>(part, m, l, acc,
                                 a.out + (size_t)t * a.n_heads * HD + (size_t)h * HD);
}

static cudaError_t attention_launch(const struct att_args *a, int hd, int n, bool pdl,
                                    cudaStream_t s)
{
    dim3 grid(a->n_heads, n), block(ATT_WARPS * 32);
    switch (hd) {
    case 64: return qb_launch(pdl, attention_kernel<64>, grid, block, s, *a);
    case 128: return qb_launch(pdl, attention_kernel<128>, grid, block, s, *a);
    case 256: return qb_launch(pdl, attention_kernel<256>, grid, block, s, *a);
    default: return cudaErrorInvalidValue;
    }
}

extern "C" enum qb_status qb_cuda_attention(struct qb_cuda_ctx *c,
                                            const struct qb_cuda_attn_shape *s, const float *qkv,
                                            int ldq, int n, const int32_t *d_pos,
                                            const uint16_t *k_cache, const uint16_t *v_cache,
                                            uint16_t *out, struct qb_err *err)
{
    enum qb_status st = QB_OK;
    struct att_args a = {qkv, ldq, s->n_heads, s->n_kv_heads, s->max_ctx, d_pos,
                         k_cache, v_cache, out};
    if (s->head_dim != 64 && s->head_dim != 128 && s->head_dim != 256)
        return qb_err_set(err, QB_ERR_UNSUPPORTED,
                          "CUDA attention supports head_dim 64, 128 or 256, not %d; "
                          "use --backend cpu for this model", s->head_dim);
    if (n <= 0 || n > 65535 || s->n_kv_heads <= 0 || s->n_heads % s->n_kv_heads)
        return qb_err_set(err, QB_ERR_INTERNAL, "qb_cuda_attention: n=%d heads %d/%d", n,
                          s->n_heads, s->n_kv_heads);
    if (n > 1 && (s->head_dim == 64 || s->head_dim == 128))
        CUDA_CHECK(qb_attention_tc_launch(qkv, ldq, n, s->n_heads, s->n_kv_heads, s->head_dim,
                                          s->max_ctx, d_pos, k_cache, v_cache, out, c->stream));
    else
        CUDA_CHECK(attention_launch(&a, s->head_dim, n, c->pdl, c->stream));
out:
    return st;
}
