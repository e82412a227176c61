/*
 * hfq_load.c - quantization_config / hf_quant_config.json parsing and the
 * per-linear dispatch of the Hugging Face quantized checkpoint loader
 * (hfq_load.h). The tensor unpackers are in hfq_unpack.c.
 */
#include "hfq_load.h"

#include <string.h>
#include <strings.h>

#include <cjson/cJSON.h>

#include "fileutil.h"
#include "hfq_load_impl.h"

void qb_hfq_free(struct qb_hfq *q)
{
    free(q);
}

const char *qb_hfq_describe(const struct qb_hfq *q)
{
    return q->desc;
}

static const cJSON *get(const cJSON *o, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(o, key);
}

/* Optional integer key: absent/null leaves *out; another type is an error. */
static enum qb_status opt_int(const cJSON *o, const char *key, const char *origin, int *out,
                              struct qb_err *err)
{
    const cJSON *v = get(o, key);
    if (!v || cJSON_IsNull(v))
        return QB_OK;
    if (!cJSON_IsNumber(v) || v->valuedouble != (double)(int)v->valuedouble)
        return qb_err_set(err, QB_ERR_FORMAT, "%s: quantization_config.%s is not an integer",
                          origin, key);
    *out = (int)v->valuedouble;
    return QB_OK;
}

static enum qb_status opt_bool(const cJSON *o, const char *key, const char *origin, int *out,
                               struct qb_err *err)
{
    const cJSON *v = get(o, key);
    if (!v || cJSON_IsNull(v))
        return QB_OK;
    if (!cJSON_IsBool(v))
        return qb_err_set(err, QB_ERR_FORMAT, "%s: quantization_config.%s is not true/false",
                          origin, key);
    *out = cJSON_IsTrue(v);
    return QB_OK;
}

