/*
 * cli_quantize.c - `quantbench quantize`: quantize a model and write our
 * quantized checkpoint (core/qbfmt.h) that eval, compare and bench load.
 *
 * Calibrated schemes (gptq-int2/3/4/8, awq-int4) run the layer-by-layer
 * pipeline (core/quant_pipeline.h) on windows of --calib text and stream each
 * packed linear into the checkpoint as it is produced; RTN schemes in the
 * integer-group formats are quantized in memory and written the same way.
 * Output goes to a temporary directory next to --out, renamed at the end;
 * Ctrl-C cancels at the next linear and removes it.
 */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_progress.h"
#include "fileutil.h"
#include "gguf_export.h"
#include "hfq_export.h"
#include "qbfmt.h"
#include "quant_pipeline.h"

static volatile sig_atomic_t g_interrupted; /* set by SIGINT/SIGTERM */
/* The running job's progress, so a signal can request cancellation (an atomic
 * store); set only while qb_cmd_quantize runs. */
static struct qb_progress *volatile g_progress;

static void on_signal(int sig)
{
    (void)sig;
    g_interrupted = 1;
    if (g_progress)
        qb_progress_cancel(g_progress);
}

struct quant_args {
    const char *model, *scheme, *out;
    long group, threads;
    int json;
    int format_hf;           /* --format hf: a Hugging Face quantized checkpoint */
    int gptq_v2;             /* --gptq-v2: GPTQ checkpoint_format gptq_v2 (exact zeros) */
    enum qb_cli_progress_mode progress;
    struct qb_qpipe_opts po;
};

static void usage(void)
{
    printf("usage: quantbench quantize MODEL --scheme S --out DIR|FILE.gguf [options]\n\n"
           "Quantize MODEL and write a quantized checkpoint that eval, compare and bench\n"
           "load. GPTQ and AWQ run one decoder layer at a time on calibration text, so\n"
           "memory stays near one layer plus activations.\n\n"
           "  --scheme S          gptq-int4, gptq-int3, gptq-int8, gptq-int2, awq-int4, or an\n"
           "                      RTN integer-group scheme (int4, int4-sym, ...)\n"
           "                      gguf-* schemes write a GGUF file (+ an Ollama Modelfile)\n"
           "  --out DIR           output directory (must not exist), or FILE.gguf\n"
           "  --format F          ours (default: quantbench's layout) or hf: a Hugging Face\n"
           "                      checkpoint (gptq-*, awq-int4, nvfp4, nvfp4-w4a4, fp8, nf4,\n"
           "                      nf4-dq) that transformers/vLLM/AutoAWQ/bitsandbytes load\n"
           "  --gptq-v2           with --format hf: GPTQ checkpoint_format gptq_v2\n"
           "  --calib FILE        calibration text (required for gptq-*/awq-int4)\n"
           "  --calib-samples N   windows drawn from the text (default 128)\n"
           "  --calib-seqlen L    tokens per window (default 2048 GPTQ, 512 AWQ; capped by the\n"
           "                      model's context and the text)\n"
           "  --seed S            window draw seed (default 0; splitmix64)\n"
           "  --group G           columns per group (default 128)\n"
           "  --act-order         GPTQ: columns by descending Hessian diagonal (g_idx)\n"
           "  --static-groups     GPTQ: group parameters from the original weights\n"
           "  --sym               GPTQ: symmetric (zero fixed at 2^(b-1))\n"
           "  --damp X            GPTQ: dampening, fraction of the mean diagonal (default 0.01)\n"
           "  --threads N         CPU threads (default: all cores)\n"
           "  --json              print one JSON object on stdout\n"
           "  --progress-json     progress as JSON lines on stderr\n"
           "  -h, --help          this help\n");
}

enum { OPT_SCHEME = 256, OPT_OUT, OPT_CALIB, OPT_SAMPLES, OPT_SEQLEN, OPT_SEED, OPT_GROUP,
       OPT_ACT_ORDER, OPT_STATIC, OPT_SYM, OPT_DAMP, OPT_THREADS, OPT_JSON, OPT_PJSON,
       OPT_FORMAT, OPT_GPTQ_V2 };

