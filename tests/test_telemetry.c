/*
 * test_telemetry.c - the telemetry module against a fake libnvidia-ml
 * (tests/fake_nvml/fake_nvml.c; its header comment lists the modes and values):
 * normal answers, GB10 unified memory, a call failing mid-run, missing
 * optional and required symbols, no library at all; plus the history ring,
 * the sampler thread, the meminfo parser and the JSON/table formatting.
 * qb-test-labels: arm64
 */
#include <cjson/cJSON.h>
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "telemetry.h"

#define MIB (1024ULL * 1024)
#define GIB (1024ULL * MIB)

/* ---- helpers ------------------------------------------------------------------- */

static struct qb_tel *open_fake(const char *lib, const char *mode, size_t history_len)
{
    if (mode)
        setenv("FAKE_NVML_MODE", mode, 1);
    else
        unsetenv("FAKE_NVML_MODE");
    struct qb_tel_config cfg = {.nvml_path = lib, .history_len = history_len};
    struct qb_tel *tel = NULL;
    struct qb_err err = {0};
    cr_assert_eq(qb_tel_create(&cfg, &tel, &err), QB_OK, "create: %s", err.msg);
    cr_assert_not_null(tel);
    return tel;
}

static struct qb_tel_snapshot *sample(struct qb_tel *tel)
{
    struct qb_tel_snapshot *s = malloc(sizeof *s);
    cr_assert_not_null(s);
    qb_tel_sample_now(tel, s);
    return s;
}

