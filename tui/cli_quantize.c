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
#include "quantize.h"
#include "quant_pipeline.h"

/* The running job's progress, so SIGINT/SIGTERM can request cancellation (an
 * atomic store); set only while qb_cmd_quantize runs. */
static struct qb_progress *volatile g_progress;

static void on_signal(int sig)
{
    (void)sig;
    if (g_progress)
        qb_progress_cancel(g_progress);
}

struct quant_args {
    struct qb_quantize_opts q;
    long group, threads;
    int json;
    enum qb_cli_progress_mode progress;
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
           "  --backend B         GPTQ calibration and the AWQ search on auto (default: the\n"
           "                      GPU when there is one), cpu or cuda\n"
           "  --threads N         CPU threads (default: all cores)\n"
           "  --json              print one JSON object on stdout\n"
           "  --progress-json     progress as JSON lines on stderr\n"
           "  -h, --help          this help\n");
}

enum { OPT_SCHEME = 256, OPT_OUT, OPT_CALIB, OPT_SAMPLES, OPT_SEQLEN, OPT_SEED, OPT_GROUP,
       OPT_ACT_ORDER, OPT_STATIC, OPT_SYM, OPT_DAMP, OPT_THREADS, OPT_JSON, OPT_PJSON,
       OPT_FORMAT, OPT_GPTQ_V2, OPT_BACKEND };

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
    {"backend", required_argument, NULL, OPT_BACKEND},
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
    case OPT_SCHEME: a->q.scheme = optarg; break;
    case OPT_OUT: a->q.out = optarg; break;
    case OPT_FORMAT:
        if (strcmp(optarg, "hf") != 0 && strcmp(optarg, "ours") != 0)
            return qb_cli_usage_error("quantize", "--format is 'ours' or 'hf', not '%s'", optarg);
        a->q.format_hf = strcmp(optarg, "hf") == 0;
        break;
    case OPT_GPTQ_V2: a->q.gptq_v2 = 1; break;
    case OPT_CALIB: a->q.po.calib.path = optarg; break;
    case OPT_SAMPLES:
        if (!(rc = number("--calib-samples", 1, 1 << 20, &v)))
            a->q.po.calib.n_samples = (int)v;
        break;
    case OPT_SEQLEN:
        if (!(rc = number("--calib-seqlen", 2, 1 << 20, &v)))
            a->q.po.calib.seqlen = (int)v;
        break;
    case OPT_SEED:
        if (!(rc = number("--seed", 0, LONG_MAX, &v)))
            a->q.po.calib.seed = (uint64_t)v;
        break;
    case OPT_GROUP: rc = number("--group", 8, 1 << 16, &a->group); break;
    case OPT_THREADS: rc = number("--threads", 0, 4096, &a->threads); break;
    case OPT_BACKEND:
        if (qb_backend_parse(optarg, &a->q.po.backend, NULL))
            rc = qb_cli_usage_error("quantize", "--backend must be auto, cpu or cuda");
        break;
    case OPT_ACT_ORDER: a->q.po.act_order = 1; break;
    case OPT_STATIC: a->q.po.static_groups = 1; break;
    case OPT_SYM: a->q.po.sym = 1; break;
    case OPT_DAMP:
        a->q.po.damp = strtod(optarg, &end);
        if (end == optarg || *end || !(a->q.po.damp >= 1e-6 && a->q.po.damp <= 10))
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
    a->q.model = argv[optind];
    if (!a->q.scheme || !a->q.out)
        return qb_cli_usage_error("quantize", "--scheme S and --out DIR are required");
    int calibrated = qb_qpipe_is_calibrated(a->q.scheme);
    if (strcmp(a->q.scheme, "nvfp4-w4a4") == 0 && a->q.format_hf && !a->q.po.calib.path)
        return qb_cli_usage_error("quantize", "nvfp4-w4a4 --format hf needs --calib FILE for its "
                                  "activation scales");
    if (strncmp(a->q.scheme, "gguf-", 5) == 0 && a->q.format_hf)
        return qb_cli_usage_error("quantize", "gguf-* schemes write GGUF; drop --format hf");
    if (calibrated && !a->q.po.calib.path)
        return qb_cli_usage_error("quantize", "scheme '%s' needs calibration data (--calib FILE)",
                                  a->q.scheme);
    if (strcmp(a->q.scheme, "awq-int4") == 0 && (a->q.po.sym || a->q.po.act_order ||
                                                a->q.po.static_groups))
        return qb_cli_usage_error("quantize", "--sym, --act-order and --static-groups are GPTQ "
                                  "options; awq-int4 is asymmetric int4 groups");
    a->q.po.n_threads = (int)a->threads;
    a->q.group = (int)a->group;
    return -1;
}

static void print_result(const struct quant_args *a, const struct qb_model *m,
                         const struct qb_qpipe_report *rep)
{
    fprintf(stderr, "quantized %s with %s in %.1f s, peak RSS %.1f MiB -> %s\n", a->q.model,
            a->q.scheme, rep->seconds, (double)rep->peak_rss_kb / 1024.0, a->q.out);
    if (rep->device[0])
        fprintf(stderr, "calibrated on %s%s", rep->device, rep->peak_gpu_bytes ? "" : "\n");
    if (rep->device[0] && rep->peak_gpu_bytes)
        fprintf(stderr, ", peak GPU memory %.2f GiB\n", rep->peak_gpu_bytes / 1073741824.0);
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "model", a->q.model);
    cJSON_AddStringToObject(root, "scheme", a->q.scheme);
    cJSON_AddStringToObject(root, "out", a->q.out);
    cJSON_AddNumberToObject(root, "seconds", rep->seconds);
    cJSON_AddNumberToObject(root, "peak_rss_kb", (double)rep->peak_rss_kb);
    cJSON_AddNumberToObject(root, "calib_samples", rep->n_samples);
    cJSON_AddNumberToObject(root, "calib_seqlen", rep->seqlen);
    cJSON_AddNumberToObject(root, "packed_bytes", (double)rep->packed_bytes);
    if (rep->device[0]) {
        cJSON_AddStringToObject(root, "calib_device", rep->device);
        cJSON_AddNumberToObject(root, "peak_gpu_bytes", (double)rep->peak_gpu_bytes);
    }
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
    int gguf = strncmp(a.q.scheme, "gguf-", 5) == 0;
    g_progress = progress;
    if (!st) {
        qb_cli_progress_attach(&bar, a.progress, progress);
        qb_progress_begin(progress, QB_JOB_QUANTIZE, "loading");
    }
    if (!st)
        st = qb_quantize_run(&a.q, progress, &m, &rep, &err);
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
                "it)\n", a.q.model, a.q.scheme, rep.seconds, a.q.out);
    else
        print_result(&a, m, &rep);
    if (!st && gguf && a.json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "model", a.q.model);
        cJSON_AddStringToObject(o, "scheme", a.q.scheme);
        cJSON_AddStringToObject(o, "out", a.q.out);
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
