/*
 * awq_cuda.cu - the AWQ search's trial quantization, scale-search losses and
 * range search on the GPU (see qb_cuda_awq.h for the contracts and tolerances).
 *
 * Kernels:
 *   trial_kernel   one warp per (row, group): lane l holds columns l + 32k of the
 *                  group (k < group / 32), min/max by warp shuffles (exact in any
 *                  order), awq.h's quantizer with explicit IEEE rounding
 *   silu_mul_kernel, sq_err_kernel + sum_kernel (a fixed grid of f64 partial
 *                  sums, then one block: the same bytes on every call)
 *   range_kernel   grid (group g, 64-row slice); the block's 8 warps share G_g^T in
 *                  shared memory; per row, candidates in batches of RANGE_BATCH:
 *                  clamp + quantize per lane, d to shared memory, then
 *                  t[a] = sum_b G_g[a][b] d[b] in f32 in b order (as awq.c's
 *                  gram_form, so t is bit-exact), d^T t in f64 by a warp sum
 * The products of the losses are cuBLAS SGEMMs in pedantic f32 (no TF32).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qb_cuda_common.cuh"

extern "C" {
#include "qb_cuda_awq.h"
}

#define AWQ_WARPS 8                                  /* warps per block of the warp kernels */
#define AWQ_LANE_MAX (QB_CUDA_AWQ_MAX_GROUP / 32)    /* columns of a group per lane */
#define RANGE_ROWS 64                                /* rows per range_kernel block */
#define RANGE_BATCH 4                                /* candidates sharing one pass over G_g */
#define EW_THREADS 256
#define SUM_BLOCKS 256                               /* partial sums of the MSE */

/* A grow-only device buffer. */
struct dbuf {
    void *p;
    size_t bytes;
};

struct qb_cuda_awq {
    struct qb_cuda_ctx *ctx;
    char device[256];
    size_t peak_bytes;
    int64_t n, in_cols, out;              /* the search data's shape */
    int64_t w_rows[3], w_cols[3];         /* 0: not set */
    struct dbuf x, tgt, s, w[3], trial[2], y[3], part, sum;
    struct dbuf rw, blocks, lo, hi;       /* range search (and the host-level trial) */
};

/* ---- the quantizer (awq.c's, in IEEE f32 without contraction) ---------------------------- */

struct aparam {
    float scale;
    int zero;
};

static __device__ struct aparam awq_params_dev(float mn, float mx, int maxq)
{
    struct aparam p;
    float s = __fdiv_rn(fmaxf(__fsub_rn(mx, mn), 1e-5f), (float)maxq);
    s = __half2float(__float2half_rn(s));
    p.scale = s > 0 ? s : 0x1p-24f;
    int z = -(int)rintf(__fdiv_rn(mn, p.scale));
    p.zero = z < 0 ? 0 : z > maxq ? maxq : z;
    return p;
}

static __device__ float awq_deq_dev(float v, struct aparam p, int maxq)
{
    int q = (int)rintf(__fdiv_rn(v, p.scale)) + p.zero;
    q = q < 0 ? 0 : q > maxq ? maxq : q;
    return __fmul_rn(p.scale, (float)(q - p.zero));
}

