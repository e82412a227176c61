/*
 * cli_doctor.c - `quantbench doctor`: the quick check after a driver update.
 * Prints the report (text or JSON), optionally saves it as a baseline, and
 * with --baseline exits 1 naming every regression.
 */
#include <cjson/cJSON.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "cli_progress.h"
#include "doctor.h"
#include "fileutil.h"

#define MAX_REGRESSIONS 64

struct doctor_args {
    struct qb_doctor_opts o;
    const char *save_path, *base_path;
    int json;
    enum qb_cli_progress_mode progress;
};

static void doctor_usage(void)
{
    printf("usage: quantbench doctor [options]\n\n"
           "The quick check after a driver update: GPU, driver and CUDA versions, which\n"
           "formats run natively, a self-test of every scheme against the CPU reference,\n"
           "measured memory bandwidth, demo-model perplexity/KLD and prefill/decode tok/s.\n\n"
           "  --model DIR           model to check (default: the bundled demo model)\n"
           "  --data FILE           text for perplexity (default: the bundled eval text)\n"
           "  --chunks N            perplexity chunks of 512 tokens (default 2)\n"
           "  --backend B           auto (default), cpu or cuda\n"
           "  --threads N           CPU threads (default: all cores)\n"
           "  --save-baseline FILE  save this report as a baseline (JSON)\n"
           "  --baseline FILE       compare with a saved report; exit 1 naming regressions\n"
           "                        (perplexity drift > %.1g relative, NaN, failed self-test,\n"
           "                        speed more than %.0f%% lower)\n"
           "  --json                print the report as JSON\n"
           "  --progress-json       progress as JSON lines on stderr\n"
           "  -h, --help            this help\n",
           QB_DOCTOR_PPL_RTOL, 100 * QB_DOCTOR_SPEED_DROP);
}

enum { OPT_MODEL = 256, OPT_DATA, OPT_CHUNKS, OPT_BACKEND, OPT_THREADS, OPT_SAVE, OPT_BASE,
       OPT_JSON, OPT_PROGRESS_JSON };

static const struct option doctor_options[] = {
    {"model", required_argument, NULL, OPT_MODEL},
    {"data", required_argument, NULL, OPT_DATA},
    {"chunks", required_argument, NULL, OPT_CHUNKS},
    {"backend", required_argument, NULL, OPT_BACKEND},
    {"threads", required_argument, NULL, OPT_THREADS},
    {"save-baseline", required_argument, NULL, OPT_SAVE},
    {"baseline", required_argument, NULL, OPT_BASE},
    {"json", no_argument, NULL, OPT_JSON},
    {"progress-json", no_argument, NULL, OPT_PROGRESS_JSON},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};

/* Returns -1 to go on, else an exit code. */
static int parse_args(int argc, char **argv, struct doctor_args *a)
{
    memset(a, 0, sizeof *a);
    optind = 1;
    opterr = 0;
    int c;
    long v;
    struct qb_err err = {0};
    while ((c = getopt_long(argc, argv, "h", doctor_options, NULL)) != -1) {
        switch (c) {
        case OPT_MODEL: a->o.model_dir = optarg; break;
        case OPT_DATA: a->o.data_path = optarg; break;
        case OPT_CHUNKS:
            if (qb_cli_parse_int(optarg, 1, 1000, &v))
                return qb_cli_usage_error("doctor", "--chunks needs 1..1000, got '%s'", optarg);
            a->o.chunks = (int)v;
            break;
        case OPT_THREADS:
            if (qb_cli_parse_int(optarg, 0, 4096, &v))
                return qb_cli_usage_error("doctor", "--threads needs 0..4096, got '%s'", optarg);
            a->o.n_threads = (int)v;
            break;
        case OPT_BACKEND:
            if (qb_backend_parse(optarg, &a->o.backend, &err))
                return qb_cli_usage_error("doctor", "%s", err.msg);
            break;
        case OPT_SAVE: a->save_path = optarg; break;
        case OPT_BASE: a->base_path = optarg; break;
        case OPT_JSON: a->json = 1; break;
        case OPT_PROGRESS_JSON: a->progress = QB_CLI_PROGRESS_JSON; break;
        case 'h': doctor_usage(); return 0;
        default:
            return qb_cli_usage_error("doctor", "unknown or incomplete option '%s'",
                                      argv[optind - 1]);
        }
    }
    if (optind < argc)
        return qb_cli_usage_error("doctor", "unexpected argument '%s'", argv[optind]);
    return -1;
}

