/*
 * test_compare.c - every RTN scheme on the demo model against the bf16
 * baseline: KLD > 0, |delta ppl| under a per-format bound, the packed size
 * the model really holds, the `compare --json` document, and the pp/tg speed
 * columns (speed-ups against the baseline's own timing, so 1.00 there;
 * --no-speed leaves them out).
 */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "compare.h"
#include "fileutil.h"
#include "qb_test_util.h"

struct bound {
    const char *scheme;
    double max_abs_dppl; /* on 2 chunks of the eval text (baseline ppl ~ 60) */
    double bits;         /* expected bits/weight of the decoder linears */
};

/* Bounds: 8-bit formats move ppl by well under 1 %, 4-bit ones by a few %,
 * W4A4 (activations quantized too) by more; measured values are about a third
 * of these. */
static const struct bound bounds[] = {
    {"fp16", 0.01, 16.0},      {"int8", 0.2, 8.104},      {"fp8", 0.5, 8.104},
    {"fp8-e5m2", 1.0, 8.104},  {"fp8-w8a8", 1.5, 8.104},  {"int4", 3.0, 4.25},
    {"int4-sym", 4.0, 4.25},   {"nf4", 3.0, 4.5},         {"nf4-dq", 3.0, 4.127},
    {"nvfp4", 3.0, 4.5},       {"mxfp4", 4.0, 4.25},      {"nvfp4-w4a4", 8.0, 4.5},
    {"mxfp4-w4a4", 12.0, 4.25},
};

static int32_t *demo_tokens(size_t *n)
{
    struct qb_model *m = NULL;
    struct qb_err err = {0};
    char *text = NULL;
    size_t len = 0;
    int32_t *ids = NULL;
    cr_assert_eq(qb_model_load(QB_DEMO_MODEL, NULL, &m, &err), QB_OK, "%s", err.msg);
    cr_assert_eq(qb_file_read_all(QB_EVAL_TEXT, 1 << 30, &text, &len, &err), QB_OK);
    cr_assert_eq(qb_eval_tokenize(m, text, len, &ids, n, &err), QB_OK, "%s", err.msg);
    free(text);
    qb_model_free(m);
    return ids;
}

Test(compare, every_rtn_scheme_against_baseline, .timeout = 900)
{
    size_t n = 0;
    int32_t *ids = demo_tokens(&n);
    struct qb_compare_opts o = {.model_dir = QB_DEMO_MODEL, .ids = ids, .n_ids = n};
    o.eval = (struct qb_eval_opts){512, 2, 0, QB_BACKEND_CPU};
    for (size_t i = 0; i < sizeof bounds / sizeof bounds[0]; i++)
        o.schemes[o.n_schemes++] = bounds[i].scheme;
    struct qb_compare_row *rows = NULL;
    int n_rows = 0;
    struct qb_err err = {0};
    cr_assert_eq(qb_compare_run(&o, NULL, &rows, &n_rows, &err), QB_OK, "%s", err.msg);
    cr_assert_eq(n_rows, 1 + (int)o.n_schemes);
    cr_assert_str_eq(rows[0].scheme, "bf16");
    cr_assert(rows[0].is_baseline);
    for (int r = 1; r < n_rows; r++) {
        const struct bound *b = &bounds[r - 1];
        const struct qb_compare_row *row = &rows[r];
        cr_assert_str_eq(row->scheme, b->scheme);
        cr_assert(row->r.has_kld);
        cr_assert_gt(row->r.kld_mean, 0.0, "%s: KLD %g", b->scheme, row->r.kld_mean);
        cr_assert(fabs(row->delta_ppl) < b->max_abs_dppl, "%s: delta ppl %g >= %g", b->scheme,
                  row->delta_ppl, b->max_abs_dppl);
        cr_assert(fabs(row->bits_per_weight - b->bits) < 0.01, "%s: %g bits/weight, want %g",
                  b->scheme, row->bits_per_weight, b->bits);
        cr_assert(row->r.top1_agreement > 0.5 && row->r.top1_agreement <= 1.0);
        cr_assert_eq(row->r.tokens_scored, rows[0].r.tokens_scored);
    }
    free(rows);
    free(ids);
}

