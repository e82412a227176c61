/*
 * gguf_export.c - HF Llama checkpoint -> GGUF + Ollama Modelfile (see
 * gguf_export.h). The model is loaded as views into the safetensors; each
 * tensor is rounded, quantized and permuted inside the writer's fill callback,
 * so peak extra memory is one f32 matrix plus its packed copy.
 */
#include "gguf_export.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fileutil.h"
#include "gguf.h"
#include "gguf_model.h"
#include "model.h"

#define TOKENIZER_JSON_MAX ((size_t)1 << 30)
/* The pattern a ByteLevel pre-tokenizer with use_regex applies (HF tokenizers). */
#define HF_BYTELEVEL_RX "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"
#define MAX_SPLITS 8

/* ==== tokenizer.json -> tokenizer.ggml.* =========================================== */

struct hf_vocab {
    int32_t n;              /* = config vocab_size */
    char **tokens;          /* [n] */
    int32_t *types;         /* [n] enum qb_tok_type */
    char **merges;
    size_t n_merges;
    const char *pre;        /* static name */
    int add_bos;
    char *chat_template;    /* or NULL */
};

static void hf_vocab_free(struct hf_vocab *v)
{
    for (int32_t i = 0; v->tokens && i < v->n; i++)
        free(v->tokens[i]);
    for (size_t i = 0; v->merges && i < v->n_merges; i++)
        free(v->merges[i]);
    free(v->tokens);
    free(v->types);
    free(v->merges);
    free(v->chat_template);
}

static enum qb_status set_token(struct hf_vocab *v, const char *path, double id, const char *text,
                                int32_t type, struct qb_err *err)
{
    if (!(id >= 0 && id < v->n) || !text)
        return qb_err_set(err, QB_ERR_FORMAT, "%s: token '%s' has id %.0f outside the "
                          "vocab_size %d of config.json", path, text ? text : "?", id, v->n);
    int32_t i = (int32_t)id;
    free(v->tokens[i]);
    v->tokens[i] = qb_strdup(text);
    v->types[i] = type;
    return v->tokens[i] ? QB_OK : qb_err_set(err, QB_ERR_NOMEM, "out of memory");
}

static enum qb_status read_vocab(const cJSON *model, const cJSON *added, const char *path,
                                 struct hf_vocab *v, struct qb_err *err)
{
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    if (!cJSON_IsObject(vocab))
        return qb_err_set(err, QB_ERR_FORMAT, "%s: model.vocab is not an object", path);
    enum qb_status st = QB_OK;
    const cJSON *it;
    cJSON_ArrayForEach(it, vocab)
    {
        if (!cJSON_IsNumber(it))
            return qb_err_set(err, QB_ERR_FORMAT, "%s: model.vocab['%s'] is not an id", path,
                              it->string);
        st = set_token(v, path, it->valuedouble, it->string, QB_TOK_TYPE_NORMAL, err);
        if (st)
            return st;
    }
    cJSON_ArrayForEach(it, added)
    {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(it, "id");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(it, "content");
        int special = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(it, "special"));
        if (!cJSON_IsNumber(id) || !cJSON_IsString(content))
            return qb_err_set(err, QB_ERR_FORMAT, "%s: an added_tokens entry lacks id/content",
                              path);
        st = set_token(v, path, id->valuedouble, content->valuestring,
                       special ? QB_TOK_TYPE_CONTROL : QB_TOK_TYPE_USER_DEFINED, err);
        if (st)
            return st;
    }
    for (int32_t i = 0; i < v->n; i++) { /* convert_hf_to_gguf pads to vocab_size */
        if (!v->tokens[i]) {
            v->tokens[i] = qb_asprintf("[PAD%d]", (int)i);
            v->types[i] = QB_TOK_TYPE_UNUSED;
            if (!v->tokens[i])
                return qb_err_set(err, QB_ERR_NOMEM, "out of memory");
        }
    }
    return QB_OK;
}

