/*
 * gguf_vocab.c - tokenizer.ggml.* metadata to a struct qb_tok_spec and then a
 * tokenizer through qb_tok_create (see gguf_vocab.h for the key mapping).
 */
#include "gguf_vocab.h"

#include <stdlib.h>
#include <string.h>

struct vocab_arrays {
    char **pieces;
    float *scores;
    int32_t *types;
    char **merges;
    size_t n_merges;
    int32_t n_vocab;
};

static void arrays_free(struct vocab_arrays *a)
{
    for (int32_t i = 0; a->pieces && i < a->n_vocab; i++)
        free(a->pieces[i]);
    for (size_t i = 0; a->merges && i < a->n_merges; i++)
        free(a->merges[i]);
    free(a->pieces);
    free(a->scores);
    free(a->types);
    free(a->merges);
}

/* n NUL-terminated copies of a string array's elements. */
static enum qb_status copy_strings(const struct qb_gguf *g, const struct qb_gguf_array *arr,
                                   const char *origin, const char *key, char ***out,
                                   struct qb_err *err)
{
    if (arr->type != QB_GGUF_STRING)
        return qb_err_set(err, QB_ERR_FORMAT, "%s: %s is an array of %s; expected strings",
                          origin, key, qb_gguf_vtype_name(arr->type));
    char **s = qb_calloc_array(arr->n ? arr->n : 1, sizeof *s);
    if (!s)
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory reading %s", key);
    *out = s;
    for (uint64_t i = 0; i < arr->n; i++) {
        size_t len = 0;
        const char *p = qb_gguf_array_str(g, arr, i, &len);
        s[i] = malloc(len + 1);
        if (!s[i])
            return qb_err_set(err, QB_ERR_NOMEM, "out of memory reading %s", key);
        memcpy(s[i], p, len);
        s[i][len] = '\0';
    }
    return QB_OK;
}

/* A numeric per-token array (scores, token_type) of exactly n_vocab elements. */
static enum qb_status optional_numbers(const struct qb_gguf *g, const char *origin,
                                       const char *key, int32_t n_vocab,
                                       struct qb_gguf_array *arr, struct qb_err *err)
{
    memset(arr, 0, sizeof *arr);
    if (qb_gguf_find_key(g, key) < 0)
        return QB_OK;
    enum qb_status st = qb_gguf_get_array(g, key, arr, err);
    if (st)
        return st;
    if (arr->type == QB_GGUF_STRING || arr->type == QB_GGUF_ARRAY)
        return qb_err_set(err, QB_ERR_FORMAT, "%s: %s holds %s; expected numbers", origin, key,
                          qb_gguf_vtype_name(arr->type));
    if (arr->n != (uint64_t)n_vocab)
        return qb_err_set(err, QB_ERR_FORMAT, "%s: %s has %llu entries but tokenizer.ggml.tokens "
                          "has %d", origin, key, (unsigned long long)arr->n, n_vocab);
    return QB_OK;
}

static enum qb_status read_arrays(const struct qb_gguf *g, const char *origin,
                                  struct vocab_arrays *a, struct qb_err *err)
{
    struct qb_gguf_array tokens, scores, types, merges;
    enum qb_status st = qb_gguf_get_array(g, "tokenizer.ggml.tokens", &tokens, err);
    if (st)
        return st == QB_ERR_RANGE ? qb_err_set(err, QB_ERR_FORMAT, "%s: no tokenizer "
                                              "(tokenizer.ggml.tokens is missing)", origin) : st;
    if (tokens.n == 0 || tokens.n > INT32_MAX)
        return qb_err_set(err, QB_ERR_FORMAT, "%s: tokenizer.ggml.tokens has %llu entries",
                          origin, (unsigned long long)tokens.n);
    a->n_vocab = (int32_t)tokens.n;
    st = copy_strings(g, &tokens, origin, "tokenizer.ggml.tokens", &a->pieces, err);
    if (!st)
        st = optional_numbers(g, origin, "tokenizer.ggml.scores", a->n_vocab, &scores, err);
    if (!st)
        st = optional_numbers(g, origin, "tokenizer.ggml.token_type", a->n_vocab, &types, err);
    if (st)
        return st;
    if (scores.n) {
        a->scores = qb_malloc_array(scores.n, sizeof(float));
        if (!a->scores)
            return qb_err_set(err, QB_ERR_NOMEM, "out of memory");
        for (uint64_t i = 0; i < scores.n; i++)
            a->scores[i] = (float)qb_gguf_array_f64(&scores, i);
    }
    if (types.n) {
        a->types = qb_malloc_array(types.n, sizeof(int32_t));
        if (!a->types)
            return qb_err_set(err, QB_ERR_NOMEM, "out of memory");
        for (uint64_t i = 0; i < types.n; i++)
            a->types[i] = (int32_t)qb_gguf_array_i64(&types, i);
    }
    if (qb_gguf_find_key(g, "tokenizer.ggml.merges") < 0)
        return QB_OK;
    st = qb_gguf_get_array(g, "tokenizer.ggml.merges", &merges, err);
    if (st)
        return st;
    a->n_merges = merges.n;
    return copy_strings(g, &merges, origin, "tokenizer.ggml.merges", &a->merges, err);
}

