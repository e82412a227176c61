/*
 * test_engine.c - the CPU engine against the figures Hugging Face
 * transformers computed for the demo model (tests/data/ref-llama-10m.reference.json):
 * first token ids, top-10 logits at four positions of chunk 0, perplexity over
 * 8 chunks and over all chunks (within 0.2 %); KV-cache decode against
 * whole-chunk prefill; and qb_engine_create's backend choice.
 */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "eval.h"
#include "fileutil.h"
#include "kernels/qb_cuda.h"
#include "qb_test_util.h"

/* transformers' perplexity vs ours: different summation order and fp32 kernels */
#define PPL_REL_TOL 0.002
/* logits are compared after rounding to 5 decimals in the reference file */
#define LOGIT_ABS_TOL 2e-3
/* decode (one token at a time) vs prefill (whole chunk) */
#define DECODE_ABS_TOL 1e-3

struct fixture {
    struct qb_model *m;
    cJSON *ref;
    int32_t *ids;
    size_t n_ids;
};

static void load_fixture(struct fixture *f)
{
    struct qb_err err = {0};
    cr_assert_eq(qb_model_load(QB_DEMO_MODEL, NULL, &f->m, &err), QB_OK, "%s", err.msg);
    char *json = qbt_read_file(QB_REFERENCE_JSON, NULL);
    f->ref = cJSON_Parse(json);
    free(json);
    cr_assert_not_null(f->ref);
    size_t len = 0;
    char *text = NULL;
    cr_assert_eq(qb_file_read_all(QB_EVAL_TEXT, 1 << 30, &text, &len, &err), QB_OK);
    cr_assert_eq(qb_eval_tokenize(f->m, text, len, &f->ids, &f->n_ids, &err), QB_OK, "%s",
                 err.msg);
    free(text);
}

static void free_fixture(struct fixture *f)
{
    qb_model_free(f->m);
    cJSON_Delete(f->ref);
    free(f->ids);
}

static double ref_num(const cJSON *ref, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(ref, key)->valuedouble;
}

Test(engine, token_ids_match_reference)
{
    struct fixture f;
    load_fixture(&f);
    cr_assert_eq((double)f.n_ids, ref_num(f.ref, "eval_tokens_with_bos"));
    const cJSON *head = cJSON_GetObjectItemCaseSensitive(f.ref, "eval_head_ids");
    int i = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, head)
    {
        cr_assert_eq(f.ids[i], (int32_t)it->valuedouble, "id %d: %d vs %d", i, f.ids[i],
                     (int)it->valuedouble);
        i++;
    }
    cr_assert_gt(i, 100);
    free_fixture(&f);
}

static void check_position(const float *logits, int vocab, const cJSON *want, const char *pos)
{
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(want, "top10_ids");
    const cJSON *vals = cJSON_GetObjectItemCaseSensitive(want, "top10_vals");
    int used[10] = {0};
    for (int k = 0; k < 10; k++) {
        int best = -1;
        for (int v = 0; v < vocab; v++) {
            int taken = 0;
            for (int j = 0; j < k; j++)
                taken |= used[j] == v;
            if (!taken && (best < 0 || logits[v] > logits[best]))
                best = v;
        }
        used[k] = best;
        int want_id = (int)cJSON_GetArrayItem(ids, k)->valuedouble;
        double want_val = cJSON_GetArrayItem(vals, k)->valuedouble;
        cr_assert_eq(best, want_id, "position %s rank %d: id %d, want %d", pos, k, best, want_id);
        cr_assert(fabs(logits[best] - want_val) < LOGIT_ABS_TOL, "position %s rank %d: %f vs %f",
                  pos, k, logits[best], want_val);
    }
    double mx = logits[used[0]], sum = 0;
    for (int v = 0; v < vocab; v++)
        sum += exp(logits[v] - mx);
    double lse = mx + log(sum);
    double want_lse = cJSON_GetObjectItemCaseSensitive(want, "logsumexp")->valuedouble;
    cr_assert(fabs(lse - want_lse) < LOGIT_ABS_TOL, "logsumexp %f vs %f", lse, want_lse);
}

Test(engine, chunk0_top10_logits_match_reference)
{
    struct fixture f;
    load_fixture(&f);
    struct qb_engine *e = NULL;
    struct qb_err err = {0};
    struct qb_engine_opts o = {512, 0};
    cr_assert_eq(qb_engine_create_cpu(f.m, &o, &e, &err), QB_OK, "%s", err.msg);
    int vocab = f.m->cfg.vocab;
    float *logits = malloc(sizeof(float) * 512 * (size_t)vocab);
    cr_assert_eq(qb_engine_forward(e, f.ids, 512, 0, logits, &err), QB_OK, "%s", err.msg);
    const cJSON *positions = cJSON_GetObjectItemCaseSensitive(f.ref, "chunk0_logits");
    const cJSON *it;
    int checked = 0;
    cJSON_ArrayForEach(it, positions)
    {
        int pos = atoi(it->string);
        check_position(logits + (size_t)pos * vocab, vocab, it, it->string);
        checked++;
    }
    cr_assert_eq(checked, 4);
    free(logits);
    qb_engine_free(e);
    free_fixture(&f);
}

