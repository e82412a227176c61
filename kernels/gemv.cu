/*
 * gemv.cu - the decode (n = 1) matrix-vector product over bf16 weights, the
 * kernel that decides tokens/s: every weight byte is read once per token, so
 * it must stream at close to the memory bandwidth.
 *
 *   y[r] = sum_k W[r][k] x[k]     W bf16 [rows][cols], x bf16 [cols], y f32
 *
 * Block: 8 warps; each warp owns 2 rows (16 rows per block; with SwiGLU the
 * two rows are row r of gate and row r of up, 8 outputs per block). Along a row the
 * 32 lanes read consecutive 16-byte chunks (8 bf16), so a warp reads 512
 * contiguous bytes per row per step and every load is coalesced:
 *
 *   row r   | lane0 | lane1 | ... | lane31 | lane0 | lane1 | ...
 *           |<-16B->|                        (chunk c = lane + 32 j)
 *
 * Four chunks of both rows are loaded before any is used (8 x 16 B in flight
 * per lane), x comes through the read-only cache (every warp of the block
 * reads the same x), weights use streaming loads (read once, evict first).
 * The lanes' partial sums meet in a warp shuffle reduction.
 *
 * Decode launches these with programmatic dependent launch (c->pdl): a block
 * may start while the previous kernel (RMSNorm, attention, the gate/up GEMV)
 * is finishing; it issues its first weight loads and only then waits for
 * that kernel (x is read after the wait), so the weight stream starts during
 * the previous kernel's tail.
 *
 * Several matrices sharing cols (q|k|v) run as one launch with their outputs
 * concatenated; the epilogue stores, accumulates (residual add) or, for the
 * gate/up pair, applies SwiGLU and writes bf16 for the down projection.
 * Packed formats take the same entries to the fused dequantize-GEMV of
 * gemv_packed.cu; W8A8 weights first quantize x per token (w8a8.cu), unless
 * a norm already did (the *_prequant entries), and run the fp8 GEMV on the
 * E4M3 code values with the token scale after the dot.
 */
#include "packed.cuh"
#include "qb_w4a4.h"

#define GEMV_WARPS 8
#define GEMV_ROWS_PER_WARP 2
#define GEMV_ROWS_PER_BLOCK (GEMV_WARPS * GEMV_ROWS_PER_WARP)
#define GEMV_UNROLL 4
#define GEMV_MAX_MATS 3

enum gemv_mode { GEMV_STORE = 0, GEMV_ACCUM, GEMV_SWIGLU };

struct gemv_args {
    const uint16_t *w[GEMV_MAX_MATS];
    const float *bias[GEMV_MAX_MATS];
    int64_t rows[GEMV_MAX_MATS]; /* rows of each matrix; outputs are concatenated */
    int n_mats;
    int64_t total_rows;          /* output rows (SwiGLU: rows of one of the pair) */
    int cols;
    const uint16_t *x;
    float *y;                    /* STORE / ACCUM */
    uint16_t *y_bf16;            /* SWIGLU */
};

static __device__ __forceinline__ float dot8_bf16(uint4 w, const float *x)
{
    const uint32_t *u = (const uint32_t *)&w;
    float s = 0.0f;
#pragma unroll
    for (int j = 0; j < 4; j++) {
        s += __uint_as_float(u[j] << 16) * x[2 * j];
        s += __uint_as_float(u[j] & 0xffff0000u) * x[2 * j + 1];
    }
    return s;
}

static __device__ __forceinline__ void load_x8(const uint16_t *x, int chunk, float *out)
{
    uint4 v = __ldg((const uint4 *)x + chunk);
    const uint32_t *u = (const uint32_t *)&v;
#pragma unroll
    for (int j = 0; j < 4; j++) {
        out[2 * j] = __uint_as_float(u[j] << 16);
        out[2 * j + 1] = __uint_as_float(u[j] & 0xffff0000u);
    }
}

