/*
 * engine_cuda.cu - the CUDA engine: struct qb_engine over the kernels of this
 * directory, the GPU twin of core/engine_cpu.c.
 *
 * Created once per model: every weight is uploaded once (dtype views as bf16,
 * packed formats repacked by weight.cu), norms as f32, the f16 KV cache is
 * sized from max_ctx, and the scratch buffers from the largest pass
 * (QB_CUDA_CHUNK tokens); nothing is allocated while running, and destroy
 * frees it all.
 *
 * One pass over m <= QB_CUDA_CHUNK tokens (longer calls are split), per layer:
 *
 *   x ──rmsnorm──> a ──q|k|v──> qkv ──rope_kv──> q (in place), K/V cache
 *   qkv, cache ──attention──> a ──o (+= x)──> x
 *   (decode: rope_kv and attention are one kernel, attention_decode.cu)
 *   x ──rmsnorm──> a ──gate|up──> gu ──swiglu──> a2 ──down (+= x)──> x
 *
 * then final rmsnorm and lm_head for the rows that want logits. Decode (m = 1)
 * runs the projections as GEMVs (q|k|v in one launch, gate|up fused with
 * SwiGLU); every RMSNorm but the first layer's is the tail of the o or down
 * GEMV before it (qb_cuda_gemv_add_norm), which writes the next input into
 * a (for W8A8 weights already quantized per token, with its scale in
 * a_scale: no separate quantization launch before q|k|v and gate|up). It
 * replays the whole pass from a CUDA graph captured on the first decode step:
 * kernels read the position from device memory, so only the token id and
 * position are copied in before each replay. Packed weights run
 * the fused dequantize-GEMV in decode and dequantize-then-cuBLAS in prefill.
 */
#include <stdlib.h>
#include <string.h>

#include "qb_cuda_common.cuh"
#include "qb_w4a4.h"

extern "C" {
#include "engine.h"
}

#define QB_CUDA_CHUNK 512

struct cuda_layer {
    struct qb_cuda_weight lin[QB_LIN_COUNT];
    float *attn_norm, *ffn_norm, *q_norm, *k_norm;
    uint16_t *k_cache, *v_cache; /* f16 [n_kv][max_ctx][head_dim] */
};

struct cuda_engine {
    struct qb_engine base;
    struct qb_cuda_ctx *ctx;
    struct qb_cuda_attn_shape shape;
    int hidden, inter, vocab, q_dim, kv_dim, chunk, mlp_bias;
    float eps;
    struct cuda_layer *layers;
    struct qb_cuda_weight embed, lm_head; /* lm_head.data == NULL when tied */
    float *final_norm, *inv_freq;
    /* scratch, sized for chunk tokens */
    int32_t *d_ids, *d_pos;
    float *x, *qkv, *gu, *logits;
    uint16_t *a, *a2;
    float *a_scale; /* decode, W8A8: the token scale of e->a when a norm quantized it */
    void *decode_graph; /* the m = 1 pass with logits, captured on first use */
};

static const struct qb_cuda_weight *lm_head_of(const struct cuda_engine *e)
{
    return e->lm_head.data ? &e->lm_head : &e->embed;
}

/* ---- creation ----------------------------------------------------------------- */

static enum qb_status upload_f32(float **dst, const float *src, size_t n, const char *what,
                                 struct qb_err *err)
{
    enum qb_status st = QB_OK;
    *dst = NULL;
    if (!src)
        return QB_OK;
    st = qb_cuda_alloc((void **)dst, n * sizeof(float), what, err);
    if (!st)
        st = qb_cuda_upload(*dst, src, n * sizeof(float), err);
    return st;
}

