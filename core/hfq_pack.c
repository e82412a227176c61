/*
 * hfq_pack.c - per-linear tensor packers of the Hugging Face exporter: our
 * packed formats (quant_blocks.h) rewritten into the GPTQ, AWQ, compressed-
 * tensors, ModelOpt and bitsandbytes layouts (described in hfq_export.h).
 * Every conversion is a byte/bit rearrangement: no value is re-rounded.
 */
#include <math.h>
#include <string.h>

#include "dtype.h"
#include "fp_formats.h"
#include "hfq_impl.h"
#include "quant_blocks.h"

const int qb_hfq_awq_order[8] = {0, 2, 4, 6, 1, 3, 5, 7};

static int group_bits(const struct qb_linear *lin)
{
    if (lin->fmt == QB_WFMT_UINT_G)
        return lin->qp.bits ? lin->qp.bits : 4;
    return 4;
}

void qb_hfq_groups_free(struct qb_hfq_groups *g)
{
    free(g->codes);
    free(g->scales);
    free(g->zeros);
    free(g->g_idx);
    memset(g, 0, sizeof *g);
}

enum qb_status qb_hfq_groups_from_linear(const struct qb_linear *lin, const char *name,
                                         struct qb_hfq_groups *g, struct qb_err *err)
{
    memset(g, 0, sizeof *g);
    if (lin->fmt != QB_WFMT_INT4 && lin->fmt != QB_WFMT_INT4_SYM && lin->fmt != QB_WFMT_UINT_G)
        return qb_err_set(err, QB_ERR_UNSUPPORTED, "'%s' is in format %s, not integer groups", name,
                          qb_wfmt_get(lin->fmt)->name);
    g->bits = group_bits(lin);
    g->group = lin->qp.group ? lin->qp.group : QB_GROUP_DEFAULT;
    g->rows = lin->rows;
    g->cols = lin->cols;
    g->ngroups = lin->cols / g->group;
    size_t n = (size_t)lin->rows * (size_t)lin->cols, ng = (size_t)g->ngroups * (size_t)g->rows;
    g->codes = qb_malloc_array(n, 1);
    g->scales = qb_malloc_array(ng, sizeof *g->scales);
    g->zeros = qb_malloc_array(ng, 1);
    g->g_idx = qb_malloc_array((size_t)lin->cols, sizeof *g->g_idx);
    if (!g->codes || !g->scales || !g->zeros || !g->g_idx) {
        qb_hfq_groups_free(g);
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory unpacking '%s'", name);
    }
    const uint8_t *base = lin->data;
    for (int64_t r = 0; r < g->rows; r++) {
        for (int64_t k = 0; k < g->ngroups; k++) {
            const uint8_t *rec = base + qb_group_record_offset(r, k, g->cols, g->group, g->bits);
            struct qb_group_header h;
            memcpy(&h, rec, sizeof h);
            g->scales[k * g->rows + r] = h.scale_f16;
            g->zeros[k * g->rows + r] = h.zero;
            for (int j = 0; j < g->group; j++)
                g->codes[r * g->cols + k * g->group + j] =
                    (uint8_t)qb_group_code(rec + sizeof h, j, g->bits);
        }
    }
    for (int64_t c = 0; c < g->cols; c++)
        g->g_idx[c] = lin->qp.g_idx ? lin->qp.g_idx[c] : (int32_t)(c / g->group);
    return QB_OK;
}

/* prefix.qweight and prefix.qzeros (int32 [2-D], owned: taken also on
 * error) and prefix.scales (f16 [ngroups][rows], copied from g). */
static enum qb_status add_packed(struct qb_stw *w, const char *prefix, uint32_t *qw,
                                 const int64_t *s_qw, uint32_t *qz, const int64_t *s_qz,
                                 const struct qb_hfq_groups *g, struct qb_err *err)
{
    char name[256];
    int64_t s_sc[2] = {g->ngroups, g->rows};
    snprintf(name, sizeof name, "%s.qweight", prefix);
    enum qb_status st = qb_stw_add_owned(w, name, QB_DTYPE_I32, 2, s_qw, qw, err);
    if (st)
        goto out;
    snprintf(name, sizeof name, "%s.qzeros", prefix);
    st = qb_stw_add_owned(w, name, QB_DTYPE_I32, 2, s_qz, qz, err);
    qz = NULL;
    if (st)
        goto out;
    snprintf(name, sizeof name, "%s.scales", prefix);
    st = qb_stw_add(w, name, QB_DTYPE_F16, 2, s_sc, g->scales, err);
out:
    free(qz); /* the first add failed: qzeros was never handed over */
    return st;
}

