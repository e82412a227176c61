/*
 * gguf_model.c - gguf-* schemes in memory and GGUF files as struct qb_model
 * (see gguf_model.h).
 */
#include "gguf_model.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "ggml_quants.h"
#include "gguf_vocab.h"

static const enum qb_gguf_llama_tensor slot_tensors[QB_LIN_COUNT] = {
    [QB_LIN_Q] = QB_GGUF_T_ATTN_Q,        [QB_LIN_K] = QB_GGUF_T_ATTN_K,
    [QB_LIN_V] = QB_GGUF_T_ATTN_V,        [QB_LIN_O] = QB_GGUF_T_ATTN_OUTPUT,
    [QB_LIN_GATE] = QB_GGUF_T_FFN_GATE,   [QB_LIN_UP] = QB_GGUF_T_FFN_UP,
    [QB_LIN_DOWN] = QB_GGUF_T_FFN_DOWN,
};

enum qb_gguf_llama_tensor qb_gguf_slot_tensor(enum qb_linear_slot slot)
{
    return slot_tensors[slot];
}

int qb_gguf_is_model_path(const char *path)
{
    size_t n = path ? strlen(path) : 0;
    struct stat sb;
    if (n < 6 || strcasecmp(path + n - 5, ".gguf") != 0)
        return 0;
    return !(stat(path, &sb) == 0 && S_ISDIR(sb.st_mode));
}

/* ==== gguf-* schemes in memory ===================================================== */

enum qb_status qb_gguf_model_tensor_type(const struct qb_model *m, int ftype,
                                         const char *gguf_name, int64_t ne0, int *type,
                                         struct qb_err *err)
{
    struct qb_gguf_mix_arch arch = {
        .n_layer = m->cfg.n_layers,
        .n_head = m->cfg.n_heads,
        .n_head_kv = m->cfg.n_kv_heads,
        .has_output = !m->cfg.tie_embeddings,
    };
    return qb_gguf_mix_type(ftype, &arch, gguf_name, 2, ne0, QB_GGML_F32, type, err);
}

enum qb_status qb_gguf_quantize_linear(const struct qb_linear *src, int type, const char *name,
                                       struct qb_linear *out, struct qb_err *err)
{
    size_t n = (size_t)src->rows * (size_t)src->cols;
    float *w = qb_malloc_array(n, sizeof(float));
    if (!w)
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory quantizing '%s'", name);
    qb_model_linear_to_f32(src, w);
    qb_ggml_round_f16(w, w, n);
    struct qb_quant_params qp = {.ggml_type = type};
    enum qb_status st = qb_linear_quantize(w, src->rows, src->cols, QB_WFMT_GGML, &qp, name, out,
                                           err);
    free(w);
    return st;
}

/* Replace *lin by its quantized copy under ftype; keeps the bias. */
static enum qb_status requantize(const struct qb_model *m, int ftype, const char *gguf_name,
                                 struct qb_linear *lin, struct qb_err *err)
{
    int type;
    struct qb_linear q;
    enum qb_status st = qb_gguf_model_tensor_type(m, ftype, gguf_name, lin->cols, &type, err);
    if (!st)
        st = qb_gguf_quantize_linear(lin, type, gguf_name, &q, err);
    if (st)
        return st;
    q.bias = lin->bias;
    q.owned_bias = lin->owned_bias;
    lin->owned_bias = NULL;
    qb_linear_release(lin);
    *lin = q;
    return QB_OK;
}

/* token_embd and output; a tied lm_head becomes a view of the quantized embedding. */
static enum qb_status requantize_embeddings(struct qb_model *m, int ftype, struct qb_err *err)
{
    enum qb_status st = requantize(m, ftype, "token_embd.weight", &m->embed, err);
    if (st)
        return st;
    if (!m->cfg.tie_embeddings)
        return requantize(m, ftype, "output.weight", &m->lm_head, err);
    qb_linear_release(&m->lm_head);
    m->lm_head = m->embed;
    m->lm_head.owned = NULL;
    m->lm_head.owned_bias = NULL;
    m->lm_head.owned_g_idx = NULL;
    return QB_OK;
}

