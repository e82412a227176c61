/*
 * rmsnorm.cu - RMSNorm of the f32 residual stream into the bf16 input of the
 * next linear layer: out[t] = bf16(x[t] * rsqrt(mean(x[t]^2) + eps) * w).
 *
 * Grid: one block per token, 256 threads. Each thread keeps its slice of the
 * row in registers between the reduction and the scaling (dim <= 256 * 32),
 * so x is read once. The normed values are all computed before any is
 * stored: with each store between them, the 32 loads of w went out one L2
 * round trip at a time (the compiler cannot tell out from w). H100 tg128 of
 * the 8B shape, which runs this kernel twice a layer for the 8-bit and bf16
 * weights, same card (run 49): bf16 173.5/173.2 -> 180.6/180.5 t/s, int8
 * 264.5 -> 284.2.
 *
 * For a W8A8 consumer (q_scale != NULL) the same kernel also quantizes the
 * normed row per token as w8a8.cu's act_quant does it: s = amax / 448, out =
 * the E4M3 code values e4m3(v / s) as bf16 (exact), q_scale[t] = s. In decode
 * this saves the act_quant launch before the q|k|v and gate/up GEMVs (two of
 * the four per layer).
 */
#include "packed.cuh" /* qb_act_e4m3, qb_fp8_to_f32 */

#define RMS_THREADS 256
#define RMS_MAX_PER_THREAD 32 /* dim up to 8192 */

static __global__ void rmsnorm_kernel(const float *x, const float *w, float eps, int dim,
                                      uint16_t *out, float *q_scale)
{
    __shared__ float scratch[32];
    const float *row = x + (size_t)blockIdx.x * dim;
    qb_pdl_trigger(); /* the next GEMV may start loading its weights */
    qb_pdl_wait();    /* x comes from the kernel before */
    uint16_t *o = out + (size_t)blockIdx.x * dim;
    float v[RMS_MAX_PER_THREAD];
    float ss = 0.0f, amax = 0.0f;
#pragma unroll
    for (int j = 0; j < RMS_MAX_PER_THREAD; j++) {
        int i = threadIdx.x + j * RMS_THREADS;
        v[j] = i < dim ? row[i] : 0.0f;
        ss += v[j] * v[j];
    }
    float inv = rsqrtf(qb_block_sum(ss, scratch) / dim + eps);
#pragma unroll
    for (int j = 0; j < RMS_MAX_PER_THREAD; j++) {
        int i = threadIdx.x + j * RMS_THREADS;
        v[j] = i < dim ? qb_bf16_bits_to_f32(qb_f32_to_bf16_bits(v[j] * inv * w[i])) : 0.0f;
        amax = fmaxf(amax, fabsf(v[j]));
    }
    float s = q_scale ? qb_block_max(amax, scratch) / 448.0f : 0.0f;
#pragma unroll
    for (int j = 0; j < RMS_MAX_PER_THREAD; j++) {
        int i = threadIdx.x + j * RMS_THREADS;
        if (i < dim)
            o[i] = qb_f32_to_bf16_bits(q_scale ? qb_fp8_to_f32(qb_act_e4m3(v[j], s), __NV_E4M3)
                                               : v[j]);
    }
    if (q_scale && threadIdx.x == 0)
        q_scale[blockIdx.x] = s;
}

static cudaError_t rmsnorm_launch(const float *x, const float *w, float eps, int n, int dim,
                                  uint16_t *out, float *q_scale, bool pdl, cudaStream_t s)
{
    return qb_launch(pdl, rmsnorm_kernel, dim3(n), dim3(RMS_THREADS), s, x, w, eps, dim, out,
                     q_scale);
}

/* The launch after the checks; scale NULL: no quantization. */
static enum qb_status rmsnorm_run(struct qb_cuda_ctx *c, const float *x, const float *w, float eps,
                                  int n, int dim, uint16_t *out, float *scale, struct qb_err *err)
{
    enum qb_status st = QB_OK;
    if (n <= 0 || dim <= 0 || dim > RMS_THREADS * RMS_MAX_PER_THREAD)
        return qb_err_set(err, QB_ERR_UNSUPPORTED, "%s: n=%d dim=%d (dim must be 1..%d)",
                          scale ? "qb_cuda_rmsnorm_fp8" : "qb_cuda_rmsnorm", n, dim,
                          RMS_THREADS * RMS_MAX_PER_THREAD);
    CUDA_CHECK(rmsnorm_launch(x, w, eps, n, dim, out, scale, c->pdl, c->stream));
out:
    return st;
}

extern "C" enum qb_status qb_cuda_rmsnorm(struct qb_cuda_ctx *c, const float *x, const float *w,
                                          float eps, int n, int dim, uint16_t *out,
                                          struct qb_err *err)
{
    return rmsnorm_run(c, x, w, eps, n, dim, out, NULL, err);
}

extern "C" enum qb_status qb_cuda_rmsnorm_fp8(struct qb_cuda_ctx *c, const float *x, const float *w,
                                              float eps, int n, int dim, uint16_t *out,
                                              float *scale, struct qb_err *err)
{
    return rmsnorm_run(c, x, w, eps, n, dim, out, scale, err);
}