/* acc[i] += this lane's share of row_i . x, for two rows (row1 may be NULL). */
static __device__ __forceinline__ void dot_two_rows(const uint16_t *row0, const uint16_t *row1,
                                                    const uint16_t *x, int n_chunks, float acc[2])
{
    int lane = threadIdx.x & 31, c = lane;
    const uint4 *r0 = (const uint4 *)row0, *r1 = (const uint4 *)(row1 ? row1 : row0);
    bool waited = false;
    for (; c + 32 * (GEMV_UNROLL - 1) < n_chunks; c += 32 * GEMV_UNROLL) {
        uint4 w0[GEMV_UNROLL], w1[GEMV_UNROLL];
#pragma unroll
        for (int u = 0; u < GEMV_UNROLL; u++) {
            w0[u] = __ldcs(r0 + c + 32 * u);
            w1[u] = __ldcs(r1 + c + 32 * u);
        }
        if (!waited) { /* the first weights are in flight: now wait for x */
            qb_pdl_wait();
            qb_pdl_trigger();
            waited = true;
        }
#pragma unroll
        for (int u = 0; u < GEMV_UNROLL; u++) {
            float xf[8];
            load_x8(x, c + 32 * u, xf);
            acc[0] += dot8_bf16(w0[u], xf);
            acc[1] += dot8_bf16(w1[u], xf);
        }
    }
    if (!waited) {
        qb_pdl_wait();
        qb_pdl_trigger();
    }
    for (; c < n_chunks; c += 32) {
        float xf[8];
        load_x8(x, c, xf);
        acc[0] += dot8_bf16(__ldcs(r0 + c), xf);
        acc[1] += dot8_bf16(__ldcs(r1 + c), xf);
    }
}

/* Row pointer and bias of global output row r (r < total_rows). The loop is
 * unrolled so the kernel parameters are never indexed at run time (which
 * would copy them to local memory). */
static __device__ __forceinline__ void locate_row(const struct gemv_args &a, int64_t r,
                                                  const uint16_t **row, const float **bias)
{
    bool found = false;
#pragma unroll
    for (int m = 0; m < GEMV_MAX_MATS; m++) {
        if (found || m >= a.n_mats)
            continue;
        if (r < a.rows[m]) {
            *row = a.w[m] + r * a.cols;
            *bias = a.bias[m] ? a.bias[m] + r : NULL;
            found = true;
        } else {
            r -= a.rows[m];
        }
    }
}

template <int MODE> static __global__ void __launch_bounds__(GEMV_WARPS * 32)
gemv_kernel(struct gemv_args a)
{
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_chunks = a.cols / 8;
    int64_t slot = (int64_t)blockIdx.x * GEMV_WARPS + warp;
    int64_t r0 = MODE == GEMV_SWIGLU ? slot : slot * GEMV_ROWS_PER_WARP;
    const uint16_t *rows[2] = {NULL, NULL};
    const float *bias[2] = {NULL, NULL};
    float acc[2] = {0.0f, 0.0f};
    if (r0 >= a.total_rows)
        return;
    if constexpr (MODE == GEMV_SWIGLU) { /* row r0 of gate and of up */
        rows[0] = a.w[0] + r0 * a.cols;
        rows[1] = a.w[1] + r0 * a.cols;
    } else {
        for (int i = 0; i < 2; i++)
            if (r0 + i < a.total_rows)
                locate_row(a, r0 + i, &rows[i], &bias[i]);
    }
    dot_two_rows(rows[0], rows[1], a.x, n_chunks, acc);
    acc[0] = qb_warp_sum(acc[0]);
    acc[1] = qb_warp_sum(acc[1]);
    if (lane != 0)
        return;
    if constexpr (MODE == GEMV_SWIGLU) {
        a.y_bf16[r0] = qb_f32_to_bf16_bits(qb_silu(acc[0]) * acc[1]);
    } else {
        for (int i = 0; i < 2; i++) {
            if (!rows[i])
                continue;
            float v = acc[i] + (bias[i] ? *bias[i] : 0.0f);
            a.y[r0 + i] = MODE == GEMV_ACCUM ? a.y[r0 + i] + v : v;
        }
    }
}

