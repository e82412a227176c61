/*
 * test_loader.c - config.json, safetensors and model loading: the happy path
 * on the demo model and every kind of broken input, through the API (the
 * error line must name the file and the field) and through the CLI (one line
 * on stderr, exit 1, no crash).
 * qb-test-labels: arm64
 */
#include <criterion/criterion.h>
#include <math.h>
#include <unistd.h>
#include <stdio.h>
#include <string.h>

#include "config.h"
#include "model.h"
#include "qb_test_util.h"
#include "safetensors.h"

/* ---- config.json ---------------------------------------------------------- */

static enum qb_status parse_cfg(const char *json, struct qb_config *c, struct qb_err *err)
{
    return qb_config_parse(json, strlen(json), "config.json", c, err);
}

#define LLAMA_MIN "\"model_type\":\"llama\",\"num_hidden_layers\":2,\"intermediate_size\":128," \
                  "\"vocab_size\":100"
#define LLAMA_BASE                                                                             \
    "\"model_type\":\"llama\",\"num_hidden_layers\":2,\"hidden_size\":64,"                  \
    "\"intermediate_size\":128,\"num_attention_heads\":4,\"num_key_value_heads\":2,"         \
    "\"vocab_size\":100,\"max_position_embeddings\":256,\"rms_norm_eps\":1e-5"

Test(config, demo_model)
{
    struct qb_config c;
    struct qb_err err = {0};
    cr_assert_eq(qb_config_load(QB_DEMO_MODEL "/config.json", &c, &err), QB_OK, "%s", err.msg);
    cr_assert_eq(c.n_layers, 8);
    cr_assert_eq(c.hidden, 256);
    cr_assert_eq(c.n_heads, 4);
    cr_assert_eq(c.n_kv_heads, 2);
    cr_assert_eq(c.head_dim, 64);
    cr_assert_eq(c.vocab, 8192);
    cr_assert_eq(c.rope_type, QB_ROPE_DEFAULT);
    cr_assert_float_eq(c.rope_theta, 10000.0, 1e-9);
    cr_assert_eq(c.bos_id, 8190);
    cr_assert_eq(c.tie_embeddings, 0);
}

Test(config, v4_rope_scaling_llama3)
{
    struct qb_config c;
    struct qb_err err = {0};
    const char *j = "{" LLAMA_BASE ",\"rope_theta\":500000.0,\"rope_scaling\":{\"rope_type\":"
                    "\"llama3\",\"factor\":8.0,\"low_freq_factor\":1.0,\"high_freq_factor\":4.0,"
                    "\"original_max_position_embeddings\":8192},\"tie_word_embeddings\":true}";
    cr_assert_eq(parse_cfg(j, &c, &err), QB_OK, "%s", err.msg);
    cr_assert_eq(c.rope_type, QB_ROPE_LLAMA3);
    cr_assert_float_eq(c.rope_theta, 500000.0, 1e-6);
    cr_assert_eq(c.rope_orig_ctx, 8192);
    cr_assert_eq(c.tie_embeddings, 1);
    double inv[8];
    qb_config_rope_inv_freq(&c, inv); /* head_dim 16: every frequency defined */
    cr_assert_float_eq(inv[0], 1.0, 1e-12); /* high frequency: unchanged */
    cr_assert(inv[7] < 1.0 / pow(500000.0, 14.0 / 16.0));
}

Test(config, v5_rope_parameters_linear_and_qwen)
{
    struct qb_config c;
    struct qb_err err = {0};
    const char *j = "{" LLAMA_BASE ",\"rope_parameters\":{\"rope_theta\":1000.0,\"rope_type\":"
                    "\"linear\",\"factor\":2.0}}";
    cr_assert_eq(parse_cfg(j, &c, &err), QB_OK, "%s", err.msg);
    cr_assert_eq(c.rope_type, QB_ROPE_LINEAR);
    double inv[8];
    qb_config_rope_inv_freq(&c, inv);
    cr_assert_float_eq(inv[0], 0.5, 1e-12);
    const char *q2 = "{\"model_type\":\"qwen2\",\"num_hidden_layers\":2,\"hidden_size\":64,"
                     "\"intermediate_size\":128,\"num_attention_heads\":4,\"vocab_size\":10}";
    cr_assert_eq(parse_cfg(q2, &c, &err), QB_OK, "%s", err.msg);
    cr_assert_eq(c.attn_bias, 1);
    cr_assert_eq(c.n_kv_heads, 4);
    const char *q3 = "{\"model_type\":\"qwen3\",\"num_hidden_layers\":2,\"hidden_size\":64,"
                     "\"intermediate_size\":128,\"num_attention_heads\":4,\"vocab_size\":10,"
                     "\"head_dim\":32}";
    cr_assert_eq(parse_cfg(q3, &c, &err), QB_OK, "%s", err.msg);
    cr_assert_eq(c.qk_norm, 1);
    cr_assert_eq(c.head_dim, 32);
}

