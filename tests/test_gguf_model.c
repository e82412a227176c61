/*
 * test_gguf_model.c - GGUF files as struct qb_model (core/gguf_model.c):
 *   - our exported gguf-q8_0 / gguf-q4_k_m files load back into exactly the
 *     linears (bytes, types), embeddings and norms that `--scheme gguf-*`
 *     builds in memory (the Q/K permutation undone on packed rows);
 *   - `eval FILE.gguf` gives the same perplexity as `eval --scheme gguf-q8_0`
 *     and stays close to bf16; q4_k_m export -> load -> eval is close too;
 *   - small hand-built GGUF files: a valid one (tied output, f32 weights, Q
 *     rows unpermuted to the HF order), and corrupt ones (missing tensor, wrong
 *     shape, other architecture, bad head counts, llama3 rope_freqs) failing
 *     with one clear line.
 */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ggml_quants.h"
#include "gguf.h"
#include "gguf_export.h"
#include "gguf_model.h"
#include "model.h"
#include "qb_test_util.h"

static char *work;

static void setup(void)
{
    work = qbt_tempdir();
}

static void teardown(void)
{
    qbt_rmtree(work);
    free(work);
}

TestSuite(gguf_model, .init = setup, .fini = teardown, .timeout = 300);

static char *export_demo(const char *ftype)
{
    char *out = qb_asprintf("%s/demo-%s.gguf", work, ftype);
    char *scheme = qb_asprintf("gguf-%s", ftype);
    struct qb_err err = {0};
    cr_assert_eq(qb_gguf_export(QB_DEMO_MODEL, scheme, out, NULL, &err), QB_OK, "%s", err.msg);
    free(scheme);
    return out;
}

static void assert_same_linear(const struct qb_linear *a, const struct qb_linear *b,
                               const char *what)
{
    cr_assert_eq(a->fmt, b->fmt, "%s: format", what);
    cr_assert_eq(a->rows, b->rows, "%s: rows", what);
    cr_assert_eq(a->cols, b->cols, "%s: cols", what);
    cr_assert_eq(a->qp.ggml_type, b->qp.ggml_type, "%s: ggml type", what);
    cr_assert_eq(a->data_bytes, b->data_bytes, "%s: bytes", what);
    cr_assert_eq(memcmp(a->data, b->data, a->data_bytes), 0, "%s: payload differs", what);
}

