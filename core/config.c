/*
 * config.c - parse config.json into struct qb_config (see config.h).
 *
 * Every field is validated before use: types, ranges and the relations the
 * engine relies on (heads divide evenly, head_dim even). Messages name the
 * file and the field.
 */
#include "config.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

#include "fileutil.h"

#define CONFIG_MAX_BYTES (16u << 20)

static const char *const moe_types[] = {
    "mixtral", "qwen2_moe", "qwen3_moe", "gpt_oss", "deepseek_v2", "deepseek_v3",
    "dbrx", "olmoe", "jamba", "granitemoe", "phimoe", "llama4",
};

const char *qb_config_supported_types(void)
{
    return "llama, mistral, qwen2, qwen3 (dense decoder-only)";
}

struct parse_ctx {
    const cJSON *root;
    const char *origin;
    struct qb_err *err;
};

/* Integer field: *out = value, or def when absent/null and def_ok. */
static enum qb_status get_int(struct parse_ctx *c, const cJSON *obj, const char *key, int def_ok,
                              int def, long min, long max, int *out)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!it || cJSON_IsNull(it)) {
        if (def_ok) {
            *out = def;
            return QB_OK;
        }
        return qb_err_set(c->err, QB_ERR_FORMAT, "%s: field '%s' is missing", c->origin, key);
    }
    if (!cJSON_IsNumber(it) || it->valuedouble != floor(it->valuedouble))
        return qb_err_set(c->err, QB_ERR_FORMAT, "%s: field '%s' must be an integer", c->origin,
                          key);
    if (it->valuedouble < (double)min || it->valuedouble > (double)max)
        return qb_err_set(c->err, QB_ERR_RANGE, "%s: field '%s' = %.0f is out of range [%ld, %ld]",
                          c->origin, key, it->valuedouble, min, max);
    *out = (int)it->valuedouble;
    return QB_OK;
}

static enum qb_status get_double(struct parse_ctx *c, const cJSON *obj, const char *key,
                                 int def_ok, double def, double min, double max, double *out)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!it || cJSON_IsNull(it)) {
        if (def_ok) {
            *out = def;
            return QB_OK;
        }
        return qb_err_set(c->err, QB_ERR_FORMAT, "%s: field '%s' is missing", c->origin, key);
    }
    if (!cJSON_IsNumber(it))
        return qb_err_set(c->err, QB_ERR_FORMAT, "%s: field '%s' must be a number", c->origin,
                          key);
    if (!(it->valuedouble >= min && it->valuedouble <= max))
        return qb_err_set(c->err, QB_ERR_RANGE, "%s: field '%s' = %g is out of range", c->origin,
                          key, it->valuedouble);
    *out = it->valuedouble;
    return QB_OK;
}

static enum qb_status get_bool(struct parse_ctx *c, const cJSON *obj, const char *key, int def,
                               int *out)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!it || cJSON_IsNull(it)) {
        *out = def;
        return QB_OK;
    }
    if (!cJSON_IsBool(it))
        return qb_err_set(c->err, QB_ERR_FORMAT, "%s: field '%s' must be true or false",
                          c->origin, key);
    *out = cJSON_IsTrue(it);
    return QB_OK;
}

/* bos/eos ids may be an int, a list of ints (first is used) or null. */
static enum qb_status get_token_id(struct parse_ctx *c, const char *key, int *out)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(c->root, key);
    *out = -1;
    if (!it || cJSON_IsNull(it))
        return QB_OK;
    if (cJSON_IsArray(it))
        it = cJSON_GetArrayItem(it, 0);
    if (!it)
        return QB_OK;
    if (!cJSON_IsNumber(it) || it->valuedouble < 0 || it->valuedouble > 1e9)
        return qb_err_set(c->err, QB_ERR_FORMAT, "%s: field '%s' must be a token id", c->origin,
                          key);
    *out = (int)it->valuedouble;
    return QB_OK;
}

