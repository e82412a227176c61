/*
 * telemetry.c - NVML loading, per-GPU sampling, the sampler thread and the
 * history (the contract is in telemetry.h).
 *
 * NVML: our own minimal declarations below (no nvml.h), resolved with dlsym.
 * The values we rely on are NVML's ABI: return codes (SUCCESS 0,
 * NOT_SUPPORTED 3, INSUFFICIENT_SIZE 7), clock types (GRAPHICS 0, SM 1,
 * MEM 2), temperature sensor GPU 0, and the struct layouts:
 *
 *   nvmlMemory_t (v1)      u64 total | u64 free | u64 used                  24 B
 *   nvmlMemory_v2_t        u32 version (+4 pad) | u64 total | u64 reserved |
 *                          u64 free | u64 used                              40 B
 *                          version word = sizeof | 2 << 24 = 0x02000028
 *   nvmlProcessInfo v1     u32 pid (+4 pad) | u64 usedGpuMemory             16 B
 *   nvmlProcessInfo v2/v3  u32 pid (+4) | u64 used | u32 gi | u32 ci        24 B
 *                          (a few drivers' v3 appended u64 ccProtected: 32 B;
 *                          detected from the data, see process_stride())
 *
 * Sample flow: sample_gpu() starts from the GPU's static record (name, UUID,
 * compute capability, driver versions: read once in qb_tel_create) and sets
 * each dynamic field's valid bit only when its call succeeds in this sample,
 * so a call that starts failing mid-run turns its field N/A at once.
 *
 * Locks: sample_lock serialises whole samples (sampler thread and
 * qb_tel_sample_now); pub_lock guards `latest` and the rings and is held only
 * to copy a finished sample in or out. thr_lock/thr_cond run the sampler's
 * timed wait so qb_tel_stop wakes it at once.
 */
#include "telemetry.h"

#include <dlfcn.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* ---- NVML declarations ------------------------------------------------------ */

typedef int nvml_ret;
typedef void *nvml_device;

enum {
    NVML_SUCCESS = 0,
    NVML_ERROR_NOT_SUPPORTED = 3,
    NVML_ERROR_INSUFFICIENT_SIZE = 7,
};
enum { NVML_CLOCK_GRAPHICS = 0, NVML_CLOCK_SM = 1, NVML_CLOCK_MEM = 2 };
enum { NVML_TEMPERATURE_GPU = 0 };
#define NVML_VALUE_NOT_AVAILABLE 0xffffffffffffffffULL

struct nvml_memory_v1 {
    unsigned long long total, free, used;
};

struct nvml_memory_v2 {
    unsigned int version;
    unsigned long long total, reserved, free, used;
};

#define NVML_MEMORY_V2_VERSION ((unsigned int)(sizeof(struct nvml_memory_v2) | (2u << 24)))
_Static_assert(sizeof(struct nvml_memory_v2) == 40, "nvmlMemory_v2_t is 40 bytes");

struct nvml_utilization {
    unsigned int gpu, memory;
};

#define PROCESS_STRIDE_V1 16
#define PROCESS_STRIDE_V2 24
#define PROCESS_STRIDE_V3_CC 32
#define PROCESS_MAX_ENTRIES 65536

struct nvml_api {
    void *lib;
    /* required */
    nvml_ret (*init)(void);
    nvml_ret (*shutdown)(void);
    nvml_ret (*device_count)(unsigned int *count);
    nvml_ret (*device_handle)(unsigned int index, nvml_device *dev);
    /* optional: NULL when the library lacks them */
    const char *(*error_string)(nvml_ret r);
    nvml_ret (*driver_version)(char *buf, unsigned int len);
    nvml_ret (*cuda_driver_version)(int *version);
    nvml_ret (*name)(nvml_device dev, char *buf, unsigned int len);
    nvml_ret (*uuid)(nvml_device dev, char *buf, unsigned int len);
    nvml_ret (*compute_cap)(nvml_device dev, int *major, int *minor);
    nvml_ret (*memory_v2)(nvml_device dev, struct nvml_memory_v2 *mem);
    nvml_ret (*memory_v1)(nvml_device dev, struct nvml_memory_v1 *mem);
    nvml_ret (*clock)(nvml_device dev, int type, unsigned int *mhz);
    nvml_ret (*max_clock)(nvml_device dev, int type, unsigned int *mhz);
    nvml_ret (*utilization)(nvml_device dev, struct nvml_utilization *util);
    nvml_ret (*temperature)(nvml_device dev, int sensor, unsigned int *celsius);
    nvml_ret (*power)(nvml_device dev, unsigned int *mw);
    nvml_ret (*power_limit)(nvml_device dev, unsigned int *mw);
    nvml_ret (*power_limit_enforced)(nvml_device dev, unsigned int *mw);
    nvml_ret (*clock_events)(nvml_device dev, unsigned long long *reasons);
    nvml_ret (*processes)(nvml_device dev, unsigned int *count, void *infos);
    int processes_version; /* 3, 2 or 1 */
};

