/*
 * linear.cu - a linear layer for any number of tokens: y (+)= a W^T (+ bias).
 *
 * n = 1 (decode) goes to the bandwidth-bound GEMV (gemv.cu). n > 1 (prefill)
 * is compute-bound and goes to cuBLAS: bf16 inputs on the tensor cores, f32
 * accumulation and f32 output, with the row-major operands read as
 * column-major transposes:
 *
 *   y^T [rows][n] (ld ldy) = W [rows][cols] (as col-major cols x rows, op T)
 *                            x a^T [cols][n] (col-major, ld cols, op N)
 *
 * accumulate = 1 is beta = 1 (the residual add folded into the GEMM); the bias,
 * when present, is a second small kernel (bias_add) over y. Packed weights are
 * first dequantized to bf16 into the context's scratch (one pass over the
 * weight, small next to the GEMM at prefill sizes), then take the same path.
 */
#include "packed.cuh"
#include "qb_w4a4.h"

#define BIAS_THREADS 256

static __global__ void bias_add_kernel(float *y, int ldy, const float *bias, int rows)
{
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= rows)
        return;
    y[(size_t)blockIdx.y * ldy + i] += bias[i];
}

static cudaError_t bias_add_launch(float *y, int ldy, const float *bias, int rows, int n,
                                   cudaStream_t s)
{
    dim3 grid((rows + BIAS_THREADS - 1) / BIAS_THREADS, n);
    bias_add_kernel<<<grid, BIAS_THREADS, 0, s>>>(y, ldy, bias, rows);
    return cudaGetLastError();
}

extern "C" enum qb_status qb_cuda_linear(struct qb_cuda_ctx *c, const struct qb_cuda_weight *w,
                                         const uint16_t *a, int n, float *y, int ldy,
                                         int accumulate, struct qb_err *err)
{
    enum qb_status st = QB_OK;
    const float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
    const void *wdata = w->data;
    if (qb_w4a4_is(w)) /* FP4 activations: w4a4.cu (sm_100+) */
        return qb_w4a4_linear(c, w, a, n, y, ldy, accumulate, err);
    if (n == 1)
        return qb_cuda_gemv(c, &w, 1, a, y, accumulate, err);
    if (w->act == QB_ACT_FP8_E4M3)
        return qb_w8a8_linear(c, w, a, n, y, ldy, accumulate, err);
    if (w->fmt != QB_WFMT_BF16) {
        if ((size_t)w->rows * (size_t)w->cols > c->dequant_elems)
            return qb_err_set(err, QB_ERR_INTERNAL, "CUDA linear: dequant scratch of %zu "
                              "elements too small (qb_cuda_ctx_reserve_dequant)",
                              c->dequant_elems);
        CUDA_CHECK(qb_dequant_launch(w, (uint16_t *)c->dequant, c->stream));
        wdata = c->dequant;
    }
    if (n < 1 || n > 65535 || ldy < w->rows || w->rows > 0x7fffffff || w->cols > 0x7fffffff)
        return qb_err_set(err, QB_ERR_INTERNAL, "qb_cuda_linear: n=%d ldy=%d rows=%lld", n, ldy,
                          (long long)w->rows);
    CUBLAS_CHECK(cublasGemmEx(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)w->rows, n, (int)w->cols,
                              &alpha, wdata, CUDA_R_16BF, (int)w->cols, a, CUDA_R_16BF,
                              (int)w->cols, &beta, y, CUDA_R_32F, ldy, CUBLAS_COMPUTE_32F,
                              CUBLAS_GEMM_DEFAULT));
    if (w->bias)
        CUDA_CHECK(bias_add_launch(y, ldy, w->bias, (int)w->rows, n, c->stream));
out:
    return st;
}