static enum qb_status parse_arch(struct parse_ctx *c, struct qb_config *cfg)
{
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(c->root, "model_type");
    if (!cJSON_IsString(mt))
        return qb_err_set(c->err, QB_ERR_FORMAT, "%s: field 'model_type' is missing or not a string",
                          c->origin);
    snprintf(cfg->model_type, sizeof cfg->model_type, "%s", mt->valuestring);
    for (size_t i = 0; i < QB_ARRAY_LEN(moe_types); i++) {
        if (strcmp(mt->valuestring, moe_types[i]) == 0)
            return qb_err_set(c->err, QB_ERR_UNSUPPORTED,
                              "%s: MoE (%s) not supported yet; supported: %s", c->origin,
                              mt->valuestring, qb_config_supported_types());
    }
    const cJSON *experts = cJSON_GetObjectItemCaseSensitive(c->root, "num_local_experts");
    if (!experts)
        experts = cJSON_GetObjectItemCaseSensitive(c->root, "num_experts");
    if (cJSON_IsNumber(experts) && experts->valuedouble > 1)
        return qb_err_set(c->err, QB_ERR_UNSUPPORTED, "%s: MoE (%s, %d experts) not supported yet",
                          c->origin, mt->valuestring, (int)experts->valuedouble);
    if (strcmp(mt->valuestring, "llama") == 0 || strcmp(mt->valuestring, "mistral") == 0)
        cfg->arch = QB_ARCH_LLAMA;
    else if (strcmp(mt->valuestring, "qwen2") == 0)
        cfg->arch = QB_ARCH_QWEN2;
    else if (strcmp(mt->valuestring, "qwen3") == 0)
        cfg->arch = QB_ARCH_QWEN3;
    else
        return qb_err_set(c->err, QB_ERR_UNSUPPORTED, "%s: model_type '%s' is not supported; "
                          "supported: %s", c->origin, mt->valuestring, qb_config_supported_types());
    return QB_OK;
}

static enum qb_status parse_rope_type(struct parse_ctx *c, const cJSON *obj, struct qb_config *cfg)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(obj, "rope_type");
    if (!t)
        t = cJSON_GetObjectItemCaseSensitive(obj, "type");
    if (!t || cJSON_IsNull(t) || (cJSON_IsString(t) && strcmp(t->valuestring, "default") == 0)) {
        cfg->rope_type = QB_ROPE_DEFAULT;
        return QB_OK;
    }
    if (!cJSON_IsString(t))
        return qb_err_set(c->err, QB_ERR_FORMAT, "%s: rope 'rope_type' must be a string",
                          c->origin);
    if (strcmp(t->valuestring, "linear") == 0)
        cfg->rope_type = QB_ROPE_LINEAR;
    else if (strcmp(t->valuestring, "llama3") == 0)
        cfg->rope_type = QB_ROPE_LLAMA3;
    else
        return qb_err_set(c->err, QB_ERR_UNSUPPORTED,
                          "%s: rope type '%s' is not supported (default, linear, llama3)",
                          c->origin, t->valuestring);
    return QB_OK;
}