static void round_trip(const char *ftype)
{
    char *path = export_demo(ftype);
    char *scheme_name = qb_asprintf("gguf-%s", ftype);
    struct qb_model *file = NULL, *mem = NULL;
    struct qb_scheme scheme;
    struct qb_err err = {0};
    cr_assert_eq(qb_model_load(path, NULL, &file, &err), QB_OK, "%s", err.msg);
    cr_assert_eq(qb_model_load(QB_DEMO_MODEL, NULL, &mem, &err), QB_OK, "%s", err.msg);
    cr_assert_eq(qb_scheme_parse(scheme_name, 0, &scheme, &err), QB_OK, "%s", err.msg);
    cr_assert_eq(qb_model_apply_scheme(mem, &scheme, NULL, &err), QB_OK, "%s", err.msg);
    cr_assert_str_eq(file->scheme.name, scheme_name);
    const struct qb_config *a = &file->cfg, *b = &mem->cfg;
    cr_assert_eq(a->n_layers, b->n_layers);
    cr_assert_eq(a->hidden, b->hidden);
    cr_assert_eq(a->intermediate, b->intermediate);
    cr_assert_eq(a->n_heads, b->n_heads);
    cr_assert_eq(a->n_kv_heads, b->n_kv_heads);
    cr_assert_eq(a->head_dim, b->head_dim);
    cr_assert_eq(a->vocab, b->vocab);
    cr_assert_eq(a->max_ctx, b->max_ctx);
    cr_assert_eq(a->rms_eps, b->rms_eps);
    cr_assert_eq(a->rope_theta, b->rope_theta);
    cr_assert_eq(a->tie_embeddings, b->tie_embeddings);
    cr_assert_eq(a->bos_id, b->bos_id);
    cr_assert_eq(a->eos_id, b->eos_id);
    assert_same_linear(&file->embed, &mem->embed, "token_embd");
    assert_same_linear(&file->lm_head, &mem->lm_head, "output");
    size_t hb = (size_t)a->hidden * sizeof(float);
    cr_assert_eq(memcmp(file->final_norm, mem->final_norm, hb), 0);
    for (int i = 0; i < a->n_layers; i++) {
        for (int s = 0; s < QB_LIN_COUNT; s++) {
            char what[64];
            snprintf(what, sizeof what, "layer %d %s", i, qb_linear_slot_name(s));
            assert_same_linear(&file->layers[i].lin[s], &mem->layers[i].lin[s], what);
        }
        cr_assert_eq(memcmp(file->layers[i].attn_norm, mem->layers[i].attn_norm, hb), 0);
        cr_assert_eq(memcmp(file->layers[i].ffn_norm, mem->layers[i].ffn_norm, hb), 0);
    }
    int32_t *ids_a = NULL, *ids_b = NULL;
    size_t na = 0, nb = 0;
    const char text[] = "The quick brown fox's 1234 jumps\n\n  over it!";
    cr_assert_eq(qb_tok_encode(file->tok, text, sizeof text - 1, 1, &ids_a, &na, &err), QB_OK);
    cr_assert_eq(qb_tok_encode(mem->tok, text, sizeof text - 1, 1, &ids_b, &nb, &err), QB_OK);
    cr_assert_eq(na, nb, "GGUF tokenizer gives %zu ids, tokenizer.json %zu", na, nb);
    cr_assert_eq(memcmp(ids_a, ids_b, na * sizeof *ids_a), 0);
    free(ids_a);
    free(ids_b);
    qb_model_free(file);
    qb_model_free(mem);
    free(scheme_name);
    free(path);
}

Test(gguf_model, q8_0_file_equals_in_memory_scheme) { round_trip("q8_0"); }
Test(gguf_model, q4_k_m_file_equals_in_memory_scheme) { round_trip("q4_k_m"); }

static double eval_ppl(const char *model, const char *scheme, double *baseline)
{
    const char *argv[] = {QB_BINARY, "eval", model, "--data", QB_EVAL_TEXT, "--chunks", "2",
                          "--threads", "2", "--json", scheme ? "--scheme" : NULL, scheme, NULL};
    struct qbt_run r;
    qbt_run(argv, NULL, 240, &r);
    cr_assert_eq(r.exit_code, 0, "eval %s failed: %s", model, r.err);
    cJSON *j = cJSON_Parse(r.out);
    cr_assert_not_null(j, "eval --json output: %s", r.out);
    double ppl = cJSON_GetObjectItem(j, "ppl")->valuedouble;
    if (baseline)
        *baseline = cJSON_GetObjectItem(j, "ppl_baseline")->valuedouble;
    cJSON_Delete(j);
    qbt_run_free(&r);
    return ppl;
}

Test(gguf_model, eval_of_q8_0_file_equals_in_memory_and_is_close_to_bf16)
{
    char *path = export_demo("q8_0");
    double bf16;
    double mem = eval_ppl(QB_DEMO_MODEL, "gguf-q8_0", &bf16);
    double file = eval_ppl(path, NULL, NULL);
    cr_assert_eq(file, mem, "ppl of the GGUF file %.10g != in-memory gguf-q8_0 %.10g", file, mem);
    cr_assert_lt(fabs(file - bf16) / bf16, 0.01, "q8_0 ppl %.4f vs bf16 %.4f", file, bf16);
    free(path);
}

Test(gguf_model, q4_k_m_export_load_eval)
{
    char *path = export_demo("q4_k_m");
    double bf16;
    double mem = eval_ppl(QB_DEMO_MODEL, "gguf-q4_k_m", &bf16);
    double file = eval_ppl(path, NULL, NULL);
    cr_assert_eq(file, mem, "ppl of the GGUF file %.10g != in-memory %.10g", file, mem);
    cr_assert_lt(fabs(file - bf16) / bf16, 0.05, "q4_k_m ppl %.4f vs bf16 %.4f", file, bf16);
    free(path);
}