/* ---- the object ------------------------------------------------------------- */

#define N_HISTORY_FIELDS (QB_TEL_FIELD_COUNT - QB_TEL_FIRST_NUMERIC)
#define MEMINFO_MAX_BYTES 65536
#define STATUS_MAX 512

struct tel_gpu_slot {
    nvml_device dev;             /* NULL when the handle could not be had */
    struct qb_tel_gpu info;      /* static fields and their valid bits */
    struct qb_tel_ring *rings[N_HISTORY_FIELDS];
};

struct qb_tel {
    struct nvml_api api;
    int nvml_up;                 /* nvmlInit succeeded: shut down in free */
    int n_gpus;
    struct tel_gpu_slot gpus[QB_TEL_MAX_GPUS];
    double rate_hz;
    size_t history_len;
    char *meminfo_path;
    char status[STATUS_MAX];     /* empty when GPUs are there */
    atomic_int notice_taken;
    int sync_ready;              /* locks below initialised (destroy in free) */

    pthread_mutex_t sample_lock;
    pthread_mutex_t pub_lock;
    struct qb_tel_snapshot latest;

    pthread_mutex_t thr_lock;
    pthread_cond_t thr_cond;
    pthread_t thread;
    int running;                 /* under thr_lock */
    int stop_requested;          /* under thr_lock */
};

static const char *nvml_error_text(const struct nvml_api *api, nvml_ret r, char *buf, size_t size)
{
    const char *s = api->error_string ? api->error_string(r) : NULL;
    if (s && *s)
        snprintf(buf, size, "%s", s);
    else
        snprintf(buf, size, "NVML error %d", r);
    return buf;
}

/* ---- loading ---------------------------------------------------------------- */

/* dlsym into a function pointer field, trying each name in turn. */
#define NVML_SYM(api, field, ...) \
    ((api)->field = (__typeof__((api)->field))first_symbol((api)->lib, __VA_ARGS__, (char *)NULL))

static void *first_symbol(void *lib, ...)
{
    va_list ap;
    va_start(ap, lib);
    void *p = NULL;
    for (const char *name = va_arg(ap, const char *); name && !p; name = va_arg(ap, const char *))
        p = dlsym(lib, name);
    va_end(ap);
    return p;
}

static void load_optional_symbols(struct nvml_api *api)
{
    NVML_SYM(api, error_string, "nvmlErrorString");
    NVML_SYM(api, driver_version, "nvmlSystemGetDriverVersion");
    NVML_SYM(api, cuda_driver_version, "nvmlSystemGetCudaDriverVersion_v2",
             "nvmlSystemGetCudaDriverVersion");
    NVML_SYM(api, name, "nvmlDeviceGetName");
    NVML_SYM(api, uuid, "nvmlDeviceGetUUID");
    NVML_SYM(api, compute_cap, "nvmlDeviceGetCudaComputeCapability");
    NVML_SYM(api, memory_v2, "nvmlDeviceGetMemoryInfo_v2");
    NVML_SYM(api, memory_v1, "nvmlDeviceGetMemoryInfo");
    NVML_SYM(api, clock, "nvmlDeviceGetClockInfo");
    NVML_SYM(api, max_clock, "nvmlDeviceGetMaxClockInfo");
    NVML_SYM(api, utilization, "nvmlDeviceGetUtilizationRates");
    NVML_SYM(api, temperature, "nvmlDeviceGetTemperature");
    NVML_SYM(api, power, "nvmlDeviceGetPowerUsage");
    NVML_SYM(api, power_limit, "nvmlDeviceGetPowerManagementLimit");
    NVML_SYM(api, power_limit_enforced, "nvmlDeviceGetEnforcedPowerLimit");
    NVML_SYM(api, clock_events, "nvmlDeviceGetCurrentClocksEventReasons",
             "nvmlDeviceGetCurrentClocksThrottleReasons");
    static const char *const proc_names[] = {"nvmlDeviceGetComputeRunningProcesses_v3",
                                             "nvmlDeviceGetComputeRunningProcesses_v2",
                                             "nvmlDeviceGetComputeRunningProcesses"};
    for (int i = 0; i < 3 && !api->processes; i++) {
        NVML_SYM(api, processes, proc_names[i]);
        api->processes_version = 3 - i;
    }
}