Test(compare, int4_model_holds_its_packed_size)
{
    struct qb_model *m = NULL;
    struct qb_err err = {0};
    struct qb_model_load_opts lo = {.no_tokenizer = 1};
    cr_assert_eq(qb_model_load(QB_DEMO_MODEL, &lo, &m, &err), QB_OK, "%s", err.msg);
    struct qb_scheme s;
    cr_assert_eq(qb_scheme_parse("int4", 0, &s, &err), QB_OK);
    cr_assert_eq(qb_model_apply_scheme(m, &s, NULL, &err), QB_OK, "%s", err.msg);
    double params = (double)qb_model_decoder_params(m);
    double want = 4.25 * params / 8.0;
    double held = (double)qb_model_decoder_bytes(m);
    cr_assert(fabs(held - want) / want < 0.02, "int4 decoder bytes %.0f vs %.0f", held, want);
    for (int l = 0; l < m->cfg.n_layers; l++) {
        for (int k = 0; k < QB_LIN_COUNT; k++) {
            const struct qb_linear *lin = &m->layers[l].lin[k];
            cr_assert_eq(lin->fmt, QB_WFMT_INT4);
            cr_assert_eq(lin->data, lin->owned, "layer %d slot %d is not the packed buffer", l, k);
        }
    }
    qb_model_free(m);
}

Test(compare_cli, json_document_shape, .timeout = 600)
{
    const char *argv[] = {QB_BINARY, "compare", QB_DEMO_MODEL, "--data", QB_EVAL_TEXT,
                          "--chunks", "1", "--schemes", "bf16,int8,nf4", "--backend", "cpu",
                          "--json", NULL};
    struct qbt_run r;
    qbt_run(argv, NULL, 600, &r);
    cr_assert_eq(r.exit_code, 0, "stderr: %s", r.err);
    cJSON *doc = cJSON_Parse(r.out);
    cr_assert_not_null(doc, "stdout is not one JSON document: %s", r.out);
    cr_assert_str_eq(cJSON_GetObjectItem(doc, "baseline")->valuestring, "bf16");
    cJSON *rows = cJSON_GetObjectItem(doc, "rows");
    cr_assert_eq(cJSON_GetArraySize(rows), 3);
    static const char *const keys[] = {"scheme", "bits_per_weight", "weights_bytes", "ppl",
                                       "delta_ppl", "kld_mean", "top1_agreement"};
    for (int i = 0; i < 3; i++) {
        cJSON *row = cJSON_GetArrayItem(rows, i);
        for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
            cr_assert_not_null(cJSON_GetObjectItem(row, keys[k]), "row %d lacks %s", i, keys[k]);
    }
    cr_assert(cJSON_IsNull(cJSON_GetObjectItem(cJSON_GetArrayItem(rows, 0), "kld_mean")));
    cr_assert(cJSON_IsNumber(cJSON_GetObjectItem(cJSON_GetArrayItem(rows, 2), "kld_mean")));
    cJSON_Delete(doc);
    qbt_run_free(&r);
    const char *md[] = {QB_BINARY, "compare", QB_DEMO_MODEL, "--data", QB_EVAL_TEXT, "--chunks",
                        "1", "--schemes", "int8", "--md", NULL};
    qbt_run(md, NULL, 600, &r);
    cr_assert_eq(r.exit_code, 0, "stderr: %s", r.err);
    cr_assert(strstr(r.out, "| scheme |") != NULL, "%s", r.out);
    qbt_run_free(&r);
}

