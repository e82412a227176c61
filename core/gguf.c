/*
 * gguf.c - GGUF reader (mmap, validate everything) and atomic writer.
 *
 * Reader design: one pass over the header with a bounds-checked cursor. Every
 * read names what it reads, so a short or corrupt file fails with a line such
 * as "'m.gguf': truncated reading the length of key 3 at byte 1042". Keys and
 * tensor names go into open-addressing hash tables (duplicate detection and
 * lookup stay linear even for hostile counts). Scalar strings are copied
 * NUL-terminated; string arrays keep only per-element offsets into the map.
 * After the header, tensors are checked against the data section: type,
 * shape (n_dims <= 4, dims >= 1, element and byte counts overflow-checked),
 * alignment, bounds, and no two byte spans overlap.
 *
 * Writer design: kvs and tensor infos live in memory in insertion order;
 * qb_gguf_write computes offsets, streams header, padding and data through a
 * FILE on a mkstemp() file in the target directory, fsyncs and renames.
 */
#include "gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "gguf.c assumes a little-endian host"
#endif

#define GGUF_MAGIC "GGUF"
#define MAX_KEY_LEN 65535u
#define MAX_ARRAY_DEPTH 4

static const char *const vtype_names[QB_GGUF_VTYPE_COUNT] = {
    "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64",
};

const char *qb_gguf_vtype_name(int vtype)
{
    if (vtype < 0 || vtype >= QB_GGUF_VTYPE_COUNT)
        return "?";
    return vtype_names[vtype];
}

/* Bytes of a fixed-size value type; 0 for STRING/ARRAY/invalid. */
static size_t vtype_size(int t)
{
    switch (t) {
    case QB_GGUF_U8: case QB_GGUF_I8: case QB_GGUF_BOOL: return 1;
    case QB_GGUF_U16: case QB_GGUF_I16: return 2;
    case QB_GGUF_U32: case QB_GGUF_I32: case QB_GGUF_F32: return 4;
    case QB_GGUF_U64: case QB_GGUF_I64: case QB_GGUF_F64: return 8;
    default: return 0;
    }
}

/* ---- string hash set (keys, tensor names) ------------------------------------ */

struct name_index {
    int32_t *slots; /* -1 empty, else item index */
    size_t cap;     /* power of two */
};

static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (uint8_t)*s) * 1099511628211ull;
    return h;
}

static enum qb_status index_init(struct name_index *ix, size_t n)
{
    size_t cap = 16;
    while (cap < 2 * n + 1)
        cap <<= 1;
    ix->slots = qb_malloc_array(cap, sizeof *ix->slots);
    if (!ix->slots)
        return QB_ERR_NOMEM;
    memset(ix->slots, 0xff, cap * sizeof *ix->slots);
    ix->cap = cap;
    return QB_OK;
}

/* Find name; names(i) gives the name of item i. Returns the slot. */
static size_t index_slot(const struct name_index *ix, const char *name,
                         const char *(*names)(const void *, int32_t), const void *ctx)
{
    size_t m = ix->cap - 1, s = (size_t)hash_str(name) & m;
    while (ix->slots[s] >= 0 && strcmp(names(ctx, ix->slots[s]), name) != 0)
        s = (s + 1) & m;
    return s;
}

/* ---- reader types ------------------------------------------------------------- */

struct kv {
    char *key;
    enum qb_gguf_vtype type;
    union {
        uint64_t u;
        int64_t i;
        double f;
    } num;                  /* scalar numbers and bool */
    char *str;              /* STRING: NUL-terminated copy */
    size_t str_len;
    struct qb_gguf_array arr;
    uint64_t *str_offs;     /* string arrays: offset of element i's length field */
};

struct qb_gguf {
    const uint8_t *base;
    size_t size;
    int mapped;
    char *origin;
    uint32_t version;
    uint32_t alignment;
    size_t data_offset;
    struct kv *kvs;
    size_t n_kv;
    struct qb_gguf_tensor *tensors;
    size_t n_tensors;
    struct name_index kv_ix, tensor_ix;
};

struct cursor {
    const uint8_t *p;
    size_t len, pos;
    const char *origin;
    struct qb_err *err;
};

static enum qb_status truncated(struct cursor *c, const char *what)
{
    return qb_err_set(c->err, QB_ERR_FORMAT,
                      "'%s': file truncated reading %s at byte %zu (file has %zu bytes)", c->origin,
                      what, c->pos, c->len);
}

static enum qb_status rd_bytes(struct cursor *c, void *out, size_t n, const char *what)
{
    if (c->len - c->pos < n)
        return truncated(c, what);
    memcpy(out, c->p + c->pos, n);
    c->pos += n;
    return QB_OK;
}

static enum qb_status rd_u32(struct cursor *c, uint32_t *v, const char *what)
{
    return rd_bytes(c, v, 4, what);
}

static enum qb_status rd_u64(struct cursor *c, uint64_t *v, const char *what)
{
    return rd_bytes(c, v, 8, what);
}

/* A gguf_string: returns pointer into the map and its length. */
static enum qb_status rd_str(struct cursor *c, const char **s, uint64_t *len, const char *what)
{
    enum qb_status st = rd_u64(c, len, what);
    if (st)
        return st;
    if (*len > c->len - c->pos)
        return qb_err_set(c->err, QB_ERR_FORMAT,
                          "'%s': %s claims %llu bytes at byte %zu but only %zu remain", c->origin, what,
                          (unsigned long long)*len, c->pos - 8, c->len - c->pos);
    *s = (const char *)c->p + c->pos;
    c->pos += (size_t)*len;
    return QB_OK;
}

static const char *kv_name(const void *ctx, int32_t i)
{
    return ((const struct qb_gguf *)ctx)->kvs[i].key;
}

static const char *tensor_name(const void *ctx, int32_t i)
{
    return ((const struct qb_gguf *)ctx)->tensors[i].name;
}

/* Skip (and validate) an array's elements; used for nested arrays. */
static enum qb_status skip_array(struct cursor *c, const char *key, int depth);

static enum qb_status skip_elems(struct cursor *c, const char *key, uint32_t et, uint64_t n,
                                 int depth)
{
    size_t es = vtype_size((int)et);
    if (es) {
        if (n > (c->len - c->pos) / es)
            return qb_err_set(c->err, QB_ERR_FORMAT,
                              "'%s': array '%s' claims %llu %s elements, more than the %zu bytes left",
                              c->origin, key, (unsigned long long)n, qb_gguf_vtype_name((int)et),
                              c->len - c->pos);
        c->pos += (size_t)(n * es);
        return QB_OK;
    }
    for (uint64_t i = 0; i < n; i++) {
        enum qb_status st;
        if (et == QB_GGUF_STRING) {
            const char *s = NULL;
            uint64_t len = 0;
            st = rd_str(c, &s, &len, "a string array element");
        } else {
            st = skip_array(c, key, depth + 1);
        }
        if (st)
            return st;
    }
    return QB_OK;
}

