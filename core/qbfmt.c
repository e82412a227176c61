/*
 * qbfmt.c - writer and loader of quantbench's quantized checkpoint (see qbfmt.h).
 */
#include "qbfmt.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "dtype.h"
#include "fileutil.h"

/* ---- names ---- */

static int slot_is_mlp(enum qb_linear_slot s)
{
    return s == QB_LIN_GATE || s == QB_LIN_UP || s == QB_LIN_DOWN;
}

static void linear_prefix(int layer, enum qb_linear_slot s, char *buf, size_t size)
{
    snprintf(buf, size, "model.layers.%d.%s.%s", layer, slot_is_mlp(s) ? "mlp" : "self_attn",
             qb_linear_slot_name(s));
}

enum qb_wfmt qb_qbfmt_wfmt(int bits, int sym)
{
    return bits == 4 ? (sym ? QB_WFMT_INT4_SYM : QB_WFMT_INT4) : QB_WFMT_UINT_G;
}

const char *qb_qbfmt_wfmt_name(int bits, int sym)
{
    return bits == 4 ? (sym ? "int4-sym" : "int4") : "uint-g";
}

static const char *method_name(enum qb_method m)
{
    return m == QB_METHOD_GPTQ ? "gptq" : m == QB_METHOD_AWQ ? "awq"
           : m == QB_METHOD_RTN ? "rtn" : "none";
}

/* ---- metadata ---- */

static enum qb_status meta_int(const cJSON *root, const char *key, int lo, int hi, int *out,
                               const char *origin, struct qb_err *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < lo ||
        v->valuedouble > hi)
        return qb_err_set(err, QB_ERR_FORMAT, "%s: field '%s' must be an integer in [%d, %d]",
                          origin, key, lo, hi);
    *out = (int)v->valuedouble;
    return QB_OK;
}

static enum qb_status meta_bool(const cJSON *root, const char *key, int *out, const char *origin,
                                struct qb_err *err)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!v) {
        *out = 0;
        return QB_OK;
    }
    if (!cJSON_IsBool(v))
        return qb_err_set(err, QB_ERR_FORMAT, "%s: field '%s' must be true or false", origin, key);
    *out = cJSON_IsTrue(v);
    return QB_OK;
}

static enum qb_status meta_check(const cJSON *root, const char *origin, struct qb_qbfmt_meta *o,
                                 struct qb_err *err)
{
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(root, "format");
    if (!cJSON_IsString(f) || strcmp(f->valuestring, "quantbench-quantized") != 0)
        return qb_err_set(err, QB_ERR_FORMAT, "%s: field 'format' must be "
                          "\"quantbench-quantized\"", origin);
    enum qb_status st = meta_int(root, "version", 1, 1 << 20, &o->version, origin, err);
    if (st)
        return st;
    if (o->version != QB_QBFMT_VERSION)
        return qb_err_set(err, QB_ERR_UNSUPPORTED, "%s: version %d is not supported (this build "
                          "reads version %d); re-run quantbench quantize", origin, o->version,
                          QB_QBFMT_VERSION);
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(root, "scheme");
    if (!cJSON_IsString(s) || !s->valuestring[0] || strlen(s->valuestring) >= sizeof o->scheme)
        return qb_err_set(err, QB_ERR_FORMAT, "%s: field 'scheme' must be a short string", origin);
    snprintf(o->scheme, sizeof o->scheme, "%s", s->valuestring);
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(root, "method");
    static const enum qb_method methods[] = {QB_METHOD_GPTQ, QB_METHOD_AWQ, QB_METHOD_RTN};
    o->method = QB_METHOD_NONE;
    for (size_t i = 0; cJSON_IsString(m) && i < QB_ARRAY_LEN(methods); i++)
        if (strcmp(m->valuestring, method_name(methods[i])) == 0)
            o->method = methods[i];
    if (o->method == QB_METHOD_NONE)
        return qb_err_set(err, QB_ERR_FORMAT, "%s: field 'method' must be \"gptq\", \"awq\" or "
                          "\"rtn\"", origin);
    if ((st = meta_int(root, "bits", 2, 8, &o->bits, origin, err)) ||
        (st = meta_int(root, "group", 8, 1 << 16, &o->group, origin, err)) ||
        (st = meta_bool(root, "sym", &o->sym, origin, err)) ||
        (st = meta_bool(root, "act_order", &o->act_order, origin, err)) ||
        (st = meta_bool(root, "static_groups", &o->static_groups, origin, err)))
        return st;
    if (o->bits != 2 && o->bits != 3 && o->bits != 4 && o->bits != 8)
        return qb_err_set(err, QB_ERR_FORMAT, "%s: field 'bits' must be 2, 3, 4 or 8", origin);
    if (o->group % 8 != 0)
        return qb_err_set(err, QB_ERR_FORMAT, "%s: field 'group' must be a multiple of 8", origin);
    const cJSON *wf = cJSON_GetObjectItemCaseSensitive(root, "weight_format");
    if (!cJSON_IsString(wf) || strcmp(wf->valuestring, qb_qbfmt_wfmt_name(o->bits, o->sym)) != 0)
        return qb_err_set(err, QB_ERR_FORMAT, "%s: field 'weight_format' must be \"%s\" for %d "
                          "bits%s", origin, qb_qbfmt_wfmt_name(o->bits, o->sym), o->bits,
                          o->sym ? " symmetric" : "");
    const cJSON *d = cJSON_GetObjectItemCaseSensitive(root, "damp");
    o->damp = cJSON_IsNumber(d) ? d->valuedouble : 0;
    return QB_OK;
}

