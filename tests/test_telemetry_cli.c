/*
 * test_telemetry_cli.c - `quantbench gpu` end to end: the built binary
 * (QB_BINARY) run against the fake libnvidia-ml (QUANTBENCH_NVML_LIB, mode in
 * FAKE_NVML_MODE; values in tests/fake_nvml/fake_nvml.c), its JSON parsed with
 * cJSON and checked field by field, the table, --watch, Ctrl-C, usage errors.
 * Not arm64-labelled: it executes a second binary, which qemu-user cannot.
 */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "qb_common.h"

extern char **environ;

#define MIB (1024.0 * 1024)
#define GIB (1024.0 * MIB)

struct run {
    pid_t pid;
    int exit_code; /* -1 when killed by a signal */
    char *out, *err;
    char out_path[64], err_path[64];
};

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s", path);
    char *buf = NULL;
    size_t len = 0, cap = 0;
    for (int c = fgetc(f); c != EOF; c = fgetc(f)) {
        if (len + 2 > cap) {
            cap = cap ? cap * 2 : 4096;
            buf = realloc(buf, cap);
            cr_assert_not_null(buf);
        }
        buf[len++] = (char)c;
    }
    fclose(f);
    if (!buf)
        buf = calloc(1, 1);
    buf[len] = '\0';
    return buf;
}

/* Start `quantbench ARGS...` with stdout/stderr into temp files. */
static void start(struct run *r, const char *const *args)
{
    const char *argv[16] = {QB_BINARY};
    size_t n = 1;
    for (; args[n - 1]; n++)
        argv[n] = args[n - 1];
    argv[n] = NULL;
    snprintf(r->out_path, sizeof r->out_path, "/tmp/qb-gpu-out-XXXXXX");
    snprintf(r->err_path, sizeof r->err_path, "/tmp/qb-gpu-err-XXXXXX");
    int out_fd = mkstemp(r->out_path), err_fd = mkstemp(r->err_path);
    cr_assert(out_fd >= 0 && err_fd >= 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out_fd, 1);
    posix_spawn_file_actions_adddup2(&fa, err_fd, 2);
    int rc = posix_spawn(&r->pid, QB_BINARY, &fa, NULL, (char *const *)argv, environ);
    cr_assert_eq(rc, 0, "spawn %s: %s", QB_BINARY, strerror(rc));
    posix_spawn_file_actions_destroy(&fa);
    close(out_fd);
    close(err_fd);
}

static void finish(struct run *r)
{
    int status = 0;
    cr_assert_eq(waitpid(r->pid, &status, 0), r->pid);
    r->exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
    r->out = slurp(r->out_path);
    r->err = slurp(r->err_path);
    unlink(r->out_path);
    unlink(r->err_path);
}

static struct run run_gpu(const char *mode, const char *const *args)
{
    setenv("QUANTBENCH_NVML_LIB", QB_FAKE_NVML, 1);
    setenv("FAKE_NVML_MODE", mode, 1);
    struct run r;
    start(&r, args);
    finish(&r);
    return r;
}

static void run_free(struct run *r)
{
    free(r->out);
    free(r->err);
}

/* obj.a.b... as a JSON item (asserting it exists). */
static cJSON *at(const cJSON *obj, const char *key, const char *sub)
{
    cJSON *item = cJSON_GetObjectItemCaseSensitive(obj, key);
    cr_assert_not_null(item, "missing '%s'", key);
    if (sub) {
        item = cJSON_GetObjectItemCaseSensitive(item, sub);
        cr_assert_not_null(item, "missing '%s.%s'", key, sub);
    }
    return item;
}

static void expect_num(const cJSON *obj, const char *key, const char *sub, double want)
{
    cJSON *item = at(obj, key, sub);
    cr_assert(cJSON_IsNumber(item), "%s.%s is not a number", key, sub ? sub : "");
    cr_assert_eq(item->valuedouble, want, "%s.%s: %.17g, want %.17g", key, sub ? sub : "",
                 item->valuedouble, want);
}

static void expect_str(const cJSON *obj, const char *key, const char *sub, const char *want)
{
    cJSON *item = at(obj, key, sub);
    cr_assert(cJSON_IsString(item), "%s is not a string", key);
    cr_assert_str_eq(item->valuestring, want, "%s", key);
}

static void expect_null(const cJSON *obj, const char *key, const char *sub)
{
    cr_assert(cJSON_IsNull(at(obj, key, sub)), "%s.%s should be null", key, sub ? sub : "");
}

static void expect_strings(const cJSON *arr, const char *const *want, int n)
{
    cr_assert(cJSON_IsArray(arr));
    cr_assert_eq(cJSON_GetArraySize(arr), n);
    for (int i = 0; i < n; i++)
        cr_assert_str_eq(cJSON_GetArrayItem(arr, i)->valuestring, want[i]);
}

