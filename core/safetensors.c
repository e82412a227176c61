/*
 * safetensors.c - validate and map safetensors checkpoints (see safetensors.h).
 */
#include "safetensors.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

#define INDEX_MAX_BYTES (64u << 20)

void qb_st_tensors_free(struct qb_st_tensor *tensors, size_t n)
{
    if (!tensors)
        return;
    for (size_t i = 0; i < n; i++)
        free(tensors[i].name);
    free(tensors);
}

static int cmp_by_name(const void *a, const void *b)
{
    return strcmp(((const struct qb_st_tensor *)a)->name, ((const struct qb_st_tensor *)b)->name);
}

static int cmp_by_begin(const void *a, const void *b)
{
    const struct qb_st_tensor *x = *(const struct qb_st_tensor *const *)a;
    const struct qb_st_tensor *y = *(const struct qb_st_tensor *const *)b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    return x->end < y->end ? -1 : (x->end > y->end);
}

/* A JSON number that is a non-negative integer below 2^53. */
static int json_u64(const cJSON *it, uint64_t *out)
{
    if (!cJSON_IsNumber(it))
        return 0;
    double v = it->valuedouble;
    if (!(v >= 0 && v <= 9007199254740992.0) || v != floor(v))
        return 0;
    *out = (uint64_t)v;
    return 1;
}

static enum qb_status parse_shape(const cJSON *shape, const char *origin, struct qb_st_tensor *t,
                                  struct qb_err *err)
{
    if (!cJSON_IsArray(shape))
        return qb_err_set(err, QB_ERR_FORMAT, "%s: tensor '%s': 'shape' must be an array", origin,
                          t->name);
    int n = cJSON_GetArraySize(shape);
    if (n > QB_ST_MAX_DIMS)
        return qb_err_set(err, QB_ERR_FORMAT, "%s: tensor '%s': %d dimensions (max %d)", origin,
                          t->name, n, QB_ST_MAX_DIMS);
    t->n_dims = n;
    uint64_t elems = 1;
    int i = 0;
    const cJSON *d;
    cJSON_ArrayForEach(d, shape)
    {
        uint64_t v;
        if (!json_u64(d, &v) || v > (1ull << 40))
            return qb_err_set(err, QB_ERR_FORMAT, "%s: tensor '%s': bad dimension %d in 'shape'",
                              origin, t->name, i);
        if (v != 0 && elems > (1ull << 50) / v)
            return qb_err_set(err, QB_ERR_FORMAT, "%s: tensor '%s': shape too large", origin,
                              t->name);
        elems *= v;
        t->shape[i++] = (int64_t)v;
    }
    t->n_elems = (int64_t)elems;
    return QB_OK;
}

static enum qb_status parse_entry(const cJSON *e, size_t data_size, const char *origin,
                                  struct qb_st_tensor *t, struct qb_err *err)
{
    if (!cJSON_IsObject(e))
        return qb_err_set(err, QB_ERR_FORMAT, "%s: tensor '%s' must be an object", origin, t->name);
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    if (!cJSON_IsString(dt) || qb_dtype_parse(dt->valuestring, &t->dtype) != 0)
        return qb_err_set(err, QB_ERR_FORMAT, "%s: tensor '%s': unknown or missing 'dtype'", origin,
                          t->name);
    enum qb_status st = parse_shape(cJSON_GetObjectItemCaseSensitive(e, "shape"), origin, t, err);
    if (st)
        return st;
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    uint64_t b, en;
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2 ||
        !json_u64(cJSON_GetArrayItem(offs, 0), &b) || !json_u64(cJSON_GetArrayItem(offs, 1), &en))
        return qb_err_set(err, QB_ERR_FORMAT,
                          "%s: tensor '%s': 'data_offsets' must be two non-negative integers",
                          origin, t->name);
    if (b > en || en > data_size)
        return qb_err_set(err, QB_ERR_FORMAT,
                          "%s: tensor '%s': data_offsets [%llu, %llu] outside the data section "
                          "(%zu bytes); the file is truncated or corrupt",
                          origin, t->name, (unsigned long long)b, (unsigned long long)en, data_size);
    uint64_t want = (uint64_t)t->n_elems * qb_dtype_size(t->dtype);
    if (en - b != want)
        return qb_err_set(err, QB_ERR_FORMAT,
                          "%s: tensor '%s': shape x %s needs %llu bytes but data_offsets span %llu",
                          origin, t->name, qb_dtype_name(t->dtype), (unsigned long long)want,
                          (unsigned long long)(en - b));
    t->begin = (size_t)b;
    t->end = (size_t)en;
    return QB_OK;
}