enum qb_status qb_qbfmt_parse_meta(const char *json, size_t len, const char *origin,
                                   struct qb_qbfmt_meta *out, struct qb_err *err)
{
    memset(out, 0, sizeof *out);
    if (len > QB_QBFMT_MAX_META_BYTES)
        return qb_err_set(err, QB_ERR_FORMAT, "%s: larger than %u bytes", origin,
                          QB_QBFMT_MAX_META_BYTES);
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        return qb_err_set(err, QB_ERR_FORMAT, "%s: not a JSON object", origin);
    }
    enum qb_status st = meta_check(root, origin, out, err);
    cJSON_Delete(root);
    return st;
}

/* ---- packing ---- */

size_t qb_qbfmt_record_bytes(int bits, int group)
{
    return 4 + (size_t)group * (size_t)bits / 8;
}

static void put_code(uint8_t *codes, int j, int bits, unsigned v)
{
    unsigned bit = (unsigned)j * (unsigned)bits;
    for (int k = 0; k < bits; k++, bit++)
        if (v >> k & 1u)
            codes[bit >> 3] |= (uint8_t)(1u << (bit & 7u));
}

static unsigned get_code(const uint8_t *codes, int j, int bits)
{
    unsigned bit = (unsigned)j * (unsigned)bits, v = 0;
    for (int k = 0; k < bits; k++, bit++)
        v |= (unsigned)(codes[bit >> 3] >> (bit & 7u) & 1u) << k;
    return v;
}

void qb_qbfmt_pack(const struct qb_qresult *q, uint8_t *out)
{
    int64_t ng = q->cols / q->group;
    size_t rec = qb_qbfmt_record_bytes(q->bits, q->group);
    memset(out, 0, (size_t)q->rows * (size_t)ng * rec);
    for (int64_t r = 0; r < q->rows; r++) {
        for (int64_t g = 0; g < ng; g++) {
            uint8_t *p = out + ((size_t)r * (size_t)ng + (size_t)g) * rec;
            uint16_t h = qb_f32_to_f16(q->scales[r * ng + g]);
            p[0] = (uint8_t)(h & 0xff);
            p[1] = (uint8_t)(h >> 8);
            p[2] = q->zeros[r * ng + g];
            p[3] = (uint8_t)q->bits;
            for (int j = 0; j < q->group; j++)
                put_code(p + 4, j, q->bits, q->codes[r * q->cols + g * q->group + j]);
        }
    }
}

enum qb_status qb_qbfmt_unpack(const uint8_t *payload, size_t bytes, int64_t rows, int64_t cols,
                               int bits, int group, const int32_t *g_idx, float *out,
                               const char *name, struct qb_err *err)
{
    if (group <= 0 || cols % group != 0)
        return qb_err_set(err, QB_ERR_FORMAT, "%s: group %d does not divide %lld columns", name,
                          group, (long long)cols);
    int64_t ng = cols / group;
    size_t rec = qb_qbfmt_record_bytes(bits, group);
    if (bytes != (size_t)rows * (size_t)ng * rec)
        return qb_err_set(err, QB_ERR_FORMAT, "%s: payload has %zu bytes; %lldx%lld at %d bits, "
                          "group %d needs %zu", name, bytes, (long long)rows, (long long)cols,
                          bits, group, (size_t)rows * (size_t)ng * rec);
    int maxq = (1 << bits) - 1;
    for (int64_t c = 0; g_idx && c < cols; c++)
        if (g_idx[c] < 0 || g_idx[c] >= ng)
            return qb_err_set(err, QB_ERR_FORMAT, "%s: g_idx[%lld] = %d is outside [0, %lld)",
                              name, (long long)c, g_idx[c], (long long)ng);
    for (int64_t r = 0; r < rows; r++) {
        const uint8_t *row = payload + (size_t)r * (size_t)ng * rec;
        for (int64_t g = 0; g < ng; g++) {
            const uint8_t *p = row + (size_t)g * rec;
            float s = qb_f16_to_f32((uint16_t)(p[0] | p[1] << 8));
            if (p[3] != bits || p[2] > maxq || !isfinite(s))
                return qb_err_set(err, QB_ERR_FORMAT, "%s: record (row %lld, group %lld) is "
                                  "corrupt (bits %u, zero %u, scale %g)", name, (long long)r,
                                  (long long)g, p[3], p[2], (double)s);
        }
        for (int64_t c = 0; out && c < cols; c++) {
            const uint8_t *code_rec = row + (size_t)(c / group) * rec;
            const uint8_t *par = row + (size_t)(g_idx ? g_idx[c] : c / group) * rec;
            float s = qb_f16_to_f32((uint16_t)(par[0] | par[1] << 8));
            int q = (int)get_code(code_rec + 4, (int)(c % group), bits);
            out[r * cols + c] = s * (float)(q - par[2]);
        }
    }
    return QB_OK;
}