static enum qb_status upload_layer(struct cuda_engine *e, const struct qb_layer *l, int idx,
                                   struct qb_err *err)
{
    enum qb_status st = QB_OK;
    struct cuda_layer *d = &e->layers[idx];
    size_t cache = (size_t)e->shape.n_kv_heads * e->shape.max_ctx * e->shape.head_dim * 2;
    char name[64];
    for (int s = 0; s < QB_LIN_COUNT && !st; s++) {
        snprintf(name, sizeof name, "layer %d %s", idx,
                 qb_linear_slot_name((enum qb_linear_slot)s));
        st = qb_cuda_weight_upload(&l->lin[s], name, &d->lin[s], err);
    }
    if (!st)
        st = upload_f32(&d->attn_norm, l->attn_norm, e->hidden, "attention norm", err);
    if (!st)
        st = upload_f32(&d->ffn_norm, l->ffn_norm, e->hidden, "MLP norm", err);
    if (!st)
        st = upload_f32(&d->q_norm, l->q_norm, e->shape.head_dim, "q_norm", err);
    if (!st)
        st = upload_f32(&d->k_norm, l->k_norm, e->shape.head_dim, "k_norm", err);
    if (!st)
        st = qb_cuda_alloc((void **)&d->k_cache, cache, "the K cache", err);
    if (!st)
        st = qb_cuda_alloc((void **)&d->v_cache, cache, "the V cache", err);
    return st;
}

static enum qb_status alloc_scratch(struct cuda_engine *e, struct qb_err *err)
{
    enum qb_status st = QB_OK;
    size_t c = (size_t)e->chunk;
    size_t a_width = (size_t)QB_MAX(e->hidden, e->q_dim);
    st = qb_cuda_alloc((void **)&e->d_ids, c * sizeof(int32_t), "token ids", err);
    if (!st)
        st = qb_cuda_alloc((void **)&e->d_pos, sizeof(int32_t), "position", err);
    if (!st)
        st = qb_cuda_alloc((void **)&e->x, c * e->hidden * sizeof(float), "residual stream", err);
    if (!st)
        st = qb_cuda_alloc((void **)&e->qkv, c * (e->q_dim + 2 * e->kv_dim) * sizeof(float),
                           "q/k/v activations", err);
    if (!st)
        st = qb_cuda_alloc((void **)&e->gu, c * 2 * e->inter * sizeof(float),
                           "gate/up activations", err);
    if (!st)
        st = qb_cuda_alloc((void **)&e->logits, c * e->vocab * sizeof(float), "logits", err);
    if (!st)
        st = qb_cuda_alloc((void **)&e->a, c * a_width * 2, "linear inputs", err);
    if (!st)
        st = qb_cuda_alloc((void **)&e->a2, c * e->inter * 2, "MLP activations", err);
    if (!st)
        st = qb_cuda_alloc((void **)&e->a_scale, sizeof(float), "activation scale", err);
    return st;
}

static enum qb_status upload_rope(struct cuda_engine *e, const struct qb_config *cfg,
                                  struct qb_err *err)
{
    enum qb_status st = QB_OK;
    int half = cfg->head_dim / 2;
    double *d = (double *)qb_malloc_array((size_t)half, sizeof(double));
    float *f = (float *)qb_malloc_array((size_t)half, sizeof(float));
    if (!d || !f) {
        st = qb_err_set(err, QB_ERR_NOMEM, "out of host memory for RoPE frequencies");
        goto out;
    }
    qb_config_rope_inv_freq(cfg, d);
    for (int i = 0; i < half; i++)
        f[i] = (float)d[i];
    st = upload_f32(&e->inv_freq, f, (size_t)half, "RoPE frequencies", err);
out:
    free(d);
    free(f);
    return st;
}

static void cuda_destroy(struct qb_engine *base)
{
    struct cuda_engine *e = (struct cuda_engine *)base;
    if (e->ctx)
        qb_cuda_sync(e->ctx, NULL);
    qb_cuda_graph_free(e->decode_graph);
    for (int i = 0; e->layers && i < base->model->cfg.n_layers; i++) {
        struct cuda_layer *l = &e->layers[i];
        for (int s = 0; s < QB_LIN_COUNT; s++)
            qb_cuda_weight_free(&l->lin[s]);
        qb_cuda_free(l->attn_norm);
        qb_cuda_free(l->ffn_norm);
        qb_cuda_free(l->q_norm);
        qb_cuda_free(l->k_norm);
        qb_cuda_free(l->k_cache);
        qb_cuda_free(l->v_cache);
    }
    free(e->layers);
    qb_cuda_weight_free(&e->embed);
    qb_cuda_weight_free(&e->lm_head);
    qb_cuda_free(e->final_norm);
    qb_cuda_free(e->inv_freq);
    qb_cuda_free(e->d_ids);
    qb_cuda_free(e->d_pos);
    qb_cuda_free(e->x);
    qb_cuda_free(e->qkv);
    qb_cuda_free(e->gu);
    qb_cuda_free(e->logits);
    qb_cuda_free(e->a);
    qb_cuda_free(e->a2);
    qb_cuda_free(e->a_scale);
    qb_cuda_ctx_free(e->ctx);
    free(e);
}

