/*
 * model.c - load a Hugging Face checkpoint into struct qb_model (see model.h).
 *
 * Loading maps the shards, checks every expected tensor's presence, dtype and
 * shape against config.json, and wraps the weights as dtype views without
 * copying. Quantizing (qb_model_apply_scheme) converts one decoder linear at a
 * time to f32, quantizes it into a packed buffer the model owns and drops the
 * f32 copy, so peak extra memory is one f32 linear.
 */
#include "model.h"

#include <string.h>

#include "fileutil.h"
#include "gguf_model.h"
#include "hfq_load.h"
#include "qbfmt.h"

static const char *const slot_names[QB_LIN_COUNT] = {
    [QB_LIN_Q] = "q_proj",       [QB_LIN_K] = "k_proj",   [QB_LIN_V] = "v_proj",
    [QB_LIN_O] = "o_proj",       [QB_LIN_GATE] = "gate_proj", [QB_LIN_UP] = "up_proj",
    [QB_LIN_DOWN] = "down_proj",
};

const char *qb_linear_slot_name(enum qb_linear_slot slot)
{
    return slot_names[slot];
}

static int slot_is_mlp(enum qb_linear_slot s)
{
    return s == QB_LIN_GATE || s == QB_LIN_UP || s == QB_LIN_DOWN;
}

/* Expected [rows][cols] of a decoder linear. */
static void slot_shape(const struct qb_config *c, enum qb_linear_slot s, int64_t *rows,
                       int64_t *cols)
{
    int64_t q = (int64_t)c->n_heads * c->head_dim, kv = (int64_t)c->n_kv_heads * c->head_dim;
    switch (s) {
    case QB_LIN_Q: *rows = q, *cols = c->hidden; break;
    case QB_LIN_K:
    case QB_LIN_V: *rows = kv, *cols = c->hidden; break;
    case QB_LIN_O: *rows = c->hidden, *cols = q; break;
    case QB_LIN_GATE:
    case QB_LIN_UP: *rows = c->intermediate, *cols = c->hidden; break;
    case QB_LIN_DOWN: *rows = c->hidden, *cols = c->intermediate; break;
    case QB_LIN_COUNT: *rows = *cols = 0; break;
    }
}

static enum qb_status find_tensor(const struct qb_model *m, const char *name, int n_dims,
                                  int64_t d0, int64_t d1, const struct qb_st_tensor **out,
                                  struct qb_err *err)
{
    const struct qb_st_tensor *t = qb_ckpt_find(m->ckpt, name);
    *out = NULL;
    if (!t)
        return qb_err_set(err, QB_ERR_FORMAT, "%s: tensor '%s' is missing from the checkpoint",
                          m->dir, name);
    if (t->dtype != QB_DTYPE_F32 && t->dtype != QB_DTYPE_F16 && t->dtype != QB_DTYPE_BF16)
        return qb_err_set(err, QB_ERR_UNSUPPORTED, "%s: tensor '%s' has dtype %s; expected F32, "
                          "F16 or BF16", m->dir, name, qb_dtype_name(t->dtype));
    int ok = t->n_dims == n_dims && t->shape[0] == d0 && (n_dims < 2 || t->shape[1] == d1);
    if (!ok)
        return qb_err_set(err, QB_ERR_FORMAT, "%s: tensor '%s' has shape [%lld, %lld] (%d dims); "
                          "config.json implies [%lld, %lld]", m->dir, name,
                          (long long)t->shape[0], (long long)(t->n_dims > 1 ? t->shape[1] : 0),
                          t->n_dims, (long long)d0, (long long)(n_dims > 1 ? d1 : 0));
    *out = t;
    return QB_OK;
}

static enum qb_wfmt wfmt_of_dtype(enum qb_dtype dt)
{
    return dt == QB_DTYPE_BF16 ? QB_WFMT_BF16 : dt == QB_DTYPE_F16 ? QB_WFMT_F16 : QB_WFMT_F32;
}