static __device__ float warp_min(float v)
{
    for (int o = 16; o > 0; o >>= 1)
        v = fminf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* Every lane gets the same bytes: each butterfly step adds the same two values. */
static __device__ double warp_sum_f64(double v)
{
    for (int o = 16; o > 0; o >>= 1)
        v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* ---- kernels ------------------------------------------------------------------------------- */

/* out = Q(w diag(s)) / s, one warp per (row, group). */
static __global__ void __launch_bounds__(AWQ_WARPS * 32)
    trial_kernel(const float *w, const float *s, int64_t rows, int64_t cols, int group,
                 int maxq, float *out)
{
    int64_t ng = cols / group;
    int64_t idx = (int64_t)blockIdx.x * AWQ_WARPS + (threadIdx.x >> 5);
    int lane = threadIdx.x & 31, K = group / 32;
    if (idx >= rows * ng)
        return;
    size_t base = (size_t)(idx / ng) * cols + (size_t)(idx % ng) * group;
    const float *sg = s + (idx % ng) * group;
    float v[AWQ_LANE_MAX], mn = INFINITY, mx = -INFINITY;
#pragma unroll
    for (int k = 0; k < AWQ_LANE_MAX; k++) {
        if (k >= K)
            break;
        int j = lane + 32 * k;
        v[k] = __fmul_rn(w[base + j], sg[j]);
        mn = fminf(mn, v[k]);
        mx = fmaxf(mx, v[k]);
    }
    struct aparam p = awq_params_dev(warp_min(mn), qb_warp_max(mx), maxq);
#pragma unroll
    for (int k = 0; k < AWQ_LANE_MAX; k++) {
        if (k >= K)
            break;
        int j = lane + 32 * k;
        out[base + j] = __fdiv_rn(awq_deq_dev(v[k], p, maxq), sg[j]);
    }
}

#define GRID_STRIDE(i, n)                                                                     \
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n);                  \
         i += (size_t)gridDim.x * blockDim.x)

/* a = silu(a) * b (as quant_pipeline.c's mlp_out). */
static __global__ void silu_mul_kernel(float *a, const float *b, size_t n)
{
    GRID_STRIDE(i, n)
        a[i] = qb_silu(a[i]) * b[i];
}

/* Thread 0 writes the sum of every thread's v (a block of EW_THREADS) to *out, in a
 * fixed order. */
static __device__ void block_sum_f64_to(double v, double *out)
{
    __shared__ double sh[EW_THREADS];
    sh[threadIdx.x] = v;
    __syncthreads();
    for (int h = EW_THREADS / 2; h > 0; h >>= 1) {
        if ((int)threadIdx.x < h)
            sh[threadIdx.x] += sh[threadIdx.x + h];
        __syncthreads();
    }
    if (threadIdx.x == 0)
        *out = sh[0];
}

/* part[block] = sum over the block's grid-stride share of (y - t)^2, in f64. */
static __global__ void __launch_bounds__(EW_THREADS)
    sq_err_kernel(const float *y, const float *t, size_t n, double *part)
{
    double acc = 0;
    GRID_STRIDE(i, n) {
        double d = (double)y[i] - (double)t[i];
        acc += d * d;
    }
    block_sum_f64_to(acc, &part[blockIdx.x]);
}

/* *out = sum of part[0..n) by one block of EW_THREADS threads. */
static __global__ void __launch_bounds__(EW_THREADS)
    sum_kernel(const double *part, int n, double *out)
{
    double acc = 0;
    for (int i = threadIdx.x; i < n; i += EW_THREADS)
        acc += part[i];
    block_sum_f64_to(acc, out);
}

struct range_args {
    const float *w;          /* [rows][cols] */
    const float *blocks;     /* [ng][G][G] row-major diagonal blocks */
    int64_t rows, cols;
    int group, maxq, grid, steps, asym;
    float *lo, *hi;          /* [rows][ng] */
};

/* The range of candidate c (awq.c's range_group: i outer, k inner). */
static __device__ void range_candidate(const struct range_args &a, int c, float mn, float mx,
                                       float *lo, float *hi)
{
    int i = a.asym ? c / a.steps : c, k = a.asym ? c % a.steps : c;
    float f_lo = __fsub_rn(1.0f, __fdiv_rn((float)i, (float)a.grid));
    float f_hi = __fsub_rn(1.0f, __fdiv_rn((float)k, (float)a.grid));
    *lo = __fmul_rn(mn, f_lo);
    *hi = __fmul_rn(mx, f_hi);
    if (!a.asym) {
        *hi = __fmul_rn(fmaxf(-mn, mx), f_hi);
        *lo = -*hi;
    }
}

