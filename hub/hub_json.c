/*
 * hub_json.c - parsers for the Hub's JSON answers: a search page
 * (/api/models), model info (/api/models/REPO/revision/REV), a tree page
 * (/api/models/REPO/tree/REV), a datasets-server /rows answer and config.json,
 * plus the Link header's rel="next".
 *
 * Everything here is pure (bytes in, structs out) so the fuzzer
 * (tests/fuzz/fuzz_hub_json.c) and the corrupt-input tests drive it directly.
 * The bytes are untrusted: wrong types are treated as "absent" (the Hub omits
 * and adds fields freely), only a body that is not JSON at all, or whose top
 * level has the wrong shape, is an error. Numbers outside [0, 2^62] count as
 * absent, so a huge or negative "size" never reaches size arithmetic.
 */
#include <cjson/cJSON.h>
#include <ctype.h>
#include <math.h>
#include <string.h>

#include "hub_internal.h"

#define QB_HUB_JSON_MAX_ITEMS 100000 /* per page; the Hub sends at most 1000 */

static char *json_strdup(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    return cJSON_IsString(v) && v->valuestring ? qb_strdup(v->valuestring) : NULL;
}

static int64_t json_count(const cJSON *obj, const char *key)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < 0 ||
        v->valuedouble > 4.6e18)
        return -1;
    return (int64_t)v->valuedouble;
}

/* `gated` is false or "auto"/"manual"; returns a malloced string or NULL. */
static char *json_gated(const cJSON *obj)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, "gated");
    if (cJSON_IsBool(v))
        return qb_strdup(cJSON_IsTrue(v) ? "true" : "false");
    if (cJSON_IsString(v) && v->valuestring)
        return qb_strdup(v->valuestring);
    return NULL;
}

static cJSON *parse_top(const char *json, size_t len, int want_array, const char *what,
                        struct qb_err *err)
{
    cJSON *root = json ? cJSON_ParseWithLength(json, len) : NULL;
    if (!root) {
        qb_err_set(err, QB_ERR_FORMAT, "malformed JSON in the Hub's %s answer", what);
        return NULL;
    }
    if (want_array ? !cJSON_IsArray(root) : !cJSON_IsObject(root)) {
        qb_err_set(err, QB_ERR_FORMAT, "unexpected JSON in the Hub's %s answer: expected %s", what,
                   want_array ? "an array" : "an object");
        cJSON_Delete(root);
        return NULL;
    }
    return root;
}

/* Grow a (items, n, cap) vector of elem-sized entries by one zeroed slot. */
void *qb_hub_vec_push(void **items, size_t *n, size_t *cap, size_t elem)
{
    if (*n == *cap) {
        size_t ncap = *cap ? *cap * 2 : 16;
        void *p = qb_realloc_array(*items, ncap, elem);
        if (!p)
            return NULL;
        *items = p;
        *cap = ncap;
    }
    void *slot = (char *)*items + *n * elem;
    memset(slot, 0, elem);
    (*n)++;
    return slot;
}

/* ---- search ------------------------------------------------------------------ */

static int64_t safetensors_total(const cJSON *obj)
{
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(obj, "safetensors");
    return cJSON_IsObject(st) ? json_count(st, "total") : -1;
}

static enum qb_status parse_summary(const cJSON *m, struct qb_hub_model_summary *s)
{
    s->id = json_strdup(m, "id");
    if (!s->id)
        s->id = json_strdup(m, "modelId");
    s->parameters = safetensors_total(m);
    s->downloads = json_count(m, "downloads");
    s->likes = json_count(m, "likes");
    s->gated = json_gated(m);
    s->last_modified = json_strdup(m, "lastModified");
    s->library = json_strdup(m, "library_name");
    s->pipeline_tag = json_strdup(m, "pipeline_tag");
    return QB_OK;
}

static void summary_clear(struct qb_hub_model_summary *s)
{
    free(s->id);
    free(s->gated);
    free(s->last_modified);
    free(s->library);
    free(s->pipeline_tag);
    memset(s, 0, sizeof *s);
}

void qb_hub_search_result_clear(struct qb_hub_search_result *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++)
        summary_clear(&r->items[i]);
    free(r->items);
    memset(r, 0, sizeof *r);
}

