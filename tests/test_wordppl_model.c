/*
 * test_wordppl_model.c - word perplexity on the demo model against independent
 * computations with our own engine (no PyTorch here):
 *
 *  - decode path: every window replayed one token at a time (n = 1 forwards) with
 *    the log-softmax computed here, token by token, against the module's batched,
 *    piece-wise prefill with logits only at scored positions;
 *  - the plain eval path: qb_eval_run (llama-perplexity chunks) over
 *    [BOS] + the first window's tokens scores the second half of that window;
 *    its NLL sum must equal the module's log-probs of the same tokens;
 *  - aggregation: word/byte perplexity and bits per byte recomputed from the
 *    reference log-likelihoods and the documents' words and bytes;
 *  - the CLI: `eval --word-ppl --json` prints the same numbers and the fields.
 */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "qb_test_util.h"
#include "wordppl.h"

#define MAX_LEN 48

static struct qb_model *model;

static void load_model(void)
{
    struct qb_err err = {0};
    cr_assert_eq(qb_model_load(QB_DEMO_MODEL, NULL, &model, &err), QB_OK, "%s", err.msg);
}

static void free_model(void)
{
    qb_model_free(model);
}

/* Three documents of a few paragraphs of the eval text, "\n\n\n"-separated. */
static char *three_docs_text(void)
{
    size_t len = 0;
    char *all = qbt_read_file(QB_EVAL_TEXT, &len);
    cr_assert_not_null(all);
    char *out = calloc(len + 16, 1);
    const char *p = all;
    for (int doc = 0; doc < 3; doc++) {
        for (int para = 0; para < 2; para++) {
            const char *e = strstr(p, "\n\n");
            cr_assert_not_null(e);
            strncat(out, p, (size_t)(e - p));
            strcat(out, para ? "" : "\n\n");
            p = e + 2;
            while (*p == '\n')
                p++;
        }
        strcat(out, doc < 2 ? "\n\n\n" : "");
    }
    free(all);
    return out;
}

/* The window's inputs fed one token at a time; log p of each scored token. */
static double decode_window(struct qb_engine *e, const int32_t *t, int32_t prefix,
                            struct qb_wordppl_window w, float *ref_lp)
{
    int vocab = model->cfg.vocab;
    float *logits = malloc(sizeof(float) * (size_t)vocab);
    struct qb_err err = {0};
    double sum = 0;
    qb_engine_reset(e);
    for (int k = 0; k < w.in_len; k++) {
        int32_t id = w.in_start + k < 0 ? prefix : t[w.in_start + k];
        cr_assert_eq(qb_engine_forward(e, &id, 1, 0, logits, &err), QB_OK, "%s", err.msg);
        if (k < w.in_len - w.pred_len)
            continue;
        int64_t target = w.in_start + k + 1;
        double mx = logits[0], z = 0;
        for (int v = 1; v < vocab; v++)
            mx = logits[v] > mx ? logits[v] : mx;
        for (int v = 0; v < vocab; v++)
            z += exp(logits[v] - mx);
        double lp = logits[t[target]] - mx - log(z);
        ref_lp[target] = (float)lp;
        sum += lp;
    }
    free(logits);
    return sum;
}

struct tokdoc {
    int32_t *ids;
    size_t n;
};

static struct tokdoc tokenize(const char *text, size_t len)
{
    struct qb_err err = {0};
    char *detok = NULL;
    size_t dl = 0;
    struct tokdoc d;
    cr_assert_eq(qb_wordppl_detokenize(text, len, &detok, &dl, &err), QB_OK);
    cr_assert_eq(qb_tok_encode(model->tok, detok, dl, 0, &d.ids, &d.n, &err), QB_OK);
    free(detok);
    return d;
}

