/*
 * cli_eval.c - `quantbench eval` and `quantbench compare`.
 *
 * eval: perplexity of MODEL on a text file, llama-perplexity style; with
 * --scheme, the model is quantized in memory and reported next to its
 * baseline (delta ppl, KLD, top-1 agreement, bits/weight, size).
 * compare: the side-by-side table over several schemes (text, JSON, CSV or
 * Markdown), with each row's llama-bench pp/tg tokens/s and speed-up over the
 * baseline unless --no-speed. Both run the shared runner in core/compare.c.
 */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_progress.h"
#include "compare.h"
#include "fileutil.h"
#include "gguf_model.h"
#include "hub/hub.h"
#include "job.h"
#include "wordppl.h"
#include "quant_pipeline.h"

#define DATA_MAX_BYTES ((size_t)1 << 30)
#define DEFAULT_SCHEMES "bf16,int8,int4,nf4,fp8,nvfp4,mxfp4"

enum out_format { OUT_TEXT, OUT_JSON, OUT_CSV, OUT_MD };

struct eval_args {
    const char *cmd;
    const char *model;       /* as given: a directory or ORG/NAME[@REV] */
    char *model_dir;         /* resolved directory (malloced) */
    const char *data;        /* a text file or a Hub data set name (wikitext2, c4, pileval) */
    int pull;                /* allow pulling MODEL from the Hub */
    int word_ppl, ctx_given; /* eval --word-ppl; --ctx given explicitly */
    const char *scheme;      /* eval */
    char *schemes;           /* compare (malloced copy) */
    long ctx, chunks, threads, group;
    long pp, tg, reps;       /* compare's speed test (bench's -p -n -r) */
    int no_speed;
    enum qb_backend backend;
    enum out_format format;
    enum qb_cli_progress_mode progress;
    struct qb_qpipe_opts calib;  /* calibrated schemes (gptq-*, awq-int4) */
};

static void eval_usage(void)
{
    printf("usage: quantbench eval MODEL --data FILE [options]\n\n"
           "Perplexity of MODEL on FILE the way llama-perplexity computes it: the text is\n"
           "tokenized once with BOS in front, cut into chunks of --ctx tokens whose first\n"
           "token is replaced by BOS, and the second half of each chunk is scored.\n\n"
           "  --data FILE|SET    text to evaluate (required): a file, or a Hub data set\n"
           "                     (wikitext2 = wikitext-2-raw-v1 test, c4, pileval)\n"
           "  --ctx N            tokens per chunk (default 512)\n"
           "  --chunks N         evaluate the first N chunks (default: all)\n"
           "  --pull             download MODEL from the Hub if it is not cached\n"
           "  --scheme S         quantize in memory first and compare with the baseline\n"
           "                     (%s)\n"
           "  --group N          group size for grouped schemes (32, 64 or 128)\n"
           "  --word-ppl         lm-eval-harness wikitext word perplexity instead: whole\n"
           "                     documents (wikitext2 pages, or FILE split at blank-blank\n"
           "                     lines \"\\n\\n\\n\"), rolling windows of the model's context\n"
           "                     (or --ctx), word/byte perplexity and bits per byte;\n"
           "                     --chunks N scores the first N documents\n"
           "  --calib FILE       calibration text for gptq-*/awq-int4 (plain text)\n"
           "  --calib-samples N  calibration windows (default 128)\n"
           "  --calib-seqlen L   tokens per window (default 2048 GPTQ, 512 AWQ)\n"
           "  --seed S           window draw seed (default 0)\n"
           "  --act-order --sym --static-groups --damp X   GPTQ options\n"
           "  --backend B        auto (default), cpu or cuda (also where GPTQ and the\n"
           "                     AWQ search calibrate)\n"
           "  --threads N        CPU threads (default: all cores)\n"
           "  --json             print one JSON object on stdout\n"
           "  --progress-json    progress as JSON lines on stderr\n"
           "  -h, --help         this help\n\n"
           "MODEL is a Hugging Face checkpoint directory (config.json, tokenizer.json,\n"
           "safetensors), ORG/NAME[@REV] from the Hugging Face cache, or a llama GGUF\n"
           "file (FILE.gguf, ours or llama.cpp's).\n", qb_scheme_names());
}