static const struct option options[] = {
    {"scheme", required_argument, NULL, OPT_SCHEME},
    {"out", required_argument, NULL, OPT_OUT},
    {"format", required_argument, NULL, OPT_FORMAT},
    {"gptq-v2", no_argument, NULL, OPT_GPTQ_V2},
    {"calib", required_argument, NULL, OPT_CALIB},
    {"calib-samples", required_argument, NULL, OPT_SAMPLES},
    {"calib-seqlen", required_argument, NULL, OPT_SEQLEN},
    {"seed", required_argument, NULL, OPT_SEED},
    {"group", required_argument, NULL, OPT_GROUP},
    {"act-order", no_argument, NULL, OPT_ACT_ORDER},
    {"static-groups", no_argument, NULL, OPT_STATIC},
    {"sym", no_argument, NULL, OPT_SYM},
    {"damp", required_argument, NULL, OPT_DAMP},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"json", no_argument, NULL, OPT_JSON},
    {"progress-json", no_argument, NULL, OPT_PJSON},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

static int number(const char *name, long min, long max, long *out)
{
    if (qb_cli_parse_int(optarg, min, max, out) != 0)
        return qb_cli_usage_error("quantize", "%s needs an integer in [%ld, %ld], got '%s'",
                                  name, min, max, optarg);
    return 0;
}

/* One option; returns -1 to go on, else an exit code (-2: help printed). */
static int handle(struct quant_args *a, int c)
{
    long v = 0;
    int rc = 0;
    char *end = NULL;
    switch (c) {
    case OPT_SCHEME: a->scheme = optarg; break;
    case OPT_OUT: a->out = optarg; break;
    case OPT_FORMAT:
        if (strcmp(optarg, "hf") != 0 && strcmp(optarg, "ours") != 0)
            return qb_cli_usage_error("quantize", "--format is 'ours' or 'hf', not '%s'", optarg);
        a->format_hf = strcmp(optarg, "hf") == 0;
        break;
    case OPT_GPTQ_V2: a->gptq_v2 = 1; break;
    case OPT_CALIB: a->po.calib.path = optarg; break;
    case OPT_SAMPLES:
        if (!(rc = number("--calib-samples", 1, 1 << 20, &v)))
            a->po.calib.n_samples = (int)v;
        break;
    case OPT_SEQLEN:
        if (!(rc = number("--calib-seqlen", 2, 1 << 20, &v)))
            a->po.calib.seqlen = (int)v;
        break;
    case OPT_SEED:
        if (!(rc = number("--seed", 0, LONG_MAX, &v)))
            a->po.calib.seed = (uint64_t)v;
        break;
    case OPT_GROUP: rc = number("--group", 8, 1 << 16, &a->group); break;
    case OPT_THREADS: rc = number("--threads", 0, 4096, &a->threads); break;
    case OPT_ACT_ORDER: a->po.act_order = 1; break;
    case OPT_STATIC: a->po.static_groups = 1; break;
    case OPT_SYM: a->po.sym = 1; break;
    case OPT_DAMP:
        a->po.damp = strtod(optarg, &end);
        if (end == optarg || *end || !(a->po.damp >= 1e-6 && a->po.damp <= 10))
            return qb_cli_usage_error("quantize", "--damp needs a number in [1e-6, 10], got "
                                      "'%s'", optarg);
        break;
    case OPT_JSON: a->json = 1; break;
    case OPT_PJSON: a->progress = QB_CLI_PROGRESS_JSON; break;
    case 'h': usage(); return -2;
    default: return qb_cli_usage_error("quantize", "unknown option");
    }
    return rc ? rc : -1;
}

static int parse(int argc, char **argv, struct quant_args *a)
{
    memset(a, 0, sizeof *a);
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, "h", options, NULL)) != -1) {
        if (c == '?')
            return qb_cli_usage_error("quantize", "unknown or incomplete option '%s'",
                                      argv[optind - 1]);
        int rc = handle(a, c);
        if (rc != -1)
            return rc;
    }
    if (optind >= argc)
        return qb_cli_usage_error("quantize", "missing MODEL");
    if (optind + 1 < argc)
        return qb_cli_usage_error("quantize", "unexpected argument '%s'", argv[optind + 1]);
    a->model = argv[optind];
    if (!a->scheme || !a->out)
        return qb_cli_usage_error("quantize", "--scheme S and --out DIR are required");
    int calibrated = qb_qpipe_is_calibrated(a->scheme);
    if (strcmp(a->scheme, "nvfp4-w4a4") == 0 && a->format_hf && !a->po.calib.path)
        return qb_cli_usage_error("quantize", "nvfp4-w4a4 --format hf needs --calib FILE for its "
                                  "activation scales");
    if (strncmp(a->scheme, "gguf-", 5) == 0 && a->format_hf)
        return qb_cli_usage_error("quantize", "gguf-* schemes write GGUF; drop --format hf");
    if (calibrated && !a->po.calib.path)
        return qb_cli_usage_error("quantize", "scheme '%s' needs calibration data (--calib FILE)",
                                  a->scheme);
    if (strcmp(a->scheme, "awq-int4") == 0 && (a->po.sym || a->po.act_order ||
                                                a->po.static_groups))
        return qb_cli_usage_error("quantize", "--sym, --act-order and --static-groups are GPTQ "
                                  "options; awq-int4 is asymmetric int4 groups");
    a->po.n_threads = (int)a->threads;
    return -1;
}