static void view_linear(const struct qb_st_tensor *t, struct qb_linear *lin)
{
    memset(lin, 0, sizeof *lin);
    lin->fmt = wfmt_of_dtype(t->dtype);
    lin->rows = t->shape[0];
    lin->cols = t->shape[1];
    lin->data = t->data;
    lin->data_bytes = qb_st_tensor_bytes(t);
}

/* A 1-D tensor converted to a new f32 array. */
static enum qb_status load_vector(const struct qb_model *m, const char *name, int64_t n,
                                  float **out, struct qb_err *err)
{
    const struct qb_st_tensor *t;
    enum qb_status st = find_tensor(m, name, 1, n, 0, &t, err);
    if (st)
        return st;
    *out = qb_malloc_array((size_t)n, sizeof(float));
    if (!*out)
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory loading '%s'", name);
    return qb_st_tensor_to_f32(t, *out, err);
}

static enum qb_status load_bias(const struct qb_model *m, const char *prefix, struct qb_linear *lin,
                                struct qb_err *err)
{
    char name[256];
    snprintf(name, sizeof name, "%s.bias", prefix);
    enum qb_status st = load_vector(m, name, lin->rows, &lin->owned_bias, err);
    lin->bias = lin->owned_bias;
    return st;
}

static int slot_has_bias(const struct qb_config *c, enum qb_linear_slot s)
{
    if (slot_is_mlp(s))
        return c->mlp_bias;
    if (s == QB_LIN_O)
        return c->o_bias;
    return c->attn_bias;
}

static enum qb_status load_layer(struct qb_model *m, const struct qb_hfq *hq, int i,
                                 struct qb_err *err)
{
    const struct qb_config *c = &m->cfg;
    struct qb_layer *L = &m->layers[i];
    char name[256];
    enum qb_status st;
    for (int s = 0; s < QB_LIN_COUNT; s++) {
        char prefix[200];
        snprintf(prefix, sizeof prefix, "model.layers.%d.%s.%s", i,
                 slot_is_mlp(s) ? "mlp" : "self_attn", slot_names[s]);
        snprintf(name, sizeof name, "%s.weight", prefix);
        int64_t rows, cols;
        slot_shape(c, s, &rows, &cols);
        const struct qb_st_tensor *t;
        if (hq) { /* a quantized HF checkpoint (hfq_load.h) */
            st = qb_hfq_load_linear(hq, m->ckpt, prefix, rows, cols, &L->lin[s], err);
        } else {
            st = find_tensor(m, name, 2, rows, cols, &t, err);
            if (!st && i == 0 && s == 0)
                m->base_dtype = t->dtype;
            if (!st)
                view_linear(t, &L->lin[s]);
        }
        if (st)
            return st;
        if (slot_has_bias(c, s)) {
            st = load_bias(m, prefix, &L->lin[s], err);
            if (st)
                return st;
        }
    }
    snprintf(name, sizeof name, "model.layers.%d.input_layernorm.weight", i);
    st = load_vector(m, name, c->hidden, &L->attn_norm, err);
    if (st)
        return st;
    snprintf(name, sizeof name, "model.layers.%d.post_attention_layernorm.weight", i);
    st = load_vector(m, name, c->hidden, &L->ffn_norm, err);
    if (st || !c->qk_norm)
        return st;
    snprintf(name, sizeof name, "model.layers.%d.self_attn.q_norm.weight", i);
    st = load_vector(m, name, c->head_dim, &L->q_norm, err);
    if (st)
        return st;
    snprintf(name, sizeof name, "model.layers.%d.self_attn.k_norm.weight", i);
    return load_vector(m, name, c->head_dim, &L->k_norm, err);
}