struct bad_config {
    const char *json;
    const char *must_mention;
};

Test(config, bad_inputs_name_the_field)
{
    static const struct bad_config cases[] = {
        {"not json at all", "not valid JSON"},
        {"[1,2]", "object"},
        {"{\"model_type\":\"gpt2\"}", "gpt2"},
        {"{\"model_type\":\"mixtral\",\"num_local_experts\":8}", "MoE (mixtral)"},
        {"{\"model_type\":\"llama\",\"num_local_experts\":8}", "MoE"},
        {"{\"model_type\":\"llama\",\"num_hidden_layers\":2,\"hidden_size\":64,"
         "\"intermediate_size\":128,\"num_attention_heads\":0,\"vocab_size\":10}",
         "num_attention_heads"},
        {"{\"model_type\":\"llama\",\"hidden_size\":64}", "num_hidden_layers"},
        {"{" LLAMA_MIN ",\"hidden_size\":64,\"num_attention_heads\":4,\"num_key_value_heads\":3}",
         "num_key_value_heads"},
        {"{" LLAMA_MIN ",\"hidden_size\":\"big\",\"num_attention_heads\":4}", "hidden_size"},
        {"{" LLAMA_BASE ",\"rope_scaling\":{\"rope_type\":\"yarn\",\"factor\":4}}", "yarn"},
        {"{" LLAMA_BASE ",\"rope_scaling\":{\"rope_type\":\"linear\"}}", "factor"},
        {"{" LLAMA_MIN ",\"hidden_size\":64,\"num_attention_heads\":4,\"rms_norm_eps\":-1}",
         "rms_norm_eps"},
        {"{" LLAMA_BASE ",\"tie_word_embeddings\":\"yes\"}", "tie_word_embeddings"},
        {"{" LLAMA_BASE ",\"head_dim\":15}", "head_dim"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct qb_config c;
        struct qb_err err = {0};
        cr_assert_neq(parse_cfg(cases[i].json, &c, &err), QB_OK, "case %zu accepted", i);
        cr_assert(strstr(err.msg, cases[i].must_mention) != NULL, "case %zu: '%s' lacks '%s'", i,
                  err.msg, cases[i].must_mention);
        cr_assert(strstr(err.msg, "config.json") != NULL, "case %zu: no file name", i);
    }
}

/* ---- safetensors headers ---------------------------------------------------- */

static enum qb_status parse_hdr(const char *hdr, size_t data_size, struct qb_err *err)
{
    struct qb_st_tensor *ts = NULL;
    size_t n = 0;
    enum qb_status st = qb_st_parse_header(hdr, strlen(hdr), data_size, "x.safetensors", &ts, &n,
                                           err);
    qb_st_tensors_free(ts, n);
    return st;
}

Test(safetensors, valid_header)
{
    struct qb_st_tensor *ts = NULL;
    size_t n = 0;
    struct qb_err err = {0};
    const char *h = "{\"__metadata__\":{\"format\":\"pt\"},"
                    "\"b\":{\"dtype\":\"BF16\",\"shape\":[2,3],\"data_offsets\":[8,20]},"
                    "\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    cr_assert_eq(qb_st_parse_header(h, strlen(h), 20, "x", &ts, &n, &err), QB_OK, "%s", err.msg);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(ts[0].name, "a"); /* sorted */
    cr_assert_eq(ts[1].shape[1], 3);
    cr_assert_eq(ts[1].n_elems, 6);
    qb_st_tensors_free(ts, n);
}

Test(safetensors, bad_headers)
{
    static const struct bad_config cases[] = {
        {"{not json", "not valid JSON"},
        {"[]", "object"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,400]}}", "outside"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,16]}}", "needs 12 bytes"},
        {"{\"a\":{\"dtype\":\"Q9\",\"shape\":[4],\"data_offsets\":[0,16]}}", "dtype"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":4,\"data_offsets\":[0,16]}}", "shape"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[-4],\"data_offsets\":[0,16]}}", "dimension"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[16,0]}}", "outside"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0]}}", "data_offsets"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
         "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[8,24]}}", "overlap"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
         "\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[16,32]}}", "twice"},
        {"{\"a\":{\"dtype\":\"F32\",\"shape\":[1099511627776,1099511627776],"
         "\"data_offsets\":[0,16]}}", "too large"},
        {"{\"__metadata__\":[1]}", "__metadata__"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct qb_err err = {0};
        cr_assert_neq(parse_hdr(cases[i].json, 32, &err), QB_OK, "case %zu accepted", i);
        cr_assert(strstr(err.msg, cases[i].must_mention) != NULL, "case %zu: '%s' lacks '%s'", i,
                  err.msg, cases[i].must_mention);
    }
}