static cudaError_t gemv_launch(const struct gemv_args *a, int mode, bool pdl, cudaStream_t s)
{
    int64_t per_block = mode == GEMV_SWIGLU ? GEMV_WARPS : GEMV_ROWS_PER_BLOCK;
    int64_t blocks = (a->total_rows + per_block - 1) / per_block;
    dim3 grid((unsigned)blocks), block(GEMV_WARPS * 32);
    if (blocks > 0x7fffffff)
        return cudaErrorInvalidValue;
    switch (mode) {
    case GEMV_STORE: return qb_launch(pdl, gemv_kernel<GEMV_STORE>, grid, block, s, *a);
    case GEMV_ACCUM: return qb_launch(pdl, gemv_kernel<GEMV_ACCUM>, grid, block, s, *a);
    default: return qb_launch(pdl, gemv_kernel<GEMV_SWIGLU>, grid, block, s, *a);
    }
}

/* The weights of one launch share cols and format. */
static enum qb_status check_same(const struct qb_cuda_weight *w, const struct qb_cuda_weight *w0,
                                 struct qb_err *err)
{
    int64_t cols = w0->cols;
    if (w->fmt != w0->fmt)
        return qb_err_set(err, QB_ERR_INTERNAL, "CUDA GEMV: formats %s and %s in one launch",
                          qb_wfmt_get(w->fmt)->name, qb_wfmt_get(w0->fmt)->name);
    if (w->cols != cols || cols % 8 || cols > 0x7fffffff)
        return qb_err_set(err, QB_ERR_INTERNAL,
                          "CUDA GEMV: cols %lld (must match and be a multiple of 8)",
                          (long long)w->cols);
    return QB_OK;
}

/* The gate/up pair of a SwiGLU GEMV: same format and shape, no biases. */
static enum qb_status check_swiglu_pair(const struct qb_cuda_weight *gate,
                                        const struct qb_cuda_weight *up, struct qb_err *err)
{
    enum qb_status st = check_same(up, gate, err);
    if (!st && (gate->rows != up->rows || gate->bias || up->bias))
        st = qb_err_set(err, QB_ERR_UNSUPPORTED,
                        "CUDA gate/up GEMV: shapes differ or MLP biases present");
    return st;
}

/* QB_ERR_INTERNAL for a pre-quantized input (x_scale) to weights that are not W8A8. */
static enum qb_status check_prequant(const struct qb_cuda_weight *w, const float *x_scale,
                                     struct qb_err *err)
{
    if (x_scale && w->act != QB_ACT_FP8_E4M3)
        return qb_err_set(err, QB_ERR_INTERNAL, "a pre-quantized GEMV input for weights "
                          "without W8A8 activations");
    return QB_OK;
}

/* W8A8: replace *x by its per-token E4M3 code values (one row) and point
 * *x_scale at the token's scale, which the GEMV applies after the dot; with
 * *x_scale already set (qb_cuda_gemv_prequant), x holds them already. */
static enum qb_status w8a8_input(struct qb_cuda_ctx *c, const struct qb_cuda_weight *w,
                                 const uint16_t **x, const float **x_scale, struct qb_err *err)
{
    enum qb_status st = QB_OK;
    if (w->act != QB_ACT_FP8_E4M3 || *x_scale)
        return QB_OK;
    st = qb_w8a8_check(c, 1, w->cols, err);
    if (st)
        return st;
    CUDA_CHECK(qb_act_quant_launch(*x, 1, 1, (int)w->cols, c->act_codes, c->act_scales,
                                   c->act_qdq, c->pdl, c->stream));
    *x = c->act_qdq;
    *x_scale = c->act_scales;
out:
    return st;
}

