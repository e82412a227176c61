/*
 * telemetry.h - GPU telemetry (memory, clocks, utilization, temperature, power)
 * through NVML loaded at run time, with a sampler thread and a history ring.
 *
 * Who uses it: `quantbench gpu` (one sample, or one every N seconds) and the
 * dashboard (a sampler thread at 4 Hz; sparklines from the history).
 *
 * NVML is dlopen()ed (libnvidia-ml.so.1, then libnvidia-ml.so; the environment
 * variable QUANTBENCH_NVML_LIB names another file). There is no nvml.h and no
 * link-time dependency: the module is built in every configuration, and a
 * machine without the NVIDIA driver just has zero GPUs and one status line
 * saying why (qb_tel_status). Only nvmlInit_v2, nvmlShutdown,
 * nvmlDeviceGetCount_v2 and nvmlDeviceGetHandleByIndex_v2 are required; every
 * other symbol is optional, and a missing or failing one leaves only its own
 * field invalid for that sample.
 *
 * Validity: every field of struct qb_tel_gpu has a bit in `valid` (bit
 * 1 << enum qb_tel_field). A bit is set only when the value was read in this
 * very sample (static fields: read once at creation). Unsupported or failed
 * reads leave the bit clear: show "N/A" / null, never a zero or an older value.
 *
 * Unified memory (DGX Spark, GB10): NVML answers NOT_SUPPORTED (or success with
 * total 0) for device memory there. Then memory is the system's, from
 * /proc/meminfo: total = MemTotal, used = MemTotal - MemAvailable, and
 * mem_source is QB_TEL_MEM_SYSTEM. cudaMemGetInfo is never used (it ignores
 * reclaimable page cache).
 *
 * Threading: one sample at a time (qb_tel_sample_now and the sampler thread
 * serialise on their own lock); readers (qb_tel_read, qb_tel_history) copy under
 * a second lock that the sampler holds only while publishing a finished
 * sample, so a reader never waits for an NVML call and the sampler never waits
 * longer than one copy. All functions may be called from any thread, except
 * qb_tel_free, which must be the last call.
 */
#ifndef QB_TELEMETRY_H
#define QB_TELEMETRY_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "qb_common.h"

#define QB_TEL_MAX_GPUS 16        /* GPUs beyond this are not reported */
#define QB_TEL_DEFAULT_RATE_HZ 4.0
#define QB_TEL_DEFAULT_HISTORY_S 300.0
#define QB_TEL_TEXT_MAX 96        /* name, UUID and version strings, NUL included */

/* One bit per field in struct qb_tel_gpu.valid. Fields from QB_TEL_MEM_USED on
 * are numeric and have a history (qb_tel_history); the unit is the field's. */
enum qb_tel_field {
    QB_TEL_NAME = 0,
    QB_TEL_UUID,
    QB_TEL_COMPUTE_CAP,
    QB_TEL_DRIVER_VERSION,
    QB_TEL_CUDA_DRIVER_VERSION,
    QB_TEL_MEM_USED,           /* bytes */
    QB_TEL_MEM_TOTAL,          /* bytes */
    QB_TEL_CLOCK_GRAPHICS,     /* MHz */
    QB_TEL_CLOCK_SM,           /* MHz */
    QB_TEL_CLOCK_MEM,          /* MHz */
    QB_TEL_CLOCK_GRAPHICS_MAX, /* MHz */
    QB_TEL_CLOCK_SM_MAX,       /* MHz */
    QB_TEL_CLOCK_MEM_MAX,      /* MHz */
    QB_TEL_UTIL_GPU,           /* percent, 0..100 */
    QB_TEL_UTIL_MEM,           /* percent, 0..100 */
    QB_TEL_TEMPERATURE,        /* degrees C */
    QB_TEL_POWER,              /* milliwatts */
    QB_TEL_POWER_LIMIT,        /* milliwatts */
    QB_TEL_THROTTLE,           /* bit set of enum qb_tel_throttle */
    QB_TEL_PROCESS_MEM,        /* bytes this process holds on the GPU */
    QB_TEL_FIELD_COUNT
};

#define QB_TEL_FIRST_NUMERIC QB_TEL_MEM_USED

