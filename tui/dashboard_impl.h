/*
 * dashboard_impl.h - the dashboard's state, shared by its files:
 *
 *   dashboard.c         entry point, terminal setup/teardown, signals, event loop
 *   dashboard_draw.c    header, footer, the five panes (a const pane class table),
 *                       overlays (help, quit confirm, search), too-small screen
 *   dashboard_keys.c    key -> action (keys.h table) -> handler
 *   dashboard_models.c  the Models pane's list: demo model, --models-dir, the HF
 *                       cache (hub list), Hub search results; model details
 *   dashboard_method.c  schemes, bits/weight, expected size, hardware support
 *   dashboard_bridge.c  the worker bridge: job queue, self-pipe wake-ups,
 *                       finished jobs -> Results rows; GPU telemetry adapter
 *
 * Threading: everything here belongs to the UI thread. The worker is reached
 * only through struct qb_jobq (copies in, snapshots and done records out);
 * its wake function writes one byte to the self-pipe that the loop polls.
 * Only the signal flags and the self-pipe's write end are process-global
 * (dashboard.c), as the signal handler must reach them.
 */
#ifndef QB_DASHBOARD_IMPL_H
#define QB_DASHBOARD_IMPL_H

#include <curses.h>
#include <stdint.h>

#include "core/job.h"
#include "core/progress.h"
#include "core/quant.h"
#include "core/results.h"
#include "tui/keys.h"
#include "tui/layout.h"
#include "tui/theme.h"

#define DASH_MAX_SCHEMES 64
#define DASH_GPU_HIST 240

enum dash_overlay { DASH_OV_NONE = 0, DASH_OV_HELP, DASH_OV_CONFIRM, DASH_OV_SEARCH };

struct dash_model {
    char id[256];          /* shown name: "ref-llama-10m (demo)", "ORG/NAME" */
    char path[1024];       /* local folder; "" for a Hub search hit not pulled */
    char source[8];        /* "demo", "dir", "cache", "hub" */
    char revision[64];
    int64_t params;        /* total parameters (-1 unknown) */
    int64_t decoder_params;/* decoder linear parameters (-1 unknown) */
    int64_t disk_bytes;    /* -1 unknown */
    char arch[48];         /* "llama", ... */
    char dtype[16];        /* "bf16" */
    int layers, hidden;
    int supported;         /* 1 yes, 0 no, -1 unknown */
    char note[128];        /* why not supported, downloads, ... */
};

struct dash_scheme {
    struct qb_scheme s;
    double bpw;            /* bits per weight for a hidden x hidden linear */
    int marked;            /* for compare */
};

/* One GPU as the GPU pane shows it; every value has a validity flag. */
struct dash_gpu {
    int present;           /* telemetry module in the build */
    int n_gpus;
    char notice[192];      /* "no GPU: ..." (said once in the pane) */
    char name[96], driver[32], cuda[16];
    int cc_major, cc_minor;
    int v_mem, v_sm, v_memclk, v_util, v_temp, v_power;
    double mem_used_gib, mem_total_gib;
    unsigned sm_mhz, mem_mhz, util_pct, temp_c;
    double power_w, power_limit_w;
    int v_power_limit;
    float hist_util[DASH_GPU_HIST], hist_mem[DASH_GPU_HIST], hist_power[DASH_GPU_HIST],
        hist_temp[DASH_GPU_HIST];
    unsigned char ok_util[DASH_GPU_HIST], ok_mem[DASH_GPU_HIST], ok_power[DASH_GPU_HIST],
        ok_temp[DASH_GPU_HIST];
    size_t n_hist;
    void *tel;             /* struct qb_tel * when the module is there */
};

struct dash_opts {
    char theme[256];
    char models_dir[1024];
    char text_path[1024];
    char calib_path[1024]; /* calibration text for GPTQ/AWQ ("" = the bundled sample) */
    char backend[8];
    char model_arg[1024];  /* MODEL given on the command line */
    int ascii;             /* force ASCII borders/sparklines */
    int ctx;               /* eval context (0 = 512) */
    int chunks;            /* eval chunks from --chunks (-1 = use the pane's setting) */
};

struct qb_dash {
    struct dash_opts opt;
    SCREEN *screen;
    int utf8;
    struct qb_theme theme;
    attr_t attr[QB_TH_COUNT];
    struct qb_layout layout;
    int focus;             /* enum qb_pane */
    int zoom;              /* pane or -1 */
    enum dash_overlay overlay;
    int help_scroll;
    char search[96];
    size_t search_len;
    int quit;

    /* models */
    struct dash_model *models;
    size_t n_models, cap_models;
    int model_sel, model_top;
    int model_active;      /* index jobs run on (-1 none) */

