/*
 * test_hfq_corrupt.c - the Hugging Face quantized checkpoint loader on broken
 * input: quantization configs we cannot run, and exported checkpoints with one
 * tensor missing, of the wrong dtype or shape, or inconsistent with the
 * config's group size. Each must fail with a one-line error naming the tensor
 * or key, never crash.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "fileutil.h"
#include "hfq_export.h"
#include "hfq_load.h"
#include "qb_test_util.h"
#include "safetensors_write.h"

/* ---- quantization_config parsing ---- */

static enum qb_status parse(const char *cfg, const char *hq, struct qb_scheme *s,
                            struct qb_err *err)
{
    struct qb_hfq *q = NULL;
    enum qb_status st =
        qb_hfq_config_parse(cfg, strlen(cfg), hq, hq ? strlen(hq) : 0, "DIR", &q, err);
    if (!st && q)
        qb_hfq_scheme(q, s);
    if (!st && !q)
        strcpy(s->name, "plain");
    qb_hfq_free(q);
    return st;
}

static void parses_to(const char *cfg, const char *hq, const char *scheme, int group)
{
    struct qb_scheme s = {0};
    struct qb_err err = {0};
    cr_assert_eq(parse(cfg, hq, &s, &err), QB_OK, "%s", err.msg);
    cr_assert_str_eq(s.name, scheme);
    if (group)
        cr_assert_eq(s.qp.group, group);
}

static void rejects(const char *cfg, const char *hq, enum qb_status want, const char *needle)
{
    struct qb_scheme s;
    struct qb_err err = {0};
    cr_assert_eq(parse(cfg, hq, &s, &err), want, "%s -> %s", cfg, err.msg);
    cr_assert(strstr(err.msg, needle), "'%s' not in: %s", needle, err.msg);
    cr_assert(strstr(err.msg, "DIR"), "error does not name the directory: %s", err.msg);
    cr_assert_null(strchr(err.msg, '\n'));
}

#define QC(body) "{\"model_type\": \"llama\", \"quantization_config\": {" body "}}"

Test(hfq_config, known_methods)
{
    parses_to("{\"model_type\": \"llama\"}", NULL, "plain", 0);
    parses_to(QC("\"quant_method\": \"gptq\", \"bits\": 4, \"group_size\": 128"), NULL, "gptq-int4",
              128);
    parses_to(QC("\"quant_method\": \"gptq\", \"bits\": 3, \"group_size\": -1"), NULL, "gptq-int3",
              128);
    parses_to(QC("\"quant_method\": \"gptq\", \"bits\": 8, \"group_size\": 64, "
                 "\"checkpoint_format\": \"gptq_v2\""),
              NULL, "gptq-int8", 64);
    parses_to(QC("\"quant_method\": \"awq\", \"w_bit\": 4, \"q_group_size\": 64, "
                 "\"version\": \"GEMM\""),
              NULL, "awq-int4", 64);
    parses_to(QC("\"quant_method\": \"compressed-tensors\", \"format\": \"float-quantized\", "
                 "\"config_groups\": {\"group_0\": {\"weights\": {\"num_bits\": 8, \"type\": "
                 "\"float\"}, \"input_activations\": {\"num_bits\": 8}}}"),
              NULL, "fp8-w8a8", 0);
    parses_to(QC("\"quant_method\": \"modelopt\", \"quant_algo\": \"NVFP4\""), NULL, "nvfp4-w4a4",
              0);
    parses_to(QC("\"quant_method\": \"bitsandbytes\", \"load_in_4bit\": true, "
                 "\"bnb_4bit_quant_type\": \"nf4\", \"bnb_4bit_use_double_quant\": true"),
              NULL, "nf4-dq", 0);
    parses_to("{\"model_type\": \"llama\"}",
              "{\"quantization\": {\"quant_algo\": \"NVFP4\", \"group_size\": 16}}", "nvfp4-w4a4",
              0);
}

