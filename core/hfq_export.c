/*
 * hfq_export.c - the Hugging Face quantized checkpoint exporter (hfq_export.h):
 * picks the layout from the scheme, runs the per-linear packers (hfq_pack.c),
 * copies the unquantized tensors, writes config.json with quantization_config
 * (and quantize_config.json / hf_quant_config.json where the producer writes
 * them) and copies the tokenizer files.
 */
#include "hfq_export.h"

#include <errno.h>
#include <math.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "engine.h"
#include "eval.h"
#include "fileutil.h"
#include "hfq_impl.h"

enum layout { L_GPTQ, L_AWQ, L_CT_NVFP4, L_MODELOPT_NVFP4, L_CT_FP8, L_BNB_NF4 };

static const struct {
    const char *scheme;
    enum layout layout;
    const char *name;
} layouts[] = {
    {"gptq-int4", L_GPTQ, "gptq"},
    {"gptq-int3", L_GPTQ, "gptq"},
    {"gptq-int2", L_GPTQ, "gptq"},
    {"gptq-int8", L_GPTQ, "gptq"},
    {"awq-int4", L_AWQ, "awq-gemm"},
    {"nvfp4", L_CT_NVFP4, "compressed-tensors-nvfp4"},
    {"nvfp4-w4a4", L_MODELOPT_NVFP4, "modelopt-nvfp4"},
    {"fp8", L_CT_FP8, "compressed-tensors-fp8"},
    {"nf4", L_BNB_NF4, "bitsandbytes-nf4"},
    {"nf4-dq", L_BNB_NF4, "bitsandbytes-nf4"},
};

static int layout_index(const char *scheme)
{
    for (size_t i = 0; scheme && i < QB_ARRAY_LEN(layouts); i++)
        if (strcmp(layouts[i].scheme, scheme) == 0)
            return (int)i;
    return -1;
}

const char *qb_hfq_layout_for_scheme(const char *scheme_name)
{
    int i = layout_index(scheme_name);
    return i < 0 ? NULL : layouts[i].name;
}

static const char *torch_dtype_name(enum qb_dtype dt)
{
    return dt == QB_DTYPE_F16 ? "float16" : dt == QB_DTYPE_F32 ? "float32" : "bfloat16";
}

static void linear_prefix(int layer, int slot, char *buf, size_t n)
{
    int mlp = slot == QB_LIN_GATE || slot == QB_LIN_UP || slot == QB_LIN_DOWN;
    snprintf(buf, n, "model.layers.%d.%s.%s", layer, mlp ? "mlp" : "self_attn",
             qb_linear_slot_name((enum qb_linear_slot)slot));
}

/* ---- calibration amax (ModelOpt input_scale) ---- */

struct amax_ctx {
    float *amax; /* [n_layers][QB_LIN_COUNT] */
    int64_t cols_of[QB_LIN_COUNT];
};

static void amax_hook(void *ctx, int layer, enum qb_linear_slot slot, const float *x, int64_t n)
{
    struct amax_ctx *a = ctx;
    float *m = &a->amax[layer * QB_LIN_COUNT + slot];
    for (int64_t i = 0; i < n * a->cols_of[slot]; i++)
        *m = fmaxf(*m, fabsf(x[i]));
}