static const char *opt_str(const cJSON *o, const char *key)
{
    const cJSON *v = get(o, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static enum qb_status parse_gptq(const cJSON *q, const char *origin, struct qb_hfq *h,
                                 struct qb_err *err)
{
    enum qb_status st;
    h->bits = 4;
    h->group_size = 128;
    if ((st = opt_int(q, "bits", origin, &h->bits, err)) ||
        (st = opt_int(q, "group_size", origin, &h->group_size, err)) ||
        (st = opt_bool(q, "desc_act", origin, &h->desc_act, err)) ||
        (st = opt_bool(q, "sym", origin, &h->sym, err)))
        return st;
    if (h->bits != 2 && h->bits != 3 && h->bits != 4 && h->bits != 8)
        return qb_err_set(err, QB_ERR_UNSUPPORTED,
                          "%s: GPTQ bits %d is not supported (2, 3, 4 "
                          "or 8)",
                          origin, h->bits);
    if (h->group_size != -1 && (h->group_size < 32 || h->group_size % 32))
        return qb_err_set(err, QB_ERR_UNSUPPORTED,
                          "%s: GPTQ group_size %d is not supported "
                          "(-1 or a multiple of 32)",
                          origin, h->group_size);
    const char *fmt = opt_str(q, "checkpoint_format");
    if (!fmt)
        fmt = opt_str(q, "format");
    if (fmt && strcmp(fmt, "gptq_v2") == 0)
        h->v2 = 1;
    else if (fmt && strcmp(fmt, "gptq") != 0)
        return qb_err_set(err, QB_ERR_UNSUPPORTED,
                          "%s: GPTQ checkpoint_format '%s' is not "
                          "supported (gptq or gptq_v2)",
                          origin, fmt);
    snprintf(h->desc, sizeof h->desc, "GPTQ %d-bit g%d%s%s", h->bits, h->group_size,
             h->desc_act ? " act-order" : "", h->v2 ? " v2" : "");
    return QB_OK;
}

static enum qb_status parse_awq(const cJSON *q, const char *origin, struct qb_hfq *h,
                                struct qb_err *err)
{
    enum qb_status st;
    int zero_point = 1;
    h->bits = 4;
    h->group_size = 128;
    if ((st = opt_int(q, "bits", origin, &h->bits, err)) ||
        (st = opt_int(q, "w_bit", origin, &h->bits, err)) ||
        (st = opt_int(q, "group_size", origin, &h->group_size, err)) ||
        (st = opt_int(q, "q_group_size", origin, &h->group_size, err)) ||
        (st = opt_bool(q, "zero_point", origin, &zero_point, err)))
        return st;
    const char *ver = opt_str(q, "version");
    if (!ver)
        ver = opt_str(q, "format");
    if (h->bits != 4 || !zero_point || (ver && strcasecmp(ver, "gemm") != 0))
        return qb_err_set(err, QB_ERR_UNSUPPORTED,
                          "%s: AWQ %d-bit version '%s'%s is not "
                          "supported (4-bit GEMM with zero_point)",
                          origin, h->bits, ver ? ver : "gemm",
                          zero_point ? "" : " without zero_point");
    if (h->group_size < 32 || h->group_size % 32)
        return qb_err_set(err, QB_ERR_UNSUPPORTED,
                          "%s: AWQ group_size %d is not supported (a "
                          "multiple of 32)",
                          origin, h->group_size);
    snprintf(h->desc, sizeof h->desc, "AWQ 4-bit g%d GEMM", h->group_size);
    return QB_OK;
}

/* compressed-tensors: the weights args of the (single) config group. */
static enum qb_status parse_ct(const cJSON *q, const char *origin, struct qb_hfq *h,
                               struct qb_err *err)
{
    const cJSON *groups = get(q, "config_groups"), *g, *wa = NULL;
    cJSON_ArrayForEach(g, groups)
    {
        if (cJSON_IsObject(get(g, "weights"))) {
            wa = get(g, "weights");
            const cJSON *ia = get(g, "input_activations");
            h->act = cJSON_IsObject(ia);
            break;
        }
    }
    if (!wa)
        return qb_err_set(err, QB_ERR_FORMAT,
                          "%s: compressed-tensors quantization_config has no "
                          "config_groups.*.weights",
                          origin);
    int bits = 0, group = 0;
    enum qb_status st;
    if ((st = opt_int(wa, "num_bits", origin, &bits, err)) ||
        (st = opt_int(wa, "group_size", origin, &group, err)))
        return st;
    const char *type = opt_str(wa, "type"), *fmt = opt_str(q, "format");
    if (!type || strcmp(type, "float") != 0 || (bits != 8 && bits != 4))
        return qb_err_set(err, QB_ERR_UNSUPPORTED,
                          "%s: compressed-tensors weights of type '%s' "
                          "with %d bits are not supported (float 8-bit or NVFP4)",
                          origin, type ? type : "?", bits);
    if (bits == 4 && group != 16)
        return qb_err_set(err, QB_ERR_FORMAT,
                          "%s: compressed-tensors NVFP4 weights have "
                          "group_size %d; NVFP4 needs 16",
                          origin, group);
    if (fmt && strcmp(fmt, bits == 4 ? "nvfp4-pack-quantized" : "float-quantized") != 0 &&
        strcmp(fmt, "naive-quantized") != 0)
        return qb_err_set(err, QB_ERR_UNSUPPORTED,
                          "%s: compressed-tensors format '%s' is not "
                          "supported for %d-bit float weights",
                          origin, fmt, bits);
    h->wkind = bits == 4 ? QB_HFQ_W_NVFP4 : QB_HFQ_W_FP8;
    h->group_size = bits == 4 ? 16 : 0;
    snprintf(h->desc, sizeof h->desc, "compressed-tensors %s", bits == 4 ? "NVFP4" : "FP8");
    return QB_OK;
}

static enum qb_status parse_modelopt_algo(const char *algo, int group, const char *origin,
                                          struct qb_hfq *h, struct qb_err *err)
{
    if (!algo)
        return qb_err_set(err, QB_ERR_FORMAT, "%s: ModelOpt config has no quant_algo", origin);
    if (strcmp(algo, "NVFP4") == 0) {
        if (group && group != 16)
            return qb_err_set(err, QB_ERR_FORMAT,
                              "%s: ModelOpt NVFP4 group_size %d; NVFP4 "
                              "needs 16",
                              origin, group);
        h->wkind = QB_HFQ_W_NVFP4;
        h->group_size = 16;
    } else if (strcmp(algo, "FP8") == 0) {
        h->wkind = QB_HFQ_W_FP8;
    } else {
        return qb_err_set(err, QB_ERR_UNSUPPORTED,
                          "%s: ModelOpt quant_algo '%s' is not "
                          "supported (NVFP4, FP8)",
                          origin, algo);
    }
    h->act = 1;
    snprintf(h->desc, sizeof h->desc, "ModelOpt %s", algo);
    return QB_OK;
}

static enum qb_status parse_bnb(const cJSON *q, const char *origin, struct qb_hfq *h,
                                struct qb_err *err)
{
    int in4 = 0, in8 = 0;
    enum qb_status st;
    if ((st = opt_bool(q, "load_in_4bit", origin, &in4, err)) ||
        (st = opt_bool(q, "load_in_8bit", origin, &in8, err)) ||
        (st = opt_bool(q, "bnb_4bit_use_double_quant", origin, &h->dq, err)))
        return st;
    const char *type = opt_str(q, "bnb_4bit_quant_type");
    if (!in4 || in8)
        return qb_err_set(err, QB_ERR_UNSUPPORTED,
                          "%s: bitsandbytes %s checkpoints are not "
                          "supported (4-bit NF4 only)",
                          origin, in8 ? "LLM.int8" : "non-4-bit");
    if (type && strcmp(type, "nf4") != 0)
        return qb_err_set(err, QB_ERR_UNSUPPORTED,
                          "%s: bitsandbytes quant type '%s' is not "
                          "supported (nf4)",
                          origin, type);
    snprintf(h->desc, sizeof h->desc, "bitsandbytes NF4%s", h->dq ? " double-quant" : "");
    return QB_OK;
}

static enum qb_status parse_qc(const cJSON *q, const char *origin, struct qb_hfq *h,
                               struct qb_err *err)
{
    const char *m = opt_str(q, "quant_method");
    if (!m)
        return qb_err_set(err, QB_ERR_FORMAT, "%s: quantization_config has no quant_method",
                          origin);
    if (strcmp(m, "gptq") == 0) {
        h->method = QB_HFQ_GPTQ;
        return parse_gptq(q, origin, h, err);
    }
    if (strcmp(m, "awq") == 0) {
        h->method = QB_HFQ_AWQ;
        return parse_awq(q, origin, h, err);
    }
    if (strcmp(m, "compressed-tensors") == 0) {
        h->method = QB_HFQ_CT;
        return parse_ct(q, origin, h, err);
    }
    if (strcmp(m, "modelopt") == 0) {
        int group = 0;
        enum qb_status st = opt_int(q, "group_size", origin, &group, err);
        h->method = QB_HFQ_MODELOPT;
        return st ? st : parse_modelopt_algo(opt_str(q, "quant_algo"), group, origin, h, err);
    }
    if (strcmp(m, "bitsandbytes") == 0) {
        h->method = QB_HFQ_BNB;
        return parse_bnb(q, origin, h, err);
    }
    return qb_err_set(err, QB_ERR_UNSUPPORTED,
                      "%s: quant_method '%s' is not supported (gptq, "
                      "awq, compressed-tensors, modelopt, bitsandbytes)",
                      origin, m);
}

/* hf_quant_config.json: {"quantization": {"quant_algo": ..., "group_size": ...}}. */
static enum qb_status parse_hf_quant(const cJSON *root, const char *origin, struct qb_hfq *h,
                                     struct qb_err *err)
{
    const cJSON *q = get(root, "quantization");
    int group = 0;
    if (!cJSON_IsObject(q))
        return qb_err_set(err, QB_ERR_FORMAT,
                          "%s: hf_quant_config.json has no 'quantization' "
                          "object",
                          origin);
    enum qb_status st = opt_int(q, "group_size", origin, &group, err);
    h->method = QB_HFQ_MODELOPT;
    return st ? st : parse_modelopt_algo(opt_str(q, "quant_algo"), group, origin, h, err);
}

enum qb_status qb_hfq_config_parse(const char *cfg, size_t len, const char *hq, size_t hq_len,
                                   const char *origin, struct qb_hfq **out, struct qb_err *err)
{
    enum qb_status st = QB_OK;
    cJSON *root = cJSON_ParseWithLength(cfg, len), *hroot = NULL;
    struct qb_hfq *h = NULL;
    *out = NULL;
    if (!cJSON_IsObject(root)) {
        st = qb_err_set(err, QB_ERR_FORMAT, "%s: config.json is not a JSON object", origin);
        goto out;
    }
    const cJSON *q = get(root, "quantization_config");
    if (q && !cJSON_IsNull(q) && !cJSON_IsObject(q)) {
        st = qb_err_set(err, QB_ERR_FORMAT,
                        "%s: config.json quantization_config is not an "
                        "object",
                        origin);
        goto out;
    }
    if (!cJSON_IsObject(q) && !hq)
        goto out;
    h = calloc(1, sizeof *h);
    if (!h) {
        st = qb_err_set(err, QB_ERR_NOMEM, "out of memory");
        goto out;
    }
    if (cJSON_IsObject(q)) {
        st = parse_qc(q, origin, h, err);
    } else {
        hroot = cJSON_ParseWithLength(hq, hq_len);
        st = cJSON_IsObject(hroot) ? parse_hf_quant(hroot, origin, h, err)
                                   : qb_err_set(err, QB_ERR_FORMAT,
                                                "%s: hf_quant_config.json "
                                                "is not a JSON object",
                                                origin);
    }
    if (!st) {
        *out = h;
        h = NULL;
    }
out:
    free(h);
    cJSON_Delete(root);
    cJSON_Delete(hroot);
    return st;
}

enum qb_status qb_hfq_detect(const char *dir, struct qb_hfq **out, struct qb_err *err)
{
    char *cfg_path = qb_path_join(dir, "config.json"),
         *hq_path = qb_path_join(dir, "hf_quant_config.json");
    char *cfg = NULL, *hq = NULL;
    size_t len = 0, hq_len = 0;
    enum qb_status st = QB_OK;
    *out = NULL;
    if (!cfg_path || !hq_path) {
        st = qb_err_set(err, QB_ERR_NOMEM, "out of memory");
        goto out;
    }
    st = qb_file_read_all(cfg_path, 16u << 20, &cfg, &len, err);
    if (!st && qb_path_exists(hq_path))
        st = qb_file_read_all(hq_path, 16u << 20, &hq, &hq_len, err);
    if (!st)
        st = qb_hfq_config_parse(cfg, len, hq, hq_len, dir, out, err);
out:
    free(cfg);
    free(hq);
    free(cfg_path);
    free(hq_path);
    return st;
}

void qb_hfq_scheme(const struct qb_hfq *q, struct qb_scheme *out)
{
    char name[32];
    int group = 0;
    switch (q->method) {
    case QB_HFQ_GPTQ:
        snprintf(name, sizeof name, "gptq-int%d", q->bits);
        group = qb_hfq_record_group(q->group_size, 0);
        break;
    case QB_HFQ_AWQ:
        snprintf(name, sizeof name, "awq-int4");
        group = qb_hfq_record_group(q->group_size, 0);
        break;
    case QB_HFQ_CT:
    case QB_HFQ_MODELOPT:
        if (q->wkind == QB_HFQ_W_NVFP4)
            snprintf(name, sizeof name, q->act ? "nvfp4-w4a4" : "nvfp4");
        else
            snprintf(name, sizeof name, q->act ? "fp8-w8a8" : "fp8");
        break;
    case QB_HFQ_BNB:
        snprintf(name, sizeof name, q->dq ? "nf4-dq" : "nf4");
        break;
    }
    qb_scheme_parse(name, group, out, NULL);
}

/* A float "P.weight" marks a module the producer left unquantized. */
static const struct qb_st_tensor *plain_weight(const struct qb_ckpt *ck, const char *prefix)
{
    char name[256];
    snprintf(name, sizeof name, "%s.weight", prefix);
    const struct qb_st_tensor *t = qb_ckpt_find(ck, name);
    if (t && (t->dtype == QB_DTYPE_F32 || t->dtype == QB_DTYPE_F16 || t->dtype == QB_DTYPE_BF16))
        return t;
    return NULL;
}

enum qb_status qb_hfq_load_linear(const struct qb_hfq *q, const struct qb_ckpt *ck,
                                  const char *prefix, int64_t rows, int64_t cols,
                                  struct qb_linear *lin, struct qb_err *err)
{
    memset(lin, 0, sizeof *lin);
    const struct qb_st_tensor *t = plain_weight(ck, prefix);
    if (t) {
        if (t->n_dims != 2 || t->shape[0] != rows || t->shape[1] != cols)
            return qb_err_set(err, QB_ERR_FORMAT, "%s: tensor '%s.weight' is not [%lld, %lld]",
                              ck->dir, prefix, (long long)rows, (long long)cols);
        lin->fmt = t->dtype == QB_DTYPE_BF16  ? QB_WFMT_BF16
                   : t->dtype == QB_DTYPE_F16 ? QB_WFMT_F16
                                              : QB_WFMT_F32;
        lin->rows = rows;
        lin->cols = cols;
        lin->data = t->data;
        lin->data_bytes = qb_st_tensor_bytes(t);
        return QB_OK;
    }
    switch (q->method) {
    case QB_HFQ_GPTQ:
        return qb_hfq_unpack_gptq(q, ck, prefix, rows, cols, lin, err);
    case QB_HFQ_AWQ:
        return qb_hfq_unpack_awq(q, ck, prefix, rows, cols, lin, err);
    case QB_HFQ_CT:
    case QB_HFQ_MODELOPT:
        if (q->wkind == QB_HFQ_W_NVFP4)
            return qb_hfq_unpack_nvfp4(q, ck, prefix, rows, cols, lin, err);
        return qb_hfq_unpack_fp8(q, ck, prefix, rows, cols, lin, err);
    case QB_HFQ_BNB:
        return qb_hfq_unpack_nf4(q, ck, prefix, rows, cols, lin, err);
    }
    return qb_err_set(err, QB_ERR_INTERNAL, "unknown quantization method");
}