static enum qb_status skip_array(struct cursor *c, const char *key, int depth)
{
    uint32_t et = 0;
    uint64_t n = 0;
    enum qb_status st;
    if (depth > MAX_ARRAY_DEPTH)
        return qb_err_set(c->err, QB_ERR_FORMAT, "'%s': array '%s' nests deeper than %d levels",
                          c->origin, key, MAX_ARRAY_DEPTH);
    st = rd_u32(c, &et, "an array element type");
    if (st)
        return st;
    if (et >= QB_GGUF_VTYPE_COUNT)
        return qb_err_set(c->err, QB_ERR_FORMAT, "'%s': array '%s' has invalid element type %u",
                          c->origin, key, et);
    st = rd_u64(c, &n, "an array count");
    if (st)
        return st;
    return skip_elems(c, key, et, n, depth);
}

static enum qb_status read_scalar(struct cursor *c, struct kv *kv)
{
    uint8_t b[8] = {0};
    size_t n = vtype_size(kv->type);
    enum qb_status st = rd_bytes(c, b, n, "a metadata value");
    if (st)
        return st;
    switch (kv->type) {
    case QB_GGUF_U8: kv->num.u = b[0]; break;
    case QB_GGUF_I8: kv->num.i = (int8_t)b[0]; break;
    case QB_GGUF_U16: { uint16_t v; memcpy(&v, b, 2); kv->num.u = v; break; }
    case QB_GGUF_I16: { int16_t v; memcpy(&v, b, 2); kv->num.i = v; break; }
    case QB_GGUF_U32: { uint32_t v; memcpy(&v, b, 4); kv->num.u = v; break; }
    case QB_GGUF_I32: { int32_t v; memcpy(&v, b, 4); kv->num.i = v; break; }
    case QB_GGUF_U64: memcpy(&kv->num.u, b, 8); break;
    case QB_GGUF_I64: memcpy(&kv->num.i, b, 8); break;
    case QB_GGUF_F32: { float v; memcpy(&v, b, 4); kv->num.f = v; break; }
    case QB_GGUF_F64: memcpy(&kv->num.f, b, 8); break;
    case QB_GGUF_BOOL:
        if (b[0] > 1)
            return qb_err_set(c->err, QB_ERR_FORMAT, "'%s': bool key '%s' holds %u, not 0 or 1",
                              c->origin, kv->key, b[0]);
        kv->num.u = b[0];
        break;
    default: break;
    }
    return QB_OK;
}

static enum qb_status read_array(struct cursor *c, struct qb_gguf *g, int kv_i)
{
    struct kv *kv = &g->kvs[kv_i];
    uint32_t et = 0;
    uint64_t n = 0;
    enum qb_status st = rd_u32(c, &et, "an array element type");
    if (st)
        return st;
    if (et >= QB_GGUF_VTYPE_COUNT)
        return qb_err_set(c->err, QB_ERR_FORMAT, "'%s': array '%s' has invalid element type %u",
                          c->origin, kv->key, et);
    st = rd_u64(c, &n, "an array count");
    if (st)
        return st;
    kv->arr.type = (enum qb_gguf_vtype)et;
    kv->arr.n = n;
    kv->arr.data = c->p + c->pos;
    kv->arr.kv = kv_i;
    if (et == QB_GGUF_STRING) {
        /* each element needs at least its 8-byte length */
        if (n > (c->len - c->pos) / 8)
            return qb_err_set(c->err, QB_ERR_FORMAT,
                              "'%s': string array '%s' claims %llu elements, more than fit in the %zu "
                              "bytes left", c->origin, kv->key, (unsigned long long)n, c->len - c->pos);
        if (n) {
            kv->str_offs = qb_malloc_array((size_t)n, sizeof *kv->str_offs);
            if (!kv->str_offs)
                return qb_err_set(c->err, QB_ERR_NOMEM, "'%s': out of memory for array '%s'",
                                  c->origin, kv->key);
        }
        for (uint64_t i = 0; i < n; i++) {
            const char *s = NULL;
            uint64_t len = 0;
            kv->str_offs[i] = c->pos;
            st = rd_str(c, &s, &len, "a string array element");
            if (st)
                return st;
        }
        return QB_OK;
    }
    return skip_elems(c, kv->key, et, n, 1);
}

static enum qb_status read_kvs(struct cursor *c, struct qb_gguf *g)
{
    enum qb_status st;
    for (size_t i = 0; i < g->n_kv; i++) {
        struct kv *kv = &g->kvs[i];
        const char *k = NULL;
        uint64_t klen = 0;
        uint32_t t = 0;
        char what[64];
        snprintf(what, sizeof what, "the key of metadata entry %zu", i);
        st = rd_str(c, &k, &klen, what);
        if (st)
            return st;
        if (klen == 0 || klen > MAX_KEY_LEN || memchr(k, 0, (size_t)klen))
            return qb_err_set(c->err, QB_ERR_FORMAT,
                              "'%s': metadata entry %zu has an invalid key (length %llu, must be "
                              "1..65535 bytes without NUL)", c->origin, i, (unsigned long long)klen);
        kv->key = qb_malloc_array((size_t)klen + 1, 1);
        if (!kv->key)
            return qb_err_set(c->err, QB_ERR_NOMEM, "'%s': out of memory", c->origin);
        memcpy(kv->key, k, (size_t)klen);
        kv->key[klen] = 0;
        size_t slot = index_slot(&g->kv_ix, kv->key, kv_name, g);
        if (g->kv_ix.slots[slot] >= 0)
            return qb_err_set(c->err, QB_ERR_FORMAT, "'%s': duplicate metadata key '%s'", c->origin,
                              kv->key);
        g->kv_ix.slots[slot] = (int32_t)i;
        st = rd_u32(c, &t, "a metadata value type");
        if (st)
            return st;
        if (t >= QB_GGUF_VTYPE_COUNT)
            return qb_err_set(c->err, QB_ERR_FORMAT, "'%s': key '%s' has invalid value type %u",
                              c->origin, kv->key, t);
        kv->type = (enum qb_gguf_vtype)t;
        if (t == QB_GGUF_STRING) {
            const char *s = NULL;
            uint64_t len = 0;
            st = rd_str(c, &s, &len, "a string value");
            if (st)
                return st;
            kv->str = qb_malloc_array((size_t)len + 1, 1);
            if (!kv->str)
                return qb_err_set(c->err, QB_ERR_NOMEM, "'%s': out of memory", c->origin);
            memcpy(kv->str, s, (size_t)len);
            kv->str[len] = 0;
            kv->str_len = (size_t)len;
        } else if (t == QB_GGUF_ARRAY) {
            st = read_array(c, g, (int)i);
        } else {
            st = read_scalar(c, kv);
        }
        if (st)
            return st;
    }
    return QB_OK;
}