static enum qb_status check_unique_and_disjoint(struct qb_st_tensor *ts, size_t n,
                                                const char *origin, struct qb_err *err)
{
    enum qb_status st = QB_OK;
    qsort(ts, n, sizeof *ts, cmp_by_name);
    for (size_t i = 1; i < n; i++) {
        if (strcmp(ts[i - 1].name, ts[i].name) == 0)
            return qb_err_set(err, QB_ERR_FORMAT, "%s: tensor name '%s' appears twice", origin,
                              ts[i].name);
    }
    if (n < 2)
        return QB_OK;
    struct qb_st_tensor **by_off = qb_malloc_array(n, sizeof *by_off);
    if (!by_off)
        return qb_err_set(err, QB_ERR_NOMEM, "%s: out of memory", origin);
    for (size_t i = 0; i < n; i++)
        by_off[i] = &ts[i];
    qsort(by_off, n, sizeof *by_off, cmp_by_begin);
    for (size_t i = 1; i < n; i++) {
        if (by_off[i]->begin < by_off[i - 1]->end) {
            st = qb_err_set(err, QB_ERR_FORMAT, "%s: tensors '%s' and '%s' overlap", origin,
                            by_off[i - 1]->name, by_off[i]->name);
            break;
        }
    }
    free(by_off);
    return st;
}

enum qb_status qb_st_parse_header(const char *hdr, size_t len, size_t data_size,
                                  const char *origin, struct qb_st_tensor **tensors, size_t *n,
                                  struct qb_err *err)
{
    enum qb_status st = QB_OK;
    struct qb_st_tensor *ts = NULL;
    size_t count = 0;
    *tensors = NULL;
    *n = 0;
    cJSON *root = cJSON_ParseWithLength(hdr, len);
    if (!root)
        return qb_err_set(err, QB_ERR_FORMAT, "%s: header is not valid JSON", origin);
    if (!cJSON_IsObject(root)) {
        st = qb_err_set(err, QB_ERR_FORMAT, "%s: header must be a JSON object", origin);
        goto out;
    }
    size_t cap = (size_t)cJSON_GetArraySize(root);
    if (cap > 0) {
        ts = qb_calloc_array(cap, sizeof *ts);
        if (!ts) {
            st = qb_err_set(err, QB_ERR_NOMEM, "%s: out of memory", origin);
            goto out;
        }
    }
    const cJSON *e;
    cJSON_ArrayForEach(e, root)
    {
        if (!e->string) {
            st = qb_err_set(err, QB_ERR_FORMAT, "%s: header entry without a name", origin);
            goto out;
        }
        if (strcmp(e->string, "__metadata__") == 0) {
            if (!cJSON_IsObject(e)) {
                st = qb_err_set(err, QB_ERR_FORMAT, "%s: '__metadata__' must be an object", origin);
                goto out;
            }
            continue;
        }
        struct qb_st_tensor *t = &ts[count++];
        t->name = qb_strdup(e->string);
        if (!t->name) {
            st = qb_err_set(err, QB_ERR_NOMEM, "%s: out of memory", origin);
            goto out;
        }
        st = parse_entry(e, data_size, origin, t, err);
        if (st)
            goto out;
    }
    st = check_unique_and_disjoint(ts, count, origin, err);
    if (st)
        goto out;
    *tensors = ts;
    *n = count;
    ts = NULL;
out:
    qb_st_tensors_free(ts, count);
    cJSON_Delete(root);
    return st;
}

enum qb_status qb_st_parse_buffer(const void *buf, size_t size, const char *origin,
                                  size_t *data_start, struct qb_st_tensor **ts, size_t *n,
                                  struct qb_err *err)
{
    *ts = NULL;
    *n = 0;
    if (size < 8)
        return qb_err_set(err, QB_ERR_FORMAT, "%s: file is %zu bytes, too short for a safetensors "
                          "header; it is truncated", origin, size);
    const unsigned char *p = buf;
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--)
        hlen = (hlen << 8) | p[i];
    if (hlen > QB_ST_MAX_HEADER || hlen > size - 8)
        return qb_err_set(err, QB_ERR_FORMAT, "%s: header length %llu exceeds the file (%zu bytes); "
                          "the file is truncated or not safetensors", origin,
                          (unsigned long long)hlen, size);
    *data_start = 8 + (size_t)hlen;
    return qb_st_parse_header((const char *)p + 8, (size_t)hlen, size - *data_start, origin, ts, n,
                              err);
}

/* Map one shard and parse its header; tensors get shard index `shard`. */
static enum qb_status open_shard(const char *path, int shard, struct qb_ckpt_file *f,
                                 struct qb_st_tensor **ts, size_t *n, struct qb_err *err)
{
    enum qb_status st = qb_mmap_open(path, &f->map, err);
    if (st)
        return st;
    f->path = qb_strdup(path);
    if (!f->path)
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory");
    st = qb_st_parse_buffer(f->map.addr, f->map.size, path, &f->data_start, ts, n, err);
    if (st)
        return st;
    for (size_t i = 0; i < *n; i++) {
        (*ts)[i].shard = shard;
        (*ts)[i].data = (const char *)f->map.addr + f->data_start + (*ts)[i].begin;
    }
    return QB_OK;
}

