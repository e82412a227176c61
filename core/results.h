/*
 * results.h - the results history: one JSON line per finished run.
 *
 * Every finished eval, compare and bench (from the CLI or the dashboard)
 * appends one line per measured model variant to
 *   $XDG_STATE_HOME/quantbench/results.jsonl   (default ~/.local/state/...)
 * The dashboard's Results pane and `--json`/export read it back.
 *
 * Line format (one cJSON object, keys below; a missing number is null):
 *   {"time":1764221000,"kind":"compare","model":"tests/data/ref-llama-10m",
 *    "revision":null,"scheme":"int4","options":"group=128","baseline":false,
 *    "base_dtype":"bf16","ppl":12.3,"ppl_stderr":0.4,"ppl_baseline":11.9,
 *    "delta_ppl":0.4,"kld":0.012,"top1":0.97,"bits_per_weight":4.25,
 *    "size_bytes":5300000,"baseline_bytes":20000000,"pp_tps":5000,"tg_tps":null,
 *    "pp_tps_baseline":1500,"tg_tps_baseline":null,
 *    "ctx":512,"chunks":1,"backend":"cpu","gpu":null,"driver":null,"cuda":null,
 *    "version":"0.1.0"}
 *
 * Appends are atomic: the line is built in memory and written with a single
 * write(2) on an O_APPEND descriptor while holding flock(LOCK_EX), so readers
 * (LOCK_SH) and concurrent writers (two quantbench processes) never see half
 * a line. Loading skips a malformed line with a warning (counted in
 * struct qb_results.skipped, first reason in .warning) and is never fatal; a
 * missing file is an empty history.
 *
 * Numbers use NAN for "absent" (doubles) and -1 (integers); strings are empty
 * when absent. Sizes in bytes, speeds in tokens per second, KLD in nats.
 * Thread safety: functions touch only their arguments and the file.
 */
#ifndef QB_RESULTS_H
#define QB_RESULTS_H

#include <stdint.h>
#include <stdio.h>

#include "qb_common.h"

struct qb_result {
    int64_t time;             /* unix seconds when the run finished */
    char kind[16];            /* "eval", "compare", "bench" */
    char model[1024];         /* directory or ORG/NAME */
    char revision[64];        /* Hub revision/commit; "" for local dirs */
    char scheme[32];          /* "int4", or the dtype name for the baseline row */
    char options[128];        /* "group=128 act_order calib=file:128" ("" = defaults) */
    int baseline;             /* 1 for the unquantized reference row */
    char base_dtype[16];      /* checkpoint dtype ("bf16") */
    double ppl, ppl_stderr;   /* perplexity (NAN when not measured) */
    double ppl_baseline;      /* baseline ppl on the same tokens */
    double delta_ppl;         /* ppl - ppl_baseline */
    double kld;               /* mean KL(base || this), nats */
    double top1;              /* top-1 agreement with the baseline, 0..1 */
    double bits_per_weight;   /* decoder linears, scales included */
    int64_t size_bytes;       /* all weights as held in memory */
    int64_t baseline_bytes;   /* the same for the baseline */
    double pp_tps, tg_tps;    /* prefill / decode tokens per second */
    double pp_tps_baseline;   /* the baseline's pp_tps in the same run */
    double tg_tps_baseline;   /* the baseline's tg_tps in the same run */
    int ctx, chunks;          /* eval context and chunks scored (-1 absent) */
    char backend[16];         /* "cpu", "cuda" */
    char gpu[96];             /* GPU name ("" when none) */
    char driver[32];          /* NVIDIA driver version */
    char cuda[16];            /* CUDA driver API version "13.0" */
    char version[24];         /* quantbench version */
};

/* Reset *r to "nothing measured": NAN/-1/"" everywhere, version = QB_VERSION,
 * time = now. */
void qb_result_init(struct qb_result *r);

/* Speed-up of r's prefill over its run's baseline, pp_tps / pp_tps_baseline
 * (NAN when either is absent). */
