/*
 * gptq.c - GPTQ, its quantizer, RTN with the same grid, Hessians and the
 * Cholesky helpers (see gptq.h).
 */
#include "gptq.h"

#include <math.h>
#include <string.h>

#include "dtype.h"
#include "linear.h"

/* ---- results ---- */

enum qb_status qb_qresult_check_shape(int64_t cols, int bits, int group, struct qb_err *err)
{
    if (bits != 2 && bits != 3 && bits != 4 && bits != 8)
        return qb_err_set(err, QB_ERR_UNSUPPORTED, "%d-bit groups are not supported (2, 3, 4 "
                          "or 8)", bits);
    if (group < 8 || group % 8 != 0 || cols % group != 0)
        return qb_err_set(err, QB_ERR_UNSUPPORTED, "group size %d does not divide the %lld input "
                          "columns in multiples of 8; pick --group 32, 64 or 128", group,
                          (long long)cols);
    return QB_OK;
}

enum qb_status qb_qresult_alloc(struct qb_qresult *r, int64_t rows, int64_t cols, int bits,
                                int group, int sym, int with_g_idx, struct qb_err *err)
{
    memset(r, 0, sizeof *r);
    enum qb_status st = qb_qresult_check_shape(cols, bits, group, err);
    if (st)
        return st;
    size_t n = (size_t)rows * (size_t)cols, ng = (size_t)rows * (size_t)(cols / group);
    r->rows = rows, r->cols = cols, r->bits = bits, r->group = group, r->sym = sym;
    r->codes = qb_malloc_array(n, 1);
    r->scales = qb_malloc_array(ng, sizeof(float));
    r->zeros = qb_malloc_array(ng, 1);
    r->g_idx = with_g_idx ? qb_malloc_array((size_t)cols, sizeof(int32_t)) : NULL;
    if (!r->codes || !r->scales || !r->zeros || (with_g_idx && !r->g_idx)) {
        qb_qresult_free(r);
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory for a %lldx%lld quantized linear",
                          (long long)rows, (long long)cols);
    }
    return QB_OK;
}

void qb_qresult_free(struct qb_qresult *r)
{
    if (!r)
        return;
    free(r->codes);
    free(r->scales);
    free(r->zeros);
    free(r->g_idx);
    memset(r, 0, sizeof *r);
}

void qb_qresult_dequant(const struct qb_qresult *r, float *w)
{
    int64_t ng = r->cols / r->group;
    for (int64_t i = 0; i < r->rows; i++) {
        const uint8_t *c = r->codes + i * r->cols;
        const float *s = r->scales + i * ng;
        const uint8_t *z = r->zeros + i * ng;
        for (int64_t j = 0; j < r->cols; j++) {
            int64_t g = qb_qresult_group_of(r, j);
            w[i * r->cols + j] = s[g] * (float)((int)c[j] - (int)z[g]);
        }
    }
}

/* ---- quantizer ---- */

struct qparam {
    float scale;
    int zero;
};

static float f16_round(float x)
{
    float s = qb_f16_to_f32(qb_f32_to_f16(x));
    if (!(s > 0))
        s = 0x1p-24f; /* smallest f16 subnormal: never divide by zero */
    return s > 65504.0f ? 65504.0f : s;
}

/* gptq.py Quantizer.find_params (weight mode) over v[0..n). */
static struct qparam find_params(const float *v, int64_t n, int maxq, int sym)
{
    float xmin = 0, xmax = 0;
    for (int64_t i = 0; i < n; i++) {
        xmin = fminf(xmin, v[i]);
        xmax = fmaxf(xmax, v[i]);
    }
    if (sym) {
        xmax = fmaxf(fabsf(xmin), xmax);
        if (xmin < 0)
            xmin = -xmax;
    }
    if (xmin == 0 && xmax == 0)
        xmin = -1, xmax = 1;
    struct qparam p;
    p.scale = f16_round((xmax - xmin) / (float)maxq);
    p.zero = sym ? (maxq + 1) / 2 : (int)rintf(-xmin / p.scale);
    p.zero = p.zero < 0 ? 0 : p.zero > maxq ? maxq : p.zero;
    return p;
}

static int quant_code(float w, struct qparam p, int maxq)
{
    int q = (int)rintf(w / p.scale) + p.zero;
    return q < 0 ? 0 : q > maxq ? maxq : q;
}

static float dequant_code(int q, struct qparam p)
{
    return p.scale * (float)(q - p.zero);
}