struct run_ctx {
    struct qb_qbfmt_writer *w;
    struct qb_progress *progress;
};

/* The pipeline's sink: stream into the checkpoint; notice Ctrl-C. */
static enum qb_status sink(void *ctx, int layer, enum qb_linear_slot slot,
                           const struct qb_qresult *q, struct qb_err *err)
{
    struct run_ctx *r = ctx;
    if (g_interrupted) {
        qb_progress_cancel(r->progress);
        return qb_err_set(err, QB_ERR_CANCELLED, "cancelled");
    }
    return qb_qbfmt_writer_add(r->w, layer, slot, q, err);
}

static char *provenance(const struct quant_args *a, const struct qb_qpipe_report *rep)
{
    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "tool", "quantbench " QB_VERSION);
    cJSON_AddStringToObject(p, "source_model", a->model);
    if (a->po.calib.path) {
        cJSON_AddStringToObject(p, "calib_file", a->po.calib.path);
        cJSON_AddNumberToObject(p, "calib_samples", rep->n_samples);
        cJSON_AddNumberToObject(p, "calib_seqlen", rep->seqlen);
        cJSON_AddNumberToObject(p, "seed", (double)a->po.calib.seed);
        cJSON_AddNumberToObject(p, "seconds", rep->seconds);
        cJSON_AddNumberToObject(p, "peak_rss_kb", (double)rep->peak_rss_kb);
    }
    char *s = cJSON_PrintUnformatted(p);
    cJSON_Delete(p);
    return s;
}

static enum qb_status quantize_calibrated(struct quant_args *a, struct qb_model *m,
                                          struct qb_progress *progress,
                                          struct qb_qpipe_report *rep, struct qb_err *err)
{
    struct qb_qbfmt_writer *w = NULL;
    enum qb_status st = qb_qpipe_opts_from_scheme(a->scheme, (int)a->group, &a->po, err);
    if (st)
        return st;
    struct qb_qbfmt_meta meta = {QB_QBFMT_VERSION, "", a->po.method, a->po.bits, a->po.group,
                                 a->po.sym, a->po.act_order, a->po.static_groups,
                                 a->po.damp > 0 ? a->po.damp : QB_GPTQ_DEFAULT_DAMP};
    snprintf(meta.scheme, sizeof meta.scheme, "%s", a->scheme);
    if (a->po.method == QB_METHOD_AWQ)
        meta.damp = 0;
    st = qb_qbfmt_writer_open(a->out, m, &meta, &w, err);
    if (st)
        return st;
    struct run_ctx rc = {w, progress};
    a->po.sink = sink;
    a->po.sink_ctx = &rc;
    st = qb_qpipe_run(m, &a->po, progress, rep, err);
    if (st) {
        qb_qbfmt_writer_abort(w);
        return st;
    }
    char *prov = provenance(a, rep);
    st = qb_qbfmt_writer_finish(w, m, prov, err);
    free(prov);
    return st;
}