enum qb_status qb_gguf_model_apply_scheme(struct qb_model *m, const struct qb_scheme *scheme,
                                          struct qb_progress *progress, struct qb_err *err)
{
    int ftype = qb_gguf_ftype_from_name(scheme->name);
    if (ftype < 0)
        return qb_err_set(err, QB_ERR_USAGE, "scheme '%s' is not a GGUF type", scheme->name);
    qb_progress_stage(progress, "quantizing (llama.cpp mix)");
    enum qb_status st = requantize_embeddings(m, ftype, err);
    for (int i = 0; !st && i < m->cfg.n_layers; i++) {
        if (qb_progress_cancelled(progress))
            return qb_err_set(err, QB_ERR_CANCELLED, "cancelled");
        qb_progress_layer(progress, i + 1, m->cfg.n_layers);
        for (int s = 0; !st && s < QB_LIN_COUNT; s++) {
            char name[64];
            qb_gguf_llama_tensor_name(slot_tensors[s], i, name, sizeof name);
            st = requantize(m, ftype, name, &m->layers[i].lin[s], err);
        }
    }
    if (!st)
        m->scheme = *scheme;
    return st;
}

/* ==== loading a GGUF file ========================================================== */

struct loader {
    const char *path;
    struct qb_gguf *g;
    struct qb_model *m;
};

static enum qb_status find_checked(const struct loader *L, const char *name, uint32_t n_dims,
                                   int64_t ne0, int64_t ne1, const struct qb_gguf_tensor **out,
                                   struct qb_err *err)
{
    const struct qb_gguf_tensor *t = qb_gguf_find_tensor(L->g, name);
    *out = NULL;
    if (!t)
        return qb_err_set(err, QB_ERR_FORMAT, "%s: tensor '%s' is missing; the file is not a "
                          "complete llama model", L->path, name);
    if (t->n_dims != n_dims || t->ne[0] != ne0 || (n_dims > 1 && t->ne[1] != ne1))
        return qb_err_set(err, QB_ERR_FORMAT, "%s: tensor '%s' has shape [%lld, %lld] (%u dims); "
                          "the llama.* metadata implies [%lld, %lld] (ne0 first)", L->path, name,
                          (long long)t->ne[0], (long long)t->ne[1], t->n_dims, (long long)ne0,
                          (long long)(n_dims > 1 ? ne1 : 1));
    const struct qb_ggml_type_info *ti = qb_ggml_type_info(t->type);
    if (!ti || !ti->can_dequantize)
        return qb_err_set(err, QB_ERR_UNSUPPORTED, "%s: tensor '%s' is stored as ggml type %s, "
                          "which quantbench cannot decode", L->path, name,
                          ti ? ti->name : "(unknown)");
    *out = t;
    return QB_OK;
}

/* A weight matrix [rows][cols] copied into a linear; unpermute_heads > 0 puts
 * attn_q/attn_k rows back in HF order. */
static enum qb_status load_matrix(const struct loader *L, const char *name, int64_t rows,
                                  int64_t cols, int unpermute_heads, struct qb_linear *lin,
                                  struct qb_err *err)
{
    const struct qb_gguf_tensor *t;
    enum qb_status st = find_checked(L, name, 2, cols, rows, &t, err);
    if (st)
        return st;
    memset(lin, 0, sizeof *lin);
    lin->rows = rows;
    lin->cols = cols;
    lin->fmt = t->type == QB_GGML_F32    ? QB_WFMT_F32
               : t->type == QB_GGML_F16  ? QB_WFMT_F16
               : t->type == QB_GGML_BF16 ? QB_WFMT_BF16
                                         : QB_WFMT_GGML;
    lin->qp.ggml_type = t->type;
    lin->owned = qb_aligned_alloc(t->bytes);
    if (!lin->owned)
        return qb_err_set(err, QB_ERR_NOMEM, "cannot allocate %zu bytes for '%s'", t->bytes, name);
    lin->data = lin->owned;
    lin->data_bytes = t->bytes;
    if (!unpermute_heads) {
        memcpy(lin->owned, t->data, t->bytes);
        return QB_OK;
    }
    int64_t row_bytes = (int64_t)(t->bytes / (size_t)rows);
    if (qb_gguf_unpermute_qk(t->data, lin->owned, rows, row_bytes, unpermute_heads, 1) != 0)
        return qb_err_set(err, QB_ERR_FORMAT, "%s: tensor '%s' has %lld rows, not %d heads of an "
                          "even head size", L->path, name, (long long)rows, unpermute_heads);
    return QB_OK;
}

