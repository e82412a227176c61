/*
 * awq.c - AWQ statistics, scale grid search, quantizer and clip search (see awq.h).
 */
#include "awq.h"

#include <math.h>
#include <string.h>

#include "dtype.h"

void qb_awq_abs_sum_add(double *abs_sum, const float *x, int64_t n, int64_t cols)
{
    for (int64_t t = 0; t < n; t++)
        for (int64_t c = 0; c < cols; c++)
            abs_sum[c] += fabsf(x[t * cols + c]);
}

void qb_awq_weight_mean(const float *const *w, const int64_t *rows, int n_lin, int64_t cols,
                        int group, float *w_mean)
{
    double *acc = calloc((size_t)cols, sizeof(double));
    if (!acc) { /* fall back to no weight statistics (plain activation scaling) */
        for (int64_t c = 0; c < cols; c++)
            w_mean[c] = 1;
        return;
    }
    int64_t total_rows = 0;
    for (int k = 0; k < n_lin; k++) {
        for (int64_t r = 0; r < rows[k]; r++) {
            const float *row = w[k] + r * cols;
            for (int64_t g0 = 0; g0 < cols; g0 += group) {
                float mx = 0;
                for (int j = 0; j < group; j++)
                    mx = fmaxf(mx, fabsf(row[g0 + j]));
                for (int j = 0; j < group; j++)
                    acc[g0 + j] += fabsf(row[g0 + j]) / (mx + 1e-6f);
            }
        }
        total_rows += rows[k];
    }
    for (int64_t c = 0; c < cols; c++)
        w_mean[c] = (float)(acc[c] / (double)total_rows);
    free(acc);
}

void qb_awq_scales_for_ratio(const float *x_mean, const float *w_mean, int64_t cols,
                             double ratio, float *s)
{
    float mx = 0, mn = INFINITY;
    for (int64_t c = 0; c < cols; c++) {
        double v = pow(x_mean[c], ratio) / (pow(w_mean[c], 1.0 - ratio) + 1e-4);
        s[c] = (float)fmax(v, 1e-4);
        mx = fmaxf(mx, s[c]);
        mn = fminf(mn, s[c]);
    }
    float norm = sqrtf(mx * mn);
    for (int64_t c = 0; c < cols; c++) {
        s[c] /= norm;
        if (!isfinite(s[c]))
            s[c] = 1;
    }
}

enum qb_status qb_awq_search_scales(const float *x_mean, const float *w_mean, int64_t cols,
                                    int n_grid, qb_awq_loss_fn loss, void *ctx, float *best,
                                    double *best_ratio, double *best_loss, struct qb_err *err)
{
    float *s = qb_malloc_array((size_t)cols, sizeof(float));
    if (!s)
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory in the AWQ scale search");
    *best_loss = INFINITY;
    *best_ratio = -1;
    enum qb_status st = QB_OK;
    for (int i = 0; i < n_grid; i++) {
        double ratio = (double)i / n_grid;
        qb_awq_scales_for_ratio(x_mean, w_mean, cols, ratio, s);
        double l = loss(ctx, s);
        if (!(l >= 0)) {
            st = qb_err_set(err, isnan(l) ? QB_ERR_NUMERIC : QB_ERR_CANCELLED,
                            isnan(l) ? "AWQ scale search produced NaN loss" : "cancelled");
            break;
        }
        if (l < *best_loss) {
            *best_loss = l;
            *best_ratio = ratio;
            memcpy(best, s, (size_t)cols * sizeof(float));
        }
    }
    free(s);
    return st;
}

/* ---- quantizer ---- */

struct aparam {
    float scale;
    int zero;
};

static struct aparam awq_params(const float *v, int n, int maxq)
{
    float mn = v[0], mx = v[0];
    for (int i = 1; i < n; i++) {
        mn = fminf(mn, v[i]);
        mx = fmaxf(mx, v[i]);
    }
    struct aparam p;
    float s = fmaxf(mx - mn, 1e-5f) / (float)maxq;
    s = qb_f16_to_f32(qb_f32_to_f16(s));
    p.scale = s > 0 ? s : 0x1p-24f;
    int z = -(int)rintf(mn / p.scale);
    p.zero = z < 0 ? 0 : z > maxq ? maxq : z;
    return p;
}

static int awq_code(float w, struct aparam p, int maxq)
{
    int q = (int)rintf(w / p.scale) + p.zero;
    return q < 0 ? 0 : q > maxq ? maxq : q;
}