/* Open the library and resolve the required symbols. On failure returns 0 with
 * `why` set (for the status line) and nothing left open. */
static int load_nvml(struct nvml_api *api, const char *path, char *why, size_t why_size)
{
    const char *env = getenv("QUANTBENCH_NVML_LIB");
    const char *from = "";
    if (!path && env && *env) {
        path = env;
        from = " (set by QUANTBENCH_NVML_LIB)";
    }
    char first_error[256] = "";
    if (path) {
        api->lib = dlopen(path, RTLD_LAZY | RTLD_LOCAL);
    } else {
        /* The versioned name is what the driver package installs; the bare
         * name only exists with development files. Report the first failure. */
        path = "libnvidia-ml.so.1";
        api->lib = dlopen(path, RTLD_LAZY | RTLD_LOCAL);
        if (!api->lib) {
            const char *e = dlerror();
            snprintf(first_error, sizeof first_error, "%s", e ? e : "unknown error");
            from = " (nor libnvidia-ml.so)";
            api->lib = dlopen("libnvidia-ml.so", RTLD_LAZY | RTLD_LOCAL);
        }
    }
    if (!api->lib) {
        const char *e = first_error[0] ? first_error : dlerror();
        snprintf(why, why_size, "no NVIDIA driver: cannot load '%s'%s: %s", path, from,
                 e ? e : "unknown error");
        return 0;
    }
    const char *missing = NULL;
    if (!NVML_SYM(api, init, "nvmlInit_v2"))
        missing = "nvmlInit_v2";
    else if (!NVML_SYM(api, shutdown, "nvmlShutdown"))
        missing = "nvmlShutdown";
    else if (!NVML_SYM(api, device_count, "nvmlDeviceGetCount_v2"))
        missing = "nvmlDeviceGetCount_v2";
    else if (!NVML_SYM(api, device_handle, "nvmlDeviceGetHandleByIndex_v2"))
        missing = "nvmlDeviceGetHandleByIndex_v2";
    if (missing) {
        snprintf(why, why_size, "NVIDIA driver too old or not NVML: '%s'%s lacks %s", path, from,
                 missing);
        dlclose(api->lib);
        memset(api, 0, sizeof *api);
        return 0;
    }
    load_optional_symbols(api);
    return 1;
}

/* ---- static per-GPU facts ---------------------------------------------------- */

static void set_valid(struct qb_tel_gpu *g, enum qb_tel_field f)
{
    g->valid |= (uint64_t)1 << f;
}

static void read_static_info(const struct nvml_api *api, nvml_device dev,
                             const struct qb_tel_gpu *system, struct qb_tel_gpu *g)
{
    /* System-wide facts (driver versions) are copied into every GPU. */
    *g = *system;
    if (!dev)
        return;
    if (api->name && api->name(dev, g->name, sizeof g->name) == NVML_SUCCESS) {
        g->name[sizeof g->name - 1] = '\0';
        set_valid(g, QB_TEL_NAME);
    }
    if (api->uuid && api->uuid(dev, g->uuid, sizeof g->uuid) == NVML_SUCCESS) {
        g->uuid[sizeof g->uuid - 1] = '\0';
        set_valid(g, QB_TEL_UUID);
    }
    if (api->compute_cap && api->compute_cap(dev, &g->cc_major, &g->cc_minor) == NVML_SUCCESS)
        set_valid(g, QB_TEL_COMPUTE_CAP);
}

static void read_system_info(const struct nvml_api *api, struct qb_tel_gpu *sys)
{
    memset(sys, 0, sizeof *sys);
    if (api->driver_version &&
        api->driver_version(sys->driver_version, sizeof sys->driver_version) == NVML_SUCCESS) {
        sys->driver_version[sizeof sys->driver_version - 1] = '\0';
        set_valid(sys, QB_TEL_DRIVER_VERSION);
    }
    if (api->cuda_driver_version && api->cuda_driver_version(&sys->cuda_driver_version) ==
                                        NVML_SUCCESS && sys->cuda_driver_version > 0)
        set_valid(sys, QB_TEL_CUDA_DRIVER_VERSION);
}

/* nvmlInit + count + handles. Returns 0 with `why` set when there is no GPU to
 * show (NVML is then shut down again). */