static enum qb_status load_weights(struct qb_model *m, const struct qb_hfq *hq,
                                   struct qb_err *err)
{
    const struct qb_config *c = &m->cfg;
    const struct qb_st_tensor *t;
    enum qb_status st = find_tensor(m, "model.embed_tokens.weight", 2, c->vocab, c->hidden, &t, err);
    if (st)
        return st;
    view_linear(t, &m->embed);
    m->base_dtype = t->dtype;
    if (c->tie_embeddings) {
        const struct qb_st_tensor *lm = qb_ckpt_find(m->ckpt, "lm_head.weight");
        view_linear(lm ? lm : t, &m->lm_head);
    } else {
        st = find_tensor(m, "lm_head.weight", 2, c->vocab, c->hidden, &t, err);
        if (st)
            return st;
        view_linear(t, &m->lm_head);
    }
    st = load_vector(m, "model.norm.weight", c->hidden, &m->final_norm, err);
    if (st)
        return st;
    m->layers = qb_calloc_array((size_t)c->n_layers, sizeof *m->layers);
    if (!m->layers)
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory");
    for (int i = 0; i < c->n_layers; i++) {
        st = load_layer(m, hq, i, err);
        if (st)
            return st;
    }
    return QB_OK;
}

static enum qb_status load_tokenizer(struct qb_model *m, struct qb_err *err)
{
    char *path = qb_path_join(m->dir, "tokenizer.json");
    if (!path)
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory");
    enum qb_status st;
    if (!qb_path_exists(path))
        st = qb_err_set(err, QB_ERR_IO, "%s: tokenizer.json is missing; copy it from the model's "
                        "repository", m->dir);
    else
        st = qb_tok_load_hf(path, &m->tok, err);
    free(path);
    return st;
}

enum qb_status qb_model_load(const char *dir, const struct qb_model_load_opts *opts,
                             struct qb_model **out, struct qb_err *err)
{
    enum qb_status st;
    char *cfg_path = NULL;
    struct qb_hfq *hq = NULL;
    *out = NULL;
    if (qb_gguf_is_model_path(dir))
        return qb_gguf_model_load(dir, opts, out, err);
    if (!qb_path_is_dir(dir))
        return qb_err_set(err, QB_ERR_IO, "model '%s' is not a directory", dir);
    struct qb_model *m = calloc(1, sizeof *m);
    if (!m)
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory");
    m->dir = qb_strdup(dir);
    cfg_path = qb_path_join(dir, "config.json");
    if (!m->dir || !cfg_path) {
        st = qb_err_set(err, QB_ERR_NOMEM, "out of memory");
        goto out;
    }
    st = qb_config_load(cfg_path, &m->cfg, err);
    if (st)
        goto out;
    st = qb_hfq_detect(dir, &hq, err);
    if (st)
        goto out;
    st = qb_ckpt_open(dir, &m->ckpt, err);
    if (st)
        goto out;
    /* a quantized checkpoint written by `quantbench quantize` (qbfmt.h), or a
     * Hugging Face quantized checkpoint (hfq_load.h), or plain weights */
    st = qb_qbfmt_is_dir(dir) ? qb_qbfmt_load_weights(m, err) : load_weights(m, hq, err);
    if (st)
        goto out;
    if (!opts || !opts->no_tokenizer) {
        st = load_tokenizer(m, err);
        if (st)
            goto out;
    }
    if (hq)
        qb_hfq_scheme(hq, &m->scheme);
    else if (!m->scheme.name[0])
        qb_scheme_parse(m->base_dtype == QB_DTYPE_F16 ? "fp16"
                        : m->base_dtype == QB_DTYPE_F32 ? "f32" : "bf16", 0, &m->scheme, NULL);
    *out = m;
    m = NULL;
out:
    free(cfg_path);
    qb_hfq_free(hq);
    qb_model_free(m);
    return st;
}

void qb_model_free(struct qb_model *m)
{
    if (!m)
        return;
    if (m->layers) {
        for (int i = 0; i < m->cfg.n_layers; i++) {
            struct qb_layer *L = &m->layers[i];
            for (int s = 0; s < QB_LIN_COUNT; s++)
                qb_linear_release(&L->lin[s]);
            free(L->attn_norm);
            free(L->ffn_norm);
            free(L->q_norm);
            free(L->k_norm);
        }
        free(m->layers);
    }
    qb_linear_release(&m->embed);
    qb_linear_release(&m->lm_head);
    free(m->final_norm);
    qb_tok_free(m->tok);
    qb_ckpt_close(m->ckpt);
    free(m->dir);
    free(m);
}