static enum qb_status read_tensor_info(struct cursor *c, struct qb_gguf *g, size_t i)
{
    struct qb_gguf_tensor *t = &g->tensors[i];
    const char *s = NULL;
    uint64_t len = 0;
    uint32_t n_dims = 0, type = 0;
    char what[64];
    snprintf(what, sizeof what, "the name of tensor %zu", i);
    enum qb_status st = rd_str(c, &s, &len, what);
    if (st)
        return st;
    if (len == 0 || len > QB_GGUF_MAX_NAME || memchr(s, 0, (size_t)len))
        return qb_err_set(c->err, QB_ERR_FORMAT,
                          "'%s': tensor %zu has an invalid name (length %llu, must be 1..%d bytes "
                          "without NUL)", c->origin, i, (unsigned long long)len, QB_GGUF_MAX_NAME);
    char *name = qb_malloc_array((size_t)len + 1, 1);
    if (!name)
        return qb_err_set(c->err, QB_ERR_NOMEM, "'%s': out of memory", c->origin);
    memcpy(name, s, (size_t)len);
    name[len] = 0;
    t->name = name;
    size_t slot = index_slot(&g->tensor_ix, name, tensor_name, g);
    if (g->tensor_ix.slots[slot] >= 0)
        return qb_err_set(c->err, QB_ERR_FORMAT, "'%s': duplicate tensor name '%s'", c->origin, name);
    g->tensor_ix.slots[slot] = (int32_t)i;
    st = rd_u32(c, &n_dims, "a tensor's n_dims");
    if (st)
        return st;
    if (n_dims < 1 || n_dims > QB_GGUF_MAX_DIMS)
        return qb_err_set(c->err, QB_ERR_FORMAT, "'%s': tensor '%s' has n_dims %u (must be 1..%d)",
                          c->origin, name, n_dims, QB_GGUF_MAX_DIMS);
    t->n_dims = n_dims;
    int64_t nel = 1;
    for (int d = 0; d < 4; d++) {
        uint64_t v = 1;
        if ((uint32_t)d < n_dims) {
            st = rd_u64(c, &v, "a tensor dimension");
            if (st)
                return st;
        }
        if (v == 0 || v > (uint64_t)INT64_MAX || (int64_t)v > INT64_MAX / nel)
            return qb_err_set(c->err, QB_ERR_FORMAT,
                              "'%s': tensor '%s' dimension %d is %llu (zero, or the element count "
                              "overflows)", c->origin, name, d, (unsigned long long)v);
        t->ne[d] = (int64_t)v;
        nel *= (int64_t)v;
    }
    st = rd_u32(c, &type, "a tensor type");
    if (st)
        return st;
    const struct qb_ggml_type_info *ti = qb_ggml_type_info((int)type);
    if (!ti)
        return qb_err_set(c->err, QB_ERR_FORMAT, "'%s': tensor '%s' has invalid ggml type %u",
                          c->origin, name, type);
    t->type = (int)type;
    if (t->ne[0] % ti->block != 0)
        return qb_err_set(c->err, QB_ERR_FORMAT,
                          "'%s': tensor '%s' row length %lld is not a multiple of the %s block (%d)",
                          c->origin, name, (long long)t->ne[0], ti->name, ti->block);
    size_t row = qb_ggml_row_bytes(t->type, t->ne[0]);
    size_t bytes;
    if (!row || !qb_mul_size(row, (size_t)(nel / t->ne[0]), &bytes))
        return qb_err_set(c->err, QB_ERR_FORMAT, "'%s': tensor '%s' byte size overflows", c->origin,
                          name);
    t->bytes = bytes;
    return rd_u64(c, &t->offset, "a tensor offset");
}

static int cmp_span(const void *a, const void *b)
{
    const struct qb_gguf_tensor *x = *(const struct qb_gguf_tensor *const *)a;
    const struct qb_gguf_tensor *y = *(const struct qb_gguf_tensor *const *)b;
    return x->offset < y->offset ? -1 : x->offset > y->offset;
}

static enum qb_status check_tensor_spans(struct qb_gguf *g, struct qb_err *err)
{
    size_t data_size = g->size - g->data_offset;
    for (size_t i = 0; i < g->n_tensors; i++) {
        struct qb_gguf_tensor *t = &g->tensors[i];
        if (t->offset % g->alignment != 0)
            return qb_err_set(err, QB_ERR_FORMAT,
                              "'%s': tensor '%s' offset %llu is not a multiple of the alignment %u",
                              g->origin, t->name, (unsigned long long)t->offset, g->alignment);
        if (t->offset > data_size || t->bytes > data_size - t->offset)
            return qb_err_set(err, QB_ERR_FORMAT,
                              "'%s': tensor '%s' data [%llu, +%zu) lies outside the %zu-byte data "
                              "section", g->origin, t->name, (unsigned long long)t->offset, t->bytes,
                              data_size);
        t->data = g->base + g->data_offset + t->offset;
    }
    if (g->n_tensors < 2)
        return QB_OK;
    const struct qb_gguf_tensor **order = qb_malloc_array(g->n_tensors, sizeof *order);
    if (!order)
        return qb_err_set(err, QB_ERR_NOMEM, "'%s': out of memory", g->origin);
    for (size_t i = 0; i < g->n_tensors; i++)
        order[i] = &g->tensors[i];
    qsort(order, g->n_tensors, sizeof *order, cmp_span);
    enum qb_status st = QB_OK;
    for (size_t i = 1; i < g->n_tensors; i++) {
        if (order[i - 1]->offset + order[i - 1]->bytes > order[i]->offset) {
            st = qb_err_set(err, QB_ERR_FORMAT, "'%s': tensors '%s' and '%s' overlap", g->origin,
                            order[i - 1]->name, order[i]->name);
            break;
        }
    }
    free(order);
    return st;
}

static enum qb_status read_alignment(struct qb_gguf *g, struct qb_err *err)
{
    g->alignment = QB_GGUF_DEFAULT_ALIGNMENT;
    int i = qb_gguf_find_key(g, "general.alignment");
    if (i < 0)
        return QB_OK;
    const struct kv *kv = &g->kvs[i];
    if (kv->type != QB_GGUF_U32)
        return qb_err_set(err, QB_ERR_FORMAT, "'%s': general.alignment has type %s, expected u32",
                          g->origin, qb_gguf_vtype_name(kv->type));
    if (kv->num.u == 0 || (kv->num.u & (kv->num.u - 1)) != 0)
        return qb_err_set(err, QB_ERR_FORMAT,
                          "'%s': general.alignment %llu is not a power of two", g->origin,
                          (unsigned long long)kv->num.u);
    g->alignment = (uint32_t)kv->num.u;
    return QB_OK;
}