static enum qb_status gemv_any(struct qb_cuda_ctx *c, const struct qb_cuda_weight *const *w,
                               int n_w, const uint16_t *x, const float *x_scale, float *y,
                               int accumulate, struct qb_err *err)
{
    enum qb_status st = QB_OK;
    struct gemv_args a = {};
    if (n_w < 1 || n_w > GEMV_MAX_MATS)
        return qb_err_set(err, QB_ERR_INTERNAL, "qb_cuda_gemv: %d matrices", n_w);
    st = check_prequant(w[0], x_scale, err);
    if (st)
        return st;
    if (qb_w4a4_is(w[0])) /* FP4 activations: w4a4.cu (sm_100+) */
        return qb_w4a4_gemv(c, w, n_w, x, y, accumulate, err);
    for (int i = 0; i < n_w; i++) {
        st = check_same(w[i], w[0], err);
        if (st)
            return st;
        a.w[i] = (const uint16_t *)w[i]->data;
        a.bias[i] = w[i]->bias;
        a.rows[i] = w[i]->rows;
        a.total_rows += w[i]->rows;
    }
    a.n_mats = n_w;
    a.cols = (int)w[0]->cols;
    a.x = x;
    a.y = y;
    st = w8a8_input(c, w[0], &x, &x_scale, err);
    if (st)
        return st;
    if (w[0]->fmt != QB_WFMT_BF16)
        CUDA_CHECK(qb_gemv_packed_launch(w, n_w, x, x_scale, y, NULL, accumulate ? 1 : 0,
                                         c->pdl, c->stream));
    else
        CUDA_CHECK(gemv_launch(&a, accumulate ? GEMV_ACCUM : GEMV_STORE, c->pdl, c->stream));
out:
    return st;
}

extern "C" enum qb_status qb_cuda_gemv(struct qb_cuda_ctx *c,
                                       const struct qb_cuda_weight *const *w, int n_w,
                                       const uint16_t *x, float *y, int accumulate,
                                       struct qb_err *err)
{
    return gemv_any(c, w, n_w, x, NULL, y, accumulate, err);
}

extern "C" enum qb_status qb_cuda_gemv_prequant(struct qb_cuda_ctx *c,
                                                const struct qb_cuda_weight *const *w, int n_w,
                                                const uint16_t *x, const float *x_scale,
                                                float *y, int accumulate, struct qb_err *err)
{
    if (!x_scale)
        return qb_err_set(err, QB_ERR_INTERNAL, "qb_cuda_gemv_prequant: no token scale");
    return gemv_any(c, w, n_w, x, x_scale, y, accumulate, err);
}

static enum qb_status swiglu_any(struct qb_cuda_ctx *c, const struct qb_cuda_weight *gate,
                                 const struct qb_cuda_weight *up, const uint16_t *x,
                                 const float *x_scale, uint16_t *out, struct qb_err *err)
{
    enum qb_status st = QB_OK;
    struct gemv_args a = {};
    const struct qb_cuda_weight *pair[2] = {gate, up};
    st = check_prequant(gate, x_scale, err);
    if (st)
        return st;
    if (qb_w4a4_is(gate)) /* FP4 activations: w4a4.cu (sm_100+) */
        return qb_w4a4_gemv_swiglu(c, gate, up, x, out, err);
    st = check_swiglu_pair(gate, up, err);
    if (st)
        return st;
    a.w[0] = (const uint16_t *)gate->data;
    a.w[1] = (const uint16_t *)up->data;
    a.rows[0] = gate->rows;
    a.n_mats = 2;
    a.total_rows = gate->rows;
    a.cols = (int)gate->cols;
    a.x = x;
    a.y_bf16 = out;
    st = w8a8_input(c, gate, &x, &x_scale, err);
    if (st)
        return st;
    if (gate->fmt != QB_WFMT_BF16)
        CUDA_CHECK(qb_gemv_packed_launch(pair, 2, x, x_scale, NULL, out, 2, c->pdl, c->stream));
    else
        CUDA_CHECK(gemv_launch(&a, GEMV_SWIGLU, c->pdl, c->stream));
out:
    return st;
}

extern "C" enum qb_status qb_cuda_gemv_swiglu(struct qb_cuda_ctx *c,
                                              const struct qb_cuda_weight *gate,
                                              const struct qb_cuda_weight *up, const uint16_t *x,
                                              uint16_t *out, struct qb_err *err)
{
    return swiglu_any(c, gate, up, x, NULL, out, err);
}