Test(eval_cli, scheme_json_fields, .timeout = 600)
{
    const char *argv[] = {QB_BINARY, "eval", QB_DEMO_MODEL, "--data", QB_EVAL_TEXT, "--chunks",
                          "1", "--scheme", "int4", "--json", NULL};
    struct qbt_run r;
    qbt_run(argv, NULL, 600, &r);
    cr_assert_eq(r.exit_code, 0, "stderr: %s", r.err);
    cJSON *doc = cJSON_Parse(r.out);
    cr_assert_not_null(doc, "%s", r.out);
    static const char *const keys[] = {"model", "scheme", "ppl", "ppl_stderr", "tokens_scored",
                                       "chunks", "ctx", "backend", "seconds", "ppl_baseline",
                                       "delta_ppl", "kld_mean", "top1_agreement",
                                       "bits_per_weight", "weights_bytes"};
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
        cr_assert_not_null(cJSON_GetObjectItem(doc, keys[k]), "missing %s", keys[k]);
    cr_assert_str_eq(cJSON_GetObjectItem(doc, "scheme")->valuestring, "int4");
    cr_assert_eq(cJSON_GetObjectItem(doc, "tokens_scored")->valuedouble, 255);
    cJSON_Delete(doc);
    qbt_run_free(&r);
}

/* ---- speed columns ------------------------------------------------------------------ */

/* Small tests so the suite runs in seconds: speed, not its size, is under test. */
#define SPEED_P "16"
#define SPEED_N "4"
#define SPEED_R "2"

struct fraction_watch {
    double last;
    int falls;   /* times the fraction went down: once per new run */
};

static void watch_fraction(void *ctx, const struct qb_progress *p)
{
    struct fraction_watch *w = ctx;
    struct qb_progress_snapshot s;
    qb_progress_read(p, &s);
    w->falls += s.fraction + 1e-12 < w->last;
    w->last = s.fraction;
}

Test(compare_speed, rows_carry_pp_tg_and_speedups, .timeout = 600)
{
    size_t n = 0;
    int32_t *ids = demo_tokens(&n);
    struct qb_compare_opts o = {.model_dir = QB_DEMO_MODEL, .ids = ids, .n_ids = n};
    o.eval = (struct qb_eval_opts){512, 1, 0, QB_BACKEND_CPU};
    o.speed = (struct qb_bench_opts){.p = 16, .n = 4, .r = 2};
    o.schemes[o.n_schemes++] = "int8";
    o.schemes[o.n_schemes++] = "int4";
    struct qb_progress *p = qb_progress_create();
    struct fraction_watch w = {0};
    qb_progress_begin(p, QB_JOB_COMPARE, "start");
    qb_progress_set_listener(p, watch_fraction, &w);
    struct qb_compare_row *rows = NULL;
    int n_rows = 0;
    struct qb_err err = {0};
    cr_assert_eq(qb_compare_run(&o, p, &rows, &n_rows, &err), QB_OK, "%s", err.msg);
    cr_assert_eq(n_rows, 3);
    /* each run's fraction goes 0..1 through its eval and then its speed test */
    cr_assert_eq(w.falls, n_rows - 1, "the fraction fell %d times within %d runs", w.falls,
                 n_rows);
    cr_assert_float_eq(w.last, 1.0, 1e-12);
    for (int i = 0; i < n_rows; i++) {
        const struct qb_compare_row *r = &rows[i];
        cr_assert(r->has_speed, "%s", r->scheme);
        cr_assert_gt(r->pp.mean, 0.0, "%s pp", r->scheme);
        cr_assert_gt(r->tg.mean, 0.0, "%s tg", r->scheme);
        cr_assert_eq(r->r.backend, QB_BACKEND_CPU);
        cr_assert_float_eq(r->pp_speedup, r->pp.mean / rows[0].pp.mean, 1e-12, "%s", r->scheme);
        cr_assert_float_eq(r->tg_speedup, r->tg.mean / rows[0].tg.mean, 1e-12, "%s", r->scheme);
    }
    cr_assert_eq(rows[0].pp_speedup, 1.0, "the baseline's speed-up is exactly 1");
    cr_assert_eq(rows[0].tg_speedup, 1.0);
    free(rows);

    /* the zero value measures nothing: no speed fields */
    o.speed = (struct qb_bench_opts){0};
    o.n_schemes = 1;
    cr_assert_eq(qb_compare_run(&o, NULL, &rows, &n_rows, &err), QB_OK, "%s", err.msg);
    for (int i = 0; i < n_rows; i++) {
        cr_assert_not(rows[i].has_speed);
        cr_assert(isnan(rows[i].pp_speedup) && isnan(rows[i].tg_speedup));
    }
    free(rows);
    qb_progress_set_listener(p, NULL, NULL);
    qb_progress_free(p);
    free(ids);
}