enum qb_status qb_hub_parse_search_page(const char *json, size_t len,
                                        struct qb_hub_search_result *out, struct qb_err *err)
{
    enum qb_status st = QB_OK;
    cJSON *root = parse_top(json, len, 1, "model search", err);
    if (!root)
        return QB_ERR_FORMAT;
    const cJSON *m;
    cJSON_ArrayForEach(m, root)
    {
        if (!cJSON_IsObject(m) || !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(m, "id")))
            continue; /* an entry without an id is useless: skip it */
        if (out->n >= QB_HUB_JSON_MAX_ITEMS)
            break;
        struct qb_hub_model_summary *s =
            qb_hub_vec_push((void **)&out->items, &out->n, &out->cap, sizeof *s);
        if (!s) {
            st = qb_err_set(err, QB_ERR_NOMEM, "out of memory reading search results");
            goto out;
        }
        parse_summary(m, s);
        if (!s->id) {
            st = qb_err_set(err, QB_ERR_NOMEM, "out of memory reading search results");
            goto out;
        }
    }
out:
    cJSON_Delete(root);
    return st;
}

/* ---- files (siblings and tree) -------------------------------------------------- */

void qb_hub_file_list_clear(struct qb_hub_file_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++) {
        free(l->items[i].path);
        free(l->items[i].blob_id);
        free(l->items[i].lfs_sha256);
    }
    free(l->items);
    memset(l, 0, sizeof *l);
}

int qb_hub_is_hex(const char *s, size_t n)
{
    if (!s || strlen(s) != n)
        return 0;
    for (size_t i = 0; i < n; i++) {
        if (!isxdigit((unsigned char)s[i]))
            return 0;
    }
    return 1;
}

/* One file: `name_key` holds its path, `sha_key` the lfs sha256 ("sha256" in
 * siblings, "oid" in the tree), `blob_key` the git blob id. */
static enum qb_status push_file(struct qb_hub_file_list *out, const cJSON *e, const char *name_key,
                                const char *blob_key, const char *sha_key, struct qb_err *err)
{
    if (out->n >= QB_HUB_JSON_MAX_ITEMS)
        return QB_OK;
    struct qb_hub_file *f = qb_hub_vec_push((void **)&out->items, &out->n, &out->cap, sizeof *f);
    if (!f)
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory reading the file list");
    f->path = json_strdup(e, name_key);
    if (!f->path)
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory reading the file list");
    f->size = json_count(e, "size");
    f->blob_id = json_strdup(e, blob_key);
    const cJSON *lfs = cJSON_GetObjectItemCaseSensitive(e, "lfs");
    if (cJSON_IsObject(lfs)) {
        f->lfs_sha256 = json_strdup(lfs, sha_key);
        int64_t lsize = json_count(lfs, "size");
        if (lsize >= 0)
            f->size = lsize;
        if (f->lfs_sha256 && !qb_hub_is_hex(f->lfs_sha256, 64)) {
            free(f->lfs_sha256);
            f->lfs_sha256 = NULL;
        }
    }
    return QB_OK;
}

enum qb_status qb_hub_parse_tree_page(const char *json, size_t len, struct qb_hub_file_list *out,
                                      struct qb_err *err)
{
    enum qb_status st = QB_OK;
    cJSON *root = parse_top(json, len, 1, "file tree", err);
    if (!root)
        return QB_ERR_FORMAT;
    const cJSON *e;
    cJSON_ArrayForEach(e, root)
    {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(e, "type");
        if (!cJSON_IsObject(e) || !cJSON_IsString(type) || strcmp(type->valuestring, "file") ||
            !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(e, "path")))
            continue;
        st = push_file(out, e, "path", "oid", "oid", err);
        if (st)
            goto out;
    }
out:
    cJSON_Delete(root);
    return st;
}

/* ---- model info -------------------------------------------------------------------- */

static char *license_from(const cJSON *root)
{
    const cJSON *card = cJSON_GetObjectItemCaseSensitive(root, "cardData");
    if (cJSON_IsObject(card)) {
        char *l = json_strdup(card, "license");
        if (l)
            return l;
    }
    const cJSON *tags = cJSON_GetObjectItemCaseSensitive(root, "tags");
    const cJSON *t;
    cJSON_ArrayForEach(t, (cJSON_IsArray(tags) ? tags : NULL))
    {
        if (cJSON_IsString(t) && strncmp(t->valuestring, "license:", 8) == 0)
            return qb_strdup(t->valuestring + 8);
    }
    return NULL;
}

/* The dtype key of safetensors.parameters holding the most parameters. */
static char *main_dtype(const cJSON *root)
{
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(root, "safetensors");
    const cJSON *params =
        cJSON_IsObject(st) ? cJSON_GetObjectItemCaseSensitive(st, "parameters") : NULL;
    const cJSON *best = NULL, *p;
    cJSON_ArrayForEach(p, (cJSON_IsObject(params) ? params : NULL))
    {
        if (cJSON_IsNumber(p) && p->string && (!best || p->valuedouble > best->valuedouble))
            best = p;
    }
    return best ? qb_strdup(best->string) : NULL;
}