enum qb_status qb_hfq_pack_gptq(struct qb_stw *w, const char *prefix, const struct qb_linear *lin,
                                int v2, long long *zero0, struct qb_err *err)
{
    struct qb_hfq_groups g;
    char name[256];
    uint32_t *qw = NULL, *qz = NULL;
    enum qb_status st = qb_hfq_groups_from_linear(lin, prefix, &g, err);
    if (st)
        return st;
    int64_t K = g.cols, N = g.rows, b = g.bits;
    if ((K * b) % 32 || (N * b) % 32) {
        st = qb_err_set(err, QB_ERR_UNSUPPORTED,
                        "'%s': GPTQ packing needs in (%lld) and out "
                        "(%lld) features times %lld bits to fill 32-bit words",
                        prefix, (long long)K, (long long)N, (long long)b);
        goto out;
    }
    qw = qb_calloc_array((size_t)(K * b / 32) * (size_t)N, 4);
    qz = qb_calloc_array((size_t)g.ngroups * (size_t)(N * b / 32), 4);
    if (!qw || !qz) {
        st = qb_err_set(err, QB_ERR_NOMEM, "out of memory packing '%s'", prefix);
        goto out;
    }
    uint32_t mask = (1u << b) - 1u;
    for (int64_t n = 0; n < N; n++)
        for (int64_t k = 0; k < K; k++)
            qb_hfq_put_bits(qw + n, N, k, (int)b, g.codes[n * K + k]);
    for (int64_t k = 0; k < g.ngroups; k++) {
        uint32_t *row = qz + k * (N * b / 32);
        for (int64_t n = 0; n < N; n++) {
            uint32_t z = g.zeros[k * N + n];
            *zero0 += z == 0;
            qb_hfq_put_bits(row, 1, n, (int)b, v2 ? z : (z - 1u) & mask);
        }
    }
    int64_t s_qw[2] = {K * b / 32, N}, s_qz[2] = {g.ngroups, N * b / 32};
    st = add_packed(w, prefix, qw, s_qw, qz, s_qz, &g, err);
    qw = qz = NULL;
    if (st)
        goto out;
    snprintf(name, sizeof name, "%s.g_idx", prefix);
    st = qb_stw_add(w, name, QB_DTYPE_I32, 1, &K, g.g_idx, err);
out:
    free(qw);
    free(qz);
    qb_hfq_groups_free(&g);
    return st;
}

enum qb_status qb_hfq_pack_awq(struct qb_stw *w, const char *prefix, const struct qb_linear *lin,
                               struct qb_err *err)
{
    struct qb_hfq_groups g;
    uint32_t *qw = NULL, *qz = NULL;
    enum qb_status st = qb_hfq_groups_from_linear(lin, prefix, &g, err);
    if (st)
        return st;
    int64_t K = g.cols, N = g.rows;
    if (g.bits != 4 || lin->qp.g_idx || N % 8) {
        st = qb_err_set(err, QB_ERR_UNSUPPORTED,
                        "'%s': AWQ GEMM needs 4-bit sequential groups "
                        "and out features (%lld) divisible by 8",
                        prefix, (long long)N);
        goto out;
    }
    qw = qb_calloc_array((size_t)K * (size_t)(N / 8), 4);
    qz = qb_calloc_array((size_t)g.ngroups * (size_t)(N / 8), 4);
    if (!qw || !qz) {
        st = qb_err_set(err, QB_ERR_NOMEM, "out of memory packing '%s'", prefix);
        goto out;
    }
    for (int64_t k = 0; k < K; k++)
        for (int64_t c = 0; c < N / 8; c++)
            for (int i = 0; i < 8; i++)
                qw[k * (N / 8) + c] |= (uint32_t)g.codes[(8 * c + qb_hfq_awq_order[i]) * K + k]
                                       << (4 * i);
    for (int64_t k = 0; k < g.ngroups; k++)
        for (int64_t c = 0; c < N / 8; c++)
            for (int i = 0; i < 8; i++)
                qz[k * (N / 8) + c] |= (uint32_t)g.zeros[k * N + 8 * c + qb_hfq_awq_order[i]]
                                       << (4 * i);
    int64_t s_qw[2] = {K, N / 8}, s_qz[2] = {g.ngroups, N / 8};
    st = add_packed(w, prefix, qw, s_qw, qz, s_qz, &g, err);
    qw = qz = NULL;
out:
    free(qw);
    free(qz);
    qb_hfq_groups_free(&g);
    return st;
}

