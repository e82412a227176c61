/*
 * gptq_cuda.cu - GPTQ on the GPU (qb_cuda_gptq_quantize, see qb_cuda_calib.h),
 * step for step the algorithm of core/gptq.c.
 *
 * Factor (once per Hessian and options, cached in struct calib_factor):
 *   host:   diag H -> dead columns (H_ii = 0), act-order perm (same qsort as the
 *           CPU), mean diagonal (dead counted as 1)
 *   device: A[i][j] = H[perm i][perm j], dead diag -> 1, diag += damp * mean   (f64)
 *           cusolverDnDpotrf / Dpotri / Dpotrf, all CUBLAS_FILL_MODE_LOWER on the
 *           column-major view: the lower column-major triangle is the upper
 *           row-major one, so the last step leaves U (U^T U = A^-1) in A's
 *           row-major upper triangle; a non-PD pivot (devInfo > 0) retries with
 *           10x damping, up to 4 times, as the CPU does
 *           u = (float)U, zero below the diagonal
 *
 * Column loop, rows independent given U; W [rows][cols] f32 in permuted order,
 * dead columns zero. For each block of B = 128 columns [i1, i2):
 *
 *   gptq_block_kernel  grid: rows / 8 blocks of 8 warps; one warp per row
 *     smem  Us [B][B] = U[i1:i2, i1:i2]
 *     lane l holds w1[k] = W[row][i1 + l + 32k], k = 0..3 (the in-block copy)
 *     for li = 0..B-1 (column i = i1 + li):
 *        group start (i % group == 0, not static): params from W[row][i:i+group]
 *          (warp min/max over the global row, which lacks in-block updates,
 *          exactly like gptq.py and the CPU)
 *        x  = w1 of column li (shuffled from lane li % 32)
 *        q  = clamp(rint(x / scale) + zero);  dq = scale (q - zero)
 *        e  = (x - dq) / Us[li][li]
 *        w1[j] -= e * Us[li][j] for j > li   (no FMA contraction, as the C code)
 *     codes, dequantized values and Err [rows][B] = e are written per lane
 *   cuBLAS (f32, pedantic: no TF32)   W[:, i2:] -= Err U[i1:i2, i2:]
 *
 * Reconstruction errors (f64): D = W - W^ [rows][cols], E = D H (DGEMM),
 * err = 1/2 sum D .* E; for RTN the same with the RTN dequantization, computed
 * by group_kernel (one thread per (row, group), gptq.py's quantizer).
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "calib_cuda.cuh"

#define GPTQ_WARPS 8
#define GPTQ_LANE_COLS (QB_GPTQ_BLOCK / 32) /* columns of a block per lane */
#define EW_THREADS 256

/* ---- the quantizer (gptq.py's, as core/gptq.c) ---------------------------------------- */

struct qparam {
    float scale;
    int zero;
};

static __device__ float f16_round_dev(float x)
{
    float s = __half2float(__float2half_rn(x));
    if (!(s > 0))
        s = 0x1p-24f;
    return s > 65504.0f ? 65504.0f : s;
}

static __device__ struct qparam make_params(float xmin, float xmax, int maxq, int sym)
{
    struct qparam p;
    if (sym) {
        xmax = fmaxf(fabsf(xmin), xmax);
        if (xmin < 0)
            xmin = -xmax;
    }
    if (xmin == 0 && xmax == 0)
        xmin = -1, xmax = 1;
    p.scale = f16_round_dev(__fdiv_rn(__fsub_rn(xmax, xmin), (float)maxq));
    p.zero = sym ? (maxq + 1) / 2 : (int)rintf(__fdiv_rn(-xmin, p.scale));
    p.zero = p.zero < 0 ? 0 : p.zero > maxq ? maxq : p.zero;
    return p;
}