static void cuda_reset(struct qb_engine *base)
{
    base->pos = 0;
}

/* ---- the forward pass ----------------------------------------------------------- */

/* The norm weight applied to the residual after layer i: the next layer's
 * attention norm, or the final norm after the last layer. */
static const float *norm_after(const struct cuda_engine *e, int i)
{
    return i + 1 < e->base.model->cfg.n_layers ? e->layers[i + 1].attn_norm : e->final_norm;
}

/* Where a decode norm leaves the token scale of e->a for its consumer w:
 * e->a_scale when w is W8A8 (the norm quantizes; no separate launch), else
 * NULL. */
static float *norm_scale_for(const struct cuda_engine *e, const struct qb_cuda_weight *w)
{
    return w && w->act == QB_ACT_FP8_E4M3 ? e->a_scale : NULL;
}

/* The gate weight when decode runs the gate/up GEMV (no MLP biases: the
 * other path runs qb_cuda_linear, which quantizes its own input), else NULL. */
static const struct qb_cuda_weight *gate_gemv(const struct cuda_engine *e,
                                              const struct cuda_layer *l)
{
    return e->mlp_bias ? NULL : &l->lin[QB_LIN_GATE];
}

/* The weight that reads the norm after layer i: the next layer's q (NULL
 * for the lm_head after the last). */
static const struct qb_cuda_weight *consumer_after(const struct cuda_engine *e, int i)
{
    return i + 1 < e->base.model->cfg.n_layers ? &e->layers[i + 1].lin[QB_LIN_Q] : NULL;
}

/* Decode (m = 1): y += W x for o and down, whose tail writes the next norm's
 * output into e->a (qb_cuda_gemv_add_norm), quantized for a W8A8 consumer;
 * so layer i > 0 finds its q|k|v input normed, and layer 0 norms in the
 * q|k|v GEMV. consumer: the weight that reads e->a next (NULL: the lm_head,
 * which quantizes its own input). */
static enum qb_status decode_residual(struct cuda_engine *e, const struct qb_cuda_weight *w,
                                      const uint16_t *x, const float *next_norm,
                                      const struct qb_cuda_weight *consumer, struct qb_err *err)
{
    struct qb_cuda_norm_in next = {e->x, next_norm, e->eps, e->a, norm_scale_for(e, consumer)};
    return qb_cuda_gemv_add_norm(e->ctx, w, x, e->x, &next, err);
}

/* RoPE, the KV store and attention of layer l over e->qkv into e->a: one
 * kernel in decode, two in prefill. */
static enum qb_status attention(struct cuda_engine *e, struct cuda_layer *l, int m,
                                struct qb_err *err)
{
    enum qb_status st;
    int ldq = e->q_dim + 2 * e->kv_dim;
    if (m == 1)
        return qb_cuda_attention_decode(e->ctx, &e->shape, e->qkv, e->d_pos, e->inv_freq,
                                        l->q_norm, l->k_norm, e->eps, l->k_cache, l->v_cache,
                                        e->a, err);
    st = qb_cuda_rope_kv(e->ctx, &e->shape, e->qkv, ldq, m, e->d_pos, e->inv_freq, l->q_norm,
                         l->k_norm, e->eps, l->k_cache, l->v_cache, err);
    if (!st)
        st = qb_cuda_attention(e->ctx, &e->shape, e->qkv, ldq, m, e->d_pos, l->k_cache,
                               l->v_cache, e->a, err);
    return st;
}