static void compare_usage(void)
{
    printf("usage: quantbench compare MODEL --data FILE [--schemes LIST] [options]\n\n"
           "Evaluate the baseline once, then each scheme quantized in memory, and print\n"
           "bits/weight, size, perplexity, delta ppl, KL divergence and top-1 agreement\n"
           "side by side, with prefill (pp) and decode (tg) tokens/s measured like\n"
           "`quantbench bench` (mean of -r runs after a warm-up, on the backend the\n"
           "row was evaluated on) and their speed-up over the baseline.\n\n"
           "  --data FILE|SET    text to evaluate (required): a file, or wikitext2, c4, pileval\n"
           "  --pull             download MODEL from the Hub if it is not cached\n"
           "  --schemes LIST     comma-separated (default %s)\n"
           "  --ctx N            tokens per chunk (default 512)\n"
           "  --chunks N         evaluate the first N chunks (default: all)\n"
           "  --group N          group size for grouped schemes\n"
           "  -p, --pp N         prompt tokens of the pp test (default %d, 0 skips)\n"
           "  -n, --tg N         generated tokens of the tg test (default %d, 0 skips)\n"
           "  -r, --reps N       timed repetitions of each (default %d)\n"
           "  --no-speed         no speed test: no pp/tg and speed-up columns\n"
           "  --backend B        auto (default), cpu or cuda (also where GPTQ and the\n"
           "                     AWQ search calibrate)\n"
           "  --threads N        CPU threads (default: all cores)\n"
           "  --json | --csv | --md   output format (default: a text table)\n"
           "  --progress-json    progress as JSON lines on stderr\n"
           "  -h, --help         this help\n\n"
           "known schemes: %s\n", DEFAULT_SCHEMES, QB_COMPARE_SPEED_PP, QB_COMPARE_SPEED_TG,
           QB_COMPARE_SPEED_REPS, qb_scheme_names());
}

enum { OPT_DATA = 256, OPT_CTX, OPT_CHUNKS, OPT_SCHEME, OPT_SCHEMES, OPT_GROUP, OPT_BACKEND,
       OPT_THREADS, OPT_JSON, OPT_CSV, OPT_MD, OPT_PROGRESS_JSON, OPT_PULL, OPT_WORD_PPL,
       OPT_CALIB, OPT_CALIB_SAMPLES, OPT_CALIB_SEQLEN, OPT_SEED, OPT_ACT_ORDER, OPT_SYM,
       OPT_STATIC_GROUPS, OPT_DAMP, OPT_NO_SPEED };

static const struct option eval_options[] = {
    {"data", required_argument, NULL, OPT_DATA},
    {"ctx", required_argument, NULL, OPT_CTX},
    {"chunks", required_argument, NULL, OPT_CHUNKS},
    {"scheme", required_argument, NULL, OPT_SCHEME},
    {"schemes", required_argument, NULL, OPT_SCHEMES},
    {"group", required_argument, NULL, OPT_GROUP},
    {"backend", required_argument, NULL, OPT_BACKEND},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"json", no_argument, NULL, OPT_JSON},
    {"csv", no_argument, NULL, OPT_CSV},
    {"md", no_argument, NULL, OPT_MD},
    {"progress-json", no_argument, NULL, OPT_PROGRESS_JSON},
    {"pull", no_argument, NULL, OPT_PULL},
    {"word-ppl", no_argument, NULL, OPT_WORD_PPL},
    {"calib", required_argument, NULL, OPT_CALIB},
    {"calib-samples", required_argument, NULL, OPT_CALIB_SAMPLES},
    {"calib-seqlen", required_argument, NULL, OPT_CALIB_SEQLEN},
    {"seed", required_argument, NULL, OPT_SEED},
    {"act-order", no_argument, NULL, OPT_ACT_ORDER},
    {"sym", no_argument, NULL, OPT_SYM},
    {"static-groups", no_argument, NULL, OPT_STATIC_GROUPS},
    {"damp", required_argument, NULL, OPT_DAMP},
    {"pp", required_argument, NULL, 'p'},
    {"tg", required_argument, NULL, 'n'},
    {"reps", required_argument, NULL, 'r'},
    {"no-speed", no_argument, NULL, OPT_NO_SPEED},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static int parse_number(struct eval_args *a, const char *name, long min, long max, long *out)
{
    if (qb_cli_parse_int(optarg, min, max, out) != 0)
        return qb_cli_usage_error(a->cmd, "%s needs an integer in [%ld, %ld], got '%s'", name,
                                  min, max, optarg);
    return 0;
}

/* --damp X: a fraction of the mean Hessian diagonal in [1e-6, 10]; 0 on success. */
static int parse_damp(const char *s, double *out)
{
    char *end = NULL;
    double v = strtod(s, &end);
    if (end == s || *end || !(v >= 1e-6 && v <= 10))
        return -1;
    *out = v;
    return 0;
}

