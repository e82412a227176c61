/*
 * w4a4.cu - native FP4 W4A4 (nvfp4-w4a4, mxfp4-w4a4) on the block-scaled FP4
 * tensor cores of sm_100 / sm_120 / sm_121 through cuBLASLt. Layouts, the
 * host reference and the CPU emulation: qb_w4a4.h and w4a4_host.c.
 *
 * STATUS: the GEMM path below is compiled for sm_121a (and whatever else
 * CMAKE_CUDA_ARCHITECTURES lists) but has never been executed: no sm_100+ GPU
 * was available. The activation quantizer kernel runs on any GPU and is
 * tested bit-exactly on sm_90. On a GPU below sm_100, qb_w4a4_device_supported
 * answers 0, so qb_cuda_supports refuses W4A4 and eval falls back to the CPU.
 *
 *   any n >= 1 (decode pads to 16 tokens):
 *     a bf16 [n][cols] --act_quant--> codes [n_pad][cols/2]   (act_codes)
 *                                     swizzled scales          (act_codes + codes, 256-aligned)
 *                                     g_t [n_pad]              (act_scales; MXFP4: 1)
 *     D f32 [n_pad][rows] = W (E2M1, TRANSA) x A (E2M1)        cuBLASLt, scale modes
 *                           with block scales applied           VEC16_UE4M3 / VEC32_UE8M0,
 *                                                               f32 compute and output
 *     y[t][r] (+)= D[t][r] / g_t * inv_g_w (+ bias[r])         epilogue kernel
 *
 * act_quant grid: one block of 256 threads per padded token row; the row
 * maximum (NVFP4) by a block reduction, then one thread per k-block runs the
 * shared codec (w4a4_codec.h), writing 8 or 16 code bytes and one scale byte at
 * its swizzled offset. The scale array is zeroed first (padding rows/k-blocks).
 */
#include "packed.cuh"
#include "qb_w4a4.h"
#include "w4a4_codec.h"

#define AQ_THREADS 256
#define EPI_THREADS 256
#define W4A4_TOKEN_PAD 16
#define W4A4_ALIGN 256

static int64_t round_up(int64_t v, int64_t m)
{
    return (v + m - 1) / m * m;
}

/* ---- activation quantizer (any GPU) ----------------------------------------------- */

static __device__ float block_max(float v, float *scratch)
{
    v = qb_warp_max(v);
    __syncthreads();
    if ((threadIdx.x & 31) == 0)
        scratch[threadIdx.x >> 5] = v;
    __syncthreads();
    v = (int)(threadIdx.x & 31) < (int)(blockDim.x >> 5) ? scratch[threadIdx.x & 31] : 0.0f;
    return qb_warp_max(v);
}

template <int BLOCK>
static __global__ void act_quant_kernel(const uint16_t *a, int n, int cols, int64_t sf_cols,
                                        uint8_t *codes, uint8_t *scales, float *global)
{
    __shared__ float scratch[32];
    const bool nvfp4 = BLOCK == QB_NVFP4_BLOCK;
    int t = blockIdx.x;
    uint8_t *crow = codes + (size_t)t * (size_t)(cols / 2);
    if (t >= n) { /* padding token of the GEMM shape: zero codes, zero scales (memset) */
        for (int i = threadIdx.x; i < cols / 2; i += blockDim.x)
            crow[i] = 0;
        if (threadIdx.x == 0)
            global[t] = 1.0f;
        return;
    }
    const uint16_t *row = a + (size_t)t * (size_t)cols;
    float g = 1.0f;
    if (nvfp4) {
        float amax = 0.0f;
        for (int i = threadIdx.x; i < cols; i += blockDim.x)
            amax = fmaxf(amax, fabsf(qb_bf16_bits_to_f32(row[i])));
        g = qb_w4_nvfp4_global(block_max(amax, scratch));
    }
    for (int kb = threadIdx.x; kb < cols / BLOCK; kb += blockDim.x) {
        float x[BLOCK];
        uint8_t q[BLOCK], sc;
        for (int j = 0; j < BLOCK; j++)
            x[j] = qb_bf16_bits_to_f32(row[kb * BLOCK + j]);
        sc = nvfp4 ? qb_w4_nvfp4_block(x, BLOCK, g, q) : qb_w4_mxfp4_block(x, BLOCK, q);
        for (int j = 0; j < BLOCK / 2; j++)
            crow[kb * (BLOCK / 2) + j] = (uint8_t)((q[2 * j] & 0xf) | (q[2 * j + 1] & 0xf) << 4);
        scales[qb_w4a4_sf_offset(t, kb, sf_cols)] = sc;
    }
    if (threadIdx.x == 0)
        global[t] = g;
}