static enum qb_status attention_block(struct cuda_engine *e, int i, int m, struct qb_err *err)
{
    enum qb_status st;
    struct cuda_layer *l = &e->layers[i];
    int ldq = e->q_dim + 2 * e->kv_dim;
    const struct qb_cuda_weight *qkv[3] = {&l->lin[QB_LIN_Q], &l->lin[QB_LIN_K],
                                           &l->lin[QB_LIN_V]};
    float *a_scale = norm_scale_for(e, qkv[0]);
    if (m == 1 && i == 0) {
        struct qb_cuda_norm_in in = {e->x, l->attn_norm, e->eps, e->a, a_scale};
        st = qb_cuda_gemv_norm(e->ctx, qkv, 3, &in, e->qkv, 0, err);
    } else if (m == 1 && a_scale) { /* e->a: the previous down projection's tail, quantized */
        st = qb_cuda_gemv_prequant(e->ctx, qkv, 3, e->a, a_scale, e->qkv, 0, err);
    } else if (m == 1) { /* e->a: the tail of the previous layer's down projection */
        st = qb_cuda_gemv(e->ctx, qkv, 3, e->a, e->qkv, 0, err);
    } else {
        st = qb_cuda_rmsnorm(e->ctx, e->x, l->attn_norm, e->eps, m, e->hidden, e->a, err);
        if (!st)
            st = qb_cuda_linear(e->ctx, qkv[0], e->a, m, e->qkv, ldq, 0, err);
        if (!st)
            st = qb_cuda_linear(e->ctx, qkv[1], e->a, m, e->qkv + e->q_dim, ldq, 0, err);
        if (!st)
            st = qb_cuda_linear(e->ctx, qkv[2], e->a, m, e->qkv + e->q_dim + e->kv_dim, ldq, 0,
                                err);
    }
    if (!st)
        st = attention(e, l, m, err);
    if (!st && m == 1)
        st = decode_residual(e, &l->lin[QB_LIN_O], e->a, l->ffn_norm, gate_gemv(e, l), err);
    else if (!st)
        st = qb_cuda_linear(e->ctx, &l->lin[QB_LIN_O], e->a, m, e->x, e->hidden, 1, err);
    return st;
}

static enum qb_status mlp_block(struct cuda_engine *e, int i, int m, struct qb_err *err)
{
    enum qb_status st = QB_OK;
    struct cuda_layer *l = &e->layers[i];
    if (m > 1) /* (in decode e->a is already the tail of the o projection) */
        st = qb_cuda_rmsnorm(e->ctx, e->x, l->ffn_norm, e->eps, m, e->hidden, e->a, err);
    float *a_scale = norm_scale_for(e, gate_gemv(e, l));
    if (!st && m == 1 && a_scale) { /* e->a quantized by o's tail */
        st = qb_cuda_gemv_swiglu_prequant(e->ctx, &l->lin[QB_LIN_GATE], &l->lin[QB_LIN_UP],
                                          e->a, a_scale, e->a2, err);
    } else if (!st && m == 1 && !e->mlp_bias) {
        st = qb_cuda_gemv_swiglu(e->ctx, &l->lin[QB_LIN_GATE], &l->lin[QB_LIN_UP], e->a, e->a2,
                                 err);
    } else if (!st) {
        st = qb_cuda_linear(e->ctx, &l->lin[QB_LIN_GATE], e->a, m, e->gu, 2 * e->inter, 0, err);
        if (!st)
            st = qb_cuda_linear(e->ctx, &l->lin[QB_LIN_UP], e->a, m, e->gu + e->inter,
                                2 * e->inter, 0, err);
        if (!st)
            st = qb_cuda_swiglu(e->ctx, e->gu, m, e->inter, e->a2, err);
    }
    if (!st && m == 1)
        st = decode_residual(e, &l->lin[QB_LIN_DOWN], e->a2, norm_after(e, i), consumer_after(e, i),
                             err);
    else if (!st)
        st = qb_cuda_linear(e->ctx, &l->lin[QB_LIN_DOWN], e->a2, m, e->x, e->hidden, 1, err);
    return st;
}

/* Enqueue one pass over the m tokens already in d_ids at *d_pos; logits for
 * rows r0 .. m-1 into e->logits[0 .. m-r0) (none when r0 == m). */
static enum qb_status enqueue_pass(struct cuda_engine *e, int m, int r0, struct qb_err *err)
{
    enum qb_status st;
    st = qb_cuda_embed(e->ctx, (const uint16_t *)e->embed.data, e->d_ids, m, e->hidden, e->x,
                       err);
    for (int i = 0; !st && i < e->base.model->cfg.n_layers; i++) {
        st = attention_block(e, i, m, err);
        if (!st)
            st = mlp_block(e, i, m, err);
    }
    if (st || r0 == m)
        return st;
    if (m > 1) /* (in decode the last down projection's tail has normed it) */
        st = qb_cuda_rmsnorm(e->ctx, e->x + (size_t)r0 * e->hidden, e->final_norm, e->eps,
                             m - r0, e->hidden, e->a, err);
    if (!st)
        st = qb_cuda_linear(e->ctx, lm_head_of(e), e->a, m - r0, e->logits, e->vocab, 0, err);
    return st;
}

