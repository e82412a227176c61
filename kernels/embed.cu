/*
 * embed.cu - token embedding gather: x[t][:] = f32(embed[ids[t]][:]).
 *
 * Grid: one block per token; 256 threads stride over the row (8 bf16 per
 * 16-byte load when dim % 8 == 0, the case of every supported model).
 */
#include "qb_cuda_common.cuh"

#define EMBED_THREADS 256

static __device__ __forceinline__ void embed_chunk8(const uint16_t *src, float *dst)
{
    uint4 v = *(const uint4 *)src;
    const uint16_t *h = (const uint16_t *)&v;
#pragma unroll
    for (int j = 0; j < 8; j++)
        dst[j] = qb_bf16_bits_to_f32(h[j]);
}

static __global__ void embed_kernel(const uint16_t *embed, const int32_t *ids, int dim, float *x)
{
    int t = blockIdx.x;
    const uint16_t *row = embed + (size_t)ids[t] * dim;
    float *out = x + (size_t)t * dim;
    for (int i = threadIdx.x * 8; i < dim; i += blockDim.x * 8)
        embed_chunk8(row + i, out + i);
}

static cudaError_t embed_launch(const uint16_t *embed, const int32_t *ids, int n, int dim,
                                float *x, cudaStream_t s)
{
    embed_kernel<<<n, EMBED_THREADS, 0, s>>>(embed, ids, dim, x);
    return cudaGetLastError();
}

extern "C" enum qb_status qb_cuda_embed(struct qb_cuda_ctx *c, const uint16_t *embed,
                                        const int32_t *ids, int n, int dim, float *x,
                                        struct qb_err *err)
{
    enum qb_status st = QB_OK;
    if (n <= 0 || dim % 8)
        return qb_err_set(err, QB_ERR_INTERNAL, "qb_cuda_embed: n=%d dim=%d (dim %% 8 != 0)", n,
                          dim);
    CUDA_CHECK(embed_launch(embed, ids, n, dim, x, c->stream));
out:
    return st;
}