/* RTN in an integer-group format (when the quant module provides it). */
static enum qb_status quantize_rtn(struct quant_args *a, struct qb_model *m,
                                   struct qb_progress *progress, struct qb_qpipe_report *rep,
                                   struct qb_err *err)
{
    struct qb_scheme s;
    struct qb_qbfmt_writer *w = NULL;
    double t0 = qb_now_seconds();
    enum qb_status st = qb_scheme_parse(a->scheme, (int)a->group, &s, err);
    if (st)
        return st;
    int bits = s.fmt == QB_WFMT_UINT_G ? s.qp.bits : 4;
    if (s.method != QB_METHOD_RTN ||
        (s.fmt != QB_WFMT_INT4 && s.fmt != QB_WFMT_INT4_SYM && s.fmt != QB_WFMT_UINT_G))
        return qb_err_set(err, QB_ERR_UNSUPPORTED, "quantize writes the integer-group schemes "
                          "(gptq-*, awq-int4, and RTN int4 / int4-sym / uint-g); '%s' is "
                          "evaluated in memory with eval --scheme", a->scheme);
    st = qb_model_apply_scheme(m, &s, progress, err);
    struct qb_qbfmt_meta meta = {QB_QBFMT_VERSION, "", QB_METHOD_RTN, bits, s.qp.group,
                                 s.fmt == QB_WFMT_INT4_SYM, 0, 0, 0};
    snprintf(meta.scheme, sizeof meta.scheme, "%s", s.name);
    if (!st)
        st = qb_qbfmt_writer_open(a->out, m, &meta, &w, err);
    for (int i = 0; !st && i < m->cfg.n_layers; i++)
        for (int k = 0; !st && k < QB_LIN_COUNT; k++)
            st = qb_qbfmt_writer_add_payload(w, i, k, m->layers[i].lin[k].data,
                                             m->layers[i].lin[k].data_bytes, err);
    rep->seconds = qb_now_seconds() - t0;
    rep->peak_rss_kb = qb_peak_rss_kb();
    if (st) {
        qb_qbfmt_writer_abort(w);
        return st;
    }
    char *prov = provenance(a, rep);
    st = qb_qbfmt_writer_finish(w, m, prov, err);
    free(prov);
    return st;
}

/* A Hugging Face quantized checkpoint: quantize in memory, then export. */
static enum qb_status quantize_hf(struct quant_args *a, struct qb_model *m,
                                  struct qb_progress *progress, struct qb_qpipe_report *rep,
                                  struct qb_err *err)
{
    char *calib = NULL;
    size_t calib_len = 0;
    double t0 = qb_now_seconds();
    enum qb_status st = QB_OK;
    if (qb_qpipe_is_calibrated(a->scheme)) {
        st = qb_qpipe_opts_from_scheme(a->scheme, (int)a->group, &a->po, err);
        if (!st)
            st = qb_qpipe_run(m, &a->po, progress, rep, err); /* packs in memory */
    } else {
        struct qb_scheme s;
        st = qb_scheme_parse(a->scheme, (int)a->group, &s, err);
        if (!st)
            st = qb_model_apply_scheme(m, &s, progress, err);
    }
    if (!st && a->po.calib.path)
        st = qb_file_read_all(a->po.calib.path, (size_t)1 << 30, &calib, &calib_len, err);
    struct qb_hfq_export_opts o = {.calib_text = calib, .calib_len = calib_len,
                                   .n_threads = (int)a->threads, .gptq_v2 = a->gptq_v2};
    struct qb_hfq_export_result r;
    if (!st)
        st = qb_hfq_export(m, a->out, &o, progress, &r, err);
    if (!st && r.gptq_zero0_groups)
        fprintf(stderr, "quantbench quantize: note: %lld GPTQ groups have zero 0; v1 readers "
                "decode them with zero 2^bits; use --gptq-v2 for an exact checkpoint\n",
                (long long)r.gptq_zero0_groups);
    rep->seconds = qb_now_seconds() - t0;
    rep->peak_rss_kb = qb_peak_rss_kb();
    free(calib);
    return st;
}

