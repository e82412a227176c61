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
 *   4w .. 4w+3, then 4w + 4*ATT_WARPS ...), with their loads issued
 *   together; position pos reads the shared copy, so no block waits for
 *   another's cache store.
 *
 * Per batch of keys a warp forms the 4 scores (lane l holds dims [l*P, l*P+P),
 * P = hd/32, and each score is one warp-wide sum), then the online softmax:
 * running max m, normaliser l, accumulator acc[P]. The warps' partial
 * (m, l, acc) are merged through shared memory as in attention.cu:
 *   M = max m_w,  out = sum_w acc_w e^(m_w - M) / sum_w l_w e^(m_w - M).
 * The values match rope_kv + attention up to the order of the softmax sums.
 */
#include <math.h>

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

/* P f16 values at src (global or shared, 2P-byte aligned) as floats. */
template <int P> static __device__ __forceinline__ void load_f16x(const uint16_t *src, float *dst)
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

/* Warps 0..2: q (scaled) into sq, k and v as f16 bits into sk, sv; the
 * group's first head stores k and v at pos in the cache. */
template <int HD>
static __device__ void prepare_qkv(const struct dec_args &a, int h, int kvh, int pos, float *sq,
                                   uint16_t *sk, uint16_t *sv)
{
    constexpr int half = HD / 2;
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    bool writer = h % (a.n_heads / a.n_kv) == 0;
    size_t slot = ((size_t)kvh * a.max_ctx + pos) * HD;
    if (warp == 0 || warp == 1) {
        const float *p = a.qkv + (size_t)(warp == 0 ? h : a.n_heads + kvh) * HD;
        const float *norm = warp == 0 ? a.q_norm : a.k_norm;
        float inv = qb_head_inv_rms(p, HD, norm, a.eps), scale = rsqrtf((float)HD);
        for (int i = lane; i < half; i += 32) {
            float2 r = qb_rope_pair(p, i, half, inv, norm, pos, a.inv_freq);
            if (warp == 0) {
                sq[i] = r.x * scale;
                sq[i + half] = r.y * scale;
                continue;
            }
            sk[i] = qb_f32_to_f16_bits(r.x);
            sk[i + half] = qb_f32_to_f16_bits(r.y);
            if (writer) {
                a.k_cache[slot + i] = sk[i];
                a.k_cache[slot + i + half] = sk[i + half];
            }
        }
    } else if (warp == 2) {
        const float *p = a.qkv + (size_t)(a.n_heads + a.n_kv + kvh) * HD;
        for (int i = lane; i < HD; i += 32) {
            sv[i] = qb_f32_to_f16_bits(p[i]);
            if (writer)
                a.v_cache[slot + i] = sv[i];
        }
    }
}

template <int HD>
static __global__ void __launch_bounds__(DEC_WARPS * 32) attention_decode_kernel(struct dec_args a)
{
    constexpr int P = HD / 32, B = DEC_KEYS;
    __shared__ float sq[HD];
    __shared__ __align__(16) uint16_t sk[HD], sv[HD];
    __shared__ float s_m[DEC_WARPS], s_l[DEC_WARPS];
    __shared__ float s_acc[DEC_WARPS][HD];
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
    for (int k0 = warp * B; k0 <= pos; k0 += DEC_WARPS * B) {
        float k[B][P], v[B][P], s[B];
#pragma unroll
        for (int b = 0; b < B; b++) { /* every load of the batch before any use */
            int key = k0 + b;
            const uint16_t *kp = key < pos ? kbase + (size_t)key * HD : sk + lane * P;
            const uint16_t *vp = key < pos ? vbase + (size_t)key * HD : sv + lane * P;
            load_f16x<P>(kp, k[b]);
            load_f16x<P>(vp, v[b]);
        }
#pragma unroll
        for (int b = 0; b < B; b++) {
            s[b] = 0.0f;
#pragma unroll
            for (int j = 0; j < P; j++)
                s[b] += q[j] * k[b][j];
        }
#pragma unroll
        for (int b = 0; b < B; b++)
            s[b] = k0 + b <= pos ? qb_warp_sum(s[b]) : -INFINITY;
        float m_new = m;
#pragma unroll
        for (int b = 0; b < B; b++)
            m_new = fmaxf(m_new, s[b]);
        float corr = __expf(m - m_new);
        l *= corr;
#pragma unroll
        for (int j = 0; j < P; j++)
            acc[j] *= corr;
#pragma unroll
        for (int b = 0; b < B; b++) {
            float p = __expf(s[b] - m_new); /* 0 past pos */
            l += p;
#pragma unroll
            for (int j = 0; j < P; j++)
                acc[j] += p * v[b][j];
        }
        m = m_new;
    }
    if (lane == 0) {
        s_m[warp] = m;
        s_l[warp] = l;
    }
#pragma unroll
    for (int j = 0; j < P; j++)
        s_acc[warp][lane * P + j] = acc[j];
    __syncthreads();
    float mx = -INFINITY, den = 0.0f;
#pragma unroll
    for (int w = 0; w < DEC_WARPS; w++)
        mx = fmaxf(mx, s_m[w]);
#pragma unroll
    for (int w = 0; w < DEC_WARPS; w++)
        den += s_l[w] * __expf(s_m[w] - mx);
    uint16_t *o = a.out + (size_t)h * HD;
    for (int d = threadIdx.x; d < HD; d += blockDim.x) {
        float num = 0.0f;
#pragma unroll
        for (int w = 0; w < DEC_WARPS; w++)
            num += s_acc[w][d] * __expf(s_m[w] - mx);
        o[d] = qb_f32_to_bf16_bits(num / den);
    }
}

static cudaError_t decode_launch(const struct dec_args *a, int hd, bool pdl, cudaStream_t s)
{
    dim3 grid(a->n_heads), block(DEC_WARPS * 32);
    switch (hd) {
    case 64: return qb_launch(pdl, attention_decode_kernel<64>, grid, block, s, *a);
    case 128: return qb_launch(pdl, attention_decode_kernel<128>, grid, block, s, *a);
    default: return qb_launch(pdl, attention_decode_kernel<256>, grid, block, s, *a);
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