static __global__ void __launch_bounds__(AWQ_WARPS * 32) range_kernel(struct range_args a)
{
    extern __shared__ float sm[];
    const int G = a.group, K = G / 32, lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    float *bt = sm;                                       /* [G][G]: bt[b][a] = G_g[a][b] */
    float *dsh = sm + G * G + warp * RANGE_BATCH * G;     /* this warp's [RANGE_BATCH][G] */
    const int64_t g = blockIdx.x, ng = a.cols / G;
    const float *B = a.blocks + (size_t)g * G * G;
    for (int idx = threadIdx.x; idx < G * G; idx += blockDim.x)
        bt[(idx % G) * G + idx / G] = B[idx];
    __syncthreads();
    const int n_cand = a.steps * (a.asym ? a.steps : 1);
    const int64_t r_end = QB_MIN(a.rows, ((int64_t)blockIdx.y + 1) * RANGE_ROWS);
    for (int64_t r = (int64_t)blockIdx.y * RANGE_ROWS + warp; r < r_end; r += AWQ_WARPS) {
        const float *wr = a.w + (size_t)r * a.cols + (size_t)g * G;
        float w[AWQ_LANE_MAX], mn = 0, mx = 0;
#pragma unroll
        for (int k = 0; k < AWQ_LANE_MAX; k++) {
            w[k] = k < K ? wr[lane + 32 * k] : 0.0f;
            mn = fminf(mn, w[k]);
            mx = fmaxf(mx, w[k]);
        }
        mn = warp_min(mn);
        mx = qb_warp_max(mx);
        double best = INFINITY;
        float best_lo = mn, best_hi = mx;
        for (int c0 = 0; c0 < n_cand; c0 += RANGE_BATCH) {
            float clo[RANGE_BATCH], chi[RANGE_BATCH], d[RANGE_BATCH][AWQ_LANE_MAX];
#pragma unroll
            for (int c = 0; c < RANGE_BATCH; c++) {
                range_candidate(a, QB_MIN(c0 + c, n_cand - 1), mn, mx, &clo[c], &chi[c]);
                float cur[AWQ_LANE_MAX], qmn = INFINITY, qmx = -INFINITY;
#pragma unroll
                for (int k = 0; k < AWQ_LANE_MAX; k++) {
                    cur[k] = fminf(fmaxf(w[k], clo[c]), chi[c]);
                    if (k < K) {
                        qmn = fminf(qmn, cur[k]);
                        qmx = fmaxf(qmx, cur[k]);
                    }
                }
                struct aparam p = awq_params_dev(warp_min(qmn), qb_warp_max(qmx), a.maxq);
#pragma unroll
                for (int k = 0; k < AWQ_LANE_MAX; k++) {
                    d[c][k] = __fsub_rn(awq_deq_dev(cur[k], p, a.maxq), w[k]);
                    if (k < K)
                        dsh[c * G + lane + 32 * k] = d[c][k];
                }
            }
            __syncwarp();
            float t[RANGE_BATCH][AWQ_LANE_MAX];
#pragma unroll
            for (int c = 0; c < RANGE_BATCH; c++)
#pragma unroll
                for (int k = 0; k < AWQ_LANE_MAX; k++)
                    t[c][k] = 0.0f;
            for (int b = 0; b < G; b++) {
                float db[RANGE_BATCH];
#pragma unroll
                for (int c = 0; c < RANGE_BATCH; c++)
                    db[c] = dsh[c * G + b];
#pragma unroll
                for (int k = 0; k < AWQ_LANE_MAX; k++) {
                    if (k >= K)
                        break;
                    float bv = bt[b * G + lane + 32 * k];
#pragma unroll
                    for (int c = 0; c < RANGE_BATCH; c++)
                        t[c][k] = __fadd_rn(t[c][k], __fmul_rn(bv, db[c]));
                }
            }
            __syncwarp(); /* dsh is rewritten by the next batch */
#pragma unroll
            for (int c = 0; c < RANGE_BATCH; c++) {
                double e = 0;
#pragma unroll
                for (int k = 0; k < AWQ_LANE_MAX; k++)
                    if (k < K)
                        e += (double)d[c][k] * (double)t[c][k];
                e = warp_sum_f64(e);
                if (c0 + c < n_cand && e < best) {
                    best = e;
                    best_lo = clo[c];
                    best_hi = chi[c];
                }
            }
        }
        if (lane == 0) {
            a.lo[(size_t)r * ng + g] = best_lo;
            a.hi[(size_t)r * ng + g] = best_hi;
        }
    }
}