static int open_devices(struct qb_tel *tel, char *why, size_t why_size)
{
    struct nvml_api *api = &tel->api;
    char text[128];
    nvml_ret r = api->init();
    if (r != NVML_SUCCESS) {
        snprintf(why, why_size, "NVIDIA driver not usable: nvmlInit_v2 failed: %s",
                 nvml_error_text(api, r, text, sizeof text));
        return 0;
    }
    tel->nvml_up = 1;
    unsigned int count = 0;
    r = api->device_count(&count);
    if (r != NVML_SUCCESS) {
        snprintf(why, why_size, "NVIDIA driver not usable: nvmlDeviceGetCount_v2 failed: %s",
                 nvml_error_text(api, r, text, sizeof text));
        return 0;
    }
    if (count == 0) {
        snprintf(why, why_size, "no NVIDIA GPU found (the driver is loaded but lists none)");
        return 0;
    }
    struct qb_tel_gpu sys;
    read_system_info(api, &sys);
    tel->n_gpus = (int)QB_MIN(count, (unsigned int)QB_TEL_MAX_GPUS);
    for (int i = 0; i < tel->n_gpus; i++) {
        struct tel_gpu_slot *slot = &tel->gpus[i];
        if (api->device_handle((unsigned int)i, &slot->dev) != NVML_SUCCESS)
            slot->dev = NULL;
        read_static_info(api, slot->dev, &sys, &slot->info);
        slot->info.index = i;
    }
    return 1;
}

/* ---- /proc/meminfo ---------------------------------------------------------- */

/* Value in kB of the line "KEY:   <n> kB" in text; 1 found, 0 absent, -1 malformed. */
static int meminfo_field(const char *text, size_t len, const char *key, uint64_t *kb)
{
    size_t klen = strlen(key);
    size_t pos = 0;
    while (pos < len) {
        const char *line = text + pos;
        const char *nl = memchr(line, '\n', len - pos);
        size_t line_len = nl ? (size_t)(nl - line) : len - pos;
        pos += line_len + 1;
        if (line_len <= klen || memcmp(line, key, klen) != 0 || line[klen] != ':')
            continue;
        size_t i = klen + 1;
        while (i < line_len && line[i] == ' ')
            i++;
        uint64_t v = 0;
        size_t digits = 0;
        for (; i < line_len && line[i] >= '0' && line[i] <= '9'; i++, digits++) {
            if (v > (UINT64_MAX - 9) / 10)
                return -1;
            v = v * 10 + (uint64_t)(line[i] - '0');
        }
        if (digits == 0 || line_len - i != 3 || memcmp(line + i, " kB", 3) != 0)
            return -1;
        *kb = v;
        return 1;
    }
    return 0;
}

enum qb_status qb_tel_parse_meminfo(const char *text, size_t len, const char *what,
                                    uint64_t *total_bytes, uint64_t *available_bytes,
                                    struct qb_err *err)
{
    static const char *const keys[2] = {"MemTotal", "MemAvailable"};
    uint64_t kb[2] = {0, 0};
    for (int k = 0; k < 2; k++) {
        int found = meminfo_field(text, len, keys[k], &kb[k]);
        if (found == 0)
            return qb_err_set(err, QB_ERR_FORMAT, "no %s line in '%s'", keys[k], what);
        if (found < 0 || kb[k] > UINT64_MAX / 1024)
            return qb_err_set(err, QB_ERR_FORMAT,
                              "bad %s line in '%s' (expected '%s: <number> kB')", keys[k],
                              what, keys[k]);
    }
    if (kb[1] > kb[0])
        return qb_err_set(err, QB_ERR_FORMAT, "MemAvailable exceeds MemTotal in '%s'", what);
    *total_bytes = kb[0] * 1024;
    *available_bytes = kb[1] * 1024;
    return QB_OK;
}

static int read_system_memory(const char *path, uint64_t *total, uint64_t *used)
{
    FILE *f = fopen(path, "r");
    if (!f)
        return 0;
    char *buf = malloc(MEMINFO_MAX_BYTES);
    size_t n = buf ? fread(buf, 1, MEMINFO_MAX_BYTES, f) : 0;
    fclose(f);
    uint64_t avail = 0;
    int ok = buf && qb_tel_parse_meminfo(buf, n, path, total, &avail, NULL) == QB_OK;
    free(buf);
    if (ok)
        *used = *total - avail;
    return ok;
}

/* ---- dynamic per-GPU sampling ---------------------------------------------------- */

