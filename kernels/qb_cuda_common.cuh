/*
 * qb_cuda_common.cuh - what every CUDA source in kernels/ shares: the error macros
 * that turn CUDA and cuBLAS failures into our enum qb_status / struct qb_err,
 * the context struct, bf16/f16 helpers and warp reductions.
 *
 * Error handling: a function that calls CUDA declares `enum qb_status st =
 * QB_OK;` and a `out:` cleanup label; CUDA_CHECK(expr) / CUBLAS_CHECK(expr)
 * set st and jump there with err naming the expression, the error string, the
 * function, file and line. LAUNCH_CHECK() follows every kernel launch.
 * A reported error is also taken off the runtime's per-thread "last error"
 * (cudaGetLastError), so it is reported once and never resurfaces at a later,
 * unrelated check; sticky errors (a broken context) stay and keep failing.
 */
#ifndef QB_CUDA_COMMON_CUH
#define QB_CUDA_COMMON_CUH

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

/* The core headers are C: give their functions C linkage here. */
extern "C" {
#include "dtype.h"
#include "qb_common.h"
#include "qb_cuda.h"
#include "quant.h"

/* Fill err with QB_ERR_CUDA and "CALL failed: WHY (in FUNC at FILE:LINE)". */
enum qb_status qb_cuda_error(struct qb_err *err, const char *call, const char *why,
                             const char *func, const char *file, int line);
const char *qb_cublas_status_str(cublasStatus_t s);
}

#define CUDA_CHECK(expr)                                                                      \
    do {                                                                                      \
        cudaError_t e_ = (expr);                                                              \
        if (e_ != cudaSuccess) {                                                              \
            (void)cudaGetLastError(); /* reported here, not again later */                    \
            st = qb_cuda_error(err, #expr, cudaGetErrorString(e_), __func__, __FILE__,        \
                               __LINE__);                                                     \
            goto out;                                                                         \
        }                                                                                     \
    } while (0)

#define CUBLAS_CHECK(expr)                                                                    \
    do {                                                                                      \
        cublasStatus_t s_ = (expr);                                                           \
        if (s_ != CUBLAS_STATUS_SUCCESS) {                                                    \
            st = qb_cuda_error(err, #expr, qb_cublas_status_str(s_), __func__, __FILE__,      \
                               __LINE__);                                                     \
            goto out;                                                                         \
        }                                                                                     \
    } while (0)

#define LAUNCH_CHECK() CUDA_CHECK(cudaGetLastError())

struct qb_cuda_ctx {
    cudaStream_t stream;
    cublasHandle_t blas;
    void *blas_workspace;      /* fixed cuBLAS workspace (needed under graph capture) */
    size_t blas_workspace_bytes;
    cudaGraph_t capturing;     /* graph under construction between graph_begin/end */
    void *dequant;             /* bf16 scratch for packed weights in prefill */
    size_t dequant_elems;
    cublasLtHandle_t lt;       /* FP8 GEMMs (W8A8) */
    uint8_t *act_codes;        /* W8A8: E4M3 activations [act_rows][act_cols] */
    float *act_scales;         /* W8A8: per-token scales [act_rows] */
    uint16_t *act_qdq;         /* W8A8 decode: quantized-dequantized bf16 [act_cols] */
    int act_rows;              /* a multiple of 16 (cuBLASLt FP8 shapes) */
    int64_t act_cols;
    int pdl;                   /* launch decode GEMVs with programmatic dependent launch */
};

static __device__ __forceinline__ float qb_bf16_bits_to_f32(uint16_t b)
{
    return __uint_as_float((uint32_t)b << 16);
}

static __device__ __forceinline__ uint16_t qb_f32_to_bf16_bits(float f)
{
    return __bfloat16_as_ushort(__float2bfloat16_rn(f));
}

static __device__ __forceinline__ uint16_t qb_f32_to_f16_bits(float f)
{
    return __half_as_ushort(__float2half_rn(f));
}

static __device__ __forceinline__ float qb_f16_bits_to_f32(uint16_t b)
{
    return __half2float(__ushort_as_half(b));
}