/* Params of v[0..n) by one thread; columns flagged in dead (NULL: none) count as 0. */
static __device__ struct qparam find_params_thread(const float *v, const uint8_t *dead, int n,
                                                   int maxq, int sym)
{
    float xmin = 0, xmax = 0;
    for (int i = 0; i < n; i++) {
        float x = dead && dead[i] ? 0.0f : v[i];
        xmin = fminf(xmin, x);
        xmax = fmaxf(xmax, x);
    }
    return make_params(xmin, xmax, maxq, sym);
}

/* Params of v[0..n) by a warp (min/max are exact in any order). */
static __device__ struct qparam find_params_warp(const float *v, int n, int maxq, int sym)
{
    float xmin = 0, xmax = 0;
    for (int i = threadIdx.x & 31; i < n; i += 32) {
        xmin = fminf(xmin, v[i]);
        xmax = fmaxf(xmax, v[i]);
    }
    for (int o = 16; o > 0; o >>= 1) {
        xmin = fminf(xmin, __shfl_xor_sync(0xffffffffu, xmin, o));
        xmax = fmaxf(xmax, __shfl_xor_sync(0xffffffffu, xmax, o));
    }
    return make_params(xmin, xmax, maxq, sym);
}

static __device__ int quant_code(float w, struct qparam p, int maxq)
{
    int q = (int)rintf(__fdiv_rn(w, p.scale)) + p.zero;
    return q < 0 ? 0 : q > maxq ? maxq : q;
}

static __device__ float dequant_code(int q, struct qparam p)
{
    return __fmul_rn(p.scale, (float)(q - p.zero));
}

/* ---- element-wise kernels ------------------------------------------------------------------ */

static unsigned ew_grid(size_t n)
{
    size_t g = (n + EW_THREADS - 1) / EW_THREADS;
    return (unsigned)QB_MIN(g, (size_t)65535 * 8);
}

#define GRID_STRIDE(i, n)                                                                     \
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < (n);                  \
         i += (size_t)gridDim.x * blockDim.x)

static __global__ void diag_kernel(const double *h, int64_t n, double *d)
{
    GRID_STRIDE(i, (size_t)n)
        d[i] = h[i * (size_t)n + i];
}

/* a[i][j] = h[perm i][perm j]; dead diagonal -> 1; diagonal += add. */
static __global__ void damped_kernel(const double *h, const int32_t *perm, int64_t n, double add,
                                     double *a)
{
    GRID_STRIDE(idx, (size_t)n * n) {
        size_t i = idx / n, j = idx % n;
        size_t pi = perm ? perm[i] : i, pj = perm ? perm[j] : j;
        double v = h[pi * n + pj];
        if (i == j)
            v = (v == 0 ? 1.0 : v) + add;
        a[idx] = v;
    }
}

static __global__ void upper_f32_kernel(const double *a, int64_t n, float *u)
{
    GRID_STRIDE(idx, (size_t)n * n) {
        size_t i = idx / n, j = idx % n;
        u[idx] = j >= i ? (float)a[idx] : 0.0f;
    }
}

/* work[r][j] = dead[perm j] ? 0 : w[r][perm j]. */
static __global__ void permute_kernel(const float *w, const int32_t *perm, const uint8_t *dead,
                                      int64_t rows, int64_t cols, float *work)
{
    GRID_STRIDE(idx, (size_t)rows * cols) {
        size_t r = idx / cols, j = idx % cols;
        size_t c = perm ? perm[j] : j;
        work[idx] = dead[c] ? 0.0f : w[r * cols + c];
    }
}

struct group_args {
    const float *w;         /* [rows][cols] original order */
    const uint8_t *dead;    /* [cols] or NULL: zero dead columns first */
    int64_t rows, cols;
    int group, maxq, sym;
    float *scales;          /* [rows][cols / group] */
    uint8_t *zeros;
    float *deq;             /* [rows][cols] or NULL */
};

/* One thread per (row, group): params of the group (dead columns as 0) and,
 * with deq, RTN's dequantized values. */