/* RoPE: v5 `rope_parameters` or v4 top-level `rope_theta` + `rope_scaling`. */
static enum qb_status parse_rope(struct parse_ctx *c, struct qb_config *cfg)
{
    enum qb_status st;
    const cJSON *params = cJSON_GetObjectItemCaseSensitive(c->root, "rope_parameters");
    const cJSON *scaling = cJSON_GetObjectItemCaseSensitive(c->root, "rope_scaling");
    const cJSON *obj = NULL;
    if (params && !cJSON_IsNull(params)) {
        if (!cJSON_IsObject(params))
            return qb_err_set(c->err, QB_ERR_FORMAT, "%s: 'rope_parameters' must be an object",
                              c->origin);
        obj = params;
        st = get_double(c, params, "rope_theta", 1, 10000.0, 1.0, 1e12, &cfg->rope_theta);
        if (st)
            return st;
    } else {
        st = get_double(c, c->root, "rope_theta", 1, 10000.0, 1.0, 1e12, &cfg->rope_theta);
        if (st)
            return st;
        if (scaling && !cJSON_IsNull(scaling)) {
            if (!cJSON_IsObject(scaling))
                return qb_err_set(c->err, QB_ERR_FORMAT, "%s: 'rope_scaling' must be an object",
                                  c->origin);
            obj = scaling;
        }
    }
    cfg->rope_type = QB_ROPE_DEFAULT;
    if (!obj)
        return QB_OK;
    st = parse_rope_type(c, obj, cfg);
    if (st || cfg->rope_type == QB_ROPE_DEFAULT)
        return st;
    st = get_double(c, obj, "factor", 0, 0, 1e-6, 1e6, &cfg->rope_factor);
    if (st || cfg->rope_type == QB_ROPE_LINEAR)
        return st;
    st = get_double(c, obj, "low_freq_factor", 0, 0, 1e-6, 1e6, &cfg->rope_low_freq_factor);
    if (!st)
        st = get_double(c, obj, "high_freq_factor", 0, 0, 1e-6, 1e6, &cfg->rope_high_freq_factor);
    if (!st)
        st = get_int(c, obj, "original_max_position_embeddings", 0, 0, 1, 1 << 30,
                     &cfg->rope_orig_ctx);
    if (!st && cfg->rope_high_freq_factor <= cfg->rope_low_freq_factor)
        st = qb_err_set(c->err, QB_ERR_RANGE,
                        "%s: llama3 rope needs high_freq_factor > low_freq_factor", c->origin);
    return st;
}

static enum qb_status parse_shapes(struct parse_ctx *c, struct qb_config *cfg)
{
    enum qb_status st;
    const cJSON *r = c->root;
    st = get_int(c, r, "num_hidden_layers", 0, 0, 1, 4096, &cfg->n_layers);
    if (!st)
        st = get_int(c, r, "hidden_size", 0, 0, 1, 1 << 20, &cfg->hidden);
    if (!st)
        st = get_int(c, r, "intermediate_size", 0, 0, 1, 1 << 22, &cfg->intermediate);
    if (!st)
        st = get_int(c, r, "num_attention_heads", 0, 0, 1, 4096, &cfg->n_heads);
    if (!st)
        st = get_int(c, r, "num_key_value_heads", 1, cfg->n_heads, 1, 4096, &cfg->n_kv_heads);
    if (!st)
        st = get_int(c, r, "vocab_size", 0, 0, 1, 1 << 24, &cfg->vocab);
    if (!st)
        st = get_int(c, r, "max_position_embeddings", 1, 2048, 1, 1 << 24, &cfg->max_ctx);
    if (st)
        return st;
    int def_head_dim = cfg->hidden / cfg->n_heads;
    st = get_int(c, r, "head_dim", 1, def_head_dim, 2, 4096, &cfg->head_dim);
    if (st)
        return st;
    if (cfg->n_heads % cfg->n_kv_heads != 0)
        return qb_err_set(c->err, QB_ERR_FORMAT,
                          "%s: num_attention_heads (%d) is not a multiple of num_key_value_heads (%d)",
                          c->origin, cfg->n_heads, cfg->n_kv_heads);
    if (cfg->head_dim % 2 != 0)
        return qb_err_set(c->err, QB_ERR_FORMAT, "%s: head_dim %d must be even for RoPE",
                          c->origin, cfg->head_dim);
    double eps = 1e-6;
    st = get_double(c, r, "rms_norm_eps", 1, 1e-6, 0.0, 1.0, &eps);
    cfg->rms_eps = (float)eps;
    return st;
}

