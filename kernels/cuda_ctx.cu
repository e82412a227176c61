/*
 * cuda_ctx.cu - the plumbing under every kernel: error text, device queries,
 * the bandwidth probe, the context (stream + cuBLAS), device buffers, weight
 * upload and CUDA graph capture.
 *
 * Everything here is host code. Memory is plain cudaMalloc: the engine
 * allocates all it needs once per model (weights, KV cache, scratch), so no
 * pool is needed; the cuBLAS workspace is fixed at context creation so GEMMs
 * can be captured into graphs. Weight upload is in weight.cu.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qb_cuda_common.cuh"

extern "C" {
#include "engine.h"
}

#define QB_CUBLAS_WORKSPACE_BYTES (32u << 20)
#define QB_BW_PROBE_BYTES ((size_t)1 << 30)
#define QB_BW_PROBE_REPS 7

extern "C" enum qb_status qb_cuda_error(struct qb_err *err, const char *call, const char *why,
                                        const char *func, const char *file, int line)
{
    const char *base = strrchr(file, '/');
    return qb_err_set(err, QB_ERR_CUDA, "CUDA: %s failed: %s (in %s at %s:%d)", call, why, func,
                      base ? base + 1 : file, line);
}

extern "C" const char *qb_cublas_status_str(cublasStatus_t s)
{
    switch (s) {
    case CUBLAS_STATUS_NOT_INITIALIZED: return "cuBLAS not initialized";
    case CUBLAS_STATUS_ALLOC_FAILED: return "cuBLAS allocation failed";
    case CUBLAS_STATUS_INVALID_VALUE: return "invalid value";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "architecture mismatch";
    case CUBLAS_STATUS_MAPPING_ERROR: return "mapping error";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "execution failed";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "internal error";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "not supported";
    default: return "unknown cuBLAS status";
    }
}

extern "C" int qb_cuda_available(void)
{
    int n = 0;
    return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}

static enum qb_status require_device(struct qb_err *err)
{
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0)
        return qb_err_set(err, QB_ERR_NO_DEVICE, "no usable CUDA GPU (%s); use --backend cpu",
                          e != cudaSuccess ? cudaGetErrorString(e) : "device count is 0");
    return QB_OK;
}

extern "C" enum qb_status qb_cuda_device_query(struct qb_cuda_device *out, struct qb_err *err)
{
    enum qb_status st = require_device(err);
    cudaDeviceProp p;
    int clock_khz = 0, bus_bits = 0;
    memset(out, 0, sizeof *out);
    if (st)
        goto out;
    CUDA_CHECK(cudaGetDeviceProperties(&p, 0));
    CUDA_CHECK(cudaMemGetInfo(&out->mem_free, &out->mem_total));
    CUDA_CHECK(cudaDeviceGetAttribute(&clock_khz, cudaDevAttrMemoryClockRate, 0));
    CUDA_CHECK(cudaDeviceGetAttribute(&bus_bits, cudaDevAttrGlobalMemoryBusWidth, 0));
    snprintf(out->name, sizeof out->name, "%s", p.name);
    out->cc_major = p.major;
    out->cc_minor = p.minor;
    out->sm_count = p.multiProcessorCount;
    out->peak_bw_gbs = 2.0 * clock_khz * 1e3 * (bus_bits / 8.0) / 1e9; /* DDR */
out:
    return st;
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

extern "C" enum qb_status qb_cuda_measure_bandwidth(double *gbs, struct qb_err *err)
{
    enum qb_status st = require_device(err);
    void *src = NULL, *dst = NULL;
    cudaEvent_t t0 = NULL, t1 = NULL;
    float ms[QB_BW_PROBE_REPS];
    *gbs = 0;
    if (st)
        goto out;
    st = qb_cuda_alloc(&src, QB_BW_PROBE_BYTES, "bandwidth probe source", err);
    if (st)
        goto out;
    st = qb_cuda_alloc(&dst, QB_BW_PROBE_BYTES, "bandwidth probe destination", err);
    if (st)
        goto out;
    CUDA_CHECK(cudaMemset(src, 0x5a, QB_BW_PROBE_BYTES));
    CUDA_CHECK(cudaEventCreate(&t0));
    CUDA_CHECK(cudaEventCreate(&t1));
    CUDA_CHECK(cudaMemcpy(dst, src, QB_BW_PROBE_BYTES, cudaMemcpyDeviceToDevice)); /* warm-up */
    for (int i = 0; i < QB_BW_PROBE_REPS; i++) {
        CUDA_CHECK(cudaEventRecord(t0, 0));
        CUDA_CHECK(cudaMemcpyAsync(dst, src, QB_BW_PROBE_BYTES, cudaMemcpyDeviceToDevice, 0));
        CUDA_CHECK(cudaEventRecord(t1, 0));
        CUDA_CHECK(cudaEventSynchronize(t1));
        CUDA_CHECK(cudaEventElapsedTime(&ms[i], t0, t1));
    }
    qsort(ms, QB_BW_PROBE_REPS, sizeof ms[0], cmp_float);
    *gbs = 2.0 * (double)QB_BW_PROBE_BYTES / (ms[QB_BW_PROBE_REPS / 2] * 1e-3) / 1e9;
out:
    if (t0)
        cudaEventDestroy(t0);
    if (t1)
        cudaEventDestroy(t1);
    qb_cuda_free(src);
    qb_cuda_free(dst);
    return st;
}