Test(hfq_config, unsupported_and_malformed)
{
    rejects(QC("\"bits\": 4"), NULL, QB_ERR_FORMAT, "quant_method");
    rejects(QC("\"quant_method\": \"hqq\""), NULL, QB_ERR_UNSUPPORTED, "hqq");
    rejects(QC("\"quant_method\": \"gptq\", \"bits\": 5"), NULL, QB_ERR_UNSUPPORTED, "bits 5");
    rejects(QC("\"quant_method\": \"gptq\", \"bits\": \"4\""), NULL, QB_ERR_FORMAT, "bits");
    rejects(QC("\"quant_method\": \"gptq\", \"group_size\": 100"), NULL, QB_ERR_UNSUPPORTED,
            "group_size 100");
    rejects(QC("\"quant_method\": \"gptq\", \"checkpoint_format\": \"marlin\""), NULL,
            QB_ERR_UNSUPPORTED, "marlin");
    rejects(QC("\"quant_method\": \"gptq\", \"desc_act\": 1"), NULL, QB_ERR_FORMAT, "desc_act");
    rejects(QC("\"quant_method\": \"awq\", \"version\": \"gemv\""), NULL, QB_ERR_UNSUPPORTED,
            "gemv");
    rejects(QC("\"quant_method\": \"compressed-tensors\", \"format\": \"pack-quantized\", "
               "\"config_groups\": {\"g\": {\"weights\": {\"num_bits\": 4, \"type\": \"int\"}}}"),
            NULL, QB_ERR_UNSUPPORTED, "int");
    rejects(QC("\"quant_method\": \"compressed-tensors\", \"config_groups\": {}"), NULL,
            QB_ERR_FORMAT, "config_groups");
    rejects(QC("\"quant_method\": \"compressed-tensors\", \"config_groups\": {\"g\": "
               "{\"weights\": {\"num_bits\": 4, \"type\": \"float\", \"group_size\": 32}}}"),
            NULL, QB_ERR_FORMAT, "group_size 32");
    rejects(QC("\"quant_method\": \"modelopt\", \"quant_algo\": \"W4A8_AWQ\""), NULL,
            QB_ERR_UNSUPPORTED, "W4A8_AWQ");
    rejects(QC("\"quant_method\": \"bitsandbytes\", \"load_in_8bit\": true"), NULL,
            QB_ERR_UNSUPPORTED, "LLM.int8");
    rejects(QC("\"quant_method\": \"bitsandbytes\", \"load_in_4bit\": true, "
               "\"bnb_4bit_quant_type\": \"fp4\""),
            NULL, QB_ERR_UNSUPPORTED, "fp4");
    rejects("{\"quantization_config\": 3}", NULL, QB_ERR_FORMAT, "quantization_config");
    rejects("[1]", NULL, QB_ERR_FORMAT, "config.json");
    rejects("{}", "{\"quantization\": {\"quant_algo\": \"NVFP4\", \"group_size\": 32}}",
            QB_ERR_FORMAT, "group_size 32");
    rejects("{}", "{\"quant\": 1}", QB_ERR_FORMAT, "quantization");
    rejects("{}", "not json", QB_ERR_FORMAT, "hf_quant_config.json");
}

/* ---- broken checkpoints ---- */

/* An exported copy of the demo model in `scheme`; returns the temp root. */
static char *export_demo(const char *scheme, char *out, size_t n)
{
    struct qb_model *m = NULL;
    struct qb_err err = {0};
    struct qb_scheme s;
    cr_assert_eq(qb_model_load(QB_DEMO_MODEL, NULL, &m, &err), QB_OK, "%s", err.msg);
    if (strncmp(scheme, "gptq", 4) == 0 || strncmp(scheme, "awq", 3) == 0) {
        cr_assert_eq(qb_scheme_parse("int4", 0, &s, &err), QB_OK);
        cr_assert_eq(qb_model_apply_scheme(m, &s, NULL, &err), QB_OK, "%s", err.msg);
        cr_assert_eq(qb_scheme_parse(scheme, 0, &m->scheme, &err), QB_OK);
    } else {
        cr_assert_eq(qb_scheme_parse(scheme, 0, &s, &err), QB_OK);
        cr_assert_eq(qb_model_apply_scheme(m, &s, NULL, &err), QB_OK, "%s", err.msg);
    }
    char *root = qbt_tempdir(), *calib = NULL;
    size_t clen = 0;
    snprintf(out, n, "%s/hf", root);
    cr_assert_eq(qb_file_read_all(QB_CALIB_TEXT, 1 << 30, &calib, &clen, &err), QB_OK);
    struct qb_hfq_export_opts o = {.calib_text = calib, .calib_len = clen, .calib_chunks = 1};
    cr_assert_eq(qb_hfq_export(m, out, &o, NULL, NULL, &err), QB_OK, "%s", err.msg);
    free(calib);
    qb_model_free(m);
    return root;
}

enum mutation { DROP, AS_F32, FLATTEN, POKE_I32 };