static void sample_memory(const struct qb_tel *tel, nvml_device dev, struct qb_tel_gpu *g)
{
    const struct nvml_api *api = &tel->api;
    /* unified: some call said NOT_SUPPORTED, or succeeded with a zero total */
    int unified = 0;
    if (api->memory_v2) {
        struct nvml_memory_v2 m = {.version = NVML_MEMORY_V2_VERSION};
        nvml_ret r = api->memory_v2(dev, &m);
        if (r == NVML_SUCCESS && m.total > 0) {
            g->mem_total_bytes = m.total;
            g->mem_used_bytes = m.used;
            g->mem_source = QB_TEL_MEM_NVML;
            goto valid;
        }
        unified |= r == NVML_ERROR_NOT_SUPPORTED || r == NVML_SUCCESS;
    }
    if (api->memory_v1) {
        struct nvml_memory_v1 m = {0};
        nvml_ret r = api->memory_v1(dev, &m);
        if (r == NVML_SUCCESS && m.total > 0) {
            g->mem_total_bytes = m.total;
            g->mem_used_bytes = m.used;
            g->mem_source = QB_TEL_MEM_NVML;
            goto valid;
        }
        unified |= r == NVML_ERROR_NOT_SUPPORTED || r == NVML_SUCCESS;
    }
    if (!unified || !read_system_memory(tel->meminfo_path, &g->mem_total_bytes,
                                        &g->mem_used_bytes))
        return;
    g->mem_source = QB_TEL_MEM_SYSTEM;
valid:
    set_valid(g, QB_TEL_MEM_TOTAL);
    set_valid(g, QB_TEL_MEM_USED);
}

static void sample_clocks(const struct nvml_api *api, nvml_device dev, struct qb_tel_gpu *g)
{
    static const int types[3] = {NVML_CLOCK_GRAPHICS, NVML_CLOCK_SM, NVML_CLOCK_MEM};
    static const enum qb_tel_field now_fields[3] = {QB_TEL_CLOCK_GRAPHICS, QB_TEL_CLOCK_SM,
                                                    QB_TEL_CLOCK_MEM};
    static const enum qb_tel_field max_fields[3] = {
        QB_TEL_CLOCK_GRAPHICS_MAX, QB_TEL_CLOCK_SM_MAX, QB_TEL_CLOCK_MEM_MAX};
    unsigned int *now_out[3] = {&g->clock_graphics_mhz, &g->clock_sm_mhz, &g->clock_mem_mhz};
    unsigned int *max_out[3] = {&g->clock_graphics_max_mhz, &g->clock_sm_max_mhz,
                                &g->clock_mem_max_mhz};
    for (int i = 0; i < 3; i++) {
        if (api->clock && api->clock(dev, types[i], now_out[i]) == NVML_SUCCESS)
            set_valid(g, now_fields[i]);
        if (api->max_clock && api->max_clock(dev, types[i], max_out[i]) == NVML_SUCCESS)
            set_valid(g, max_fields[i]);
    }
}

static void sample_power(const struct nvml_api *api, nvml_device dev, struct qb_tel_gpu *g)
{
    if (api->power && api->power(dev, &g->power_mw) == NVML_SUCCESS)
        set_valid(g, QB_TEL_POWER);
    if (api->power_limit && api->power_limit(dev, &g->power_limit_mw) == NVML_SUCCESS)
        set_valid(g, QB_TEL_POWER_LIMIT);
    else if (api->power_limit_enforced &&
             api->power_limit_enforced(dev, &g->power_limit_mw) == NVML_SUCCESS)
        set_valid(g, QB_TEL_POWER_LIMIT);
}

/*
 * Entry size of a process list. v1 and v2 are fixed; v3 is 24 bytes on current
 * drivers but 32 on a few (an extra u64 ccProtected). With 32-byte entries read
 * at 24, the second "pid" lands on the low half of entry 0's ccProtected
 * counter, which is 0 outside confidential computing, and pid 0 never runs a
 * CUDA context: a zero pid at stride 24 means stride 32.
 */
static size_t process_stride(int version, const unsigned char *buf, unsigned int count)
{
    if (version == 1)
        return PROCESS_STRIDE_V1;
    if (version == 3) {
        for (unsigned int i = 0; i < count; i++) {
            uint32_t pid;
            memcpy(&pid, buf + (size_t)i * PROCESS_STRIDE_V2, sizeof pid);
            if (pid == 0)
                return PROCESS_STRIDE_V3_CC;
        }
    }
    return PROCESS_STRIDE_V2;
}