static enum qb_status parse(struct qb_gguf *g, struct qb_err *err)
{
    struct cursor c = {g->base, g->size, 0, g->origin, err};
    char magic[4] = {0};
    uint64_t n_tensors = 0, n_kv = 0;
    enum qb_status st = rd_bytes(&c, magic, 4, "the magic");
    if (st)
        return st;
    if (memcmp(magic, GGUF_MAGIC, 4) != 0)
        return qb_err_set(err, QB_ERR_FORMAT, "'%s' is not a GGUF file (bad magic)", g->origin);
    st = rd_u32(&c, &g->version, "the version");
    if (st)
        return st;
    if (g->version != 3 && g->version != 2)
        return qb_err_set(err, QB_ERR_FORMAT,
                          "'%s': GGUF version %u is not supported (versions 2 and 3 are)", g->origin,
                          g->version);
    st = rd_u64(&c, &n_tensors, "the tensor count");
    if (!st)
        st = rd_u64(&c, &n_kv, "the metadata count");
    if (st)
        return st;
    /* a kv takes >= 13 bytes (8 length + 1 key byte + 4 type), a tensor info >= 29 */
    if (n_kv > (g->size - c.pos) / 13 || n_kv > INT32_MAX)
        return qb_err_set(err, QB_ERR_FORMAT,
                          "'%s': metadata count %llu cannot fit in a %zu-byte file", g->origin,
                          (unsigned long long)n_kv, g->size);
    if (n_tensors > (g->size - c.pos) / 29 || n_tensors > INT32_MAX)
        return qb_err_set(err, QB_ERR_FORMAT,
                          "'%s': tensor count %llu cannot fit in a %zu-byte file", g->origin,
                          (unsigned long long)n_tensors, g->size);
    g->n_kv = (size_t)n_kv;
    g->n_tensors = (size_t)n_tensors;
    if (n_kv) {
        g->kvs = qb_calloc_array(g->n_kv, sizeof *g->kvs);
        if (!g->kvs)
            return qb_err_set(err, QB_ERR_NOMEM, "'%s': out of memory", g->origin);
    }
    if (n_tensors) {
        g->tensors = qb_calloc_array(g->n_tensors, sizeof *g->tensors);
        if (!g->tensors)
            return qb_err_set(err, QB_ERR_NOMEM, "'%s': out of memory", g->origin);
    }
    if (index_init(&g->kv_ix, g->n_kv) || index_init(&g->tensor_ix, g->n_tensors))
        return qb_err_set(err, QB_ERR_NOMEM, "'%s': out of memory", g->origin);
    st = read_kvs(&c, g);
    if (!st)
        st = read_alignment(g, err);
    for (size_t i = 0; !st && i < g->n_tensors; i++)
        st = read_tensor_info(&c, g, i);
    if (st)
        return st;
    size_t pad = (g->alignment - c.pos % g->alignment) % g->alignment;
    g->data_offset = c.pos + pad;
    if (g->data_offset > g->size) {
        if (g->n_tensors)
            return qb_err_set(err, QB_ERR_FORMAT,
                              "'%s': file ends inside the padding before the tensor data", g->origin);
        g->data_offset = g->size; /* vocabulary-only files may omit the padding */
    }
    return check_tensor_spans(g, err);
}

static enum qb_status open_common(struct qb_gguf *g, struct qb_gguf **out, struct qb_err *err)
{
    enum qb_status st = parse(g, err);
    if (st) {
        qb_gguf_close(g);
        return st;
    }
    *out = g;
    return QB_OK;
}

enum qb_status qb_gguf_open_buffer(const void *buf, size_t len, const char *origin,
                                   struct qb_gguf **out, struct qb_err *err)
{
    *out = NULL;
    struct qb_gguf *g = calloc(1, sizeof *g);
    if (!g)
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory opening '%s'", origin);
    g->origin = qb_strdup(origin ? origin : "<buffer>");
    g->base = buf;
    g->size = len;
    if (!g->origin) {
        free(g);
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory opening '%s'", origin);
    }
    return open_common(g, out, err);
}

enum qb_status qb_gguf_open(const char *path, struct qb_gguf **out, struct qb_err *err)
{
    enum qb_status st = QB_OK;
    struct qb_gguf *g = NULL;
    struct stat sb;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    *out = NULL;
    if (fd < 0)
        return qb_err_set(err, QB_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        st = qb_err_set(err, QB_ERR_IO, "cannot read '%s': not a regular file", path);
        goto out;
    }
    g = calloc(1, sizeof *g);
    if (!g || !(g->origin = qb_strdup(path))) {
        st = qb_err_set(err, QB_ERR_NOMEM, "out of memory opening '%s'", path);
        goto out;
    }
    g->size = (size_t)sb.st_size;
    if (g->size > 0) {
        void *m = mmap(NULL, g->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            st = qb_err_set(err, QB_ERR_IO, "cannot map '%s': %s", path, strerror(errno));
            goto out;
        }
        g->base = m;
        g->mapped = 1;
    }
    close(fd);
    fd = -1;
    st = open_common(g, out, err);
    g = NULL; /* owned by *out or freed */
out:
    if (fd >= 0)
        close(fd);
    qb_gguf_close(g);
    return st;
}

void qb_gguf_close(struct qb_gguf *g)
{
    if (!g)
        return;
    for (size_t i = 0; i < g->n_kv && g->kvs; i++) {
        free(g->kvs[i].key);
        free(g->kvs[i].str);
        free(g->kvs[i].str_offs);
    }
    for (size_t i = 0; i < g->n_tensors && g->tensors; i++)
        free((char *)g->tensors[i].name);
    free(g->kvs);
    free(g->tensors);
    free(g->kv_ix.slots);
    free(g->tensor_ix.slots);
    if (g->mapped)
        munmap((void *)g->base, g->size);
    free(g->origin);
    free(g);
}

uint32_t qb_gguf_version(const struct qb_gguf *g) { return g->version; }
uint32_t qb_gguf_alignment(const struct qb_gguf *g) { return g->alignment; }
size_t qb_gguf_data_offset(const struct qb_gguf *g) { return g->data_offset; }
size_t qb_gguf_n_kv(const struct qb_gguf *g) { return g->n_kv; }
size_t qb_gguf_n_tensors(const struct qb_gguf *g) { return g->n_tensors; }

const char *qb_gguf_kv_key(const struct qb_gguf *g, size_t i)
{
    return i < g->n_kv ? g->kvs[i].key : NULL;
}

