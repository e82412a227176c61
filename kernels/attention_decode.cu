/*
 * attention_decode.cu - one decode token's attention in one kernel: the
 * per-head norm and RoPE of q and k (rope.cuh), the store of k and v into the
 * f16 KV cache, and causal GQA attention over positions 0 .. pos.
 *
 * In decode, rope_kv.cu's kernel and attention.cu's are two tiny launches
 * whose cost is their latency, not their work (H100, Llama-3.1-8B shape: 8.1
 * us per layer for both). Here one block per query head h does it all:
 *
 *   warp 0: q of head h, rotated and scaled by 1/sqrt(hd)        -> shared
 *   warp 1: k of kv head h / group at pos, rotated, f16-rounded  -> shared
 *   warp 2: v of that kv head, f16-rounded                       -> shared
 *   (the first head of each group also stores k and v into the cache)
 *   all warps: keys 0 .. pos, 4 at a time per warp (warp w takes keys
 *   4w .. 4w+3, then 4w + 4*DEC_WARPS ...), with their loads issued
 *   together; position pos reads the shared copy, so no block waits for
 *   another's cache store.
 *
 * Per batch of keys a warp forms the 4 scores (lane l holds dims [l*P, l*P+P),
 * P = hd/32, and each score is one warp-wide sum), then the online softmax:
 * running max m, normaliser l, accumulator acc[P], merged across the warps
 * as attention.cuh does. The values match rope_kv + attention up to the
 * order of the softmax sums.
 */
#include <math.h>

#include "attention.cuh"
#include "rope.cuh"

#define DEC_WARPS 8
#define DEC_KEYS 4 /* keys per warp per batch, loads in flight together */

struct dec_args {
    const float *qkv; /* q | k | v of the token (f32) */
    int n_heads, n_kv, max_ctx;
    const int32_t *d_pos;
    const float *inv_freq, *q_norm, *k_norm;
    float eps;
    uint16_t *k_cache, *v_cache;
    uint16_t *out; /* bf16 [n_heads * hd] */
};

/* Warps 0..2: q (scaled) into sq, k and v as f16 bits into sk, sv; the
 * group's first head stores k and v at pos in the cache. A lane loads all
 * its values before it stores any: a store in between would hold back the
 * next load (the compiler cannot tell the cache from qkv), one L2 round trip
 * per element. */
template <int HD>
static __device__ void prepare_qkv(const struct dec_args &a, int h, int kvh, int pos, float *sq,
                                   uint16_t *sk, uint16_t *sv)
{
    constexpr int half = HD / 2, NP = half / 32, NV = HD / 32; /* per lane */
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    bool writer = h % (a.n_heads / a.n_kv) == 0;
    size_t slot = ((size_t)kvh * a.max_ctx + pos) * HD;
    if (warp == 0 || warp == 1) {
        const float *p = a.qkv + (size_t)(warp == 0 ? h : a.n_heads + kvh) * HD;
        const float *norm = warp == 0 ? a.q_norm : a.k_norm;
        float inv = qb_head_inv_rms(p, HD, norm, a.eps), scale = rsqrtf((float)HD);
        float2 r[NP];
#pragma unroll
        for (int j = 0; j < NP; j++)
            r[j] = qb_rope_pair(p, lane + 32 * j, half, inv, norm, pos, a.inv_freq);
#pragma unroll
        for (int j = 0; j < NP; j++) {
            int i = lane + 32 * j;
            if (warp == 0) {
                sq[i] = r[j].x * scale;
                sq[i + half] = r[j].y * scale;
                continue;
            }
            sk[i] = qb_f32_to_f16_bits(r[j].x);
            sk[i + half] = qb_f32_to_f16_bits(r[j].y);
            if (writer) {
                a.k_cache[slot + i] = sk[i];
                a.k_cache[slot + i + half] = sk[i + half];
            }
        }
    } else if (warp == 2) {
        const float *p = a.qkv + (size_t)(a.n_heads + a.n_kv + kvh) * HD;
        float v[NV];
#pragma unroll
        for (int j = 0; j < NV; j++)
            v[j] = p[lane + 32 * j];
#pragma unroll
        for (int j = 0; j < NV; j++) {
            int i = lane + 32 * j;
            sv[i] = qb_f32_to_f16_bits(v[j]);
            if (writer)
                a.v_cache[slot + i] = sv[i];
        }
    }
}

/* Keys k0 .. k0 + DEC_KEYS - 1 (those <= pos) into a warp's online softmax
 * (m, l, acc); the lane's dims of a key come from the cache before pos and
 * from the block's own copy (sk, sv) at pos. */
