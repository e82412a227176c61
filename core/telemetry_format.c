/*
 * telemetry_format.c - turning a telemetry snapshot into words: throttle bit
 * names, the `quantbench gpu --json` document and the human table.
 *
 * Both outputs follow the validity bits strictly: an invalid field is JSON
 * null or "N/A", never a zero. Units: JSON memory in bytes, clocks in MHz,
 * power in watts as mW / 1000 (not rounded); the table rounds for reading.
 */
#include "telemetry.h"

#include <cjson/cJSON.h>
#include <string.h>

static const struct {
    uint64_t bit;
    const char *name;
} throttle_names[] = {
    {QB_TEL_THR_GPU_IDLE, "gpu_idle"},
    {QB_TEL_THR_APP_CLOCKS, "applications_clocks_setting"},
    {QB_TEL_THR_SW_POWER_CAP, "sw_power_cap"},
    {QB_TEL_THR_HW_SLOWDOWN, "hw_slowdown"},
    {QB_TEL_THR_SYNC_BOOST, "sync_boost"},
    {QB_TEL_THR_SW_THERMAL, "sw_thermal"},
    {QB_TEL_THR_HW_THERMAL, "hw_thermal"},
    {QB_TEL_THR_HW_POWER_BRAKE, "hw_power_brake"},
    {QB_TEL_THR_DISPLAY_CLOCK, "display_clock"},
};

size_t qb_tel_throttle_names(uint64_t mask, const char **names, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < QB_ARRAY_LEN(throttle_names) && n < max; i++) {
        if (mask & throttle_names[i].bit)
            names[n++] = throttle_names[i].name;
    }
    return n;
}

const char *qb_tel_mem_source_name(enum qb_tel_mem_source src)
{
    switch (src) {
    case QB_TEL_MEM_NONE:
        return NULL;
    case QB_TEL_MEM_NVML:
        return "nvml";
    case QB_TEL_MEM_SYSTEM:
        return "system";
    }
    return NULL;
}

int qb_tel_value(const struct qb_tel_gpu *g, enum qb_tel_field field, double *out)
{
    if (field < QB_TEL_FIRST_NUMERIC || field >= QB_TEL_FIELD_COUNT || !qb_tel_has(g, field))
        return 0;
    double v = 0;
    switch (field) {
    case QB_TEL_MEM_USED: v = (double)g->mem_used_bytes; break;
    case QB_TEL_MEM_TOTAL: v = (double)g->mem_total_bytes; break;
    case QB_TEL_CLOCK_GRAPHICS: v = g->clock_graphics_mhz; break;
    case QB_TEL_CLOCK_SM: v = g->clock_sm_mhz; break;
    case QB_TEL_CLOCK_MEM: v = g->clock_mem_mhz; break;
    case QB_TEL_CLOCK_GRAPHICS_MAX: v = g->clock_graphics_max_mhz; break;
    case QB_TEL_CLOCK_SM_MAX: v = g->clock_sm_max_mhz; break;
    case QB_TEL_CLOCK_MEM_MAX: v = g->clock_mem_max_mhz; break;
    case QB_TEL_UTIL_GPU: v = g->util_gpu_pct; break;
    case QB_TEL_UTIL_MEM: v = g->util_mem_pct; break;
    case QB_TEL_TEMPERATURE: v = g->temperature_c; break;
    case QB_TEL_POWER: v = g->power_mw; break;
    case QB_TEL_POWER_LIMIT: v = g->power_limit_mw; break;
    case QB_TEL_THROTTLE: v = (double)g->throttle; break;
    case QB_TEL_PROCESS_MEM: v = (double)g->process_mem_bytes; break;
    default: return 0;
    }
    *out = v;
    return 1;
}

/* ---- JSON ------------------------------------------------------------------ */

/* Add name: the field's numeric value (scaled) or null. NULL on OOM. */
static cJSON *add_value(cJSON *obj, const char *name, const struct qb_tel_gpu *g,
                        enum qb_tel_field field, double scale)
{
    double v;
    if (qb_tel_value(g, field, &v))
        return cJSON_AddNumberToObject(obj, name, v / scale);
    return cJSON_AddNullToObject(obj, name);
}

static cJSON *add_text(cJSON *obj, const char *name, const struct qb_tel_gpu *g,
                       enum qb_tel_field field, const char *text)
{
    if (qb_tel_has(g, field))
        return cJSON_AddStringToObject(obj, name, text);
    return cJSON_AddNullToObject(obj, name);
}