double qb_result_speedup(const struct qb_result *r);
/* The same for decode: tg_tps / tg_tps_baseline (NAN when either is absent). */
double qb_result_tg_speedup(const struct qb_result *r);

/* The history file path: $XDG_STATE_HOME/quantbench/results.jsonl, else
 * $HOME/.local/state/quantbench/results.jsonl. QB_ERR_IO when neither variable
 * is usable, QB_ERR_RANGE when it does not fit in size. */
enum qb_status qb_results_default_path(char *buf, size_t size, struct qb_err *err);

/* Append one line to path (NULL = the default path; parent folders are
 * created). Atomic as described above. */
enum qb_status qb_results_append(const char *path, const struct qb_result *r,
                                 struct qb_err *err);

/* One JSON object for r (no newline); malloced, NULL on OOM. */
char *qb_result_to_json(const struct qb_result *r);
/* Parse one line; QB_ERR_FORMAT with err naming the field when malformed. */
enum qb_status qb_result_from_json(const char *line, struct qb_result *out, struct qb_err *err);

struct qb_results {
    struct qb_result *items;  /* owned; free with qb_results_clear */
    size_t n, cap;
    int skipped;              /* malformed lines skipped while loading */
    char warning[640];        /* the first skip reason ("line 3: ..."), "" when none */
};

/* Load every line of path (NULL = default). A missing file gives an empty set
 * and QB_OK. Corrupt lines are skipped (see above). Errors: QB_ERR_IO when the
 * file exists but cannot be read, QB_ERR_NOMEM. out is cleared first. */
enum qb_status qb_results_load(const char *path, struct qb_results *out, struct qb_err *err);
void qb_results_clear(struct qb_results *rs);
/* Append a copy of r (QB_ERR_NOMEM on failure). */
enum qb_status qb_results_push(struct qb_results *rs, const struct qb_result *r);

/* Keep only the rows matching every non-NULL, non-empty field (exact match). */
struct qb_results_filter {
    const char *model;
    const char *scheme;
    const char *kind;
};
void qb_results_filter(struct qb_results *rs, const struct qb_results_filter *f);

enum qb_results_key {
    QB_RESULTS_BY_TIME = 0,
    QB_RESULTS_BY_SCHEME,
    QB_RESULTS_BY_BPW,
    QB_RESULTS_BY_SIZE,
    QB_RESULTS_BY_PPL,
    QB_RESULTS_BY_DELTA_PPL,
    QB_RESULTS_BY_KLD,
    QB_RESULTS_BY_PP,
    QB_RESULTS_BY_TG,
    QB_RESULTS_KEY_COUNT
};
const char *qb_results_key_name(enum qb_results_key key); /* "ppl"; never NULL */

/* Stable sort by key; absent values (NAN/-1) always go last. Baseline rows
 * are not treated specially here (the dashboard pins its own baseline). */
void qb_results_sort(struct qb_results *rs, enum qb_results_key key, int descending);

enum qb_export_format { QB_EXPORT_CSV = 0, QB_EXPORT_JSON, QB_EXPORT_MARKDOWN };
/* "csv" | "json" | "md"/"markdown"; -1 when unknown. */
int qb_export_format_parse(const char *s, enum qb_export_format *out);
const char *qb_export_format_ext(enum qb_export_format fmt); /* "csv", "json", "md" */

/* Write rows to f: CSV (RFC 4180 header + rows, empty cell when absent),
 * JSON (one array of the line objects), Markdown (a pipe table). */
enum qb_status qb_results_export(const struct qb_results *rs, enum qb_export_format fmt, FILE *f,
                                 struct qb_err *err);
/* The same into path, through a temporary file renamed into place. */
enum qb_status qb_results_export_file(const struct qb_results *rs, enum qb_export_format fmt,
                                      const char *path, struct qb_err *err);

#endif /* QB_RESULTS_H */