static __global__ void group_kernel(struct group_args a)
{
    int64_t ng = a.cols / a.group;
    GRID_STRIDE(idx, (size_t)(a.rows * ng)) {
        size_t r = idx / ng, g = idx % ng;
        const float *src = a.w + r * a.cols + g * a.group;
        struct qparam p = find_params_thread(src, a.dead ? a.dead + g * a.group : NULL, a.group,
                                             a.maxq, a.sym);
        a.scales[idx] = p.scale;
        a.zeros[idx] = (uint8_t)p.zero;
        if (a.deq)
            for (int j = 0; j < a.group; j++)
                a.deq[r * a.cols + g * a.group + j] = dequant_code(quant_code(src[j], p, a.maxq), p);
    }
}

static __global__ void diff_kernel(const float *w, const float *deq, size_t n, double *d)
{
    GRID_STRIDE(i, n)
        d[i] = (double)w[i] - (double)deq[i];
}

/* ---- the column loop --------------------------------------------------------------------- */

struct block_args {
    float *w;               /* [rows][cols] permuted working weights */
    const float *u;         /* [cols][cols] upper factor */
    const int32_t *perm;    /* [cols] or NULL */
    uint8_t *codes;         /* [rows][cols] original order */
    float *deq;             /* [rows][cols] original order */
    float *scales;          /* [rows][ng] */
    uint8_t *zeros;
    float *errs;            /* [rows][QB_GPTQ_BLOCK] */
    int64_t rows, cols;
    int i1, cnt;
    int maxq, group, sym, static_groups;
};

static __device__ __forceinline__ float pick(const float (&v)[GPTQ_LANE_COLS], int k)
{
    float r = v[0];
#pragma unroll
    for (int t = 1; t < GPTQ_LANE_COLS; t++)
        if (t == k)
            r = v[t];
    return r;
}

static __global__ void __launch_bounds__(GPTQ_WARPS * 32) gptq_block_kernel(struct block_args a)
{
    extern __shared__ float us[]; /* [cnt][cnt] */
    const int cnt = a.cnt, lane = threadIdx.x & 31;
    for (int idx = threadIdx.x; idx < cnt * cnt; idx += blockDim.x)
        us[idx] = a.u[(size_t)(a.i1 + idx / cnt) * a.cols + a.i1 + idx % cnt];
    __syncthreads();
    int64_t row = (int64_t)blockIdx.x * GPTQ_WARPS + (threadIdx.x >> 5);
    if (row >= a.rows)
        return;
    int64_t ng = a.cols / a.group;
    float *wr = a.w + row * a.cols;
    float w1[GPTQ_LANE_COLS], ev[GPTQ_LANE_COLS], dqv[GPTQ_LANE_COLS];
    int qv[GPTQ_LANE_COLS];
#pragma unroll
    for (int k = 0; k < GPTQ_LANE_COLS; k++) {
        int j = lane + 32 * k;
        w1[k] = j < cnt ? wr[a.i1 + j] : 0.0f;
        ev[k] = dqv[k] = 0.0f;
        qv[k] = 0;
    }
    struct qparam p = {1.0f, 0};
    if (!a.static_groups && a.i1 % a.group != 0) { /* a group begun in an earlier block */
        int64_t g = a.i1 / a.group;
        p.scale = a.scales[row * ng + g];
        p.zero = a.zeros[row * ng + g];
    }
    for (int li = 0; li < cnt; li++) {
        int i = a.i1 + li;
        if (a.static_groups) {
            int64_t g = (a.perm ? a.perm[i] : i) / a.group;
            p.scale = a.scales[row * ng + g];
            p.zero = a.zeros[row * ng + g];
        } else if (i % a.group == 0) {
            p = find_params_warp(wr + i, a.group, a.maxq, a.sym);
            if (lane == 0) {
                a.scales[row * ng + i / a.group] = p.scale;
                a.zeros[row * ng + i / a.group] = (uint8_t)p.zero;
            }
        }
        int owner = li & 31, kk = li >> 5;
        float x = __shfl_sync(0xffffffffu, pick(w1, kk), owner);
        int q = quant_code(x, p, a.maxq);
        float dq = dequant_code(q, p);
        float e = __fdiv_rn(__fsub_rn(x, dq), us[li * cnt + li]);
#pragma unroll
        for (int k = 0; k < GPTQ_LANE_COLS; k++) {
            int j = lane + 32 * k;
            if (k == kk && lane == owner) {
                qv[k] = q;
                dqv[k] = dq;
                ev[k] = e;
            }
            if (j > li && j < cnt)
                w1[k] = __fsub_rn(w1[k], __fmul_rn(e, us[li * cnt + j]));
        }
    }
#pragma unroll
    for (int k = 0; k < GPTQ_LANE_COLS; k++) {
        int j = lane + 32 * k;
        if (j >= cnt)
            continue;
        int64_t orig = a.perm ? a.perm[a.i1 + j] : a.i1 + j;
        a.codes[row * a.cols + orig] = (uint8_t)qv[k];
        a.deq[row * a.cols + orig] = dqv[k];
        a.errs[row * QB_GPTQ_BLOCK + j] = ev[k];
    }
}