/* ---- hand-built files ---------------------------------------------------------- */

enum { TH = 32, TFF = 64, THEADS = 2, TKV = 1, THD = 16, TVOCAB = 16 };

struct tiny_opts {
    const char *arch;
    const char *skip;        /* tensor left out */
    const char *bad_shape;   /* tensor written one row short */
    uint32_t heads;
    int rope_freqs;
};

static float tiny_value(const char *name, int64_t i)
{
    unsigned h = 2166136261u;
    for (const char *p = name; *p; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    return (float)((h + (unsigned)i * 2654435761u) % 1000u) / 1000.0f - 0.5f;
}

struct tiny_tensor {
    char name[64];
    float *data;
};

static void add_tiny(struct qb_gguf_writer *w, const struct tiny_opts *o, struct tiny_tensor *tt,
                     size_t *k, const char *name, int64_t ne0, int64_t ne1, int permute_heads)
{
    if (o->skip && strcmp(o->skip, name) == 0)
        return;
    if (o->bad_shape && strcmp(o->bad_shape, name) == 0) {
        ne1 -= 1;
        permute_heads = 0;
    }
    struct tiny_tensor *t = &tt[(*k)++];
    snprintf(t->name, sizeof t->name, "%s", name);
    int64_t n = ne0 * ne1;
    t->data = malloc((size_t)n * sizeof(float));
    float *hf = malloc((size_t)n * sizeof(float));
    for (int64_t i = 0; i < n; i++)
        hf[i] = tiny_value(name, i);
    if (permute_heads)
        cr_assert_eq(qb_gguf_permute_qk(hf, t->data, ne1, ne0, permute_heads, sizeof(float)), 0);
    else
        memcpy(t->data, hf, (size_t)n * sizeof(float));
    free(hf);
    int64_t ne[2] = {ne0, ne1};
    struct qb_err err = {0};
    cr_assert_eq(qb_gguf_add_tensor(w, t->name, QB_GGML_F32, ne1 > 1 ? 2 : 1, ne, t->data,
                                    (size_t)n * sizeof(float), &err),
                 QB_OK, "%s", err.msg);
}

static char *write_tiny(const struct tiny_opts *o)
{
    struct qb_gguf_writer *w = NULL;
    struct qb_err err = {0};
    cr_assert_eq(qb_gguf_writer_new(&w, &err), QB_OK);
    struct qb_gguf_llama_hparams hp = {.name = "tiny", .n_vocab = TVOCAB, .n_ctx = 64,
                                       .n_embd = TH, .n_ff = TFF, .n_layer = 1,
                                       .n_head = o->heads ? o->heads : THEADS, .n_head_kv = TKV,
                                       .head_dim = THD, .rope_theta = 500000.0f,
                                       .rms_norm_eps = 1e-6f, .file_type = 0};
    if (o->arch) {
        cr_assert_eq(qb_gguf_add_str(w, "general.architecture", o->arch, &err), QB_OK);
    } else {
        cr_assert_eq(qb_gguf_llama_add_metadata(w, &hp, &err), QB_OK, "%s", err.msg);
    }
    struct tiny_tensor tt[16] = {0};
    size_t k = 0;
    add_tiny(w, o, tt, &k, "token_embd.weight", TH, TVOCAB, 0);
    add_tiny(w, o, tt, &k, "blk.0.attn_norm.weight", TH, 1, 0);
    add_tiny(w, o, tt, &k, "blk.0.attn_q.weight", TH, THEADS * THD, THEADS);
    add_tiny(w, o, tt, &k, "blk.0.attn_k.weight", TH, TKV * THD, TKV);
    add_tiny(w, o, tt, &k, "blk.0.attn_v.weight", TH, TKV * THD, 0);
    add_tiny(w, o, tt, &k, "blk.0.attn_output.weight", THEADS * THD, TH, 0);
    add_tiny(w, o, tt, &k, "blk.0.ffn_norm.weight", TH, 1, 0);
    add_tiny(w, o, tt, &k, "blk.0.ffn_gate.weight", TH, TFF, 0);
    add_tiny(w, o, tt, &k, "blk.0.ffn_up.weight", TH, TFF, 0);
    add_tiny(w, o, tt, &k, "blk.0.ffn_down.weight", TFF, TH, 0);
    add_tiny(w, o, tt, &k, "output_norm.weight", TH, 1, 0);
    if (o->rope_freqs)
        add_tiny(w, o, tt, &k, "rope_freqs.weight", THD / 2, 1, 0);
    char *path = qb_asprintf("%s/tiny.gguf", work);
    cr_assert_eq(qb_gguf_write(w, path, &err), QB_OK, "%s", err.msg);
    qb_gguf_writer_free(w);
    for (size_t i = 0; i < k; i++)
        free(tt[i].data);
    return path;
}

static void expect_load_error(const struct tiny_opts *o, enum qb_status want, const char *needle)
{
    char *path = write_tiny(o);
    struct qb_model *m = NULL;
    struct qb_err err = {0};
    struct qb_model_load_opts lo = {.no_tokenizer = 1};
    cr_assert_eq(qb_model_load(path, &lo, &m, &err), want, "got '%s'", err.msg);
    cr_assert_null(m);
    cr_assert_not_null(strstr(err.msg, needle), "message '%s' lacks '%s'", err.msg, needle);
    cr_assert_not_null(strstr(err.msg, "tiny.gguf"), "message '%s' names no file", err.msg);
    cr_assert_null(strchr(err.msg, '\n'));
    free(path);
}

Test(gguf_model, tiny_file_loads_tied_with_hf_row_order)
{
    struct tiny_opts o = {0};
    char *path = write_tiny(&o);
    struct qb_model *m = NULL;
    struct qb_err err = {0};
    struct qb_model_load_opts lo = {.no_tokenizer = 1};
    cr_assert_eq(qb_model_load(path, &lo, &m, &err), QB_OK, "%s", err.msg);
    cr_assert_eq(m->cfg.tie_embeddings, 1);
    cr_assert_eq(m->lm_head.data, m->embed.data);
    cr_assert_eq(m->cfg.head_dim, THD);
    cr_assert_eq(m->cfg.rope_theta, 500000.0);
    cr_assert_eq(m->cfg.rms_eps, 1e-6f);
    cr_assert_eq(m->cfg.vocab, TVOCAB);
    cr_assert_eq(m->layers[0].lin[QB_LIN_Q].fmt, QB_WFMT_F32);
    const float *q = m->layers[0].lin[QB_LIN_Q].data, *k = m->layers[0].lin[QB_LIN_K].data;
    for (int64_t i = 0; i < THEADS * THD * TH; i++)
        cr_assert_eq(q[i], tiny_value("blk.0.attn_q.weight", i), "q element %lld", (long long)i);
    for (int64_t i = 0; i < TKV * THD * TH; i++)
        cr_assert_eq(k[i], tiny_value("blk.0.attn_k.weight", i), "k element %lld", (long long)i);
    qb_model_free(m);
    free(path);
}

Test(gguf_model, missing_tensor)
{
    struct tiny_opts o = {.skip = "blk.0.ffn_down.weight"};
    expect_load_error(&o, QB_ERR_FORMAT, "'blk.0.ffn_down.weight' is missing");
}

Test(gguf_model, wrong_shape)
{
    struct tiny_opts o = {.bad_shape = "blk.0.attn_k.weight"};
    expect_load_error(&o, QB_ERR_FORMAT, "'blk.0.attn_k.weight' has shape [32, 15]");
}

Test(gguf_model, missing_norm)
{
    struct tiny_opts o = {.skip = "output_norm.weight"};
    expect_load_error(&o, QB_ERR_FORMAT, "'output_norm.weight' is missing");
}

Test(gguf_model, other_architecture)
{
    struct tiny_opts o = {.arch = "gptneox"};
    expect_load_error(&o, QB_ERR_UNSUPPORTED, "gptneox");
}

Test(gguf_model, head_count_not_dividing)
{
    struct tiny_opts o = {.heads = 3};
    expect_load_error(&o, QB_ERR_FORMAT, "hyper-parameters");
}

Test(gguf_model, llama3_rope_freqs_unsupported)
{
    struct tiny_opts o = {.rope_freqs = 1};
    expect_load_error(&o, QB_ERR_UNSUPPORTED, "rope_freqs");
}

Test(gguf_model, not_a_gguf_file)
{
    char *path = qb_asprintf("%s/junk.gguf", work);
    FILE *f = fopen(path, "wb");
    fputs("this is not gguf", f);
    fclose(f);
    struct qb_model *m = NULL;
    struct qb_err err = {0};
    cr_assert_neq(qb_model_load(path, NULL, &m, &err), QB_OK);
    cr_assert_not_null(strstr(err.msg, "junk.gguf"), "%s", err.msg);
    free(path);
}

/* ---- QB_WFMT_GGML traits -------------------------------------------------------- */

Test(gguf_model, ggml_linear_dot_simd_matches_reference_and_dequant)
{
    static const int types[] = {QB_GGML_F16,  QB_GGML_Q8_0, QB_GGML_Q4_0, QB_GGML_Q2_K,
                                QB_GGML_Q3_K, QB_GGML_Q4_K, QB_GGML_Q5_K, QB_GGML_Q6_K,
                                QB_GGML_IQ4_NL};
    enum { ROWS = 8, COLS = 512 };
    static float w[ROWS * COLS], x[COLS], deq[ROWS * COLS];
    for (int i = 0; i < ROWS * COLS; i++)
        w[i] = tiny_value("w", i) * 0.1f;
    for (int i = 0; i < COLS; i++)
        x[i] = tiny_value("x", i);
    for (size_t t = 0; t < sizeof types / sizeof *types; t++) {
        struct qb_quant_params qp = {.ggml_type = types[t]};
        struct qb_linear lin;
        struct qb_err err = {0};
        cr_assert_eq(qb_linear_quantize(w, ROWS, COLS, QB_WFMT_GGML, &qp, "w", &lin, &err), QB_OK,
                     "%s", err.msg);
        cr_assert_eq(lin.data_bytes, ROWS * qb_ggml_row_bytes(types[t], COLS));
        const struct qb_wfmt_traits *tr = qb_wfmt_get(QB_WFMT_GGML);
        tr->dequant_rows(&lin, 0, ROWS, deq);
        for (int r = 0; r < ROWS; r++) {
            double ref_dot = 0, mag = 0;
            for (int c = 0; c < COLS; c++) {
                ref_dot += (double)deq[r * COLS + c] * x[c];
                mag += fabs((double)deq[r * COLS + c] * x[c]);
            }
            float simd = tr->vec_dot(&lin, r, x), ref = tr->vec_dot_ref(&lin, r, x);
            cr_assert_leq(fabs(simd - ref), QB_GGML_DOT_REL_TOL * mag + 1e-30,
                          "type %d row %d: simd %g ref %g", types[t], r, simd, ref);
            cr_assert_leq(fabs(ref - ref_dot), 1e-5 * mag, "type %d row %d: ref %g dequant %g",
                          types[t], r, ref, ref_dot);
        }
        qb_linear_release(&lin);
    }
}

Test(gguf_model, ggml_linear_rejects_rows_off_the_block)
{
    static float w[4 * 128];
    struct qb_quant_params qp = {.ggml_type = QB_GGML_Q4_K};
    struct qb_linear lin;
    struct qb_err err = {0};
    cr_assert_eq(qb_linear_quantize(w, 4, 128, QB_WFMT_GGML, &qp, "w", &lin, &err),
                 QB_ERR_UNSUPPORTED);
    cr_assert_not_null(strstr(err.msg, "block of 256"), "%s", err.msg);
}