/* Clock-event ("throttle") reasons: the NVML bit values. */
enum qb_tel_throttle {
    QB_TEL_THR_GPU_IDLE = 1u << 0,
    QB_TEL_THR_APP_CLOCKS = 1u << 1,
    QB_TEL_THR_SW_POWER_CAP = 1u << 2,
    QB_TEL_THR_HW_SLOWDOWN = 1u << 3,
    QB_TEL_THR_SYNC_BOOST = 1u << 4,
    QB_TEL_THR_SW_THERMAL = 1u << 5,
    QB_TEL_THR_HW_THERMAL = 1u << 6,
    QB_TEL_THR_HW_POWER_BRAKE = 1u << 7,
    QB_TEL_THR_DISPLAY_CLOCK = 1u << 8,
};

enum qb_tel_mem_source {
    QB_TEL_MEM_NONE = 0, /* memory fields invalid */
    QB_TEL_MEM_NVML,     /* device memory from NVML */
    QB_TEL_MEM_SYSTEM,   /* unified memory: /proc/meminfo */
};

struct qb_tel_gpu {
    uint64_t valid;                         /* bit 1 << enum qb_tel_field per valid field */
    int index;                              /* NVML device index */
    char name[QB_TEL_TEXT_MAX];             /* "NVIDIA H100 80GB HBM3" */
    char uuid[QB_TEL_TEXT_MAX];             /* "GPU-xxxxxxxx-..." */
    int cc_major, cc_minor;                 /* compute capability 9.0, 12.1 */
    char driver_version[QB_TEL_TEXT_MAX];   /* "580.159.04" (the system's) */
    int cuda_driver_version;                /* 13000 = CUDA 13.0 */
    uint64_t mem_used_bytes, mem_total_bytes;
    enum qb_tel_mem_source mem_source;      /* NONE when both memory fields are invalid */
    unsigned clock_graphics_mhz, clock_sm_mhz, clock_mem_mhz;
    unsigned clock_graphics_max_mhz, clock_sm_max_mhz, clock_mem_max_mhz;
    unsigned util_gpu_pct, util_mem_pct;
    unsigned temperature_c;
    unsigned power_mw, power_limit_mw;
    uint64_t throttle;                      /* enum qb_tel_throttle bits (others kept) */
    uint64_t process_mem_bytes;             /* ours (getpid()), 0 when we hold none */
};

static inline int qb_tel_has(const struct qb_tel_gpu *g, enum qb_tel_field f)
{
    return (g->valid >> f) & 1u;
}

struct qb_tel_snapshot {
    uint64_t seq;       /* samples taken so far; 0 = no sample yet (n_gpus still valid) */
    double time_s;      /* qb_now_seconds() when this sample was taken */
    int n_gpus;
    struct qb_tel_gpu gpus[QB_TEL_MAX_GPUS];
};

struct qb_tel_config {
    double rate_hz;            /* sampler rate, (0, 1000]; 0 means 4 Hz */
    size_t history_len;        /* samples kept per metric; 0 means 5 minutes at rate_hz */
    const char *nvml_path;     /* NULL: $QUANTBENCH_NVML_LIB, else the standard names */
    const char *meminfo_path;  /* NULL: $QUANTBENCH_MEMINFO_PATH (tests), else /proc/meminfo */
};

struct qb_tel;

/*
 * Load NVML and enumerate the GPUs (name, UUID, compute capability and driver
 * versions are read here). cfg may be NULL (defaults). A missing driver, a
 * failing nvmlInit or zero GPUs is NOT an error: *out is a working object
 * with zero GPUs and qb_tel_status() says why. Errors: QB_ERR_RANGE for a bad
 * config, QB_ERR_NOMEM. The caller frees *out with qb_tel_free().
 */
enum qb_status qb_tel_create(const struct qb_tel_config *cfg, struct qb_tel **out,
                             struct qb_err *err);

/* Stop the sampler, shut NVML down and unload it. NULL is fine. */
void qb_tel_free(struct qb_tel *tel);

/* Start the sampler thread (first sample at once, then every 1/rate_hz s).
 * QB_OK when started or already running; QB_ERR_INTERNAL with err set when the
 * thread cannot be created. With zero GPUs the thread still runs (cheaply). */
enum qb_status qb_tel_start(struct qb_tel *tel, struct qb_err *err);