/* Sum of usedGpuMemory over this process's entries. 1 when the list was read. */
static int sample_process_memory(const struct nvml_api *api, nvml_device dev, uint64_t *out)
{
    unsigned int count = 0;
    nvml_ret r = api->processes(dev, &count, NULL);
    if (r == NVML_SUCCESS) { /* nobody runs on this GPU */
        *out = 0;
        return 1;
    }
    unsigned char *buf = NULL;
    int ok = 0;
    /* The list may grow between calls: retry a few times with headroom. */
    for (int attempt = 0; attempt < 3 && r == NVML_ERROR_INSUFFICIENT_SIZE; attempt++) {
        if (count > PROCESS_MAX_ENTRIES)
            goto out;
        unsigned int capacity = count * 2 + 8;
        free(buf);
        buf = qb_calloc_array(capacity, PROCESS_STRIDE_V3_CC);
        if (!buf)
            goto out;
        count = capacity;
        r = api->processes(dev, &count, buf);
    }
    if (r != NVML_SUCCESS || count > PROCESS_MAX_ENTRIES)
        goto out;
    size_t stride = process_stride(api->processes_version, buf, count);
    uint32_t self = (uint32_t)getpid();
    uint64_t sum = 0;
    for (unsigned int i = 0; i < count; i++) {
        uint32_t pid;
        uint64_t used;
        memcpy(&pid, buf + i * stride, sizeof pid);
        memcpy(&used, buf + i * stride + 8, sizeof used);
        if (pid != self)
            continue;
        if (used == NVML_VALUE_NOT_AVAILABLE)
            goto out;
        sum += used;
    }
    *out = sum;
    ok = 1;
out:
    free(buf);
    return ok;
}

static void sample_gpu(const struct qb_tel *tel, const struct tel_gpu_slot *slot,
                       struct qb_tel_gpu *g)
{
    const struct nvml_api *api = &tel->api;
    nvml_device dev = slot->dev;
    *g = slot->info;
    if (!dev)
        return;
    sample_memory(tel, dev, g);
    sample_clocks(api, dev, g);
    struct nvml_utilization u;
    if (api->utilization && api->utilization(dev, &u) == NVML_SUCCESS) {
        g->util_gpu_pct = u.gpu;
        g->util_mem_pct = u.memory;
        set_valid(g, QB_TEL_UTIL_GPU);
        set_valid(g, QB_TEL_UTIL_MEM);
    }
    if (api->temperature &&
        api->temperature(dev, NVML_TEMPERATURE_GPU, &g->temperature_c) == NVML_SUCCESS)
        set_valid(g, QB_TEL_TEMPERATURE);
    sample_power(api, dev, g);
    unsigned long long reasons;
    if (api->clock_events && api->clock_events(dev, &reasons) == NVML_SUCCESS) {
        g->throttle = reasons;
        set_valid(g, QB_TEL_THROTTLE);
    }
    if (api->processes && sample_process_memory(api, dev, &g->process_mem_bytes))
        set_valid(g, QB_TEL_PROCESS_MEM);
}

/* ---- publishing and reading ----------------------------------------------------- */

static void publish(struct qb_tel *tel, const struct qb_tel_snapshot *s, uint64_t *seq_out)
{
    pthread_mutex_lock(&tel->pub_lock);
    uint64_t seq = tel->latest.seq + 1;
    tel->latest = *s;
    tel->latest.seq = seq;
    for (int i = 0; i < s->n_gpus; i++) {
        for (int f = 0; f < N_HISTORY_FIELDS; f++) {
            double v = 0;
            int ok = qb_tel_value(&s->gpus[i], (enum qb_tel_field)(QB_TEL_FIRST_NUMERIC + f), &v);
            qb_tel_ring_push(tel->gpus[i].rings[f], (float)v, ok);
        }
    }
    pthread_mutex_unlock(&tel->pub_lock);
    *seq_out = seq;
}

void qb_tel_sample_now(struct qb_tel *tel, struct qb_tel_snapshot *out)
{
    struct qb_tel_snapshot s; /* about 7 KiB */
    memset(&s, 0, sizeof s);
    pthread_mutex_lock(&tel->sample_lock);
    s.time_s = qb_now_seconds();
    s.n_gpus = tel->n_gpus;
    for (int i = 0; i < tel->n_gpus; i++)
        sample_gpu(tel, &tel->gpus[i], &s.gpus[i]);
    publish(tel, &s, &s.seq);
    pthread_mutex_unlock(&tel->sample_lock);
    if (out)
        *out = s;
}