/* Handle one option; returns -1 to continue, else an exit code. */
static int handle_option(struct eval_args *a, int c, int is_compare)
{
    struct qb_err err = {0};
    int rc = 0;
    long v = 0;
    switch (c) {
    case OPT_DATA: a->data = optarg; break;
    case OPT_CTX:
        a->ctx_given = 1;
        rc = parse_number(a, "--ctx", 4, 1 << 20, &a->ctx);
        break;
    case OPT_CHUNKS: rc = parse_number(a, "--chunks", 0, 1 << 30, &a->chunks); break;
    case 'p': rc = parse_number(a, "-p/--pp", 0, QB_BENCH_MAX_TOKENS, &a->pp); break;
    case 'n': rc = parse_number(a, "-n/--tg", 0, QB_BENCH_MAX_TOKENS, &a->tg); break;
    case 'r': rc = parse_number(a, "-r/--reps", 1, 1000, &a->reps); break;
    case OPT_NO_SPEED: a->no_speed = 1; break;
    case OPT_GROUP: rc = parse_number(a, "--group", 1, 1 << 16, &a->group); break;
    case OPT_THREADS: rc = parse_number(a, "--threads", 0, 4096, &a->threads); break;
    case OPT_SCHEME:
        if (is_compare)
            return qb_cli_usage_error(a->cmd, "use --schemes LIST with compare");
        a->scheme = optarg;
        break;
    case OPT_SCHEMES:
        if (!is_compare)
            return qb_cli_usage_error(a->cmd, "use --scheme S with eval");
        free(a->schemes);
        a->schemes = qb_strdup(optarg);
        break;
    case OPT_BACKEND:
        if (qb_backend_parse(optarg, &a->backend, &err))
            return qb_cli_usage_error(a->cmd, "%s", err.msg);
        break;
    case OPT_JSON: a->format = OUT_JSON; break;
    case OPT_CSV: a->format = is_compare ? OUT_CSV : OUT_TEXT; break;
    case OPT_MD: a->format = is_compare ? OUT_MD : OUT_TEXT; break;
    case OPT_PROGRESS_JSON: a->progress = QB_CLI_PROGRESS_JSON; break;
    case OPT_PULL: a->pull = 1; break;
    case OPT_WORD_PPL:
        if (is_compare)
            return qb_cli_usage_error(a->cmd, "--word-ppl belongs to eval");
        a->word_ppl = 1;
        break;
    case OPT_CALIB: a->calib.calib.path = optarg; break;
    case OPT_CALIB_SAMPLES: rc = parse_number(a, "--calib-samples", 1, 1 << 20, &v); break;
    case OPT_CALIB_SEQLEN: rc = parse_number(a, "--calib-seqlen", 2, 1 << 20, &v); break;
    case OPT_SEED: rc = parse_number(a, "--seed", 0, LONG_MAX, &v); break;
    case OPT_ACT_ORDER: a->calib.act_order = 1; break;
    case OPT_SYM: a->calib.sym = 1; break;
    case OPT_STATIC_GROUPS: a->calib.static_groups = 1; break;
    case OPT_DAMP:
        if (parse_damp(optarg, &a->calib.damp))
            return qb_cli_usage_error(a->cmd, "--damp needs a number in [1e-6, 10], got '%s'",
                                      optarg);
        break;
    case 'h':
        if (is_compare)
            compare_usage();
        else
            eval_usage();
        return 0;
    default: return qb_cli_usage_error(a->cmd, "unknown option");
    }
    if (!rc && c == OPT_CALIB_SAMPLES)
        a->calib.calib.n_samples = (int)v;
    if (!rc && c == OPT_CALIB_SEQLEN)
        a->calib.calib.seqlen = (int)v;
    if (!rc && c == OPT_SEED)
        a->calib.calib.seed = (uint64_t)v;
    return rc ? rc : -1;
}

static int parse_args(int argc, char **argv, int is_compare, struct eval_args *a)
{
    memset(a, 0, sizeof *a);
    a->cmd = is_compare ? "compare" : "eval";
    a->ctx = 512;
    a->pp = QB_COMPARE_SPEED_PP;
    a->tg = QB_COMPARE_SPEED_TG;
    a->reps = QB_COMPARE_SPEED_REPS;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, is_compare ? "p:n:r:h" : "h", eval_options, NULL)) != -1) {
        if (c == '?')
            return qb_cli_usage_error(a->cmd, "unknown or incomplete option '%s'",
                                      argv[optind - 1]);
        if (!is_compare && (c == 'p' || c == 'n' || c == 'r' || c == OPT_NO_SPEED))
            return qb_cli_usage_error(a->cmd, "%s belongs to compare (eval's speed: "
                                      "quantbench bench)", c == 'p' ? "--pp" : c == 'n' ? "--tg"
                                      : c == 'r' ? "--reps" : "--no-speed");
        int rc = handle_option(a, c, is_compare);
        if (rc >= 0)
            return rc == 0 ? -2 : rc; /* -2: help printed */
    }
    if (optind >= argc)
        return qb_cli_usage_error(a->cmd, "missing MODEL");
    if (optind + 1 < argc)
        return qb_cli_usage_error(a->cmd, "unexpected argument '%s'", argv[optind + 1]);
    a->model = argv[optind];
    if (!a->data)
        return qb_cli_usage_error(a->cmd, "--data FILE is required");
    if (is_compare && !a->schemes)
        a->schemes = qb_strdup(DEFAULT_SCHEMES);
    if (is_compare && !a->no_speed && a->pp == 0 && a->tg == 0)
        return qb_cli_usage_error(a->cmd, "-p and -n are both 0: use --no-speed to skip the "
                                  "speed test");
    return -1;
}

