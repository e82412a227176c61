/*
 * engine_cpu.c - the plain, multithreaded CPU forward pass (see engine.h).
 *
 * This is the reference every CUDA kernel and packed format is compared
 * with, so it favours clarity: fp32 activations everywhere (transformers'
 * "fp32 compute from the bf16 checkpoint"), weights read in their stored
 * format through qb_linear_matmul, a KV cache in f32.
 *
 * Per layer, for n new tokens at positions pos .. pos+n-1:
 *   h = rmsnorm(x) * attn_norm
 *   q, k, v = h Wq^T, h Wk^T, h Wv^T         (+ biases; qwen3: per-head rmsnorm)
 *   rope(q, k) (rotate-half pairs (i, i + head_dim/2))
 *   cache[pos..] = k, v
 *   o = softmax(q k^T / sqrt(d), causal) v    (GQA: head h reads kv head h / group)
 *   x += o Wo^T
 *   h = rmsnorm(x) * ffn_norm
 *   x += (silu(h Wg^T) * h Wu^T) Wd^T
 * then logits = rmsnorm(x) * final_norm . lm_head^T for the requested rows.
 *
 * Buffers: scratch sized for max_ctx tokens at creation; the KV cache holds
 * [n_layers][max_ctx][n_kv_heads*head_dim] for keys and values.
 */
#include <math.h>
#include <string.h>

#include "engine.h"
#include "linear.h"
#include "threadpool.h"

struct cpu_engine {
    struct qb_engine base;
    qb_linear_input_hook hook;  /* calibration hook, NULL in normal runs */
    void *hook_ctx;
    struct qb_pool *pool;
    float *rope_inv_freq;     /* [head_dim/2] f32, as transformers computes it */
    float *kcache, *vcache;   /* [n_layers][max_ctx][kv_dim] */
    /* scratch for up to max_ctx tokens */
    float *x, *h, *q, *k, *v, *att, *gate, *up;
};

/* ---- small ops -------------------------------------------------------------- */

static void rmsnorm(const float *x, const float *w, int64_t dim, float eps, float *out)
{
    double ss = 0;
    for (int64_t i = 0; i < dim; i++)
        ss += (double)x[i] * x[i];
    float inv = 1.0f / sqrtf((float)(ss / (double)dim) + eps);
    for (int64_t i = 0; i < dim; i++)
        out[i] = w[i] * (x[i] * inv);
}

static void rope_apply(float *vec, int head_dim, int pos, const float *inv_freq)
{
    int half = head_dim / 2;
    for (int i = 0; i < half; i++) {
        float angle = (float)pos * inv_freq[i];
        float c = cosf(angle), s = sinf(angle);
        float a = vec[i], b = vec[i + half];
        vec[i] = a * c - b * s;
        vec[i + half] = b * c + a * s;
    }
}

static float silu(float x)
{
    return x / (1.0f + expf(-x));
}

static void call_hook(struct cpu_engine *E, int layer, enum qb_linear_slot slot, const float *x,
                      int64_t n)
{
    if (E->hook)
        E->hook(E->hook_ctx, layer, slot, x, n);
}

/* ---- parallel pieces ---------------------------------------------------------- */

struct norm_ctx {
    const float *x;
    const float *w;
    int64_t dim;
    float eps;
    float *out;
};

static void norm_rows(void *p, int64_t b, int64_t e)
{
    struct norm_ctx *c = p;
    for (int64_t t = b; t < e; t++)
        rmsnorm(c->x + t * c->dim, c->w, c->dim, c->eps, c->out + t * c->dim);
}

static void norm_all(struct cpu_engine *E, const float *x, const float *w, int64_t n, int64_t dim,
                     float *out)
{
    struct norm_ctx c = {x, w, dim, E->base.model->cfg.rms_eps, out};
    qb_pool_for(E->pool, n, 16, norm_rows, &c);
}

struct attn_ctx {
    struct cpu_engine *E;
    int layer;
    int n;     /* new tokens */
    int pos0;  /* position of the first new token */
};