static int add_identity(cJSON *o, const struct qb_tel_gpu *g)
{
    char cc[32], cuda[32];
    snprintf(cc, sizeof cc, "%d.%d", g->cc_major, g->cc_minor);
    snprintf(cuda, sizeof cuda, "%d.%d", g->cuda_driver_version / 1000,
             (g->cuda_driver_version % 1000) / 10);
    return cJSON_AddNumberToObject(o, "index", g->index) &&
           add_text(o, "name", g, QB_TEL_NAME, g->name) &&
           add_text(o, "uuid", g, QB_TEL_UUID, g->uuid) &&
           add_text(o, "compute_capability", g, QB_TEL_COMPUTE_CAP, cc) &&
           add_text(o, "driver_version", g, QB_TEL_DRIVER_VERSION, g->driver_version) &&
           add_text(o, "cuda_driver_version", g, QB_TEL_CUDA_DRIVER_VERSION, cuda);
}

static int add_memory(cJSON *o, const struct qb_tel_gpu *g)
{
    cJSON *mem = cJSON_AddObjectToObject(o, "memory");
    const char *src = qb_tel_mem_source_name(g->mem_source);
    return mem && add_value(mem, "used_bytes", g, QB_TEL_MEM_USED, 1) &&
           add_value(mem, "total_bytes", g, QB_TEL_MEM_TOTAL, 1) &&
           (src ? cJSON_AddStringToObject(mem, "source", src)
                : cJSON_AddNullToObject(mem, "source")) &&
           add_value(o, "process_memory_bytes", g, QB_TEL_PROCESS_MEM, 1);
}

static int add_clocks(cJSON *o, const struct qb_tel_gpu *g)
{
    cJSON *clk = cJSON_AddObjectToObject(o, "clocks_mhz");
    cJSON *util = cJSON_AddObjectToObject(o, "utilization_pct");
    return clk && util && add_value(clk, "graphics", g, QB_TEL_CLOCK_GRAPHICS, 1) &&
           add_value(clk, "sm", g, QB_TEL_CLOCK_SM, 1) &&
           add_value(clk, "mem", g, QB_TEL_CLOCK_MEM, 1) &&
           add_value(clk, "graphics_max", g, QB_TEL_CLOCK_GRAPHICS_MAX, 1) &&
           add_value(clk, "sm_max", g, QB_TEL_CLOCK_SM_MAX, 1) &&
           add_value(clk, "mem_max", g, QB_TEL_CLOCK_MEM_MAX, 1) &&
           add_value(util, "gpu", g, QB_TEL_UTIL_GPU, 1) &&
           add_value(util, "mem", g, QB_TEL_UTIL_MEM, 1);
}

static int add_thermal_power(cJSON *o, const struct qb_tel_gpu *g)
{
    if (!add_value(o, "temperature_c", g, QB_TEL_TEMPERATURE, 1) ||
        !add_value(o, "power_w", g, QB_TEL_POWER, 1000) ||
        !add_value(o, "power_limit_w", g, QB_TEL_POWER_LIMIT, 1000))
        return 0;
    if (!qb_tel_has(g, QB_TEL_THROTTLE))
        return cJSON_AddNullToObject(o, "throttle_reasons") != NULL;
    const char *names[16];
    size_t n = qb_tel_throttle_names(g->throttle, names, QB_ARRAY_LEN(names));
    cJSON *arr = cJSON_AddArrayToObject(o, "throttle_reasons");
    for (size_t i = 0; arr && i < n; i++) {
        cJSON *s = cJSON_CreateString(names[i]);
        if (!s || !cJSON_AddItemToArray(arr, s)) {
            cJSON_Delete(s);
            return 0;
        }
    }
    return arr != NULL;
}

char *qb_tel_snapshot_json(const struct qb_tel_snapshot *s, int pretty)
{
    char *text = NULL;
    cJSON *root = cJSON_CreateObject();
    cJSON *gpus = root ? cJSON_AddArrayToObject(root, "gpus") : NULL;
    if (!gpus)
        goto out;
    for (int i = 0; i < s->n_gpus; i++) {
        const struct qb_tel_gpu *g = &s->gpus[i];
        cJSON *o = cJSON_CreateObject();
        if (!o || !cJSON_AddItemToArray(gpus, o)) {
            cJSON_Delete(o);
            goto out;
        }
        if (!add_identity(o, g) || !add_memory(o, g) || !add_clocks(o, g) ||
            !add_thermal_power(o, g))
            goto out;
    }
    text = pretty ? cJSON_Print(root) : cJSON_PrintUnformatted(root);
out:
    cJSON_Delete(root);
    return text;
}

/* ---- the human table --------------------------------------------------------- */

#define NA "N/A"

static const char *fmt_bytes(char *buf, size_t size, const struct qb_tel_gpu *g,
                             enum qb_tel_field field)
{
    double v;
    if (!qb_tel_value(g, field, &v))
        return NA;
    if (v >= 1024.0 * 1024 * 1024)
        snprintf(buf, size, "%.2f GiB", v / (1024.0 * 1024 * 1024));
    else
        snprintf(buf, size, "%.1f MiB", v / (1024.0 * 1024));
    return buf;
}