/* The evaluation text: a file, or a Hub data set fetched (and cached) by name. */
static enum qb_status read_data(const struct eval_args *a, struct qb_hub **hub, char **text,
                                size_t *len, struct qb_err *err)
{
    if (qb_path_exists(a->data) || !qb_hub_dataset_known(a->data))
        return qb_file_read_all(a->data, DATA_MAX_BYTES, text, len, err);
    enum qb_status st = *hub ? QB_OK : qb_hub_open_env(hub, err);
    if (st)
        return st;
    return qb_hub_dataset_text(*hub, a->data, NULL, text, len, NULL, err);
}

/* A directory or FILE.gguf as given, else ORG/NAME[@REV] resolved in the Hub cache. */
static enum qb_status resolve_model(struct eval_args *a, struct qb_hub **hub,
                                    struct qb_progress *progress, struct qb_err *err)
{
    if (qb_path_is_dir(a->model) || qb_gguf_is_model_path(a->model)) {
        a->model_dir = qb_strdup(a->model);
        return a->model_dir ? QB_OK : qb_err_set(err, QB_ERR_NOMEM, "out of memory");
    }
    enum qb_status st = *hub ? QB_OK : qb_hub_open_env(hub, err);
    if (st)
        return st;
    return qb_hub_resolve_model(*hub, a->model, a->pull, progress, &a->model_dir, err);
}

/* Tokenize the data with the model's tokenizer (BOS first). */
static enum qb_status load_tokens(const struct eval_args *a, struct qb_hub **hub, int32_t **ids,
                                  size_t *n, char *dtype, size_t dtype_size, struct qb_err *err)
{
    char *text = NULL;
    size_t len = 0;
    struct qb_model *m = NULL;
    enum qb_status st = qb_model_load(a->model_dir, NULL, &m, err);
    if (!st)
        st = read_data(a, hub, &text, &len, err);
    if (!st)
        st = qb_eval_tokenize(m, text, len, ids, n, err);
    if (!st)
        snprintf(dtype, dtype_size, "%s", m->scheme.name);
    free(text);
    qb_model_free(m);
    return st;
}

static void add_row_json(cJSON *o, const struct qb_compare_row *row)
{
    cJSON_AddStringToObject(o, "scheme", row->scheme);
    cJSON_AddNumberToObject(o, "bits_per_weight", row->bits_per_weight);
    cJSON_AddNumberToObject(o, "weights_bytes", (double)row->weights_bytes);
    cJSON_AddNumberToObject(o, "decoder_bytes", (double)row->decoder_bytes);
    cJSON_AddNumberToObject(o, "ppl", row->r.ppl);
    cJSON_AddNumberToObject(o, "ppl_stderr", row->r.ppl_stderr);
    if (row->is_baseline) {
        cJSON_AddNumberToObject(o, "delta_ppl", 0);
        cJSON_AddNullToObject(o, "kld_mean");
        cJSON_AddNullToObject(o, "top1_agreement");
    } else {
        cJSON_AddNumberToObject(o, "delta_ppl", row->delta_ppl);
        cJSON_AddNumberToObject(o, "kld_mean", row->r.kld_mean);
        cJSON_AddNumberToObject(o, "kld_stderr", row->r.kld_stderr);
        cJSON_AddNumberToObject(o, "top1_agreement", row->r.top1_agreement);
    }
    cJSON_AddNumberToObject(o, "tokens_scored", (double)row->r.tokens_scored);
    cJSON_AddNumberToObject(o, "seconds", row->r.seconds);
    cJSON_AddNumberToObject(o, "quantize_seconds", row->quantize_seconds);
    if (row->peak_rss_kb)
        cJSON_AddNumberToObject(o, "peak_rss_kb", (double)row->peak_rss_kb);
    cJSON_AddNumberToObject(o, "eval_tokens_per_s", row->r.tokens_per_s);
    cJSON_AddStringToObject(o, "backend", qb_backend_name(row->r.backend));
    if (row->note[0])
        cJSON_AddStringToObject(o, "note", row->note);
    else
        cJSON_AddNullToObject(o, "note");
}

