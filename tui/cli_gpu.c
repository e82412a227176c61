/*
 * cli_gpu.c - `quantbench gpu [--watch [SECONDS]] [--count N] [--json]`: GPU
 * telemetry (core/telemetry.h) as a table for people or JSON for scripts.
 *
 * One sample per refresh, taken on this thread (no sampler thread: the refresh
 * period is the sampling period). With no driver or no GPU the reason goes to
 * stderr once, JSON is {"gpus": []}, and the exit code is still 0: having no
 * GPU is a fact to report, not a failure. --watch runs until SIGINT (or N
 * refreshes with --count); Ctrl-C ends it with exit 0.
 */
#include <getopt.h>
#include <math.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "telemetry.h"

#define WATCH_DEFAULT_S 1.0
#define WATCH_MIN_S 0.01
#define WATCH_MAX_S 86400.0

static volatile sig_atomic_t interrupted; /* the one signal flag */

static void on_sigint(int sig)
{
    (void)sig;
    interrupted = 1;
}

struct gpu_opts {
    int json;
    int watch;
    double period_s;
    long count; /* refreshes; 0 = until Ctrl-C */
};

static void print_help(void)
{
    printf("usage: quantbench gpu [--watch [SECONDS]] [--count N] [--json]\n\n"
           "GPU telemetry from NVML: memory, clocks (and their maxima), utilization,\n"
           "temperature, power draw and limit, clock-event (throttle) reasons and this\n"
           "process's GPU memory, for every NVIDIA GPU. N/A (null in JSON) where the driver\n"
           "has no answer. On unified-memory GPUs (DGX Spark GB10), where NVML does not\n"
           "report memory, memory is the system's from /proc/meminfo (source \"system\").\n\n"
           "options:\n"
           "  --watch [SECONDS]  refresh every SECONDS (default 1) until Ctrl-C\n"
           "  --count N          stop after N refreshes (implies --watch)\n"
           "  --json             JSON on stdout; with --watch, one document per line\n"
           "  -h, --help         show this help\n\n"
           "JSON: {\"gpus\": [{\"index\", \"name\", \"uuid\", \"compute_capability\",\n"
           "  \"driver_version\", \"cuda_driver_version\", \"memory\": {\"used_bytes\",\n"
           "  \"total_bytes\", \"source\": \"nvml\"|\"system\"}, \"process_memory_bytes\",\n"
           "  \"clocks_mhz\": {\"graphics\", \"sm\", \"mem\", \"graphics_max\", \"sm_max\",\n"
           "  \"mem_max\"}, \"utilization_pct\": {\"gpu\", \"mem\"}, \"temperature_c\",\n"
           "  \"power_w\", \"power_limit_w\", \"throttle_reasons\": [...]}]}\n\n"
           "environment:\n"
           "  QUANTBENCH_NVML_LIB  libnvidia-ml to load (default libnvidia-ml.so.1, then\n"
           "                       libnvidia-ml.so)\n"
           "With no driver or GPU, the reason is printed on stderr and the exit code is 0.\n");
}

static int parse_seconds(const char *s, double *out)
{
    char *end = NULL;
    double v = strtod(s, &end);
    if (end == s || *end != '\0' || !isfinite(v) || v < WATCH_MIN_S || v > WATCH_MAX_S)
        return -1;
    *out = v;
    return 0;
}

/* `--watch 5` as well as `--watch=5`: a following word that is a number is
 * the period. Returns 2 (after printing) on a usage error, else 0. */
static int parse_watch(int argc, char **argv, struct gpu_opts *o)
{
    o->watch = 1;
    const char *arg = optarg;
    if (!arg && optind < argc && argv[optind][0] != '-' &&
        parse_seconds(argv[optind], &o->period_s) == 0) {
        optind++;
        return 0;
    }
    if (arg && parse_seconds(arg, &o->period_s) != 0)
        return qb_cli_usage_error("gpu", "--watch wants seconds between %g and %g, not '%s'",
                                  WATCH_MIN_S, WATCH_MAX_S, arg);
    return 0;
}

