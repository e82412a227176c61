/*
 * w8a8.cu - the fp8-w8a8 scheme on the FP8 tensor cores (sm_89+): E4M3
 * weights with one f32 scale per output row, activations quantized per token
 * to E4M3 with a dynamic scale, exactly as the CPU reference does it
 * (core/quant.c act_fp8_row): s_t = amax(a_t) / 448, code = e4m3(a / s_t)
 * (round to nearest even, saturating), 0 when amax is 0.
 *
 *   prefill (n > 1):  a --act_quant--> codes [n_pad][cols] (zero rows to a
 *                     multiple of 16), s_t
 *                     D [n][rows] = codes_a . codes_W^T   cuBLASLt, E4M3 x E4M3,
 *                                                         f32 accumulate, TN
 *                     y (+)= D * s_t * s_w[r] (+ bias)    epilogue kernel
 *   decode (n = 1):   a --act_quant--> e4m3(a/s) as bf16 (exact) and s, then the
 *                     fused fp8 GEMV of gemv_packed.cu with s applied after the
 *                     dot: y = (codes_W . codes_a) * s_w[r] * s (+ bias), the
 *                     same products as the GEMM (bf16(e4m3 * s) would round the
 *                     activations once more, 2^-9 relative, and move the result
 *                     off the CPU reference).
 *
 * act_quant grid: one block of 1024 threads per (padded) token row. In
 * decode the RMSNorms before q|k|v and gate/up quantize their output
 * themselves (rmsnorm.cu, qb_cuda_rmsnorm_fp8; H100 tg128 of the 8B shape:
 * 244 -> 262 t/s), so it runs before the o and down GEMVs (and before gate/up
 * with MLP biases, and a W8A8 lm_head).
 */
#include "packed.cuh"

#define AQ_THREADS 1024
#define EPI_THREADS 256

/* restrict and unrolled loops: none of the outputs is x, so 8 loads of x go
 * out together instead of one L2 round trip per element. */
static __global__ void act_quant_kernel(const uint16_t *__restrict__ x, int n, int cols,
                                        uint8_t *__restrict__ codes, float *__restrict__ scales,
                                        uint16_t *__restrict__ qdq)
{
    __shared__ float scratch[32];
    int t = blockIdx.x;
    qb_pdl_trigger(); /* the GEMV after may start loading its weights */
    qb_pdl_wait();    /* x comes from the kernel before */
    uint8_t *c = codes + (size_t)t * cols;
    if (t >= n) { /* padding row for the FP8 GEMM shape */
        for (int i = threadIdx.x; i < cols; i += blockDim.x)
            c[i] = 0;
        return;
    }
    const uint16_t *row = x + (size_t)t * cols;
    float amax = 0.0f;
#pragma unroll 8
    for (int i = threadIdx.x; i < cols; i += blockDim.x)
        amax = fmaxf(amax, fabsf(qb_bf16_bits_to_f32(row[i])));
    float s = qb_block_max(amax, scratch) / 448.0f;
#pragma unroll 8
    for (int i = threadIdx.x; i < cols; i += blockDim.x) {
        uint8_t q = qb_act_e4m3(qb_bf16_bits_to_f32(row[i]), s);
        c[i] = q;
        if (qdq)
            qdq[(size_t)t * cols + i] = qb_f32_to_bf16_bits(qb_fp8_to_f32(q, __NV_E4M3));
    }
    if (threadIdx.x == 0)
        scales[t] = s;
}

cudaError_t qb_act_quant_launch(const uint16_t *x, int n, int n_pad, int cols, uint8_t *codes,
                                float *scales, uint16_t *qdq, int pdl, cudaStream_t s)
{
    return qb_launch(pdl, act_quant_kernel, dim3(n_pad), dim3(AQ_THREADS), s, x, n, cols, codes,
                     scales, qdq);
}

static __global__ void w8a8_epilogue_kernel(const float *d, int rows, const float *s_act,
                                            const float *s_w, const float *bias, float *y,
                                            int ldy, int accumulate)
{
    int r = blockIdx.x * blockDim.x + threadIdx.x, t = blockIdx.y;
    if (r >= rows)
        return;
    float v = d[(size_t)t * rows + r] * s_act[t] * s_w[r] + (bias ? bias[r] : 0.0f);
    float *o = y + (size_t)t * ldy + r;
    *o = accumulate ? *o + v : v;
}