static void print_text(const struct qb_doctor_report *r)
{
    printf("quantbench %s, backend %s\n", r->version, r->backend);
    if (r->gpu_name[0])
        printf("GPU        %s (compute capability %s), driver %s, CUDA driver %d.%d, "
               "runtime %d.%d\n", r->gpu_name, r->compute_capability, r->driver_version,
               r->cuda_driver_version / 1000, r->cuda_driver_version % 1000 / 10,
               r->cuda_runtime_version / 1000, r->cuda_runtime_version % 1000 / 10);
    else
        printf("GPU        none (CPU paths checked)\n");
    if (r->bandwidth_gbs > 0)
        printf("bandwidth  %.1f GB/s (%s copy, read + write)\n", r->bandwidth_gbs,
               strcmp(r->backend, "cuda") == 0 ? "device-to-device" : "host memcpy");
    printf("\n%-12s %7s %-6s %-10s %10s %9s %11s %11s\n", "scheme", "bits/w", "native",
           "self-test", "ppl", "KLD", "pp tok/s", "tg tok/s");
    for (int i = 0; i < r->n_schemes; i++) {
        const struct qb_doctor_scheme *s = &r->schemes[i];
        if (s->error[0]) {
            printf("%-12s error: %s\n", s->scheme, s->error);
            continue;
        }
        printf("%-12s %7.3f %-6s %-10s %10.4f %9.6f %11.0f %11.1f\n", s->scheme,
               s->bits_per_weight, s->native ? "yes" : "no", s->selftest_ok ? "ok" : "FAILED",
               s->ppl, s->kld, s->pp_tok_s, s->tg_tok_s);
    }
    printf("\n%.1f s\n", r->seconds);
}

static enum qb_status save_report(const char *path, const struct qb_doctor_report *r,
                                  struct qb_err *err)
{
    cJSON *j = qb_doctor_to_json(r);
    char *s = cJSON_Print(j);
    cJSON_Delete(j);
    if (!s)
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory");
    enum qb_status st = qb_file_write_atomic(path, s, strlen(s), err);
    free(s);
    return st;
}

/* Regressions against the baseline, or failures of this run alone. */
static int count_regressions(const struct doctor_args *a, const struct qb_doctor_report *now,
                             struct qb_err *err, enum qb_status *st)
{
    static struct qb_doctor_report base;
    char lines[MAX_REGRESSIONS][160];
    char *json = NULL;
    size_t len = 0;
    const struct qb_doctor_report *ref = now;
    if (a->base_path) {
        *st = qb_file_read_all(a->base_path, (size_t)16 << 20, &json, &len, err);
        if (!*st)
            *st = qb_doctor_from_json(json, len, a->base_path, &base, err);
        free(json);
        if (*st)
            return 0;
        ref = &base;
    }
    int n = qb_doctor_compare(now, ref, lines, MAX_REGRESSIONS);
    for (int i = 0; i < n && i < MAX_REGRESSIONS; i++)
        fprintf(stderr, "quantbench doctor: regressed: %s\n", lines[i]);
    return n;
}

int qb_cmd_doctor(int argc, char **argv)
{
    struct doctor_args a;
    int rc = parse_args(argc, argv, &a);
    if (rc >= 0)
        return rc;
    static struct qb_doctor_report report;
    struct qb_err err = {0};
    struct qb_cli_progress bar;
    struct qb_progress *progress = qb_progress_create();
    if (!progress)
        return 1;
    qb_cli_progress_attach(&bar, a.progress, progress);
    qb_progress_begin(progress, QB_JOB_DOCTOR, "starting");
    enum qb_status st = qb_doctor_run(&a.o, progress, &report, &err);
    qb_progress_finish(progress, st, &err);
    qb_cli_progress_clear(&bar);
    qb_progress_free(progress);
    if (st) {
        qb_err_print(&err);
        return qb_status_exit_code(st);
    }
    if (a.json) {
        cJSON *j = qb_doctor_to_json(&report);
        char *s = cJSON_Print(j);
        printf("%s\n", s ? s : "{}");
        free(s);
        cJSON_Delete(j);
    } else {
        print_text(&report);
    }
    if (a.save_path) {
        st = save_report(a.save_path, &report, &err);
        if (st) {
            qb_err_print(&err);
            return 1;
        }
    }
    int bad = count_regressions(&a, &report, &err, &st);
    if (st) {
        qb_err_print(&err);
        return 1;
    }
    return bad ? 1 : 0;
}