template <int HD>
static __device__ __forceinline__ void attend_batch(const float *q, int k0, int pos,
                                                    const uint16_t *kbase, const uint16_t *vbase,
                                                    const uint16_t *sk, const uint16_t *sv,
                                                    float *m, float *l, float *acc)
{
    constexpr int P = HD / 32, B = DEC_KEYS;
    float k[B][P], v[B][P], s[B];
#pragma unroll
    for (int b = 0; b < B; b++) { /* every load of the batch before any use */
        int key = k0 + b;
        qb_load_f16x<P>(key < pos ? kbase + (size_t)key * HD : sk, k[b]);
        qb_load_f16x<P>(key < pos ? vbase + (size_t)key * HD : sv, v[b]);
    }
#pragma unroll
    for (int b = 0; b < B; b++) {
        s[b] = 0.0f;
#pragma unroll
        for (int j = 0; j < P; j++)
            s[b] += q[j] * k[b][j];
    }
    float m_new = *m;
#pragma unroll
    for (int b = 0; b < B; b++) {
        s[b] = k0 + b <= pos ? qb_warp_sum(s[b]) : -INFINITY;
        m_new = fmaxf(m_new, s[b]);
    }
    float corr = __expf(*m - m_new);
    *l *= corr;
#pragma unroll
    for (int j = 0; j < P; j++)
        acc[j] *= corr;
#pragma unroll
    for (int b = 0; b < B; b++) {
        float p = __expf(s[b] - m_new); /* 0 past pos */
        *l += p;
#pragma unroll
        for (int j = 0; j < P; j++)
            acc[j] += p * v[b][j];
    }
    *m = m_new;
}

template <int HD>
static __global__ void __launch_bounds__(DEC_WARPS * 32) attention_decode_kernel(struct dec_args a)
{
    constexpr int P = HD / 32;
    __shared__ float sq[HD];
    __shared__ __align__(16) uint16_t sk[HD], sv[HD];
    __shared__ struct qb_attn_partials<HD, DEC_WARPS> part;
    qb_pdl_trigger(); /* the o projection may start loading its weights */
    qb_pdl_wait();    /* qkv comes from the q|k|v GEMV */
    int h = blockIdx.x, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    int kvh = h / (a.n_heads / a.n_kv), pos = *a.d_pos;
    prepare_qkv<HD>(a, h, kvh, pos, sq, sk, sv);
    __syncthreads();
    const uint16_t *kbase = a.k_cache + (size_t)kvh * a.max_ctx * HD + lane * P;
    const uint16_t *vbase = a.v_cache + (size_t)kvh * a.max_ctx * HD + lane * P;
    float q[P], acc[P], m = -INFINITY, l = 0.0f;
#pragma unroll
    for (int j = 0; j < P; j++) {
        q[j] = sq[lane * P + j];
        acc[j] = 0.0f;
    }
    for (int k0 = warp * DEC_KEYS; k0 <= pos; k0 += DEC_WARPS * DEC_KEYS)
        attend_batch<HD>(q, k0, pos, kbase, vbase, sk + lane * P, sv + lane * P, &m, &l, acc);
    qb_attn_merge<HD, DEC_WARPS>(part, m, l, acc, a.out + (size_t)h * HD);
}

static cudaError_t decode_launch(const struct dec_args *a, int hd, bool pdl, cudaStream_t s)
{
    dim3 grid(a->n_heads), block(DEC_WARPS * 32);
    switch (hd) {
    case 64: return qb_launch(pdl, attention_decode_kernel<64>, grid, block, s, *a);
    case 128: return qb_launch(pdl, attention_decode_kernel<128>, grid, block, s, *a);
    case 256: return qb_launch(pdl, attention_decode_kernel<256>, grid, block, s, *a);
    default: return cudaErrorInvalidValue;
    }
}

extern "C" enum qb_status qb_cuda_attention_decode(struct qb_cuda_ctx *c,
                                                   const struct qb_cuda_attn_shape *s,
                                                   const float *qkv, const int32_t *d_pos,
                                                   const float *inv_freq, const float *q_norm,
                                                   const float *k_norm, float eps,
                                                   uint16_t *k_cache, uint16_t *v_cache,
                                                   uint16_t *out, struct qb_err *err)
{
    enum qb_status st = QB_OK;
    struct dec_args a = {qkv,    s->n_heads, s->n_kv_heads, s->max_ctx, d_pos,   inv_freq,
                         q_norm, k_norm,     eps,           k_cache,    v_cache, out};
    if (s->head_dim != 64 && s->head_dim != 128 && s->head_dim != 256)
        return qb_err_set(err, QB_ERR_UNSUPPORTED,
                          "CUDA attention supports head_dim 64, 128 or 256, not %d; "
                          "use --backend cpu for this model", s->head_dim);
    if (s->n_kv_heads <= 0 || s->n_heads % s->n_kv_heads)
        return qb_err_set(err, QB_ERR_INTERNAL, "qb_cuda_attention_decode: heads %d/%d",
                          s->n_heads, s->n_kv_heads);
    CUDA_CHECK(decode_launch(&a, s->head_dim, c->pdl, c->stream));
out:
    return st;
}