/* ---- context and buffers ------------------------------------------------------------------ */

static void note_mem(struct qb_cuda_awq *a)
{
    size_t free_b = 0, total_b = 0;
    if (cudaMemGetInfo(&free_b, &total_b) == cudaSuccess && total_b - free_b > a->peak_bytes)
        a->peak_bytes = total_b - free_b;
}

static enum qb_status reserve(struct qb_cuda_awq *a, struct dbuf *b, size_t bytes,
                              const char *what, struct qb_err *err)
{
    enum qb_status st;
    if (bytes <= b->bytes)
        return QB_OK;
    qb_cuda_free(b->p); /* cudaFree waits for the kernels that may still read it */
    b->p = NULL;
    b->bytes = 0;
    st = qb_cuda_alloc(&b->p, bytes, what, err);
    if (!st) {
        b->bytes = bytes;
        note_mem(a);
    }
    return st;
}

static enum qb_status upload_to(struct qb_cuda_awq *a, struct dbuf *b, const void *src,
                                size_t bytes, const char *what, struct qb_err *err)
{
    enum qb_status st = reserve(a, b, bytes, what, err);
    return st ? st : qb_cuda_upload(b->p, src, bytes, err);
}

extern "C" enum qb_status qb_cuda_awq_create(struct qb_cuda_awq **out, struct qb_err *err)
{
    struct qb_cuda_device dev;
    struct qb_cuda_awq *a;
    enum qb_status st = qb_cuda_device_query(&dev, err);
    *out = NULL;
    if (st)
        return st;
    a = (struct qb_cuda_awq *)calloc(1, sizeof *a);
    if (!a)
        return qb_err_set(err, QB_ERR_NOMEM, "out of host memory for the GPU AWQ search");
    snprintf(a->device, sizeof a->device, "%s", dev.name);
    st = qb_cuda_ctx_create(&a->ctx, err);
    if (st) {
        qb_cuda_awq_free(a);
        return st;
    }
    note_mem(a);
    *out = a;
    return QB_OK;
}

extern "C" void qb_cuda_awq_free(struct qb_cuda_awq *a)
{
    if (!a)
        return;
    struct dbuf *all[] = {&a->x, &a->tgt, &a->s, &a->w[0], &a->w[1], &a->w[2], &a->trial[0],
                          &a->trial[1], &a->y[0], &a->y[1], &a->y[2], &a->part, &a->sum,
                          &a->rw, &a->blocks, &a->lo, &a->hi};
    qb_cuda_ctx_free(a->ctx); /* synchronises first */
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        qb_cuda_free(all[i]->p);
    free(a);
}

extern "C" const char *qb_cuda_awq_device_name(const struct qb_cuda_awq *a)
{
    return a->device;
}

extern "C" size_t qb_cuda_awq_peak_bytes(const struct qb_cuda_awq *a)
{
    return a->peak_bytes;
}

static enum qb_status check_group(int64_t cols, int bits, int group, struct qb_err *err)
{
    if (!QB_CUDA_AWQ_GROUP_OK(group) || cols % group || bits < 2 || bits > 8)
        return qb_err_set(err, QB_ERR_UNSUPPORTED, "the GPU AWQ search takes groups of 32, 64 "
                          "or 128 columns dividing the input width and 2..8 bits (group %d, "
                          "%lld columns, %d bits); use --backend cpu", group, (long long)cols,
                          bits);
    return QB_OK;
}