/* The decode pass with logits, from the graph (captured here the first time). */
static enum qb_status run_decode_graph(struct cuda_engine *e, struct qb_err *err)
{
    enum qb_status st = QB_OK;
    if (!e->decode_graph) {
        st = qb_cuda_graph_begin(e->ctx, err);
        if (st)
            return st;
        st = enqueue_pass(e, 1, 0, err);
        if (st) { /* end the capture so the stream is usable; its error is secondary */
            void *g = NULL;
            qb_cuda_graph_end(e->ctx, &g, NULL);
            qb_cuda_graph_free(g);
            return st;
        }
        st = qb_cuda_graph_end(e->ctx, &e->decode_graph, err);
        if (st)
            return st;
    }
    return qb_cuda_graph_launch(e->ctx, e->decode_graph, err);
}

static enum qb_status check_ids(const struct cuda_engine *e, const int32_t *ids, int n,
                                struct qb_err *err)
{
    for (int i = 0; i < n; i++)
        if (ids[i] < 0 || ids[i] >= e->vocab)
            return qb_err_set(err, QB_ERR_RANGE, "token id %d at %d is outside the vocabulary "
                              "(0..%d)", ids[i], i, e->vocab - 1);
    return QB_OK;
}

static enum qb_status cuda_forward(struct qb_engine *base, const int32_t *ids, int n,
                                   int logits_from, float *logits, struct qb_err *err)
{
    struct cuda_engine *e = (struct cuda_engine *)base;
    enum qb_status st = QB_OK;
    if (n <= 0 || logits_from < 0 || logits_from > n)
        return qb_err_set(err, QB_ERR_INTERNAL, "CUDA forward: n=%d logits_from=%d", n,
                          logits_from);
    if (base->pos + n > base->max_ctx)
        return qb_err_set(err, QB_ERR_RANGE,
                          "context full: %d + %d tokens exceed the KV cache of %d positions; "
                          "raise --ctx", base->pos, n, base->max_ctx);
    st = check_ids(e, ids, n, err);
    for (int c0 = 0; !st && c0 < n; c0 += e->chunk) {
        int m = QB_MIN(e->chunk, n - c0), pos = base->pos + c0;
        int r0 = QB_MIN(QB_MAX(logits_from - c0, 0), m);
        st = qb_cuda_upload_async(e->ctx, e->d_ids, ids + c0, (size_t)m * sizeof(int32_t), err);
        if (!st)
            st = qb_cuda_upload_async(e->ctx, e->d_pos, &pos, sizeof pos, err);
        if (st)
            break;
        st = m == 1 && r0 == 0 ? run_decode_graph(e, err) : enqueue_pass(e, m, r0, err);
        if (!st && r0 < m)
            st = qb_cuda_download_async(e->ctx, logits + (size_t)(c0 + r0 - logits_from) * e->vocab,
                                        e->logits, (size_t)(m - r0) * e->vocab * sizeof(float),
                                        err);
        if (!st) /* also keeps &pos alive for the copy above */
            st = qb_cuda_sync(e->ctx, err);
    }
    if (!st)
        base->pos += n;
    return st;
}

static const struct qb_engine_ops cuda_ops = {"cuda", cuda_forward, cuda_reset, cuda_destroy};

static enum qb_status check_model(const struct qb_model *m, struct qb_err *err)
{
    const struct qb_config *c = &m->cfg;
    if (c->head_dim != 64 && c->head_dim != 128 && c->head_dim != 256)
        return qb_err_set(err, QB_ERR_UNSUPPORTED, "the CUDA engine supports head_dim 64, 128 "
                          "or 256, this model has %d; use --backend cpu", c->head_dim);
    if (c->hidden % 8 || c->intermediate % 8 || c->hidden > 8192 || c->n_kv_heads <= 0 ||
        c->n_heads % c->n_kv_heads)
        return qb_err_set(err, QB_ERR_UNSUPPORTED, "the CUDA engine needs hidden and "
                          "intermediate sizes divisible by 8, hidden <= 8192 and whole GQA "
                          "groups; use --backend cpu");
    return QB_OK;
}

