/*
 * fake_nvml.c - a stand-in libnvidia-ml.so for the telemetry tests.
 *
 * Built three times by tests/CMakeLists.txt:
 *   fake_nvml            every symbol quantbench uses (current driver ABI)
 *   fake_nvml_minimal    (FAKE_NVML_MINIMAL) only the four required symbols plus
 *                        nvmlDeviceGetName, the v1 memory call, the old
 *                        ...ClocksThrottleReasons name and the v1 process list:
 *                        "old driver / missing optional symbols"
 *   fake_nvml_no_handle  (FAKE_NVML_NO_HANDLE) lacks the required
 *                        nvmlDeviceGetHandleByIndex_v2
 *
 * Behaviour is chosen by FAKE_NVML_MODE, read in nvmlInit_v2 (which also
 * resets the call counters):
 *   normal (default)  two GPUs with fixed, distinct values (below)
 *   gb10              one "NVIDIA GB10": memory NOT_SUPPORTED (unified memory),
 *                     power limit NOT_SUPPORTED, our process holds 37 GiB
 *   fail_midrun       like normal for the first sample; from the second sample
 *                     on (the second memory_v2 call on GPU 0) memory, current
 *                     clocks, temperature, power draw and the process list fail
 *                     with NVML_ERROR_UNKNOWN, the other calls still answer
 *   handle_fail       like normal, but the handle of GPU 1 cannot be had
 *   init_fail         nvmlInit_v2 answers DRIVER_NOT_LOADED
 *   no_gpus           the driver lists zero GPUs
 *
 * Power draw rises by 1 mW per call per GPU (first call: the base value), so
 * history tests can tell samples apart. The values mirror what the tests
 * expect; change both together.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

typedef int nvmlReturn_t;
typedef struct fake_device *nvmlDevice_t;

#define NVML_SUCCESS 0
#define NVML_ERROR_INVALID_ARGUMENT 2
#define NVML_ERROR_NOT_SUPPORTED 3
#define NVML_ERROR_INSUFFICIENT_SIZE 7
#define NVML_ERROR_DRIVER_NOT_LOADED 9
#define NVML_ERROR_ARGUMENT_VERSION_MISMATCH 25
#define NVML_ERROR_UNKNOWN 999

#define MAX_PROCS 80

struct fake_proc {
    unsigned int pid; /* 0 = this process (filled at run time) */
    unsigned long long used;
};

struct fake_device {
    const char *name, *uuid;
    int cc_major, cc_minor;
    unsigned long long total, reserved, used; /* v2 `used` excludes reserved */
    unsigned int clock[3], max_clock[3];      /* graphics, sm, mem */
    unsigned int util_gpu, util_mem, temp, power_base, limit_mgmt, limit_enforced;
    unsigned long long reasons;
    int n_procs;
    struct fake_proc procs[MAX_PROCS];
    unsigned int power_calls, memory_calls;
};

enum fake_mode { MODE_NORMAL, MODE_GB10, MODE_FAIL_MIDRUN, MODE_HANDLE_FAIL, MODE_INIT_FAIL,
                 MODE_NO_GPUS };

static enum fake_mode mode;
static int n_devices;
static struct fake_device devices[2];

#define GIB (1024ULL * 1024 * 1024)
#define MIB (1024ULL * 1024)