extern "C" enum qb_status qb_w4a4_quantize_act_gpu(struct qb_cuda_ctx *c, enum qb_act_mode kind,
                                                   const uint16_t *a, int n, int n_pad,
                                                   int64_t cols, uint8_t *codes,
                                                   uint8_t *scales, float *global,
                                                   struct qb_err *err)
{
    struct qb_w4a4_shape s;
    enum qb_status st = qb_w4a4_shape_init(&s, kind, n_pad, cols, "FP4 activations", err);
    if (st)
        return st;
    if (n < 1 || n > n_pad || n_pad > 65535)
        return qb_err_set(err, QB_ERR_INTERNAL, "FP4 activation quantizer: n=%d n_pad=%d", n,
                          n_pad);
    CUDA_CHECK(cudaMemsetAsync(scales, 0, qb_w4a4_scales_bytes(&s), c->stream));
    if (kind == QB_ACT_NVFP4)
        act_quant_kernel<QB_NVFP4_BLOCK><<<n_pad, AQ_THREADS, 0, c->stream>>>(
            a, n, (int)cols, s.sf_cols, codes, scales, global);
    else
        act_quant_kernel<QB_MXFP4_BLOCK><<<n_pad, AQ_THREADS, 0, c->stream>>>(
            a, n, (int)cols, s.sf_cols, codes, scales, global);
    LAUNCH_CHECK();
out:
    return st;
}

/* ---- cuBLASLt block-scaled FP4 GEMM (sm_100+; compiled, not executed) ------------- */

/* Descriptors of D [n_pad][rows] (col-major rows x n_pad) = W . A^T in FP4. */
struct fp4_plan {
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t la, lb, ld;
    cublasLtMatmulPreference_t pref;
};

static void plan_free(struct fp4_plan *p)
{
    if (p->pref)
        cublasLtMatmulPreferenceDestroy(p->pref);
    if (p->ld)
        cublasLtMatrixLayoutDestroy(p->ld);
    if (p->lb)
        cublasLtMatrixLayoutDestroy(p->lb);
    if (p->la)
        cublasLtMatrixLayoutDestroy(p->la);
    if (p->op)
        cublasLtMatmulDescDestroy(p->op);
    memset(p, 0, sizeof *p);
}

/* w_scales / a_scales may be NULL for a heuristic probe. */
static enum qb_status plan_create(struct fp4_plan *p, enum qb_act_mode kind, uint64_t rows,
                                  uint64_t cols, uint64_t n_pad, const void *w_scales,
                                  const void *a_scales, size_t workspace, struct qb_err *err)
{
    enum qb_status st = QB_OK;
    cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    int32_t mode = kind == QB_ACT_NVFP4 ? CUBLASLT_MATMUL_MATRIX_SCALE_VEC16_UE4M3
                                        : CUBLASLT_MATMUL_MATRIX_SCALE_VEC32_UE8M0;
    memset(p, 0, sizeof *p);
    CUBLAS_CHECK(cublasLtMatmulDescCreate(&p->op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta,
                                                sizeof ta));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb,
                                                sizeof tb));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, &mode,
                                                sizeof mode));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, &mode,
                                                sizeof mode));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER,
                                                &w_scales, sizeof w_scales));
    CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p->op, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER,
                                                &a_scales, sizeof a_scales));
    /* FP4 element counts; the leading dimension counts elements too */
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->la, CUDA_R_4F_E2M1, cols, rows, (int64_t)cols));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->lb, CUDA_R_4F_E2M1, cols, n_pad, (int64_t)cols));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&p->ld, CUDA_R_32F, rows, n_pad, (int64_t)rows));
    CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&p->pref));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        p->pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &workspace, sizeof workspace));