static cudaError_t epilogue_launch(const float *d, int rows, int n, const float *s_act,
                                   const struct qb_cuda_weight *w, float *y, int ldy,
                                   int accumulate, cudaStream_t s)
{
    dim3 grid((rows + EPI_THREADS - 1) / EPI_THREADS, n);
    w8a8_epilogue_kernel<<<grid, EPI_THREADS, 0, s>>>(d, rows, s_act, (const float *)w->scales,
                                                      w->bias, y, ldy, accumulate);
    return cudaGetLastError();
}

/* D [n_pad][rows] (col-major rows x n_pad) = W codes . A codes^T through cuBLASLt. */
static enum qb_status fp8_gemm(struct qb_cuda_ctx *c, const struct qb_cuda_weight *w, int n_pad,
                               float *d, struct qb_err *err)
{
    enum qb_status st = QB_OK;
    cublasLtMatmulDesc_t op = NULL;
    cublasLtMatrixLayout_t la = NULL, lb = NULL, ld = NULL;
    cublasLtMatmulPreference_t pref = NULL;
    cublasLtMatmulHeuristicResult_t heur;
    cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    const float alpha = 1.0f, beta = 0.0f;
    uint64_t rows = (uint64_t)w->rows, cols = (uint64_t)w->cols;
    size_t ws = c->blas_workspace_bytes;
    int found = 0;
    CUBLAS_CHECK(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&la, CUDA_R_8F_E4M3, cols, rows, (int64_t)cols));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&lb, CUDA_R_8F_E4M3, cols, (uint64_t)n_pad,
                                            (int64_t)cols));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&ld, CUDA_R_32F, rows, (uint64_t)n_pad,
                                            (int64_t)rows));
    CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
    CUBLAS_CHECK(cublasLtMatmulAlgoGetHeuristic(c->lt, op, la, lb, ld, ld, pref, 1, &heur,
                                                &found));
    if (!found) {
        st = qb_err_set(err, QB_ERR_UNSUPPORTED, "cuBLASLt has no FP8 GEMM for %llu x %llu x %d "
                        "on this GPU (fp8-w8a8 needs sm_89 or newer)",
                        (unsigned long long)rows, (unsigned long long)cols, n_pad);
        goto out;
    }
    CUBLAS_CHECK(cublasLtMatmul(c->lt, op, &alpha, w->data, la, c->act_codes, lb, &beta, d, ld,
                                d, ld, &heur.algo, c->blas_workspace, ws, c->stream));
out:
    if (pref)
        cublasLtMatmulPreferenceDestroy(pref);
    if (ld)
        cublasLtMatrixLayoutDestroy(ld);
    if (lb)
        cublasLtMatrixLayoutDestroy(lb);
    if (la)
        cublasLtMatrixLayoutDestroy(la);
    if (op)
        cublasLtMatmulDescDestroy(op);
    return st;
}

enum qb_status qb_w8a8_check(struct qb_cuda_ctx *c, int n, int64_t cols, struct qb_err *err)
{
    if (n > c->act_rows || cols > c->act_cols)
        return qb_err_set(err, QB_ERR_INTERNAL, "W8A8: activation buffers for %d x %lld not "
                          "reserved (qb_cuda_ctx_reserve_act)", n, (long long)cols);
    return QB_OK;
}

enum qb_status qb_w8a8_linear(struct qb_cuda_ctx *c, const struct qb_cuda_weight *w,
                              const uint16_t *a, int n, float *y, int ldy, int accumulate,
                              struct qb_err *err)
{
    enum qb_status st = qb_w8a8_check(c, n, w->cols, err);
    int n_pad = (n + 15) / 16 * 16;
    float *d = (float *)c->dequant;
    if (st)
        return st;
    if ((size_t)n_pad * (size_t)w->rows * 2 > c->dequant_elems)
        return qb_err_set(err, QB_ERR_INTERNAL, "W8A8: the GEMM result does not fit the "
                          "reserved scratch (%zu bf16 elements)", c->dequant_elems);
    CUDA_CHECK(qb_act_quant_launch(a, n, n_pad, (int)w->cols, c->act_codes, c->act_scales, NULL,
                                   c->pdl, c->stream));
    st = fp8_gemm(c, w, n_pad, d, err);
    if (st)
        goto out;
    CUDA_CHECK(epilogue_launch(d, (int)w->rows, n, c->act_scales, w, y, ldy, accumulate,
                               c->stream));
out:
    return st;
}