enum qb_status qb_rtn_group_quantize(const float *w, int64_t rows, int64_t cols, int bits,
                                     int group, int sym, struct qb_qresult *out, float *deq,
                                     struct qb_err *err)
{
    enum qb_status st = qb_qresult_alloc(out, rows, cols, bits, group, sym, 0, err);
    if (st)
        return st;
    int maxq = (1 << bits) - 1;
    int64_t ng = cols / group;
    for (int64_t i = 0; i < rows; i++) {
        for (int64_t g = 0; g < ng; g++) {
            const float *v = w + i * cols + g * group;
            struct qparam p = find_params(v, group, maxq, sym);
            out->scales[i * ng + g] = p.scale;
            out->zeros[i * ng + g] = (uint8_t)p.zero;
            for (int j = 0; j < group; j++) {
                int q = quant_code(v[j], p, maxq);
                out->codes[i * cols + g * group + j] = (uint8_t)q;
                if (deq)
                    deq[i * cols + g * group + j] = dequant_code(q, p);
            }
        }
    }
    return QB_OK;
}

/* ---- Hessian ---- */

enum qb_status qb_hessian_init(struct qb_hessian *h, int64_t cols, struct qb_err *err)
{
    memset(h, 0, sizeof *h);
    h->cols = cols;
    h->sum = qb_calloc_array((size_t)cols * (size_t)cols, sizeof(double));
    if (!h->sum)
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory for a %lldx%lld Hessian",
                          (long long)cols, (long long)cols);
    return QB_OK;
}

struct add_ctx {
    double *sum;
    const float *g;
    int64_t n;
};

static void add_rows(void *p, int64_t b, int64_t e)
{
    struct add_ctx *c = p;
    for (int64_t i = b * c->n; i < e * c->n; i++)
        c->sum[i] += (double)c->g[i];
}

enum qb_status qb_hessian_add(struct qb_hessian *h, const float *x, int64_t n,
                              struct qb_pool *pool, struct qb_err *err)
{
    int64_t d = h->cols;
    float *xt = qb_aligned_alloc((size_t)d * (size_t)n * sizeof(float));
    float *g = qb_aligned_alloc((size_t)d * (size_t)d * sizeof(float));
    if (!xt || !g) {
        free(xt);
        free(g);
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory accumulating a Hessian");
    }
    for (int64_t t = 0; t < n; t++)
        for (int64_t j = 0; j < d; j++)
            xt[j * n + t] = x[t * d + j];
    /* g = xt . xt^T through the optimised matmul: xt viewed as an f32 linear [d][n] */
    struct qb_linear view = {.fmt = QB_WFMT_F32, .rows = d, .cols = n, .data = xt,
                             .data_bytes = (size_t)d * (size_t)n * sizeof(float)};
    qb_linear_matmul(&view, xt, d, g, pool);
    struct add_ctx c = {h->sum, g, d};
    qb_pool_for(pool, d, 16, add_rows, &c);
    h->n += n;
    free(xt);
    free(g);
    return QB_OK;
}

void qb_hessian_finish(const struct qb_hessian *h, double *out)
{
    size_t nn = (size_t)h->cols * (size_t)h->cols;
    double f = h->n > 0 ? 2.0 / (double)h->n : 0.0;
    for (size_t i = 0; i < nn; i++)
        out[i] = h->sum[i] * f;
}

void qb_hessian_free(struct qb_hessian *h)
{
    if (!h)
        return;
    free(h->sum);
    memset(h, 0, sizeof *h);
}

/* ---- Cholesky (right-looking, trailing update split over rows) ---- */

struct chol_ctx {
    double *a;
    int64_t n, k;
};

static void chol_update(void *p, int64_t b, int64_t e)
{
    struct chol_ctx *c = p;
    int64_t n = c->n, k = c->k;
    for (int64_t i = c->k + 1 + b; i < c->k + 1 + e; i++) {
        double lik = c->a[i * n + k];
        double *ai = c->a + i * n;
        const double *lk = c->a; /* column k of rows k+1..i */
        for (int64_t j = k + 1; j <= i; j++)
            ai[j] -= lik * lk[j * n + k];
    }
}