static enum qb_status calibrate_amax(const struct qb_model *m, const struct qb_hfq_export_opts *o,
                                     float *amax, struct qb_err *err)
{
    int32_t *ids = NULL;
    size_t n_ids = 0;
    float *x = NULL;
    struct qb_engine *e = NULL;
    int ctx = o->calib_ctx > 0 ? o->calib_ctx : 256,
        chunks = o->calib_chunks > 0 ? o->calib_chunks : 4;
    struct amax_ctx a = {.amax = amax};
    if (!o->calib_text || !o->calib_len)
        return qb_err_set(err, QB_ERR_USAGE,
                          "nvfp4-w4a4 export needs calibration text for the "
                          "input scales (--calib FILE)");
    if (!m->tok)
        return qb_err_set(err, QB_ERR_USAGE, "nvfp4-w4a4 export needs the model's tokenizer");
    for (int s = 0; s < QB_LIN_COUNT; s++)
        a.cols_of[s] = m->layers[0].lin[s].cols;
    enum qb_status st = qb_eval_tokenize(m, o->calib_text, o->calib_len, &ids, &n_ids, err);
    if (st)
        goto out;
    struct qb_engine_opts eo = {.max_ctx = ctx, .n_threads = o->n_threads};
    st = qb_engine_create_cpu(m, &eo, &e, err);
    if (st)
        goto out;
    x = qb_malloc_array((size_t)ctx * (size_t)m->cfg.hidden, sizeof *x);
    if (!x) {
        st = qb_err_set(err, QB_ERR_NOMEM, "out of memory calibrating");
        goto out;
    }
    for (int c = 0; c < chunks && (size_t)(c + 1) * (size_t)ctx <= n_ids; c++) {
        st = qb_cpu_embed(e, ids + (size_t)c * (size_t)ctx, ctx, x, err);
        for (int l = 0; !st && l < m->cfg.n_layers; l++)
            st = qb_cpu_layer_forward(e, l, x, ctx, amax_hook, &a, err);
        if (st)
            goto out;
    }
    if (n_ids < (size_t)ctx)
        st = qb_err_set(err, QB_ERR_USAGE, "calibration text has %zu tokens; need at least %d",
                        n_ids, ctx);
out:
    free(x);
    qb_engine_free(e);
    free(ids);
    return st;
}

/* ---- tensors ---- */

static int is_decoder_linear_weight(const char *name)
{
    static const char *const slots[] = {".q_proj.weight",   ".k_proj.weight",    ".v_proj.weight",
                                        ".o_proj.weight",   ".gate_proj.weight", ".up_proj.weight",
                                        ".down_proj.weight"};
    if (strncmp(name, "model.layers.", 13) != 0)
        return 0;
    size_t n = strlen(name);
    for (size_t i = 0; i < QB_ARRAY_LEN(slots); i++) {
        size_t k = strlen(slots[i]);
        if (n > k && strcmp(name + n - k, slots[i]) == 0)
            return 1;
    }
    return 0;
}

/* Embeddings, lm_head, norms, biases: raw copies in their checkpoint dtype. */
static enum qb_status copy_plain_tensors(const struct qb_model *m, struct qb_stw *w,
                                         struct qb_err *err)
{
    for (size_t i = 0; i < m->ckpt->n_tensors; i++) {
        const struct qb_st_tensor *t = &m->ckpt->tensors[i];
        size_t n = strlen(t->name);
        int plain =
            t->dtype == QB_DTYPE_F32 || t->dtype == QB_DTYPE_F16 || t->dtype == QB_DTYPE_BF16;
        int named = (n > 7 && strcmp(t->name + n - 7, ".weight") == 0) ||
                    (n > 5 && strcmp(t->name + n - 5, ".bias") == 0);
        if (!plain || !named || is_decoder_linear_weight(t->name))
            continue;
        enum qb_status st = qb_stw_add(w, t->name, t->dtype, t->n_dims, t->shape, t->data, err);
        if (st)
            return st;
    }
    return QB_OK;
}

static enum qb_status pack_linear(const struct qb_model *m, struct qb_stw *w, enum layout lay,
                                  const struct qb_hfq_export_opts *opts, const char *prefix,
                                  const struct qb_linear *lin, float amax,
                                  struct qb_hfq_export_result *res, struct qb_err *err)
{
    switch (lay) {
    case L_GPTQ:
        return qb_hfq_pack_gptq(w, prefix, lin, opts->gptq_v2, &res->gptq_zero0_groups, err);
    case L_AWQ:
        return qb_hfq_pack_awq(w, prefix, lin, err);
    case L_CT_NVFP4:
        return qb_hfq_pack_nvfp4(w, prefix, lin, 0, 0.0f, err);
    case L_MODELOPT_NVFP4:
        return qb_hfq_pack_nvfp4(w, prefix, lin, 1, amax, err);
    case L_CT_FP8:
        return qb_hfq_pack_fp8(w, prefix, lin, err);
    case L_BNB_NF4:
        return qb_hfq_pack_nf4(w, prefix, lin, torch_dtype_name(m->base_dtype), err);
    }
    return qb_err_set(err, QB_ERR_INTERNAL, "unknown layout");
}