out:
    if (st)
        plan_free(p);
    return st;
}

static enum qb_status device_cc(int *major, int *minor, struct qb_err *err)
{
    enum qb_status st = QB_OK;
    int dev = 0;
    *major = *minor = 0;
    CUDA_CHECK(cudaGetDevice(&dev));
    CUDA_CHECK(cudaDeviceGetAttribute(major, cudaDevAttrComputeCapabilityMajor, dev));
    CUDA_CHECK(cudaDeviceGetAttribute(minor, cudaDevAttrComputeCapabilityMinor, dev));
out:
    return st;
}

extern "C" int qb_w4a4_device_supported(enum qb_act_mode kind)
{
    struct qb_err err;
    struct fp4_plan p;
    cublasLtHandle_t lt = NULL;
    cublasLtMatmulHeuristicResult_t heur;
    int major = 0, minor = 0, found = 0;
    if (!qb_w4a4_block(kind) || device_cc(&major, &minor, &err) || major < 10)
        return 0; /* no block-scaled FP4 tensor cores before sm_100 */
    if (cublasLtGetVersion() < 120800 || cublasLtCreate(&lt) != CUBLAS_STATUS_SUCCESS)
        return 0;
    if (!plan_create(&p, kind, 256, 256, 32, NULL, NULL, 32u << 20, &err)) {
        if (cublasLtMatmulAlgoGetHeuristic(lt, p.op, p.la, p.lb, p.ld, p.ld, p.pref, 1, &heur,
                                           &found) != CUBLAS_STATUS_SUCCESS)
            found = 0;
        plan_free(&p);
    }
    cublasLtDestroy(lt);
    return found > 0;
}

static enum qb_status fp4_gemm(struct qb_cuda_ctx *c, const struct qb_cuda_weight *w, int n_pad,
                               const uint8_t *a_codes, const uint8_t *a_scales, float *d,
                               struct qb_err *err)
{
    struct fp4_plan p;
    cublasLtMatmulHeuristicResult_t heur;
    const float alpha = 1.0f, beta = 0.0f;
    int found = 0;
    enum qb_status st = plan_create(&p, w->act, (uint64_t)w->rows, (uint64_t)w->cols,
                                    (uint64_t)n_pad, w->scales, a_scales,
                                    c->blas_workspace_bytes, err);
    if (st)
        return st;
    CUBLAS_CHECK(cublasLtMatmulAlgoGetHeuristic(c->lt, p.op, p.la, p.lb, p.ld, p.ld, p.pref, 1,
                                                &heur, &found));
    if (!found) {
        st = qb_err_set(err, QB_ERR_UNSUPPORTED, "cuBLASLt has no block-scaled FP4 GEMM for "
                        "%lld x %lld x %d on this GPU (W4A4 needs sm_100 or newer); use "
                        "--backend cpu", (long long)w->rows, (long long)w->cols, n_pad);
        goto out;
    }
    CUBLAS_CHECK(cublasLtMatmul(c->lt, p.op, &alpha, w->data, p.la, a_codes, p.lb, &beta, d,
                                p.ld, d, p.ld, &heur.algo, c->blas_workspace,
                                c->blas_workspace_bytes, c->stream));
out:
    plan_free(&p);
    return st;
}

/* ---- epilogue ----------------------------------------------------------------------- */

static __global__ void epilogue_kernel(const float *d, int rows, const float *g_a, float inv_g_w,
                                       const float *bias, float *y, int ldy, int accumulate)
{
    int r = blockIdx.x * blockDim.x + threadIdx.x, t = blockIdx.y;
    if (r >= rows)
        return;
    /* the formula of qb_w4a4_emulate_linear, operation for operation */
    float v = d[(size_t)t * rows + r] / g_a[t] * inv_g_w + (bias ? bias[r] : 0.0f);
    float *o = y + (size_t)t * ldy + r;
    *o = accumulate ? *o + v : v;
}

/* ---- the linear ----------------------------------------------------------------------- */