static void setup_normal(void)
{
    struct fake_device *d = &devices[0];
    *d = (struct fake_device){
        .name = "NVIDIA H100 80GB HBM3", .uuid = "GPU-00000000-1111-2222-3333-444444444444",
        .cc_major = 9, .cc_minor = 0,
        .total = 81559 * MIB, .reserved = 500 * MIB, .used = 1234 * MIB,
        .clock = {1410, 1425, 2619}, .max_clock = {1980, 1995, 2620},
        .util_gpu = 37, .util_mem = 12, .temp = 41, .power_base = 68123,
        .limit_mgmt = 700000, .limit_enforced = 650000,
        .reasons = 0x1 | 0x4 | 0x1000, /* gpu_idle, sw_power_cap, an unknown bit */
        .n_procs = 2, .procs = {{4242, 1 * GIB}, {0, 512 * MIB}},
    };
    d = &devices[1];
    *d = (struct fake_device){
        .name = "NVIDIA Fake L40S", .uuid = "GPU-55555555-6666-7777-8888-999999999999",
        .cc_major = 8, .cc_minor = 9,
        .total = 46068 * MIB, .reserved = 300 * MIB, .used = 0,
        .clock = {210, 211, 405}, .max_clock = {2520, 2521, 9001},
        .util_gpu = 0, .util_mem = 0, .temp = 30, .power_base = 35250,
        .limit_mgmt = 350000, .limit_enforced = 350000,
        .reasons = 0x8 | 0x20 | 0x40 | 0x80 | 0x100 | 0x2 | 0x10,
        .n_procs = 70,
    };
    /* 70 entries: more than a first guess, so the caller must grow its buffer.
     * Ours is the last, twice (MIG-style duplicates are summed). */
    for (int i = 0; i < 68; i++)
        d->procs[i] = (struct fake_proc){(unsigned int)(100000 + i), MIB};
    d->procs[68] = (struct fake_proc){0, 3 * MIB};
    d->procs[69] = (struct fake_proc){0, 1 * MIB};
    n_devices = 2;
}

static void setup_gb10(void)
{
    devices[0] = (struct fake_device){
        .name = "NVIDIA GB10", .uuid = "GPU-gb10gb10-0000-0000-0000-000000000000",
        .cc_major = 12, .cc_minor = 1,
        .clock = {2418, 2418, 4266}, .max_clock = {3003, 3003, 4266},
        .util_gpu = 96, .util_mem = 0, .temp = 55, .power_base = 41000,
        .reasons = 0,
        .n_procs = 1, .procs = {{0, 37 * GIB}},
    };
    n_devices = 1;
}

nvmlReturn_t nvmlInit_v2(void)
{
    const char *m = getenv("FAKE_NVML_MODE");
    mode = MODE_NORMAL;
    if (m && strcmp(m, "gb10") == 0)
        mode = MODE_GB10;
    else if (m && strcmp(m, "fail_midrun") == 0)
        mode = MODE_FAIL_MIDRUN;
    else if (m && strcmp(m, "handle_fail") == 0)
        mode = MODE_HANDLE_FAIL;
    else if (m && strcmp(m, "init_fail") == 0)
        mode = MODE_INIT_FAIL;
    else if (m && strcmp(m, "no_gpus") == 0)
        mode = MODE_NO_GPUS;
    memset(devices, 0, sizeof devices);
    n_devices = 0;
    if (mode == MODE_INIT_FAIL)
        return NVML_ERROR_DRIVER_NOT_LOADED;
    if (mode == MODE_GB10)
        setup_gb10();
    else if (mode != MODE_NO_GPUS)
        setup_normal();
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlShutdown(void)
{
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int *count)
{
    *count = (unsigned int)n_devices;
    return NVML_SUCCESS;
}

#ifndef FAKE_NVML_NO_HANDLE
nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t *dev)
{
    if (index >= (unsigned int)n_devices || (mode == MODE_HANDLE_FAIL && index == 1))
        return NVML_ERROR_INVALID_ARGUMENT;
    *dev = &devices[index];
    return NVML_SUCCESS;
}
#endif

/* A known device, or NULL. */
static struct fake_device *dev_of(nvmlDevice_t dev)
{
    for (int i = 0; i < n_devices; i++) {
        if (dev == &devices[i])
            return dev;
    }
    return NULL;
}

/* fail_midrun: the sample number is the number of memory_v2 calls on GPU 0. */
static int failing_now(void)
{
    return mode == MODE_FAIL_MIDRUN && devices[0].memory_calls >= 2;
}