static enum qb_status read_merges(const cJSON *model, const char *path, struct hf_vocab *v,
                                  struct qb_err *err)
{
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    int n = cJSON_GetArraySize(merges);
    if (!cJSON_IsArray(merges) || n == 0)
        return qb_err_set(err, QB_ERR_FORMAT, "%s: model.merges is missing or empty", path);
    v->merges = qb_calloc_array((size_t)n, sizeof *v->merges);
    if (!v->merges)
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory");
    const cJSON *m;
    cJSON_ArrayForEach(m, merges)
    {
        const cJSON *a = cJSON_GetArrayItem(m, 0), *b = cJSON_GetArrayItem(m, 1);
        char *s = cJSON_IsString(m) ? qb_strdup(m->valuestring)
                  : cJSON_IsString(a) && cJSON_IsString(b)
                      ? qb_asprintf("%s %s", a->valuestring, b->valuestring)
                      : NULL;
        if (!s)
            return qb_err_set(err, QB_ERR_FORMAT, "%s: model.merges[%zu] is not \"a b\" or "
                              "[a, b]", path, v->n_merges);
        v->merges[v->n_merges++] = s;
    }
    return QB_OK;
}

/* Collect the split regexes of one pre-tokenizer (recursing into Sequence);
 * returns 0 for a part llama.cpp has no name for. */
static int collect_splits(const cJSON *pt, const char **rx, size_t *n, int *byte_level)
{
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(pt, "type");
    const char *t = cJSON_IsString(type) ? type->valuestring : "";
    if (strcmp(t, "Sequence") == 0) {
        const cJSON *sub;
        cJSON_ArrayForEach(sub, cJSON_GetObjectItemCaseSensitive(pt, "pretokenizers"))
        {
            if (!collect_splits(sub, rx, n, byte_level))
                return 0;
        }
        return 1;
    }
    const char *add = NULL;
    if (strcmp(t, "Split") == 0) {
        const cJSON *pat = cJSON_GetObjectItemCaseSensitive(pt, "pattern");
        const cJSON *r = cJSON_GetObjectItemCaseSensitive(pat, "Regex");
        add = cJSON_IsString(r) ? r->valuestring : NULL;
        if (!add)
            return 0;
    } else if (strcmp(t, "ByteLevel") == 0) {
        *byte_level = 1;
        const cJSON *use = cJSON_GetObjectItemCaseSensitive(pt, "use_regex");
        if (!cJSON_IsFalse(use))
            add = HF_BYTELEVEL_RX;
    } else if (strcmp(t, "Digits") == 0) {
        if (!cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(pt, "individual_digits")))
            return 0;
        add = "\\p{N}";
    } else {
        return 0;
    }
    if (add && *n == MAX_SPLITS)
        return 0;
    if (add)
        rx[(*n)++] = add;
    return 1;
}

static int template_adds_bos(const cJSON *pp)
{
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(pp, "type");
    if (cJSON_IsString(type) && strcmp(type->valuestring, "Sequence") == 0) {
        const cJSON *sub;
        cJSON_ArrayForEach(sub, cJSON_GetObjectItemCaseSensitive(pp, "processors"))
        {
            if (template_adds_bos(sub))
                return 1;
        }
        return 0;
    }
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(pp, "single");
    return cJSON_IsArray(single) &&
           cJSON_GetObjectItemCaseSensitive(cJSON_GetArrayItem(single, 0), "SpecialToken");
}

static enum qb_status parse_tokenizer(const cJSON *root, const char *path, struct hf_vocab *v,
                                      struct qb_err *err)
{
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(model, "type");
    if (!cJSON_IsString(type) || strcmp(type->valuestring, "BPE") != 0)
        return qb_err_set(err, QB_ERR_UNSUPPORTED, "%s: model.type is not BPE; GGUF export "
                          "supports byte-level BPE tokenizers", path);
    const char *rx[MAX_SPLITS];
    size_t n_rx = 0;
    int byte_level = 0;
    int known = collect_splits(cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), rx,
                               &n_rx, &byte_level);
    if (!byte_level)
        return qb_err_set(err, QB_ERR_UNSUPPORTED, "%s: not a byte-level BPE tokenizer (no "
                          "ByteLevel pre-tokenizer); SentencePiece export is not supported",
                          path);
    v->pre = known ? qb_gguf_pre_from_regexes(rx, n_rx) : NULL;
    if (!v->pre)
        return qb_err_set(err, QB_ERR_UNSUPPORTED, "%s: the pre-tokenizer's split regexes match "
                          "no tokenizer.ggml.pre name llama.cpp knows", path);
    v->add_bos = template_adds_bos(cJSON_GetObjectItemCaseSensitive(root, "post_processor"));
    enum qb_status st =
        read_vocab(model, cJSON_GetObjectItemCaseSensitive(root, "added_tokens"), path, v, err);
    return st ? st : read_merges(model, path, v, err);
}