static cJSON *parse_gpus(const char *text, int n_gpus)
{
    cJSON *root = cJSON_Parse(text);
    cr_assert_not_null(root, "not JSON: %s", text);
    cr_assert_eq(cJSON_GetArraySize(root), 1, "only \"gpus\" at the top");
    cJSON *gpus = cJSON_GetObjectItemCaseSensitive(root, "gpus");
    cr_assert(cJSON_IsArray(gpus));
    cr_assert_eq(cJSON_GetArraySize(gpus), n_gpus);
    return root;
}

/* ---- normal ------------------------------------------------------------------------ */

Test(gpu_cli, json_every_field)
{
    struct run r = run_gpu("normal", (const char *[]){"gpu", "--json", NULL});
    cr_assert_eq(r.exit_code, 0, "stderr: %s", r.err);
    cr_assert_str_eq(r.err, "");
    cJSON *root = parse_gpus(r.out, 2);
    cJSON *g = cJSON_GetArrayItem(cJSON_GetObjectItem(root, "gpus"), 0);
    cr_assert_eq(cJSON_GetArraySize(g), 14, "field count");
    expect_num(g, "index", NULL, 0);
    expect_str(g, "name", NULL, "NVIDIA H100 80GB HBM3");
    expect_str(g, "uuid", NULL, "GPU-00000000-1111-2222-3333-444444444444");
    expect_str(g, "compute_capability", NULL, "9.0");
    expect_str(g, "driver_version", NULL, "580.159.04");
    expect_str(g, "cuda_driver_version", NULL, "13.0");
    expect_num(g, "memory", "used_bytes", 1234 * MIB);
    expect_num(g, "memory", "total_bytes", 81559 * MIB);
    expect_str(g, "memory", "source", "nvml");
    cr_assert_eq(cJSON_GetArraySize(at(g, "memory", NULL)), 3);
    expect_num(g, "process_memory_bytes", NULL, 512 * MIB);
    expect_num(g, "clocks_mhz", "graphics", 1410);
    expect_num(g, "clocks_mhz", "sm", 1425);
    expect_num(g, "clocks_mhz", "mem", 2619);
    expect_num(g, "clocks_mhz", "graphics_max", 1980);
    expect_num(g, "clocks_mhz", "sm_max", 1995);
    expect_num(g, "clocks_mhz", "mem_max", 2620);
    cr_assert_eq(cJSON_GetArraySize(at(g, "clocks_mhz", NULL)), 6);
    expect_num(g, "utilization_pct", "gpu", 37);
    expect_num(g, "utilization_pct", "mem", 12);
    cr_assert_eq(cJSON_GetArraySize(at(g, "utilization_pct", NULL)), 2);
    expect_num(g, "temperature_c", NULL, 41);
    expect_num(g, "power_w", NULL, 68.123);
    expect_num(g, "power_limit_w", NULL, 700);
    expect_strings(at(g, "throttle_reasons", NULL), (const char *[]){"gpu_idle", "sw_power_cap"},
                   2);

    g = cJSON_GetArrayItem(cJSON_GetObjectItem(root, "gpus"), 1);
    expect_num(g, "index", NULL, 1);
    expect_str(g, "name", NULL, "NVIDIA Fake L40S");
    expect_str(g, "compute_capability", NULL, "8.9");
    expect_num(g, "memory", "used_bytes", 0);
    expect_num(g, "memory", "total_bytes", 46068 * MIB);
    expect_num(g, "process_memory_bytes", NULL, 4 * MIB);
    expect_num(g, "clocks_mhz", "mem_max", 9001);
    expect_num(g, "utilization_pct", "gpu", 0);
    expect_num(g, "temperature_c", NULL, 30);
    expect_num(g, "power_w", NULL, 35.25);
    expect_num(g, "power_limit_w", NULL, 350);
    expect_strings(at(g, "throttle_reasons", NULL),
                   (const char *[]){"applications_clocks_setting", "hw_slowdown", "sync_boost",
                                    "sw_thermal", "hw_thermal", "hw_power_brake",
                                    "display_clock"},
                   7);
    cJSON_Delete(root);
    run_free(&r);
}