/* An optional id key; keeps *id when absent. */
static enum qb_status optional_id(const struct qb_gguf *g, const char *key, int32_t n_vocab,
                                  int32_t *id, struct qb_err *err)
{
    if (qb_gguf_find_key(g, key) < 0)
        return QB_OK;
    uint64_t v;
    enum qb_status st = qb_gguf_get_uint(g, key, &v, err);
    if (st)
        return st;
    *id = v < (uint64_t)n_vocab ? (int32_t)v : -1;
    return QB_OK;
}

static enum qb_status optional_flag(const struct qb_gguf *g, const char *key, int *flag,
                                    struct qb_err *err)
{
    if (qb_gguf_find_key(g, key) < 0)
        return QB_OK;
    return qb_gguf_get_bool(g, key, flag, err);
}

/* llama.cpp's LLAMA_VOCAB_PRE_TYPE_LLAMA3 names (and tekken): ignore_merges, add_bos. */
static int pre_is_llama3(const char *pre)
{
    static const char *const names[] = {"llama3", "llama-v3", "llama-bpe", "falcon3",
                                        "falcon-h1", "pixtral", "midm-2.0", "lfm2"};
    for (size_t i = 0; pre && i < QB_ARRAY_LEN(names); i++) {
        if (strcmp(pre, names[i]) == 0)
            return 1;
    }
    return 0;
}

static enum qb_status fill_spec(const struct qb_gguf *g, const char *origin, const char *model,
                                struct qb_tok_spec *spec, struct qb_err *err)
{
    const char *pre = NULL;
    enum qb_status st;
    if (strcmp(model, "gpt2") == 0) {
        spec->kind = QB_TOK_BPE;
        if (qb_gguf_find_key(g, "tokenizer.ggml.pre") >= 0) {
            st = qb_gguf_get_str(g, "tokenizer.ggml.pre", &pre, NULL, err);
            if (st)
                return st;
        }
        spec->split_regex = qb_gguf_pre_regexes(pre ? pre : "default", &spec->n_split_regex,
                                                NULL);
        spec->ignore_merges = pre_is_llama3(pre) || (pre && strcmp(pre, "tekken") == 0);
        spec->add_bos = pre_is_llama3(pre);
    } else if (strcmp(model, "llama") == 0) {
        spec->kind = QB_TOK_SPM;
        spec->add_space_prefix = 1;
        spec->add_bos = 1;
        spec->bos_id = 1, spec->eos_id = 2, spec->unk_id = 0;
        st = optional_flag(g, "tokenizer.ggml.add_space_prefix", &spec->add_space_prefix, err);
        if (st)
            return st;
    } else {
        return qb_err_set(err, QB_ERR_UNSUPPORTED, "%s: tokenizer.ggml.model '%s' is not "
                          "supported (gpt2 byte-level BPE and llama SentencePiece are)",
                          origin, model);
    }
    st = optional_id(g, "tokenizer.ggml.bos_token_id", spec->n_vocab, &spec->bos_id, err);
    if (!st)
        st = optional_id(g, "tokenizer.ggml.eos_token_id", spec->n_vocab, &spec->eos_id, err);
    if (!st)
        st = optional_id(g, "tokenizer.ggml.unknown_token_id", spec->n_vocab, &spec->unk_id,
                         err);
    if (!st)
        st = optional_flag(g, "tokenizer.ggml.add_bos_token", &spec->add_bos, err);
    if (!st)
        st = optional_flag(g, "tokenizer.ggml.add_eos_token", &spec->add_eos, err);
    return st;
}

enum qb_status qb_gguf_vocab_load(const struct qb_gguf *g, const char *origin,
                                  struct qb_tokenizer **out, struct qb_err *err)
{
    struct vocab_arrays a = {0};
    struct qb_tok_spec spec = {.bos_id = -1, .eos_id = -1, .unk_id = -1};
    const char *model = NULL;
    *out = NULL;
    enum qb_status st = qb_gguf_get_str(g, "tokenizer.ggml.model", &model, NULL, err);
    if (st == QB_ERR_RANGE)
        st = qb_err_set(err, QB_ERR_FORMAT, "%s: no tokenizer (tokenizer.ggml.model is missing)",
                        origin);
    if (st)
        goto out;
    st = read_arrays(g, origin, &a, err);
    if (st)
        goto out;
    spec.n_vocab = a.n_vocab;
    st = fill_spec(g, origin, model, &spec, err);
    if (st)
        goto out;
    spec.pieces = (const char *const *)a.pieces;
    spec.scores = a.scores;
    spec.types = a.types;
    spec.merges = (const char *const *)a.merges;
    spec.n_merges = a.n_merges;
    st = qb_tok_create(&spec, out, err);
out:
    arrays_free(&a);
    return st;
}

enum qb_status qb_gguf_vocab_load_file(const char *path, struct qb_tokenizer **out,
                                       struct qb_err *err)
{
    struct qb_gguf *g = NULL;
    *out = NULL;
    enum qb_status st = qb_gguf_open(path, &g, err);
    if (!st)
        st = qb_gguf_vocab_load(g, path, out, err);
    qb_gguf_close(g);
    return st;
}