/* ---- factor ------------------------------------------------------------------------------- */

void qb_calib_factor_free(struct calib_factor *f)
{
    qb_cuda_free(f->u);
    qb_cuda_free(f->perm);
    qb_cuda_free(f->dead);
    free(f->perm_host);
    free(f->dead_host);
    memset(f, 0, sizeof *f);
}

struct diag_sort {
    double d;
    int64_t i;
};

static int cmp_diag_desc(const void *a, const void *b)
{
    const struct diag_sort *x = (const struct diag_sort *)a, *y = (const struct diag_sort *)b;
    if (x->d != y->d)
        return x->d > y->d ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i; /* ties keep column order, as gptq.c */
}

/* Host side: dead flags, perm (act-order), mean diagonal; uploads perm and dead. */
static enum qb_status factor_host(struct qb_cuda_calib *c, struct calib_factor *f, int act_order,
                                  double *mean, struct qb_err *err)
{
    enum qb_status st = QB_OK;
    int64_t n = c->h_cols;
    double *diag = (double *)qb_malloc_array((size_t)n, sizeof(double)), *d_diag = NULL;
    struct diag_sort *ds = act_order ? (struct diag_sort *)qb_malloc_array((size_t)n, sizeof *ds)
                                     : NULL;
    int32_t *perm32 = act_order ? (int32_t *)qb_malloc_array((size_t)n, sizeof(int32_t)) : NULL;
    f->dead_host = (uint8_t *)qb_malloc_array((size_t)n, 1);
    f->perm_host = act_order ? (int64_t *)qb_malloc_array((size_t)n, sizeof(int64_t)) : NULL;
    if (!diag || !f->dead_host || (act_order && (!ds || !perm32 || !f->perm_host))) {
        st = qb_err_set(err, QB_ERR_NOMEM, "out of host memory for a Hessian's diagonal");
        goto out;
    }
    st = qb_cuda_alloc((void **)&d_diag, (size_t)n * sizeof(double), "a Hessian diagonal", err);
    if (st)
        goto out;
    diag_kernel<<<ew_grid((size_t)n), EW_THREADS, 0, c->ctx->stream>>>(c->h, n, d_diag);
    LAUNCH_CHECK();
    st = qb_cuda_sync(c->ctx, err);
    if (!st)
        st = qb_cuda_download(diag, d_diag, (size_t)n * sizeof(double), err);
    if (st)
        goto out;
    *mean = 0;
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(diag[i])) {
            st = qb_err_set(err, QB_ERR_NUMERIC, "Hessian diagonal %lld is %g: the calibration "
                            "activations overflowed", (long long)i, diag[i]);
            goto out;
        }
        f->dead_host[i] = diag[i] == 0;
        *mean += diag[i] == 0 ? 1.0 : diag[i];
    }
    *mean /= (double)n;
    if (act_order) {
        for (int64_t i = 0; i < n; i++)
            ds[i].d = diag[i], ds[i].i = i;
        qsort(ds, (size_t)n, sizeof *ds, cmp_diag_desc);
        for (int64_t i = 0; i < n; i++)
            f->perm_host[i] = perm32[i] = (int32_t)ds[i].i;
        st = qb_cuda_alloc((void **)&f->perm, (size_t)n * sizeof(int32_t), "a permutation", err);
        if (!st)
            st = qb_cuda_upload(f->perm, perm32, (size_t)n * sizeof(int32_t), err);
    }
    if (!st)
        st = qb_cuda_alloc((void **)&f->dead, (size_t)n, "dead columns", err);
    if (!st)
        st = qb_cuda_upload(f->dead, f->dead_host, (size_t)n, err);