extern "C" enum qb_status qb_cuda_gemv_swiglu_prequant(struct qb_cuda_ctx *c,
                                                       const struct qb_cuda_weight *gate,
                                                       const struct qb_cuda_weight *up,
                                                       const uint16_t *x, const float *x_scale,
                                                       uint16_t *out, struct qb_err *err)
{
    if (!x_scale)
        return qb_err_set(err, QB_ERR_INTERNAL, "qb_cuda_gemv_swiglu_prequant: no token scale");
    return swiglu_any(c, gate, up, x, x_scale, out, err);
}

/* The GEMV of rmsnorm(in->x) fused on the tensor cores (gemv_mma.cu) when the
 * weights take that path: *fused = 1; otherwise nothing runs and *fused = 0. */
static enum qb_status try_fused_norm(struct qb_cuda_ctx *c, const struct qb_cuda_weight *const *w,
                                     int n_w, const struct qb_cuda_norm_in *in, float *y,
                                     int accumulate, int *fused, struct qb_err *err)
{
    enum qb_status st = QB_OK;
    struct qb_gemv_in gi = {NULL, in->x, in->w, in->eps};
    cudaError_t e;
    *fused = 0;
    for (int i = 0; i < n_w; i++) {
        st = check_same(w[i], w[0], err);
        if (st)
            return st;
    }
    e = qb_gemv_mma_launch(w, n_w, &gi, y, NULL, accumulate, NULL, c->pdl, c->stream);
    if (e == cudaErrorNotSupported)
        return QB_OK;
    CUDA_CHECK(e);
    *fused = 1;
out:
    return st;
}

/* in->a = bf16(rmsnorm(in->x) * in->w), or its W8A8 code values and scale. */
static enum qb_status normed_input(struct qb_cuda_ctx *c, const struct qb_cuda_norm_in *in,
                                   int cols, struct qb_err *err)
{
    if (in->scale)
        return qb_cuda_rmsnorm_fp8(c, in->x, in->w, in->eps, 1, cols, in->a, in->scale, err);
    return qb_cuda_rmsnorm(c, in->x, in->w, in->eps, 1, cols, in->a, err);
}

extern "C" enum qb_status qb_cuda_gemv_norm(struct qb_cuda_ctx *c,
                                            const struct qb_cuda_weight *const *w, int n_w,
                                            const struct qb_cuda_norm_in *in, float *y,
                                            int accumulate, struct qb_err *err)
{
    int fused = 0;
    enum qb_status st = QB_OK;
    if (n_w < 1 || n_w > GEMV_MAX_MATS)
        return qb_err_set(err, QB_ERR_INTERNAL, "qb_cuda_gemv_norm: %d matrices", n_w);
    st = check_prequant(w[0], in->scale, err); /* before in->a is written */
    if (!st && !in->scale)
        st = try_fused_norm(c, w, n_w, in, y, accumulate ? 1 : 0, &fused, err);
    if (st || fused)
        return st;
    st = normed_input(c, in, (int)w[0]->cols, err);
    if (!st)
        st = gemv_any(c, w, n_w, in->a, in->scale, y, accumulate, err);
    return st;
}

extern "C" enum qb_status qb_cuda_gemv_add_norm(struct qb_cuda_ctx *c,
                                                const struct qb_cuda_weight *w,
                                                const uint16_t *x, float *y,
                                                const struct qb_cuda_norm_in *next,
                                                struct qb_err *err)
{
    enum qb_status st = QB_OK;
    struct qb_gemv_in gi = {x, NULL, NULL, 0.0f};
    struct qb_gemv_norm_out tail = {next->w, next->eps, next->a, NULL};
    cudaError_t e;
    if (next->x != y)
        return qb_err_set(err, QB_ERR_INTERNAL, "qb_cuda_gemv_add_norm: the norm is not of y");
    e = next->scale ? cudaErrorNotSupported /* the tail does not quantize */
                    : qb_gemv_mma_launch(&w, 1, &gi, y, NULL, 1, &tail, c->pdl, c->stream);
    if (e != cudaErrorNotSupported) {
        CUDA_CHECK(e);
        return QB_OK;
    }
    st = qb_cuda_gemv(c, &w, 1, x, y, 1, err);
    if (!st)
        st = normed_input(c, next, (int)w->rows, err);
out:
    return st;
}