/* ---- context ----------------------------------------------------------------- */

/* Programmatic dependent launch for the decode GEMVs: on sm_90 and newer,
 * unless QUANTBENCH_CUDA_NO_PDL is set (to measure what it buys). */
static int pdl_wanted(void)
{
    int major = 0;
    if (cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor, 0) != cudaSuccess)
        return 0;
    return major >= 9 && !getenv("QUANTBENCH_CUDA_NO_PDL");
}

extern "C" enum qb_status qb_cuda_ctx_create(struct qb_cuda_ctx **out, struct qb_err *err)
{
    enum qb_status st = require_device(err);
    struct qb_cuda_ctx *c = NULL;
    *out = NULL;
    if (st)
        goto out;
    c = (struct qb_cuda_ctx *)calloc(1, sizeof *c);
    if (!c) {
        st = qb_err_set(err, QB_ERR_NOMEM, "out of host memory for the CUDA context");
        goto out;
    }
    CUDA_CHECK(cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking));
    CUBLAS_CHECK(cublasCreate(&c->blas));
    CUBLAS_CHECK(cublasSetStream(c->blas, c->stream));
    c->blas_workspace_bytes = QB_CUBLAS_WORKSPACE_BYTES;
    st = qb_cuda_alloc(&c->blas_workspace, c->blas_workspace_bytes, "cuBLAS workspace", err);
    if (st)
        goto out;
    CUBLAS_CHECK(cublasSetWorkspace(c->blas, c->blas_workspace, c->blas_workspace_bytes));
    CUBLAS_CHECK(cublasLtCreate(&c->lt));
    c->pdl = pdl_wanted();
    *out = c;
    c = NULL;
out:
    qb_cuda_ctx_free(c);
    return st;
}

extern "C" void qb_cuda_ctx_free(struct qb_cuda_ctx *c)
{
    if (!c)
        return;
    if (c->stream)
        cudaStreamSynchronize(c->stream);
    if (c->capturing)
        cudaGraphDestroy(c->capturing);
    if (c->blas)
        cublasDestroy(c->blas);
    qb_cuda_free(c->blas_workspace);
    qb_cuda_free(c->dequant);
    qb_cuda_free(c->act_codes);
    qb_cuda_free(c->act_scales);
    qb_cuda_free(c->act_qdq);
    if (c->lt)
        cublasLtDestroy(c->lt);
    if (c->stream)
        cudaStreamDestroy(c->stream);
    free(c);
}

extern "C" enum qb_status qb_cuda_sync(struct qb_cuda_ctx *c, struct qb_err *err)
{
    enum qb_status st = QB_OK;
    /* Execution errors of the stream's work come back here. Not cudaGetLastError():
     * launch errors are reported at the launch, and an error already reported
     * elsewhere (a failed copy) must not fail this unrelated wait. */
    CUDA_CHECK(cudaStreamSynchronize(c->stream));
out:
    return st;
}

/* ---- buffers ------------------------------------------------------------------ */

extern "C" enum qb_status qb_cuda_alloc(void **p, size_t bytes, const char *what,
                                        struct qb_err *err)
{
    size_t free_b = 0, total_b = 0;
    cudaError_t e = cudaMalloc(p, bytes ? bytes : 1);
    if (e == cudaSuccess)
        return QB_OK;
    *p = NULL;
    cudaGetLastError(); /* clear the sticky-free error state */
    cudaMemGetInfo(&free_b, &total_b);
    return qb_err_set(err, e == cudaErrorMemoryAllocation ? QB_ERR_NOMEM : QB_ERR_CUDA,
                      "CUDA: cannot allocate %.1f MiB for %s: %s (%.1f of %.1f MiB free); "
                      "use a smaller --ctx or a smaller scheme",
                      bytes / 1048576.0, what, cudaGetErrorString(e), free_b / 1048576.0,
                      total_b / 1048576.0);
}

extern "C" void qb_cuda_free(void *p)
{
    if (p)
        cudaFree(p);
}