/* ---- config files ---- */

static cJSON *gptq_config(const struct qb_model *m, int v2)
{
    const struct qb_linear *l0 = &m->layers[0].lin[0];
    int bits = l0->fmt == QB_WFMT_UINT_G ? l0->qp.bits : 4;
    int sym = l0->fmt == QB_WFMT_INT4_SYM, desc_act = 0;
    if (!sym) { /* symmetric GPTQ stores zero 2^(b-1) everywhere */
        sym = 1;
        for (int i = 0; i < m->cfg.n_layers && sym; i++) {
            for (int s = 0; s < QB_LIN_COUNT && sym; s++) {
                struct qb_hfq_groups g;
                if (qb_hfq_groups_from_linear(&m->layers[i].lin[s], "", &g, NULL)) {
                    sym = 0;
                    break;
                }
                for (int64_t k = 0; k < g.ngroups * g.rows; k++)
                    sym &= g.zeros[k] == (1 << (bits - 1));
                qb_hfq_groups_free(&g);
            }
        }
    }
    for (int i = 0; i < m->cfg.n_layers; i++)
        for (int s = 0; s < QB_LIN_COUNT; s++)
            desc_act |= m->layers[i].lin[s].qp.g_idx != NULL;
    cJSON *q = cJSON_CreateObject();
    cJSON_AddNumberToObject(q, "bits", bits);
    cJSON_AddNumberToObject(q, "group_size", l0->qp.group ? l0->qp.group : 128);
    cJSON_AddNumberToObject(q, "damp_percent", 0.01);
    cJSON_AddBoolToObject(q, "desc_act", desc_act);
    cJSON_AddBoolToObject(q, "static_groups", 0);
    cJSON_AddBoolToObject(q, "sym", sym);
    cJSON_AddBoolToObject(q, "true_sequential", 1);
    cJSON_AddStringToObject(q, "model_name_or_path", "");
    cJSON_AddStringToObject(q, "model_file_base_name", "model");
    cJSON_AddStringToObject(q, "quant_method", "gptq");
    cJSON_AddStringToObject(q, "checkpoint_format", v2 ? "gptq_v2" : "gptq");
    return q;
}

static cJSON *awq_config(const struct qb_model *m)
{
    cJSON *q = cJSON_CreateObject();
    cJSON_AddStringToObject(q, "quant_method", "awq");
    cJSON_AddBoolToObject(q, "zero_point", 1);
    cJSON_AddNumberToObject(q, "group_size", m->layers[0].lin[0].qp.group);
    cJSON_AddNumberToObject(q, "bits", 4);
    cJSON_AddStringToObject(q, "version", "gemm");
    cJSON_AddNullToObject(q, "modules_to_not_convert");
    return q;
}

/* compressed-tensors / modelopt quantization args object. */
static cJSON *ct_args(int num_bits, const char *strategy, int group, int dynamic,
                      const char *scale_dtype)
{
    cJSON *a = cJSON_CreateObject();
    cJSON_AddNumberToObject(a, "num_bits", num_bits);
    cJSON_AddStringToObject(a, "type", "float");
    cJSON_AddBoolToObject(a, "symmetric", 1);
    cJSON_AddStringToObject(a, "strategy", strategy);
    if (group)
        cJSON_AddNumberToObject(a, "group_size", group);
    else
        cJSON_AddNullToObject(a, "group_size");
    cJSON_AddBoolToObject(a, "dynamic", dynamic);
    cJSON_AddNullToObject(a, "actorder");
    cJSON_AddStringToObject(a, "observer", "minmax");
    if (scale_dtype)
        cJSON_AddStringToObject(a, "scale_dtype", scale_dtype);
    return a;
}