enum qb_status qb_hfq_pack_fp8(struct qb_stw *w, const char *prefix, const struct qb_linear *lin,
                               struct qb_err *err)
{
    char name[256];
    if (lin->fmt != QB_WFMT_FP8_E4M3)
        return qb_err_set(err, QB_ERR_UNSUPPORTED, "'%s' is not FP8 E4M3", prefix);
    int64_t shape[2] = {lin->rows, lin->cols}, s_sc[2] = {lin->rows, 1};
    const uint8_t *base = lin->data;
    snprintf(name, sizeof name, "%s.weight", prefix);
    enum qb_status st =
        qb_stw_add(w, name, QB_DTYPE_F8_E4M3, 2, shape, base + (size_t)lin->rows * 4, err);
    if (st)
        return st;
    snprintf(name, sizeof name, "%s.weight_scale", prefix);
    return qb_stw_add(w, name, QB_DTYPE_F32, 2, s_sc, base, err);
}

/* ModelOpt's weight_scale_2 for our global scale g: 1/g, nudged by an ulp or two
 * when needed so that the loader's 1/weight_scale_2 gives g back exactly. */
static float modelopt_scale_2(float g)
{
    if (!(g > 0.0f) || !isfinite(g))
        return 0.0f;
    float best = 1.0f / g, lo = best, hi = best;
    for (int i = 0; i < 4; i++) {
        if (1.0f / lo == g)
            return lo;
        if (1.0f / hi == g)
            return hi;
        lo = nextafterf(lo, 0.0f);
        hi = nextafterf(hi, INFINITY);
    }
    return best;
}

enum qb_status qb_hfq_pack_nvfp4(struct qb_stw *w, const char *prefix, const struct qb_linear *lin,
                                 int modelopt, float input_amax, struct qb_err *err)
{
    char name[256];
    if (lin->fmt != QB_WFMT_NVFP4)
        return qb_err_set(err, QB_ERR_UNSUPPORTED, "'%s' is not NVFP4", prefix);
    int64_t R = lin->rows, C = lin->cols, nb = C / QB_NVFP4_BLOCK;
    uint8_t *packed = qb_malloc_array((size_t)R * (size_t)(C / 2), 1);
    uint8_t *scales = qb_malloc_array((size_t)R * (size_t)nb, 1);
    enum qb_status st = QB_OK;
    if (!packed || !scales) {
        free(packed);
        free(scales);
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory packing '%s'", prefix);
    }
    struct qb_nvfp4_header h;
    memcpy(&h, lin->data, sizeof h);
    const struct qb_block_nvfp4 *blk =
        (const struct qb_block_nvfp4 *)((const uint8_t *)lin->data + sizeof h);
    for (int64_t i = 0; i < R * nb; i++) {
        scales[i] = blk[i].scale;
        memcpy(packed + i * (QB_NVFP4_BLOCK / 2), blk[i].qs, QB_NVFP4_BLOCK / 2);
    }
    int64_t s_w[2] = {R, C / 2}, s_s[2] = {R, nb}, one = 1;
    snprintf(name, sizeof name, modelopt ? "%s.weight" : "%s.weight_packed", prefix);
    st = qb_stw_add_owned(w, name, QB_DTYPE_U8, 2, s_w, packed, err);
    if (!st) {
        snprintf(name, sizeof name, "%s.weight_scale", prefix);
        st = qb_stw_add_owned(w, name, QB_DTYPE_F8_E4M3, 2, s_s, scales, err);
    } else {
        free(scales);
    }
    if (st)
        return st;
    if (!modelopt) {
        snprintf(name, sizeof name, "%s.weight_global_scale", prefix);
        return qb_stw_add(w, name, QB_DTYPE_F32, 1, &one, &h.global_scale, err);
    }
    float ws2 = modelopt_scale_2(h.global_scale);
    float in_scale = input_amax > 0.0f ? input_amax / (6.0f * 448.0f) : 1.0f;
    snprintf(name, sizeof name, "%s.weight_scale_2", prefix);
    st = qb_stw_add(w, name, QB_DTYPE_F32, 0, NULL, &ws2, err);
    if (st)
        return st;
    snprintf(name, sizeof name, "%s.input_scale", prefix);
    return qb_stw_add(w, name, QB_DTYPE_F32, 0, NULL, &in_scale, err);
}