enum qb_gguf_vtype qb_gguf_kv_type(const struct qb_gguf *g, size_t i)
{
    return i < g->n_kv ? g->kvs[i].type : QB_GGUF_VTYPE_COUNT;
}

int qb_gguf_find_key(const struct qb_gguf *g, const char *key)
{
    if (!g->kv_ix.slots)
        return -1;
    size_t s = index_slot(&g->kv_ix, key, kv_name, g);
    return g->kv_ix.slots[s];
}

const struct qb_gguf_tensor *qb_gguf_tensor_at(const struct qb_gguf *g, size_t i)
{
    return i < g->n_tensors ? &g->tensors[i] : NULL;
}

const struct qb_gguf_tensor *qb_gguf_find_tensor(const struct qb_gguf *g, const char *name)
{
    if (!g->tensor_ix.slots)
        return NULL;
    size_t s = index_slot(&g->tensor_ix, name, tensor_name, g);
    return g->tensor_ix.slots[s] >= 0 ? &g->tensors[g->tensor_ix.slots[s]] : NULL;
}

/* ---- typed getters ---- */

static enum qb_status get_kv(const struct qb_gguf *g, const char *key, int want,
                             const struct kv **out, struct qb_err *err)
{
    int i = qb_gguf_find_key(g, key);
    if (i < 0)
        return qb_err_set(err, QB_ERR_RANGE, "'%s': missing key '%s'", g->origin, key);
    if (want >= 0 && (int)g->kvs[i].type != want)
        return qb_err_set(err, QB_ERR_FORMAT, "'%s': key '%s' has type %s, expected %s", g->origin,
                          key, qb_gguf_vtype_name(g->kvs[i].type), qb_gguf_vtype_name(want));
    *out = &g->kvs[i];
    return QB_OK;
}

#define DEFINE_GETTER(fn, ctype, vt, field)                                                       \
    enum qb_status fn(const struct qb_gguf *g, const char *key, ctype *out, struct qb_err *err)   \
    {                                                                                             \
        const struct kv *kv = NULL;                                                               \
        enum qb_status st = get_kv(g, key, vt, &kv, err);                                         \
        if (!st)                                                                                  \
            *out = (ctype)kv->num.field;                                                          \
        return st;                                                                                \
    }

DEFINE_GETTER(qb_gguf_get_u8, uint8_t, QB_GGUF_U8, u)
DEFINE_GETTER(qb_gguf_get_i8, int8_t, QB_GGUF_I8, i)
DEFINE_GETTER(qb_gguf_get_u16, uint16_t, QB_GGUF_U16, u)
DEFINE_GETTER(qb_gguf_get_i16, int16_t, QB_GGUF_I16, i)
DEFINE_GETTER(qb_gguf_get_u32, uint32_t, QB_GGUF_U32, u)
DEFINE_GETTER(qb_gguf_get_i32, int32_t, QB_GGUF_I32, i)
DEFINE_GETTER(qb_gguf_get_u64, uint64_t, QB_GGUF_U64, u)
DEFINE_GETTER(qb_gguf_get_i64, int64_t, QB_GGUF_I64, i)
DEFINE_GETTER(qb_gguf_get_f32, float, QB_GGUF_F32, f)
DEFINE_GETTER(qb_gguf_get_f64, double, QB_GGUF_F64, f)
DEFINE_GETTER(qb_gguf_get_bool, int, QB_GGUF_BOOL, u)

enum qb_status qb_gguf_get_str(const struct qb_gguf *g, const char *key, const char **out,
                               size_t *len, struct qb_err *err)
{
    const struct kv *kv = NULL;
    enum qb_status st = get_kv(g, key, QB_GGUF_STRING, &kv, err);
    if (st)
        return st;
    *out = kv->str;
    if (len)
        *len = kv->str_len;
    return QB_OK;
}

enum qb_status qb_gguf_get_array(const struct qb_gguf *g, const char *key,
                                 struct qb_gguf_array *out, struct qb_err *err)
{
    const struct kv *kv = NULL;
    enum qb_status st = get_kv(g, key, QB_GGUF_ARRAY, &kv, err);
    if (!st)
        *out = kv->arr;
    return st;
}

static int is_signed_int(int t)
{
    return t == QB_GGUF_I8 || t == QB_GGUF_I16 || t == QB_GGUF_I32 || t == QB_GGUF_I64;
}

static int is_unsigned_int(int t)
{
    return t == QB_GGUF_U8 || t == QB_GGUF_U16 || t == QB_GGUF_U32 || t == QB_GGUF_U64;
}

enum qb_status qb_gguf_get_uint(const struct qb_gguf *g, const char *key, uint64_t *out,
                                struct qb_err *err)
{
    const struct kv *kv = NULL;
    enum qb_status st = get_kv(g, key, -1, &kv, err);
    if (st)
        return st;
    if (is_unsigned_int(kv->type)) {
        *out = kv->num.u;
        return QB_OK;
    }
    if (is_signed_int(kv->type) && kv->num.i >= 0) {
        *out = (uint64_t)kv->num.i;
        return QB_OK;
    }
    return qb_err_set(err, QB_ERR_FORMAT, "'%s': key '%s' (%s) is not a non-negative integer",
                      g->origin, key, qb_gguf_vtype_name(kv->type));
}

enum qb_status qb_gguf_get_float(const struct qb_gguf *g, const char *key, double *out,
                                 struct qb_err *err)
{
    const struct kv *kv = NULL;
    enum qb_status st = get_kv(g, key, -1, &kv, err);
    if (st)
        return st;
    if (kv->type != QB_GGUF_F32 && kv->type != QB_GGUF_F64)
        return qb_err_set(err, QB_ERR_FORMAT, "'%s': key '%s' has type %s, expected f32 or f64",
                          g->origin, key, qb_gguf_vtype_name(kv->type));
    *out = kv->num.f;
    return QB_OK;
}

int64_t qb_gguf_array_i64(const struct qb_gguf_array *arr, uint64_t i)
{
    size_t es = vtype_size(arr->type);
    if (!es || i >= arr->n)
        return 0;
    const uint8_t *p = (const uint8_t *)arr->data + i * es;
    switch (arr->type) {
    case QB_GGUF_U8: case QB_GGUF_BOOL: return p[0];
    case QB_GGUF_I8: return (int8_t)p[0];
    case QB_GGUF_U16: { uint16_t v; memcpy(&v, p, 2); return v; }
    case QB_GGUF_I16: { int16_t v; memcpy(&v, p, 2); return v; }
    case QB_GGUF_U32: { uint32_t v; memcpy(&v, p, 4); return v; }
    case QB_GGUF_I32: { int32_t v; memcpy(&v, p, 4); return v; }
    case QB_GGUF_U64: { uint64_t v; memcpy(&v, p, 8); return (int64_t)v; }
    case QB_GGUF_I64: { int64_t v; memcpy(&v, p, 8); return v; }
    case QB_GGUF_F32: { float v; memcpy(&v, p, 4); return (int64_t)v; }
    case QB_GGUF_F64: { double v; memcpy(&v, p, 8); return (int64_t)v; }
    default: return 0;
    }
}