static nvmlReturn_t copy_text(char *buf, unsigned int len, const char *s)
{
    if (strlen(s) + 1 > len)
        return NVML_ERROR_INSUFFICIENT_SIZE;
    memcpy(buf, s, strlen(s) + 1);
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t dev, char *name, unsigned int len)
{
    struct fake_device *d = dev_of(dev);
    return d ? copy_text(name, len, d->name) : NVML_ERROR_INVALID_ARGUMENT;
}

/* Memory, v1 layout: what an old driver has; current drivers have it too. */
typedef struct {
    unsigned long long total, free, used;
} nvmlMemory_t;

nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t dev, nvmlMemory_t *mem)
{
    struct fake_device *d = dev_of(dev);
    if (!d)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (mode == MODE_GB10)
        return NVML_ERROR_NOT_SUPPORTED;
    if (failing_now())
        return NVML_ERROR_UNKNOWN;
    /* v1 `used` includes the reserved part: a caller reading v1 when v2 is
     * there gets a different number, which the tests would notice. */
    mem->total = d->total;
    mem->used = d->used + d->reserved;
    mem->free = d->total - mem->used;
    return NVML_SUCCESS;
}

typedef struct {
    unsigned int pid;
    unsigned long long usedGpuMemory;
} nvmlProcessInfo_v1_t;

typedef struct {
    unsigned int pid;
    unsigned long long usedGpuMemory;
    unsigned int gpuInstanceId, computeInstanceId;
} nvmlProcessInfo_t;

/* Fill `infos` (entries of `stride` bytes) NVML style: a count too small (or
 * NULL infos) gets INSUFFICIENT_SIZE and the needed count. */
static nvmlReturn_t list_processes(nvmlDevice_t dev, unsigned int *count, void *infos,
                                   size_t stride)
{
    struct fake_device *d = dev_of(dev);
    if (!d || !count)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (failing_now())
        return NVML_ERROR_UNKNOWN;
    unsigned int need = (unsigned int)d->n_procs;
    if (need == 0) {
        *count = 0;
        return NVML_SUCCESS;
    }
    if (!infos || *count < need) {
        *count = need;
        return NVML_ERROR_INSUFFICIENT_SIZE;
    }
    for (unsigned int i = 0; i < need; i++) {
        nvmlProcessInfo_t e = {
            .pid = d->procs[i].pid ? d->procs[i].pid : (unsigned int)getpid(),
            .usedGpuMemory = d->procs[i].used,
            .gpuInstanceId = 0xffffffffu,
            .computeInstanceId = 0xffffffffu,
        };
        memcpy((char *)infos + i * stride, &e, stride);
    }
    *count = need;
    return NVML_SUCCESS;
}

#ifdef FAKE_NVML_MINIMAL