static enum qb_status load_vector(const struct loader *L, const char *name, int64_t n,
                                  float **out, struct qb_err *err)
{
    const struct qb_gguf_tensor *t;
    enum qb_status st = find_checked(L, name, 1, n, 1, &t, err);
    if (st)
        return st;
    *out = qb_malloc_array((size_t)n, sizeof(float));
    if (!*out)
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory loading '%s'", name);
    if (qb_ggml_dequantize_row(t->type, t->data, *out, n) != 0)
        return qb_err_set(err, QB_ERR_UNSUPPORTED, "%s: tensor '%s' (%lld values) cannot be "
                          "decoded", L->path, name, (long long)n);
    return QB_OK;
}

static void slot_shape(const struct qb_config *c, enum qb_linear_slot s, int64_t *rows,
                       int64_t *cols)
{
    int64_t q = (int64_t)c->n_heads * c->head_dim, kv = (int64_t)c->n_kv_heads * c->head_dim;
    int64_t r[QB_LIN_COUNT] = {q, kv, kv, c->hidden, c->intermediate, c->intermediate,
                               c->hidden};
    int64_t k[QB_LIN_COUNT] = {c->hidden, c->hidden, c->hidden, q, c->hidden, c->hidden,
                               c->intermediate};
    *rows = r[s];
    *cols = k[s];
}

static enum qb_status load_layer(const struct loader *L, int i, struct qb_err *err)
{
    const struct qb_config *c = &L->m->cfg;
    struct qb_layer *layer = &L->m->layers[i];
    char name[64];
    enum qb_status st = QB_OK;
    for (int s = 0; !st && s < QB_LIN_COUNT; s++) {
        int64_t rows, cols;
        slot_shape(c, s, &rows, &cols);
        int heads = s == QB_LIN_Q ? c->n_heads : s == QB_LIN_K ? c->n_kv_heads : 0;
        qb_gguf_llama_tensor_name(slot_tensors[s], i, name, sizeof name);
        st = load_matrix(L, name, rows, cols, heads, &layer->lin[s], err);
    }
    if (st)
        return st;
    qb_gguf_llama_tensor_name(QB_GGUF_T_ATTN_NORM, i, name, sizeof name);
    st = load_vector(L, name, c->hidden, &layer->attn_norm, err);
    if (st)
        return st;
    qb_gguf_llama_tensor_name(QB_GGUF_T_FFN_NORM, i, name, sizeof name);
    return load_vector(L, name, c->hidden, &layer->ffn_norm, err);
}

static enum qb_status load_weights(const struct loader *L, struct qb_err *err)
{
    struct qb_model *m = L->m;
    const struct qb_config *c = &m->cfg;
    enum qb_status st = load_matrix(L, "token_embd.weight", c->vocab, c->hidden, 0, &m->embed,
                                    err);
    if (!st && c->tie_embeddings) {
        m->lm_head = m->embed;
        m->lm_head.owned = NULL;
    } else if (!st) {
        st = load_matrix(L, "output.weight", c->vocab, c->hidden, 0, &m->lm_head, err);
    }
    if (!st)
        st = load_vector(L, "output_norm.weight", c->hidden, &m->final_norm, err);
    if (st)
        return st;
    m->layers = qb_calloc_array((size_t)c->n_layers, sizeof *m->layers);
    if (!m->layers)
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory");
    for (int i = 0; !st && i < c->n_layers; i++)
        st = load_layer(L, i, err);
    return st;
}