enum qb_status qb_cholesky_lower(double *a, int64_t n, struct qb_pool *pool, struct qb_err *err)
{
    for (int64_t k = 0; k < n; k++) {
        double d = a[k * n + k];
        if (!(d > 0) || !isfinite(d))
            return qb_err_set(err, QB_ERR_NUMERIC, "matrix is not positive definite (pivot %lld "
                              "is %g)", (long long)k, d);
        d = sqrt(d);
        a[k * n + k] = d;
        for (int64_t i = k + 1; i < n; i++)
            a[i * n + k] /= d;
        struct chol_ctx c = {a, n, k};
        qb_pool_for(pool, n - k - 1, 32, chol_update, &c);
    }
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = i + 1; j < n; j++)
            a[i * n + j] = 0;
    return QB_OK;
}

struct inv_ctx {
    const double *l; /* lower factor */
    double *m;       /* out: column j of L^-1 stored as row j (i.e. m = L^-T, upper) */
    int64_t n;
};

/* Row j of m = (L^-1)[:, j]: solve L y = e_j (y_i = 0 for i < j). */
static void inv_cols(void *p, int64_t b, int64_t e)
{
    struct inv_ctx *c = p;
    int64_t n = c->n;
    for (int64_t j = b; j < e; j++) {
        double *y = c->m + j * n;
        memset(y, 0, (size_t)n * sizeof(double));
        for (int64_t i = j; i < n; i++) {
            double s = i == j ? 1.0 : 0.0;
            const double *li = c->l + i * n;
            for (int64_t k = j; k < i; k++)
                s -= li[k] * y[k];
            y[i] = s / li[i];
        }
    }
}

struct gram_ctx {
    const double *m; /* m = L^-T: row j is column j of L^-1 */
    double *out;
    int64_t n;
};

/* inverse(A) = L^-T L^-1: out[i][j] = sum_k (L^-1)[k][i] (L^-1)[k][j] = m[i] . m[j] */
static void gram_rows(void *p, int64_t b, int64_t e)
{
    struct gram_ctx *c = p;
    int64_t n = c->n;
    for (int64_t i = b; i < e; i++) {
        for (int64_t j = 0; j <= i; j++) {
            double s = 0;
            for (int64_t k = i; k < n; k++) /* both rows are zero below max(i, j) = i */
                s += c->m[i * n + k] * c->m[j * n + k];
            c->out[i * n + j] = s;
        }
    }
}

enum qb_status qb_cholesky_inverse_upper(double *a, int64_t n, double *out, struct qb_pool *pool,
                                         struct qb_err *err)
{
    enum qb_status st = qb_cholesky_lower(a, n, pool, err);
    if (st)
        return st;
    double *m = qb_malloc_array((size_t)n * (size_t)n, sizeof(double));
    if (!m)
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory inverting a %lldx%lld matrix",
                          (long long)n, (long long)n);
    struct inv_ctx ic = {a, m, n};
    qb_pool_for(pool, n, 8, inv_cols, &ic);
    struct gram_ctx gc = {m, out, n};
    qb_pool_for(pool, n, 8, gram_rows, &gc);
    for (int64_t i = 0; i < n; i++)
        for (int64_t j = i + 1; j < n; j++)
            out[i * n + j] = out[j * n + i];
    free(m);
    st = qb_cholesky_lower(out, n, pool, err);
    if (st)
        return st;
    for (int64_t i = 0; i < n; i++) /* transpose to the upper factor */
        for (int64_t j = i + 1; j < n; j++) {
            out[i * n + j] = out[j * n + i];
            out[j * n + i] = 0;
        }
    return QB_OK;
}

/* ---- GPTQ ---- */

struct gptq_ctx {
    const float *w;        /* [rows][cols] original order, dead columns zeroed */
    const float *u;        /* [cols][cols] upper factor of H^-1 (permuted order) */
    const int64_t *perm;   /* permuted position j -> original column; NULL = identity */
    const struct gptq_opts_i {
        int maxq, group, sym, static_groups;
    } *o;
    int64_t cols;
    struct qb_qresult *r;
    float *deq;
    int oom;               /* a worker could not allocate its scratch */
};

