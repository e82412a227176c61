/*
 * hub_dataset.c - evaluation and calibration text from the Hub's
 * datasets-server rows API:
 *
 *   GET $HF_DATASETS_SERVER/rows?dataset=D&config=C&split=S&offset=O&length=100
 *   -> {"features": [...], "rows": [{"row_idx": 0, "row": {"text": "..."}, ...}],
 *       "num_rows_total": 4358, ...}
 *
 * Rows are fetched 100 at a time (the API's maximum) up to the set's row
 * count or slice, then cached as {"dataset","config","split","column","rows":[...]}
 * in $XDG_CACHE_HOME/quantbench/datasets/<name>-<split>.json (written
 * atomically) and read from there afterwards, also offline. The joining rule
 * of each set is documented in hub.h (GPTQ/AWQ conventions).
 */
#include <cjson/cJSON.h>
#include <string.h>

#include "hub_internal.h"

#define QB_DS_PAGE 100
#define QB_DS_MAX_PAGES 2000
#define QB_DS_CACHE_MAX (1u << 30)

struct ds_spec {
    const char *name, *dataset, *config, *default_split, *column, *joiner;
    int64_t max_rows; /* 0 = the whole split */
    const char *splits[4];
};

static const struct ds_spec k_sets[] = {
    {"wikitext2",
     "Salesforce/wikitext",
     "wikitext-2-raw-v1",
     "test",
     "text",
     "\n\n",
     0,
     {"test", "train", "validation", NULL}},
    {"c4", "allenai/c4", "en", "validation", "text", " ", 1100, {"validation", "train", NULL}},
    {"pileval",
     "mit-han-lab/pile-val-backup",
     "default",
     "validation",
     "text",
     "\n\n",
     1000,
     {"validation", NULL}},
};

static const struct ds_spec *find_set(const char *name)
{
    for (size_t i = 0; i < QB_ARRAY_LEN(k_sets); i++) {
        if (name && strcmp(name, k_sets[i].name) == 0)
            return &k_sets[i];
    }
    return NULL;
}

int qb_hub_dataset_known(const char *name)
{
    return find_set(name) != NULL;
}

static int split_ok(const struct ds_spec *s, const char *split)
{
    for (int i = 0; s->splits[i]; i++) {
        if (strcmp(s->splits[i], split) == 0)
            return 1;
    }
    return 0;
}

/* Rows from our cache file; QB_ERR_IO when absent, QB_ERR_FORMAT when damaged. */
static enum qb_status read_cache(const char *path, const struct ds_spec *s,
                                 struct qb_hub_text_rows *rows, struct qb_err *err)
{
    size_t len = 0;
    char *data = qb_hub_read_file(path, QB_DS_CACHE_MAX, &len);
    if (!data)
        return QB_ERR_IO;
    enum qb_status st = QB_OK;
    cJSON *root = cJSON_ParseWithLength(data, len);
    const cJSON *arr = root ? cJSON_GetObjectItemCaseSensitive(root, "rows") : NULL;
    const cJSON *ds = root ? cJSON_GetObjectItemCaseSensitive(root, "dataset") : NULL;
    if (!cJSON_IsArray(arr) || !cJSON_IsString(ds) || strcmp(ds->valuestring, s->dataset)) {
        st = qb_err_set(err, QB_ERR_FORMAT,
                        "data set cache '%s' is damaged: delete it and fetch "
                        "again",
                        path);
        goto out;
    }
    const cJSON *e;
    cJSON_ArrayForEach(e, arr)
    {
        if (!cJSON_IsString(e)) {
            st = qb_err_set(err, QB_ERR_FORMAT,
                            "data set cache '%s' is damaged: delete it and "
                            "fetch again",
                            path);
            goto out;
        }
        st = qb_hub_text_rows_push(rows, e->valuestring, err);
        if (st)
            goto out;
    }
out:
    cJSON_Delete(root);
    free(data);
    if (st)
        qb_hub_text_rows_clear(rows);
    return st;
}

static enum qb_status write_cache(const char *dir, const char *path, const struct ds_spec *s,
                                  const char *split, const struct qb_hub_text_rows *rows,
                                  struct qb_err *err)
{
    enum qb_status st = QB_OK;
    char *text = NULL;
    cJSON *root = cJSON_CreateObject();
    cJSON *arr = cJSON_CreateArray();
    if (!root || !arr) {
        cJSON_Delete(arr);
        st = qb_err_set(err, QB_ERR_NOMEM, "out of memory");
        goto out;
    }
    cJSON_AddItemToObject(root, "rows", arr);
    cJSON_AddStringToObject(root, "dataset", s->dataset);
    cJSON_AddStringToObject(root, "config", s->config);
    cJSON_AddStringToObject(root, "split", split);
    cJSON_AddStringToObject(root, "column", s->column);
    for (size_t i = 0; i < rows->n; i++)
        cJSON_AddItemToArray(arr, cJSON_CreateString(rows->rows[i]));
    text = cJSON_PrintUnformatted(root);
    if (!text) {
        st = qb_err_set(err, QB_ERR_NOMEM, "out of memory");
        goto out;
    }
    st = qb_hub_mkdirs(dir, err);
    if (!st)
        st = qb_hub_write_atomic(path, text, strlen(text), err);
out:
    free(text);
    cJSON_Delete(root);
    return st;
}