static unsigned ew_grid(size_t n)
{
    size_t g = (n + EW_THREADS - 1) / EW_THREADS;
    return (unsigned)QB_MIN(g, (size_t)65535 * 8);
}

/* dst = trial of device w[rows][cols] with the device scales a->s. */
static enum qb_status launch_trial(struct qb_cuda_awq *a, const float *w, int64_t rows,
                                   int64_t cols, int bits, int group, float *dst,
                                   struct qb_err *err)
{
    enum qb_status st = QB_OK;
    int64_t warps = rows * (cols / group);
    unsigned blocks = (unsigned)((warps + AWQ_WARPS - 1) / AWQ_WARPS);
    trial_kernel<<<blocks, AWQ_WARPS * 32, 0, a->ctx->stream>>>(
        w, (const float *)a->s.p, rows, cols, group, (1 << bits) - 1, dst);
    LAUNCH_CHECK();
out:
    return st;
}

extern "C" enum qb_status qb_cuda_awq_scaled_trial(struct qb_cuda_awq *a, const float *w,
                                                   int64_t rows, int64_t cols, int bits,
                                                   int group, const float *s, float *out,
                                                   struct qb_err *err)
{
    size_t bytes = (size_t)rows * (size_t)cols * sizeof(float);
    enum qb_status st = check_group(cols, bits, group, err);
    if (!st)
        st = upload_to(a, &a->rw, w, bytes, "AWQ trial weights", err);
    if (!st)
        st = upload_to(a, &a->s, s, (size_t)cols * sizeof(float), "AWQ scales", err);
    if (!st)
        st = reserve(a, &a->trial[0], bytes, "an AWQ trial", err);
    if (!st)
        st = launch_trial(a, (const float *)a->rw.p, rows, cols, bits, group,
                          (float *)a->trial[0].p, err);
    if (!st)
        st = qb_cuda_download(out, a->trial[0].p, bytes, err);
    if (!st)
        st = qb_cuda_sync(a->ctx, err);
    return st;
}

/* ---- losses ------------------------------------------------------------------------------- */

extern "C" enum qb_status qb_cuda_awq_set_inputs(struct qb_cuda_awq *a, const float *x,
                                                 int64_t n, int64_t cols, const float *target,
                                                 int64_t out, struct qb_err *err)
{
    enum qb_status st = upload_to(a, &a->x, x, (size_t)n * (size_t)cols * sizeof(float),
                                  "AWQ search inputs", err);
    if (!st)
        st = upload_to(a, &a->tgt, target, (size_t)n * (size_t)out * sizeof(float),
                       "AWQ search targets", err);
    a->n = st ? 0 : n;
    a->in_cols = cols;
    a->out = out;
    return st;
}

extern "C" enum qb_status qb_cuda_awq_set_weight(struct qb_cuda_awq *a, int k, const float *w,
                                                 int64_t rows, int64_t cols, struct qb_err *err)
{
    enum qb_status st;
    if (k < 0 || k > 2)
        return qb_err_set(err, QB_ERR_INTERNAL, "GPU AWQ search: weight %d of 3", k);
    st = upload_to(a, &a->w[k], w, (size_t)rows * (size_t)cols * sizeof(float),
                   "AWQ search weights", err);
    a->w_rows[k] = st ? 0 : rows;
    a->w_cols[k] = cols;
    return st;
}

/* y[n][rows] = x[n][cols] w^T in f32 (column-major: y^T = W x^T, W^T stored). */
static enum qb_status sgemm_xwt(struct qb_cuda_awq *a, const float *w, int64_t rows,
                                int64_t cols, const float *x, int64_t n, float *y,
                                struct qb_err *err)
{
    enum qb_status st = QB_OK;
    const float one = 1.0f, zero = 0.0f;
    CUBLAS_CHECK(cublasGemmEx(a->ctx->blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)rows, (int)n,
                              (int)cols, &one, w, CUDA_R_32F, (int)cols, x, CUDA_R_32F,
                              (int)cols, &zero, y, CUDA_R_32F, (int)rows,
                              CUBLAS_COMPUTE_32F_PEDANTIC, CUBLAS_GEMM_DEFAULT));