double qb_gguf_array_f64(const struct qb_gguf_array *arr, uint64_t i)
{
    size_t es = vtype_size(arr->type);
    if (!es || i >= arr->n)
        return 0;
    const uint8_t *p = (const uint8_t *)arr->data + i * es;
    if (arr->type == QB_GGUF_F32) {
        float v;
        memcpy(&v, p, 4);
        return v;
    }
    if (arr->type == QB_GGUF_F64) {
        double v;
        memcpy(&v, p, 8);
        return v;
    }
    if (arr->type == QB_GGUF_U64) {
        uint64_t v;
        memcpy(&v, p, 8);
        return (double)v;
    }
    return (double)qb_gguf_array_i64(arr, i);
}

const char *qb_gguf_array_str(const struct qb_gguf *g, const struct qb_gguf_array *arr, uint64_t i,
                              size_t *len)
{
    if (arr->type != QB_GGUF_STRING || i >= arr->n || arr->kv < 0 || (size_t)arr->kv >= g->n_kv)
        return NULL;
    const struct kv *kv = &g->kvs[arr->kv];
    uint64_t l;
    memcpy(&l, g->base + kv->str_offs[i], 8);
    if (len)
        *len = (size_t)l;
    return (const char *)g->base + kv->str_offs[i] + 8;
}

/* ==== writer ==================================================================== */

struct wkv {
    char *key;
    enum qb_gguf_vtype type;
    enum qb_gguf_vtype elem;  /* arrays */
    uint64_t n;               /* arrays: element count */
    uint8_t *payload;         /* encoded value bytes (after the type field) */
    size_t payload_len;
};

struct wtensor {
    char *name;
    int type;
    uint32_t n_dims;
    int64_t ne[4];
    size_t bytes;
    uint64_t offset;
    const void *data;
    qb_gguf_fill_fn fill;
    void *ctx;
};

struct qb_gguf_writer {
    struct wkv *kvs;
    size_t n_kv, cap_kv;
    struct wtensor *tensors;
    size_t n_tensors, cap_tensors;
    uint32_t alignment;
};

enum qb_status qb_gguf_writer_new(struct qb_gguf_writer **out, struct qb_err *err)
{
    *out = calloc(1, sizeof **out);
    if (!*out)
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory creating a GGUF writer");
    (*out)->alignment = QB_GGUF_DEFAULT_ALIGNMENT;
    return QB_OK;
}

void qb_gguf_writer_free(struct qb_gguf_writer *w)
{
    if (!w)
        return;
    for (size_t i = 0; i < w->n_kv; i++) {
        free(w->kvs[i].key);
        free(w->kvs[i].payload);
    }
    for (size_t i = 0; i < w->n_tensors; i++)
        free(w->tensors[i].name);
    free(w->kvs);
    free(w->tensors);
    free(w);
}

enum qb_status qb_gguf_writer_set_alignment(struct qb_gguf_writer *w, uint32_t alignment,
                                            struct qb_err *err)
{
    if (alignment < 8 || (alignment & (alignment - 1)) != 0)
        return qb_err_set(err, QB_ERR_USAGE, "GGUF alignment %u is not a power of two >= 8",
                          alignment);
    w->alignment = alignment;
    return QB_OK;
}

static int writer_has_key(const struct qb_gguf_writer *w, const char *key)
{
    for (size_t i = 0; i < w->n_kv; i++) {
        if (strcmp(w->kvs[i].key, key) == 0)
            return 1;
    }
    return 0;
}

/* Append a kv owning payload (freed on failure). */
static enum qb_status add_kv(struct qb_gguf_writer *w, const char *key, enum qb_gguf_vtype type,
                             uint8_t *payload, size_t len, struct qb_err *err)
{
    size_t klen = key ? strlen(key) : 0;
    enum qb_status st = QB_OK;
    if (klen == 0 || klen > MAX_KEY_LEN) {
        st = qb_err_set(err, QB_ERR_USAGE, "GGUF key '%s' must be 1..65535 bytes", key ? key : "");
        goto out;
    }
    if (writer_has_key(w, key)) {
        st = qb_err_set(err, QB_ERR_USAGE, "GGUF key '%s' added twice", key);
        goto out;
    }
    if (w->n_kv == w->cap_kv) {
        size_t cap = w->cap_kv ? 2 * w->cap_kv : 32;
        struct wkv *n = qb_realloc_array(w->kvs, cap, sizeof *n);
        if (!n) {
            st = qb_err_set(err, QB_ERR_NOMEM, "out of memory adding GGUF key '%s'", key);
            goto out;
        }
        w->kvs = n;
        w->cap_kv = cap;
    }
    struct wkv *kv = &w->kvs[w->n_kv];
    memset(kv, 0, sizeof *kv);
    kv->key = qb_strdup(key);
    if (!kv->key) {
        st = qb_err_set(err, QB_ERR_NOMEM, "out of memory adding GGUF key '%s'", key);
        goto out;
    }
    kv->type = type;
    kv->payload = payload;
    kv->payload_len = len;
    payload = NULL;
    w->n_kv++;
out:
    free(payload);
    return st;
}

static enum qb_status add_scalar(struct qb_gguf_writer *w, const char *key, enum qb_gguf_vtype t,
                                 const void *v, struct qb_err *err)
{
    size_t n = vtype_size(t);
    uint8_t *p = malloc(n);
    if (!p)
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory adding GGUF key '%s'", key);
    memcpy(p, v, n);
    return add_kv(w, key, t, p, n, err);
}

#define DEFINE_ADDER(fn, ctype, vt)                                                               \
    enum qb_status fn(struct qb_gguf_writer *w, const char *key, ctype v, struct qb_err *err)     \
    {                                                                                             \
        return add_scalar(w, key, vt, &v, err);                                                   \
    }

DEFINE_ADDER(qb_gguf_add_u8, uint8_t, QB_GGUF_U8)
DEFINE_ADDER(qb_gguf_add_i8, int8_t, QB_GGUF_I8)
DEFINE_ADDER(qb_gguf_add_u16, uint16_t, QB_GGUF_U16)
DEFINE_ADDER(qb_gguf_add_i16, int16_t, QB_GGUF_I16)
DEFINE_ADDER(qb_gguf_add_u32, uint32_t, QB_GGUF_U32)
DEFINE_ADDER(qb_gguf_add_i32, int32_t, QB_GGUF_I32)
DEFINE_ADDER(qb_gguf_add_u64, uint64_t, QB_GGUF_U64)
DEFINE_ADDER(qb_gguf_add_i64, int64_t, QB_GGUF_I64)
DEFINE_ADDER(qb_gguf_add_f32, float, QB_GGUF_F32)
DEFINE_ADDER(qb_gguf_add_f64, double, QB_GGUF_F64)

