/*
 * hfq_unpack.c - per-format unpackers of the Hugging Face quantized checkpoint
 * loader: GPTQ, AWQ, NVFP4 (compressed-tensors / ModelOpt), FP8 and
 * bitsandbytes NF4 tensors repacked into our formats (see hfq_load.h). Tensor
 * bytes come from an mmap and may be unaligned: multi-byte values are read
 * with memcpy. Every shape and dtype is checked before a byte is read.
 */
#include <math.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "dtype.h"
#include "fp_formats.h"
#include "hfq_impl.h"
#include "hfq_load_impl.h"
#include "quant_blocks.h"

#define ANY_FLOAT ((enum qb_dtype) - 1)

static const char *method_name(const struct qb_hfq *q)
{
    static const char *const names[] = {"GPTQ", "AWQ", "compressed-tensors", "ModelOpt",
                                        "bitsandbytes"};
    return names[q->method];
}

static const char *shape_str(const struct qb_st_tensor *t, char *buf, size_t n)
{
    size_t off = (size_t)snprintf(buf, n, "[");
    for (int d = 0; d < t->n_dims && off < n; d++)
        off += (size_t)snprintf(buf + off, n - off, d ? ", %lld" : "%lld", (long long)t->shape[d]);
    if (off < n)
        snprintf(buf + off, n - off, "]");
    return buf;
}

/* Tensor prefix+suffix of dtype dt (ANY_FLOAT: F32/F16/BF16) and shape [d0(, d1)]
 * (n_dims 0: any shape holding d0 elements). */
static enum qb_status need(const struct qb_hfq *q, const struct qb_ckpt *ck, const char *prefix,
                           const char *suffix, enum qb_dtype dt, int n_dims, int64_t d0, int64_t d1,
                           const struct qb_st_tensor **out, struct qb_err *err)
{
    char name[256], sb[96];
    snprintf(name, sizeof name, "%s.%s", prefix, suffix);
    const struct qb_st_tensor *t = qb_ckpt_find(ck, name);
    *out = NULL;
    if (!t)
        return qb_err_set(err, QB_ERR_FORMAT,
                          "%s: tensor '%s' is missing; a %s checkpoint "
                          "(%s) needs it",
                          ck->dir, name, method_name(q), q->desc);
    int fl = t->dtype == QB_DTYPE_F32 || t->dtype == QB_DTYPE_F16 || t->dtype == QB_DTYPE_BF16;
    if (dt == ANY_FLOAT ? !fl : t->dtype != dt)
        return qb_err_set(err, QB_ERR_FORMAT, "%s: tensor '%s' has dtype %s; %s expects %s",
                          ck->dir, name, qb_dtype_name(t->dtype), q->desc,
                          dt == ANY_FLOAT ? "F32, F16 or BF16" : qb_dtype_name(dt));
    int ok = n_dims == 0
                 ? t->n_elems == d0
                 : t->n_dims == n_dims && t->shape[0] == d0 && (n_dims < 2 || t->shape[1] == d1);
    if (!ok) {
        if (n_dims == 0)
            return qb_err_set(err, QB_ERR_FORMAT,
                              "%s: tensor '%s' has shape %s; %s implies %lld "
                              "elements",
                              ck->dir, name, shape_str(t, sb, sizeof sb), q->desc, (long long)d0);
        return qb_err_set(err, QB_ERR_FORMAT,
                          "%s: tensor '%s' has shape %s; %s implies "
                          "[%lld%s%.0lld] for this layer (check config.json's "
                          "quantization_config)",
                          ck->dir, name, shape_str(t, sb, sizeof sb), q->desc, (long long)d0,
                          n_dims > 1 ? ", " : "", n_dims > 1 ? (long long)d1 : 0LL);
    }
    *out = t;
    return QB_OK;
}

static uint32_t rd_u32(const void *base, size_t i)
{
    uint32_t v;
    memcpy(&v, (const uint8_t *)base + 4 * i, 4);
    return v;
}

static uint16_t rd_u16(const void *base, size_t i)
{
    uint16_t v;
    memcpy(&v, (const uint8_t *)base + 2 * i, 2);
    return v;
}