/* Scratch for prefill over packed weights (the largest packed linear, or the
 * f32 result of a W8A8 GEMM) and the W8A8 activation buffers. */
static enum qb_status reserve_dequant(struct cuda_engine *e, const struct qb_model *m,
                                      struct qb_err *err)
{
    size_t most = 0;
    int64_t act_cols = 0;
    int act_rows = e->chunk;
    enum qb_status st = QB_OK;
    for (int i = 0; i < m->cfg.n_layers; i++)
        for (int s = 0; s < QB_LIN_COUNT; s++) {
            const struct qb_cuda_weight *w = &e->layers[i].lin[s];
            if (w->fmt != QB_WFMT_BF16)
                most = QB_MAX(most, (size_t)w->rows * (size_t)w->cols);
            if (w->act == QB_ACT_FP8_E4M3) {
                most = QB_MAX(most, (size_t)(e->chunk + 15) / 16 * 16 * (size_t)w->rows * 2);
                act_cols = QB_MAX(act_cols, w->cols);
            }
            if (qb_w4a4_is(w)) { /* FP4 GEMM result; one 128-row scale tile at least */
                most = QB_MAX(most, qb_w4a4_scratch_elems(e->chunk, w->rows));
                act_cols = QB_MAX(act_cols, w->cols);
                act_rows = QB_MAX(act_rows, qb_w4a4_act_rows(e->chunk));
            }
        }
    if (most)
        st = qb_cuda_ctx_reserve_dequant(e->ctx, most, err);
    if (!st && act_cols)
        st = qb_cuda_ctx_reserve_act(e->ctx, act_rows, act_cols, err);
    return st;
}

static enum qb_status upload_model(struct cuda_engine *e, const struct qb_model *m,
                                   struct qb_err *err)
{
    enum qb_status st = QB_OK;
    e->layers = (struct cuda_layer *)qb_calloc_array((size_t)m->cfg.n_layers,
                                                     sizeof *e->layers);
    if (!e->layers)
        return qb_err_set(err, QB_ERR_NOMEM, "out of host memory for the CUDA layers");
    st = qb_cuda_weight_upload(&m->embed, "embed_tokens", &e->embed, err);
    if (!st && m->lm_head.data != m->embed.data)
        st = qb_cuda_weight_upload(&m->lm_head, "lm_head", &e->lm_head, err);
    if (!st)
        st = upload_f32(&e->final_norm, m->final_norm, e->hidden, "final norm", err);
    for (int i = 0; !st && i < m->cfg.n_layers; i++)
        st = upload_layer(e, &m->layers[i], i, err);
    return st ? st : reserve_dequant(e, m, err);
}

extern "C" enum qb_status qb_engine_create_cuda(const struct qb_model *m,
                                                const struct qb_engine_opts *o,
                                                struct qb_engine **out, struct qb_err *err)
{
    enum qb_status st = QB_OK;
    const struct qb_config *c = &m->cfg;
    struct cuda_engine *e = NULL;
    *out = NULL;
    st = check_model(m, err);
    if (st)
        return st;
    e = (struct cuda_engine *)calloc(1, sizeof *e);
    if (!e)
        return qb_err_set(err, QB_ERR_NOMEM, "out of host memory for the CUDA engine");
    e->base.ops = &cuda_ops;
    e->base.model = m;
    e->base.max_ctx = o && o->max_ctx > 0 ? o->max_ctx : 512;
    e->shape.n_heads = c->n_heads;
    e->shape.n_kv_heads = c->n_kv_heads;
    e->shape.head_dim = c->head_dim;
    e->shape.max_ctx = e->base.max_ctx;
    e->hidden = c->hidden;
    e->inter = c->intermediate;
    e->vocab = c->vocab;
    e->q_dim = c->n_heads * c->head_dim;
    e->kv_dim = c->n_kv_heads * c->head_dim;
    e->chunk = QB_MIN(QB_CUDA_CHUNK, e->base.max_ctx);
    e->mlp_bias = c->mlp_bias;
    e->eps = c->rms_eps;
    st = qb_cuda_ctx_create(&e->ctx, err);
    if (!st)
        st = upload_model(e, m, err);
    if (!st)
        st = upload_rope(e, c, err);
    if (!st)
        st = alloc_scratch(e, err);
    if (st) {
        cuda_destroy(&e->base);
        return st;
    }
    *out = &e->base;
    return QB_OK;
}