/* One speed test's mean and stddev, both null when the test was skipped (-p/-n 0). */
static void add_stat_json(cJSON *o, const char *test, const struct qb_bench_stat *st)
{
    char mean[32], sd[32];
    snprintf(mean, sizeof mean, "%s_tps_mean", test);
    snprintf(sd, sizeof sd, "%s_tps_stddev", test);
    if (st->mean > 0) {
        cJSON_AddNumberToObject(o, mean, st->mean);
        cJSON_AddNumberToObject(o, sd, st->stddev);
    } else {
        cJSON_AddNullToObject(o, mean);
        cJSON_AddNullToObject(o, sd);
    }
}

static void add_ratio_json(cJSON *o, const char *key, double x)
{
    if (isfinite(x))
        cJSON_AddNumberToObject(o, key, x);
    else
        cJSON_AddNullToObject(o, key);
}

/* The speed test of one row with bench's key names; absent with --no-speed. */
static void add_speed_json(cJSON *o, const struct qb_compare_row *row)
{
    if (!row->has_speed)
        return;
    add_stat_json(o, "pp", &row->pp);
    add_stat_json(o, "tg", &row->tg);
    add_ratio_json(o, "pp_speedup", row->pp_speedup);
    add_ratio_json(o, "tg_speedup", row->tg_speedup);
}

static void print_json(cJSON *root)
{
    char *s = cJSON_Print(root);
    if (s)
        printf("%s\n", s);
    free(s);
}

/* --word-ppl documents: wikitext2's pages rebuilt from its rows, or a file's
 * "\n\n\n"-separated pieces (see wordppl.h). */
static enum qb_status read_docs(const struct eval_args *a, struct qb_hub **hub,
                                struct qb_wordppl_docs *docs, struct qb_err *err)
{
    char *text = NULL;
    size_t len = 0;
    struct qb_hub_text_rows rows = {0};
    enum qb_status st;
    if (qb_path_exists(a->data) || !qb_hub_dataset_known(a->data)) {
        st = qb_file_read_all(a->data, DATA_MAX_BYTES, &text, &len, err);
        if (!st)
            st = qb_wordppl_docs_from_text(text, len, docs, err);
    } else if (strcmp(a->data, "wikitext2") != 0) {
        st = qb_err_set(err, QB_ERR_USAGE, "--word-ppl takes wikitext2 or a text file, not %s",
                        a->data);
    } else {
        st = *hub ? QB_OK : qb_hub_open_env(hub, err);
        if (!st)
            st = qb_hub_dataset_text(*hub, a->data, NULL, &text, &len, &rows, err);
        if (!st)
            st = qb_wordppl_docs_from_rows((const char *const *)rows.rows, rows.n, docs, err);
    }
    free(text);
    qb_hub_text_rows_clear(&rows);
    return st;
}

static int run_word_ppl(struct eval_args *a)
{
    struct qb_err err = {0};
    struct qb_hub *hub = NULL;
    struct qb_wordppl_docs docs = {0};
    struct qb_wordppl_result r;
    struct qb_wordppl_opts o = {a->ctx_given ? (int)a->ctx : 0, (int)a->chunks, (int)a->threads,
                                a->backend};
    struct qb_cli_progress bar;
    struct qb_progress *progress = qb_progress_create();
    enum qb_status st = progress ? QB_OK : qb_err_set(&err, QB_ERR_NOMEM, "out of memory");
    if (!st) {
        qb_cli_progress_attach(&bar, a->progress, progress);
        qb_progress_begin(progress, QB_JOB_EVAL, "loading");
        st = resolve_model(a, &hub, progress, &err);
    }
    if (!st)
        st = read_docs(a, &hub, &docs, &err);
    if (!st)
        st = qb_wordppl_run_dir(a->model_dir, a->scheme, (int)a->group, &docs, &o, progress, &r,
                                &err);
    qb_progress_finish(progress, st, &err);
    if (progress)
        qb_cli_progress_clear(&bar);
    if (st) {
        qb_err_print(&err);
    } else if (a->format == OUT_JSON) {
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "model", a->model);
        cJSON_AddStringToObject(j, "data", a->data);
        cJSON_AddStringToObject(j, "scheme", a->scheme ? a->scheme : "baseline");
        qb_wordppl_add_json(j, &r);
        print_json(j);
        cJSON_Delete(j);
    } else {
        printf("model     %s%s%s\ndata      %s\n", a->model, a->scheme ? " as " : "",
               a->scheme ? a->scheme : "", a->data);
        qb_wordppl_print(stdout, &r);
    }
    qb_progress_free(progress);
    qb_wordppl_docs_clear(&docs);
    qb_hub_free(hub);
    return qb_status_exit_code(st);
}