static enum qb_status optional_token_id(const struct qb_gguf *g, const char *key, int *id,
                                        struct qb_err *err)
{
    uint64_t v;
    *id = -1;
    if (qb_gguf_find_key(g, key) < 0)
        return QB_OK;
    enum qb_status st = qb_gguf_get_uint(g, key, &v, err);
    if (!st && v <= INT32_MAX)
        *id = (int)v;
    return st;
}

/* Reject what the engine cannot run (or what would make it index out of range). */
static enum qb_status check_config(const char *path, const struct qb_config *c,
                                   struct qb_err *err)
{
    const int64_t max_dim = 1 << 20;
    int ok = c->n_layers > 0 && c->n_layers <= 4096 && c->hidden > 0 && c->hidden <= max_dim &&
             c->intermediate > 0 && c->intermediate <= max_dim && c->n_heads > 0 &&
             c->n_kv_heads > 0 && c->n_heads % c->n_kv_heads == 0 && c->head_dim > 0 &&
             c->hidden % c->n_heads == 0 &&
             c->head_dim % 2 == 0 && (int64_t)c->n_heads * c->head_dim <= max_dim &&
             c->vocab > 0 && c->max_ctx > 0;
    if (!ok)
        return qb_err_set(err, QB_ERR_FORMAT, "%s: inconsistent llama.* hyper-parameters "
                          "(layers %d, embedding %d, ffn %d, heads %d/%d, head size %d, vocab %d, "
                          "context %d)", path, c->n_layers, c->hidden, c->intermediate,
                          c->n_heads, c->n_kv_heads, c->head_dim, c->vocab, c->max_ctx);
    return QB_OK;
}

static enum qb_status read_rope_scaling(const struct loader *L, struct qb_config *c,
                                        struct qb_err *err)
{
    const char *type = "none";
    if (qb_gguf_find_tensor(L->g, "rope_freqs.weight"))
        return qb_err_set(err, QB_ERR_UNSUPPORTED, "%s: per-frequency RoPE factors "
                          "(rope_freqs.weight, Llama 3.1 style) are not supported yet; evaluate "
                          "the Hugging Face checkpoint instead", L->path);
    if (qb_gguf_find_key(L->g, "llama.rope.scaling.type") >= 0) {
        enum qb_status st = qb_gguf_get_str(L->g, "llama.rope.scaling.type", &type, NULL, err);
        if (st)
            return st;
    }
    if (strcmp(type, "none") == 0)
        return QB_OK;
    double factor = 0.0;
    if (strcmp(type, "linear") != 0 ||
        qb_gguf_get_float(L->g, "llama.rope.scaling.factor", &factor, NULL) || factor <= 0.0)
        return qb_err_set(err, QB_ERR_UNSUPPORTED, "%s: RoPE scaling '%s' is not supported "
                          "(none, or linear with llama.rope.scaling.factor)", L->path, type);
    c->rope_type = QB_ROPE_LINEAR;
    c->rope_factor = factor;
    return QB_OK;
}