static cJSON *ct_config(enum layout lay)
{
    cJSON *q = cJSON_CreateObject(), *groups = cJSON_AddObjectToObject(q, "config_groups");
    cJSON *g0 = cJSON_AddObjectToObject(groups, "group_0"), *targets;
    targets = cJSON_AddArrayToObject(g0, "targets");
    cJSON_AddItemToArray(targets, cJSON_CreateString("Linear"));
    if (lay == L_CT_NVFP4)
        cJSON_AddItemToObject(g0, "weights", ct_args(4, "tensor_group", 16, 0, "float8_e4m3fn"));
    else
        cJSON_AddItemToObject(g0, "weights", ct_args(8, "channel", 0, 0, NULL));
    cJSON_AddNullToObject(g0, "input_activations");
    cJSON_AddNullToObject(g0, "output_activations");
    cJSON_AddStringToObject(g0, "format",
                            lay == L_CT_NVFP4 ? "nvfp4-pack-quantized" : "float-quantized");
    cJSON_AddStringToObject(q, "format",
                            lay == L_CT_NVFP4 ? "nvfp4-pack-quantized" : "float-quantized");
    cJSON_AddNumberToObject(q, "global_compression_ratio", 1.0);
    cJSON *ign = cJSON_AddArrayToObject(q, "ignore");
    cJSON_AddItemToArray(ign, cJSON_CreateString("lm_head"));
    cJSON_AddNullToObject(q, "kv_cache_scheme");
    cJSON_AddStringToObject(q, "quant_method", "compressed-tensors");
    cJSON_AddStringToObject(q, "quantization_status", "compressed");
    return q;
}

static cJSON *modelopt_config(void)
{
    cJSON *q = cJSON_CreateObject(), *groups = cJSON_AddObjectToObject(q, "config_groups");
    cJSON *g0 = cJSON_AddObjectToObject(groups, "group_0");
    cJSON_AddItemToObject(g0, "input_activations", ct_args(4, "tensor_group", 16, 0, NULL));
    cJSON_AddItemToObject(g0, "weights", ct_args(4, "tensor_group", 16, 0, NULL));
    cJSON_AddItemToArray(cJSON_AddArrayToObject(g0, "targets"), cJSON_CreateString("Linear"));
    cJSON_AddItemToArray(cJSON_AddArrayToObject(q, "ignore"), cJSON_CreateString("lm_head"));
    cJSON_AddStringToObject(q, "quant_algo", "NVFP4");
    cJSON *prod = cJSON_AddObjectToObject(q, "producer");
    cJSON_AddStringToObject(prod, "name", "modelopt");
    cJSON_AddStringToObject(prod, "version", "quantbench");
    cJSON_AddStringToObject(q, "quant_method", "modelopt");
    return q;
}

static cJSON *hf_quant_config(void)
{
    cJSON *root = cJSON_CreateObject(), *prod = cJSON_AddObjectToObject(root, "producer");
    cJSON_AddStringToObject(prod, "name", "modelopt");
    cJSON_AddStringToObject(prod, "version", "quantbench");
    cJSON *q = cJSON_AddObjectToObject(root, "quantization");
    cJSON_AddStringToObject(q, "quant_algo", "NVFP4");
    cJSON_AddNullToObject(q, "kv_cache_quant_algo");
    cJSON_AddNumberToObject(q, "group_size", 16);
    cJSON_AddItemToArray(cJSON_AddArrayToObject(q, "exclude_modules"),
                         cJSON_CreateString("lm_head"));
    return root;
}