void qb_tel_read(struct qb_tel *tel, struct qb_tel_snapshot *out)
{
    pthread_mutex_lock(&tel->pub_lock);
    *out = tel->latest;
    pthread_mutex_unlock(&tel->pub_lock);
}

size_t qb_tel_history(struct qb_tel *tel, int gpu, enum qb_tel_field field, float *values,
                      unsigned char *valid, size_t max)
{
    if (gpu < 0 || gpu >= tel->n_gpus || field < QB_TEL_FIRST_NUMERIC ||
        field >= QB_TEL_FIELD_COUNT)
        return 0;
    pthread_mutex_lock(&tel->pub_lock);
    size_t n = qb_tel_ring_copy(tel->gpus[gpu].rings[field - QB_TEL_FIRST_NUMERIC], values, valid,
                                max);
    pthread_mutex_unlock(&tel->pub_lock);
    return n;
}

int qb_tel_device_count(const struct qb_tel *tel)
{
    return tel->n_gpus;
}

double qb_tel_rate_hz(const struct qb_tel *tel)
{
    return tel->rate_hz;
}

size_t qb_tel_history_capacity(const struct qb_tel *tel)
{
    return tel->history_len;
}

const char *qb_tel_status(const struct qb_tel *tel)
{
    return tel->status[0] ? tel->status : NULL;
}

const char *qb_tel_take_notice(struct qb_tel *tel)
{
    if (!tel->status[0] || atomic_exchange(&tel->notice_taken, 1))
        return NULL;
    return tel->status;
}

/* ---- sampler thread ------------------------------------------------------------- */

static struct timespec timespec_add(struct timespec t, double seconds)
{
    double whole = floor(seconds);
    t.tv_sec += (time_t)whole;
    t.tv_nsec += (long)((seconds - whole) * 1e9);
    if (t.tv_nsec >= 1000000000L) {
        t.tv_sec++;
        t.tv_nsec -= 1000000000L;
    }
    return t;
}

static int timespec_before(struct timespec a, struct timespec b)
{
    return a.tv_sec < b.tv_sec || (a.tv_sec == b.tv_sec && a.tv_nsec < b.tv_nsec);
}

static void *sampler_main(void *arg)
{
    struct qb_tel *tel = arg;
    double period = 1.0 / tel->rate_hz;
    struct timespec next;
    clock_gettime(CLOCK_MONOTONIC, &next);
    for (;;) {
        qb_tel_sample_now(tel, NULL);
        /* Fixed cadence; after a stall (slow NVML call) restart from now
         * instead of bursting to catch up. */
        next = timespec_add(next, period);
        struct timespec now;
        clock_gettime(CLOCK_MONOTONIC, &now);
        if (timespec_before(next, now))
            next = timespec_add(now, period);
        pthread_mutex_lock(&tel->thr_lock);
        int rc = 0;
        while (!tel->stop_requested && rc != ETIMEDOUT)
            rc = pthread_cond_timedwait(&tel->thr_cond, &tel->thr_lock, &next);
        int stop = tel->stop_requested;
        pthread_mutex_unlock(&tel->thr_lock);
        if (stop)
            break;
    }
    return NULL;
}

enum qb_status qb_tel_start(struct qb_tel *tel, struct qb_err *err)
{
    enum qb_status st = QB_OK;
    pthread_mutex_lock(&tel->thr_lock);
    if (tel->running)
        goto out;
    tel->stop_requested = 0;
    int rc = pthread_create(&tel->thread, NULL, sampler_main, tel);
    if (rc != 0) {
        st = qb_err_set(err, QB_ERR_INTERNAL, "cannot start the telemetry sampler thread: %s",
                        strerror(rc));
        goto out;
    }
    tel->running = 1;
out:
    pthread_mutex_unlock(&tel->thr_lock);
    return st;
}

void qb_tel_stop(struct qb_tel *tel)
{
    pthread_mutex_lock(&tel->thr_lock);
    if (!tel->running) {
        pthread_mutex_unlock(&tel->thr_lock);
        return;
    }
    tel->stop_requested = 1;
    pthread_cond_broadcast(&tel->thr_cond);
    pthread_mutex_unlock(&tel->thr_lock);
    pthread_join(tel->thread, NULL);
    pthread_mutex_lock(&tel->thr_lock);
    tel->running = 0;
    pthread_mutex_unlock(&tel->thr_lock);
}

/* ---- create / free ---------------------------------------------------------------- */