Test(wordppl_model, rolling_loglik_equals_decode_path_and_aggregates, .init = load_model,
     .fini = free_model)
{
    struct qb_err err = {0};
    char *text = three_docs_text();
    struct qb_wordppl_docs docs;
    cr_assert_eq(qb_wordppl_docs_from_text(text, strlen(text), &docs, &err), QB_OK);
    cr_assert_eq(docs.n, 3);
    struct qb_engine *e = NULL;
    struct qb_engine_opts eo = {MAX_LEN, 2};
    cr_assert_eq(qb_engine_create_cpu(model, &eo, &e, &err), QB_OK, "%s", err.msg);
    int32_t prefix = qb_wordppl_prefix_token(model);
    cr_assert_eq(prefix, 8190, "the demo model's BOS");
    double ref_total = 0;
    int64_t words = 0, bytes = 0;
    for (size_t d = 0; d < docs.n; d++) {
        struct tokdoc t = tokenize(docs.text[d], docs.len[d]);
        cr_assert_gt(t.n, MAX_LEN, "doc %zu needs several windows (%zu tokens)", d, t.n);
        float *lp = calloc(t.n, sizeof *lp), *ref = calloc(t.n, sizeof *ref);
        double ll = 0, ref_ll = 0;
        cr_assert_eq(qb_wordppl_score_tokens(e, t.ids, (int64_t)t.n, prefix, MAX_LEN, &ll, lp,
                                             &err), QB_OK, "%s", err.msg);
        int64_t count = qb_wordppl_window_count((int64_t)t.n, MAX_LEN);
        for (int64_t i = 0; i < count; i++)
            ref_ll += decode_window(e, t.ids, prefix,
                                    qb_wordppl_window_get((int64_t)t.n, MAX_LEN, i), ref);
        for (size_t i = 0; i < t.n; i++)
            cr_assert(fabsf(lp[i] - ref[i]) < 2e-3f, "doc %zu token %zu: %g vs decode %g", d,
                      i, lp[i], ref[i]);
        cr_assert(fabs(ll - ref_ll) < 1e-4 * fabs(ref_ll), "doc %zu: %f vs %f", d, ll, ref_ll);
        ref_total += ref_ll;
        words += qb_wordppl_count_words(docs.text[d], docs.len[d]);
        bytes += (int64_t)docs.len[d];
        free(lp);
        free(ref);
        free(t.ids);
    }
    qb_engine_free(e);
    struct qb_wordppl_opts o = {.max_length = MAX_LEN, .n_threads = 2};
    struct qb_wordppl_result r;
    cr_assert_eq(qb_wordppl_run(model, &docs, &o, NULL, &r, &err), QB_OK, "%s", err.msg);
    cr_assert_eq(r.documents, 3);
    cr_assert_eq(r.words, words);
    cr_assert_eq(r.bytes, bytes);
    cr_assert_eq(r.max_length, MAX_LEN);
    double want_word = exp(-ref_total / (double)words);
    double want_byte = exp(-ref_total / (double)bytes);
    double want_bpb = -ref_total / (double)bytes / log(2.0);
    cr_assert(fabs(r.word_perplexity / want_word - 1) < 1e-4, "%f vs %f", r.word_perplexity,
              want_word);
    cr_assert(fabs(r.byte_perplexity / want_byte - 1) < 1e-4);
    cr_assert(fabs(r.bits_per_byte / want_bpb - 1) < 1e-4);
    /* sanity: a trained-ish model on English prose is far better than uniform */
    cr_assert_lt(-ref_total / (double)r.tokens, log((double)model->cfg.vocab));
    qb_wordppl_docs_clear(&docs);
    free(text);
}