static void gptq_row(const struct gptq_ctx *c, int64_t row, float *w, float *w1, float *errs)
{
    int64_t cols = c->cols, ng = cols / c->o->group;
    int maxq = c->o->maxq, group = c->o->group;
    struct qb_qresult *r = c->r;
    float *scales = r->scales + row * ng;
    uint8_t *zeros = r->zeros + row * ng;
    const float *src = c->w + row * cols;
    for (int64_t j = 0; j < cols; j++)
        w[j] = src[c->perm ? c->perm[j] : j];
    if (c->o->static_groups) {
        for (int64_t g = 0; g < ng; g++) {
            struct qparam p = find_params(src + g * group, group, maxq, c->o->sym);
            scales[g] = p.scale;
            zeros[g] = (uint8_t)p.zero;
        }
    }
    struct qparam p = {1, 0};
    for (int64_t i1 = 0; i1 < cols; i1 += QB_GPTQ_BLOCK) {
        int64_t i2 = QB_MIN(i1 + QB_GPTQ_BLOCK, cols), cnt = i2 - i1;
        memcpy(w1, w + i1, (size_t)cnt * sizeof(float));
        for (int64_t i = i1; i < i2; i++) {
            int64_t orig = c->perm ? c->perm[i] : i, g;
            if (c->o->static_groups) {
                g = orig / group;
                p.scale = scales[g], p.zero = zeros[g];
            } else {
                g = i / group;
                if (i % group == 0) { /* like gptq.py: on W, which lacks in-block updates */
                    p = find_params(w + i, group, maxq, c->o->sym);
                    scales[g] = p.scale;
                    zeros[g] = (uint8_t)p.zero;
                }
            }
            const float *ui = c->u + i * cols;
            float x = w1[i - i1];
            int q = quant_code(x, p, maxq);
            float dq = dequant_code(q, p);
            r->codes[row * cols + orig] = (uint8_t)q;
            if (c->deq)
                c->deq[row * cols + orig] = dq;
            float e = (x - dq) / ui[i];
            for (int64_t j = i + 1; j < i2; j++)
                w1[j - i1] -= e * ui[j];
            errs[i - i1] = e;
        }
        for (int64_t i = i1; i < i2; i++) { /* lazy batch update of the columns after */
            const float *ui = c->u + i * cols;
            float e = errs[i - i1];
            for (int64_t j = i2; j < cols; j++)
                w[j] -= e * ui[j];
        }
    }
}

static void gptq_rows(void *p, int64_t b, int64_t e)
{
    struct gptq_ctx *c = p;
    float *buf = malloc(((size_t)c->cols * 2 + QB_GPTQ_BLOCK) * sizeof(float));
    if (!buf) {
        __atomic_store_n(&c->oom, 1, __ATOMIC_RELAXED);
        return;
    }
    for (int64_t row = b; row < e; row++)
        gptq_row(c, row, buf, buf + c->cols, buf + 2 * c->cols);
    free(buf);
}

struct diag_sort {
    double d;
    int64_t i;
};

static int cmp_diag_desc(const void *a, const void *b)
{
    const struct diag_sort *x = a, *y = b;
    if (x->d != y->d)
        return x->d > y->d ? -1 : 1;
    return x->i < y->i ? -1 : x->i > y->i; /* stable: ties keep column order */
}

/* perm[j] = original column at position j (descending diagonal). */
static enum qb_status act_order_perm(const double *h, int64_t n, int64_t *perm,
                                     struct qb_err *err)
{
    struct diag_sort *ds = qb_malloc_array((size_t)n, sizeof *ds);
    if (!ds)
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory");
    for (int64_t i = 0; i < n; i++)
        ds[i].d = h[i * n + i], ds[i].i = i;
    qsort(ds, (size_t)n, sizeof *ds, cmp_diag_desc);
    for (int64_t i = 0; i < n; i++)
        perm[i] = ds[i].i;
    free(ds);
    return QB_OK;
}

/* Damped, permuted Hessian -> f32 upper factor of its inverse. */
static enum qb_status hinv_factor(const double *h, int64_t n, const int64_t *perm, double damp,
                                  struct qb_pool *pool, float *u, struct qb_err *err)
{
    size_t nn = (size_t)n * (size_t)n;
    double *a = qb_malloc_array(nn, sizeof(double)), *f = qb_malloc_array(nn, sizeof(double));
    enum qb_status st = QB_OK;
    if (!a || !f) {
        st = qb_err_set(err, QB_ERR_NOMEM, "out of memory for a %lldx%lld Hessian inverse",
                        (long long)n, (long long)n);
        goto out;
    }
    double mean = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = h[i * n + i];
        mean += d == 0 ? 1.0 : d; /* dead columns count as 1, as gptq.py sets them first */
    }
    mean /= (double)n;
    for (int tries = 0; tries < 5; tries++) {
        for (int64_t i = 0; i < n; i++) {
            int64_t pi = perm ? perm[i] : i;
            for (int64_t j = 0; j < n; j++)
                a[i * n + j] = h[pi * n + (perm ? perm[j] : j)];
            if (a[i * n + i] == 0)
                a[i * n + i] = 1; /* dead column */
            a[i * n + i] += damp * mean;
        }
        st = qb_cholesky_inverse_upper(a, n, f, pool, err);
        if (st != QB_ERR_NUMERIC)
            break;
        damp *= 10;
    }
    if (st)
        goto out;
    for (size_t i = 0; i < nn; i++)
        u[i] = (float)f[i];