Test(gpu_cli, table)
{
    struct run r = run_gpu("normal", (const char *[]){"gpu", NULL});
    cr_assert_eq(r.exit_code, 0, "stderr: %s", r.err);
    static const char *const want[] = {
        "GPU 0  NVIDIA H100 80GB HBM3\n",
        "  memory         1.21 GiB used of 79.65 GiB (nvml)\n",
        "  clock sm       1425 MHz (max 1995 MHz)\n",
        "  power          68.12 W of 700.00 W limit\n",
        "  throttle       gpu_idle, sw_power_cap\n",
        "GPU 1  NVIDIA Fake L40S\n",
        "  temperature    30 C\n",
    };
    for (size_t i = 0; i < QB_ARRAY_LEN(want); i++)
        cr_assert(strstr(r.out, want[i]), "missing '%s' in:\n%s", want[i], r.out);
    run_free(&r);
}

/* ---- GB10 ------------------------------------------------------------------------------ */

Test(gpu_cli, gb10_system_memory)
{
    char path[] = "/tmp/qb-meminfo-XXXXXX";
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    const char body[] = "MemTotal:       127535604 kB\nMemAvailable:   80000000 kB\n";
    cr_assert_eq(write(fd, body, sizeof body - 1), (ssize_t)(sizeof body - 1));
    close(fd);
    setenv("QUANTBENCH_MEMINFO_PATH", path, 1);
    struct run r = run_gpu("gb10", (const char *[]){"gpu", "--json", NULL});
    unlink(path);
    cr_assert_eq(r.exit_code, 0, "stderr: %s", r.err);
    cJSON *root = parse_gpus(r.out, 1);
    cJSON *g = cJSON_GetArrayItem(cJSON_GetObjectItem(root, "gpus"), 0);
    expect_str(g, "name", NULL, "NVIDIA GB10");
    expect_str(g, "compute_capability", NULL, "12.1");
    expect_str(g, "memory", "source", "system");
    expect_num(g, "memory", "total_bytes", 127535604.0 * 1024);
    expect_num(g, "memory", "used_bytes", (127535604.0 - 80000000.0) * 1024);
    expect_num(g, "process_memory_bytes", NULL, 37 * GIB);
    expect_null(g, "power_limit_w", NULL);
    expect_num(g, "power_w", NULL, 41);
    expect_strings(at(g, "throttle_reasons", NULL), NULL, 0);
    cJSON_Delete(root);
    run_free(&r);
}

/* ---- failures ---------------------------------------------------------------------------- */

Test(gpu_cli, watch_json_call_failing_midrun_becomes_null)
{
    struct run r = run_gpu("fail_midrun",
                           (const char *[]){"gpu", "--watch", "0.05", "--count", "3", "--json",
                                            NULL});
    cr_assert_eq(r.exit_code, 0, "stderr: %s", r.err);
    /* one document per line */
    char *save = NULL;
    int line = 0;
    for (char *doc = strtok_r(r.out, "\n", &save); doc; doc = strtok_r(NULL, "\n", &save)) {
        cJSON *root = parse_gpus(doc, 2);
        cJSON *g = cJSON_GetArrayItem(cJSON_GetObjectItem(root, "gpus"), 0);
        expect_str(g, "name", NULL, "NVIDIA H100 80GB HBM3");
        expect_num(g, "clocks_mhz", "graphics_max", 1980);
        expect_num(g, "utilization_pct", "gpu", 37);
        if (line == 0) {
            expect_num(g, "temperature_c", NULL, 41);
            expect_num(g, "memory", "used_bytes", 1234 * MIB);
            expect_num(g, "power_w", NULL, 68.123);
        } else {
            expect_null(g, "temperature_c", NULL);
            expect_null(g, "memory", "used_bytes");
            expect_null(g, "memory", "total_bytes");
            expect_null(g, "memory", "source");
            expect_null(g, "power_w", NULL);
            expect_null(g, "clocks_mhz", "graphics");
            expect_null(g, "process_memory_bytes", NULL);
        }
        cJSON_Delete(root);
        line++;
    }
    cr_assert_eq(line, 3);
    run_free(&r);
}

Test(gpu_cli, missing_optional_symbols_are_null)
{
    setenv("FAKE_NVML_MODE", "normal", 1);
    setenv("QUANTBENCH_NVML_LIB", QB_FAKE_NVML_MINIMAL, 1);
    struct run r;
    start(&r, (const char *[]){"gpu", "--json", NULL});
    finish(&r);
    cr_assert_eq(r.exit_code, 0, "stderr: %s", r.err);
    cJSON *root = parse_gpus(r.out, 2);
    cJSON *g = cJSON_GetArrayItem(cJSON_GetObjectItem(root, "gpus"), 0);
    expect_str(g, "name", NULL, "NVIDIA H100 80GB HBM3");
    expect_num(g, "memory", "used_bytes", (1234 + 500) * MIB);
    expect_null(g, "uuid", NULL);
    expect_null(g, "compute_capability", NULL);
    expect_null(g, "driver_version", NULL);
    expect_null(g, "clocks_mhz", "sm");
    expect_null(g, "utilization_pct", "mem");
    expect_null(g, "temperature_c", NULL);
    expect_null(g, "power_w", NULL);
    expect_null(g, "power_limit_w", NULL);
    expect_strings(at(g, "throttle_reasons", NULL), (const char *[]){"gpu_idle", "sw_power_cap"},
                   2);
    cJSON_Delete(root);
    run_free(&r);
}