void qb_ckpt_close(struct qb_ckpt *ck)
{
    if (!ck)
        return;
    for (int i = 0; i < ck->n_files; i++) {
        qb_mmap_close(&ck->files[i].map);
        free(ck->files[i].path);
    }
    free(ck->files);
    qb_st_tensors_free(ck->tensors, ck->n_tensors);
    free(ck->dir);
    free(ck);
}

static struct qb_ckpt *ckpt_new(const char *dir, int n_files)
{
    struct qb_ckpt *ck = calloc(1, sizeof *ck);
    if (!ck)
        return NULL;
    ck->dir = qb_strdup(dir);
    ck->files = qb_calloc_array((size_t)n_files, sizeof *ck->files);
    if (!ck->dir || !ck->files) {
        qb_ckpt_close(ck);
        return NULL;
    }
    for (int i = 0; i < n_files; i++)
        ck->files[i].map.fd = -1;
    ck->n_files = n_files;
    return ck;
}

/* Append shard tensors to the checkpoint's list. */
static enum qb_status append_tensors(struct qb_ckpt *ck, struct qb_st_tensor *ts, size_t n,
                                     struct qb_err *err)
{
    if (n == 0) {
        free(ts);
        return QB_OK;
    }
    struct qb_st_tensor *all = qb_realloc_array(ck->tensors, ck->n_tensors + n, sizeof *all);
    if (!all) {
        qb_st_tensors_free(ts, n);
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory");
    }
    memcpy(all + ck->n_tensors, ts, n * sizeof *ts);
    free(ts);
    ck->tensors = all;
    ck->n_tensors += n;
    return QB_OK;
}

enum qb_status qb_ckpt_open_file(const char *path, struct qb_ckpt **out, struct qb_err *err)
{
    *out = NULL;
    struct qb_ckpt *ck = ckpt_new(path, 1);
    if (!ck)
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory");
    struct qb_st_tensor *ts = NULL;
    size_t n = 0;
    enum qb_status st = open_shard(path, 0, &ck->files[0], &ts, &n, err);
    if (!st)
        st = append_tensors(ck, ts, n, err);
    if (st) {
        qb_ckpt_close(ck);
        return st;
    }
    *out = ck;
    return QB_OK;
}

static int plain_file_name(const char *s)
{
    return s[0] && !strchr(s, '/') && strcmp(s, ".") != 0 && strcmp(s, "..") != 0;
}

/* Collect distinct shard names from the index's weight_map, in first-seen order. */
static enum qb_status index_shards(const cJSON *wm, const char *origin, const char ***names,
                                   int *n_names, struct qb_err *err)
{
    int cap = cJSON_GetArraySize(wm);
    const char **list = qb_calloc_array((size_t)(cap > 0 ? cap : 1), sizeof *list);
    if (!list)
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory");
    int n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, wm)
    {
        if (!cJSON_IsString(e) || !plain_file_name(e->valuestring)) {
            free(list);
            return qb_err_set(err, QB_ERR_FORMAT, "%s: weight_map entry '%s' must name a shard "
                              "file in the same directory", origin, e->string ? e->string : "?");
        }
        int seen = 0;
        for (int i = 0; i < n && !seen; i++)
            seen = strcmp(list[i], e->valuestring) == 0;
        if (!seen)
            list[n++] = e->valuestring;
    }
    *names = list;
    *n_names = n;
    return QB_OK;
}

/* Every weight_map entry must exist in the shard it names. */
static enum qb_status check_index_entries(const struct qb_ckpt *ck, const cJSON *wm,
                                          const char *origin, struct qb_err *err)
{
    const cJSON *e;
    cJSON_ArrayForEach(e, wm)
    {
        const struct qb_st_tensor *t = qb_ckpt_find(ck, e->string);
        const char *want = e->valuestring;
        if (!t || strcmp(strrchr(ck->files[t->shard].path, '/') + 1, want) != 0)
            return qb_err_set(err, QB_ERR_FORMAT, "%s: tensor '%s' is listed in shard '%s' but "
                              "that shard does not contain it", origin, e->string, want);
    }
    return QB_OK;
}