/* cudaMemcpy from pageable host memory returns once the bytes are staged, before
 * the DMA has landed, and it runs on the legacy default stream, which our
 * non-blocking context streams do not wait for: a kernel launched right after
 * could read the old contents (or have its output overwritten by a late
 * poison/zero upload). So both copies wait for the whole device before and
 * after: synchronous with respect to every stream, as the header promises. */
extern "C" enum qb_status qb_cuda_upload(void *dst, const void *src, size_t bytes,
                                         struct qb_err *err)
{
    enum qb_status st = QB_OK;
    CUDA_CHECK(cudaDeviceSynchronize());
    CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaDeviceSynchronize());
out:
    return st;
}

extern "C" enum qb_status qb_cuda_download(void *dst, const void *src, size_t bytes,
                                           struct qb_err *err)
{
    enum qb_status st = QB_OK;
    CUDA_CHECK(cudaDeviceSynchronize());
    CUDA_CHECK(cudaMemcpy(dst, src, bytes, cudaMemcpyDeviceToHost));
out:
    return st;
}

extern "C" enum qb_status qb_cuda_upload_async(struct qb_cuda_ctx *c, void *dst, const void *src,
                                               size_t bytes, struct qb_err *err)
{
    enum qb_status st = QB_OK;
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, c->stream));
out:
    return st;
}

extern "C" enum qb_status qb_cuda_download_async(struct qb_cuda_ctx *c, void *dst,
                                                 const void *src, size_t bytes,
                                                 struct qb_err *err)
{
    enum qb_status st = QB_OK;
    CUDA_CHECK(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, c->stream));
out:
    return st;
}

/* ---- graphs --------------------------------------------------------------------- */

extern "C" enum qb_status qb_cuda_graph_begin(struct qb_cuda_ctx *c, struct qb_err *err)
{
    enum qb_status st = QB_OK;
    CUDA_CHECK(cudaStreamBeginCapture(c->stream, cudaStreamCaptureModeThreadLocal));
out:
    return st;
}

extern "C" enum qb_status qb_cuda_graph_end(struct qb_cuda_ctx *c, void **graph,
                                            struct qb_err *err)
{
    enum qb_status st = QB_OK;
    cudaGraphExec_t exec = NULL;
    *graph = NULL;
    CUDA_CHECK(cudaStreamEndCapture(c->stream, &c->capturing));
    CUDA_CHECK(cudaGraphInstantiate(&exec, c->capturing, 0));
    *graph = exec;
out:
    if (c->capturing) {
        cudaGraphDestroy(c->capturing);
        c->capturing = NULL;
    }
    return st;
}

extern "C" enum qb_status qb_cuda_graph_launch(struct qb_cuda_ctx *c, void *graph,
                                               struct qb_err *err)
{
    enum qb_status st = QB_OK;
    CUDA_CHECK(cudaGraphLaunch((cudaGraphExec_t)graph, c->stream));
out:
    return st;
}

extern "C" void qb_cuda_graph_free(void *graph)
{
    if (graph)
        cudaGraphExecDestroy((cudaGraphExec_t)graph);
}

extern "C" enum qb_status qb_cuda_ctx_reserve_dequant(struct qb_cuda_ctx *c, size_t elems,
                                                     struct qb_err *err)
{
    enum qb_status st;
    if (elems <= c->dequant_elems)
        return QB_OK;
    qb_cuda_free(c->dequant);
    c->dequant = NULL;
    c->dequant_elems = 0;
    st = qb_cuda_alloc(&c->dequant, elems * 2, "the dequantized-weight scratch", err);
    if (!st)
        c->dequant_elems = elems;
    return st;
}

extern "C" enum qb_status qb_cuda_ctx_reserve_act(struct qb_cuda_ctx *c, int n_max,
                                                 int64_t cols_max, struct qb_err *err)
{
    enum qb_status st;
    int rows = (n_max + 15) / 16 * 16;
    if (rows <= c->act_rows && cols_max <= c->act_cols)
        return QB_OK;
    qb_cuda_free(c->act_codes);
    qb_cuda_free(c->act_scales);
    qb_cuda_free(c->act_qdq);
    c->act_codes = NULL;
    c->act_scales = NULL;
    c->act_qdq = NULL;
    c->act_rows = 0;
    c->act_cols = 0;
    st = qb_cuda_alloc((void **)&c->act_codes, (size_t)rows * (size_t)cols_max,
                       "FP8 activations", err);
    if (!st)
        st = qb_cuda_alloc((void **)&c->act_scales, (size_t)rows * 4, "FP8 activation scales",
                           err);
    if (!st)
        st = qb_cuda_alloc((void **)&c->act_qdq, (size_t)cols_max * 2, "FP8 activations", err);
    if (!st) {
        c->act_rows = rows;
        c->act_cols = cols_max;
    }
    return st;
}