out:
    return st;
}

static enum qb_status check_chain(const struct qb_cuda_awq *a, enum qb_cuda_awq_loss_kind kind,
                                  struct qb_err *err)
{
    int ok = a->n > 0 && a->w_rows[0] > 0 && a->w_cols[0] == a->in_cols;
    if (kind == QB_CUDA_AWQ_LINEAR)
        ok = ok && a->w_rows[0] == a->out;
    else
        ok = ok && a->w_rows[1] == a->w_rows[0] && a->w_cols[1] == a->in_cols &&
             a->w_cols[2] == a->w_rows[0] && a->w_rows[2] == a->out;
    if (!ok)
        return qb_err_set(err, QB_ERR_INTERNAL, "GPU AWQ loss: the inputs (%lld x %lld -> %lld) "
                          "and weights do not chain", (long long)a->n, (long long)a->in_cols,
                          (long long)a->out);
    return QB_OK;
}

static enum qb_status mse(struct qb_cuda_awq *a, const float *y, size_t n, double *loss,
                          struct qb_err *err)
{
    enum qb_status st = reserve(a, &a->part, SUM_BLOCKS * sizeof(double), "AWQ partial sums",
                                err);
    double sum = 0;
    if (!st)
        st = reserve(a, &a->sum, sizeof(double), "an AWQ loss", err);
    if (st)
        return st;
    sq_err_kernel<<<SUM_BLOCKS, EW_THREADS, 0, a->ctx->stream>>>(y, (const float *)a->tgt.p, n,
                                                                (double *)a->part.p);
    LAUNCH_CHECK();
    sum_kernel<<<1, EW_THREADS, 0, a->ctx->stream>>>((const double *)a->part.p, SUM_BLOCKS,
                                                     (double *)a->sum.p);
    LAUNCH_CHECK();
    st = qb_cuda_download(&sum, a->sum.p, sizeof sum, err);
    if (!st)
        st = qb_cuda_sync(a->ctx, err);
    *loss = sum / (double)n;
out:
    return st;
}

extern "C" enum qb_status qb_cuda_awq_loss(struct qb_cuda_awq *a, enum qb_cuda_awq_loss_kind kind,
                                           const float *s, int bits, int group, double *loss,
                                           struct qb_err *err)
{
    int n_trials = kind == QB_CUDA_AWQ_MLP ? 2 : 1;
    int64_t n = a->n, rows = a->w_rows[0];
    size_t w_bytes = (size_t)rows * (size_t)a->in_cols * sizeof(float);
    size_t y_bytes = (size_t)n * (size_t)rows * sizeof(float);
    enum qb_status st = check_chain(a, kind, err);
    if (!st)
        st = check_group(a->in_cols, bits, group, err);
    if (!st)
        st = upload_to(a, &a->s, s, (size_t)a->in_cols * sizeof(float), "AWQ scales", err);
    for (int k = 0; !st && k < n_trials; k++) {
        st = reserve(a, &a->trial[k], w_bytes, "an AWQ trial", err);
        if (!st)
            st = reserve(a, &a->y[k], y_bytes, "AWQ trial outputs", err);
        if (!st)
            st = launch_trial(a, (const float *)a->w[k].p, rows, a->in_cols, bits, group,
                              (float *)a->trial[k].p, err);
        if (!st)
            st = sgemm_xwt(a, (const float *)a->trial[k].p, rows, a->in_cols,
                           (const float *)a->x.p, n, (float *)a->y[k].p, err);
    }
    if (st || kind == QB_CUDA_AWQ_LINEAR)
        return st ? st : mse(a, (const float *)a->y[0].p, (size_t)n * (size_t)a->out, loss, err);
    silu_mul_kernel<<<ew_grid(y_bytes / 4), EW_THREADS, 0, a->ctx->stream>>>(
        (float *)a->y[0].p, (const float *)a->y[1].p, y_bytes / 4);
    LAUNCH_CHECK();
    st = reserve(a, &a->y[2], (size_t)n * (size_t)a->out * sizeof(float), "AWQ MLP outputs",
                 err);
    if (!st)
        st = sgemm_xwt(a, (const float *)a->w[2].p, a->out, rows, (const float *)a->y[0].p, n,
                       (float *)a->y[2].p, err);
    if (!st)
        st = mse(a, (const float *)a->y[2].p, (size_t)n * (size_t)a->out, loss, err);
out:
    return st;
}