/* ---- loader ---- */

int qb_qbfmt_is_dir(const char *dir)
{
    char *p = qb_path_join(dir, QB_QBFMT_META);
    int yes = p && qb_path_exists(p);
    free(p);
    return yes;
}

static enum qb_status find(const struct qb_model *m, const char *name, enum qb_dtype dt,
                           int n_dims, int64_t d0, int64_t d1, const struct qb_st_tensor **out,
                           struct qb_err *err)
{
    const struct qb_st_tensor *t = qb_ckpt_find(m->ckpt, name);
    *out = t;
    if (!t)
        return qb_err_set(err, QB_ERR_FORMAT, "%s: tensor '%s' is missing", m->dir, name);
    int dt_ok = dt == QB_DTYPE_COUNT ? (t->dtype == QB_DTYPE_BF16 || t->dtype == QB_DTYPE_F16 ||
                                        t->dtype == QB_DTYPE_F32) : t->dtype == dt;
    if (!dt_ok || t->n_dims != n_dims || t->shape[0] != d0 || (n_dims > 1 && t->shape[1] != d1))
        return qb_err_set(err, QB_ERR_FORMAT, "%s: tensor '%s' has dtype %s and %d dims [%lld, "
                          "%lld]; expected %s [%lld, %lld]", m->dir, name,
                          qb_dtype_name(t->dtype), t->n_dims, (long long)t->shape[0],
                          (long long)(t->n_dims > 1 ? t->shape[1] : 0),
                          dt == QB_DTYPE_COUNT ? "BF16/F16/F32" : qb_dtype_name(dt),
                          (long long)d0, (long long)(n_dims > 1 ? d1 : 0));
    return QB_OK;
}

static void view(const struct qb_st_tensor *t, struct qb_linear *lin)
{
    memset(lin, 0, sizeof *lin);
    lin->fmt = t->dtype == QB_DTYPE_BF16 ? QB_WFMT_BF16
               : t->dtype == QB_DTYPE_F16 ? QB_WFMT_F16 : QB_WFMT_F32;
    lin->rows = t->shape[0];
    lin->cols = t->shape[1];
    lin->data = t->data;
    lin->data_bytes = qb_st_tensor_bytes(t);
}

static enum qb_status vec(const struct qb_model *m, const char *name, int64_t n, float **out,
                          struct qb_err *err)
{
    const struct qb_st_tensor *t;
    enum qb_status st = find(m, name, QB_DTYPE_F32, 1, n, 0, &t, err);
    if (st)
        return st;
    *out = qb_malloc_array((size_t)n, sizeof(float));
    if (!*out)
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory loading '%s'", name);
    memcpy(*out, t->data, (size_t)n * sizeof(float));
    return QB_OK;
}

static void slot_shape(const struct qb_config *c, enum qb_linear_slot s, int64_t *rows,
                       int64_t *cols)
{
    int64_t q = (int64_t)c->n_heads * c->head_dim, kv = (int64_t)c->n_kv_heads * c->head_dim;
    *rows = s == QB_LIN_Q ? q : s <= QB_LIN_V ? kv : s == QB_LIN_O ? c->hidden
            : s == QB_LIN_DOWN ? c->hidden : c->intermediate;
    *cols = s == QB_LIN_O ? q : s == QB_LIN_DOWN ? c->intermediate : c->hidden;
}

static int slot_has_bias(const struct qb_config *c, enum qb_linear_slot s)
{
    return slot_is_mlp(s) ? c->mlp_bias : s == QB_LIN_O ? c->o_bias : c->attn_bias;
}