/* Write a safetensors file with an arbitrary declared header length. */
static void write_st(const char *dir, const char *name, uint64_t declared_len, const char *hdr,
                     size_t data_bytes)
{
    size_t hl = strlen(hdr), total = 8 + hl + data_bytes;
    unsigned char *buf = calloc(1, total);
    for (int i = 0; i < 8; i++)
        buf[i] = (unsigned char)(declared_len >> (8 * i));
    memcpy(buf + 8, hdr, hl);
    qbt_write_file(dir, name, buf, total);
    free(buf);
}

static void expect_ckpt_error(const char *dir, const char *must_mention)
{
    struct qb_ckpt *ck = NULL;
    struct qb_err err = {0};
    cr_assert_neq(qb_ckpt_open(dir, &ck, &err), QB_OK, "accepted (%s)", must_mention);
    cr_assert_null(ck);
    cr_assert(strstr(err.msg, must_mention) != NULL, "'%s' lacks '%s'", err.msg, must_mention);
}

Test(safetensors, broken_files)
{
    char *dir = qbt_tempdir();
    const char *hdr = "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}";
    write_st(dir, "model.safetensors", 1ull << 62, hdr, 16);
    expect_ckpt_error(dir, "header length");
    write_st(dir, "model.safetensors", strlen(hdr), hdr, 8); /* data truncated */
    expect_ckpt_error(dir, "outside the data section");
    qbt_write_file(dir, "model.safetensors", "abc", 3);
    expect_ckpt_error(dir, "too short");
    write_st(dir, "model.safetensors", 9, "{\"a\":nope", 0);
    expect_ckpt_error(dir, "not valid JSON");
    write_st(dir, "model.safetensors", strlen(hdr), hdr, 16);
    struct qb_ckpt *ck = NULL;
    struct qb_err err = {0};
    cr_assert_eq(qb_ckpt_open(dir, &ck, &err), QB_OK, "%s", err.msg);
    cr_assert_not_null(qb_ckpt_find(ck, "a"));
    cr_assert_null(qb_ckpt_find(ck, "b"));
    qb_ckpt_close(ck);
    qbt_rmtree(dir);
}

Test(safetensors, broken_index)
{
    char *dir = qbt_tempdir();
    const char *hdr = "{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}";
    write_st(dir, "s1.safetensors", strlen(hdr), hdr, 16);
    const char *idx_missing = "{\"weight_map\":{\"a\":\"s1.safetensors\",\"b\":\"s2.safetensors\"}}";
    qbt_write_file(dir, "model.safetensors.index.json", idx_missing, strlen(idx_missing));
    expect_ckpt_error(dir, "s2.safetensors");
    const char *idx_wrong = "{\"weight_map\":{\"a\":\"s1.safetensors\",\"zz\":\"s1.safetensors\"}}";
    qbt_write_file(dir, "model.safetensors.index.json", idx_wrong, strlen(idx_wrong));
    expect_ckpt_error(dir, "'zz'");
    const char *idx_escape = "{\"weight_map\":{\"a\":\"../s1.safetensors\"}}";
    qbt_write_file(dir, "model.safetensors.index.json", idx_escape, strlen(idx_escape));
    expect_ckpt_error(dir, "same directory");
    qbt_write_file(dir, "model.safetensors.index.json", "{", 1);
    expect_ckpt_error(dir, "not valid JSON");
    qbt_rmtree(dir);
    char *empty = qbt_tempdir();
    expect_ckpt_error(empty, "no model.safetensors");
    qbt_rmtree(empty);
    free(dir);
    free(empty);
}

/* ---- whole model -------------------------------------------------------------- */

Test(model, demo_loads_as_bf16_views)
{
    struct qb_model *m = NULL;
    struct qb_err err = {0};
    struct qb_model_load_opts o = {.no_tokenizer = 1};
    cr_assert_eq(qb_model_load(QB_DEMO_MODEL, &o, &m, &err), QB_OK, "%s", err.msg);
    cr_assert_eq(m->base_dtype, QB_DTYPE_BF16);
    cr_assert_str_eq(m->scheme.name, "bf16");
    cr_assert_eq(m->layers[7].lin[QB_LIN_DOWN].rows, 256);
    cr_assert_eq(m->layers[7].lin[QB_LIN_DOWN].cols, 768);
    cr_assert_eq(m->layers[0].lin[QB_LIN_K].rows, 128);
    /* 8 layers x (256*256*2 + 128*256*2 + 3*256*768) */
    cr_assert_eq(qb_model_decoder_params(m), 8LL * (131072 + 65536 + 589824));
    cr_assert_eq(qb_model_decoder_bytes(m), 2 * (size_t)qb_model_decoder_params(m));
    qb_model_free(m);
}