static void print_eval_json(const struct eval_args *a, const struct qb_compare_row *rows, int n)
{
    const struct qb_compare_row *r = &rows[n - 1];
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model", a->model);
    cJSON_AddStringToObject(o, "data", a->data);
    add_row_json(o, r);
    cJSON_AddStringToObject(o, "baseline_dtype", rows[0].scheme);
    cJSON_AddNumberToObject(o, "chunks", r->r.chunks);
    cJSON_AddNumberToObject(o, "ctx", r->r.ctx);
    if (n > 1) {
        cJSON_AddNumberToObject(o, "ppl_baseline", rows[0].r.ppl);
        cJSON_AddNumberToObject(o, "baseline_seconds", rows[0].r.seconds);
    }
    print_json(o);
    cJSON_Delete(o);
}

static void print_eval_text(const struct eval_args *a, const struct qb_compare_row *rows, int n)
{
    const struct qb_compare_row *r = &rows[n - 1];
    printf("model     %s\ndata      %s (%d chunks of %d, %lld tokens scored)\n", a->model,
           a->data, r->r.chunks, r->r.ctx, (long long)r->r.tokens_scored);
    printf("backend   %s\n", qb_backend_name(r->r.backend));
    if (n > 1)
        printf("baseline  %s  PPL = %.4f +/- %.4f\n", rows[0].scheme, rows[0].r.ppl,
               rows[0].r.ppl_stderr);
    printf("scheme    %s  %.3f bits/weight, weights %.2f MiB%s%s\n", r->scheme,
           r->bits_per_weight, (double)r->weights_bytes / 1048576.0, r->note[0] ? ", " : "",
           r->note);
    printf("Final estimate: PPL = %.4f +/- %.5f\n", r->r.ppl, r->r.ppl_stderr);
    if (n > 1)
        printf("delta PPL = %+.4f, mean KLD = %.6f +/- %.6f, top-1 agreement = %.2f%%\n",
               r->delta_ppl, r->r.kld_mean, r->r.kld_stderr, 100.0 * r->r.top1_agreement);
    printf("%.2f s, %.0f tokens/s\n", r->r.seconds, r->r.tokens_per_s);
}

static void print_compare_json(const struct eval_args *a, const struct qb_compare_row *rows, int n)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "model", a->model);
    cJSON_AddStringToObject(o, "data", a->data);
    cJSON_AddStringToObject(o, "baseline", rows[0].scheme);
    cJSON_AddNumberToObject(o, "chunks", rows[0].r.chunks);
    cJSON_AddNumberToObject(o, "ctx", rows[0].r.ctx);
    if (rows[0].has_speed) {
        cJSON_AddNumberToObject(o, "n_prompt", (double)a->pp);
        cJSON_AddNumberToObject(o, "n_gen", (double)a->tg);
        cJSON_AddNumberToObject(o, "repetitions", (double)a->reps);
    }
    cJSON *arr = cJSON_AddArrayToObject(o, "rows");
    for (int i = 0; i < n; i++) {
        cJSON *row = cJSON_CreateObject();
        add_row_json(row, &rows[i]);
        add_speed_json(row, &rows[i]);
        cJSON_AddItemToArray(arr, row);
    }
    print_json(o);
    cJSON_Delete(o);
}

/* The text, CSV and Markdown table: one column per field, the speed columns only
 * when the speed test ran. */
enum { COL_SCHEME, COL_BITS, COL_SIZE, COL_PPL, COL_DPPL, COL_KLD, COL_TOP1, COL_PP, COL_TG,
       COL_PP_X, COL_TG_X, COL_SECONDS, N_COLS };

#define CELL_MAX 32

static const char *const table_head[N_COLS] = {"scheme", "bits/w", "size MiB", "ppl", "dppl",
                                               "KLD", "top-1", "pp t/s", "tg t/s", "pp x",
                                               "tg x", "seconds"};

static int col_shown(int c, int speed)
{
    return speed || c < COL_PP || c > COL_TG_X;
}

/* x with prec decimals (a sign when signed) and suffix; "-" for what was not
 * measured (a skipped test, the baseline's own deltas). */
static void fmt_cell(char *cell, int measured, int prec, int sign, const char *suffix, double x)
{
    if (!measured)
        snprintf(cell, CELL_MAX, "-");
    else if (sign)
        snprintf(cell, CELL_MAX, "%+.*f%s", prec, x, suffix);
    else
        snprintf(cell, CELL_MAX, "%.*f%s", prec, x, suffix);
}