static cJSON *bnb_config(const struct qb_model *m)
{
    cJSON *q = cJSON_CreateObject();
    int dq = m->layers[0].lin[0].fmt == QB_WFMT_NF4_DQ;
    cJSON_AddStringToObject(q, "quant_method", "bitsandbytes");
    cJSON_AddBoolToObject(q, "load_in_4bit", 1);
    cJSON_AddBoolToObject(q, "load_in_8bit", 0);
    cJSON_AddStringToObject(q, "bnb_4bit_quant_type", "nf4");
    cJSON_AddBoolToObject(q, "bnb_4bit_use_double_quant", dq);
    cJSON_AddStringToObject(q, "bnb_4bit_compute_dtype", torch_dtype_name(m->base_dtype));
    cJSON_AddStringToObject(q, "bnb_4bit_quant_storage", "uint8");
    cJSON_AddNumberToObject(q, "llm_int8_threshold", 6.0);
    cJSON_AddNullToObject(q, "llm_int8_skip_modules");
    cJSON_AddBoolToObject(q, "llm_int8_enable_fp32_cpu_offload", 0);
    cJSON_AddBoolToObject(q, "llm_int8_has_fp16_weight", 0);
    return q;
}

static enum qb_status write_json(const char *dir, const char *name, const cJSON *j,
                                 struct qb_err *err)
{
    char *path = qb_path_join(dir, name), *text = cJSON_Print(j);
    enum qb_status st;
    if (!path || !text)
        st = qb_err_set(err, QB_ERR_NOMEM, "out of memory writing %s", name);
    else
        st = qb_file_write_atomic(path, text, strlen(text), err);
    free(path);
    cJSON_free(text);
    return st;
}

static enum qb_status write_configs(const struct qb_model *m, enum layout lay, int v2,
                                    const char *out_dir, struct qb_err *err)
{
    char *src = qb_path_join(m->dir, "config.json"), *text = NULL;
    cJSON *cfg = NULL, *q = NULL;
    size_t len;
    enum qb_status st = src ? qb_file_read_all(src, 16u << 20, &text, &len, err)
                            : qb_err_set(err, QB_ERR_NOMEM, "out of memory");
    if (st)
        goto out;
    cfg = cJSON_ParseWithLength(text, len);
    if (!cJSON_IsObject(cfg)) {
        st = qb_err_set(err, QB_ERR_FORMAT, "%s is not a JSON object", src);
        goto out;
    }
    switch (lay) {
    case L_GPTQ:
        q = gptq_config(m, v2);
        break;
    case L_AWQ:
        q = awq_config(m);
        break;
    case L_CT_NVFP4:
    case L_CT_FP8:
        q = ct_config(lay);
        break;
    case L_MODELOPT_NVFP4:
        q = modelopt_config();
        break;
    case L_BNB_NF4:
        q = bnb_config(m);
        break;
    }
    if (lay == L_GPTQ)
        st = write_json(out_dir, "quantize_config.json", q, err);
    if (!st && lay == L_MODELOPT_NVFP4) {
        cJSON *h = hf_quant_config();
        st = write_json(out_dir, "hf_quant_config.json", h, err);
        cJSON_Delete(h);
    }
    if (st)
        goto out;
    cJSON_DeleteItemFromObjectCaseSensitive(cfg, "quantization_config");
    cJSON_AddItemToObject(cfg, "quantization_config", q);
    q = NULL;
    st = write_json(out_dir, "config.json", cfg, err);
out:
    cJSON_Delete(q);
    cJSON_Delete(cfg);
    free(text);
    free(src);
    return st;
}

static enum qb_status copy_side_files(const char *src_dir, const char *out_dir, struct qb_err *err)
{
    static const char *const files[] = {"tokenizer.json",
                                        "tokenizer_config.json",
                                        "special_tokens_map.json",
                                        "generation_config.json",
                                        "tokenizer.model",
                                        "vocab.json",
                                        "merges.txt",
                                        "chat_template.jinja",
                                        "added_tokens.json"};
    enum qb_status st = QB_OK;
    for (size_t i = 0; !st && i < QB_ARRAY_LEN(files); i++) {
        char *src = qb_path_join(src_dir, files[i]), *dst = qb_path_join(out_dir, files[i]);
        char *buf = NULL;
        size_t len;
        if (!src || !dst)
            st = qb_err_set(err, QB_ERR_NOMEM, "out of memory");
        else if (qb_path_exists(src)) {
            st = qb_file_read_all(src, 1u << 30, &buf, &len, err);
            if (!st)
                st = qb_file_write_atomic(dst, buf, len, err);
        }
        free(buf);
        free(src);
        free(dst);
    }
    return st;
}