/* The U8 tensor of a quant_state JSON blob. */
static enum qb_status add_json_blob(struct qb_stw *w, const char *name, const char *json,
                                    struct qb_err *err)
{
    int64_t len = (int64_t)strlen(json);
    return qb_stw_add(w, name, QB_DTYPE_U8, 1, &len, json, err);
}

enum qb_status qb_hfq_pack_nf4(struct qb_stw *w, const char *prefix, const struct qb_linear *lin,
                               const char *dtype_name, struct qb_err *err)
{
    char name[256], json[512];
    int dq = lin->fmt == QB_WFMT_NF4_DQ;
    if (lin->fmt != QB_WFMT_NF4 && !dq)
        return qb_err_set(err, QB_ERR_UNSUPPORTED, "'%s' is not NF4", prefix);
    int64_t n = lin->rows * lin->cols, nb = (n + QB_NF4_BLOCK - 1) / QB_NF4_BLOCK;
    int64_t nbytes = (n + 1) / 2;
    uint8_t *packed = qb_calloc_array((size_t)nb, QB_NF4_BLOCK / 2);
    void *absmax = qb_malloc_array((size_t)nb, dq ? 1 : 4);
    enum qb_status st = QB_OK;
    if (!packed || !absmax) {
        free(packed);
        free(absmax);
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory packing '%s'", prefix);
    }
    struct qb_nf4dq_header h = {0};
    const float *nested = NULL;
    if (dq) {
        memcpy(&h, lin->data, sizeof h);
        nested = (const float *)((const uint8_t *)lin->data + sizeof h);
        const struct qb_block_nf4dq *blk = (const void *)(nested + h.n_nested);
        for (int64_t b = 0; b < nb; b++) {
            ((uint8_t *)absmax)[b] = blk[b].absmax_code;
            memcpy(packed + b * 32, blk[b].qs, 32);
        }
    } else {
        const struct qb_block_nf4 *blk = lin->data;
        for (int64_t b = 0; b < nb; b++) {
            memcpy((float *)absmax + b, &blk[b].absmax, 4);
            memcpy(packed + b * 32, blk[b].qs, 32);
        }
    }
    int64_t s_w[2] = {nbytes, 1}, s_16 = 16, s_256 = 256, s_nn = h.n_nested;
    snprintf(name, sizeof name, "%s.weight", prefix);
    st = qb_stw_add_owned(w, name, QB_DTYPE_U8, 2, s_w, packed, err);
    if (st) {
        free(absmax);
        return st;
    }
    snprintf(name, sizeof name, "%s.weight.absmax", prefix);
    st = qb_stw_add_owned(w, name, dq ? QB_DTYPE_U8 : QB_DTYPE_F32, 1, &nb, absmax, err);
    if (st)
        return st;
    snprintf(name, sizeof name, "%s.weight.quant_map", prefix);
    st = qb_stw_add(w, name, QB_DTYPE_F32, 1, &s_16, qb_nf4_values, err);
    if (st)
        return st;
    if (dq) {
        snprintf(name, sizeof name, "%s.weight.nested_absmax", prefix);
        st = qb_stw_add(w, name, QB_DTYPE_F32, 1, &s_nn, nested, err);
        if (st)
            return st;
        snprintf(name, sizeof name, "%s.weight.nested_quant_map", prefix);
        st = qb_stw_add(w, name, QB_DTYPE_F32, 1, &s_256, qb_bnb_dynamic_map, err);
        if (st)
            return st;
        snprintf(json, sizeof json,
                 "{\"quant_type\": \"nf4\", \"blocksize\": %d, \"dtype\": "
                 "\"%s\", \"shape\": [%lld, %lld], \"nested_blocksize\": %d, \"nested_dtype\": "
                 "\"float32\", \"nested_offset\": %.9g}",
                 QB_NF4_BLOCK, dtype_name, (long long)lin->rows, (long long)lin->cols,
                 QB_NF4_DQ_NEST, (double)h.offset);
    } else {
        snprintf(json, sizeof json,
                 "{\"quant_type\": \"nf4\", \"blocksize\": %d, \"dtype\": "
                 "\"%s\", \"shape\": [%lld, %lld]}",
                 QB_NF4_BLOCK, dtype_name, (long long)lin->rows, (long long)lin->cols);
    }
    snprintf(name, sizeof name, "%s.weight.quant_state.bitsandbytes__nf4", prefix);
    return add_json_blob(w, name, json, err);
}