static enum qb_status load_linear(struct qb_model *m, const struct qb_qbfmt_meta *meta, int layer,
                                  enum qb_linear_slot s, struct qb_err *err)
{
    char prefix[160], name[200];
    int64_t rows, cols;
    const struct qb_st_tensor *t, *gt = NULL;
    struct qb_linear *lin = &m->layers[layer].lin[s];
    linear_prefix(layer, s, prefix, sizeof prefix);
    slot_shape(&m->cfg, s, &rows, &cols);
    if (cols % meta->group != 0)
        return qb_err_set(err, QB_ERR_FORMAT, "%s: group %d does not divide %s's %lld input "
                          "columns", m->dir, meta->group, prefix, (long long)cols);
    size_t row_bytes = (size_t)(cols / meta->group) * qb_qbfmt_record_bytes(meta->bits,
                                                                              meta->group);
    snprintf(name, sizeof name, "%s.qweight", prefix);
    enum qb_status st = find(m, name, QB_DTYPE_U8, 2, rows, (int64_t)row_bytes, &t, err);
    if (st)
        return st;
    snprintf(name, sizeof name, "%s.g_idx", prefix);
    if (meta->act_order && !meta->static_groups) {
        st = find(m, name, QB_DTYPE_I32, 1, cols, 0, &gt, err);
        if (st)
            return st;
    }
    memset(lin, 0, sizeof *lin);
    size_t bytes = qb_st_tensor_bytes(t);
    uint8_t *payload = qb_aligned_alloc(bytes);
    int32_t *g_idx = gt ? qb_malloc_array((size_t)cols, sizeof(int32_t)) : NULL;
    if (!payload || (gt && !g_idx)) {
        free(payload);
        free(g_idx);
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory loading '%s'", prefix);
    }
    memcpy(payload, t->data, bytes); /* aligned copy; the file's pages are released */
    if (gt)
        memcpy(g_idx, gt->data, (size_t)cols * sizeof(int32_t));
    snprintf(name, sizeof name, "%s.qweight", prefix);
    st = qb_qbfmt_unpack(payload, bytes, rows, cols, meta->bits, meta->group, g_idx, NULL, name,
                         err);
    if (st) {
        free(payload);
        free(g_idx);
        return st;
    }
    qb_ckpt_release(m->ckpt, t);
    lin->fmt = qb_qbfmt_wfmt(meta->bits, meta->sym);
    lin->rows = rows;
    lin->cols = cols;
    lin->data = lin->owned = payload;
    lin->data_bytes = bytes;
    lin->qp.group = meta->group;
    lin->qp.bits = meta->bits;
    lin->qp.sym = meta->sym;
    lin->qp.g_idx = lin->owned_g_idx = g_idx;
    if (qb_wfmt_get(lin->fmt)->packed_bytes(rows, cols, &lin->qp) != bytes)
        return qb_err_set(err, QB_ERR_FORMAT, "%s: payload size does not match the %s layout",
                          name, qb_wfmt_get(lin->fmt)->name);
    if (!slot_has_bias(&m->cfg, s))
        return QB_OK;
    snprintf(name, sizeof name, "%s.bias", prefix);
    st = vec(m, name, rows, &lin->owned_bias, err);
    lin->bias = lin->owned_bias;
    return st;
}

static enum qb_status load_layer(struct qb_model *m, const struct qb_qbfmt_meta *meta, int i,
                                 struct qb_err *err)
{
    struct qb_layer *L = &m->layers[i];
    char name[160];
    enum qb_status st = QB_OK;
    for (int s = 0; s < QB_LIN_COUNT && !st; s++)
        st = load_linear(m, meta, i, s, err);
    if (st)
        return st;
    snprintf(name, sizeof name, "model.layers.%d.input_layernorm.weight", i);
    if ((st = vec(m, name, m->cfg.hidden, &L->attn_norm, err)))
        return st;
    snprintf(name, sizeof name, "model.layers.%d.post_attention_layernorm.weight", i);
    if ((st = vec(m, name, m->cfg.hidden, &L->ffn_norm, err)) || !m->cfg.qk_norm)
        return st;
    snprintf(name, sizeof name, "model.layers.%d.self_attn.q_norm.weight", i);
    if ((st = vec(m, name, m->cfg.head_dim, &L->q_norm, err)))
        return st;
    snprintf(name, sizeof name, "model.layers.%d.self_attn.k_norm.weight", i);
    return vec(m, name, m->cfg.head_dim, &L->k_norm, err);
}

static enum qb_status read_meta(const char *dir, struct qb_qbfmt_meta *meta, struct qb_err *err)
{
    char *path = qb_path_join(dir, QB_QBFMT_META), *text = NULL;
    size_t len = 0;
    if (!path)
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory");
    enum qb_status st = qb_file_read_all(path, QB_QBFMT_MAX_META_BYTES, &text, &len, err);
    if (!st)
        st = qb_qbfmt_parse_meta(text, len, path, meta, err);
    free(text);
    free(path);
    return st;
}