Test(wordppl_model, first_window_second_half_equals_eval_path, .init = load_model,
     .fini = free_model)
{
    struct qb_err err = {0};
    char *text = three_docs_text();
    struct tokdoc t = tokenize(text, strlen(text));
    int L = 64;
    cr_assert_gt(t.n, (size_t)L);
    /* module: the first window is [BOS] + t[0..L-2] scoring t[0..L-1] */
    struct qb_engine *e = NULL;
    struct qb_engine_opts eo = {L, 2};
    cr_assert_eq(qb_engine_create_cpu(model, &eo, &e, &err), QB_OK);
    float *lp = calloc(t.n, sizeof *lp);
    double ll = 0;
    cr_assert_eq(qb_wordppl_score_tokens(e, t.ids, L, 8190, L, &ll, lp, &err), QB_OK);
    /* eval: one chunk of ctx = L + 1 over [BOS] + t[0..L-1] scores t[(L+1)/2 .. L-1] */
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)(L + 1));
    ids[0] = 8190;
    memcpy(ids + 1, t.ids, sizeof(int32_t) * (size_t)L);
    struct qb_eval_opts opts = {L + 1, 1, 2, QB_BACKEND_CPU};
    struct qb_eval_result r;
    cr_assert_eq(qb_eval_run(model, ids, (size_t)L + 1, &opts, NULL, NULL, NULL, &r, &err),
                 QB_OK, "%s", err.msg);
    int first = (L + 1) / 2;
    cr_assert_eq(r.tokens_scored, L - first);
    double sum = 0;
    for (int i = first; i < L; i++)
        sum += lp[i];
    double eval_sum = -r.nll_mean * (double)r.tokens_scored;
    cr_assert(fabs(sum - eval_sum) < 1e-4 * fabs(eval_sum), "%f vs eval %f", sum, eval_sum);
    qb_engine_free(e);
    free(ids);
    free(lp);
    free(t.ids);
    free(text);
}

Test(wordppl_model, cli_json_fields_and_errors)
{
    char *dir = qbt_tempdir();
    char *text = three_docs_text();
    qbt_write_file(dir, "docs.txt", text, strlen(text));
    qbt_write_file(dir, "empty.txt", "\n\n\n", 3);
    char data[4096], empty[4096];
    snprintf(data, sizeof data, "%s/docs.txt", dir);
    snprintf(empty, sizeof empty, "%s/empty.txt", dir);
    const char *argv[] = {QB_BINARY, "eval", QB_DEMO_MODEL, "--data", data, "--word-ppl",
                          "--ctx", "48", "--threads", "2", "--json", NULL};
    struct qbt_run run;
    qbt_run(argv, NULL, 300, &run);
    cr_assert_eq(run.exit_code, 0, "%s", run.err);
    cJSON *j = cJSON_Parse(run.out);
    cr_assert_not_null(j, "stdout is one JSON document: %s", run.out);
    static const char *const fields[] = {"word_perplexity", "byte_perplexity", "bits_per_byte",
                                         "documents", "words", "bytes", "max_length"};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
        cr_assert(cJSON_IsNumber(cJSON_GetObjectItem(j, fields[i])), "%s", fields[i]);
    cr_assert_eq(cJSON_GetObjectItem(j, "documents")->valueint, 3);
    cr_assert_eq(cJSON_GetObjectItem(j, "max_length")->valueint, 48);
    double wp = cJSON_GetObjectItem(j, "word_perplexity")->valuedouble;
    double bpb = cJSON_GetObjectItem(j, "bits_per_byte")->valuedouble;
    double bp = cJSON_GetObjectItem(j, "byte_perplexity")->valuedouble;
    cr_assert(fabs(log2(bp) - bpb) < 1e-9, "bits_per_byte = log2(byte_perplexity)");
    cr_assert(wp > 1 && isfinite(wp));
    cJSON_Delete(j);
    qbt_run_free(&run);

    const char *compare[] = {QB_BINARY, "compare", QB_DEMO_MODEL, "--data", data, "--word-ppl",
                             NULL};
    qbt_run(compare, NULL, 60, &run);
    cr_assert_eq(run.exit_code, 2, "--word-ppl is eval's: %s", run.err);
    qbt_run_free(&run);
    const char *none[] = {QB_BINARY, "eval", QB_DEMO_MODEL, "--data", empty, "--word-ppl", NULL};
    qbt_run(none, NULL, 60, &run);
    cr_assert_eq(run.exit_code, 2, "%s", run.err);
    cr_assert(strstr(run.err, "no documents") != NULL, "%s", run.err);
    qbt_run_free(&run);
    free(text);
    qbt_rmtree(dir);
    free(dir);
}