out:
    qb_cuda_free(d_diag);
    free(diag);
    free(ds);
    free(perm32);
    return st;
}

/* One cuSOLVER step's devInfo: > 0 is a non-positive pivot. */
static enum qb_status solver_info(struct qb_cuda_calib *c, const int *d_info, int *info,
                                  struct qb_err *err)
{
    enum qb_status st = qb_cuda_sync(c->ctx, err);
    if (!st)
        st = qb_cuda_download(info, d_info, sizeof *info, err);
    if (!st && *info < 0)
        st = qb_err_set(err, QB_ERR_INTERNAL, "cuSOLVER: argument %d is invalid", -*info);
    return st;
}

/* A -> U (upper factor of A^-1, row-major) in place; *pivot > 0 when A is not PD. */
static enum qb_status inverse_factor(struct qb_cuda_calib *c, double *a, int n, double *work,
                                     int lwork, int *d_info, int *pivot, struct qb_err *err)
{
    enum qb_status st = QB_OK;
    const cublasFillMode_t lo = CUBLAS_FILL_MODE_LOWER;
    *pivot = 0;
    CUSOLVER_CHECK(cusolverDnDpotrf(c->solver, lo, n, a, n, work, lwork, d_info));
    st = solver_info(c, d_info, pivot, err);
    if (st || *pivot)
        goto out;
    CUSOLVER_CHECK(cusolverDnDpotri(c->solver, lo, n, a, n, work, lwork, d_info));
    st = solver_info(c, d_info, pivot, err);
    if (st || *pivot)
        goto out;
    CUSOLVER_CHECK(cusolverDnDpotrf(c->solver, lo, n, a, n, work, lwork, d_info));
    st = solver_info(c, d_info, pivot, err);
out:
    return st;
}

static enum qb_status factor_device(struct qb_cuda_calib *c, struct calib_factor *f, double damp,
                                    double mean, struct qb_err *err)
{
    enum qb_status st = QB_OK;
    int n = (int)c->h_cols, lwork = 0, lw2 = 0, pivot = 0;
    size_t nn = (size_t)n * n;
    double *a = NULL, *work = NULL;
    int *d_info = NULL;
    st = qb_cuda_alloc((void **)&a, nn * sizeof(double), "the damped Hessian", err);
    if (!st)
        st = qb_cuda_alloc((void **)&d_info, sizeof(int), "cuSOLVER info", err);
    if (st)
        goto out;
    CUSOLVER_CHECK(cusolverDnDpotrf_bufferSize(c->solver, CUBLAS_FILL_MODE_LOWER, n, a, n,
                                               &lwork));
    CUSOLVER_CHECK(cusolverDnDpotri_bufferSize(c->solver, CUBLAS_FILL_MODE_LOWER, n, a, n, &lw2));
    lwork = QB_MAX(lwork, lw2);
    st = qb_cuda_alloc((void **)&work, (size_t)QB_MAX(lwork, 1) * sizeof(double),
                       "cuSOLVER workspace", err);
    for (int tries = 0; !st && tries < 5; tries++) {
        damped_kernel<<<ew_grid(nn), EW_THREADS, 0, c->ctx->stream>>>(c->h, f->perm, n,
                                                                      damp * mean, a);
        LAUNCH_CHECK();
        st = inverse_factor(c, a, n, work, lwork, d_info, &pivot, err);
        if (st || !pivot)
            break;
        damp *= 10;
    }
    if (st)
        goto out;
    if (pivot) {
        st = qb_err_set(err, QB_ERR_NUMERIC, "Hessian is not positive definite even with "
                        "damping %g of the mean diagonal (pivot %d); raise --damp", damp / 10,
                        pivot);
        goto out;
    }
    qb_calib_note_mem(c);
    st = qb_cuda_alloc((void **)&f->u, nn * sizeof(float), "the Hessian-inverse factor", err);
    if (st)
        goto out;
    upper_f32_kernel<<<ew_grid(nn), EW_THREADS, 0, c->ctx->stream>>>(a, n, f->u);
    LAUNCH_CHECK();
    st = qb_cuda_sync(c->ctx, err);
out:
    qb_cuda_free(a);
    qb_cuda_free(work);
    qb_cuda_free(d_info);
    return st;
}