static void run_compare(const char *fmt, int no_speed, struct qbt_run *r)
{
    const char *argv[20] = {QB_BINARY, "compare", QB_DEMO_MODEL, "--data", QB_EVAL_TEXT,
                            "--chunks", "1", "--schemes", "bf16,int8,int4", "--backend", "cpu",
                            "-p", SPEED_P, "--tg", SPEED_N, "--reps", SPEED_R};
    int n = 17;
    if (fmt)
        argv[n++] = fmt;
    if (no_speed)
        argv[n++] = "--no-speed";
    argv[n] = NULL;
    qbt_run(argv, NULL, 600, r);
    cr_assert_eq(r->exit_code, 0, "stderr: %s", r->err);
}

static const char *const speed_keys[] = {"pp_tps_mean", "pp_tps_stddev", "tg_tps_mean",
                                         "tg_tps_stddev", "pp_speedup", "tg_speedup"};

Test(compare_speed, json_has_speed_fields_and_baseline_speedup_one, .timeout = 600)
{
    struct qbt_run r;
    run_compare("--json", 0, &r);
    cJSON *doc = cJSON_Parse(r.out);
    cr_assert_not_null(doc, "stdout is not one JSON document: %s", r.out);
    cr_assert_eq(cJSON_GetObjectItem(doc, "n_prompt")->valuedouble, 16);
    cr_assert_eq(cJSON_GetObjectItem(doc, "n_gen")->valuedouble, 4);
    cr_assert_eq(cJSON_GetObjectItem(doc, "repetitions")->valuedouble, 2);
    cJSON *rows = cJSON_GetObjectItem(doc, "rows");
    cr_assert_eq(cJSON_GetArraySize(rows), 3);
    double base_pp = 0, base_tg = 0;
    for (int i = 0; i < 3; i++) {
        cJSON *row = cJSON_GetArrayItem(rows, i);
        for (size_t k = 0; k < sizeof speed_keys / sizeof speed_keys[0]; k++)
            cr_assert(cJSON_IsNumber(cJSON_GetObjectItem(row, speed_keys[k])), "row %d lacks %s",
                      i, speed_keys[k]);
        double pp = cJSON_GetObjectItem(row, "pp_tps_mean")->valuedouble;
        double tg = cJSON_GetObjectItem(row, "tg_tps_mean")->valuedouble;
        cr_assert(pp > 0 && tg > 0, "row %d: pp %g tg %g", i, pp, tg);
        if (i == 0) {
            base_pp = pp;
            base_tg = tg;
        }
        cr_assert_float_eq(cJSON_GetObjectItem(row, "pp_speedup")->valuedouble, pp / base_pp,
                           1e-9);
        cr_assert_float_eq(cJSON_GetObjectItem(row, "tg_speedup")->valuedouble, tg / base_tg,
                           1e-9);
    }
    cJSON *base = cJSON_GetArrayItem(rows, 0);
    cr_assert_str_eq(cJSON_GetObjectItem(base, "scheme")->valuestring, "bf16");
    cr_assert_eq(cJSON_GetObjectItem(base, "pp_speedup")->valuedouble, 1.0);
    cr_assert_eq(cJSON_GetObjectItem(base, "tg_speedup")->valuedouble, 1.0);
    cJSON_Delete(doc);
    qbt_run_free(&r);
}

/* The header's columns and each row's cells, split on runs of spaces. */
static int split_cols(char *line, char **cols, int max)
{
    int n = 0;
    for (char *t = strtok(line, " "); t && n < max; t = strtok(NULL, " "))
        cols[n++] = t;
    return n;
}