/* The API's own `config` block: architectures and model_type only. */
static void api_config(const cJSON *root, struct qb_hub_config_summary *c)
{
    const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(root, "config");
    if (!cJSON_IsObject(cfg))
        return;
    const cJSON *arch = cJSON_GetObjectItemCaseSensitive(cfg, "architectures");
    if (cJSON_IsArray(arch) && cJSON_IsString(cJSON_GetArrayItem(arch, 0)))
        c->architecture = qb_strdup(cJSON_GetArrayItem(arch, 0)->valuestring);
    c->model_type = json_strdup(cfg, "model_type");
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(cfg, "quantization_config");
    if (cJSON_IsObject(q))
        c->quant_method = json_strdup(q, "quant_method");
}

enum qb_status qb_hub_parse_model_info(const char *json, size_t len, struct qb_hub_model_info *info,
                                       struct qb_err *err)
{
    enum qb_status st = QB_OK;
    cJSON *root = parse_top(json, len, 0, "model info", err);
    if (!root)
        return QB_ERR_FORMAT;
    info->id = json_strdup(root, "id");
    info->sha = json_strdup(root, "sha");
    if (info->sha && !qb_hub_is_hex(info->sha, 40)) {
        st = qb_err_set(err, QB_ERR_FORMAT,
                        "the Hub's model info has a malformed 'sha' "
                        "(expected a 40-hex commit)");
        goto out;
    }
    info->gated = json_gated(root);
    info->license = license_from(root);
    info->library = json_strdup(root, "library_name");
    info->pipeline_tag = json_strdup(root, "pipeline_tag");
    info->last_modified = json_strdup(root, "lastModified");
    info->downloads = json_count(root, "downloads");
    info->likes = json_count(root, "likes");
    info->parameters = safetensors_total(root);
    info->param_dtype = main_dtype(root);
    api_config(root, &info->config);
    const cJSON *sib = cJSON_GetObjectItemCaseSensitive(root, "siblings");
    const cJSON *e;
    cJSON_ArrayForEach(e, (cJSON_IsArray(sib) ? sib : NULL))
    {
        if (!cJSON_IsObject(e) || !cJSON_IsString(cJSON_GetObjectItemCaseSensitive(e, "rfilename")))
            continue;
        st = push_file(&info->files, e, "rfilename", "blobId", "sha256", err);
        if (st)
            goto out;
    }
    info->total_size = 0;
    for (size_t i = 0; i < info->files.n; i++) {
        if (info->files.items[i].size > 0)
            info->total_size += info->files.items[i].size;
    }
out:
    cJSON_Delete(root);
    return st;
}

/* ---- config.json --------------------------------------------------------------------- */

void qb_hub_config_summary_clear(struct qb_hub_config_summary *c)
{
    if (!c)
        return;
    free(c->architecture);
    free(c->model_type);
    free(c->quant_method);
    memset(c, 0, sizeof *c);
    c->layers = c->hidden = c->heads = c->kv_heads = c->vocab = c->context = c->experts = -1;
}

static int64_t first_count(const cJSON *a, const cJSON *b, const char *const *keys)
{
    for (const char *const *k = keys; *k; k++) {
        int64_t v = a ? json_count(a, *k) : -1;
        if (v < 0 && b)
            v = json_count(b, *k);
        if (v >= 0)
            return v;
    }
    return -1;
}