out:
    free(a);
    free(f);
    return st;
}

enum qb_status qb_gptq_quantize(const float *w, int64_t rows, int64_t cols, const double *h,
                                const struct qb_gptq_opts *o, struct qb_pool *pool,
                                struct qb_qresult *out, float *deq, struct qb_err *err)
{
    int64_t *perm = NULL;
    float *u = NULL, *wz = NULL;
    int with_gidx = o->act_order && !o->static_groups;
    enum qb_status st = qb_qresult_alloc(out, rows, cols, o->bits, o->group, o->sym, with_gidx,
                                         err);
    if (st)
        return st;
    u = qb_malloc_array((size_t)cols * (size_t)cols, sizeof(float));
    wz = qb_malloc_array((size_t)rows * (size_t)cols, sizeof(float));
    perm = o->act_order ? qb_malloc_array((size_t)cols, sizeof *perm) : NULL;
    if (!u || !wz || (o->act_order && !perm)) {
        st = qb_err_set(err, QB_ERR_NOMEM, "out of memory for GPTQ on a %lldx%lld linear",
                        (long long)rows, (long long)cols);
        goto out;
    }
    memcpy(wz, w, (size_t)rows * (size_t)cols * sizeof(float));
    for (int64_t j = 0; j < cols; j++) {
        if (h[j * cols + j] == 0)
            for (int64_t i = 0; i < rows; i++)
                wz[i * cols + j] = 0; /* dead input: its weights never matter */
    }
    if (perm) {
        st = act_order_perm(h, cols, perm, err);
        if (st)
            goto out;
    }
    st = hinv_factor(h, cols, perm, o->damp > 0 ? o->damp : QB_GPTQ_DEFAULT_DAMP, pool, u, err);
    if (st)
        goto out;
    if (with_gidx)
        for (int64_t j = 0; j < cols; j++)
            out->g_idx[perm[j]] = (int32_t)(j / o->group);
    struct gptq_opts_i oi = {(1 << o->bits) - 1, o->group, o->sym, o->static_groups};
    struct gptq_ctx c = {wz, u, perm, &oi, cols, out, deq, 0};
    qb_pool_for(pool, rows, 4, gptq_rows, &c);
    if (c.oom)
        st = qb_err_set(err, QB_ERR_NOMEM, "out of memory in GPTQ");
out:
    free(perm);
    free(u);
    free(wz);
    if (st)
        qb_qresult_free(out);
    return st;
}

/* ---- reconstruction error ---- */

struct recon_ctx {
    const float *w, *deq;
    const double *h;
    int64_t cols;
    double *row_err;
};

static void recon_rows(void *p, int64_t b, int64_t e)
{
    struct recon_ctx *c = p;
    int64_t n = c->cols;
    double *d = malloc((size_t)n * sizeof(double));
    if (!d) {
        for (int64_t r = b; r < e; r++)
            c->row_err[r] = NAN; /* reported as NaN rather than aborting */
        return;
    }
    for (int64_t r = b; r < e; r++) {
        for (int64_t j = 0; j < n; j++)
            d[j] = (double)c->w[r * n + j] - (double)c->deq[r * n + j];
        double s = 0;
        for (int64_t i = 0; i < n; i++) {
            if (d[i] == 0)
                continue;
            const double *hi = c->h + i * n;
            double t = 0;
            for (int64_t j = 0; j < n; j++)
                t += hi[j] * d[j];
            s += d[i] * t;
        }
        c->row_err[r] = s;
    }
    free(d);
}

double qb_recon_error(const float *w, const float *deq, int64_t rows, int64_t cols,
                      const double *h, struct qb_pool *pool)
{
    double *row_err = qb_calloc_array((size_t)rows, sizeof(double));
    if (!row_err)
        return NAN;
    struct recon_ctx c = {w, deq, h, cols, row_err};
    qb_pool_for(pool, rows, 4, recon_rows, &c);
    double s = 0;
    for (int64_t r = 0; r < rows; r++)
        s += row_err[r];
    free(row_err);
    return 0.5 * s;
}