static enum qb_status open_index(const char *dir, const char *index_path, struct qb_ckpt **out,
                                 struct qb_err *err)
{
    enum qb_status st;
    char *buf = NULL;
    size_t len = 0;
    const char **shards = NULL;
    int n_shards = 0;
    struct qb_ckpt *ck = NULL;
    cJSON *root = NULL;
    st = qb_file_read_all(index_path, INDEX_MAX_BYTES, &buf, &len, err);
    if (st)
        goto out;
    root = cJSON_ParseWithLength(buf, len);
    const cJSON *wm = root ? cJSON_GetObjectItemCaseSensitive(root, "weight_map") : NULL;
    if (!root || !cJSON_IsObject(wm) || cJSON_GetArraySize(wm) == 0) {
        st = qb_err_set(err, QB_ERR_FORMAT, "%s: %s", index_path,
                        root ? "'weight_map' is missing, empty or not an object" : "not valid JSON");
        goto out;
    }
    st = index_shards(wm, index_path, &shards, &n_shards, err);
    if (st)
        goto out;
    ck = ckpt_new(dir, n_shards);
    if (!ck) {
        st = qb_err_set(err, QB_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (int i = 0; i < n_shards; i++) {
        char *path = qb_path_join(dir, shards[i]);
        if (!path) {
            st = qb_err_set(err, QB_ERR_NOMEM, "out of memory");
            goto out;
        }
        if (!qb_path_exists(path)) {
            st = qb_err_set(err, QB_ERR_IO, "%s: shard '%s' named in the index does not exist; "
                            "download it again", index_path, shards[i]);
            free(path);
            goto out;
        }
        struct qb_st_tensor *ts = NULL;
        size_t n = 0;
        st = open_shard(path, i, &ck->files[i], &ts, &n, err);
        free(path);
        if (!st)
            st = append_tensors(ck, ts, n, err);
        if (st)
            goto out;
    }
    qsort(ck->tensors, ck->n_tensors, sizeof *ck->tensors, cmp_by_name);
    for (size_t i = 1; i < ck->n_tensors; i++) {
        if (strcmp(ck->tensors[i - 1].name, ck->tensors[i].name) == 0) {
            st = qb_err_set(err, QB_ERR_FORMAT, "%s: tensor '%s' appears in two shards",
                            index_path, ck->tensors[i].name);
            goto out;
        }
    }
    st = check_index_entries(ck, wm, index_path, err);
    if (st)
        goto out;
    *out = ck;
    ck = NULL;
out:
    qb_ckpt_close(ck);
    free(shards);
    cJSON_Delete(root);
    free(buf);
    return st;
}

enum qb_status qb_ckpt_open(const char *dir, struct qb_ckpt **out, struct qb_err *err)
{
    enum qb_status st;
    *out = NULL;
    char *index = qb_path_join(dir, "model.safetensors.index.json");
    char *single = qb_path_join(dir, "model.safetensors");
    if (!index || !single) {
        st = qb_err_set(err, QB_ERR_NOMEM, "out of memory");
    } else if (qb_path_exists(index)) {
        st = open_index(dir, index, out, err);
    } else if (qb_path_exists(single)) {
        st = qb_ckpt_open_file(single, out, err);
    } else {
        st = qb_err_set(err, QB_ERR_IO, "%s: no model.safetensors or model.safetensors.index.json; "
                        "is this a Hugging Face checkpoint directory?", dir);
    }
    free(index);
    free(single);
    return st;
}

const struct qb_st_tensor *qb_ckpt_find(const struct qb_ckpt *ck, const char *name)
{
    size_t lo = 0, hi = ck->n_tensors;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int c = strcmp(ck->tensors[mid].name, name);
        if (c == 0)
            return &ck->tensors[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

size_t qb_st_tensor_bytes(const struct qb_st_tensor *t)
{
    return t->end - t->begin;
}

void qb_ckpt_release(const struct qb_ckpt *ck, const struct qb_st_tensor *t)
{
    const struct qb_ckpt_file *f = &ck->files[t->shard];
    qb_mmap_release_range(&f->map, f->data_start + t->begin, t->end - t->begin);
}

enum qb_status qb_st_tensor_to_f32(const struct qb_st_tensor *t, float *out, struct qb_err *err)
{
    const unsigned char *p = t->data;
    switch (t->dtype) {
    case QB_DTYPE_F32:
        memcpy(out, p, (size_t)t->n_elems * 4);
        return QB_OK;
    case QB_DTYPE_F16:
        for (int64_t i = 0; i < t->n_elems; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            out[i] = qb_f16_to_f32(h);
        }
        return QB_OK;
    case QB_DTYPE_BF16:
        for (int64_t i = 0; i < t->n_elems; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            out[i] = qb_bf16_to_f32(h);
        }
        return QB_OK;
    default:
        return qb_err_set(err, QB_ERR_UNSUPPORTED, "tensor '%s' has dtype %s; expected F32, F16 or BF16",
                          t->name, qb_dtype_name(t->dtype));
    }
}