static enum qb_status resolve_config(struct qb_tel *tel, const struct qb_tel_config *cfg,
                                     struct qb_err *err)
{
    double rate = cfg && cfg->rate_hz != 0 ? cfg->rate_hz : QB_TEL_DEFAULT_RATE_HZ;
    if (!(rate > 0 && rate <= 1000))
        return qb_err_set(err, QB_ERR_RANGE,
                          "telemetry rate %g Hz is out of range (use more than 0, at most 1000)",
                          rate);
    size_t len = cfg && cfg->history_len ? cfg->history_len
                                         : (size_t)ceil(rate * QB_TEL_DEFAULT_HISTORY_S);
    if (len > ((size_t)1 << 20))
        return qb_err_set(err, QB_ERR_RANGE,
                          "telemetry history of %zu samples is too long (at most %zu)", len,
                          (size_t)1 << 20);
    tel->rate_hz = rate;
    tel->history_len = len;
    const char *meminfo = cfg && cfg->meminfo_path ? cfg->meminfo_path
                                                   : getenv("QUANTBENCH_MEMINFO_PATH");
    tel->meminfo_path = qb_strdup(meminfo && *meminfo ? meminfo : "/proc/meminfo");
    if (!tel->meminfo_path)
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory for the telemetry config");
    return QB_OK;
}

static enum qb_status init_sync(struct qb_tel *tel, struct qb_err *err)
{
    pthread_condattr_t attr;
    if (pthread_condattr_init(&attr) != 0 ||
        pthread_condattr_setclock(&attr, CLOCK_MONOTONIC) != 0 ||
        pthread_cond_init(&tel->thr_cond, &attr) != 0)
        return qb_err_set(err, QB_ERR_INTERNAL, "cannot create the telemetry condition variable");
    pthread_condattr_destroy(&attr);
    pthread_mutex_init(&tel->sample_lock, NULL);
    pthread_mutex_init(&tel->pub_lock, NULL);
    pthread_mutex_init(&tel->thr_lock, NULL);
    tel->sync_ready = 1;
    return QB_OK;
}

static enum qb_status alloc_history(struct qb_tel *tel, struct qb_err *err)
{
    for (int i = 0; i < tel->n_gpus; i++) {
        for (int f = 0; f < N_HISTORY_FIELDS; f++) {
            tel->gpus[i].rings[f] = qb_tel_ring_create(tel->history_len);
            if (!tel->gpus[i].rings[f])
                return qb_err_set(err, QB_ERR_NOMEM,
                                  "out of memory for %zu samples of telemetry history",
                                  tel->history_len);
        }
    }
    return QB_OK;
}

static void close_nvml(struct qb_tel *tel)
{
    if (tel->nvml_up)
        tel->api.shutdown();
    tel->nvml_up = 0;
    if (tel->api.lib)
        dlclose(tel->api.lib);
    memset(&tel->api, 0, sizeof tel->api);
    tel->n_gpus = 0;
}

enum qb_status qb_tel_create(const struct qb_tel_config *cfg, struct qb_tel **out,
                             struct qb_err *err)
{
    enum qb_status st = QB_OK;
    *out = NULL;
    struct qb_tel *tel = calloc(1, sizeof *tel);
    if (!tel)
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory for telemetry");
    st = resolve_config(tel, cfg, err);
    if (st)
        goto out;
    st = init_sync(tel, err);
    if (st)
        goto out;
    if (!load_nvml(&tel->api, cfg ? cfg->nvml_path : NULL, tel->status, sizeof tel->status) ||
        !open_devices(tel, tel->status, sizeof tel->status))
        close_nvml(tel);
    st = alloc_history(tel, err);
    if (st)
        goto out;
    tel->latest.n_gpus = tel->n_gpus;
    for (int i = 0; i < tel->n_gpus; i++)
        tel->latest.gpus[i] = tel->gpus[i].info;
    *out = tel;
    tel = NULL;
out:
    qb_tel_free(tel);
    return st;
}

void qb_tel_free(struct qb_tel *tel)
{
    if (!tel)
        return;
    if (tel->sync_ready)
        qb_tel_stop(tel);
    for (int i = 0; i < QB_TEL_MAX_GPUS; i++) {
        for (int f = 0; f < N_HISTORY_FIELDS; f++)
            qb_tel_ring_free(tel->gpus[i].rings[f]);
    }
    close_nvml(tel);
    free(tel->meminfo_path);
    if (tel->sync_ready) {
        pthread_mutex_destroy(&tel->sample_lock);
        pthread_mutex_destroy(&tel->pub_lock);
        pthread_mutex_destroy(&tel->thr_lock);
        pthread_cond_destroy(&tel->thr_cond);
    }
    free(tel);
}