enum qb_status qb_hub_parse_config(const char *json, size_t len, struct qb_hub_config_summary *out,
                                   struct qb_err *err)
{
    static const char *const k_layers[] = {"num_hidden_layers", "n_layer", "num_layers", NULL};
    static const char *const k_hidden[] = {"hidden_size", "n_embd", "d_model", NULL};
    static const char *const k_heads[] = {"num_attention_heads", "n_head", NULL};
    static const char *const k_kv[] = {"num_key_value_heads", "num_kv_heads", NULL};
    static const char *const k_vocab[] = {"vocab_size", NULL};
    static const char *const k_ctx[] = {"max_position_embeddings", "n_positions", "max_seq_len",
                                        NULL};
    static const char *const k_exp[] = {"num_local_experts", "num_experts", "n_routed_experts",
                                        NULL};
    qb_hub_config_summary_clear(out);
    cJSON *root = parse_top(json, len, 0, "config.json", err);
    if (!root)
        return QB_ERR_FORMAT;
    const cJSON *text = cJSON_GetObjectItemCaseSensitive(root, "text_config");
    if (!cJSON_IsObject(text))
        text = NULL;
    const cJSON *arch = cJSON_GetObjectItemCaseSensitive(root, "architectures");
    if (cJSON_IsArray(arch) && cJSON_IsString(cJSON_GetArrayItem(arch, 0)))
        out->architecture = qb_strdup(cJSON_GetArrayItem(arch, 0)->valuestring);
    out->model_type = json_strdup(root, "model_type");
    out->layers = first_count(root, text, k_layers);
    out->hidden = first_count(root, text, k_hidden);
    out->heads = first_count(root, text, k_heads);
    out->kv_heads = first_count(root, text, k_kv);
    if (out->kv_heads < 0)
        out->kv_heads = out->heads;
    out->vocab = first_count(root, text, k_vocab);
    out->context = first_count(root, text, k_ctx);
    out->experts = first_count(root, text, k_exp);
    const cJSON *q = cJSON_GetObjectItemCaseSensitive(root, "quantization_config");
    if (cJSON_IsObject(q))
        out->quant_method = json_strdup(q, "quant_method");
    cJSON_Delete(root);
    return QB_OK;
}

/* ---- datasets-server rows ---------------------------------------------------------------- */

void qb_hub_text_rows_clear(struct qb_hub_text_rows *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->n; i++)
        free(r->rows[i]);
    free(r->rows);
    memset(r, 0, sizeof *r);
}

enum qb_status qb_hub_text_rows_push(struct qb_hub_text_rows *r, const char *s, struct qb_err *err)
{
    char **slot = qb_hub_vec_push((void **)&r->rows, &r->n, &r->cap, sizeof *slot);
    if (!slot || !(*slot = qb_strdup(s))) {
        if (slot)
            r->n--;
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory reading data set rows");
    }
    return QB_OK;
}

enum qb_status qb_hub_parse_rows_page(const char *json, size_t len, const char *column,
                                      struct qb_hub_text_rows *out, int64_t *total,
                                      struct qb_err *err)
{
    enum qb_status st = QB_OK;
    *total = -1;
    cJSON *root = parse_top(json, len, 0, "datasets-server rows", err);
    if (!root)
        return QB_ERR_FORMAT;
    const cJSON *rows = cJSON_GetObjectItemCaseSensitive(root, "rows");
    if (!cJSON_IsArray(rows)) {
        st = qb_err_set(err, QB_ERR_FORMAT, "the datasets-server rows answer has no 'rows' array");
        goto out;
    }
    *total = json_count(root, "num_rows_total");
    const cJSON *e;
    cJSON_ArrayForEach(e, rows)
    {
        const cJSON *row = cJSON_GetObjectItemCaseSensitive(e, "row");
        const cJSON *v = cJSON_IsObject(row) ? cJSON_GetObjectItemCaseSensitive(row, column) : NULL;
        if (!cJSON_IsString(v)) {
            st = qb_err_set(err, QB_ERR_FORMAT, "a datasets-server row has no string column '%s'",
                            column);
            goto out;
        }
        st = qb_hub_text_rows_push(out, v->valuestring, err);
        if (st)
            goto out;
    }
out:
    cJSON_Delete(root);
    return st;
}

/* ---- Link header ----------------------------------------------------------------------- */

/* Link: <https://huggingface.co/api/models?...&cursor=...>; rel="next"[, <...>; rel="prev"] */
char *qb_hub_link_next(const char *h)
{
    if (!h)
        return NULL;
    const char *p = h;
    while ((p = strchr(p, '<')) != NULL) {
        const char *end = strchr(p, '>');
        if (!end)
            return NULL;
        const char *params = end + 1;
        const char *next_link = strchr(params, ',');
        size_t plen = next_link ? (size_t)(next_link - params) : strlen(params);
        int is_next = 0;
        for (size_t i = 0; i + 8 <= plen; i++) {
            if ((i + 10 <= plen && strncmp(params + i, "rel=\"next\"", 10) == 0) ||
                strncmp(params + i, "rel=next", 8) == 0)
                is_next = 1;
        }
        size_t ulen = (size_t)(end - p - 1);
        if (is_next && ulen > 0 &&
            (strncmp(p + 1, "http://", 7) == 0 || strncmp(p + 1, "https://", 8) == 0)) {
            char *url = malloc(ulen + 1);
            if (!url)
                return NULL;
            memcpy(url, p + 1, ulen);
            url[ulen] = '\0';
            return url;
        }
        p = end + 1;
    }
    return NULL;
}