/* Stop and join the sampler; returns within about one NVML sample. No-op when
 * not running. The history and latest snapshot stay readable. */
void qb_tel_stop(struct qb_tel *tel);

/* Take one sample on the calling thread, publish it (snapshot and history) and
 * copy it into *out when out is not NULL. */
void qb_tel_sample_now(struct qb_tel *tel, struct qb_tel_snapshot *out);

/* Copy the latest published sample into *out (seq 0 before the first one). */
void qb_tel_read(struct qb_tel *tel, struct qb_tel_snapshot *out);

/*
 * History of one numeric field (field >= QB_TEL_FIRST_NUMERIC) of GPU `gpu`:
 * the newest min(max, available) samples, oldest first, into values[] (in the
 * field's unit, as float) and valid[] (1 = value read, 0 = N/A). Returns the
 * number written; 0 for a bad gpu index or field. valid may not be NULL.
 */
size_t qb_tel_history(struct qb_tel *tel, int gpu, enum qb_tel_field field, float *values,
                      unsigned char *valid, size_t max);

int qb_tel_device_count(const struct qb_tel *tel);
double qb_tel_rate_hz(const struct qb_tel *tel);
size_t qb_tel_history_capacity(const struct qb_tel *tel);

/* Why there are no GPUs ("no NVIDIA driver: cannot load libnvidia-ml.so.1 ..."),
 * or NULL when GPUs are there. Owned by tel, valid until qb_tel_free. */
const char *qb_tel_status(const struct qb_tel *tel);

/* The same line, returned once per tel (then NULL), so a loop that polls it
 * says "no GPU" once. */
const char *qb_tel_take_notice(struct qb_tel *tel);

/* ---- decoding and formatting (telemetry_format.c) -------------------------- */

/* Names of the set bits of a throttle mask ("gpu_idle", "sw_power_cap", ...)
 * into names[], in bit order; unknown bits are skipped. Returns the count. */
size_t qb_tel_throttle_names(uint64_t mask, const char **names, size_t max);

/* "nvml" / "system"; NULL for QB_TEL_MEM_NONE. */
const char *qb_tel_mem_source_name(enum qb_tel_mem_source src);

/* Numeric value of a field >= QB_TEL_FIRST_NUMERIC as a double (its unit);
 * returns 0 and leaves *out alone when the field is invalid. */
int qb_tel_value(const struct qb_tel_gpu *g, enum qb_tel_field field, double *out);

/* The `quantbench gpu --json` document: {"gpus": [...]} with null for every
 * invalid field. Returns a malloced string (free()), NULL on OOM. */
char *qb_tel_snapshot_json(const struct qb_tel_snapshot *s, int pretty);

/* The human table of `quantbench gpu`: one block per GPU, N/A where invalid. */
void qb_tel_print_table(FILE *f, const struct qb_tel_snapshot *s);

/* ---- /proc/meminfo (unified memory) ---------------------------------------- */

/* Parse meminfo text: MemTotal and MemAvailable (kB) into bytes. QB_ERR_FORMAT
 * (err set, naming the missing or bad field) when either is absent or bad, or
 * available > total. `what` names the source in messages. */
enum qb_status qb_tel_parse_meminfo(const char *text, size_t len, const char *what,
                                    uint64_t *total_bytes, uint64_t *available_bytes,
                                    struct qb_err *err);

/* ---- the history ring (telemetry_ring.c) ----------------------------------- */

/* A fixed-capacity ring of (float, valid) samples; a push past capacity drops
 * the oldest. Not thread-safe by itself (struct qb_tel locks around it). */
struct qb_tel_ring;

struct qb_tel_ring *qb_tel_ring_create(size_t capacity); /* NULL on OOM or capacity 0 */
void qb_tel_ring_free(struct qb_tel_ring *r);            /* NULL is fine */
void qb_tel_ring_push(struct qb_tel_ring *r, float value, int valid);
size_t qb_tel_ring_len(const struct qb_tel_ring *r);
size_t qb_tel_ring_capacity(const struct qb_tel_ring *r);
/* The newest min(max, len) samples, oldest first; returns the count written. */
size_t qb_tel_ring_copy(const struct qb_tel_ring *r, float *values, unsigned char *valid,
                        size_t max);

#endif /* QB_TELEMETRY_H */