/* The value divided by scale with `decimals` decimals and a unit ("1980 MHz"), or N/A. */
static const char *fmt_num(char *buf, size_t size, const struct qb_tel_gpu *g,
                           enum qb_tel_field field, double scale, int decimals, const char *unit)
{
    double v;
    if (!qb_tel_value(g, field, &v))
        return NA;
    snprintf(buf, size, "%.*f %s", decimals, v / scale, unit);
    return buf;
}

static const char *fmt_text(const struct qb_tel_gpu *g, enum qb_tel_field field, const char *s)
{
    return qb_tel_has(g, field) ? s : NA;
}

static void print_identity(FILE *f, const struct qb_tel_gpu *g)
{
    char cc[32] = NA, cuda[48] = "";
    if (qb_tel_has(g, QB_TEL_COMPUTE_CAP))
        snprintf(cc, sizeof cc, "%d.%d", g->cc_major, g->cc_minor);
    if (qb_tel_has(g, QB_TEL_CUDA_DRIVER_VERSION))
        snprintf(cuda, sizeof cuda, " (CUDA %d.%d)", g->cuda_driver_version / 1000,
                 (g->cuda_driver_version % 1000) / 10);
    fprintf(f, "GPU %d  %s\n", g->index, fmt_text(g, QB_TEL_NAME, g->name));
    fprintf(f, "  %-14s %s\n", "uuid", fmt_text(g, QB_TEL_UUID, g->uuid));
    fprintf(f, "  %-14s %s\n", "compute cap.", cc);
    fprintf(f, "  %-14s %s%s\n", "driver", fmt_text(g, QB_TEL_DRIVER_VERSION, g->driver_version),
            cuda);
}

static void print_memory(FILE *f, const struct qb_tel_gpu *g)
{
    char used[32], total[32], proc[32];
    const char *src = qb_tel_mem_source_name(g->mem_source);
    fprintf(f, "  %-14s %s used of %s%s%s%s\n", "memory",
            fmt_bytes(used, sizeof used, g, QB_TEL_MEM_USED),
            fmt_bytes(total, sizeof total, g, QB_TEL_MEM_TOTAL), src ? " (" : "",
            src ? src : "", src ? ")" : "");
    fprintf(f, "  %-14s %s\n", "this process",
            fmt_bytes(proc, sizeof proc, g, QB_TEL_PROCESS_MEM));
}

static void print_clocks(FILE *f, const struct qb_tel_gpu *g)
{
    static const struct {
        const char *label;
        enum qb_tel_field now, max;
    } rows[] = {
        {"clock graphics", QB_TEL_CLOCK_GRAPHICS, QB_TEL_CLOCK_GRAPHICS_MAX},
        {"clock sm", QB_TEL_CLOCK_SM, QB_TEL_CLOCK_SM_MAX},
        {"clock memory", QB_TEL_CLOCK_MEM, QB_TEL_CLOCK_MEM_MAX},
    };
    char a[32], b[32];
    for (size_t i = 0; i < QB_ARRAY_LEN(rows); i++)
        fprintf(f, "  %-14s %s (max %s)\n", rows[i].label,
                fmt_num(a, sizeof a, g, rows[i].now, 1, 0, "MHz"),
                fmt_num(b, sizeof b, g, rows[i].max, 1, 0, "MHz"));
    fprintf(f, "  %-14s gpu %s, memory %s\n", "utilization",
            fmt_num(a, sizeof a, g, QB_TEL_UTIL_GPU, 1, 0, "%"),
            fmt_num(b, sizeof b, g, QB_TEL_UTIL_MEM, 1, 0, "%"));
}

static void print_thermal_power(FILE *f, const struct qb_tel_gpu *g)
{
    char a[32], b[32];
    fprintf(f, "  %-14s %s\n", "temperature",
            fmt_num(a, sizeof a, g, QB_TEL_TEMPERATURE, 1, 0, "C"));
    fprintf(f, "  %-14s %s of %s limit\n", "power",
            fmt_num(a, sizeof a, g, QB_TEL_POWER, 1000, 2, "W"),
            fmt_num(b, sizeof b, g, QB_TEL_POWER_LIMIT, 1000, 2, "W"));
    fprintf(f, "  %-14s ", "throttle");
    if (!qb_tel_has(g, QB_TEL_THROTTLE)) {
        fprintf(f, NA "\n");
        return;
    }
    const char *names[16];
    size_t n = qb_tel_throttle_names(g->throttle, names, QB_ARRAY_LEN(names));
    if (n == 0)
        fprintf(f, "none");
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%s%s", i ? ", " : "", names[i]);
    fprintf(f, "\n");
}

void qb_tel_print_table(FILE *f, const struct qb_tel_snapshot *s)
{
    for (int i = 0; i < s->n_gpus; i++) {
        const struct qb_tel_gpu *g = &s->gpus[i];
        if (i)
            fprintf(f, "\n");
        print_identity(f, g);
        print_memory(f, g);
        print_clocks(f, g);
        print_thermal_power(f, g);
    }
}