/* One (query token, head) pair per index: softmax(q.K^T/sqrt(d)) V over the causal prefix. */
static void attend(void *p, int64_t b, int64_t e)
{
    struct attn_ctx *c = p;
    struct cpu_engine *E = c->E;
    const struct qb_config *cfg = &E->base.model->cfg;
    int hd = cfg->head_dim, nh = cfg->n_heads, kvd = cfg->n_kv_heads * hd;
    int group = cfg->n_heads / cfg->n_kv_heads;
    const float *K = E->kcache + (size_t)c->layer * E->base.max_ctx * kvd;
    const float *V = E->vcache + (size_t)c->layer * E->base.max_ctx * kvd;
    float scale = 1.0f / sqrtf((float)hd);
    float *scores = malloc(sizeof(float) * (size_t)(c->pos0 + c->n));
    CHECK(scores != NULL);
    for (int64_t idx = b; idx < e; idx++) {
        int t = (int)(idx / nh), head = (int)(idx % nh);
        int kvh = head / group, len = c->pos0 + t + 1;
        const float *qv = E->q + ((size_t)t * nh + head) * hd;
        float mx = -INFINITY;
        for (int j = 0; j < len; j++) {
            scores[j] = qb_dot_f32(qv, K + (size_t)j * kvd + kvh * hd, hd) * scale;
            mx = scores[j] > mx ? scores[j] : mx;
        }
        double sum = 0;
        for (int j = 0; j < len; j++) {
            scores[j] = expf(scores[j] - mx);
            sum += scores[j];
        }
        float inv = (float)(1.0 / sum);
        float *out = E->att + ((size_t)t * nh + head) * hd;
        memset(out, 0, sizeof(float) * (size_t)hd);
        for (int j = 0; j < len; j++) {
            const float *vv = V + (size_t)j * kvd + kvh * hd;
            float pj = scores[j] * inv;
            for (int d = 0; d < hd; d++)
                out[d] += pj * vv[d];
        }
    }
    free(scores);
}

/* qwen3 q/k norms, rope, then copy k and v into the cache. */
static void qk_post(struct cpu_engine *E, const struct qb_layer *L, int layer, int n, int pos0)
{
    const struct qb_config *cfg = &E->base.model->cfg;
    int hd = cfg->head_dim, kvd = cfg->n_kv_heads * hd;
    for (int t = 0; t < n; t++) {
        for (int h = 0; h < cfg->n_heads; h++) {
            float *qv = E->q + ((size_t)t * cfg->n_heads + h) * hd;
            if (L->q_norm)
                rmsnorm(qv, L->q_norm, hd, cfg->rms_eps, qv);
            rope_apply(qv, hd, pos0 + t, E->rope_inv_freq);
        }
        for (int h = 0; h < cfg->n_kv_heads; h++) {
            float *kv = E->k + ((size_t)t * cfg->n_kv_heads + h) * hd;
            if (L->k_norm)
                rmsnorm(kv, L->k_norm, hd, cfg->rms_eps, kv);
            rope_apply(kv, hd, pos0 + t, E->rope_inv_freq);
        }
        size_t off = ((size_t)layer * E->base.max_ctx + (size_t)(pos0 + t)) * kvd;
        memcpy(E->kcache + off, E->k + (size_t)t * kvd, sizeof(float) * (size_t)kvd);
        memcpy(E->vcache + off, E->v + (size_t)t * kvd, sizeof(float) * (size_t)kvd);
    }
}

static void attention_block(struct cpu_engine *E, int layer, int n, int pos0)
{
    const struct qb_model *m = E->base.model;
    const struct qb_layer *L = &m->layers[layer];
    int64_t hidden = m->cfg.hidden;
    norm_all(E, E->x, L->attn_norm, n, hidden, E->h);
    call_hook(E, layer, QB_LIN_Q, E->h, n);
    call_hook(E, layer, QB_LIN_K, E->h, n);
    call_hook(E, layer, QB_LIN_V, E->h, n);
    qb_linear_matmul(&L->lin[QB_LIN_Q], E->h, n, E->q, E->pool);
    qb_linear_matmul(&L->lin[QB_LIN_K], E->h, n, E->k, E->pool);
    qb_linear_matmul(&L->lin[QB_LIN_V], E->h, n, E->v, E->pool);
    qk_post(E, L, layer, n, pos0);
    struct attn_ctx c = {E, layer, n, pos0};
    qb_pool_for(E->pool, (int64_t)n * m->cfg.n_heads, 4, attend, &c);
    call_hook(E, layer, QB_LIN_O, E->att, n);
    qb_linear_matmul(&L->lin[QB_LIN_O], E->att, n, E->h, E->pool);
    for (int64_t i = 0; i < (int64_t)n * hidden; i++)
        E->x[i] += E->h[i];
}