static enum qb_status parse_flags(struct parse_ctx *c, struct qb_config *cfg)
{
    enum qb_status st;
    st = get_bool(c, c->root, "tie_word_embeddings", 0, &cfg->tie_embeddings);
    int attention_bias = 0;
    if (!st)
        st = get_bool(c, c->root, "attention_bias", 0, &attention_bias);
    if (!st)
        st = get_bool(c, c->root, "mlp_bias", 0, &cfg->mlp_bias);
    if (!st)
        st = get_token_id(c, "bos_token_id", &cfg->bos_id);
    if (!st)
        st = get_token_id(c, "eos_token_id", &cfg->eos_id);
    if (st)
        return st;
    cfg->attn_bias = attention_bias || cfg->arch == QB_ARCH_QWEN2;
    cfg->o_bias = attention_bias && cfg->arch != QB_ARCH_QWEN2;
    cfg->qk_norm = cfg->arch == QB_ARCH_QWEN3;
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(c->root, "torch_dtype");
    if (!cJSON_IsString(dt))
        dt = cJSON_GetObjectItemCaseSensitive(c->root, "dtype");
    if (cJSON_IsString(dt))
        snprintf(cfg->torch_dtype, sizeof cfg->torch_dtype, "%s", dt->valuestring);
    return QB_OK;
}

enum qb_status qb_config_parse(const char *json, size_t len, const char *origin,
                               struct qb_config *out, struct qb_err *err)
{
    enum qb_status st = QB_OK;
    memset(out, 0, sizeof *out);
    cJSON *root = cJSON_ParseWithLength(json, len);
    if (!root)
        return qb_err_set(err, QB_ERR_FORMAT, "%s: not valid JSON", origin);
    struct parse_ctx c = {root, origin, err};
    if (!cJSON_IsObject(root)) {
        st = qb_err_set(err, QB_ERR_FORMAT, "%s: top level must be a JSON object", origin);
        goto out;
    }
    st = parse_arch(&c, out);
    if (st)
        goto out;
    st = parse_shapes(&c, out);
    if (st)
        goto out;
    st = parse_rope(&c, out);
    if (st)
        goto out;
    st = parse_flags(&c, out);
out:
    cJSON_Delete(root);
    return st;
}

enum qb_status qb_config_load(const char *path, struct qb_config *out, struct qb_err *err)
{
    char *buf = NULL;
    size_t len = 0;
    enum qb_status st = qb_file_read_all(path, CONFIG_MAX_BYTES, &buf, &len, err);
    if (st)
        return st;
    st = qb_config_parse(buf, len, path, out, err);
    free(buf);
    return st;
}

void qb_config_rope_inv_freq(const struct qb_config *cfg, double *out)
{
    int half = cfg->head_dim / 2;
    for (int i = 0; i < half; i++) {
        /* transformers computes the exponent in fp32; keep that rounding */
        float expo = (float)(2 * i) / (float)cfg->head_dim;
        out[i] = 1.0 / pow(cfg->rope_theta, (double)expo);
    }
    if (cfg->rope_type == QB_ROPE_LINEAR) {
        for (int i = 0; i < half; i++)
            out[i] /= cfg->rope_factor;
    } else if (cfg->rope_type == QB_ROPE_LLAMA3) {
        double old_ctx = cfg->rope_orig_ctx;
        double low_wl = old_ctx / cfg->rope_low_freq_factor;
        double high_wl = old_ctx / cfg->rope_high_freq_factor;
        for (int i = 0; i < half; i++) {
            double wl = 2.0 * M_PI / out[i];
            if (wl < high_wl)
                continue;
            if (wl > low_wl) {
                out[i] /= cfg->rope_factor;
                continue;
            }
            double smooth = (old_ctx / wl - cfg->rope_low_freq_factor) /
                            (cfg->rope_high_freq_factor - cfg->rope_low_freq_factor);
            out[i] = (1.0 - smooth) * out[i] / cfg->rope_factor + smooth * out[i];
        }
    }
}