static enum qb_status read_chat_template(const char *dir, struct hf_vocab *v)
{
    char *path = qb_path_join(dir, "tokenizer_config.json"), *text = NULL;
    size_t len;
    if (!path || !qb_path_exists(path) ||
        qb_file_read_all(path, TOKENIZER_JSON_MAX, &text, &len, NULL) != QB_OK) {
        free(path);
        return QB_OK; /* optional */
    }
    cJSON *root = cJSON_ParseWithLength(text, len);
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(root, "chat_template");
    if (cJSON_IsString(t))
        v->chat_template = qb_strdup(t->valuestring);
    cJSON_Delete(root);
    free(text);
    free(path);
    return QB_OK;
}

static enum qb_status load_hf_vocab(const char *dir, int32_t n_vocab, struct hf_vocab *v,
                                    struct qb_err *err)
{
    char *path = qb_path_join(dir, "tokenizer.json"), *text = NULL;
    size_t len = 0;
    cJSON *root = NULL;
    v->n = n_vocab;
    v->tokens = qb_calloc_array((size_t)n_vocab, sizeof *v->tokens);
    v->types = qb_calloc_array((size_t)n_vocab, sizeof *v->types);
    enum qb_status st = path && v->tokens && v->types
                            ? qb_file_read_all(path, TOKENIZER_JSON_MAX, &text, &len, err)
                            : qb_err_set(err, QB_ERR_NOMEM, "out of memory");
    if (st)
        goto out;
    root = cJSON_ParseWithLength(text, len);
    if (!root) {
        st = qb_err_set(err, QB_ERR_FORMAT, "%s: not valid JSON", path);
        goto out;
    }
    st = parse_tokenizer(root, path, v, err);
    if (!st)
        st = read_chat_template(dir, v);
out:
    cJSON_Delete(root);
    free(text);
    free(path);
    return st;
}

static enum qb_status add_tokenizer(struct qb_gguf_writer *w, const struct hf_vocab *v,
                                    const struct qb_config *c, struct qb_err *err)
{
    enum qb_status st = qb_gguf_add_str(w, "tokenizer.ggml.model", "gpt2", err);
    if (!st)
        st = qb_gguf_add_str(w, "tokenizer.ggml.pre", v->pre, err);
    if (!st)
        st = qb_gguf_add_str_array(w, "tokenizer.ggml.tokens", (const char *const *)v->tokens,
                                   NULL, (uint64_t)v->n, err);
    if (!st)
        st = qb_gguf_add_array(w, "tokenizer.ggml.token_type", QB_GGUF_I32, v->types,
                               (uint64_t)v->n, err);
    if (!st)
        st = qb_gguf_add_str_array(w, "tokenizer.ggml.merges", (const char *const *)v->merges,
                                   NULL, v->n_merges, err);
    if (!st && c->bos_id >= 0)
        st = qb_gguf_add_u32(w, "tokenizer.ggml.bos_token_id", (uint32_t)c->bos_id, err);
    if (!st && c->eos_id >= 0)
        st = qb_gguf_add_u32(w, "tokenizer.ggml.eos_token_id", (uint32_t)c->eos_id, err);
    if (!st)
        st = qb_gguf_add_bool(w, "tokenizer.ggml.add_bos_token", v->add_bos, err);
    if (!st)
        st = qb_gguf_add_bool(w, "tokenizer.ggml.add_eos_token", 0, err);
    if (!st && v->chat_template)
        st = qb_gguf_add_str(w, "tokenizer.chat_template", v->chat_template, err);
    return st;
}