struct swiglu_ctx {
    float *gate;
    const float *up;
};

static void swiglu_range(void *p, int64_t b, int64_t e)
{
    struct swiglu_ctx *c = p;
    for (int64_t i = b; i < e; i++)
        c->gate[i] = silu(c->gate[i]) * c->up[i];
}

static void mlp_block(struct cpu_engine *E, int layer, int n)
{
    const struct qb_model *m = E->base.model;
    const struct qb_layer *L = &m->layers[layer];
    int64_t hidden = m->cfg.hidden;
    norm_all(E, E->x, L->ffn_norm, n, hidden, E->h);
    call_hook(E, layer, QB_LIN_GATE, E->h, n);
    call_hook(E, layer, QB_LIN_UP, E->h, n);
    qb_linear_matmul(&L->lin[QB_LIN_GATE], E->h, n, E->gate, E->pool);
    qb_linear_matmul(&L->lin[QB_LIN_UP], E->h, n, E->up, E->pool);
    struct swiglu_ctx c = {E->gate, E->up};
    qb_pool_for(E->pool, (int64_t)n * m->cfg.intermediate, 4096, swiglu_range, &c);
    call_hook(E, layer, QB_LIN_DOWN, E->gate, n);
    qb_linear_matmul(&L->lin[QB_LIN_DOWN], E->gate, n, E->h, E->pool);
    for (int64_t i = 0; i < (int64_t)n * hidden; i++)
        E->x[i] += E->h[i];
}

static enum qb_status embed_tokens(struct cpu_engine *E, const int32_t *ids, int n,
                                   struct qb_err *err)
{
    const struct qb_model *m = E->base.model;
    const struct qb_wfmt_traits *tr = qb_wfmt_get(m->embed.fmt);
    for (int t = 0; t < n; t++) {
        if (ids[t] < 0 || ids[t] >= m->cfg.vocab)
            return qb_err_set(err, QB_ERR_RANGE, "token id %d at position %d is outside the "
                              "vocabulary (%d)", ids[t], t, m->cfg.vocab);
        tr->dequant_rows(&m->embed, ids[t], 1, E->x + (size_t)t * m->cfg.hidden);
    }
    return QB_OK;
}

static enum qb_status cpu_forward(struct qb_engine *e, const int32_t *ids, int n, int logits_from,
                                  float *logits, struct qb_err *err)
{
    struct cpu_engine *E = (struct cpu_engine *)e;
    const struct qb_model *m = e->model;
    if (n <= 0 || e->pos + n > e->max_ctx)
        return qb_err_set(err, QB_ERR_RANGE, "%d tokens at position %d exceed the context of %d",
                          n, e->pos, e->max_ctx);
    CHECK(logits_from >= 0 && logits_from <= n);
    enum qb_status st = embed_tokens(E, ids, n, err);
    if (st)
        return st;
    for (int l = 0; l < m->cfg.n_layers; l++) {
        attention_block(E, l, n, e->pos);
        mlp_block(E, l, n);
    }
    e->pos += n;
    int rows = n - logits_from;
    if (rows == 0)
        return QB_OK;
    int64_t hidden = m->cfg.hidden;
    norm_all(E, E->x + (size_t)logits_from * hidden, m->final_norm, rows, hidden, E->h);
    qb_linear_matmul(&m->lm_head, E->h, rows, logits, E->pool);
    return QB_OK;
}

static void cpu_reset(struct qb_engine *e);
static void cpu_destroy(struct qb_engine *e);
static const struct qb_engine_ops cpu_ops = {"cpu", cpu_forward, cpu_reset, cpu_destroy};

enum qb_status qb_cpu_embed(struct qb_engine *e, const int32_t *ids, int n, float *x,
                            struct qb_err *err)
{
    struct cpu_engine *E = (struct cpu_engine *)e;
    CHECK(e->ops == &cpu_ops);
    if (n <= 0 || n > e->max_ctx)
        return qb_err_set(err, QB_ERR_RANGE, "%d tokens exceed the context of %d", n, e->max_ctx);
    enum qb_status st = embed_tokens(E, ids, n, err);
    if (!st)
        memcpy(x, E->x, sizeof(float) * (size_t)n * (size_t)e->model->cfg.hidden);
    return st;
}