enum qb_status qb_gguf_add_bool(struct qb_gguf_writer *w, const char *key, int v, struct qb_err *err)
{
    uint8_t b = v ? 1 : 0;
    return add_scalar(w, key, QB_GGUF_BOOL, &b, err);
}

/* Encode n strings as gguf_strings into a new buffer. */
static uint8_t *encode_strings(const char *const *strs, const size_t *lens, uint64_t n,
                               size_t *total)
{
    size_t sum = 0;
    for (uint64_t i = 0; i < n; i++) {
        size_t l = lens ? lens[i] : strlen(strs[i]);
        if (sum > SIZE_MAX - 8 - l)
            return NULL;
        sum += 8 + l;
    }
    uint8_t *p = malloc(sum ? sum : 1);
    if (!p)
        return NULL;
    size_t pos = 0;
    for (uint64_t i = 0; i < n; i++) {
        uint64_t l = lens ? lens[i] : strlen(strs[i]);
        memcpy(p + pos, &l, 8);
        memcpy(p + pos + 8, strs[i], (size_t)l);
        pos += 8 + (size_t)l;
    }
    *total = sum;
    return p;
}

enum qb_status qb_gguf_add_str(struct qb_gguf_writer *w, const char *key, const char *s,
                               struct qb_err *err)
{
    size_t len;
    uint8_t *p = encode_strings(&s, NULL, 1, &len);
    if (!p)
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory adding GGUF key '%s'", key);
    return add_kv(w, key, QB_GGUF_STRING, p, len, err);
}

static enum qb_status add_array_payload(struct qb_gguf_writer *w, const char *key,
                                        enum qb_gguf_vtype elem, uint64_t n, const uint8_t *body,
                                        size_t body_len, struct qb_err *err)
{
    uint8_t *p = malloc(12 + body_len);
    if (!p)
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory adding GGUF array '%s'", key);
    uint32_t et = (uint32_t)elem;
    memcpy(p, &et, 4);
    memcpy(p + 4, &n, 8);
    if (body_len)
        memcpy(p + 12, body, body_len);
    return add_kv(w, key, QB_GGUF_ARRAY, p, 12 + body_len, err);
}

enum qb_status qb_gguf_add_array(struct qb_gguf_writer *w, const char *key, enum qb_gguf_vtype elem_type,
                                 const void *elems, uint64_t n, struct qb_err *err)
{
    size_t es = vtype_size(elem_type), body;
    if (!es)
        return qb_err_set(err, QB_ERR_USAGE, "GGUF array '%s': element type %s needs its own adder",
                          key, qb_gguf_vtype_name(elem_type));
    if (n > SIZE_MAX || !qb_mul_size((size_t)n, es, &body) || body > SIZE_MAX - 12)
        return qb_err_set(err, QB_ERR_NOMEM, "GGUF array '%s' is too large", key);
    return add_array_payload(w, key, elem_type, n, elems, body, err);
}

enum qb_status qb_gguf_add_str_array(struct qb_gguf_writer *w, const char *key, const char *const *strs,
                                     const size_t *lens, uint64_t n, struct qb_err *err)
{
    size_t len = 0;
    uint8_t *body = encode_strings(strs, lens, n, &len);
    if (!body)
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory adding GGUF array '%s'", key);
    enum qb_status st = add_array_payload(w, key, QB_GGUF_STRING, n, body, len, err);
    free(body);
    return st;
}

static enum qb_status add_tensor_common(struct qb_gguf_writer *w, const char *name, int type,
                                        uint32_t n_dims, const int64_t *ne, struct wtensor **out,
                                        struct qb_err *err)
{
    size_t nlen = name ? strlen(name) : 0;
    if (nlen == 0 || nlen > QB_GGUF_MAX_NAME)
        return qb_err_set(err, QB_ERR_USAGE, "GGUF tensor name '%s' must be 1..%d bytes",
                          name ? name : "", QB_GGUF_MAX_NAME);
    for (size_t i = 0; i < w->n_tensors; i++) {
        if (strcmp(w->tensors[i].name, name) == 0)
            return qb_err_set(err, QB_ERR_USAGE, "GGUF tensor '%s' added twice", name);
    }
    const struct qb_ggml_type_info *ti = qb_ggml_type_info(type);
    if (!ti)
        return qb_err_set(err, QB_ERR_USAGE, "GGUF tensor '%s': invalid ggml type %d", name, type);
    if (n_dims < 1 || n_dims > QB_GGUF_MAX_DIMS)
        return qb_err_set(err, QB_ERR_USAGE, "GGUF tensor '%s': n_dims %u (must be 1..4)", name,
                          n_dims);
    struct wtensor t = {0};
    size_t rows = 1;
    for (uint32_t d = 0; d < 4; d++) {
        t.ne[d] = d < n_dims ? ne[d] : 1;
        if (t.ne[d] < 1 || (d > 0 && !qb_mul_size(rows, (size_t)t.ne[d], &rows)))
            return qb_err_set(err, QB_ERR_USAGE, "GGUF tensor '%s': bad dimension %u", name, d);
    }
    size_t row = qb_ggml_row_bytes(type, t.ne[0]);
    if (!row)
        return qb_err_set(err, QB_ERR_USAGE,
                          "GGUF tensor '%s': row length %lld is not a multiple of the %s block (%d)",
                          name, (long long)t.ne[0], ti->name, ti->block);
    if (!qb_mul_size(row, rows, &t.bytes))
        return qb_err_set(err, QB_ERR_USAGE, "GGUF tensor '%s' is too large", name);
    if (w->n_tensors == w->cap_tensors) {
        size_t cap = w->cap_tensors ? 2 * w->cap_tensors : 64;
        struct wtensor *n = qb_realloc_array(w->tensors, cap, sizeof *n);
        if (!n)
            return qb_err_set(err, QB_ERR_NOMEM, "out of memory adding tensor '%s'", name);
        w->tensors = n;
        w->cap_tensors = cap;
    }
    t.name = qb_strdup(name);
    if (!t.name)
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory adding tensor '%s'", name);
    t.type = type;
    t.n_dims = n_dims;
    w->tensors[w->n_tensors] = t;
    *out = &w->tensors[w->n_tensors++];
    return QB_OK;
}