    /* method */
    struct dash_scheme schemes[DASH_MAX_SCHEMES];
    int n_schemes;
    int scheme_sel, scheme_top;
    int group_idx, act_order, calib_idx, chunks_idx;

    /* hub: a search and a pull run as jobs; their ids tell their done records apart */
    struct dash_search *search_req;  /* owned; filled by the worker, read after done */
    uint64_t search_job_id, pull_job_id;

    /* job */
    struct qb_jobq *jobq;
    struct qb_progress_snapshot snap;
    uint64_t job_id;       /* last submitted */
    int cancel_requested;
    char job_title[96];

    /* results */
    struct qb_results session;   /* rows of this session (baseline rows included) */
    struct qb_results history;   /* rows loaded from the history file */
    int show_history;
    enum qb_results_key sort_key;
    int sort_desc;
    struct qb_results view;      /* what the pane shows: baseline first, then sorted */
    int view_base;               /* index of the baseline row in view, -1 when none */
    int results_sel, results_top;
    char doctor_verdict[256];

    /* gpu */
    struct dash_gpu gpu;

    /* status line */
    char status[256];
    int status_elem;       /* theme element of the status text */
    double status_until;
};

/* dashboard.c */
void dash_status(struct qb_dash *d, int elem, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
void dash_fatal_oom(struct qb_dash *d) __attribute__((noreturn));

/* dashboard_draw.c */
void dash_draw(struct qb_dash *d);
void dash_apply_theme(struct qb_dash *d);
/* "21.0 MB" (decimal units) and "10.5M"; "-" when negative/unknown. */
void dash_fmt_bytes(double bytes, char *buf, size_t size);
void dash_fmt_count(double n, char *buf, size_t size);

/* dashboard_keys.c */
void dash_handle_key(struct qb_dash *d, int key);
enum qb_key_ctx dash_key_context(const struct qb_dash *d);

/* dashboard_models.c */
void dash_models_scan(struct qb_dash *d);
void dash_models_search(struct qb_dash *d, const char *query);
void dash_models_pull(struct qb_dash *d);
/* A finished search/pull job: 1 when the record was one of them (consumed). */
int dash_models_job_done(struct qb_dash *d, const struct qb_job_done *done);
void dash_models_free(struct qb_dash *d);
const struct dash_model *dash_model_selected(const struct qb_dash *d);
const struct dash_model *dash_model_active(const struct qb_dash *d);

/* dashboard_method.c */
void dash_schemes_init(struct qb_dash *d);
int dash_group_size(const struct qb_dash *d);
int dash_calib_samples(const struct qb_dash *d);
/* The calibration text in use (path) and a short name for it ("calib-gutenberg"). */
void dash_calib_path(const struct qb_dash *d, char *buf, size_t size);
void dash_calib_name(const struct qb_dash *d, char *buf, size_t size);
int dash_eval_chunks(const struct qb_dash *d);
/* Expected bytes of the model's weights in scheme s (-1 unknown). */
double dash_expected_bytes(const struct dash_model *m, const struct dash_scheme *s);
/* "NVFP4: native on Blackwell, emulated here" for the GPU at hand. */
void dash_hw_support(const struct qb_dash *d, const struct dash_scheme *s, char *buf,
                     size_t size);

/* dashboard_bridge.c */
enum qb_status dash_bridge_start(struct qb_dash *d, int wake_fd, struct qb_err *err);
void dash_bridge_stop(struct qb_dash *d);
/* Copy the progress snapshot, drain finished jobs into the Results rows;
 * returns 1 when something changed. */
int dash_bridge_poll(struct qb_dash *d);
void dash_submit_eval(struct qb_dash *d, int compare);
void dash_submit_doctor(struct qb_dash *d);
/* Quantize the selected scheme into $XDG_DATA_HOME/quantbench/models (w). */
void dash_submit_quantize(struct qb_dash *d);
/* pp/tg tok/s of the baseline and the selected scheme (B). */
void dash_submit_bench(struct qb_dash *d);
/* Queue spec with a Job-pane title; returns the job id, 0 on failure (status set). */
uint64_t dash_submit(struct qb_dash *d, const struct qb_job_spec *spec, const char *title);
void dash_cancel_job(struct qb_dash *d);
int dash_job_running(const struct qb_dash *d);
void dash_gpu_sample(struct qb_dash *d);
void dash_results_reload(struct qb_dash *d);
/* Rows the Results pane shows now (session or history), baseline first. */
const struct qb_results *dash_results_rows(const struct qb_dash *d);
void dash_results_resort(struct qb_dash *d);
void dash_results_export(struct qb_dash *d);

#endif /* QB_DASHBOARD_IMPL_H */
