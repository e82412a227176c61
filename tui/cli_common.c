/*
 * cli_common.c - the command table and helpers shared by the CLI commands.
 */
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>

const struct qb_cli_command qb_cli_commands[] = {
    {"eval", qb_cmd_eval, "perplexity of a model (optionally quantized) on a text file"},
    {"compare", qb_cmd_compare, "several schemes side by side against the baseline"},
    {"quantize", qb_cmd_quantize, "quantize a model and write it to disk"},
    {"bench", qb_cmd_bench, "prefill and decode tokens/s (llama-bench style)"},
    {"synth", qb_cmd_synth, "random-weight checkpoint with a real model's shapes"},
    {"tokenize", qb_cmd_tokenize, "token ids of stdin (or text of ids with --decode)"},
    {"search", qb_cmd_search, "search the Hugging Face Hub for text-generation models"},
    {"info", qb_cmd_info, "files, size and config of a Hub model"},
    {"pull", qb_cmd_pull, "download a Hub model into the shared cache"},
    {"list", qb_cmd_list, "models in the local cache"},
    {"gpu", qb_cmd_gpu, "GPU telemetry (memory, clocks, utilization, power)"},
    {"doctor", qb_cmd_doctor, "driver-update sanity check: kernels, bandwidth, perplexity"},
    {NULL, NULL, NULL},
};

int qb_cli_usage_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "quantbench %s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\ntry 'quantbench %s --help'\n", cmd);
    return 2;
}

int qb_cli_parse_int(const char *s, long min, long max, long *out)
{
    if (!s || !*s)
        return -1;
    char *end = NULL;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end != '\0' || v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

void qb_cli_print_version(FILE *f)
{
#ifdef QB_HAVE_CUDA
    const char *cuda = "cuda";
#else
    const char *cuda = "cpu-only";
#endif
#if defined(__aarch64__)
    const char *arch = "arm64";
#elif defined(__x86_64__)
    const char *arch = "x86_64";
#else
    const char *arch = "generic";
#endif
    fprintf(f, "quantbench %s\nbuild: %s, %s, %s %s\n", QB_VERSION, arch, cuda, __DATE__,
            __TIME__);
}