static void print_result(const struct quant_args *a, const struct qb_model *m,
                         const struct qb_qpipe_report *rep)
{
    fprintf(stderr, "quantized %s with %s in %.1f s, peak RSS %.1f MiB -> %s\n", a->model,
            a->scheme, rep->seconds, (double)rep->peak_rss_kb / 1024.0, a->out);
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "model", a->model);
    cJSON_AddStringToObject(root, "scheme", a->scheme);
    cJSON_AddStringToObject(root, "out", a->out);
    cJSON_AddNumberToObject(root, "seconds", rep->seconds);
    cJSON_AddNumberToObject(root, "peak_rss_kb", (double)rep->peak_rss_kb);
    cJSON_AddNumberToObject(root, "calib_samples", rep->n_samples);
    cJSON_AddNumberToObject(root, "calib_seqlen", rep->seqlen);
    cJSON_AddNumberToObject(root, "packed_bytes", (double)rep->packed_bytes);
    cJSON *layers = cJSON_AddArrayToObject(root, "layers");
    if (!a->json && rep->stats)
        printf("%-6s %-10s %14s %14s %7s\n", "layer", "linear", "recon err", "rtn err", "ratio");
    for (int i = 0; rep->stats && i < m->cfg.n_layers; i++) {
        cJSON *L = cJSON_CreateObject();
        cJSON_AddNumberToObject(L, "layer", i);
        for (int s = 0; s < QB_LIN_COUNT; s++) {
            const struct qb_qpipe_stat *x = &rep->stats[i][s];
            cJSON *o = cJSON_AddObjectToObject(L, qb_linear_slot_name(s));
            cJSON_AddNumberToObject(o, "recon_err", x->err);
            cJSON_AddNumberToObject(o, "rtn_recon_err", x->rtn_err);
            if (!a->json)
                printf("%-6d %-10s %14.6g %14.6g %7.3f\n", i, qb_linear_slot_name(s), x->err,
                       x->rtn_err, x->rtn_err > 0 ? x->err / x->rtn_err : 0.0);
        }
        cJSON_AddItemToArray(layers, L);
    }
    if (a->json) {
        char *s = cJSON_Print(root);
        if (s)
            printf("%s\n", s);
        free(s);
    }
    cJSON_Delete(root);
}

int qb_cmd_quantize(int argc, char **argv)
{
    struct quant_args a;
    int rc = parse(argc, argv, &a);
    if (rc != -1)
        return rc == -2 ? 0 : rc;
    struct qb_err err = {0};
    struct qb_model *m = NULL;
    struct qb_qpipe_report rep = {0};
    struct qb_cli_progress bar;
    struct qb_progress *progress = qb_progress_create();
    struct sigaction sa = {.sa_handler = on_signal}, old_int, old_term;
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    enum qb_status st = progress ? QB_OK : qb_err_set(&err, QB_ERR_NOMEM, "out of memory");
    int gguf = strncmp(a.scheme, "gguf-", 5) == 0;
    g_progress = progress;
    if (!st) {
        qb_cli_progress_attach(&bar, a.progress, progress);
        qb_progress_begin(progress, QB_JOB_QUANTIZE, "loading");
    }
    if (!st && gguf) {
        double t0 = qb_now_seconds();
        st = qb_gguf_export(a.model, a.scheme, a.out, progress, &err);
        rep.seconds = qb_now_seconds() - t0;
        rep.peak_rss_kb = qb_peak_rss_kb();
    } else if (!st) {
        st = qb_model_load(a.model, NULL, &m, &err);
        if (!st && a.format_hf)
            st = quantize_hf(&a, m, progress, &rep, &err);
        else if (!st)
            st = qb_qpipe_is_calibrated(a.scheme)
                     ? quantize_calibrated(&a, m, progress, &rep, &err)
                     : quantize_rtn(&a, m, progress, &rep, &err);
    }
    g_progress = NULL;
    qb_progress_finish(progress, st, &err);
    if (progress)
        qb_cli_progress_clear(&bar);
    if (!st && (rep.capped_by_ctx || rep.capped_by_text))
        fprintf(stderr, "quantbench quantize: --calib-seqlen capped to %d by the %s\n", rep.seqlen,
                rep.capped_by_text ? "calibration text's length" : "model's context");
    if (st)
        qb_err_print(&err);
    else if (gguf)
        fprintf(stderr, "quantized %s with %s in %.1f s -> %s (and an Ollama Modelfile beside "
                "it)\n", a.model, a.scheme, rep.seconds, a.out);
    else
        print_result(&a, m, &rep);
    if (!st && gguf && a.json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "model", a.model);
        cJSON_AddStringToObject(o, "scheme", a.scheme);
        cJSON_AddStringToObject(o, "out", a.out);
        cJSON_AddNumberToObject(o, "seconds", rep.seconds);
        char *js = cJSON_Print(o);
        printf("%s\n", js ? js : "{}");
        free(js);
        cJSON_Delete(o);
    }
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    qb_qpipe_report_free(&rep);
    qb_model_free(m);
    qb_progress_free(progress);
    return qb_status_exit_code(st);
}