/* The factor of the current Hessian for these options (cached). */
static enum qb_status get_factor(struct qb_cuda_calib *c, const struct qb_gptq_opts *o,
                                 struct qb_err *err)
{
    struct calib_factor *f = &c->fac;
    double damp = o->damp > 0 ? o->damp : QB_GPTQ_DEFAULT_DAMP, mean = 0;
    enum qb_status st;
    if (f->valid && f->hess_gen == c->h_gen && f->damp == damp && f->act_order == o->act_order)
        return QB_OK;
    qb_calib_factor_free(f);
    if (!c->h_finished)
        return qb_err_set(err, QB_ERR_INTERNAL, "GPTQ on an unfinished Hessian");
    st = factor_host(c, f, o->act_order, &mean, err);
    if (!st)
        st = factor_device(c, f, damp, mean, err);
    if (st) {
        qb_calib_factor_free(f);
        return st;
    }
    f->valid = 1;
    f->hess_gen = c->h_gen;
    f->damp = damp;
    f->act_order = o->act_order;
    f->cols = c->h_cols;
    return QB_OK;
}

/* ---- quantize ------------------------------------------------------------------------------ */

struct gptq_bufs {
    float *w, *work, *deq, *errs, *scales;
    uint8_t *codes, *zeros;
    double *d, *e;
};

static void bufs_free(struct gptq_bufs *b)
{
    qb_cuda_free(b->w);
    qb_cuda_free(b->work);
    qb_cuda_free(b->deq);
    qb_cuda_free(b->errs);
    qb_cuda_free(b->scales);
    qb_cuda_free(b->codes);
    qb_cuda_free(b->zeros);
    qb_cuda_free(b->d);
    qb_cuda_free(b->e);
    memset(b, 0, sizeof *b);
}

static enum qb_status bufs_alloc(struct gptq_bufs *b, const float *w, int64_t rows, int64_t cols,
                                 int group, struct qb_err *err)
{
    size_t n = (size_t)rows * cols, ng = (size_t)rows * (cols / group);
    enum qb_status st = qb_cuda_alloc((void **)&b->w, n * 4, "GPTQ weights", err);
    if (!st)
        st = qb_cuda_alloc((void **)&b->work, n * 4, "GPTQ working weights", err);
    if (!st)
        st = qb_cuda_alloc((void **)&b->deq, n * 4, "GPTQ dequantized weights", err);
    if (!st)
        st = qb_cuda_alloc((void **)&b->errs, (size_t)rows * QB_GPTQ_BLOCK * 4, "GPTQ errors",
                           err);
    if (!st)
        st = qb_cuda_alloc((void **)&b->scales, ng * 4, "GPTQ scales", err);
    if (!st)
        st = qb_cuda_alloc((void **)&b->codes, n, "GPTQ codes", err);
    if (!st)
        st = qb_cuda_alloc((void **)&b->zeros, ng, "GPTQ zeros", err);
    if (!st)
        st = qb_cuda_upload(b->w, w, n * 4, err);
    return st;
}