enum qb_status qb_qbfmt_load_weights(struct qb_model *m, struct qb_err *err)
{
    struct qb_qbfmt_meta meta;
    const struct qb_config *c = &m->cfg;
    const struct qb_st_tensor *t;
    enum qb_status st = read_meta(m->dir, &meta, err);
    if (st)
        return st;
    if ((st = find(m, "model.embed_tokens.weight", QB_DTYPE_COUNT, 2, c->vocab, c->hidden, &t,
                   err)))
        return st;
    view(t, &m->embed);
    m->base_dtype = t->dtype;
    const struct qb_st_tensor *lm = qb_ckpt_find(m->ckpt, "lm_head.weight");
    if (lm || !c->tie_embeddings) {
        if ((st = find(m, "lm_head.weight", QB_DTYPE_COUNT, 2, c->vocab, c->hidden, &t, err)))
            return st;
    }
    view(t, &m->lm_head);
    if ((st = vec(m, "model.norm.weight", c->hidden, &m->final_norm, err)))
        return st;
    m->layers = qb_calloc_array((size_t)c->n_layers, sizeof *m->layers);
    if (!m->layers)
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory");
    for (int i = 0; i < c->n_layers && !st; i++)
        st = load_layer(m, &meta, i, err);
    if (st)
        return st;
    memset(&m->scheme, 0, sizeof m->scheme);
    snprintf(m->scheme.name, sizeof m->scheme.name, "%s", meta.scheme);
    m->scheme.method = meta.method;
    m->scheme.fmt = qb_qbfmt_wfmt(meta.bits, meta.sym);
    m->scheme.qp.bits = meta.bits;
    m->scheme.qp.group = meta.group;
    m->scheme.qp.sym = meta.sym;
    m->scheme.needs_calibration = meta.method == QB_METHOD_GPTQ || meta.method == QB_METHOD_AWQ;
    return QB_OK;
}

/* ---- writer ---- */

struct wtensor {
    char name[200];
    enum qb_dtype dtype;
    int n_dims;
    int64_t shape[2];
    size_t begin, bytes;
    int written;
};

struct qb_qbfmt_writer {
    char *out_dir, *tmp_dir, *st_path;
    int fd;
    size_t data_start;
    struct wtensor *t;
    int n, cap;
    struct qb_qbfmt_meta meta;
    int n_layers;
};