extern "C" int qb_w4a4_is(const struct qb_cuda_weight *w)
{
    return w && (w->act == QB_ACT_NVFP4 || w->act == QB_ACT_MXFP4);
}

static size_t act_codes_bytes(int n_pad, int64_t cols)
{
    return (size_t)round_up((int64_t)n_pad * cols / 2, W4A4_ALIGN);
}

extern "C" size_t qb_w4a4_act_bytes(int n, int64_t cols)
{
    int64_t n_pad = round_up(n, W4A4_TOKEN_PAD);
    return act_codes_bytes((int)n_pad, cols) +
           (size_t)(round_up(n_pad, QB_W4A4_TILE_ROWS) *
                    round_up(cols / QB_NVFP4_BLOCK, QB_W4A4_TILE_KB));
}

extern "C" size_t qb_w4a4_scratch_elems(int n_max, int64_t rows)
{
    size_t gemm = (size_t)round_up(n_max, W4A4_TOKEN_PAD) * (size_t)rows * 4;
    size_t swiglu = (size_t)round_up(W4A4_TOKEN_PAD * rows * 4, W4A4_ALIGN) + (size_t)rows * 8;
    return ((gemm > swiglu ? gemm : swiglu) + 1) / 2;
}

extern "C" int qb_w4a4_act_rows(int n_max)
{
    int64_t rows = round_up(n_max, W4A4_TOKEN_PAD);
    return (int)(rows > QB_W4A4_TILE_ROWS ? rows : QB_W4A4_TILE_ROWS);
}

static enum qb_status check_buffers(struct qb_cuda_ctx *c, const struct qb_cuda_weight *w,
                                    int n, int n_pad, int ldy, struct qb_err *err)
{
    if (!qb_w4a4_is(w))
        return qb_err_set(err, QB_ERR_INTERNAL, "W4A4 linear called on a weight that is not "
                          "in the FP4 block-scaled layout");
    if (n < 1 || n_pad > 65535 || ldy < w->rows || w->rows > 0x7fffffff)
        return qb_err_set(err, QB_ERR_INTERNAL, "W4A4 linear: n=%d ldy=%d rows=%lld", n, ldy,
                          (long long)w->rows);
    if (n_pad > c->act_rows || w->cols > c->act_cols ||
        qb_w4a4_act_bytes(n, w->cols) > (size_t)c->act_rows * (size_t)c->act_cols)
        return qb_err_set(err, QB_ERR_INTERNAL, "W4A4: activation buffers for %d x %lld not "
                          "reserved (qb_cuda_ctx_reserve_act with at least 128 rows)", n,
                          (long long)w->cols);
    if ((size_t)n_pad * (size_t)w->rows * 4 > c->dequant_elems * 2)
        return qb_err_set(err, QB_ERR_INTERNAL, "W4A4: the GEMM result does not fit the "
                          "reserved scratch (%zu bf16 elements)", c->dequant_elems);
    return QB_OK;
}

extern "C" enum qb_status qb_w4a4_linear(struct qb_cuda_ctx *c, const struct qb_cuda_weight *w,
                                         const uint16_t *a, int n, float *y, int ldy,
                                         int accumulate, struct qb_err *err)
{
    int n_pad = (int)round_up(n, W4A4_TOKEN_PAD);
    enum qb_status st = check_buffers(c, w, n, n_pad, ldy, err);
    uint8_t *codes = c->act_codes, *scales = c->act_codes + act_codes_bytes(n_pad, w->cols);
    float *d = (float *)c->dequant;
    if (st)
        return st;
    st = qb_w4a4_quantize_act_gpu(c, w->act, a, n, n_pad, w->cols, codes, scales, c->act_scales,
                                  err);
    if (!st)
        st = fp4_gemm(c, w, n_pad, codes, scales, d, err);
    if (st)
        return st;
    dim3 grid((unsigned)((w->rows + EPI_THREADS - 1) / EPI_THREADS), (unsigned)n);
    epilogue_kernel<<<grid, EPI_THREADS, 0, c->stream>>>(d, (int)w->rows, c->act_scales,
                                                         w->scale_mul, w->bias, y, ldy,
                                                         accumulate);
    LAUNCH_CHECK();
out:
    return st;
}