static enum qb_status read_config(const struct loader *L, struct qb_config *c, struct qb_err *err)
{
    struct qb_gguf_llama_hparams hp;
    enum qb_status st = qb_gguf_llama_read_hparams(L->g, &hp, err);
    if (st) {
        char msg[sizeof err->msg];
        snprintf(msg, sizeof msg, "%s", err ? err->msg : "bad llama metadata");
        return qb_err_set(err, st, "%s: %s", L->path, msg);
    }
    memset(c, 0, sizeof *c);
    c->arch = QB_ARCH_LLAMA;
    snprintf(c->model_type, sizeof c->model_type, "llama");
    c->n_layers = (int)QB_MIN(hp.n_layer, (uint32_t)INT32_MAX);
    c->hidden = (int)QB_MIN(hp.n_embd, (uint32_t)INT32_MAX);
    c->intermediate = (int)QB_MIN(hp.n_ff, (uint32_t)INT32_MAX);
    c->n_heads = (int)QB_MIN(hp.n_head, (uint32_t)INT32_MAX);
    c->n_kv_heads = (int)QB_MIN(hp.n_head_kv, (uint32_t)INT32_MAX);
    c->head_dim = c->n_heads ? c->hidden / c->n_heads : 0;
    c->max_ctx = (int)QB_MIN(hp.n_ctx, (uint32_t)INT32_MAX);
    c->rms_eps = hp.rms_norm_eps;
    c->rope_theta = hp.rope_theta;
    c->rope_factor = 1.0;
    c->rope_type = QB_ROPE_DEFAULT;
    snprintf(c->torch_dtype, sizeof c->torch_dtype, "float32");
    const struct qb_gguf_tensor *embd = qb_gguf_find_tensor(L->g, "token_embd.weight");
    if (!embd)
        return qb_err_set(err, QB_ERR_FORMAT, "%s: tensor 'token_embd.weight' is missing; the "
                          "file is not a complete llama model", L->path);
    c->vocab = (int)QB_MIN(embd->ne[1], (int64_t)INT32_MAX);
    c->tie_embeddings = qb_gguf_find_tensor(L->g, "output.weight") == NULL;
    st = optional_token_id(L->g, "tokenizer.ggml.bos_token_id", &c->bos_id, err);
    if (!st)
        st = optional_token_id(L->g, "tokenizer.ggml.eos_token_id", &c->eos_id, err);
    if (!st)
        st = read_rope_scaling(L, c, err);
    if (!st)
        st = check_config(L->path, c, err);
    if (!st && hp.head_dim && (int)hp.head_dim != c->head_dim)
        st = qb_err_set(err, QB_ERR_UNSUPPORTED, "%s: llama.rope.dimension_count %u differs "
                        "from the head size %d (partial RoPE is not supported)", L->path,
                        hp.head_dim, c->head_dim);
    return st;
}

/* m->scheme named after general.file_type, method NONE (see gguf_model.h). */
static void name_scheme(const struct loader *L, struct qb_model *m)
{
    uint64_t ft = 0;
    const char *ftname = "?";
    if (qb_gguf_get_uint(L->g, "general.file_type", &ft, NULL) == QB_OK && ft < 1000)
        ftname = qb_gguf_ftype_name((int)ft);
    memset(&m->scheme, 0, sizeof m->scheme);
    m->scheme.method = QB_METHOD_NONE;
    m->scheme.fmt = m->layers[0].lin[0].fmt;
    if (strcmp(ftname, "?") == 0)
        snprintf(m->scheme.name, sizeof m->scheme.name, "gguf");
    else
        snprintf(m->scheme.name, sizeof m->scheme.name, "gguf-%s", ftname);
    for (char *p = m->scheme.name; *p; p++)
        *p = (char)(*p >= 'A' && *p <= 'Z' ? *p - 'A' + 'a' : *p);
}

enum qb_status qb_gguf_model_load(const char *path, const struct qb_model_load_opts *opts,
                                  struct qb_model **out, struct qb_err *err)
{
    struct loader L = {.path = path};
    *out = NULL;
    enum qb_status st = qb_gguf_open(path, &L.g, err);
    if (st)
        return st;
    L.m = calloc(1, sizeof *L.m);
    if (!L.m || !(L.m->dir = qb_strdup(path))) {
        st = qb_err_set(err, QB_ERR_NOMEM, "out of memory");
        goto out;
    }
    L.m->base_dtype = QB_DTYPE_F32;
    st = read_config(&L, &L.m->cfg, err);
    if (!st)
        st = load_weights(&L, err);
    if (!st && !(opts && opts->no_tokenizer))
        st = qb_gguf_vocab_load(L.g, path, &L.m->tok, err);
    if (st)
        goto out;
    name_scheme(&L, L.m);
    *out = L.m;
    L.m = NULL;
out:
    qb_model_free(L.m);
    qb_gguf_close(L.g);
    return st;
}