enum qb_status qb_gguf_add_tensor(struct qb_gguf_writer *w, const char *name, int type, uint32_t n_dims,
                                  const int64_t *ne, const void *data, size_t bytes, struct qb_err *err)
{
    struct wtensor *t;
    enum qb_status st = add_tensor_common(w, name, type, n_dims, ne, &t, err);
    if (st)
        return st;
    if (bytes != t->bytes) {
        st = qb_err_set(err, QB_ERR_USAGE, "GGUF tensor '%s': %zu data bytes given, shape needs %zu",
                        name, bytes, t->bytes);
        free(t->name);
        w->n_tensors--;
        return st;
    }
    t->data = data;
    return QB_OK;
}

enum qb_status qb_gguf_add_tensor_fill(struct qb_gguf_writer *w, const char *name, int type,
                                       uint32_t n_dims, const int64_t *ne, qb_gguf_fill_fn fill,
                                       void *ctx, struct qb_err *err)
{
    struct wtensor *t;
    enum qb_status st = add_tensor_common(w, name, type, n_dims, ne, &t, err);
    if (st)
        return st;
    t->fill = fill;
    t->ctx = ctx;
    return QB_OK;
}

/* ---- writing ---- */

struct out_file {
    FILE *f;
    const char *path;
    struct qb_err *err;
    uint64_t pos;
};

static enum qb_status put(struct out_file *o, const void *p, size_t n)
{
    if (n && fwrite(p, 1, n, o->f) != n)
        return qb_err_set(o->err, QB_ERR_IO, "cannot write '%s': %s", o->path, strerror(errno));
    o->pos += n;
    return QB_OK;
}

static enum qb_status put_zeros(struct out_file *o, size_t n)
{
    static const uint8_t zeros[64];
    while (n) {
        size_t k = QB_MIN(n, sizeof zeros);
        enum qb_status st = put(o, zeros, k);
        if (st)
            return st;
        n -= k;
    }
    return QB_OK;
}

static enum qb_status put_gstr(struct out_file *o, const char *s)
{
    uint64_t len = strlen(s);
    enum qb_status st = put(o, &len, 8);
    return st ? st : put(o, s, (size_t)len);
}

static enum qb_status write_header(struct qb_gguf_writer *w, struct out_file *o)
{
    uint32_t version = 3;
    uint64_t nt = w->n_tensors, nk = w->n_kv;
    enum qb_status st = put(o, GGUF_MAGIC, 4);
    if (!st)
        st = put(o, &version, 4);
    if (!st)
        st = put(o, &nt, 8);
    if (!st)
        st = put(o, &nk, 8);
    for (size_t i = 0; !st && i < w->n_kv; i++) {
        uint32_t t = (uint32_t)w->kvs[i].type;
        st = put_gstr(o, w->kvs[i].key);
        if (!st)
            st = put(o, &t, 4);
        if (!st)
            st = put(o, w->kvs[i].payload, w->kvs[i].payload_len);
    }
    for (size_t i = 0; !st && i < w->n_tensors; i++) {
        const struct wtensor *t = &w->tensors[i];
        uint32_t type = (uint32_t)t->type;
        st = put_gstr(o, t->name);
        if (!st)
            st = put(o, &t->n_dims, 4);
        for (uint32_t d = 0; !st && d < t->n_dims; d++) {
            uint64_t v = (uint64_t)t->ne[d];
            st = put(o, &v, 8);
        }
        if (!st)
            st = put(o, &type, 4);
        if (!st)
            st = put(o, &t->offset, 8);
    }
    return st;
}

static enum qb_status write_data(struct qb_gguf_writer *w, struct out_file *o)
{
    enum qb_status st = QB_OK;
    void *buf = NULL;
    size_t buf_cap = 0;
    for (size_t i = 0; !st && i < w->n_tensors; i++) {
        const struct wtensor *t = &w->tensors[i];
        const void *src = t->data;
        if (t->fill) {
            if (t->bytes > buf_cap) {
                free(buf);
                buf = malloc(t->bytes);
                buf_cap = buf ? t->bytes : 0;
                if (!buf) {
                    st = qb_err_set(o->err, QB_ERR_NOMEM, "out of memory writing tensor '%s'",
                                    t->name);
                    break;
                }
            }
            st = t->fill(t->ctx, buf, t->bytes, o->err);
            src = buf;
        }
        if (!st)
            st = put(o, src, t->bytes);
        if (!st)
            st = put_zeros(o, (w->alignment - t->bytes % w->alignment) % w->alignment);
    }
    free(buf);
    return st;
}

enum qb_status qb_gguf_write(struct qb_gguf_writer *w, const char *path, struct qb_err *err)
{
    enum qb_status st = QB_OK;
    char *tmp = NULL;
    int fd = -1;
    struct out_file o = {NULL, path, err, 0};
    if (w->alignment != QB_GGUF_DEFAULT_ALIGNMENT && !writer_has_key(w, "general.alignment")) {
        st = qb_gguf_add_u32(w, "general.alignment", w->alignment, err);
        if (st)
            return st;
    }
    uint64_t off = 0;
    for (size_t i = 0; i < w->n_tensors; i++) {
        w->tensors[i].offset = off;
        off += w->tensors[i].bytes + (w->alignment - w->tensors[i].bytes % w->alignment) % w->alignment;
    }
    tmp = qb_asprintf("%s.tmp.XXXXXX", path);
    if (!tmp)
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory writing '%s'", path);
    fd = mkstemp(tmp);
    if (fd < 0) {
        st = qb_err_set(err, QB_ERR_IO, "cannot create a temporary file next to '%s': %s", path,
                        strerror(errno));
        goto out;
    }
    o.f = fdopen(fd, "wb");
    if (!o.f) {
        st = qb_err_set(err, QB_ERR_IO, "cannot write '%s': %s", path, strerror(errno));
        goto out;
    }
    fd = -1;
    st = write_header(w, &o);
    if (!st)
        st = put_zeros(&o, (w->alignment - o.pos % w->alignment) % w->alignment);
    if (!st)
        st = write_data(w, &o);
    if (st)
        goto out;
    if (fflush(o.f) != 0 || fsync(fileno(o.f)) != 0) {
        st = qb_err_set(err, QB_ERR_IO, "cannot write '%s': %s", path, strerror(errno));
        goto out;
    }
    if (fclose(o.f) != 0) {
        o.f = NULL;
        st = qb_err_set(err, QB_ERR_IO, "cannot write '%s': %s", path, strerror(errno));
        goto out;
    }
    o.f = NULL;
    if (chmod(tmp, 0644) != 0 || rename(tmp, path) != 0) {
        st = qb_err_set(err, QB_ERR_IO, "cannot move the finished file to '%s': %s", path,
                        strerror(errno));
        goto out;
    }
    free(tmp);
    return QB_OK;
out:
    if (o.f)
        fclose(o.f);
    if (fd >= 0)
        close(fd);
    if (tmp) {
        unlink(tmp);
        free(tmp);
    }
    return st;
}