/* Returns -1 to go on, else the exit code (0 after --help, 2 on a usage error). */
static int parse_args(int argc, char **argv, struct gpu_opts *o)
{
    static const struct option longopts[] = {
        {"watch", optional_argument, NULL, 'w'},
        {"count", required_argument, NULL, 'n'},
        {"json", no_argument, NULL, 'j'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    *o = (struct gpu_opts){.period_s = WATCH_DEFAULT_S};
    optind = 1;
    opterr = 0;
    for (;;) {
        int c = getopt_long(argc, argv, "+h", longopts, NULL);
        if (c == -1)
            break;
        switch (c) {
        case 'w':
            if (parse_watch(argc, argv, o))
                return 2;
            break;
        case 'n':
            if (qb_cli_parse_int(optarg, 1, 1000000000L, &o->count) != 0)
                return qb_cli_usage_error("gpu", "--count wants a number of refreshes >= 1, "
                                                 "not '%s'", optarg);
            o->watch = 1;
            break;
        case 'j':
            o->json = 1;
            break;
        case 'h':
            print_help();
            return 0;
        default:
            return qb_cli_usage_error("gpu", "unknown or incomplete option '%s'",
                                      argv[optind - 1]);
        }
    }
    if (optind < argc)
        return qb_cli_usage_error("gpu", "unexpected argument '%s'", argv[optind]);
    return -1;
}

static int print_json(const struct qb_tel_snapshot *s, int one_line)
{
    char *text = qb_tel_snapshot_json(s, !one_line);
    if (!text) {
        fprintf(stderr, "quantbench: out of memory while writing the GPU JSON\n");
        return 1;
    }
    printf("%s\n", text);
    free(text);
    return 0;
}

static void print_watch_header(const struct gpu_opts *o, int first)
{
    char when[32];
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    strftime(when, sizeof when, "%H:%M:%S", &tm);
    if (isatty(STDOUT_FILENO))
        printf("\033[H\033[2J");
    else if (!first)
        printf("\n");
    printf("quantbench gpu - %s - every %gs (Ctrl-C to stop)\n\n", when, o->period_s);
}

/* Sleep until `deadline` (qb_now_seconds) or a Ctrl-C. */
static void sleep_until(double deadline)
{
    for (;;) {
        double left = deadline - qb_now_seconds();
        if (left <= 0 || interrupted)
            return;
        double slice = QB_MIN(left, 0.1);
        struct timespec ts = {.tv_sec = (time_t)slice,
                              .tv_nsec = (long)((slice - floor(slice)) * 1e9)};
        nanosleep(&ts, NULL);
    }
}

static int show(struct qb_tel *tel, const struct gpu_opts *o, int first)
{
    struct qb_tel_snapshot *s = malloc(sizeof *s);
    if (!s) {
        fprintf(stderr, "quantbench: out of memory for a GPU sample\n");
        return 1;
    }
    qb_tel_sample_now(tel, s);
    int rc = 0;
    if (o->json) {
        rc = print_json(s, o->watch);
    } else {
        if (o->watch)
            print_watch_header(o, first);
        qb_tel_print_table(stdout, s);
    }
    fflush(stdout);
    free(s);
    return rc;
}

static int watch_loop(struct qb_tel *tel, const struct gpu_opts *o)
{
    struct sigaction sa = {.sa_handler = on_sigint}, old_int, old_term;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, &old_int);
    sigaction(SIGTERM, &sa, &old_term);
    int rc = 0;
    double next = qb_now_seconds();
    for (long i = 0; !interrupted && (o->count == 0 || i < o->count); i++) {
        if (i > 0)
            sleep_until(next);
        if (interrupted)
            break;
        rc = show(tel, o, i == 0);
        if (rc)
            break;
        next += o->period_s;
    }
    sigaction(SIGINT, &old_int, NULL);
    sigaction(SIGTERM, &old_term, NULL);
    return rc;
}

int qb_cmd_gpu(int argc, char **argv)
{
    struct gpu_opts o;
    int rc = parse_args(argc, argv, &o);
    if (rc >= 0)
        return rc;
    struct qb_err err = {0};
    struct qb_tel *tel = NULL;
    if (qb_tel_create(NULL, &tel, &err) != QB_OK) {
        qb_err_print(&err);
        return 1;
    }
    const char *notice = qb_tel_take_notice(tel);
    if (notice)
        fprintf(stderr, "quantbench gpu: %s\n", notice);
    if (qb_tel_device_count(tel) == 0) {
        /* Nothing to watch: one empty document for scripts, and done. */
        rc = o.json ? print_json(&(struct qb_tel_snapshot){0}, 0) : 0;
    } else if (o.watch) {
        rc = watch_loop(tel, &o);
    } else {
        rc = show(tel, &o, 1);
    }
    qb_tel_free(tel);
    return rc;
}