static enum qb_status fetch_rows(struct qb_hub *hub, const struct ds_spec *s, const char *split,
                                 struct qb_hub_text_rows *rows, struct qb_err *err)
{
    enum qb_status st = QB_OK;
    struct qb_hub_resp resp = {0};
    struct qb_hub_ctx ctx = {s->dataset, split, NULL};
    char *eds = qb_hub_escape(s->dataset), *ecfg = qb_hub_escape(s->config);
    char *esplit = qb_hub_escape(split);
    int64_t target = s->max_rows > 0 ? s->max_rows : -1;
    if (!eds || !ecfg || !esplit) {
        st = qb_err_set(err, QB_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (int page = 0; page < QB_DS_MAX_PAGES && (target < 0 || (int64_t)rows->n < target);
         page++) {
        int64_t want = target < 0 ? QB_DS_PAGE : QB_MIN(QB_DS_PAGE, target - (int64_t)rows->n);
        char *url =
            qb_asprintf("%s/rows?dataset=%s&config=%s&split=%s&offset=%zu&length=%lld",
                        hub->o.datasets_endpoint, eds, ecfg, esplit, rows->n, (long long)want);
        if (!url) {
            st = qb_err_set(err, QB_ERR_NOMEM, "out of memory");
            goto out;
        }
        st = qb_hub_http_get(hub, url, 64u << 20, &ctx, &resp, err);
        free(url);
        if (st)
            goto out;
        size_t before = rows->n;
        int64_t total = -1;
        st = qb_hub_parse_rows_page(resp.body.data, resp.body.len, s->column, rows, &total, err);
        if (st)
            goto out;
        if (total >= 0 && (target < 0 || total < target))
            target = total;
        if (rows->n == before)
            break; /* an empty page: the split ended */
    }
    if (rows->n == 0)
        st = qb_err_set(err, QB_ERR_FORMAT, "data set %s (%s, %s) returned no rows", s->dataset,
                        s->config, split);
out:
    free(eds);
    free(ecfg);
    free(esplit);
    qb_hub_resp_clear(&resp);
    return st;
}

static enum qb_status join_rows(const struct qb_hub_text_rows *rows, const char *joiner,
                                char **text, size_t *len, struct qb_err *err)
{
    size_t jl = strlen(joiner), total = 1;
    for (size_t i = 0; i < rows->n; i++)
        total += strlen(rows->rows[i]) + (i ? jl : 0);
    char *t = malloc(total), *p = t;
    if (!t)
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory joining %zu rows", rows->n);
    for (size_t i = 0; i < rows->n; i++) {
        if (i) {
            memcpy(p, joiner, jl);
            p += jl;
        }
        size_t n = strlen(rows->rows[i]);
        memcpy(p, rows->rows[i], n);
        p += n;
    }
    *p = '\0';
    *text = t;
    *len = (size_t)(p - t);
    return QB_OK;
}

enum qb_status qb_hub_dataset_text(struct qb_hub *hub, const char *name, const char *split,
                                   char **text, size_t *len, struct qb_hub_text_rows *rows_out,
                                   struct qb_err *err)
{
    enum qb_status st = QB_OK;
    struct qb_hub_text_rows rows = {0};
    char *path = NULL;
    *text = NULL;
    *len = 0;
    const struct ds_spec *s = find_set(name);
    if (!s)
        return qb_err_set(err, QB_ERR_USAGE,
                          "unknown data set '%s' (known: wikitext2, c4, "
                          "pileval, or a text file)",
                          name ? name : "");
    if (!split)
        split = s->default_split;
    if (!split_ok(s, split))
        return qb_err_set(err, QB_ERR_USAGE, "data set %s has no split '%s'", name, split);
    path = qb_asprintf("%s/%s-%s.json", hub->o.data_cache, s->name, split);
    if (!path)
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory");
    st = read_cache(path, s, &rows, err);
    if (st == QB_ERR_IO) {
        st = QB_OK;
        if (hub->o.offline) {
            st = qb_err_set(err, QB_ERR_NETWORK,
                            "data set %s (%s) is not cached in %s and "
                            "HF_HUB_OFFLINE is set: fetch it once online",
                            name, split, hub->o.data_cache);
            goto out;
        }
        st = fetch_rows(hub, s, split, &rows, err);
        if (!st)
            st = write_cache(hub->o.data_cache, path, s, split, &rows, err);
    }
    if (st)
        goto out;
    st = join_rows(&rows, s->joiner, text, len, err);
    if (!st && rows_out) {
        *rows_out = rows;
        memset(&rows, 0, sizeof rows);
    }
out:
    qb_hub_text_rows_clear(&rows);
    free(path);
    return st;
}