extern "C" enum qb_status qb_w4a4_gemv(struct qb_cuda_ctx *c,
                                       const struct qb_cuda_weight *const *w, int n_w,
                                       const uint16_t *x, float *y, int accumulate,
                                       struct qb_err *err)
{
    enum qb_status st = QB_OK;
    int64_t off = 0;
    for (int i = 0; i < n_w && !st; i++) {
        st = qb_w4a4_linear(c, w[i], x, 1, y + off, (int)w[i]->rows, accumulate, err);
        off += w[i]->rows;
    }
    return st;
}

extern "C" enum qb_status qb_w4a4_gemv_swiglu(struct qb_cuda_ctx *c,
                                              const struct qb_cuda_weight *gate,
                                              const struct qb_cuda_weight *up,
                                              const uint16_t *x, uint16_t *out,
                                              struct qb_err *err)
{
    /* gate | up land after the GEMM's own result in the dequant scratch */
    size_t d_bytes = (size_t)W4A4_TOKEN_PAD * (size_t)gate->rows * 4;
    float *gu = (float *)((uint8_t *)c->dequant + round_up((int64_t)d_bytes, W4A4_ALIGN));
    enum qb_status st;
    if (gate->rows != up->rows || gate->rows > 0x7fffffff)
        return qb_err_set(err, QB_ERR_INTERNAL, "W4A4 SwiGLU: gate %lld rows, up %lld rows",
                          (long long)gate->rows, (long long)up->rows);
    if ((size_t)round_up((int64_t)d_bytes, W4A4_ALIGN) + (size_t)gate->rows * 8 >
        c->dequant_elems * 2)
        return qb_err_set(err, QB_ERR_INTERNAL, "W4A4 SwiGLU: the dequant scratch of %zu "
                          "elements is too small", c->dequant_elems);
    st = qb_w4a4_linear(c, gate, x, 1, gu, (int)gate->rows, 0, err);
    if (!st)
        st = qb_w4a4_linear(c, up, x, 1, gu + gate->rows, (int)up->rows, 0, err);
    if (!st)
        st = qb_cuda_swiglu(c, gu, 1, (int)gate->rows, out, err);
    return st;
}

/* ---- upload ---------------------------------------------------------------------------- */

static enum qb_status upload_new(void **dst, const void *src, size_t bytes, const char *what,
                                 struct qb_err *err)
{
    enum qb_status st = qb_cuda_alloc(dst, bytes, what, err);
    if (!st)
        st = qb_cuda_upload(*dst, src, bytes, err);
    return st;
}

extern "C" enum qb_status qb_w4a4_weight_upload(const struct qb_linear *lin, const char *name,
                                                struct qb_cuda_weight *out, struct qb_err *err)
{
    struct qb_w4a4_operand op;
    enum qb_status st;
    int major = 0, minor = 0;
    memset(&op, 0, sizeof op);
    if (!qb_w4a4_device_supported(lin->qp.act)) {
        st = device_cc(&major, &minor, err);
        if (!st)
            st = qb_err_set(err, QB_ERR_UNSUPPORTED, "%s: W4A4 (FP4 activations) needs the "
                            "block-scaled FP4 tensor cores of sm_100 or newer and a cuBLASLt "
                            "that has them; this GPU is sm_%d%d (FP4 path compiled, not "
                            "executed here); use --backend cpu", name, major, minor);
        return st;
    }
    st = qb_w4a4_pack_weight(lin, name, &op, err);
    if (st)
        goto out;
    out->fmt = lin->fmt;
    out->act = lin->qp.act;
    out->group = op.s.block;
    out->scale_mul = op.kind == QB_ACT_NVFP4 ? 1.0f / op.global[0] : 1.0f;
    out->bytes = qb_w4a4_codes_bytes(&op.s) + qb_w4a4_scales_bytes(&op.s);
    st = upload_new(&out->data, op.codes, qb_w4a4_codes_bytes(&op.s), name, err);
    if (!st)
        st = upload_new(&out->scales, op.scales, qb_w4a4_scales_bytes(&op.s), name, err);
out:
    qb_w4a4_operand_free(&op);
    return st;
}