Test(engine, decode_with_kv_cache_matches_prefill)
{
    struct fixture f;
    load_fixture(&f);
    struct qb_engine *e = NULL;
    struct qb_err err = {0};
    struct qb_engine_opts o = {64, 0};
    cr_assert_eq(qb_engine_create_cpu(f.m, &o, &e, &err), QB_OK, "%s", err.msg);
    int vocab = f.m->cfg.vocab, n = 40;
    float *full = malloc(sizeof(float) * n * (size_t)vocab);
    float *step = malloc(sizeof(float) * (size_t)vocab);
    cr_assert_eq(qb_engine_forward(e, f.ids, n, 0, full, &err), QB_OK);
    qb_engine_reset(e);
    cr_assert_eq(qb_engine_forward(e, f.ids, 20, 20, NULL, &err), QB_OK);
    for (int t = 20; t < n; t++) {
        cr_assert_eq(qb_engine_forward(e, f.ids + t, 1, 0, step, &err), QB_OK, "%s", err.msg);
        for (int v = 0; v < vocab; v++)
            cr_assert(fabsf(step[v] - full[(size_t)t * vocab + v]) < DECODE_ABS_TOL,
                      "pos %d vocab %d: %f vs %f", t, v, step[v], full[(size_t)t * vocab + v]);
    }
    cr_assert_neq(qb_engine_forward(e, f.ids, 64, 0, NULL, &err), QB_OK); /* over capacity */
    free(full);
    free(step);
    qb_engine_free(e);
    free_fixture(&f);
}

static void check_ppl(int chunks, const char *ppl_key, const char *count_key)
{
    struct fixture f;
    load_fixture(&f);
    struct qb_eval_opts o = {512, chunks, 0, QB_BACKEND_CPU};
    struct qb_eval_result r;
    struct qb_err err = {0};
    cr_assert_eq(qb_eval_run(f.m, f.ids, f.n_ids, &o, NULL, NULL, NULL, &r, &err), QB_OK, "%s",
                 err.msg);
    double want = ref_num(f.ref, ppl_key);
    cr_assert(fabs(r.ppl - want) / want < PPL_REL_TOL, "ppl %f vs reference %f", r.ppl, want);
    cr_assert_eq((double)r.tokens_scored, ref_num(f.ref, count_key));
    free_fixture(&f);
}

Test(eval, ppl_first_8_chunks_matches_transformers)
{
    check_ppl(8, "ppl_first_8_chunks", "scored_tokens_first_8_chunks");
}

Test(eval, ppl_all_chunks_matches_transformers, .timeout = 900)
{
    check_ppl(0, "ppl_all_chunks", "scored_tokens_all_chunks");
}

/* qb_engine_create: the backend choice and what it resolves to. Without a GPU
 * (this build or this machine) auto is the CPU; with one, auto runs a format
 * the GPU has no kernels for on the CPU reference and says so in the log. */
Test(engine, create_resolves_the_backend_choice)
{
    struct qb_model *m = NULL;
    struct qb_err err = {0};
    struct qb_model_load_opts lo = {.no_tokenizer = 1};
    struct qb_engine_opts o = {16, 1};
    struct qb_engine *e = NULL;
    enum qb_backend used = QB_BACKEND_AUTO, b;
    cr_assert_eq(qb_model_load(QB_DEMO_MODEL, &lo, &m, &err), QB_OK, "%s", err.msg);
    cr_assert_eq(qb_engine_create(m, QB_BACKEND_CPU, &o, NULL, &used, &e, &err), QB_OK);
    cr_assert_eq(used, QB_BACKEND_CPU);
    cr_assert_str_eq(e->ops->name, "cpu");
    qb_engine_free(e);
    if (!qb_cuda_available()) {
        cr_assert_eq(qb_engine_create(m, QB_BACKEND_CUDA, &o, NULL, &used, &e, &err),
                     QB_ERR_NO_DEVICE);
        cr_assert_null(e);
        cr_assert_eq(used, QB_BACKEND_CUDA);
    }
    struct qb_scheme s;
    cr_assert_eq(qb_scheme_parse("nvfp4-w4a4", 0, &s, &err), QB_OK);
    cr_assert_eq(qb_model_apply_scheme(m, &s, NULL, &err), QB_OK, "%s", err.msg);
    struct qb_progress *p = qb_progress_create();
    qb_progress_begin(p, QB_JOB_EVAL, "start");
    cr_assert_eq(qb_engine_create(m, QB_BACKEND_AUTO, &o, p, &used, &e, &err), QB_OK, "%s",
                 err.msg);
    struct qb_progress_snapshot snap;
    qb_progress_read(p, &snap);
    int gpu_runs_it = qb_cuda_available() && qb_cuda_supports(s.fmt, s.qp.act);
    cr_assert_eq(used, gpu_runs_it ? QB_BACKEND_CUDA : QB_BACKEND_CPU);
    cr_assert_str_eq(e->ops->name, qb_backend_name(used));
    int fell_back = qb_cuda_available() && !gpu_runs_it;
    cr_assert_eq(snap.n_log, fell_back, "a notice only when the GPU was passed over");
    if (fell_back)
        cr_assert(strstr(snap.log[0], "no GPU kernels for nvfp4"), "%s", snap.log[0]);
    qb_engine_free(e);
    qb_progress_free(p);
    /* the names parse back */
    for (int i = QB_BACKEND_AUTO; i <= QB_BACKEND_CUDA; i++) {
        cr_assert_eq(qb_backend_parse(qb_backend_name((enum qb_backend)i), &b, &err), QB_OK);
        cr_assert_eq(b, (enum qb_backend)i);
    }
    cr_assert_eq(qb_backend_parse("gpu", &b, &err), QB_ERR_USAGE);
    qb_model_free(m);
}