/* The column loop over every block (see the top comment). */
static enum qb_status column_loop(struct qb_cuda_calib *c, struct gptq_bufs *b, int64_t rows,
                                  int64_t cols, const struct qb_gptq_opts *o, struct qb_err *err)
{
    enum qb_status st = QB_OK;
    const float minus_one = -1.0f, one = 1.0f;
    size_t smem = (size_t)QB_GPTQ_BLOCK * QB_GPTQ_BLOCK * sizeof(float);
    struct block_args a = {b->work, c->fac.u, c->fac.perm, b->codes, b->deq, b->scales, b->zeros,
                           b->errs, rows, cols, 0, 0, (1 << o->bits) - 1, o->group, o->sym,
                           o->static_groups};
    unsigned grid = (unsigned)((rows + GPTQ_WARPS - 1) / GPTQ_WARPS);
    CUDA_CHECK(cudaFuncSetAttribute(gptq_block_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    (int)smem));
    for (int64_t i1 = 0; i1 < cols; i1 += QB_GPTQ_BLOCK) {
        int64_t i2 = QB_MIN(i1 + QB_GPTQ_BLOCK, cols);
        a.i1 = (int)i1;
        a.cnt = (int)(i2 - i1);
        gptq_block_kernel<<<grid, GPTQ_WARPS * 32, (size_t)a.cnt * a.cnt * sizeof(float),
                            c->ctx->stream>>>(a);
        LAUNCH_CHECK();
        if (i2 == cols)
            break;
        /* column-major: W^T[i2:, :] (cols-i2 x rows, ld cols) -=
         *   U^T[i2:, i1:i2] (ld cols) . Err^T (cnt x rows, ld BLOCK) */
        CUBLAS_CHECK(cublasGemmEx(c->ctx->blas, CUBLAS_OP_N, CUBLAS_OP_N, (int)(cols - i2),
                                  (int)rows, a.cnt, &minus_one, c->fac.u + i1 * cols + i2,
                                  CUDA_R_32F, (int)cols, b->errs, CUDA_R_32F, QB_GPTQ_BLOCK,
                                  &one, b->work + i2, CUDA_R_32F, (int)cols,
                                  CUBLAS_COMPUTE_32F_PEDANTIC, CUBLAS_GEMM_DEFAULT));
    }
out:
    return st;
}

/* 1/2 sum_r d_r^T H d_r for d = w - deq (device [rows][cols]). */
static enum qb_status recon_error(struct qb_cuda_calib *c, struct gptq_bufs *b, int64_t rows,
                                  int64_t cols, const float *deq, double *out, struct qb_err *err)
{
    enum qb_status st = QB_OK;
    const double one = 1.0, zero = 0.0;
    size_t n = (size_t)rows * cols;
    double dot = 0;
    if (!b->d) {
        st = qb_cuda_alloc((void **)&b->d, n * sizeof(double), "weight differences", err);
        if (!st)
            st = qb_cuda_alloc((void **)&b->e, n * sizeof(double), "weight differences", err);
        if (st)
            return st;
    }
    diff_kernel<<<ew_grid(n), EW_THREADS, 0, c->ctx->stream>>>(b->w, deq, n, b->d);
    LAUNCH_CHECK();
    /* column-major E^T (cols x rows) = H (cols x cols, symmetric) . D^T (cols x rows) */
    CUBLAS_CHECK(cublasDgemm(c->ctx->blas, CUBLAS_OP_N, CUBLAS_OP_N, (int)cols, (int)rows,
                             (int)cols, &one, c->h, (int)cols, b->d, (int)cols, &zero, b->e,
                             (int)cols));
    CUBLAS_CHECK(cublasDdot(c->ctx->blas, (int)n, b->d, 1, b->e, 1, &dot));
    *out = 0.5 * dot;
    qb_calib_note_mem(c);
out:
    return st;
}