static void pseudo_quant_group(float *v, int n, int maxq)
{
    struct aparam p = awq_params(v, n, maxq);
    for (int i = 0; i < n; i++)
        v[i] = p.scale * (float)(awq_code(v[i], p, maxq) - p.zero);
}

void qb_awq_pseudo_quantize(float *w, int64_t rows, int64_t cols, int bits, int group)
{
    int maxq = (1 << bits) - 1;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t g0 = 0; g0 < cols; g0 += group)
            pseudo_quant_group(w + r * cols + g0, group, maxq);
}

void qb_awq_scaled_trial(float *w, int64_t rows, int64_t cols, int bits, int group,
                         const float *s)
{
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++)
            w[r * cols + c] *= s[c];
    qb_awq_pseudo_quantize(w, rows, cols, bits, group);
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++)
            w[r * cols + c] /= s[c];
}

enum qb_status qb_awq_quantize(const float *w, int64_t rows, int64_t cols, int bits, int group,
                               struct qb_qresult *out, float *deq, struct qb_err *err)
{
    enum qb_status st = qb_qresult_alloc(out, rows, cols, bits, group, 0, 0, err);
    if (st)
        return st;
    int maxq = (1 << bits) - 1;
    int64_t ng = cols / group;
    for (int64_t r = 0; r < rows; r++) {
        for (int64_t g = 0; g < ng; g++) {
            const float *v = w + r * cols + g * group;
            struct aparam p = awq_params(v, group, maxq);
            out->scales[r * ng + g] = p.scale;
            out->zeros[r * ng + g] = (uint8_t)p.zero;
            for (int j = 0; j < group; j++) {
                int q = awq_code(v[j], p, maxq);
                out->codes[r * cols + g * group + j] = (uint8_t)q;
                if (deq)
                    deq[r * cols + g * group + j] = p.scale * (float)(q - p.zero);
            }
        }
    }
    return QB_OK;
}

/* ---- clip search ---- */

struct clip_ctx {
    const float *w, *x;
    int64_t cols, n;
    int group, maxq;
    float *max_val;
    int oom;
};

static void clip_rows(void *p, int64_t b, int64_t e)
{
    struct clip_ctx *c = p;
    int64_t ng = c->cols / c->group;
    int G = c->group;
    float *buf = malloc((size_t)G * 2 * sizeof(float));
    if (!buf) {
        __atomic_store_n(&c->oom, 1, __ATOMIC_RELAXED);
        return;
    }
    float *cur = buf, *diff = buf + G;
    for (int64_t r = b; r < e; r++) {
        for (int64_t g = 0; g < ng; g++) {
            const float *w = c->w + r * c->cols + g * G;
            float org = 0;
            for (int j = 0; j < G; j++)
                org = fmaxf(org, fabsf(w[j]));
            double best_err = INFINITY;
            float best = org;
            int steps = (int)(QB_AWQ_CLIP_MAX_SHRINK * QB_AWQ_CLIP_GRID);
            for (int i = 0; i < steps; i++) {
                float mv = org * (1.0f - (float)i / QB_AWQ_CLIP_GRID);
                for (int j = 0; j < G; j++)
                    cur[j] = fminf(fmaxf(w[j], -mv), mv);
                pseudo_quant_group(cur, G, c->maxq);
                for (int j = 0; j < G; j++)
                    diff[j] = cur[j] - w[j];
                double err = 0;
                for (int64_t t = 0; t < c->n; t++) {
                    const float *xt = c->x + t * c->cols + g * G;
                    float d = 0;
                    for (int j = 0; j < G; j++)
                        d += xt[j] * diff[j];
                    err += (double)d * d;
                }
                err /= (double)c->n;
                if (err < best_err) {
                    best_err = err;
                    best = mv;
                }
            }
            c->max_val[r * ng + g] = best;
        }
    }
    free(buf);
}

enum qb_status qb_awq_clip_search(const float *w, int64_t rows, int64_t cols, int bits, int group,
                                  const float *x, int64_t n, struct qb_pool *pool, float *max_val,
                                  struct qb_err *err)
{
    if (n <= 0)
        return qb_err_set(err, QB_ERR_INTERNAL, "AWQ clip search without input tokens");
    struct clip_ctx c = {w, x, cols, n, group, (1 << bits) - 1, max_val, 0};
    qb_pool_for(pool, rows, 4, clip_rows, &c);
    if (c.oom)
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory in the AWQ clip search");
    return QB_OK;
}

/* ---- range search on a Gram matrix ---- */

struct range_ctx {
    const float *w;
    const float *blocks;          /* [cols/group][group][group] diagonal blocks of the Gram */
    int64_t cols;
    const struct qb_awq_range_opts *o;
    int group, maxq;
    float *lo, *hi;
    int oom;
};

