/*
 * safetensors_write.c - the safetensors writer (see safetensors_write.h).
 */
#include "safetensors_write.h"

#include <string.h>

#include <cjson/cJSON.h>

#include "fileutil.h"
#include "safetensors.h"

struct stw_tensor {
    char *name;
    enum qb_dtype dtype;
    int n_dims;
    int64_t shape[QB_ST_MAX_DIMS];
    void *data;
    size_t bytes;
};

struct qb_stw {
    struct stw_tensor *t;
    size_t n, cap;
    cJSON *meta;
};

enum qb_status qb_stw_new(struct qb_stw **out, struct qb_err *err)
{
    *out = calloc(1, sizeof **out);
    return *out ? QB_OK : qb_err_set(err, QB_ERR_NOMEM, "out of memory");
}

void qb_stw_free(struct qb_stw *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->n; i++) {
        free(w->t[i].name);
        free(w->t[i].data);
    }
    free(w->t);
    cJSON_Delete(w->meta);
    free(w);
}

enum qb_status qb_stw_set_metadata(struct qb_stw *w, const char *key, const char *value,
                                   struct qb_err *err)
{
    if (!w->meta)
        w->meta = cJSON_CreateObject();
    if (!w->meta || !cJSON_AddStringToObject(w->meta, key, value))
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory");
    return QB_OK;
}

enum qb_status qb_stw_add_owned(struct qb_stw *w, const char *name, enum qb_dtype dt, int n_dims,
                                const int64_t *shape, void *data, struct qb_err *err)
{
    enum qb_status st = QB_OK;
    size_t count = 1;
    if (n_dims < 0 || n_dims > QB_ST_MAX_DIMS) {
        st = qb_err_set(err, QB_ERR_INTERNAL, "tensor '%s': %d dims", name, n_dims);
        goto out;
    }
    for (int d = 0; d < n_dims; d++) {
        if (shape[d] < 0 || !qb_mul_size(count, (size_t)shape[d], &count)) {
            st = qb_err_set(err, QB_ERR_INTERNAL, "tensor '%s': bad shape", name);
            goto out;
        }
    }
    for (size_t i = 0; i < w->n; i++) {
        if (strcmp(w->t[i].name, name) == 0) {
            st = qb_err_set(err, QB_ERR_INTERNAL, "tensor '%s' added twice", name);
            goto out;
        }
    }
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 64;
        struct stw_tensor *t = qb_realloc_array(w->t, cap, sizeof *t);
        if (!t) {
            st = qb_err_set(err, QB_ERR_NOMEM, "out of memory");
            goto out;
        }
        w->t = t;
        w->cap = cap;
    }
    struct stw_tensor *t = &w->t[w->n];
    memset(t, 0, sizeof *t);
    t->name = qb_strdup(name);
    if (!t->name) {
        st = qb_err_set(err, QB_ERR_NOMEM, "out of memory");
        goto out;
    }
    t->dtype = dt;
    t->n_dims = n_dims;
    for (int d = 0; d < n_dims; d++)
        t->shape[d] = shape[d];
    t->data = data;
    t->bytes = count * qb_dtype_size(dt);
    data = NULL;
    w->n++;
out:
    free(data);
    return st;
}

enum qb_status qb_stw_add(struct qb_stw *w, const char *name, enum qb_dtype dt, int n_dims,
                          const int64_t *shape, const void *data, struct qb_err *err)
{
    size_t count = 1;
    for (int d = 0; d < n_dims && d < QB_ST_MAX_DIMS; d++)
        count *= (size_t)(shape[d] > 0 ? shape[d] : 0);
    size_t bytes = count * qb_dtype_size(dt);
    void *copy = malloc(bytes ? bytes : 1);
    if (!copy)
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory copying '%s'", name);
    if (bytes)
        memcpy(copy, data, bytes);
    return qb_stw_add_owned(w, name, dt, n_dims, shape, copy, err);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const struct stw_tensor *)a)->name, ((const struct stw_tensor *)b)->name);
}

/* The header JSON (entries in `order`), unpadded; malloced. */
static char *header_json(const struct qb_stw *w, const struct stw_tensor *order)
{
    cJSON *root = cJSON_CreateObject();
    char *text = NULL;
    if (!root)
        return NULL;
    if (w->meta && !cJSON_AddItemToObject(root, "__metadata__", cJSON_Duplicate(w->meta, 1)))
        goto out;
    size_t off = 0;
    for (size_t i = 0; i < w->n; i++) {
        const struct stw_tensor *t = &order[i];
        cJSON *e = cJSON_AddObjectToObject(root, t->name);
        cJSON *shape = e ? cJSON_AddArrayToObject(e, "shape") : NULL;
        cJSON *offs = shape ? cJSON_AddArrayToObject(e, "data_offsets") : NULL;
        if (!offs || !cJSON_AddStringToObject(e, "dtype", qb_dtype_name(t->dtype)))
            goto out;
        for (int d = 0; d < t->n_dims; d++)
            cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t->shape[d]));
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)off));
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)(off + t->bytes)));
        off += t->bytes;
    }
    text = cJSON_PrintUnformatted(root);
out:
    cJSON_Delete(root);
    return text;
}

enum qb_status qb_stw_write(const struct qb_stw *w, const char *path, struct qb_err *err)
{
    enum qb_status st = QB_OK;
    char *hdr = NULL;
    uint8_t *img = NULL;
    struct stw_tensor *order = qb_malloc_array(w->n ? w->n : 1, sizeof *order);
    if (!order)
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory writing '%s'", path);
    if (w->n)
        memcpy(order, w->t, w->n * sizeof *order);
    qsort(order, w->n, sizeof *order, by_name);
    hdr = header_json(w, order);
    if (!hdr) {
        st = qb_err_set(err, QB_ERR_NOMEM, "out of memory writing '%s'", path);
        goto out;
    }
    size_t hlen = strlen(hdr), padded = (hlen + 7) & ~(size_t)7, data = 0;
    for (size_t i = 0; i < w->n; i++)
        data += order[i].bytes;
    size_t total = 8 + padded + data;
    img = malloc(total);
    if (!img) {
        st = qb_err_set(err, QB_ERR_NOMEM, "cannot allocate %zu bytes for '%s'", total, path);
        goto out;
    }
    uint64_t n = padded;
    for (int b = 0; b < 8; b++)
        img[b] = (uint8_t)(n >> (8 * b));
    memcpy(img + 8, hdr, hlen);
    memset(img + 8 + hlen, ' ', padded - hlen);
    size_t off = 8 + padded;
    for (size_t i = 0; i < w->n; i++) {
        if (order[i].bytes)
            memcpy(img + off, order[i].data, order[i].bytes);
        off += order[i].bytes;
    }
    st = qb_file_write_atomic(path, img, total, err);
out:
    free(img);
    cJSON_free(hdr);
    free(order);
    return st;
}