/* ==== tensors ====================================================================== */

struct export_ctx {
    const struct qb_model *m;
    struct qb_progress *progress;
};

struct tensor_job {
    struct export_ctx *x;
    char name[64];
    const struct qb_linear *lin; /* a weight matrix, or */
    const float *vec;            /* a norm vector of n floats */
    int64_t n;
    int type;
    int heads;                   /* > 0: permute rows for n heads (attn_q/attn_k) */
    int layer;                   /* progress: 1-based layer, 0 for the others */
};

static enum qb_status fill_tensor(void *ctx, void *dst, size_t bytes, struct qb_err *err)
{
    struct tensor_job *j = ctx;
    if (qb_progress_cancelled(j->x->progress))
        return qb_err_set(err, QB_ERR_CANCELLED, "cancelled");
    if (j->layer)
        qb_progress_layer(j->x->progress, j->layer, j->x->m->cfg.n_layers);
    if (j->vec) {
        memcpy(dst, j->vec, bytes);
        return QB_OK;
    }
    struct qb_linear q;
    enum qb_status st = qb_gguf_quantize_linear(j->lin, j->type, j->name, &q, err);
    if (st)
        return st;
    if (q.data_bytes != bytes)
        st = qb_err_set(err, QB_ERR_INTERNAL, "'%s': %zu packed bytes, the GGUF expects %zu",
                        j->name, q.data_bytes, bytes);
    else if (!j->heads)
        memcpy(dst, q.data, bytes);
    else if (qb_gguf_permute_qk(q.data, dst, q.rows, (int64_t)(bytes / (size_t)q.rows), j->heads,
                                1) != 0)
        st = qb_err_set(err, QB_ERR_UNSUPPORTED, "'%s': %lld rows are not %d heads of an even "
                        "size", j->name, (long long)q.rows, j->heads);
    qb_linear_release(&q);
    return st;
}

static enum qb_status add_matrix(struct qb_gguf_writer *w, struct tensor_job *j, int ftype,
                                 struct qb_err *err)
{
    enum qb_status st =
        qb_gguf_model_tensor_type(j->x->m, ftype, j->name, j->lin->cols, &j->type, err);
    if (st)
        return st;
    int64_t ne[2] = {j->lin->cols, j->lin->rows};
    return qb_gguf_add_tensor_fill(w, j->name, j->type, 2, ne, fill_tensor, j, err);
}

static enum qb_status add_vector(struct qb_gguf_writer *w, struct tensor_job *j,
                                 struct qb_err *err)
{
    int64_t ne[1] = {j->n};
    return qb_gguf_add_tensor_fill(w, j->name, QB_GGML_F32, 1, ne, fill_tensor, j, err);
}

/* Jobs in convert_hf_to_gguf's order: token_embd, blocks, output_norm, output. */
static enum qb_status add_tensors(struct qb_gguf_writer *w, struct export_ctx *x, int ftype,
                                  struct tensor_job *jobs, struct qb_err *err)
{
    const struct qb_model *m = x->m;
    const struct qb_config *c = &m->cfg;
    size_t k = 0;
    enum qb_status st;
    jobs[k] = (struct tensor_job){.x = x, .lin = &m->embed};
    snprintf(jobs[k].name, sizeof jobs[k].name, "token_embd.weight");
    st = add_matrix(w, &jobs[k++], ftype, err);
    for (int i = 0; !st && i < c->n_layers; i++) {
        const struct qb_layer *L = &m->layers[i];
        struct tensor_job *j = &jobs[k++];
        *j = (struct tensor_job){.x = x, .vec = L->attn_norm, .n = c->hidden, .layer = i + 1};
        qb_gguf_llama_tensor_name(QB_GGUF_T_ATTN_NORM, i, j->name, sizeof j->name);
        st = add_vector(w, j, err);
        for (int s = 0; !st && s < QB_LIN_COUNT; s++) {
            j = &jobs[k++];
            *j = (struct tensor_job){.x = x, .lin = &L->lin[s], .layer = i + 1,
                                     .heads = s == QB_LIN_Q   ? c->n_heads
                                              : s == QB_LIN_K ? c->n_kv_heads
                                                              : 0};
            qb_gguf_llama_tensor_name(qb_gguf_slot_tensor(s), i, j->name, sizeof j->name);
            st = add_matrix(w, j, ftype, err);
            if (!st && s == QB_LIN_O) {
                j = &jobs[k++];
                *j = (struct tensor_job){.x = x, .vec = L->ffn_norm, .n = c->hidden,
                                         .layer = i + 1};
                qb_gguf_llama_tensor_name(QB_GGUF_T_FFN_NORM, i, j->name, sizeof j->name);
                st = add_vector(w, j, err);
            }
        }
    }
    if (st)
        return st;
    jobs[k] = (struct tensor_job){.x = x, .vec = m->final_norm, .n = c->hidden};
    snprintf(jobs[k].name, sizeof jobs[k].name, "output_norm.weight");
    st = add_vector(w, &jobs[k++], err);
    if (st || c->tie_embeddings)
        return st;
    jobs[k] = (struct tensor_job){.x = x, .lin = &m->lm_head};
    snprintf(jobs[k].name, sizeof jobs[k].name, "output.weight");
    return add_matrix(w, &jobs[k], ftype, err);
}