static enum qb_status make_out_dir(const struct qb_model *m, const char *out_dir,
                                   struct qb_err *err)
{
    char a[4096], b[4096];
    if (realpath(m->dir, a) && realpath(out_dir, b) && strcmp(a, b) == 0)
        return qb_err_set(err, QB_ERR_USAGE,
                          "--out %s is the source model's directory; pick "
                          "another",
                          out_dir);
    if (mkdir(out_dir, 0755) != 0 && errno != EEXIST)
        return qb_err_set(err, QB_ERR_IO, "cannot create '%s': %s", out_dir, strerror(errno));
    if (!qb_path_is_dir(out_dir))
        return qb_err_set(err, QB_ERR_IO, "'%s' exists and is not a directory", out_dir);
    return QB_OK;
}

enum qb_status qb_hfq_export(const struct qb_model *m, const char *out_dir,
                             const struct qb_hfq_export_opts *opts, struct qb_progress *progress,
                             struct qb_hfq_export_result *res, struct qb_err *err)
{
    static const struct qb_hfq_export_opts no_opts = {0};
    struct qb_hfq_export_result dummy;
    struct qb_stw *w = NULL;
    float *amax = NULL;
    char *st_path = NULL;
    int li = layout_index(m->scheme.name);
    opts = opts ? opts : &no_opts;
    res = res ? res : &dummy;
    memset(res, 0, sizeof *res);
    if (li < 0)
        return qb_err_set(err, QB_ERR_UNSUPPORTED,
                          "scheme '%s' has no Hugging Face layout; "
                          "--format hf exports gptq-int2/3/4/8, awq-int4, nvfp4, nvfp4-w4a4, "
                          "fp8, nf4 and nf4-dq",
                          m->scheme.name);
    enum layout lay = layouts[li].layout;
    snprintf(res->layout, sizeof res->layout, "%s", layouts[li].name);
    enum qb_status st = make_out_dir(m, out_dir, err);
    if (st)
        return st;
    if (lay == L_MODELOPT_NVFP4) {
        amax = qb_calloc_array((size_t)m->cfg.n_layers * QB_LIN_COUNT, sizeof *amax);
        if (!amax)
            return qb_err_set(err, QB_ERR_NOMEM, "out of memory");
        qb_progress_stage(progress, "calibrating input scales");
        st = calibrate_amax(m, opts, amax, err);
        if (st)
            goto out;
    }
    st = qb_stw_new(&w, err);
    if (!st)
        st = qb_stw_set_metadata(w, "format", "pt", err);
    if (!st)
        st = copy_plain_tensors(m, w, err);
    if (st)
        goto out;
    qb_progress_stage(progress, "packing");
    for (int i = 0; i < m->cfg.n_layers; i++) {
        if (qb_progress_cancelled(progress)) {
            st = qb_err_set(err, QB_ERR_CANCELLED, "cancelled");
            goto out;
        }
        qb_progress_layer(progress, i + 1, m->cfg.n_layers);
        for (int s = 0; s < QB_LIN_COUNT; s++) {
            char prefix[160];
            linear_prefix(i, s, prefix, sizeof prefix);
            st = pack_linear(m, w, lay, opts, prefix, &m->layers[i].lin[s],
                             amax ? amax[i * QB_LIN_COUNT + s] : 0.0f, res, err);
            if (st)
                goto out;
            res->n_linears++;
        }
    }
    qb_progress_stage(progress, "writing");
    st_path = qb_path_join(out_dir, "model.safetensors");
    st = st_path ? qb_stw_write(w, st_path, err) : qb_err_set(err, QB_ERR_NOMEM, "out of memory");
    if (!st)
        st = write_configs(m, lay, opts->gptq_v2, out_dir, err);
    if (!st)
        st = copy_side_files(m->dir, out_dir, err);
out:
    free(st_path);
    free(amax);
    qb_stw_free(w);
    return st;
}