void qb_model_linear_to_f32(const struct qb_linear *lin, float *out)
{
    qb_wfmt_get(lin->fmt)->dequant_rows(lin, 0, lin->rows, out);
}

/* Replace one linear by its quantized copy; keeps the bias. */
static enum qb_status quantize_linear(struct qb_linear *lin, const struct qb_scheme *scheme,
                                      const char *name, struct qb_err *err)
{
    size_t n = (size_t)lin->rows * (size_t)lin->cols;
    float *w = qb_malloc_array(n, sizeof(float));
    if (!w)
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory quantizing '%s'", name);
    qb_model_linear_to_f32(lin, w);
    struct qb_linear q;
    enum qb_status st =
        qb_linear_quantize(w, lin->rows, lin->cols, scheme->fmt, &scheme->qp, name, &q, err);
    free(w);
    if (st)
        return st;
    q.bias = lin->bias;
    q.owned_bias = lin->owned_bias;
    lin->owned_bias = NULL;
    qb_linear_release(lin);
    *lin = q;
    return QB_OK;
}

enum qb_status qb_model_apply_scheme(struct qb_model *m, const struct qb_scheme *scheme,
                                     struct qb_progress *progress, struct qb_err *err)
{
    if (scheme->needs_calibration)
        return qb_err_set(err, QB_ERR_USAGE, "scheme '%s' needs calibration data (--calib FILE)",
                          scheme->name);
    if (m->scheme.method != QB_METHOD_NONE)
        return qb_err_set(err, QB_ERR_INTERNAL, "model is already quantized (%s)", m->scheme.name);
    if (scheme->method == QB_METHOD_NONE && scheme->fmt == m->layers[0].lin[0].fmt) {
        m->scheme = *scheme;
        return QB_OK;
    }
    if (scheme->method == QB_METHOD_GGUF)
        return qb_gguf_model_apply_scheme(m, scheme, progress, err);
    qb_progress_stage(progress, "quantizing");
    int n_layers = m->cfg.n_layers;
    for (int i = 0; i < n_layers; i++) {
        if (qb_progress_cancelled(progress))
            return qb_err_set(err, QB_ERR_CANCELLED, "cancelled");
        qb_progress_layer(progress, i + 1, n_layers);
        for (int s = 0; s < QB_LIN_COUNT; s++) {
            char name[128];
            snprintf(name, sizeof name, "model.layers.%d.%s.%s.weight", i,
                     slot_is_mlp(s) ? "mlp" : "self_attn", slot_names[s]);
            enum qb_status st = quantize_linear(&m->layers[i].lin[s], scheme, name, err);
            if (st)
                return st;
        }
    }
    m->scheme = *scheme;
    return QB_OK;
}

size_t qb_model_decoder_bytes(const struct qb_model *m)
{
    size_t total = 0;
    for (int i = 0; i < m->cfg.n_layers; i++) {
        for (int s = 0; s < QB_LIN_COUNT; s++)
            total += m->layers[i].lin[s].data_bytes;
    }
    return total;
}

int64_t qb_model_decoder_params(const struct qb_model *m)
{
    int64_t total = 0;
    for (int i = 0; i < m->cfg.n_layers; i++) {
        for (int s = 0; s < QB_LIN_COUNT; s++)
            total += m->layers[i].lin[s].rows * m->layers[i].lin[s].cols;
    }
    return total;
}

size_t qb_model_weight_bytes(const struct qb_model *m)
{
    size_t total = qb_model_decoder_bytes(m) + m->embed.data_bytes;
    if (m->lm_head.data != m->embed.data)
        total += m->lm_head.data_bytes;
    size_t norms = (size_t)m->cfg.hidden * (2 * (size_t)m->cfg.n_layers + 1);
    return total + norms * qb_dtype_size(m->base_dtype);
}