/* ==== checks, metadata, Modelfile ================================================== */

static enum qb_status check_exportable(const struct qb_model *m, struct qb_err *err)
{
    const struct qb_config *c = &m->cfg;
    if (c->arch != QB_ARCH_LLAMA || c->attn_bias || c->o_bias || c->mlp_bias || c->qk_norm)
        return qb_err_set(err, QB_ERR_UNSUPPORTED, "%s: GGUF export supports Llama/Mistral "
                          "checkpoints without biases (model_type '%s')", m->dir, c->model_type);
    if (c->rope_type == QB_ROPE_LLAMA3)
        return qb_err_set(err, QB_ERR_UNSUPPORTED, "%s: llama3 RoPE scaling (rope_freqs) is not "
                          "supported by GGUF export yet", m->dir);
    if ((int64_t)c->n_heads * c->head_dim != c->hidden)
        return qb_err_set(err, QB_ERR_UNSUPPORTED, "%s: head_dim %d x %d heads != hidden_size "
                          "%d is not supported by GGUF export", m->dir, c->head_dim, c->n_heads,
                          c->hidden);
    return QB_OK;
}

static enum qb_status add_metadata(struct qb_gguf_writer *w, const struct qb_model *m, int ftype,
                                   const char *name, struct qb_err *err)
{
    const struct qb_config *c = &m->cfg;
    struct qb_gguf_llama_hparams hp = {
        .name = name,
        .n_vocab = (uint32_t)c->vocab,
        .n_ctx = (uint32_t)c->max_ctx,
        .n_embd = (uint32_t)c->hidden,
        .n_ff = (uint32_t)c->intermediate,
        .n_layer = (uint32_t)c->n_layers,
        .n_head = (uint32_t)c->n_heads,
        .n_head_kv = (uint32_t)c->n_kv_heads,
        .head_dim = (uint32_t)c->head_dim,
        .rope_theta = (float)c->rope_theta,
        .rms_norm_eps = c->rms_eps,
        .file_type = (uint32_t)ftype,
    };
    enum qb_status st = qb_gguf_llama_add_metadata(w, &hp, err);
    if (!st && c->rope_type == QB_ROPE_LINEAR) {
        st = qb_gguf_add_str(w, "llama.rope.scaling.type", "linear", err);
        if (!st)
            st = qb_gguf_add_f32(w, "llama.rope.scaling.factor", (float)c->rope_factor, err);
    }
    return st;
}

char *qb_gguf_modelfile_text(const char *gguf_basename, const char *eos_text, int n_ctx)
{
    int stop_ok = eos_text && *eos_text && !strpbrk(eos_text, "\"\\\n");
    return qb_asprintf("# Ollama Modelfile written by quantbench: ollama create NAME -f Modelfile\n"
                       "FROM ./%s\n"
                       "# a base model: the prompt is passed through unchanged\n"
                       "TEMPLATE \"\"\"{{ .Prompt }}\"\"\"\n"
                       "%s%s%s"
                       "PARAMETER num_ctx %d\n",
                       gguf_basename, stop_ok ? "PARAMETER stop \"" : "",
                       stop_ok ? eos_text : "", stop_ok ? "\"\n" : "", n_ctx);
}