/* ---- range search ------------------------------------------------------------------------- */

/* The group's diagonal blocks of h / (s s^T) in f32, as the CPU driver rounds them. */
static float *gram_blocks(const double *h, const float *s, int64_t cols, int G)
{
    int64_t ng = cols / G;
    float *b = (float *)qb_malloc_array((size_t)(ng * G) * (size_t)G, sizeof(float));
    if (!b)
        return NULL;
    for (int64_t g = 0; g < ng; g++)
        for (int64_t i = g * G; i < (g + 1) * G; i++)
            for (int64_t j = g * G; j < (g + 1) * G; j++) {
                double v = h[i * cols + j];
                b[(i * G) + (j - g * G)] = (float)(s ? v / ((double)s[i] * s[j]) : v);
            }
    return b;
}

extern "C" enum qb_status qb_cuda_awq_range_search(struct qb_cuda_awq *a, const float *w,
                                                   int64_t rows, int64_t cols, int bits,
                                                   int group, const double *h, const float *s,
                                                   const struct qb_awq_range_opts *o, float *lo,
                                                   float *hi, struct qb_err *err)
{
    int64_t ng = cols / group;
    size_t lh_bytes = (size_t)(rows * ng) * sizeof(float);
    size_t smem = ((size_t)group * group + (size_t)AWQ_WARPS * RANGE_BATCH * group) *
                  sizeof(float);
    float *blocks = NULL;
    enum qb_status st = check_group(cols, bits, group, err);
    if (!st && (o->steps < 1 || o->grid < 1))
        st = qb_err_set(err, QB_ERR_INTERNAL, "GPU AWQ range search: %d steps of 1/%d",
                        o->steps, o->grid);
    if (st)
        return st;
    blocks = gram_blocks(h, s, cols, group);
    if (!blocks)
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory in the AWQ range search");
    st = upload_to(a, &a->rw, w, (size_t)rows * (size_t)cols * sizeof(float),
                   "AWQ range-search weights", err);
    if (!st)
        st = upload_to(a, &a->blocks, blocks, (size_t)cols * group * sizeof(float),
                       "AWQ Gram blocks", err);
    if (!st)
        st = reserve(a, &a->lo, lh_bytes, "AWQ ranges", err);
    if (!st)
        st = reserve(a, &a->hi, lh_bytes, "AWQ ranges", err);
    if (st)
        goto out;
    {
        struct range_args ra = {(const float *)a->rw.p, (const float *)a->blocks.p, rows, cols,
                                group, (1 << bits) - 1, o->grid, o->steps, o->asym,
                                (float *)a->lo.p, (float *)a->hi.p};
        dim3 grid((unsigned)ng, (unsigned)((rows + RANGE_ROWS - 1) / RANGE_ROWS));
        CUDA_CHECK(cudaFuncSetAttribute(range_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                        (int)smem));
        range_kernel<<<grid, AWQ_WARPS * 32, smem, a->ctx->stream>>>(ra);
        LAUNCH_CHECK();
    }
    st = qb_cuda_download(lo, a->lo.p, lh_bytes, err);
    if (!st)
        st = qb_cuda_download(hi, a->hi.p, lh_bytes, err);
    if (!st)
        st = qb_cuda_sync(a->ctx, err);
out:
    free(blocks);
    return st;
}