Test(compare_speed, text_table_has_speed_columns, .timeout = 600)
{
    struct qbt_run r;
    run_compare(NULL, 0, &r);
    char *head = strstr(r.out, "\nscheme ");
    cr_assert_not_null(head, "%s", r.out);
    cr_assert(strstr(r.out, "speed: pp16 tg4, mean of 2 runs"), "%s", r.out);
    /* header words: pp t/s and tg t/s are two words each, pp x and tg x too */
    char *lines[8] = {0};
    int n_lines = 0;
    for (char *l = strtok(head + 1, "\n"); l && n_lines < 8; l = strtok(NULL, "\n"))
        lines[n_lines++] = l;
    cr_assert_geq(n_lines, 4, "%s", r.out);
    cr_assert(strstr(lines[0], "pp t/s") && strstr(lines[0], "tg t/s") &&
              strstr(lines[0], "pp x") && strstr(lines[0], "tg x"), "header: %s", lines[0]);
    cr_assert_lt(strstr(lines[0], "top-1") - lines[0], strstr(lines[0], "pp t/s") - lines[0]);
    char *cols[16];
    char base_line[512];
    snprintf(base_line, sizeof base_line, "%s", lines[1]);
    int nc = split_cols(base_line, cols, 16);
    /* scheme bits size ppl dppl KLD top-1 pp tg ppx tgx seconds */
    cr_assert_eq(nc, 12, "baseline row: %s", lines[1]);
    cr_assert_str_eq(cols[0], "bf16");
    cr_assert_str_eq(cols[9], "1.00x");
    cr_assert_str_eq(cols[10], "1.00x");
    for (int i = 1; i < 4; i++) /* every row as wide as the header: columns line up */
        cr_assert_eq(strlen(lines[i]), strlen(lines[0]), "row %d: '%s' vs '%s'", i, lines[i],
                     lines[0]);
    qbt_run_free(&r);
}

Test(compare_speed, no_speed_omits_the_columns_and_fields, .timeout = 600)
{
    struct qbt_run r;
    run_compare("--json", 1, &r);
    cJSON *doc = cJSON_Parse(r.out);
    cr_assert_not_null(doc, "%s", r.out);
    cr_assert_null(cJSON_GetObjectItem(doc, "n_prompt"));
    cJSON *rows = cJSON_GetObjectItem(doc, "rows");
    cr_assert_eq(cJSON_GetArraySize(rows), 3);
    for (int i = 0; i < 3; i++) {
        for (size_t k = 0; k < sizeof speed_keys / sizeof speed_keys[0]; k++)
            cr_assert_null(cJSON_GetObjectItem(cJSON_GetArrayItem(rows, i), speed_keys[k]),
                           "row %d has %s", i, speed_keys[k]);
    }
    cJSON_Delete(doc);
    qbt_run_free(&r);
    run_compare("--csv", 1, &r);
    static const char csv_head[] = "scheme,bits/w,size MiB,ppl,dppl,KLD,top-1,seconds\n";
    cr_assert(strncmp(r.out, csv_head, strlen(csv_head)) == 0, "%s", r.out);
    qbt_run_free(&r);
    run_compare("--md", 0, &r);
    cr_assert(strstr(r.out, "| top-1 | pp t/s | tg t/s | pp x | tg x | seconds |"), "%s", r.out);
    qbt_run_free(&r);
}

Test(compare_speed, speed_flags_are_compare_only, .timeout = 60)
{
    const char *eval[] = {QB_BINARY, "eval", QB_DEMO_MODEL, "--data", QB_EVAL_TEXT, "--pp", "8",
                          NULL};
    const char *both0[] = {QB_BINARY, "compare", QB_DEMO_MODEL, "--data", QB_EVAL_TEXT, "-p", "0",
                           "-n", "0", NULL};
    struct qbt_run r;
    qbt_run(eval, NULL, 60, &r);
    cr_assert_eq(r.exit_code, 2, "%s", r.err);
    cr_assert(strstr(r.err, "--pp belongs to compare"), "%s", r.err);
    qbt_run_free(&r);
    qbt_run(both0, NULL, 60, &r);
    cr_assert_eq(r.exit_code, 2, "%s", r.err);
    cr_assert(strstr(r.err, "--no-speed"), "%s", r.err);
    qbt_run_free(&r);
}