nvmlReturn_t nvmlDeviceGetCurrentClocksThrottleReasons(nvmlDevice_t dev,
                                                       unsigned long long *reasons)
{
    struct fake_device *d = dev_of(dev);
    if (!d)
        return NVML_ERROR_INVALID_ARGUMENT;
    *reasons = d->reasons;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetComputeRunningProcesses(nvmlDevice_t dev, unsigned int *count,
                                                  nvmlProcessInfo_v1_t *infos)
{
    return list_processes(dev, count, infos, sizeof(nvmlProcessInfo_v1_t));
}

#else /* the full, current ABI */

const char *nvmlErrorString(nvmlReturn_t r)
{
    switch (r) {
    case NVML_SUCCESS: return "Success";
    case NVML_ERROR_INVALID_ARGUMENT: return "Invalid Argument";
    case NVML_ERROR_NOT_SUPPORTED: return "Not Supported";
    case NVML_ERROR_DRIVER_NOT_LOADED: return "Driver Not Loaded";
    default: return "Unknown Error";
    }
}

nvmlReturn_t nvmlSystemGetDriverVersion(char *version, unsigned int len)
{
    return copy_text(version, len, "580.159.04");
}

nvmlReturn_t nvmlSystemGetCudaDriverVersion_v2(int *version)
{
    *version = 13000;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t dev, char *uuid, unsigned int len)
{
    struct fake_device *d = dev_of(dev);
    return d ? copy_text(uuid, len, d->uuid) : NVML_ERROR_INVALID_ARGUMENT;
}

nvmlReturn_t nvmlDeviceGetCudaComputeCapability(nvmlDevice_t dev, int *major, int *minor)
{
    struct fake_device *d = dev_of(dev);
    if (!d)
        return NVML_ERROR_INVALID_ARGUMENT;
    *major = d->cc_major;
    *minor = d->cc_minor;
    return NVML_SUCCESS;
}

typedef struct {
    unsigned int version;
    unsigned long long total, reserved, free, used;
} nvmlMemory_v2_t;

nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t dev, nvmlMemory_v2_t *mem)
{
    struct fake_device *d = dev_of(dev);
    if (!d)
        return NVML_ERROR_INVALID_ARGUMENT;
    d->memory_calls++;
    if (mem->version != (unsigned int)(sizeof(nvmlMemory_v2_t) | (2u << 24)))
        return NVML_ERROR_ARGUMENT_VERSION_MISMATCH;
    if (mode == MODE_GB10)
        return NVML_ERROR_NOT_SUPPORTED;
    if (failing_now())
        return NVML_ERROR_UNKNOWN;
    mem->total = d->total;
    mem->reserved = d->reserved;
    mem->used = d->used;
    mem->free = d->total - d->reserved - d->used;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetClockInfo(nvmlDevice_t dev, int type, unsigned int *mhz)
{
    struct fake_device *d = dev_of(dev);
    if (!d || type < 0 || type > 2)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (failing_now())
        return NVML_ERROR_UNKNOWN;
    *mhz = d->clock[type];
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetMaxClockInfo(nvmlDevice_t dev, int type, unsigned int *mhz)
{
    struct fake_device *d = dev_of(dev);
    if (!d || type < 0 || type > 2)
        return NVML_ERROR_INVALID_ARGUMENT;
    *mhz = d->max_clock[type];
    return NVML_SUCCESS;
}

typedef struct {
    unsigned int gpu, memory;
} nvmlUtilization_t;

nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t dev, nvmlUtilization_t *util)
{
    struct fake_device *d = dev_of(dev);
    if (!d)
        return NVML_ERROR_INVALID_ARGUMENT;
    util->gpu = d->util_gpu;
    util->memory = d->util_mem;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t dev, int sensor, unsigned int *temp)
{
    struct fake_device *d = dev_of(dev);
    if (!d || sensor != 0)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (failing_now())
        return NVML_ERROR_UNKNOWN;
    *temp = d->temp;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t dev, unsigned int *mw)
{
    struct fake_device *d = dev_of(dev);
    if (!d)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (failing_now())
        return NVML_ERROR_UNKNOWN;
    *mw = d->power_base + d->power_calls++;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetPowerManagementLimit(nvmlDevice_t dev, unsigned int *mw)
{
    struct fake_device *d = dev_of(dev);
    if (!d)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (mode == MODE_GB10)
        return NVML_ERROR_NOT_SUPPORTED;
    *mw = d->limit_mgmt;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetEnforcedPowerLimit(nvmlDevice_t dev, unsigned int *mw)
{
    struct fake_device *d = dev_of(dev);
    if (!d)
        return NVML_ERROR_INVALID_ARGUMENT;
    if (mode == MODE_GB10)
        return NVML_ERROR_NOT_SUPPORTED;
    *mw = d->limit_enforced;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetCurrentClocksEventReasons(nvmlDevice_t dev,
                                                    unsigned long long *reasons)
{
    struct fake_device *d = dev_of(dev);
    if (!d)
        return NVML_ERROR_INVALID_ARGUMENT;
    *reasons = d->reasons;
    return NVML_SUCCESS;
}

nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t dev, unsigned int *count,
                                                     nvmlProcessInfo_t *infos)
{
    return list_processes(dev, count, infos, sizeof(nvmlProcessInfo_t));
}

#endif /* FAKE_NVML_MINIMAL */
