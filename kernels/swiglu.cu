/*
 * swiglu.cu - the MLP activation after the prefill gate/up GEMMs:
 * out[t][i] = bf16(silu(gu[t][i]) * gu[t][inter + i]), gu f32 [n][2*inter].
 * (Decode fuses this into the gate/up GEMV, gemv.cu.)
 *
 * Grid: (ceil(inter / 256), n), one thread per output element.
 */
#include "qb_cuda_common.cuh"

#define SWIGLU_THREADS 256

static __global__ void swiglu_kernel(const float *gu, int inter, uint16_t *out)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= inter)
        return;
    const float *row = gu + (size_t)blockIdx.y * 2 * inter;
    out[(size_t)blockIdx.y * inter + i] = qb_f32_to_bf16_bits(qb_silu(row[i]) * row[inter + i]);
}

static cudaError_t swiglu_launch(const float *gu, int n, int inter, uint16_t *out,
                                 cudaStream_t s)
{
    dim3 grid((inter + SWIGLU_THREADS - 1) / SWIGLU_THREADS, n);
    swiglu_kernel<<<grid, SWIGLU_THREADS, 0, s>>>(gu, inter, out);
    return cudaGetLastError();
}

extern "C" enum qb_status qb_cuda_swiglu(struct qb_cuda_ctx *c, const float *gu, int n, int inter,
                                         uint16_t *out, struct qb_err *err)
{
    enum qb_status st = QB_OK;
    if (n <= 0 || n > 65535 || inter <= 0)
        return qb_err_set(err, QB_ERR_INTERNAL, "qb_cuda_swiglu: n=%d inter=%d", n, inter);
    CUDA_CHECK(swiglu_launch(gu, n, inter, out, c->stream));
out:
    return st;
}