static void format_cells(const struct qb_compare_row *r, char cells[N_COLS][CELL_MAX])
{
    int q = !r->is_baseline;
    snprintf(cells[COL_SCHEME], CELL_MAX, "%s", r->scheme);
    fmt_cell(cells[COL_BITS], 1, 3, 0, "", r->bits_per_weight);
    fmt_cell(cells[COL_SIZE], 1, 2, 0, "", (double)r->weights_bytes / 1048576.0);
    fmt_cell(cells[COL_PPL], 1, 4, 0, "", r->r.ppl);
    fmt_cell(cells[COL_DPPL], q, 4, 1, "", r->delta_ppl);
    fmt_cell(cells[COL_KLD], q, 6, 0, "", r->r.kld_mean);
    fmt_cell(cells[COL_TOP1], q, 2, 0, "%", 100.0 * r->r.top1_agreement);
    fmt_cell(cells[COL_PP], r->pp.mean > 0, 1, 0, "", r->pp.mean);
    fmt_cell(cells[COL_TG], r->tg.mean > 0, 1, 0, "", r->tg.mean);
    fmt_cell(cells[COL_PP_X], isfinite(r->pp_speedup), 2, 0, "x", r->pp_speedup);
    fmt_cell(cells[COL_TG_X], isfinite(r->tg_speedup), 2, 0, "x", r->tg_speedup);
    fmt_cell(cells[COL_SECONDS], 1, 1, 0, "", r->r.seconds + r->quantize_seconds);
}

/* One line: text pads every column to its width (the scheme left, numbers right). */
static void print_line(enum out_format f, int speed, const int *width,
                       const char *const *cells)
{
    int first = 1;
    printf("%s", f == OUT_MD ? "| " : "");
    for (int c = 0; c < N_COLS; c++) {
        if (!col_shown(c, speed))
            continue;
        const char *sep = first ? "" : f == OUT_CSV ? "," : f == OUT_MD ? " | " : "  ";
        if (f == OUT_TEXT)
            printf(c == COL_SCHEME ? "%s%-*s" : "%s%*s", sep, width[c], cells[c]);
        else
            printf("%s%s", sep, cells[c]);
        first = 0;
    }
    printf("%s\n", f == OUT_MD ? " |" : "");
}

static void print_compare_table(const struct eval_args *a, const struct qb_compare_row *rows,
                                int n)
{
    char(*cells)[N_COLS][CELL_MAX] = qb_calloc_array((size_t)n, sizeof *cells);
    const char *ptr[N_COLS];
    int width[N_COLS], speed = rows[0].has_speed;
    if (!cells)
        return;
    for (int c = 0; c < N_COLS; c++)
        width[c] = (int)strlen(table_head[c]);
    for (int i = 0; i < n; i++) {
        format_cells(&rows[i], cells[i]);
        for (int c = 0; c < N_COLS; c++)
            width[c] = QB_MAX(width[c], (int)strlen(cells[i][c]));
    }
    if (a->format == OUT_TEXT) {
        printf("%s on %s: %d chunks x %d, %s backend\n", a->model, a->data, rows[0].r.chunks,
               rows[0].r.ctx, qb_backend_name(rows[0].r.backend));
        if (speed)
            printf("speed: pp%ld tg%ld, mean of %ld runs; x = tokens/s over %s's\n", a->pp,
                   a->tg, a->reps, rows[0].scheme);
    }
    print_line(a->format, speed, width, table_head);
    if (a->format == OUT_MD) {
        printf("|---|");
        for (int c = 1; c < N_COLS; c++)
            printf("%s", col_shown(c, speed) ? "---:|" : "");
        printf("\n");
    }
    for (int i = 0; i < n; i++) {
        for (int c = 0; c < N_COLS; c++)
            ptr[c] = cells[i][c];
        print_line(a->format, speed, width, ptr);
    }
    for (int i = 0; i < n && a->format != OUT_CSV; i++) {
        if (rows[i].note[0])
            printf("%s%s: %s\n", a->format == OUT_MD ? "\n" : "", rows[i].scheme, rows[i].note);
    }
    free(cells);
}

/* auto ran a row on the CPU reference (no GPU kernels for its format): say so on
 * stderr, since the engine's notice goes to the progress log only. */
static void note_cpu_fallbacks(const struct eval_args *a, const struct qb_compare_row *rows,
                               int n)
{
    for (int i = 0; i < n; i++) {
        if (rows[i].r.backend != qb_backend_resolve(a->backend))
            fprintf(stderr, "quantbench %s: note: %s ran on the CPU reference (no GPU kernels "
                    "for its format)\n", a->cmd, rows[i].scheme);
    }
}