static struct wtensor *wt_add(struct qb_qbfmt_writer *w, const char *name, enum qb_dtype dt,
                              int n_dims, int64_t d0, int64_t d1)
{
    if (w->n == w->cap) {
        int cap = w->cap ? 2 * w->cap : 64;
        struct wtensor *nt = qb_realloc_array(w->t, (size_t)cap, sizeof *nt);
        if (!nt)
            return NULL;
        w->t = nt;
        w->cap = cap;
    }
    struct wtensor *t = &w->t[w->n++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    t->dtype = dt;
    t->n_dims = n_dims;
    t->shape[0] = d0;
    t->shape[1] = d1;
    t->bytes = (size_t)d0 * (size_t)(n_dims > 1 ? d1 : 1) * qb_dtype_size(dt);
    return t;
}

static struct wtensor *wt_find(struct qb_qbfmt_writer *w, const char *name)
{
    for (int i = 0; i < w->n; i++)
        if (strcmp(w->t[i].name, name) == 0)
            return &w->t[i];
    return NULL;
}

static enum qb_dtype dtype_of_fmt(enum qb_wfmt f)
{
    return f == QB_WFMT_BF16 ? QB_DTYPE_BF16 : f == QB_WFMT_F16 ? QB_DTYPE_F16 : QB_DTYPE_F32;
}

/* The table of every tensor, in file order. */
static int plan_tensors(struct qb_qbfmt_writer *w, const struct qb_model *m)
{
    const struct qb_config *c = &m->cfg;
    char name[200];
    int ok = wt_add(w, "model.embed_tokens.weight", dtype_of_fmt(m->embed.fmt), 2, c->vocab,
                    c->hidden) != NULL;
    if (m->lm_head.data != m->embed.data)
        ok = ok && wt_add(w, "lm_head.weight", dtype_of_fmt(m->lm_head.fmt), 2, c->vocab,
                          c->hidden);
    ok = ok && wt_add(w, "model.norm.weight", QB_DTYPE_F32, 1, c->hidden, 0);
    for (int i = 0; ok && i < c->n_layers; i++) {
        snprintf(name, sizeof name, "model.layers.%d.input_layernorm.weight", i);
        ok = ok && wt_add(w, name, QB_DTYPE_F32, 1, c->hidden, 0);
        snprintf(name, sizeof name, "model.layers.%d.post_attention_layernorm.weight", i);
        ok = ok && wt_add(w, name, QB_DTYPE_F32, 1, c->hidden, 0);
        if (c->qk_norm) {
            snprintf(name, sizeof name, "model.layers.%d.self_attn.q_norm.weight", i);
            ok = ok && wt_add(w, name, QB_DTYPE_F32, 1, c->head_dim, 0);
            snprintf(name, sizeof name, "model.layers.%d.self_attn.k_norm.weight", i);
            ok = ok && wt_add(w, name, QB_DTYPE_F32, 1, c->head_dim, 0);
        }
        for (int s = 0; ok && s < QB_LIN_COUNT; s++) {
            const struct qb_linear *l = &m->layers[i].lin[s];
            char prefix[160];
            linear_prefix(i, s, prefix, sizeof prefix);
            if (l->bias) {
                snprintf(name, sizeof name, "%s.bias", prefix);
                ok = ok && wt_add(w, name, QB_DTYPE_F32, 1, l->rows, 0);
            }
        }
    }
    for (int i = 0; ok && i < c->n_layers; i++) {
        for (int s = 0; ok && s < QB_LIN_COUNT; s++) {
            const struct qb_linear *l = &m->layers[i].lin[s];
            char prefix[160];
            linear_prefix(i, s, prefix, sizeof prefix);
            size_t row = (size_t)(l->cols / w->meta.group) *
                         qb_qbfmt_record_bytes(w->meta.bits, w->meta.group);
            snprintf(name, sizeof name, "%s.qweight", prefix);
            ok = ok && wt_add(w, name, QB_DTYPE_U8, 2, l->rows, (int64_t)row);
            if (w->meta.act_order && !w->meta.static_groups) {
                snprintf(name, sizeof name, "%s.g_idx", prefix);
                ok = ok && wt_add(w, name, QB_DTYPE_I32, 1, l->cols, 0);
            }
        }
    }
    return ok;
}

static char *header_json(struct qb_qbfmt_writer *w)
{
    cJSON *root = cJSON_CreateObject(), *md = cJSON_AddObjectToObject(root, "__metadata__");
    cJSON_AddStringToObject(md, "format", "pt");
    cJSON_AddStringToObject(md, "quantbench", "quantized checkpoint, see quantbench.json");
    size_t off = 0;
    for (int i = 0; i < w->n; i++) {
        struct wtensor *t = &w->t[i];
        cJSON *o = cJSON_AddObjectToObject(root, t->name);
        cJSON_AddStringToObject(o, "dtype", qb_dtype_name(t->dtype));
        double shape[2] = {(double)t->shape[0], (double)t->shape[1]};
        cJSON_AddItemToObject(o, "shape", cJSON_CreateDoubleArray(shape, t->n_dims));
        double offs[2] = {(double)off, (double)(off + t->bytes)};
        cJSON_AddItemToObject(o, "data_offsets", cJSON_CreateDoubleArray(offs, 2));
        t->begin = off;
        off += t->bytes;
    }
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
}

static enum qb_status pwrite_all(struct qb_qbfmt_writer *w, const void *data, size_t len,
                                 size_t off, struct qb_err *err)
{
    const char *p = data;
    while (len > 0) {
        ssize_t k = pwrite(w->fd, p, len, (off_t)off);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return qb_err_set(err, QB_ERR_IO, "cannot write '%s': %s", w->st_path,
                              strerror(errno));
        p += k;
        off += (size_t)k;
        len -= (size_t)k;
    }
    return QB_OK;
}

static enum qb_status write_tensor(struct qb_qbfmt_writer *w, const char *name, const void *data,
                                   size_t bytes, struct qb_err *err)
{
    struct wtensor *t = wt_find(w, name);
    if (!t || t->bytes != bytes)
        return qb_err_set(err, QB_ERR_INTERNAL, "qbfmt writer: tensor '%s' %s", name,
                          t ? "has the wrong size" : "is not in the plan");
    enum qb_status st = pwrite_all(w, data, bytes, w->data_start + t->begin, err);
    if (!st)
        t->written = 1;
    return st;
}

enum qb_status qb_qbfmt_writer_open(const char *out_dir, const struct qb_model *m,
                                    const struct qb_qbfmt_meta *meta,
                                    struct qb_qbfmt_writer **out, struct qb_err *err)
{
    enum qb_status st = QB_OK;
    char *hdr = NULL;
    *out = NULL;
    if (qb_path_exists(out_dir))
        return qb_err_set(err, QB_ERR_IO, "'%s' already exists; remove it or pick another --out",
                          out_dir);
    struct qb_qbfmt_writer *w = calloc(1, sizeof *w);
    if (!w)
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory");
    w->fd = -1;
    w->meta = *meta;
    w->n_layers = m->cfg.n_layers;
    w->out_dir = qb_strdup(out_dir);
    w->tmp_dir = qb_asprintf("%s.tmp-XXXXXX", out_dir);
    if (!w->out_dir || !w->tmp_dir || !plan_tensors(w, m)) {
        st = qb_err_set(err, QB_ERR_NOMEM, "out of memory");
        goto out;
    }
    if (!mkdtemp(w->tmp_dir)) {
        free(w->tmp_dir);
        w->tmp_dir = NULL;
        st = qb_err_set(err, QB_ERR_IO, "cannot create a directory next to '%s': %s", out_dir,
                        strerror(errno));
        goto out;
    }
    w->st_path = qb_path_join(w->tmp_dir, "model.safetensors");
    hdr = header_json(w);
    if (!w->st_path || !hdr) {
        st = qb_err_set(err, QB_ERR_NOMEM, "out of memory");
        goto out;
    }
    w->fd = open(w->st_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (w->fd < 0) {
        st = qb_err_set(err, QB_ERR_IO, "cannot create '%s': %s", w->st_path, strerror(errno));
        goto out;
    }
    size_t hl = strlen(hdr), padded = (hl + 7) & ~(size_t)7;
    char *buf = calloc(1, 8 + padded);
    if (!buf) {
        st = qb_err_set(err, QB_ERR_NOMEM, "out of memory");
        goto out;
    }
    uint64_t n = padded;
    for (int i = 0; i < 8; i++)
        buf[i] = (char)(n >> (8 * i) & 0xff);
    memcpy(buf + 8, hdr, hl);
    memset(buf + 8 + hl, ' ', padded - hl);
    w->data_start = 8 + padded;
    st = pwrite_all(w, buf, 8 + padded, 0, err);
    free(buf);
out:
    free(hdr);
    if (st)
        qb_qbfmt_writer_abort(w);
    else
        *out = w;
    return st;
}

enum qb_status qb_qbfmt_writer_add(void *ctx, int layer, enum qb_linear_slot slot,
                                   const struct qb_qresult *q, struct qb_err *err)
{
    struct qb_qbfmt_writer *w = ctx;
    char prefix[160], name[200];
    if (q->bits != w->meta.bits || q->group != w->meta.group)
        return qb_err_set(err, QB_ERR_INTERNAL, "qbfmt writer: layer %d %s has %d bits, group "
                          "%d; the checkpoint is %d bits, group %d", layer,
                          qb_linear_slot_name(slot), q->bits, q->group, w->meta.bits,
                          w->meta.group);
    linear_prefix(layer, slot, prefix, sizeof prefix);
    size_t bytes = (size_t)q->rows * (size_t)(q->cols / q->group) *
                   qb_qbfmt_record_bytes(q->bits, q->group);
    uint8_t *buf = qb_malloc_array(bytes, 1);
    if (!buf)
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory packing '%s'", prefix);
    qb_qbfmt_pack(q, buf);
    snprintf(name, sizeof name, "%s.qweight", prefix);
    enum qb_status st = write_tensor(w, name, buf, bytes, err);
    free(buf);
    snprintf(name, sizeof name, "%s.g_idx", prefix);
    if (!st && wt_find(w, name)) {
        if (!q->g_idx)
            return qb_err_set(err, QB_ERR_INTERNAL, "qbfmt writer: '%s' has no g_idx", prefix);
        st = write_tensor(w, name, q->g_idx, (size_t)q->cols * sizeof(int32_t), err);
    }
    return st;
}

enum qb_status qb_qbfmt_writer_add_payload(struct qb_qbfmt_writer *w, int layer,
                                           enum qb_linear_slot slot, const void *data,
                                           size_t bytes, struct qb_err *err)
{
    char prefix[160], name[200];
    linear_prefix(layer, slot, prefix, sizeof prefix);
    snprintf(name, sizeof name, "%s.qweight", prefix);
    return write_tensor(w, name, data, bytes, err);
}

static enum qb_status write_vec(struct qb_qbfmt_writer *w, const char *name, const float *v,
                                int64_t n, struct qb_err *err)
{
    return write_tensor(w, name, v, (size_t)n * sizeof(float), err);
}

static enum qb_status write_model_tensors(struct qb_qbfmt_writer *w, const struct qb_model *m,
                                          struct qb_err *err)
{
    const struct qb_config *c = &m->cfg;
    char name[200];
    enum qb_status st = write_tensor(w, "model.embed_tokens.weight", m->embed.data,
                                     m->embed.data_bytes, err);
    if (!st && m->lm_head.data != m->embed.data)
        st = write_tensor(w, "lm_head.weight", m->lm_head.data, m->lm_head.data_bytes, err);
    if (!st)
        st = write_vec(w, "model.norm.weight", m->final_norm, c->hidden, err);
    for (int i = 0; !st && i < c->n_layers; i++) {
        const struct qb_layer *L = &m->layers[i];
        snprintf(name, sizeof name, "model.layers.%d.input_layernorm.weight", i);
        st = write_vec(w, name, L->attn_norm, c->hidden, err);
        snprintf(name, sizeof name, "model.layers.%d.post_attention_layernorm.weight", i);
        if (!st)
            st = write_vec(w, name, L->ffn_norm, c->hidden, err);
        if (!st && c->qk_norm) {
            snprintf(name, sizeof name, "model.layers.%d.self_attn.q_norm.weight", i);
            st = write_vec(w, name, L->q_norm, c->head_dim, err);
            snprintf(name, sizeof name, "model.layers.%d.self_attn.k_norm.weight", i);
            if (!st)
                st = write_vec(w, name, L->k_norm, c->head_dim, err);
        }
        for (int s = 0; !st && s < QB_LIN_COUNT; s++) {
            char prefix[160];
            linear_prefix(i, s, prefix, sizeof prefix);
            snprintf(name, sizeof name, "%s.bias", prefix);
            if (L->lin[s].bias)
                st = write_vec(w, name, L->lin[s].bias, L->lin[s].rows, err);
        }
    }
    for (int i = 0; !st && i < w->n; i++)
        if (!w->t[i].written)
            st = qb_err_set(err, QB_ERR_INTERNAL, "qbfmt writer: tensor '%s' was never written",
                            w->t[i].name);
    return st;
}

static enum qb_status write_meta(struct qb_qbfmt_writer *w, const char *provenance,
                                 struct qb_err *err)
{
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "format", "quantbench-quantized");
    cJSON_AddNumberToObject(root, "version", QB_QBFMT_VERSION);
    cJSON_AddStringToObject(root, "scheme", w->meta.scheme);
    cJSON_AddStringToObject(root, "method", method_name(w->meta.method));
    cJSON_AddStringToObject(root, "weight_format", qb_qbfmt_wfmt_name(w->meta.bits, w->meta.sym));
    cJSON_AddNumberToObject(root, "bits", w->meta.bits);
    cJSON_AddNumberToObject(root, "group", w->meta.group);
    cJSON_AddBoolToObject(root, "sym", w->meta.sym);
    cJSON_AddBoolToObject(root, "act_order", w->meta.act_order);
    cJSON_AddBoolToObject(root, "static_groups", w->meta.static_groups);
    cJSON_AddNumberToObject(root, "damp", w->meta.damp);
    cJSON *prov = provenance ? cJSON_Parse(provenance) : NULL;
    if (prov)
        cJSON_AddItemToObject(root, "provenance", prov);
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    char *path = qb_path_join(w->tmp_dir, QB_QBFMT_META);
    enum qb_status st = text && path ? qb_file_write_atomic(path, text, strlen(text), err)
                                     : qb_err_set(err, QB_ERR_NOMEM, "out of memory");
    free(text);
    free(path);
    return st;
}

static enum qb_status copy_side_files(struct qb_qbfmt_writer *w, const char *src_dir,
                                      struct qb_err *err)
{
    static const char *const files[] = {"config.json", "tokenizer.json", "tokenizer_config.json",
                                        "special_tokens_map.json", "generation_config.json"};
    enum qb_status st = QB_OK;
    for (size_t i = 0; !st && i < QB_ARRAY_LEN(files); i++) {
        char *from = qb_path_join(src_dir, files[i]), *to = qb_path_join(w->tmp_dir, files[i]);
        char *data = NULL;
        size_t len = 0;
        if (!from || !to)
            st = qb_err_set(err, QB_ERR_NOMEM, "out of memory");
        else if (qb_path_exists(from) &&
                 !(st = qb_file_read_all(from, (size_t)1 << 30, &data, &len, err)))
            st = qb_file_write_atomic(to, data, len, err);
        free(data);
        free(from);
        free(to);
    }
    return st;
}

enum qb_status qb_qbfmt_writer_finish(struct qb_qbfmt_writer *w, const struct qb_model *m,
                                      const char *provenance, struct qb_err *err)
{
    enum qb_status st = write_model_tensors(w, m, err);
    if (!st && fsync(w->fd) != 0)
        st = qb_err_set(err, QB_ERR_IO, "cannot sync '%s': %s", w->st_path, strerror(errno));
    if (!st)
        st = write_meta(w, provenance, err);
    if (!st)
        st = copy_side_files(w, m->dir, err);
    if (!st && chmod(w->tmp_dir, 0755) != 0)
        st = qb_err_set(err, QB_ERR_IO, "cannot chmod '%s': %s", w->tmp_dir, strerror(errno));
    if (!st && rename(w->tmp_dir, w->out_dir) != 0)
        st = qb_err_set(err, QB_ERR_IO, "cannot rename '%s' to '%s': %s", w->tmp_dir, w->out_dir,
                        strerror(errno));
    if (!st) {
        free(w->tmp_dir);
        w->tmp_dir = NULL; /* nothing to remove any more */
    }
    qb_qbfmt_writer_abort(w);
    return st;
}

static void remove_tree(const char *dir)
{
    DIR *d = opendir(dir);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
                continue;
            char *p = qb_path_join(dir, e->d_name);
            if (p)
                unlink(p);
            free(p);
        }
        closedir(d);
    }
    rmdir(dir);
}

void qb_qbfmt_writer_abort(struct qb_qbfmt_writer *w)
{
    if (!w)
        return;
    if (w->fd >= 0)
        close(w->fd);
    if (w->tmp_dir)
        remove_tree(w->tmp_dir);
    free(w->tmp_dir);
    free(w->out_dir);
    free(w->st_path);
    free(w->t);
    free(w);
}