static __device__ __forceinline__ float qb_warp_sum(float v)
{
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

static __device__ __forceinline__ float qb_warp_max(float v)
{
    for (int o = 16; o > 0; o >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

static __device__ __forceinline__ float qb_silu(float g)
{
    return g / (1.0f + expf(-g));
}

/* The sum (MAX: the maximum, of values >= 0) over a block of blockDim.x
 * threads (a multiple of 32, at most 1024); every thread gets the result.
 * scratch holds 32 floats. */
template <bool MAX> static __device__ __forceinline__ float qb_block_reduce(float v, float *scratch)
{
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
    v = MAX ? qb_warp_max(v) : qb_warp_sum(v);
    __syncthreads(); /* scratch may still be read by a previous call */
    if (lane == 0)
        scratch[warp] = v;
    __syncthreads();
    v = lane < n_warps ? scratch[lane] : 0.0f; /* the identity of both */
    return MAX ? qb_warp_max(v) : qb_warp_sum(v);
}

static __device__ __forceinline__ float qb_block_sum(float v, float *scratch)
{
    return qb_block_reduce<false>(v, scratch);
}

static __device__ __forceinline__ float qb_block_max(float v, float *scratch)
{
    return qb_block_reduce<true>(v, scratch);
}

/*
 * Programmatic dependent launch (sm_90+). A kernel launched with
 * qb_launch_pdl may start while the kernel before it is still running, once
 * every block of that one has called qb_pdl_trigger (or exited). Before
 * qb_pdl_wait it may only touch data no earlier kernel writes (the decode
 * GEMVs issue their first weight loads there); after it, everything the
 * earlier kernels wrote is visible. Both are no-ops for an ordinary launch.
 */
static __device__ __forceinline__ void qb_pdl_wait(void)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.wait;" ::: "memory");
#endif
}

static __device__ __forceinline__ void qb_pdl_trigger(void)
{
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
#endif
}

/* Launch kernel<<<grid, block, smem, s>>>(args...), with programmatic dependent
 * launch when pdl is set, and blocks grouped in clusters of cluster_y along y
 * (sm_90+; 1: no clusters; gridDim.y must be a multiple). */
template <typename... KArgs, typename... Args>
static cudaError_t qb_launch_cluster(bool pdl, int cluster_y, void (*kernel)(KArgs...), dim3 grid,
                                     dim3 block, size_t smem, cudaStream_t s, Args... args)
{
    cudaLaunchConfig_t cfg = {};
    cudaLaunchAttribute attr[2];
    unsigned n = 0;
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = smem;
    cfg.stream = s;
    if (pdl) {
        attr[n].id = cudaLaunchAttributeProgrammaticStreamSerialization;
        attr[n++].val.programmaticStreamSerializationAllowed = 1;
    }
    if (cluster_y > 1) {
        attr[n].id = cudaLaunchAttributeClusterDimension;
        attr[n].val.clusterDim.x = 1;
        attr[n].val.clusterDim.y = (unsigned)cluster_y;
        attr[n++].val.clusterDim.z = 1;
    }
    cfg.attrs = attr;
    cfg.numAttrs = n;
    return cudaLaunchKernelEx(&cfg, kernel, args...);
}

/* The same without clusters. */
template <typename... KArgs, typename... Args>
static cudaError_t qb_launch_smem(bool pdl, void (*kernel)(KArgs...), dim3 grid, dim3 block,
                                  size_t smem, cudaStream_t s, Args... args)
{
    return qb_launch_cluster(pdl, 1, kernel, grid, block, smem, s, args...);
}

/* The same without dynamic shared memory. */
template <typename... KArgs, typename... Args>
static cudaError_t qb_launch(bool pdl, void (*kernel)(KArgs...), dim3 grid, dim3 block,
                             cudaStream_t s, Args... args)
{
    return qb_launch_smem(pdl, kernel, grid, block, 0, s, args...);
}

#endif /* QB_CUDA_COMMON_CUH */