static void sleep_s(double s)
{
    struct timespec ts = {.tv_sec = (time_t)s, .tv_nsec = (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

/* A meminfo file in /tmp with the given body; returns its malloced path. */
static char *write_meminfo(const char *body)
{
    char *path = strdup("/tmp/qb-meminfo-XXXXXX");
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    FILE *f = fdopen(fd, "w");
    fputs(body, f);
    fclose(f);
    return path;
}

#define ASSERT_VALID(g, field) \
    cr_assert(qb_tel_has((g), (field)), "field %d should be valid", field)
#define ASSERT_NA(g, field) cr_assert(!qb_tel_has((g), (field)), "field %d should be N/A", field)

/* ---- ring ------------------------------------------------------------------------ */

Test(ring, keeps_newest_in_order_across_wraparound)
{
    struct qb_tel_ring *r = qb_tel_ring_create(4);
    cr_assert_not_null(r);
    float v[8];
    unsigned char ok[8];
    cr_assert_eq(qb_tel_ring_copy(r, v, ok, 8), 0);
    for (int i = 1; i <= 3; i++)
        qb_tel_ring_push(r, (float)i, 1);
    cr_assert_eq(qb_tel_ring_copy(r, v, ok, 8), 3);
    cr_assert(v[0] == 1 && v[1] == 2 && v[2] == 3);
    for (int i = 4; i <= 10; i++) /* wraps: slots reused several times */
        qb_tel_ring_push(r, (float)i, i != 9);
    cr_assert_eq(qb_tel_ring_len(r), 4);
    cr_assert_eq(qb_tel_ring_capacity(r), 4);
    cr_assert_eq(qb_tel_ring_copy(r, v, ok, 8), 4);
    float want[4] = {7, 8, 9, 10};
    unsigned char want_ok[4] = {1, 1, 0, 1};
    for (int i = 0; i < 4; i++) {
        cr_assert_eq(ok[i], want_ok[i], "slot %d", i);
        if (ok[i])
            cr_assert(v[i] == want[i], "slot %d: %g", i, (double)v[i]);
    }
    /* fewer than len: the newest ones, still oldest first */
    cr_assert_eq(qb_tel_ring_copy(r, v, ok, 2), 2);
    cr_assert(v[0] == 9 || !ok[0]);
    cr_assert(v[1] == 10 && ok[1]);
    qb_tel_ring_free(r);
}

Test(ring, capacity_one_and_zero)
{
    cr_assert_null(qb_tel_ring_create(0));
    struct qb_tel_ring *r = qb_tel_ring_create(1);
    float v;
    unsigned char ok;
    qb_tel_ring_push(r, 5, 1);
    qb_tel_ring_push(r, 6, 1);
    cr_assert_eq(qb_tel_ring_copy(r, &v, &ok, 1), 1);
    cr_assert(v == 6 && ok);
    qb_tel_ring_free(r);
    qb_tel_ring_free(NULL);
}

/* ---- meminfo ----------------------------------------------------------------------- */

Test(meminfo, parses_total_and_available)
{
    const char *text = "MemTotal:       128000000 kB\nMemFree:         1000 kB\n"
                       "MemAvailable:   100000000 kB\nBuffers:  1 kB\n";
    uint64_t total = 0, avail = 0;
    struct qb_err err = {0};
    cr_assert_eq(qb_tel_parse_meminfo(text, strlen(text), "t", &total, &avail, &err), QB_OK);
    cr_assert_eq(total, 128000000ULL * 1024);
    cr_assert_eq(avail, 100000000ULL * 1024);
}

Test(meminfo, rejects_bad_input_with_a_message)
{
    static const struct {
        const char *text, *needle;
    } cases[] = {
        {"MemTotal: 100 kB\n", "no MemAvailable"},
        {"MemAvailable: 100 kB\n", "no MemTotal"},
        {"MemTotal: 100 MB\nMemAvailable: 10 kB\n", "bad MemTotal"},
        {"MemTotal: abc kB\nMemAvailable: 10 kB\n", "bad MemTotal"},
        {"MemTotal: 99999999999999999999999 kB\nMemAvailable: 1 kB\n", "bad MemTotal"},
        /* 2^54 kB: the value fits, the bytes (* 1024) would not */
        {"MemTotal: 18014398509481984 kB\nMemAvailable: 1 kB\n", "bad MemTotal"},
        {"MemTotal: 10 kB\nMemAvailable: 20 kB\n", "exceeds"},
        {"MemTotalX: 10 kB\nMemAvailable: 5 kB\n", "no MemTotal"},
        {"", "no MemTotal"},
    };
    for (size_t i = 0; i < QB_ARRAY_LEN(cases); i++) {
        uint64_t t, a;
        struct qb_err err = {0};
        enum qb_status st = qb_tel_parse_meminfo(cases[i].text, strlen(cases[i].text), "f.txt",
                                                 &t, &a, &err);
        cr_assert_eq(st, QB_ERR_FORMAT, "case %zu", i);
        cr_assert(strstr(err.msg, cases[i].needle), "case %zu: '%s'", i, err.msg);
        cr_assert(strstr(err.msg, "f.txt"), "case %zu names the file: '%s'", i, err.msg);
    }
}

Test(meminfo, stops_at_len_without_a_terminating_nul)
{
    const char text[] = "MemTotal: 100 kB\nMemAvailable: 40 kB\nMemAvailable: 99";
    uint64_t t, a;
    /* cut inside the second line: MemAvailable is then absent */
    cr_assert_eq(qb_tel_parse_meminfo(text, 20, "t", &t, &a, NULL), QB_ERR_FORMAT);
    cr_assert_eq(qb_tel_parse_meminfo(text, 37, "t", &t, &a, NULL), QB_OK);
    cr_assert_eq(a, 40 * 1024);
}

/* ---- throttle names ------------------------------------------------------------------- */

Test(throttle, decodes_every_bit_in_order)
{
    const char *names[16];
    cr_assert_eq(qb_tel_throttle_names(0, names, 16), 0);
    size_t n = qb_tel_throttle_names(0x1ff | 0x10000, names, 16);
    const char *want[] = {"gpu_idle",   "applications_clocks_setting", "sw_power_cap",
                          "hw_slowdown", "sync_boost", "sw_thermal", "hw_thermal",
                          "hw_power_brake", "display_clock"};
    cr_assert_eq(n, 9);
    for (size_t i = 0; i < n; i++)
        cr_assert_str_eq(names[i], want[i]);
    cr_assert_eq(qb_tel_throttle_names(0x1ff, names, 2), 2);
}

/* ---- normal answers -------------------------------------------------------------------- */

Test(fake_nvml, normal_reads_every_field)
{
    struct qb_tel *tel = open_fake(QB_FAKE_NVML, "normal", 0);
    cr_assert_eq(qb_tel_device_count(tel), 2);
    cr_assert_null(qb_tel_status(tel));
    cr_assert_null(qb_tel_take_notice(tel));
    struct qb_tel_snapshot *s = sample(tel);
    cr_assert_eq(s->seq, 1);
    cr_assert_eq(s->n_gpus, 2);
    const struct qb_tel_gpu *g = &s->gpus[0];
    for (int f = 0; f < QB_TEL_FIELD_COUNT; f++)
        ASSERT_VALID(g, f);
    cr_assert_eq(g->index, 0);
    cr_assert_str_eq(g->name, "NVIDIA H100 80GB HBM3");
    cr_assert_str_eq(g->uuid, "GPU-00000000-1111-2222-3333-444444444444");
    cr_assert(g->cc_major == 9 && g->cc_minor == 0);
    cr_assert_str_eq(g->driver_version, "580.159.04");
    cr_assert_eq(g->cuda_driver_version, 13000);
    /* the v2 struct (used excludes the 500 MiB reserved), not v1 */
    cr_assert_eq(g->mem_used_bytes, 1234 * MIB);
    cr_assert_eq(g->mem_total_bytes, 81559 * MIB);
    cr_assert_eq(g->mem_source, QB_TEL_MEM_NVML);
    cr_assert_eq(g->clock_graphics_mhz, 1410);
    cr_assert_eq(g->clock_sm_mhz, 1425);
    cr_assert_eq(g->clock_mem_mhz, 2619);
    cr_assert_eq(g->clock_graphics_max_mhz, 1980);
    cr_assert_eq(g->clock_sm_max_mhz, 1995);
    cr_assert_eq(g->clock_mem_max_mhz, 2620);
    cr_assert_eq(g->util_gpu_pct, 37);
    cr_assert_eq(g->util_mem_pct, 12);
    cr_assert_eq(g->temperature_c, 41);
    cr_assert_eq(g->power_mw, 68123);
    cr_assert_eq(g->power_limit_mw, 700000); /* management limit, like nvidia-smi power.limit */
    cr_assert_eq(g->throttle, 0x1 | 0x4 | 0x1000);
    cr_assert_eq(g->process_mem_bytes, 512 * MIB); /* ours only, not pid 4242's */

    g = &s->gpus[1];
    cr_assert_eq(g->index, 1);
    cr_assert_str_eq(g->name, "NVIDIA Fake L40S");
    cr_assert(g->cc_major == 8 && g->cc_minor == 9);
    cr_assert_str_eq(g->driver_version, "580.159.04");
    cr_assert_eq(g->mem_used_bytes, 0);
    ASSERT_VALID(g, QB_TEL_MEM_USED); /* a real zero, not N/A */
    cr_assert_eq(g->clock_mem_max_mhz, 9001);
    cr_assert_eq(g->power_mw, 35250);
    /* 70 processes (buffer regrown), ours listed twice: 3 + 1 MiB */
    cr_assert_eq(g->process_mem_bytes, 4 * MIB);
    free(s);
    qb_tel_free(tel);
}

Test(fake_nvml, env_var_selects_the_library)
{
    setenv("QUANTBENCH_NVML_LIB", QB_FAKE_NVML, 1);
    struct qb_tel *tel = open_fake(NULL, "normal", 0);
    cr_assert_eq(qb_tel_device_count(tel), 2);
    qb_tel_free(tel);
    setenv("QUANTBENCH_NVML_LIB", "/nonexistent/libnvidia-ml.so.1", 1);
    tel = open_fake(NULL, "normal", 0);
    cr_assert_eq(qb_tel_device_count(tel), 0);
    cr_assert(strstr(qb_tel_status(tel), "QUANTBENCH_NVML_LIB"), "%s", qb_tel_status(tel));
    qb_tel_free(tel);
}

Test(fake_nvml, json_has_every_field)
{
    struct qb_tel *tel = open_fake(QB_FAKE_NVML, "normal", 0);
    struct qb_tel_snapshot *s = sample(tel);
    char *text = qb_tel_snapshot_json(s, 1);
    cr_assert_not_null(text);
    cJSON *root = cJSON_Parse(text);
    cr_assert_not_null(root, "%s", text);
    cJSON *g = cJSON_GetArrayItem(cJSON_GetObjectItem(root, "gpus"), 0);
    cr_assert_str_eq(cJSON_GetObjectItem(g, "compute_capability")->valuestring, "9.0");
    cr_assert_str_eq(cJSON_GetObjectItem(g, "cuda_driver_version")->valuestring, "13.0");
    cJSON *power = cJSON_GetObjectItem(g, "power_w");
    cr_assert(cJSON_IsNumber(power));
    cr_assert_eq(power->valuedouble, 68123 / 1000.0); /* unrounded */
    cr_assert(strstr(text, "68.123"), "%s", text);
    cJSON *thr = cJSON_GetObjectItem(g, "throttle_reasons");
    cr_assert_eq(cJSON_GetArraySize(thr), 2);
    cr_assert_str_eq(cJSON_GetArrayItem(thr, 0)->valuestring, "gpu_idle");
    cr_assert_str_eq(cJSON_GetArrayItem(thr, 1)->valuestring, "sw_power_cap");
    cJSON_Delete(root);
    free(text);
    free(s);
    qb_tel_free(tel);
}

Test(fake_nvml, table_shows_values)
{
    struct qb_tel *tel = open_fake(QB_FAKE_NVML, "normal", 0);
    struct qb_tel_snapshot *s = sample(tel);
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    qb_tel_print_table(f, s);
    fclose(f);
    static const char *const want[] = {
        "GPU 0  NVIDIA H100 80GB HBM3\n",
        "  uuid           GPU-00000000-1111-2222-3333-444444444444\n",
        "  compute cap.   9.0\n",
        "  driver         580.159.04 (CUDA 13.0)\n",
        "  memory         1.21 GiB used of 79.65 GiB (nvml)\n",
        "  this process   512.0 MiB\n",
        "  clock graphics 1410 MHz (max 1980 MHz)\n",
        "  clock sm       1425 MHz (max 1995 MHz)\n",
        "  clock memory   2619 MHz (max 2620 MHz)\n",
        "  utilization    gpu 37 %, memory 12 %\n",
        "  temperature    41 C\n",
        "  power          68.12 W of 700.00 W limit\n",
        "  throttle       gpu_idle, sw_power_cap\n",
        "\nGPU 1  NVIDIA Fake L40S\n",
        "  throttle       applications_clocks_setting, hw_slowdown, sync_boost, sw_thermal, "
        "hw_thermal, hw_power_brake, display_clock\n",
    };
    for (size_t i = 0; i < QB_ARRAY_LEN(want); i++)
        cr_assert(strstr(out, want[i]), "missing '%s' in:\n%s", want[i], out);
    cr_assert_null(strstr(out, "N/A"), "%s", out);
    free(out);
    free(s);
    qb_tel_free(tel);
}

/* ---- GB10: unified memory ------------------------------------------------------------- */

Test(fake_nvml, gb10_reports_system_memory)
{
    char *path = write_meminfo("MemTotal:       127535604 kB\nMemFree:         2000000 kB\n"
                               "MemAvailable:   80000000 kB\n");
    setenv("FAKE_NVML_MODE", "gb10", 1);
    struct qb_tel_config cfg = {.nvml_path = QB_FAKE_NVML, .meminfo_path = path};
    struct qb_tel *tel = NULL;
    cr_assert_eq(qb_tel_create(&cfg, &tel, NULL), QB_OK);
    struct qb_tel_snapshot *s = sample(tel);
    const struct qb_tel_gpu *g = &s->gpus[0];
    cr_assert_str_eq(g->name, "NVIDIA GB10");
    cr_assert(g->cc_major == 12 && g->cc_minor == 1);
    cr_assert_eq(g->mem_source, QB_TEL_MEM_SYSTEM);
    cr_assert_eq(g->mem_total_bytes, 127535604ULL * 1024);
    cr_assert_eq(g->mem_used_bytes, (127535604ULL - 80000000ULL) * 1024);
    cr_assert_eq(g->process_mem_bytes, 37 * GIB); /* per-process memory works on GB10 */
    ASSERT_NA(g, QB_TEL_POWER_LIMIT);             /* neither limit call answers */
    ASSERT_VALID(g, QB_TEL_POWER);
    char *text = qb_tel_snapshot_json(s, 0);
    cr_assert(strstr(text, "\"source\":\"system\""), "%s", text);
    cr_assert(strstr(text, "\"power_limit_w\":null"), "%s", text);
    free(text);
    free(s);
    qb_tel_free(tel);
    unlink(path);
    free(path);
}

Test(fake_nvml, gb10_without_meminfo_is_na_not_zero)
{
    setenv("FAKE_NVML_MODE", "gb10", 1);
    struct qb_tel_config cfg = {.nvml_path = QB_FAKE_NVML, .meminfo_path = "/nonexistent/mi"};
    struct qb_tel *tel = NULL;
    cr_assert_eq(qb_tel_create(&cfg, &tel, NULL), QB_OK);
    struct qb_tel_snapshot *s = sample(tel);
    ASSERT_NA(&s->gpus[0], QB_TEL_MEM_USED);
    ASSERT_NA(&s->gpus[0], QB_TEL_MEM_TOTAL);
    cr_assert_eq(s->gpus[0].mem_source, QB_TEL_MEM_NONE);
    char *text = qb_tel_snapshot_json(s, 0);
    cr_assert(strstr(text, "\"memory\":{\"used_bytes\":null,\"total_bytes\":null,"
                           "\"source\":null}"), "%s", text);
    free(text);
    free(s);
    qb_tel_free(tel);
}

/* ---- failing mid-run ------------------------------------------------------------------- */

Test(fake_nvml, failing_call_turns_na_not_stale)
{
    char *path = write_meminfo("MemTotal: 1000 kB\nMemAvailable: 500 kB\n");
    setenv("FAKE_NVML_MODE", "fail_midrun", 1);
    struct qb_tel_config cfg = {.nvml_path = QB_FAKE_NVML, .meminfo_path = path,
                                .history_len = 8};
    struct qb_tel *tel = NULL;
    cr_assert_eq(qb_tel_create(&cfg, &tel, NULL), QB_OK);
    struct qb_tel_snapshot *first = sample(tel);
    struct qb_tel_snapshot *second = sample(tel);
    static const enum qb_tel_field failing[] = {
        QB_TEL_MEM_USED, QB_TEL_MEM_TOTAL, QB_TEL_CLOCK_GRAPHICS, QB_TEL_CLOCK_SM,
        QB_TEL_CLOCK_MEM, QB_TEL_TEMPERATURE, QB_TEL_POWER, QB_TEL_PROCESS_MEM};
    static const enum qb_tel_field working[] = {
        QB_TEL_NAME, QB_TEL_UUID, QB_TEL_CLOCK_GRAPHICS_MAX, QB_TEL_UTIL_GPU,
        QB_TEL_POWER_LIMIT, QB_TEL_THROTTLE};
    for (int i = 0; i < 2; i++) {
        for (size_t k = 0; k < QB_ARRAY_LEN(failing); k++) {
            ASSERT_VALID(&first->gpus[i], failing[k]);
            ASSERT_NA(&second->gpus[i], failing[k]);
        }
        for (size_t k = 0; k < QB_ARRAY_LEN(working); k++)
            ASSERT_VALID(&second->gpus[i], working[k]);
        /* an UNKNOWN error is not the unified-memory signal: no system fallback */
        cr_assert_eq(second->gpus[i].mem_source, QB_TEL_MEM_NONE);
    }
    /* the latest snapshot and the history agree */
    struct qb_tel_snapshot latest;
    qb_tel_read(tel, &latest);
    cr_assert_eq(latest.seq, 2);
    ASSERT_NA(&latest.gpus[0], QB_TEL_TEMPERATURE);
    float v[8];
    unsigned char ok[8];
    cr_assert_eq(qb_tel_history(tel, 0, QB_TEL_TEMPERATURE, v, ok, 8), 2);
    cr_assert(ok[0] && v[0] == 41 && !ok[1]);
    char *text = qb_tel_snapshot_json(second, 0);
    cr_assert(strstr(text, "\"temperature_c\":null"), "%s", text);
    cr_assert(strstr(text, "\"power_w\":null"), "%s", text);
    cr_assert(strstr(text, "\"graphics\":null"), "%s", text);
    cr_assert(strstr(text, "\"graphics_max\":1980"), "%s", text);
    free(text);
    free(first);
    free(second);
    qb_tel_free(tel);
    unlink(path);
    free(path);
}

/* ---- missing symbols and missing driver ------------------------------------------------ */

Test(fake_nvml, missing_optional_symbols_leave_only_their_fields_na)
{
    struct qb_tel *tel = open_fake(QB_FAKE_NVML_MINIMAL, "normal", 0);
    cr_assert_eq(qb_tel_device_count(tel), 2);
    cr_assert_null(qb_tel_status(tel));
    struct qb_tel_snapshot *s = sample(tel);
    const struct qb_tel_gpu *g = &s->gpus[0];
    cr_assert_str_eq(g->name, "NVIDIA H100 80GB HBM3");
    /* v1 memory (used includes reserved), old throttle name, v1 process list */
    cr_assert_eq(g->mem_used_bytes, (1234 + 500) * MIB);
    cr_assert_eq(g->mem_source, QB_TEL_MEM_NVML);
    cr_assert_eq(g->throttle, 0x1 | 0x4 | 0x1000);
    cr_assert_eq(g->process_mem_bytes, 512 * MIB);
    cr_assert_eq(s->gpus[1].process_mem_bytes, 4 * MIB);
    static const enum qb_tel_field absent[] = {
        QB_TEL_UUID, QB_TEL_COMPUTE_CAP, QB_TEL_DRIVER_VERSION, QB_TEL_CUDA_DRIVER_VERSION,
        QB_TEL_CLOCK_GRAPHICS, QB_TEL_CLOCK_SM_MAX, QB_TEL_UTIL_GPU, QB_TEL_UTIL_MEM,
        QB_TEL_TEMPERATURE, QB_TEL_POWER, QB_TEL_POWER_LIMIT};
    for (size_t k = 0; k < QB_ARRAY_LEN(absent); k++)
        ASSERT_NA(g, absent[k]);
    char *out = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&out, &len);
    qb_tel_print_table(f, s);
    fclose(f);
    cr_assert(strstr(out, "  uuid           N/A\n"), "%s", out);
    cr_assert(strstr(out, "  clock sm       N/A (max N/A)\n"), "%s", out);
    cr_assert(strstr(out, "  power          N/A of N/A limit\n"), "%s", out);
    cr_assert(strstr(out, "  driver         N/A\n"), "%s", out);
    free(out);
    free(s);
    qb_tel_free(tel);
}

Test(fake_nvml, missing_required_symbol_means_no_gpu)
{
    struct qb_tel *tel = open_fake(QB_FAKE_NVML_NO_HANDLE, "normal", 0);
    cr_assert_eq(qb_tel_device_count(tel), 0);
    cr_assert(strstr(qb_tel_status(tel), "nvmlDeviceGetHandleByIndex_v2"), "%s",
              qb_tel_status(tel));
    qb_tel_free(tel);
}

Test(fake_nvml, handle_failure_leaves_that_gpu_na)
{
    struct qb_tel *tel = open_fake(QB_FAKE_NVML, "handle_fail", 0);
    cr_assert_eq(qb_tel_device_count(tel), 2);
    struct qb_tel_snapshot *s = sample(tel);
    cr_assert_eq(s->gpus[0].temperature_c, 41);
    cr_assert_eq(s->gpus[1].index, 1);
    for (int f = 0; f < QB_TEL_FIELD_COUNT; f++) {
        if (f != QB_TEL_DRIVER_VERSION && f != QB_TEL_CUDA_DRIVER_VERSION)
            ASSERT_NA(&s->gpus[1], f);
    }
    free(s);
    qb_tel_free(tel);
}

static void check_no_gpu(struct qb_tel *tel, const char *needle)
{
    cr_assert_eq(qb_tel_device_count(tel), 0);
    const char *status = qb_tel_status(tel);
    cr_assert_not_null(status);
    cr_assert(strstr(status, needle), "'%s' lacks '%s'", status, needle);
    /* said once */
    cr_assert_eq(qb_tel_take_notice(tel), status);
    cr_assert_null(qb_tel_take_notice(tel));
    cr_assert_null(qb_tel_take_notice(tel));
    /* and everything else still works */
    struct qb_tel_snapshot *s = sample(tel);
    cr_assert_eq(s->n_gpus, 0);
    float v;
    unsigned char ok;
    cr_assert_eq(qb_tel_history(tel, 0, QB_TEL_POWER, &v, &ok, 1), 0);
    char *text = qb_tel_snapshot_json(s, 0);
    cr_assert_str_eq(text, "{\"gpus\":[]}");
    free(text);
    cr_assert_eq(qb_tel_start(tel, NULL), QB_OK);
    qb_tel_stop(tel);
    free(s);
    qb_tel_free(tel);
}

Test(no_gpu, no_library)
{
    check_no_gpu(open_fake("/nonexistent/libnvidia-ml.so.1", "normal", 0), "cannot load");
}

Test(no_gpu, init_fails)
{
    check_no_gpu(open_fake(QB_FAKE_NVML, "init_fail", 0), "Driver Not Loaded");
}

Test(no_gpu, zero_gpus)
{
    check_no_gpu(open_fake(QB_FAKE_NVML, "no_gpus", 0), "no NVIDIA GPU");
}

/* ---- history and sampler ------------------------------------------------------------------ */

Test(history, keeps_the_newest_samples_oldest_first)
{
    struct qb_tel *tel = open_fake(QB_FAKE_NVML, "normal", 5);
    cr_assert_eq(qb_tel_history_capacity(tel), 5);
    for (int i = 0; i < 8; i++)
        qb_tel_sample_now(tel, NULL);
    float v[16];
    unsigned char ok[16];
    /* power rises 1 mW per sample: samples 4..8 are 68126..68130 */
    cr_assert_eq(qb_tel_history(tel, 0, QB_TEL_POWER, v, ok, 16), 5);
    for (int i = 0; i < 5; i++)
        cr_assert(ok[i] && v[i] == 68126.0f + (float)i, "slot %d: %g", i, (double)v[i]);
    cr_assert_eq(qb_tel_history(tel, 1, QB_TEL_POWER, v, ok, 3), 3);
    cr_assert(v[0] == 35255 && v[2] == 35257);
    cr_assert_eq(qb_tel_history(tel, 0, QB_TEL_TEMPERATURE, v, ok, 16), 5);
    cr_assert(v[4] == 41);
    cr_assert_eq(qb_tel_history(tel, 0, QB_TEL_MEM_USED, v, ok, 1), 1);
    cr_assert_float_eq(v[0], (float)(1234 * MIB), 1.0);
    /* bad arguments */
    cr_assert_eq(qb_tel_history(tel, 2, QB_TEL_POWER, v, ok, 16), 0);
    cr_assert_eq(qb_tel_history(tel, -1, QB_TEL_POWER, v, ok, 16), 0);
    cr_assert_eq(qb_tel_history(tel, 0, QB_TEL_NAME, v, ok, 16), 0);
    cr_assert_eq(qb_tel_history(tel, 0, QB_TEL_FIELD_COUNT, v, ok, 16), 0);
    qb_tel_free(tel);
}

Test(config, defaults_and_range)
{
    struct qb_tel *tel = open_fake("/nonexistent", NULL, 0);
    cr_assert_eq(qb_tel_rate_hz(tel), 4.0);
    cr_assert_geq(qb_tel_history_capacity(tel), 1200); /* 5 minutes at 4 Hz */
    qb_tel_free(tel);
    struct qb_tel_config cfg = {.nvml_path = "/nonexistent", .rate_hz = -1};
    struct qb_err err = {0};
    cr_assert_eq(qb_tel_create(&cfg, &tel, &err), QB_ERR_RANGE);
    cr_assert_null(tel);
    cr_assert(strstr(err.msg, "rate"), "%s", err.msg);
    cfg.rate_hz = 2000;
    cr_assert_eq(qb_tel_create(&cfg, &tel, &err), QB_ERR_RANGE);
    cfg = (struct qb_tel_config){.nvml_path = "/nonexistent", .rate_hz = 10};
    cr_assert_eq(qb_tel_create(&cfg, &tel, &err), QB_OK);
    cr_assert_eq(qb_tel_history_capacity(tel), 3000);
    qb_tel_free(tel);
}

Test(sampler, runs_at_its_rate_and_stops)
{
    setenv("FAKE_NVML_MODE", "normal", 1);
    struct qb_tel_config cfg = {.nvml_path = QB_FAKE_NVML, .rate_hz = 40};
    struct qb_tel *tel = NULL;
    cr_assert_eq(qb_tel_create(&cfg, &tel, NULL), QB_OK);
    struct qb_tel_snapshot snap;
    qb_tel_read(tel, &snap);
    cr_assert_eq(snap.seq, 0);
    cr_assert_eq(snap.n_gpus, 2);
    cr_assert_str_eq(snap.gpus[0].name, "NVIDIA H100 80GB HBM3"); /* static fields at once */
    double t0 = qb_now_seconds();
    cr_assert_eq(qb_tel_start(tel, NULL), QB_OK);
    cr_assert_eq(qb_tel_start(tel, NULL), QB_OK); /* already running: no second thread */
    sleep_s(0.5);
    qb_tel_stop(tel);
    double elapsed = qb_now_seconds() - t0;
    qb_tel_read(tel, &snap);
    /* one sample at start, then one per 25 ms: never faster than the rate;
     * loose below for a loaded (or emulated) machine */
    double most = 1 + elapsed * 40 + 1;
    cr_assert_leq((double)snap.seq, most, "%llu samples in %.3f s",
                  (unsigned long long)snap.seq, elapsed);
    cr_assert_geq(snap.seq, 4, "%llu samples in %.3f s", (unsigned long long)snap.seq, elapsed);
    cr_assert_eq(snap.gpus[0].temperature_c, 41);
    uint64_t stopped_at = snap.seq;
    sleep_s(0.1);
    qb_tel_read(tel, &snap);
    cr_assert_eq(snap.seq, stopped_at, "samples after stop");
    qb_tel_stop(tel); /* twice is fine */
    /* restart, and free while running */
    cr_assert_eq(qb_tel_start(tel, NULL), QB_OK);
    sleep_s(0.06);
    qb_tel_free(tel);
}

Test(sampler, readers_run_alongside)
{
    setenv("FAKE_NVML_MODE", "normal", 1);
    struct qb_tel_config cfg = {.nvml_path = QB_FAKE_NVML, .rate_hz = 200, .history_len = 64};
    struct qb_tel *tel = NULL;
    cr_assert_eq(qb_tel_create(&cfg, &tel, NULL), QB_OK);
    cr_assert_eq(qb_tel_start(tel, NULL), QB_OK);
    float v[64];
    unsigned char ok[64];
    uint64_t last = 0;
    double end = qb_now_seconds() + 0.3;
    while (qb_now_seconds() < end) {
        struct qb_tel_snapshot snap;
        qb_tel_read(tel, &snap);
        cr_assert_geq(snap.seq, last);
        last = snap.seq;
        size_t n = qb_tel_history(tel, 0, QB_TEL_POWER, v, ok, 64);
        for (size_t i = 1; i < n; i++) /* consecutive samples, in order */
            cr_assert(v[i] == v[i - 1] + 1, "%g after %g", (double)v[i], (double)v[i - 1]);
    }
    qb_tel_free(tel);
}