/* Append the rows to the results history; a failure there is a warning only. */
static void record_history(const struct eval_args *a, int is_compare,
                           const struct qb_compare_row *rows, int n)
{
    struct qb_job_spec spec;
    struct qb_results rs = {0};
    struct qb_result r;
    struct qb_err err = {0};
    qb_job_spec_init(&spec, is_compare ? QB_JOB_COMPARE : QB_JOB_EVAL);
    snprintf(spec.model, sizeof spec.model, "%s", a->model);
    spec.group = (int)a->group;
    for (int i = 0; i < n; i++) {
        qb_job_result_from_row(&rows[i], &rows[0], &spec, &r);
        if (qb_results_push(&rs, &r))
            break;
    }
    if (qb_job_record(&spec, &rs, &err))
        fprintf(stderr, "quantbench: warning: results not saved to the history: %s\n", err.msg);
    qb_results_clear(&rs);
}

static int run(int argc, char **argv, int is_compare)
{
    struct eval_args a;
    int rc = parse_args(argc, argv, is_compare, &a);
    if (rc != -1) {
        free(a.schemes);
        free(a.model_dir);
        return rc == -2 ? 0 : rc;
    }
    if (a.word_ppl) {
        rc = run_word_ppl(&a);
        free(a.model_dir);
        return rc;
    }
    struct qb_err err = {0};
    struct qb_compare_opts co = {.group = (int)a.group};
    struct qb_hub *hub = NULL;
    co.eval = (struct qb_eval_opts){(int)a.ctx, (int)a.chunks, (int)a.threads, a.backend};
    co.calib = a.calib;
    co.calib.n_threads = (int)a.threads;
    if (is_compare && !a.no_speed)
        co.speed = (struct qb_bench_opts){.p = (int)a.pp, .n = (int)a.tg, .r = (int)a.reps};
    co.calib.backend = a.backend; /* GPTQ and the AWQ search calibrate on that backend */
    struct qb_compare_row *rows = NULL;
    int n_rows = 0;
    int32_t *ids = NULL;
    char dtype[32] = "";
    struct qb_progress *progress = qb_progress_create();
    struct qb_cli_progress bar;
    enum qb_status st = progress ? QB_OK : qb_err_set(&err, QB_ERR_NOMEM, "out of memory");
    if (!st && is_compare)
        st = qb_compare_parse_list(a.schemes, &co, &err);
    if (!st && !is_compare && a.scheme) {
        co.schemes[0] = a.scheme;
        co.n_schemes = 1;
    }
    if (!st) {
        struct qb_scheme check;
        for (int i = 0; !st && i < co.n_schemes; i++) {
            st = qb_scheme_parse(co.schemes[i], co.group, &check, &err);
            if (!st && check.needs_calibration && !a.calib.calib.path)
                st = qb_err_set(&err, QB_ERR_USAGE, "scheme '%s' needs calibration data "
                                "(--calib FILE)", co.schemes[i]);
        }
    }
    if (!st) {
        qb_cli_progress_attach(&bar, a.progress, progress);
        qb_progress_begin(progress, is_compare ? QB_JOB_COMPARE : QB_JOB_EVAL, "loading");
        st = resolve_model(&a, &hub, progress, &err);
    }
    if (!st) {
        qb_progress_stage(progress, "tokenizing");
        st = load_tokens(&a, &hub, &ids, &co.n_ids, dtype, sizeof dtype, &err);
        co.ids = ids;
        co.model_dir = a.model_dir;
    }
    if (!st)
        st = qb_compare_run(&co, progress, &rows, &n_rows, &err);
    qb_progress_finish(progress, st, &err);
    if (progress)
        qb_cli_progress_clear(&bar);
    if (!st) {
        note_cpu_fallbacks(&a, rows, n_rows);
        record_history(&a, is_compare, rows, n_rows);
    }
    if (st) {
        qb_err_print(&err);
    } else if (is_compare) {
        if (a.format == OUT_JSON)
            print_compare_json(&a, rows, n_rows);
        else
            print_compare_table(&a, rows, n_rows);
    } else {
        if (a.format == OUT_JSON)
            print_eval_json(&a, rows, n_rows);
        else
            print_eval_text(&a, rows, n_rows);
    }
    qb_progress_free(progress);
    free(rows);
    free(ids);
    free(a.schemes);
    free(a.model_dir);
    qb_hub_free(hub);
    return qb_status_exit_code(st);
}

int qb_cmd_eval(int argc, char **argv)
{
    return run(argc, argv, 0);
}

int qb_cmd_compare(int argc, char **argv)
{
    return run(argc, argv, 1);
}
