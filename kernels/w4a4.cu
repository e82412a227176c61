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
 *   prefill, n > 1 (padded to n_pad = a multiple of 16 tokens):
 *     a bf16 [n][cols] --act_quant--> codes [n_pad][cols/2]   (act_codes)
 *                                     swizzled scales          (act_codes + codes, 256-aligned)
 *                                     g_t [n_pad]              (act_scales; MXFP4: 1)
 *     D f32 [n_pad][rows] = W (E2M1, TRANSA) x A (E2M1)        cuBLASLt, scale modes
 *                           with block scales applied           VEC16_UE4M3 / VEC32_UE8M0,
 *                                                               f32 compute and output
 *     y[t][r] (+)= D[t][r] / g_t * inv_g_w (+ bias[r])         epilogue kernel
 *
 *   decode, n = 1: the same quantizer for one token, then a GEMV over the same
 *     layouts (one warp per output row, a lane per k-block, 8 or 16 code bytes
 *     in one load): d = sum (e2m1(a) * s_a) * (e2m1(w) * s_w) in f32, and the
 *     epilogue formula above (or SwiGLU of gate and up). Plain SIMT code, so it
 *     runs (and is tested) on any GPU; the engine only reaches it on sm_100+.
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

/* Token rows of the activation operand: 1 for the decode GEMV, else the GEMM's padding. */
static int pad_tokens(int n)
{
    return n == 1 ? 1 : (int)round_up(n, W4A4_TOKEN_PAD);
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
static __global__ void w4a4_act_quant_kernel(const uint16_t *a, int n, int cols,
                                             int64_t sf_cols, uint8_t *codes, uint8_t *scales,
                                             float *global)
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
        w4a4_act_quant_kernel<QB_NVFP4_BLOCK><<<n_pad, AQ_THREADS, 0, c->stream>>>(
            a, n, (int)cols, s.sf_cols, codes, scales, global);
    else
        w4a4_act_quant_kernel<QB_MXFP4_BLOCK><<<n_pad, AQ_THREADS, 0, c->stream>>>(
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

/* y = d / g_a * inv_g_w + bias: the formula of qb_w4a4_emulate_linear, operation for
 * operation (the _rn intrinsics keep nvcc from contracting it into an FMA). */
static __device__ __forceinline__ float w4a4_scale_out(float d, float g_a, float inv_g_w,
                                                       float bias)
{
    return __fadd_rn(__fmul_rn(__fdiv_rn(d, g_a), inv_g_w), bias);
}

static __global__ void w4a4_epilogue_kernel(const float *d, int rows, const float *g_a,
                                            float inv_g_w, const float *bias, float *y, int ldy,
                                            int accumulate)
{
    int r = blockIdx.x * blockDim.x + threadIdx.x, t = blockIdx.y;
    if (r >= rows)
        return;
    float v = w4a4_scale_out(d[(size_t)t * rows + r], g_a[t], inv_g_w, bias ? bias[r] : 0.0f);
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
    int64_t n_pad = pad_tokens(n);
    return act_codes_bytes((int)n_pad, cols) +
           (size_t)(round_up(n_pad, QB_W4A4_TILE_ROWS) *
                    round_up(cols / QB_NVFP4_BLOCK, QB_W4A4_TILE_KB));
}

extern "C" size_t qb_w4a4_scratch_elems(int n_max, int64_t rows)
{
    return ((size_t)pad_tokens(n_max > 1 ? n_max : 2) * (size_t)rows * 4 + 1) / 2;
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
    if (n > 1 && (size_t)n_pad * (size_t)w->rows * 4 > c->dequant_elems * 2)
        return qb_err_set(err, QB_ERR_INTERNAL, "W4A4: the GEMM result does not fit the "
                          "reserved scratch (%zu bf16 elements)", c->dequant_elems);
    return QB_OK;
}

/* Quantize n tokens of a into the context's activation buffers. */
static enum qb_status quantize_into_ctx(struct qb_cuda_ctx *c, enum qb_act_mode kind,
                                        const uint16_t *a, int n, int64_t cols,
                                        uint8_t **codes, uint8_t **scales, struct qb_err *err)
{
    int n_pad = pad_tokens(n);
    *codes = c->act_codes;
    *scales = c->act_codes + act_codes_bytes(n_pad, cols);
    return qb_w4a4_quantize_act_gpu(c, kind, a, n, n_pad, cols, *codes, *scales, c->act_scales,
                                    err);
}

/* ---- decode GEMV (plain SIMT: any GPU) ------------------------------------------- */

#define GEMV_WARPS 8

template <int BLOCK> static __device__ __forceinline__ float scale_value(uint8_t b)
{
    return BLOCK == QB_NVFP4_BLOCK ? qb_w4_e4m3_to_f32(b & 0x7f) : qb_w4_e8m0_to_f32(b);
}

/* The BLOCK/2 code bytes of a k-block (8 or 16, aligned) in one vector load. */
template <int BLOCK>
static __device__ __forceinline__ void load_codes(const uint8_t *p, uint32_t *v)
{
    if (BLOCK == QB_NVFP4_BLOCK) {
        uint2 u = *reinterpret_cast<const uint2 *>(p);
        v[0] = u.x, v[1] = u.y;
    } else {
        uint4 u = *reinterpret_cast<const uint4 *>(p);
        v[0] = u.x, v[1] = u.y, v[2] = u.z, v[3] = u.w;
    }
}

/* sum over the BLOCK/2 code bytes of one k-block of (e2m1(a) * sa) * (e2m1(w) * sw). */
template <int BLOCK>
static __device__ __forceinline__ float block_dot(const uint8_t *wb, const uint8_t *ab, float sw,
                                                  float sa)
{
    uint32_t wv[BLOCK / 8], av[BLOCK / 8];
    float acc = 0.0f;
    load_codes<BLOCK>(wb, wv);
    load_codes<BLOCK>(ab, av);
    for (int i = 0; i < BLOCK / 8; i++)
        for (int j = 0; j < 8; j++) {
            uint8_t wc = (uint8_t)(wv[i] >> (4 * j)) & 0xf, ac = (uint8_t)(av[i] >> (4 * j)) & 0xf;
            acc += (qb_w4_e2m1_to_f32(ac) * sa) * (qb_w4_e2m1_to_f32(wc) * sw);
        }
    return acc;
}

/* The block-scaled dot of weight row r with the single quantized token, warp-wide. */
template <int BLOCK>
static __device__ float row_dot(const uint8_t *w_codes, const uint8_t *w_scales, int64_t w_sf_cols,
                                int r, int cols, const uint8_t *a_codes, const uint8_t *a_scales,
                                int64_t a_sf_cols)
{
    int lane = threadIdx.x & 31;
    const uint8_t *wr = w_codes + (size_t)r * (size_t)(cols / 2);
    float acc = 0.0f;
    for (int kb = lane; kb < cols / BLOCK; kb += 32)
        acc += block_dot<BLOCK>(wr + kb * (BLOCK / 2), a_codes + kb * (BLOCK / 2),
                                scale_value<BLOCK>(w_scales[qb_w4a4_sf_offset(r, kb, w_sf_cols)]),
                                scale_value<BLOCK>(a_scales[qb_w4a4_sf_offset(0, kb, a_sf_cols)]));
    return qb_warp_sum(acc);
}

struct w4a4_gemv_args {
    const uint8_t *w_codes, *w_scales, *w2_codes, *w2_scales; /* w2: SwiGLU up */
    int64_t sf_cols, a_sf_cols;
    int rows, cols;
    const uint8_t *a_codes, *a_scales;
    const float *g_a;
    float inv_g_w, inv_g_w2;
    const float *bias;
    float *y;          /* linear: y[r] (+)= ... */
    uint16_t *y_bf16;  /* SwiGLU: bf16(silu(gate) * up) */
    int accumulate;
};

template <int BLOCK> static __global__ void w4a4_gemv_kernel(struct w4a4_gemv_args g)
{
    int r = (int)((blockIdx.x * blockDim.x + threadIdx.x) >> 5);
    if (r >= g.rows)
        return;
    float d = row_dot<BLOCK>(g.w_codes, g.w_scales, g.sf_cols, r, g.cols, g.a_codes, g.a_scales,
                             g.a_sf_cols);
    if (g.y_bf16) {
        float u = row_dot<BLOCK>(g.w2_codes, g.w2_scales, g.sf_cols, r, g.cols, g.a_codes,
                                 g.a_scales, g.a_sf_cols);
        if ((threadIdx.x & 31) == 0)
            g.y_bf16[r] = qb_f32_to_bf16_bits(
                qb_silu(w4a4_scale_out(d, g.g_a[0], g.inv_g_w, 0.0f)) *
                w4a4_scale_out(u, g.g_a[0], g.inv_g_w2, 0.0f));
        return;
    }
    if ((threadIdx.x & 31) == 0) {
        float v = w4a4_scale_out(d, g.g_a[0], g.inv_g_w, g.bias ? g.bias[r] : 0.0f);
        g.y[r] = g.accumulate ? g.y[r] + v : v;
    }
}

static int64_t sf_cols_of(enum qb_act_mode kind, int64_t cols)
{
    return round_up(cols / qb_w4a4_block(kind), QB_W4A4_TILE_KB);
}

static struct w4a4_gemv_args gemv_args_of(const struct qb_cuda_weight *w,
                                          const uint8_t *a_codes, const uint8_t *a_scales,
                                          const float *g_a)
{
    struct w4a4_gemv_args g;
    memset(&g, 0, sizeof g);
    g.w_codes = (const uint8_t *)w->data;
    g.w_scales = (const uint8_t *)w->scales;
    g.sf_cols = g.a_sf_cols = sf_cols_of(w->act, w->cols);
    g.rows = (int)w->rows;
    g.cols = (int)w->cols;
    g.a_codes = a_codes;
    g.a_scales = a_scales;
    g.g_a = g_a;
    g.inv_g_w = w->scale_mul;
    g.bias = w->bias;
    return g;
}

static cudaError_t w4a4_gemv_launch(enum qb_act_mode kind, const struct w4a4_gemv_args &g,
                                    cudaStream_t s)
{
    unsigned blocks = (unsigned)((g.rows + GEMV_WARPS - 1) / GEMV_WARPS);
    if (kind == QB_ACT_NVFP4)
        w4a4_gemv_kernel<QB_NVFP4_BLOCK><<<blocks, GEMV_WARPS * 32, 0, s>>>(g);
    else
        w4a4_gemv_kernel<QB_MXFP4_BLOCK><<<blocks, GEMV_WARPS * 32, 0, s>>>(g);
    return cudaGetLastError();
}

extern "C" enum qb_status qb_w4a4_gemv(struct qb_cuda_ctx *c,
                                       const struct qb_cuda_weight *const *w, int n_w,
                                       const uint16_t *x, float *y, int accumulate,
                                       struct qb_err *err)
{
    uint8_t *codes, *scales;
    enum qb_status st = QB_OK;
    for (int i = 0; i < n_w && !st; i++) {
        st = check_buffers(c, w[i], 1, 1, (int)w[i]->rows, err);
        if (!st && (w[i]->cols != w[0]->cols || w[i]->act != w[0]->act))
            st = qb_err_set(err, QB_ERR_INTERNAL, "W4A4 GEMV: weights of one call must share "
                            "columns and format");
    }
    if (!st)
        st = quantize_into_ctx(c, w[0]->act, x, 1, w[0]->cols, &codes, &scales, err);
    for (int i = 0; i < n_w && !st; i++) {
        struct w4a4_gemv_args g = gemv_args_of(w[i], codes, scales, c->act_scales);
        g.y = y;
        g.accumulate = accumulate;
        y += w[i]->rows;
        CUDA_CHECK(w4a4_gemv_launch(w[i]->act, g, c->stream));
    }
out:
    return st;
}

extern "C" enum qb_status qb_w4a4_gemv_swiglu(struct qb_cuda_ctx *c,
                                              const struct qb_cuda_weight *gate,
                                              const struct qb_cuda_weight *up,
                                              const uint16_t *x, uint16_t *out,
                                              struct qb_err *err)
{
    uint8_t *codes, *scales;
    enum qb_status st = check_buffers(c, gate, 1, 1, (int)gate->rows, err);
    if (!st)
        st = check_buffers(c, up, 1, 1, (int)up->rows, err);
    if (!st && (gate->rows != up->rows || gate->cols != up->cols || gate->act != up->act))
        st = qb_err_set(err, QB_ERR_INTERNAL, "W4A4 SwiGLU: gate and up differ in shape or "
                        "format");
    if (!st && (gate->bias || up->bias))
        st = qb_err_set(err, QB_ERR_UNSUPPORTED, "W4A4 gate/up GEMV: MLP biases present");
    if (!st)
        st = quantize_into_ctx(c, gate->act, x, 1, gate->cols, &codes, &scales, err);
    if (!st) {
        struct w4a4_gemv_args g = gemv_args_of(gate, codes, scales, c->act_scales);
        g.w2_codes = (const uint8_t *)up->data;
        g.w2_scales = (const uint8_t *)up->scales;
        g.inv_g_w2 = up->scale_mul;
        g.y_bf16 = out;
        CUDA_CHECK(w4a4_gemv_launch(gate->act, g, c->stream));
    }
out:
    return st;
}

extern "C" enum qb_status qb_w4a4_linear(struct qb_cuda_ctx *c, const struct qb_cuda_weight *w,
                                         const uint16_t *a, int n, float *y, int ldy,
                                         int accumulate, struct qb_err *err)
{
    int n_pad = pad_tokens(n);
    enum qb_status st = check_buffers(c, w, n, n_pad, ldy, err);
    uint8_t *codes, *scales;
    float *d = (float *)c->dequant;
    if (st)
        return st;
    if (n == 1)
        return qb_w4a4_gemv(c, &w, 1, a, y, accumulate, err);
    st = quantize_into_ctx(c, w->act, a, n, w->cols, &codes, &scales, err);
    if (!st)
        st = fp4_gemm(c, w, n_pad, codes, scales, d, err);
    if (st)
        return st;
    dim3 grid((unsigned)((w->rows + EPI_THREADS - 1) / EPI_THREADS), (unsigned)n);
    w4a4_epilogue_kernel<<<grid, EPI_THREADS, 0, c->stream>>>(
        d, (int)w->rows, c->act_scales, w->scale_mul, w->bias, y, ldy, accumulate);
    LAUNCH_CHECK();
out:
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
    enum qb_status st;
    int major = 0, minor = 0;
    if (qb_w4a4_device_supported(lin->qp.act))
        return qb_w4a4_weight_upload_any(lin, name, out, err);
    st = device_cc(&major, &minor, err);
    if (!st)
        st = qb_err_set(err, QB_ERR_UNSUPPORTED, "%s: W4A4 (FP4 activations) needs the "
                        "block-scaled FP4 tensor cores of sm_100 or newer and a cuBLASLt that "
                        "has them; this GPU is sm_%d%d (FP4 path compiled, not executed here); "
                        "use --backend cpu", name, major, minor);
    return st;
}

extern "C" enum qb_status qb_w4a4_weight_upload_any(const struct qb_linear *lin,
                                                    const char *name,
                                                    struct qb_cuda_weight *out,
                                                    struct qb_err *err)
{
    struct qb_w4a4_operand op;
    enum qb_status st;
    memset(&op, 0, sizeof op);
    memset(out, 0, sizeof *out);
    out->rows = lin->rows;
    out->cols = lin->cols;
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
    if (st)
        qb_cuda_weight_free(out);
out:
    qb_w4a4_operand_free(&op);
    return st;
}