/* `--data wikitext2` offline: rows shaped like Salesforce/wikitext in our data-set
 * cache; the CLI must rebuild the same pages and print what qb_wordppl_run gives. */
Test(wordppl_model, cli_wikitext2_rows_from_the_cache, .init = load_model, .fini = free_model)
{
    static const char *const rows[] = {
        "", " = First Page = \n", "", " The first page has a sentence , and another one . \n",
        "", " = = A section = = \n", "", " More text about ( something ) here . \n",
        "", " = Second Page = \n", "", " It cost 1 @,@ 000 dollars in the 1990s . \n", "",
    };
    size_t n_rows = sizeof rows / sizeof rows[0];
    char *dir = qbt_tempdir();
    cJSON *cache = cJSON_CreateObject();
    cJSON_AddStringToObject(cache, "dataset", "Salesforce/wikitext");
    cJSON_AddStringToObject(cache, "config", "wikitext-2-raw-v1");
    cJSON_AddStringToObject(cache, "split", "test");
    cJSON_AddStringToObject(cache, "column", "text");
    cJSON_AddItemToObject(cache, "rows", cJSON_CreateStringArray(rows, (int)n_rows));
    char *json = cJSON_PrintUnformatted(cache);
    char cmd[8192];
    snprintf(cmd, sizeof cmd, "mkdir -p '%s/cache/quantbench/datasets'", dir);
    cr_assert_eq(system(cmd), 0);
    snprintf(cmd, sizeof cmd, "%s/cache/quantbench/datasets", dir);
    qbt_write_file(cmd, "wikitext2-test.json", json, strlen(json));
    snprintf(cmd, sizeof cmd, "HOME='%s' XDG_CACHE_HOME='%s/cache' HF_HUB_OFFLINE=1 '%s' eval "
             "'%s' --data wikitext2 --word-ppl --ctx 16 --threads 2 --json", dir, dir,
             QB_BINARY, QB_DEMO_MODEL);
    const char *argv[] = {"/bin/sh", "-c", cmd, NULL};
    struct qbt_run run;
    qbt_run(argv, NULL, 120, &run);
    cr_assert_eq(run.exit_code, 0, "%s", run.err);
    cJSON *j = cJSON_Parse(run.out);
    cr_assert_not_null(j, "%s", run.out);

    struct qb_err err = {0};
    struct qb_wordppl_docs docs;
    cr_assert_eq(qb_wordppl_docs_from_rows(rows, n_rows, &docs, &err), QB_OK);
    cr_assert_eq(docs.n, 2);
    struct qb_wordppl_opts o = {.max_length = 16, .n_threads = 2};
    struct qb_wordppl_result r;
    cr_assert_eq(qb_wordppl_run(model, &docs, &o, NULL, &r, &err), QB_OK, "%s", err.msg);
    cr_assert_eq(cJSON_GetObjectItem(j, "documents")->valueint, 2);
    cr_assert_eq(cJSON_GetObjectItem(j, "words")->valuedouble, (double)r.words);
    cr_assert_eq(cJSON_GetObjectItem(j, "bytes")->valuedouble, (double)r.bytes);
    double wp = cJSON_GetObjectItem(j, "word_perplexity")->valuedouble;
    cr_assert(fabs(wp / r.word_perplexity - 1) < 1e-6, "%f vs %f", wp, r.word_perplexity);
    qb_wordppl_docs_clear(&docs);
    cJSON_Delete(j);
    cJSON_Delete(cache);
    free(json);
    qbt_run_free(&run);
    qbt_rmtree(dir);
    free(dir);
}