static char *dir_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    if (!slash)
        return qb_strdup(".");
    if (slash == path)
        return qb_strdup("/");
    return qb_asprintf("%.*s", (int)(slash - path), path);
}

static const char *base_of(const char *path)
{
    const char *slash = strrchr(path, '/');
    return slash ? slash + 1 : path;
}

/* general.name: the checkpoint directory's last component. */
static char *model_name(const char *dir)
{
    size_t n = strlen(dir);
    while (n > 1 && dir[n - 1] == '/')
        n--;
    size_t b = n;
    while (b > 0 && dir[b - 1] != '/')
        b--;
    return qb_asprintf("%.*s", (int)(n - b), dir + b);
}

static enum qb_status write_modelfile(const char *out_path, const struct qb_model *m,
                                      const struct hf_vocab *v, char **written,
                                      struct qb_err *err)
{
    char *dir = dir_of(out_path);
    const char *eos = m->cfg.eos_id >= 0 && m->cfg.eos_id < v->n ? v->tokens[m->cfg.eos_id] : NULL;
    char *text = qb_gguf_modelfile_text(base_of(out_path), eos, m->cfg.max_ctx);
    *written = dir ? qb_path_join(dir, "Modelfile") : NULL;
    enum qb_status st = text && *written
                            ? qb_file_write_atomic(*written, text, strlen(text), err)
                            : qb_err_set(err, QB_ERR_NOMEM, "out of memory");
    free(text);
    free(dir);
    return st;
}

enum qb_status qb_gguf_export(const char *model_dir, const char *scheme, const char *out_path,
                              struct qb_progress *progress, struct qb_err *err)
{
    struct qb_model *m = NULL;
    struct qb_gguf_writer *w = NULL;
    struct hf_vocab v = {0};
    struct tensor_job *jobs = NULL;
    char *name = NULL, *modelfile = NULL;
    int ftype = qb_gguf_ftype_from_name(scheme);
    if (ftype < 0)
        return qb_err_set(err, QB_ERR_USAGE, "'%s' is not a GGUF scheme (gguf-f16, gguf-q8_0, "
                          "gguf-q6_k, gguf-q5_k_m, gguf-q5_k_s, gguf-q4_k_m, gguf-q4_k_s, "
                          "gguf-q4_0, gguf-q3_k_m, gguf-q3_k_s, gguf-q2_k)", scheme);
    struct qb_model_load_opts lo = {.no_tokenizer = 1};
    enum qb_status st = qb_model_load(model_dir, &lo, &m, err);
    if (!st)
        st = check_exportable(m, err);
    if (!st)
        st = load_hf_vocab(model_dir, m->cfg.vocab, &v, err);
    if (st)
        goto out;
    struct export_ctx x = {.m = m, .progress = progress};
    name = model_name(model_dir);
    jobs = qb_calloc_array(4 + 9 * (size_t)m->cfg.n_layers, sizeof *jobs);
    st = name && jobs ? qb_gguf_writer_new(&w, err)
                      : qb_err_set(err, QB_ERR_NOMEM, "out of memory");
    if (!st)
        st = add_metadata(w, m, ftype, name, err);
    if (!st)
        st = add_tokenizer(w, &v, &m->cfg, err);
    if (!st)
        st = add_tensors(w, &x, ftype, jobs, err);
    if (st)
        goto out;
    qb_progress_stage(progress, "writing GGUF");
    st = qb_gguf_write(w, out_path, err);
    if (st)
        goto out;
    st = write_modelfile(out_path, m, &v, &modelfile, err);
    if (st)
        unlink(out_path); /* both files or neither */
out:
    qb_gguf_writer_free(w);
    free(jobs);
    free(name);
    free(modelfile);
    hf_vocab_free(&v);
    qb_model_free(m);
    return st;
}