static float rd_float(const struct qb_st_tensor *t, size_t i)
{
    if (t->dtype == QB_DTYPE_F16)
        return qb_f16_to_f32(rd_u16(t->data, i));
    if (t->dtype == QB_DTYPE_BF16)
        return qb_bf16_to_f32(rd_u16(t->data, i));
    uint32_t u = rd_u32(t->data, i);
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static enum qb_status group_shape(const struct qb_hfq *q, const struct qb_ckpt *ck,
                                  const char *prefix, int64_t cols, int64_t *gs, int *G,
                                  struct qb_err *err)
{
    *gs = q->group_size > 0 ? q->group_size : cols;
    *G = qb_hfq_record_group((int)*gs, cols);
    if (cols % *gs || !*G)
        return qb_err_set(err, QB_ERR_UNSUPPORTED,
                          "%s: layer '%s' has %lld input features, not "
                          "a multiple of group_size %lld (and of 32)",
                          ck->dir, prefix, (long long)cols, (long long)*gs);
    return QB_OK;
}

/* Common tail of GPTQ/AWQ: HF groups (scales f16 [ng][N], zeros [ng][N]) -> records. */
struct hf_groups {
    int64_t gs, ng;
    int G, bits;
    uint8_t *codes; /* [N][K] */
    uint8_t *zeros; /* [ng][N] */
    const struct qb_st_tensor *scales;
    int32_t *g_idx; /* [K] HF groups, or NULL when sequential */
};

static enum qb_status pack_records(const struct hf_groups *h, int64_t N, int64_t K,
                                   const char *prefix, struct qb_linear *lin, struct qb_err *err)
{
    int64_t nrec = K / h->G, k = h->gs / h->G;
    float *sc = qb_malloc_array((size_t)N * (size_t)nrec, sizeof *sc);
    uint8_t *z = qb_malloc_array((size_t)N * (size_t)nrec, 1);
    int32_t *gi = h->g_idx ? qb_malloc_array((size_t)K, sizeof *gi) : NULL;
    enum qb_status st = QB_OK;
    if (!sc || !z || (h->g_idx && !gi)) {
        st = qb_err_set(err, QB_ERR_NOMEM, "out of memory repacking '%s'", prefix);
        goto out;
    }
    for (int64_t n = 0; n < N; n++) {
        for (int64_t r = 0; r < nrec; r++) {
            sc[n * nrec + r] = rd_float(h->scales, (size_t)((r / k) * N + n));
            z[n * nrec + r] = h->zeros[(r / k) * N + n];
        }
    }
    for (int64_t c = 0; gi && c < K; c++)
        gi[c] = (int32_t)(h->g_idx[c] * k);
    struct qb_quant_params qp = {.group = h->G, .bits = h->bits, .g_idx = gi};
    char name[256];
    snprintf(name, sizeof name, "%s.qweight", prefix);
    st = qb_linear_pack_groups(N, K, h->bits == 4 ? QB_WFMT_INT4 : QB_WFMT_UINT_G, &qp, h->codes,
                               sc, z, name, lin, err);
out:
    free(sc);
    free(z);
    free(gi);
    return st;
}

QB_HFQ_UNPACK(qb_hfq_unpack_gptq)
{
    const struct qb_st_tensor *qw, *qz, *sc, *gidx;
    struct hf_groups h = {.bits = q->bits};
    int64_t K = cols, N = rows, b = q->bits;
    uint32_t *words = NULL;
    enum qb_status st = group_shape(q, ck, prefix, cols, &h.gs, &h.G, err);
    if (st)
        return st;
    h.ng = K / h.gs;
    if ((K * b) % 32 || (N * b) % 32)
        return qb_err_set(err, QB_ERR_UNSUPPORTED,
                          "%s: layer '%s' [%lld, %lld] cannot hold "
                          "%lld-bit GPTQ words",
                          ck->dir, prefix, (long long)N, (long long)K, (long long)b);
    if ((st = need(q, ck, prefix, "qweight", QB_DTYPE_I32, 2, K * b / 32, N, &qw, err)) ||
        (st = need(q, ck, prefix, "qzeros", QB_DTYPE_I32, 2, h.ng, N * b / 32, &qz, err)) ||
        (st = need(q, ck, prefix, "scales", ANY_FLOAT, 2, h.ng, N, &sc, err)))
        return st;
    h.scales = sc;
    char gname[256];
    snprintf(gname, sizeof gname, "%s.g_idx", prefix);
    gidx = qb_ckpt_find(ck, gname);
    if (gidx && (st = need(q, ck, prefix, "g_idx", QB_DTYPE_I32, 1, K, 0, &gidx, err)))
        return st;
    h.codes = qb_malloc_array((size_t)N * (size_t)K, 1);
    h.zeros = qb_malloc_array((size_t)h.ng * (size_t)N, 1);
    words = qb_malloc_array((size_t)(K * b / 32) * (size_t)N, 4);
    if (gidx)
        h.g_idx = qb_malloc_array((size_t)K, sizeof *h.g_idx);
    if (!h.codes || !h.zeros || !words || (gidx && !h.g_idx)) {
        st = qb_err_set(err, QB_ERR_NOMEM, "out of memory reading '%s'", prefix);
        goto out;
    }
    int trivial = 1;
    for (int64_t c = 0; gidx && c < K; c++) {
        int32_t g = (int32_t)rd_u32(gidx->data, (size_t)c);
        if (g < 0 || g >= h.ng) {
            st = qb_err_set(err, QB_ERR_FORMAT,
                            "%s: '%s.g_idx'[%lld] = %d is outside [0, %lld) "
                            "(group_size %lld)",
                            ck->dir, prefix, (long long)c, g, (long long)h.ng, (long long)h.gs);
            goto out;
        }
        h.g_idx[c] = g;
        trivial &= g == c / h.gs;
    }
    if (trivial) {
        free(h.g_idx);
        h.g_idx = NULL;
    }
    memcpy(words, qw->data, (size_t)(K * b / 32) * (size_t)N * 4);
    for (int64_t n = 0; n < N; n++)
        for (int64_t k = 0; k < K; k++)
            h.codes[n * K + k] = (uint8_t)qb_hfq_get_bits(words + n, N, k, (int)b);
    uint32_t mask = (1u << b) - 1u;
    for (int64_t g = 0; g < h.ng; g++) {
        memcpy(words, (const uint8_t *)qz->data + (size_t)g * (size_t)(N * b / 32) * 4,
               (size_t)(N * b / 32) * 4);
        for (int64_t n = 0; n < N; n++) {
            uint32_t z = qb_hfq_get_bits(words, 1, n, (int)b);
            h.zeros[g * N + n] = (uint8_t)(q->v2 ? z : (z + 1u) & mask);
        }
    }
    st = pack_records(&h, N, K, prefix, lin, err);
out:
    free(words);
    free(h.codes);
    free(h.zeros);
    free(h.g_idx);
    return st;
}

QB_HFQ_UNPACK(qb_hfq_unpack_awq)
{
    const struct qb_st_tensor *qw, *qz, *sc;
    struct hf_groups h = {.bits = 4};
    int64_t K = cols, N = rows;
    enum qb_status st = group_shape(q, ck, prefix, cols, &h.gs, &h.G, err);
    if (st)
        return st;
    h.ng = K / h.gs;
    if (N % 8)
        return qb_err_set(err, QB_ERR_UNSUPPORTED,
                          "%s: layer '%s' has %lld output features, "
                          "not a multiple of 8 (AWQ GEMM)",
                          ck->dir, prefix, (long long)N);
    if ((st = need(q, ck, prefix, "qweight", QB_DTYPE_I32, 2, K, N / 8, &qw, err)) ||
        (st = need(q, ck, prefix, "qzeros", QB_DTYPE_I32, 2, h.ng, N / 8, &qz, err)) ||
        (st = need(q, ck, prefix, "scales", ANY_FLOAT, 2, h.ng, N, &sc, err)))
        return st;
    h.scales = sc;
    h.codes = qb_malloc_array((size_t)N * (size_t)K, 1);
    h.zeros = qb_malloc_array((size_t)h.ng * (size_t)N, 1);
    if (!h.codes || !h.zeros) {
        st = qb_err_set(err, QB_ERR_NOMEM, "out of memory reading '%s'", prefix);
        goto out;
    }
    for (int64_t k = 0; k < K; k++)
        for (int64_t c = 0; c < N / 8; c++) {
            uint32_t v = rd_u32(qw->data, (size_t)(k * (N / 8) + c));
            for (int i = 0; i < 8; i++)
                h.codes[(8 * c + qb_hfq_awq_order[i]) * K + k] = (uint8_t)((v >> (4 * i)) & 15u);
        }
    for (int64_t g = 0; g < h.ng; g++)
        for (int64_t c = 0; c < N / 8; c++) {
            uint32_t v = rd_u32(qz->data, (size_t)(g * (N / 8) + c));
            for (int i = 0; i < 8; i++)
                h.zeros[g * N + 8 * c + qb_hfq_awq_order[i]] = (uint8_t)((v >> (4 * i)) & 15u);
        }
    st = pack_records(&h, N, K, prefix, lin, err);
out:
    free(h.codes);
    free(h.zeros);
    return st;
}

static enum qb_status alloc_payload(struct qb_linear *lin, enum qb_wfmt fmt, int64_t rows,
                                    int64_t cols, const struct qb_quant_params *qp,
                                    const char *prefix, struct qb_err *err)
{
    memset(lin, 0, sizeof *lin);
    lin->fmt = fmt;
    lin->rows = rows;
    lin->cols = cols;
    lin->qp = *qp;
    lin->data_bytes = qb_wfmt_get(fmt)->packed_bytes(rows, cols, qp);
    lin->owned = qb_aligned_alloc(lin->data_bytes);
    lin->data = lin->owned;
    if (!lin->owned)
        return qb_err_set(err, QB_ERR_NOMEM, "cannot allocate %zu bytes for '%s'", lin->data_bytes,
                          prefix);
    return QB_OK;
}

QB_HFQ_UNPACK(qb_hfq_unpack_nvfp4)
{
    const struct qb_st_tensor *w, *s, *g;
    int modelopt = q->method == QB_HFQ_MODELOPT;
    int64_t nb = cols / QB_NVFP4_BLOCK;
    enum qb_status st;
    if (cols % QB_NVFP4_BLOCK)
        return qb_err_set(err, QB_ERR_UNSUPPORTED,
                          "%s: layer '%s' has %lld input features, not "
                          "a multiple of 16 (NVFP4)",
                          ck->dir, prefix, (long long)cols);
    if ((st = need(q, ck, prefix, modelopt ? "weight" : "weight_packed", QB_DTYPE_U8, 2, rows,
                   cols / 2, &w, err)) ||
        (st = need(q, ck, prefix, "weight_scale", QB_DTYPE_F8_E4M3, 2, rows, nb, &s, err)) ||
        (st = need(q, ck, prefix, modelopt ? "weight_scale_2" : "weight_global_scale", ANY_FLOAT, 0,
                   1, 0, &g, err)))
        return st;
    float gs = rd_float(g, 0);
    gs = modelopt ? 1.0f / gs : gs;
    if (!isfinite(gs) || gs <= 0.0f)
        return qb_err_set(err, QB_ERR_FORMAT,
                          "%s: '%s' global scale %g is not a positive "
                          "finite number",
                          ck->dir, prefix, (double)rd_float(g, 0));
    struct qb_quant_params qp = {
        .group = QB_NVFP4_BLOCK, .global_scale = gs, .act = q->act ? QB_ACT_NVFP4 : QB_ACT_F32};
    st = alloc_payload(lin, QB_WFMT_NVFP4, rows, cols, &qp, prefix, err);
    if (st)
        return st;
    struct qb_nvfp4_header h = {.global_scale = gs};
    memcpy(lin->owned, &h, sizeof h);
    struct qb_block_nvfp4 *blk = (void *)((uint8_t *)lin->owned + sizeof h);
    const uint8_t *wp = w->data, *sp = s->data;
    for (int64_t i = 0; i < rows * nb; i++) {
        blk[i].scale = sp[i];
        memcpy(blk[i].qs, wp + i * (QB_NVFP4_BLOCK / 2), QB_NVFP4_BLOCK / 2);
    }
    return QB_OK;
}

QB_HFQ_UNPACK(qb_hfq_unpack_fp8)
{
    const struct qb_st_tensor *w, *s;
    char name[256];
    enum qb_status st = need(q, ck, prefix, "weight", QB_DTYPE_F8_E4M3, 2, rows, cols, &w, err);
    if (st)
        return st;
    snprintf(name, sizeof name, "%s.weight_scale", prefix);
    s = qb_ckpt_find(ck, name);
    int per_tensor = s && s->n_elems == 1;
    if ((st = need(q, ck, prefix, "weight_scale", ANY_FLOAT, 0, per_tensor ? 1 : rows, 0, &s, err)))
        return st;
    struct qb_quant_params qp = {.act = q->act ? QB_ACT_FP8_E4M3 : QB_ACT_F32};
    st = alloc_payload(lin, QB_WFMT_FP8_E4M3, rows, cols, &qp, prefix, err);
    if (st)
        return st;
    float *scales = lin->owned;
    for (int64_t r = 0; r < rows; r++) {
        scales[r] = rd_float(s, per_tensor ? 0 : (size_t)r);
        if (!isfinite(scales[r]))
            return qb_err_set(err, QB_ERR_FORMAT,
                              "%s: '%s' holds a non-finite scale at row "
                              "%lld",
                              ck->dir, name, (long long)r);
    }
    memcpy((uint8_t *)lin->owned + (size_t)rows * 4, w->data, (size_t)rows * (size_t)cols);
    return QB_OK;
}

/* ---- bitsandbytes ---- */

struct bnb_state {
    int blocksize, nested_blocksize, nested;
    double offset;
};

static enum qb_status bnb_quant_state(const struct qb_hfq *q, const struct qb_ckpt *ck,
                                      const char *prefix, int64_t rows, int64_t cols,
                                      struct bnb_state *bs, struct qb_err *err)
{
    char name[256];
    snprintf(name, sizeof name, "%s.weight.quant_state.bitsandbytes__nf4", prefix);
    const struct qb_st_tensor *t = qb_ckpt_find(ck, name);
    if (!t) {
        snprintf(name, sizeof name, "%s.weight.quant_state.bitsandbytes__fp4", prefix);
        if (qb_ckpt_find(ck, name))
            return qb_err_set(err, QB_ERR_UNSUPPORTED,
                              "%s: '%s' is bitsandbytes FP4; only NF4 "
                              "is supported",
                              ck->dir, prefix);
        return qb_err_set(err, QB_ERR_FORMAT,
                          "%s: tensor '%s.weight.quant_state."
                          "bitsandbytes__nf4' is missing; a %s checkpoint needs it",
                          ck->dir, prefix, q->desc);
    }
    if (t->dtype != QB_DTYPE_U8)
        return qb_err_set(err, QB_ERR_FORMAT, "%s: '%s' has dtype %s; expected U8 (JSON bytes)",
                          ck->dir, name, qb_dtype_name(t->dtype));
    cJSON *j = cJSON_ParseWithLength(t->data, qb_st_tensor_bytes(t));
    enum qb_status st = QB_OK;
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(j, "quant_type");
    const cJSON *bsz = cJSON_GetObjectItemCaseSensitive(j, "blocksize");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(j, "shape");
    const cJSON *nbs = cJSON_GetObjectItemCaseSensitive(j, "nested_blocksize");
    const cJSON *noff = cJSON_GetObjectItemCaseSensitive(j, "nested_offset");
    int shape_ok = cJSON_GetArraySize(shape) == 2 &&
                   cJSON_GetArrayItem(shape, 0)->valuedouble == (double)rows &&
                   cJSON_GetArrayItem(shape, 1)->valuedouble == (double)cols;
    if (!cJSON_IsObject(j) || !cJSON_IsString(type) || !cJSON_IsNumber(bsz) || !shape_ok) {
        st = qb_err_set(err, QB_ERR_FORMAT,
                        "%s: '%s' is not a quant_state JSON with quant_type, "
                        "blocksize and shape [%lld, %lld]",
                        ck->dir, name, (long long)rows, (long long)cols);
        goto out;
    }
    bs->blocksize = (int)bsz->valuedouble;
    bs->nested = nbs != NULL;
    if (strcmp(type->valuestring, "nf4") != 0 || bs->blocksize != QB_NF4_BLOCK) {
        st = qb_err_set(err, QB_ERR_UNSUPPORTED,
                        "%s: '%s' is %s with blocksize %d; only nf4 "
                        "with blocksize 64 is supported",
                        ck->dir, name, type->valuestring, bs->blocksize);
        goto out;
    }
    if (bs->nested && (!cJSON_IsNumber(nbs) || nbs->valuedouble != QB_NF4_DQ_NEST ||
                       !cJSON_IsNumber(noff) || !isfinite(noff->valuedouble))) {
        st = qb_err_set(err, QB_ERR_UNSUPPORTED,
                        "%s: '%s' needs nested_blocksize 256 and a "
                        "numeric nested_offset",
                        ck->dir, name);
        goto out;
    }
    bs->offset = bs->nested ? noff->valuedouble : 0.0;
out:
    cJSON_Delete(j);
    return st;
}

/* A stored code book must be ours (bitsandbytes' NF4 / dynamic map) to within
 * fp32 noise; the codes index our tables. */
static enum qb_status check_map(const struct qb_ckpt *ck, const struct qb_st_tensor *t,
                                const float *ours, int n, const char *what, struct qb_err *err)
{
    for (int i = 0; i < n; i++) {
        float v = rd_float(t, (size_t)i);
        if (!(fabsf(v - ours[i]) <= 1e-6f))
            return qb_err_set(err, QB_ERR_UNSUPPORTED,
                              "%s: '%s'[%d] = %g is not the %s value "
                              "%g",
                              ck->dir, t->name, i, (double)v, what, (double)ours[i]);
    }
    return QB_OK;
}

QB_HFQ_UNPACK(qb_hfq_unpack_nf4)
{
    const struct qb_st_tensor *w, *am, *map, *nam = NULL, *nmap;
    struct bnb_state bs = {0};
    int64_t n = rows * cols, nb = (n + QB_NF4_BLOCK - 1) / QB_NF4_BLOCK;
    int64_t nn = (nb + QB_NF4_DQ_NEST - 1) / QB_NF4_DQ_NEST;
    enum qb_status st = bnb_quant_state(q, ck, prefix, rows, cols, &bs, err);
    if (st)
        return st;
    if ((st = need(q, ck, prefix, "weight", QB_DTYPE_U8, 0, (n + 1) / 2, 0, &w, err)) ||
        (st = need(q, ck, prefix, "weight.absmax", bs.nested ? QB_DTYPE_U8 : QB_DTYPE_F32, 1, nb, 0,
                   &am, err)) ||
        (st = need(q, ck, prefix, "weight.quant_map", QB_DTYPE_F32, 1, 16, 0, &map, err)) ||
        (st = check_map(ck, map, qb_nf4_values, 16, "NF4", err)))
        return st;
    if (bs.nested &&
        ((st = need(q, ck, prefix, "weight.nested_absmax", QB_DTYPE_F32, 1, nn, 0, &nam, err)) ||
         (st = need(q, ck, prefix, "weight.nested_quant_map", QB_DTYPE_F32, 1, 256, 0, &nmap,
                    err)) ||
         (st = check_map(ck, nmap, qb_bnb_dynamic_map, 256, "bitsandbytes dynamic map", err))))
        return st;
    struct qb_quant_params qp = {.group = QB_NF4_BLOCK};
    st = alloc_payload(lin, bs.nested ? QB_WFMT_NF4_DQ : QB_WFMT_NF4, rows, cols, &qp, prefix, err);
    if (st)
        return st;
    const uint8_t *wp = w->data;
    size_t wbytes = (size_t)((n + 1) / 2);
    uint8_t *dst = lin->owned;
    if (bs.nested) {
        struct qb_nf4dq_header h = {
            .offset = (float)bs.offset, .n_blocks = (uint32_t)nb, .n_nested = (uint32_t)nn};
        memcpy(dst, &h, sizeof h);
        memcpy(dst + sizeof h, nam->data, (size_t)nn * 4);
        dst += sizeof h + (size_t)nn * 4;
    }
    size_t bsz = bs.nested ? sizeof(struct qb_block_nf4dq) : sizeof(struct qb_block_nf4);
    for (int64_t b = 0; b < nb; b++) {
        uint8_t *blk = dst + (size_t)b * bsz, *qs = blk + (bs.nested ? 1 : 4);
        if (bs.nested)
            blk[0] = ((const uint8_t *)am->data)[b];
        else
            memcpy(blk, (const uint8_t *)am->data + 4 * b, 4);
        size_t off = (size_t)b * 32, take = off + 32 <= wbytes ? 32 : wbytes - off;
        memset(qs, 0x77, 32);
        memcpy(qs, wp + off, take);
    }
    return QB_OK;
}