static enum qb_status check_args(const struct qb_cuda_calib *c, int64_t rows, int64_t cols,
                                 const struct qb_gptq_opts *o, struct qb_err *err)
{
    enum qb_status st = qb_qresult_check_shape(cols, o->bits, o->group, err);
    if (st)
        return st;
    if (cols != c->h_cols || !c->h_finished)
        return qb_err_set(err, QB_ERR_INTERNAL, "GPTQ of %lld columns with a %lld-column "
                          "Hessian (finished %d)", (long long)cols, (long long)c->h_cols,
                          c->h_finished);
    if (rows < 1 || rows > 0x7fffffff || cols > 0x7fffffff || (size_t)rows * cols >= 1ull << 31)
        return qb_err_set(err, QB_ERR_UNSUPPORTED, "GPU GPTQ: a %lldx%lld linear is too large "
                          "(2^31 weights at most); use --backend cpu", (long long)rows,
                          (long long)cols);
    return QB_OK;
}

static enum qb_status download_result(struct gptq_bufs *b, struct qb_qresult *out, float *deq,
                                      struct qb_err *err)
{
    size_t n = (size_t)out->rows * out->cols, ng = (size_t)out->rows * (out->cols / out->group);
    enum qb_status st = qb_cuda_download(out->codes, b->codes, n, err);
    if (!st)
        st = qb_cuda_download(out->scales, b->scales, ng * sizeof(float), err);
    if (!st)
        st = qb_cuda_download(out->zeros, b->zeros, ng, err);
    if (!st && deq)
        st = qb_cuda_download(deq, b->deq, n * sizeof(float), err);
    return st;
}

static void group_launch(struct qb_cuda_calib *c, const struct group_args *g)
{
    size_t n = (size_t)g->rows * (size_t)(g->cols / g->group);
    group_kernel<<<ew_grid(n), EW_THREADS, 0, c->ctx->stream>>>(*g);
}

extern "C" enum qb_status qb_cuda_gptq_quantize(struct qb_cuda_calib *c, const float *w,
                                                int64_t rows, int64_t cols,
                                                const struct qb_gptq_opts *o,
                                                struct qb_qresult *out, float *deq,
                                                double *recon_err, double *rtn_err,
                                                struct qb_err *err)
{
    struct gptq_bufs b;
    int with_gidx = o->act_order && !o->static_groups, maxq = (1 << o->bits) - 1;
    size_t n = (size_t)rows * cols;
    enum qb_status st = check_args(c, rows, cols, o, err);
    memset(&b, 0, sizeof b);
    memset(out, 0, sizeof *out);
    if (st)
        return st;
    st = qb_qresult_alloc(out, rows, cols, o->bits, o->group, o->sym, with_gidx, err);
    if (!st)
        st = get_factor(c, o, err);
    if (!st)
        st = bufs_alloc(&b, w, rows, cols, o->group, err);
    if (st)
        goto out;
    permute_kernel<<<ew_grid(n), EW_THREADS, 0, c->ctx->stream>>>(b.w, c->fac.perm, c->fac.dead,
                                                                  rows, cols, b.work);
    LAUNCH_CHECK();
    if (o->static_groups) {
        struct group_args g = {b.w, c->fac.dead, rows, cols, o->group, maxq, o->sym, b.scales,
                               b.zeros, NULL};
        group_launch(c, &g);
        LAUNCH_CHECK();
    }
    st = column_loop(c, &b, rows, cols, o, err);
    if (!st)
        st = download_result(&b, out, deq, err);
    if (!st && with_gidx)
        for (int64_t j = 0; j < cols; j++)
            out->g_idx[c->fac.perm_host[j]] = (int32_t)(j / o->group);
    if (!st && recon_err)
        st = recon_error(c, &b, rows, cols, b.deq, recon_err, err);
    if (!st && rtn_err) { /* RTN on the original weights, into the scratch of the result */
        struct group_args g = {b.w, NULL, rows, cols, o->group, maxq, o->sym, b.scales, b.zeros,
                               b.deq};
        group_launch(c, &g);
        LAUNCH_CHECK();
        st = recon_error(c, &b, rows, cols, b.deq, rtn_err, err);
    }
    if (!st)
        st = qb_cuda_sync(c->ctx, err);
out:
    bufs_free(&b);
    if (st)
        qb_qresult_free(out);
    return st;
}