/* d^T B d for one group (B: group x group, row-major). */
static double gram_form(const float *B, const float *d, int G)
{
    double e = 0;
    for (int a = 0; a < G; a++) {
        const float *row = B + (size_t)a * G;
        float t = 0;
        for (int b = 0; b < G; b++)
            t += row[b] * d[b];
        e += (double)d[a] * t;
    }
    return e;
}

/* Loss of clamping w[G] to [lo, hi] and quantizing (cur, diff: scratch). */
static double range_loss(const float *w, const float *B, int G, int maxq, float lo, float hi,
                         float *cur)
{
    for (int j = 0; j < G; j++)
        cur[j] = fminf(fmaxf(w[j], lo), hi);
    pseudo_quant_group(cur, G, maxq);
    for (int j = 0; j < G; j++)
        cur[j] -= w[j];
    return gram_form(B, cur, G);
}

static void range_group(const struct range_ctx *c, const float *w, const float *B, float *cur,
                        float *lo_out, float *hi_out)
{
    int G = c->group, steps = c->o->steps;
    float mn = 0, mx = 0;
    for (int j = 0; j < G; j++) {
        mn = fminf(mn, w[j]);
        mx = fmaxf(mx, w[j]);
    }
    double best = INFINITY;
    float best_lo = mn, best_hi = mx;
    for (int i = 0; i < steps; i++) {
        for (int k = 0; k < (c->o->asym ? steps : 1); k++) {
            float f_lo = 1.0f - (float)i / (float)c->o->grid;
            float f_hi = 1.0f - (float)(c->o->asym ? k : i) / (float)c->o->grid;
            float lo = mn * f_lo, hi = mx * f_hi;
            if (!c->o->asym) { /* AutoAWQ: +-max|w| shrunk */
                hi = fmaxf(-mn, mx) * f_hi;
                lo = -hi;
            }
            double e = range_loss(w, B, G, c->maxq, lo, hi, cur);
            if (e < best) {
                best = e;
                best_lo = lo;
                best_hi = hi;
            }
        }
    }
    *lo_out = best_lo;
    *hi_out = best_hi;
}

static void range_rows(void *p, int64_t b, int64_t e)
{
    struct range_ctx *c = p;
    int64_t ng = c->cols / c->group;
    int G = c->group;
    float *cur = malloc((size_t)G * sizeof(float));
    if (!cur) {
        __atomic_store_n(&c->oom, 1, __ATOMIC_RELAXED);
        return;
    }
    for (int64_t r = b; r < e; r++)
        for (int64_t g = 0; g < ng; g++)
            range_group(c, c->w + r * c->cols + g * G, c->blocks + (size_t)(g * G * G), cur,
                        &c->lo[r * ng + g], &c->hi[r * ng + g]);
    free(cur);
}

enum qb_status qb_awq_range_search(const float *w, int64_t rows, int64_t cols, int bits,
                                   int group, const double *gram,
                                   const struct qb_awq_range_opts *o, struct qb_pool *pool,
                                   float *lo, float *hi, struct qb_err *err)
{
    int64_t ng = cols / group;
    float *blocks = qb_malloc_array((size_t)(ng * group * group), sizeof(float));
    if (!blocks)
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory in the AWQ range search");
    for (int64_t g = 0; g < ng; g++)
        for (int a = 0; a < group; a++)
            for (int b = 0; b < group; b++)
                blocks[(g * group + a) * group + b] =
                    (float)gram[(g * group + a) * cols + g * group + b];
    struct range_ctx c = {w, blocks, cols, o, group, (1 << bits) - 1, lo, hi, 0};
    qb_pool_for(pool, rows, 4, range_rows, &c);
    free(blocks);
    if (c.oom)
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory in the AWQ range search");
    return QB_OK;
}

void qb_awq_apply_range(float *w, int64_t rows, int64_t cols, int group, const float *lo,
                        const float *hi)
{
    int64_t ng = cols / group;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) {
            float *v = &w[r * cols + c];
            *v = fminf(fmaxf(*v, lo[r * ng + c / group]), hi[r * ng + c / group]);
        }
}

void qb_awq_apply_clip(float *w, int64_t rows, int64_t cols, int group, const float *max_val)
{
    int64_t ng = cols / group;
    for (int64_t r = 0; r < rows; r++)
        for (int64_t c = 0; c < cols; c++) {
            float mv = max_val[r * ng + c / group];
            float *v = &w[r * cols + c];
            *v = fminf(fmaxf(*v, -mv), mv);
        }
}