Test(gpu_cli, no_library_is_empty_list_and_one_notice)
{
    setenv("QUANTBENCH_NVML_LIB", "/nonexistent/libnvidia-ml.so.1", 1);
    struct run r;
    start(&r, (const char *[]){"gpu", "--json", NULL});
    finish(&r);
    cr_assert_eq(r.exit_code, 0);
    cJSON *root = parse_gpus(r.out, 0);
    cJSON_Delete(root);
    cr_assert(strstr(r.err, "quantbench gpu: no NVIDIA driver: cannot load"), "%s", r.err);
    cr_assert_eq(strchr(r.err, '\n'), r.err + strlen(r.err) - 1, "one line: %s", r.err);
    run_free(&r);

    start(&r, (const char *[]){"gpu", "--watch", "0.05", NULL});
    finish(&r); /* nothing to watch: returns at once */
    cr_assert_eq(r.exit_code, 0);
    cr_assert_str_eq(r.out, "");
    cr_assert(strstr(r.err, "no NVIDIA driver"), "%s", r.err);
    run_free(&r);
}

/* ---- watch ------------------------------------------------------------------------------ */

Test(gpu_cli, watch_until_ctrl_c)
{
    setenv("QUANTBENCH_NVML_LIB", QB_FAKE_NVML, 1);
    setenv("FAKE_NVML_MODE", "normal", 1);
    struct run r;
    start(&r, (const char *[]){"gpu", "--watch=0.1", NULL});
    struct timespec ts = {.tv_sec = 0, .tv_nsec = 450 * 1000 * 1000};
    nanosleep(&ts, NULL);
    cr_assert_eq(kill(r.pid, SIGINT), 0);
    finish(&r);
    cr_assert_eq(r.exit_code, 0, "Ctrl-C ends --watch cleanly; stderr: %s", r.err);
    int frames = 0;
    for (const char *p = strstr(r.out, "quantbench gpu - "); p;
         p = strstr(p + 1, "quantbench gpu - "))
        frames++;
    cr_assert_geq(frames, 2, "%s", r.out);
    cr_assert(strstr(r.out, "every 0.1s"), "%s", r.out);
    cr_assert(strstr(r.out, "GPU 1  NVIDIA Fake L40S"), "%s", r.out);
    run_free(&r);
}

Test(gpu_cli, watch_period_is_respected)
{
    double t0 = qb_now_seconds();
    struct run r = run_gpu("normal", (const char *[]){"gpu", "--count", "3", "--watch", "0.2",
                                                      "--json", NULL});
    double elapsed = qb_now_seconds() - t0;
    cr_assert_eq(r.exit_code, 0, "stderr: %s", r.err);
    int lines = 0;
    for (const char *p = r.out; *p; p++)
        lines += *p == '\n';
    cr_assert_eq(lines, 3);
    cr_assert_geq(elapsed, 0.4, "3 refreshes 0.2 s apart took %.3f s", elapsed);
    run_free(&r);
}

/* ---- usage -------------------------------------------------------------------------------- */

Test(gpu_cli, help_and_usage_errors)
{
    struct run r = run_gpu("normal", (const char *[]){"gpu", "--help", NULL});
    cr_assert_eq(r.exit_code, 0);
    cr_assert(strstr(r.out, "usage: quantbench gpu [--watch [SECONDS]]"), "%s", r.out);
    run_free(&r);
    static const char *const bad[][4] = {
        {"gpu", "--bogus", NULL},   {"gpu", "--watch=abc", NULL},
        {"gpu", "--watch=0", NULL}, {"gpu", "--count", "0", NULL},
        {"gpu", "extra", NULL},     {"gpu", "--watch", "-1", NULL},
        {"gpu", "--count", NULL},
    };
    for (size_t i = 0; i < QB_ARRAY_LEN(bad); i++) {
        r = run_gpu("normal", (const char *const *)bad[i]);
        cr_assert_eq(r.exit_code, 2, "case %zu: exit %d", i, r.exit_code);
        cr_assert(strstr(r.err, "quantbench gpu: "), "case %zu: %s", i, r.err);
        cr_assert(strstr(r.err, "try 'quantbench gpu --help'"), "case %zu: %s", i, r.err);
        cr_assert_str_eq(r.out, "", "case %zu", i);
        run_free(&r);
    }
}