enum qb_status qb_cpu_layer_forward(struct qb_engine *e, int layer, float *x, int n,
                                    qb_linear_input_hook hook, void *hook_ctx,
                                    struct qb_err *err)
{
    struct cpu_engine *E = (struct cpu_engine *)e;
    CHECK(e->ops == &cpu_ops);
    CHECK(layer >= 0 && layer < e->model->cfg.n_layers);
    if (n <= 0 || n > e->max_ctx)
        return qb_err_set(err, QB_ERR_RANGE, "%d tokens exceed the context of %d", n, e->max_ctx);
    size_t bytes = sizeof(float) * (size_t)n * (size_t)e->model->cfg.hidden;
    memcpy(E->x, x, bytes);
    E->hook = hook;
    E->hook_ctx = hook_ctx;
    attention_block(E, layer, n, 0);
    mlp_block(E, layer, n);
    E->hook = NULL;
    E->hook_ctx = NULL;
    memcpy(x, E->x, bytes);
    return QB_OK;
}

static void cpu_reset(struct qb_engine *e)
{
    e->pos = 0;
}

static void cpu_destroy(struct qb_engine *e)
{
    struct cpu_engine *E = (struct cpu_engine *)e;
    qb_pool_free(E->pool);
    free(E->rope_inv_freq);
    free(E->kcache);
    free(E->vcache);
    free(E->x);
    free(E->h);
    free(E->q);
    free(E->k);
    free(E->v);
    free(E->att);
    free(E->gate);
    free(E->up);
    free(E);
}


static enum qb_status alloc_buffers(struct cpu_engine *E, struct qb_err *err)
{
    const struct qb_config *c = &E->base.model->cfg;
    size_t T = (size_t)E->base.max_ctx, hd = (size_t)c->head_dim;
    size_t kvd = (size_t)c->n_kv_heads * hd, qd = (size_t)c->n_heads * hd;
    size_t wide = QB_MAX((size_t)c->hidden, qd);
    E->kcache = qb_malloc_array((size_t)c->n_layers * T, kvd * sizeof(float));
    E->vcache = qb_malloc_array((size_t)c->n_layers * T, kvd * sizeof(float));
    E->x = qb_malloc_array(T, (size_t)c->hidden * sizeof(float));
    E->h = qb_malloc_array(T, wide * sizeof(float));
    E->q = qb_malloc_array(T, qd * sizeof(float));
    E->k = qb_malloc_array(T, kvd * sizeof(float));
    E->v = qb_malloc_array(T, kvd * sizeof(float));
    E->att = qb_malloc_array(T, qd * sizeof(float));
    E->gate = qb_malloc_array(T, (size_t)c->intermediate * sizeof(float));
    E->up = qb_malloc_array(T, (size_t)c->intermediate * sizeof(float));
    E->rope_inv_freq = qb_malloc_array(hd / 2, sizeof(float));
    if (!E->kcache || !E->vcache || !E->x || !E->h || !E->q || !E->k || !E->v || !E->att ||
        !E->gate || !E->up || !E->rope_inv_freq)
        return qb_err_set(err, QB_ERR_NOMEM, "cannot allocate CPU buffers for a context of %d",
                          E->base.max_ctx);
    double *inv = qb_malloc_array(hd / 2, sizeof(double));
    if (!inv)
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory");
    qb_config_rope_inv_freq(c, inv);
    for (size_t i = 0; i < hd / 2; i++)
        E->rope_inv_freq[i] = (float)inv[i];
    free(inv);
    return QB_OK;
}

enum qb_status qb_engine_create_cpu(const struct qb_model *m, const struct qb_engine_opts *o,
                                    struct qb_engine **out, struct qb_err *err)
{
    *out = NULL;
    struct cpu_engine *E = calloc(1, sizeof *E);
    if (!E)
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory");
    E->base.ops = &cpu_ops;
    E->base.model = m;
    E->base.max_ctx = (o && o->max_ctx > 0) ? o->max_ctx : 512;
    enum qb_status st = alloc_buffers(E, err);
    if (!st) {
        E->pool = qb_pool_create(o ? o->n_threads : 0);
        if (!E->pool)
            st = qb_err_set(err, QB_ERR_NOMEM, "cannot start CPU worker threads");
    }
    if (st) {
        cpu_destroy(&E->base);
        return st;
    }
    *out = &E->base;
    return QB_OK;
}