/* Rewrite dir/model.safetensors with tensor `name` changed. */
static void mutate(const char *dir, const char *name, enum mutation how, int32_t poke)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    struct qb_ckpt *ck = NULL;
    struct qb_stw *w = NULL;
    struct qb_err err = {0};
    int found = 0;
    cr_assert_eq(qb_ckpt_open_file(path, &ck, &err), QB_OK, "%s", err.msg);
    cr_assert_eq(qb_stw_new(&w, &err), QB_OK);
    for (size_t i = 0; i < ck->n_tensors; i++) {
        const struct qb_st_tensor *t = &ck->tensors[i];
        if (strcmp(t->name, name) != 0) {
            cr_assert_eq(qb_stw_add(w, t->name, t->dtype, t->n_dims, t->shape, t->data, &err),
                         QB_OK);
            continue;
        }
        found = 1;
        size_t bytes = qb_st_tensor_bytes(t);
        if (how == AS_F32) {
            cr_assert_eq(qb_dtype_size(t->dtype), 4);
            qb_stw_add(w, name, QB_DTYPE_F32, t->n_dims, t->shape, t->data, &err);
        } else if (how == FLATTEN) {
            int64_t n = t->n_elems;
            qb_stw_add(w, name, t->dtype, 1, &n, t->data, &err);
        } else if (how == POKE_I32) {
            int32_t *copy = malloc(bytes);
            memcpy(copy, t->data, bytes);
            copy[0] = poke;
            qb_stw_add_owned(w, name, t->dtype, t->n_dims, t->shape, copy, &err);
        }
    }
    cr_assert(found, "no tensor %s", name);
    qb_ckpt_close(ck);
    cr_assert_eq(qb_stw_write(w, path, &err), QB_OK, "%s", err.msg);
    qb_stw_free(w);
}

/* Replace the first occurrence of `from` by `to` in dir/file. */
static void edit_file(const char *dir, const char *file, const char *from, const char *to)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    size_t len;
    char *text = qbt_read_file(path, &len), *hit = text ? strstr(text, from) : NULL;
    cr_assert_not_null(hit, "'%s' not in %s", from, path);
    char *out = qb_asprintf("%.*s%s%s", (int)(hit - text), text, to, hit + strlen(from));
    qbt_write_file(dir, file, out, strlen(out));
    free(out);
    free(text);
}

static void load_fails(const char *dir, enum qb_status want, const char *n1, const char *n2)
{
    struct qb_model *m = NULL;
    struct qb_err err = {0};
    cr_assert_eq(qb_model_load(dir, NULL, &m, &err), want, "got: %s", err.msg);
    cr_assert_null(m);
    cr_assert(strstr(err.msg, n1), "'%s' not in: %s", n1, err.msg);
    cr_assert(!n2 || strstr(err.msg, n2), "'%s' not in: %s", n2, err.msg);
}

#define P0 "model.layers.0.self_attn.q_proj"
#define P3 "model.layers.3.mlp.down_proj"

struct corrupt_case {
    const char *scheme;
    const char *tensor;
    enum mutation how;
    int32_t poke;
    enum qb_status want;
    const char *n1, *n2;
};

static void run_case(const struct corrupt_case *c)
{
    char dir[4096];
    char *root = export_demo(c->scheme, dir, sizeof dir);
    mutate(dir, c->tensor, c->how, c->poke);
    load_fails(dir, c->want, c->n1, c->n2);
    qbt_rmtree(root);
    free(root);
}

Test(hfq_corrupt, gptq_tensors, .timeout = 120)
{
    static const struct corrupt_case cases[] = {
        {"gptq-int4", P0 ".qzeros", DROP, 0, QB_ERR_FORMAT, P0 ".qzeros", "missing"},
        {"gptq-int4", P3 ".qweight", AS_F32, 0, QB_ERR_FORMAT, P3 ".qweight", "dtype F32"},
        {"gptq-int4", P3 ".scales", FLATTEN, 0, QB_ERR_FORMAT, P3 ".scales", "shape"},
        {"gptq-int4", P0 ".g_idx", POKE_I32, 7, QB_ERR_FORMAT, P0 ".g_idx", "outside"},
        {"gptq-int4", P0 ".g_idx", POKE_I32, -1, QB_ERR_FORMAT, P0 ".g_idx", "outside"},
    };
    for (size_t i = 0; i < QB_ARRAY_LEN(cases); i++)
        run_case(&cases[i]);
}

Test(hfq_corrupt, other_layouts, .timeout = 200)
{
    static const struct corrupt_case cases[] = {
        {"awq-int4", P0 ".qzeros", FLATTEN, 0, QB_ERR_FORMAT, P0 ".qzeros", "shape"},
        {"nvfp4", P0 ".weight_global_scale", DROP, 0, QB_ERR_FORMAT, "weight_global_scale",
         "missing"},
        {"nvfp4", P3 ".weight_packed", FLATTEN, 0, QB_ERR_FORMAT, P3 ".weight_packed", "shape"},
        {"nvfp4-w4a4", P0 ".weight_scale_2", DROP, 0, QB_ERR_FORMAT, "weight_scale_2", NULL},
        {"fp8", P3 ".weight_scale", DROP, 0, QB_ERR_FORMAT, P3 ".weight_scale", "missing"},
        {"nf4", P0 ".weight.absmax", DROP, 0, QB_ERR_FORMAT, "absmax", "missing"},
        {"nf4", P0 ".weight.quant_state.bitsandbytes__nf4", DROP, 0, QB_ERR_FORMAT, "quant_state",
         "missing"},
        {"nf4-dq", P3 ".weight.nested_absmax", DROP, 0, QB_ERR_FORMAT, "nested_absmax", NULL},
        {"nf4", P0 ".weight.quant_map", POKE_I32, 0x3f000000, QB_ERR_UNSUPPORTED, "quant_map",
         "NF4"},
    };
    for (size_t i = 0; i < QB_ARRAY_LEN(cases); i++)
        run_case(&cases[i]);
}

/* Not corruption: FP8 scales as [N] (no trailing 1) load the same. */
Test(hfq_corrupt, fp8_flat_scale_is_accepted, .timeout = 60)
{
    char dir[4096];
    char *root = export_demo("fp8", dir, sizeof dir);
    mutate(dir, P0 ".weight_scale", FLATTEN, 0);
    struct qb_model *m = NULL;
    struct qb_err err = {0};
    cr_assert_eq(qb_model_load(dir, NULL, &m, &err), QB_OK, "%s", err.msg);
    cr_assert_str_eq(m->scheme.name, "fp8");
    cr_assert_eq(m->layers[0].lin[0].fmt, QB_WFMT_FP8_E4M3);
    qb_model_free(m);
    qbt_rmtree(root);
    free(root);
}

Test(hfq_corrupt, inconsistent_config, .timeout = 120)
{
    char dir[4096];
    char *root = export_demo("gptq-int4", dir, sizeof dir);
    edit_file(dir, "config.json", "\"group_size\":\t128", "\"group_size\":\t64");
    load_fails(dir, QB_ERR_FORMAT, "qzeros", "[4, 32]");
    qbt_rmtree(root);
    free(root);

    root = export_demo("gptq-int4", dir, sizeof dir);
    edit_file(dir, "config.json", "\"bits\":\t4", "\"bits\":\t8");
    load_fails(dir, QB_ERR_FORMAT, "qweight", "shape");
    qbt_rmtree(root);
    free(root);

    root = export_demo("nf4", dir, sizeof dir);
    mutate(dir, P0 ".weight.quant_state.bitsandbytes__nf4", DROP, 0);
    load_fails(dir, QB_ERR_FORMAT, P0, "quant_state");
    qbt_rmtree(root);
    free(root);

    root = export_demo("nvfp4-w4a4", dir, sizeof dir);
    edit_file(dir, "config.json", "\"quant_algo\":\t\"NVFP4\"", "\"quant_algo\":\t\"INT8\"");
    load_fails(dir, QB_ERR_UNSUPPORTED, "INT8", "quant_algo");
    qbt_rmtree(root);
    free(root);
}

Test(hfq_corrupt, bnb_quant_state_blocksize, .timeout = 60)
{
    char dir[4096];
    char *root = export_demo("nf4", dir, sizeof dir);
    /* same byte length, blocksize 64 -> 32 */
    char path[4200];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    size_t len;
    char *img = qbt_read_file(path, &len);
    char *hit = memmem(img, len, "\"blocksize\": 64", 15);
    cr_assert_not_null(hit);
    memcpy(hit, "\"blocksize\": 32", 15);
    qbt_write_file(dir, "model.safetensors", img, len);
    free(img);
    load_fails(dir, QB_ERR_UNSUPPORTED, "blocksize 32", "nf4");
    qbt_rmtree(root);
    free(root);
}
