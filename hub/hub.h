/*
 * hub.h - the Hugging Face Hub client: search, model info, pull into the
 * shared huggingface_hub cache, the local cache listing, model resolution and
 * evaluation data sets (datasets-server rows API).
 *
 * One struct qb_hub holds everything a call needs (endpoint, token, cache
 * folders, offline flag, timeouts, retry policy); there is no global state, so
 * the dashboard and the CLI may each hold their own client, and different
 * clients may be used from different threads at once (one client is not meant
 * to be shared by two threads at the same time). qb_hub_open() runs
 * curl_global_init() once per process (pthread_once), so open the first client
 * before other threads start using libcurl.
 *
 * The token is kept inside the opaque client: it is never printed, logged,
 * written to disk, or sent to a host other than the endpoint's (redirects to a
 * CDN drop the Authorization header).
 *
 * Every function returns an enum qb_status and fills *err with one line on
 * failure (QB_ERR_HTTP for 401/403/404/429 answers, QB_ERR_NETWORK for
 * transport failures after bounded retries, QB_ERR_FORMAT for malformed Hub
 * JSON). Strings in result structs are malloced and owned by the struct; free
 * them with the matching *_free / *_clear function (all accept NULL).
 */
#ifndef QB_HUB_H
#define QB_HUB_H

#include <stddef.h>
#include <stdint.h>

#include "progress.h"
#include "qb_common.h"

struct qb_hub;

/* Options for qb_hub_open(); start from qb_hub_opts_from_env(). Strings are
 * copied by qb_hub_open (the opts struct may be freed right after). */
struct qb_hub_opts {
    char *endpoint;          /* "https://huggingface.co" (HF_ENDPOINT), no trailing '/' */
    char *datasets_endpoint; /* "https://datasets-server.huggingface.co" (HF_DATASETS_SERVER) */
    char *token;             /* HF_TOKEN, HUGGING_FACE_HUB_TOKEN, else token file; may be NULL */
    char *hub_cache;         /* HF_HUB_CACHE > HUGGINGFACE_HUB_CACHE > $HF_HOME/hub */
    char *data_cache;        /* $XDG_CACHE_HOME/quantbench/datasets (or ~/.cache/...) */
    int offline;             /* HF_HUB_OFFLINE / TRANSFORMERS_OFFLINE: cache only, no HTTP */
    long connect_timeout_s;  /* TCP/TLS connect timeout per request (10) */
    long api_timeout_s;   /* whole-request timeout for API/JSON calls (HF_HUB_ETAG_TIMEOUT, 30) */
    long stall_timeout_s; /* a download moving < 1 byte/s this long is aborted (30) */
    int max_retries;      /* retries of one request on transient errors (5) */
    double backoff_s;     /* first retry delay, doubled each retry, capped at 8 s (0.5) */
    double retry_after_cap_s; /* longest Retry-After we wait for before failing (60) */
    int parallel;             /* files downloaded at once by pull (4) */
    int max_pages;            /* pagination bound for search/tree (100) */
};

/* Fill opts from the environment (see the fields). Returns QB_ERR_NOMEM or
 * QB_ERR_IO (no usable home/cache folder). Free with qb_hub_opts_clear. */
enum qb_status qb_hub_opts_from_env(struct qb_hub_opts *opts, struct qb_err *err);
void qb_hub_opts_clear(struct qb_hub_opts *opts);

enum qb_status qb_hub_open(const struct qb_hub_opts *opts, struct qb_hub **out, struct qb_err *err);
/* Shorthand: opts from the environment, then qb_hub_open. */
enum qb_status qb_hub_open_env(struct qb_hub **out, struct qb_err *err);
void qb_hub_free(struct qb_hub *hub);

const char *qb_hub_cache_dir(const struct qb_hub *hub); /* HF_HUB_CACHE in use */
const char *qb_hub_endpoint(const struct qb_hub *hub);
int qb_hub_is_offline(const struct qb_hub *hub);
int qb_hub_has_token(const struct qb_hub *hub); /* never exposes the token itself */

/* ---- search ---------------------------------------------------------------- */

enum qb_hub_sort {
    QB_HUB_SORT_DOWNLOADS = 0,
    QB_HUB_SORT_LIKES,
    QB_HUB_SORT_TRENDING,
    QB_HUB_SORT_UPDATED
};

/* "downloads" | "likes" | "trending" | "updated" -> sort; returns -1 when unknown. */
int qb_hub_sort_parse(const char *s, enum qb_hub_sort *out);

struct qb_hub_search_query {
    const char *text;   /* substring of the repo id; may be NULL */
    const char *author; /* may be NULL */
    enum qb_hub_sort sort;
    int limit; /* 1..1000 models in total */
};

/* One model of a search page; numbers are -1 and strings NULL when the Hub gave nothing. */
struct qb_hub_model_summary {
    char *id;
    int64_t parameters; /* safetensors.total */
    int64_t downloads;  /* last 30 days */
    int64_t likes;
    char *gated;         /* "false", "auto" or "manual" */
    char *last_modified; /* ISO-8601 */
    char *library;
    char *pipeline_tag;
};

struct qb_hub_search_result {
    struct qb_hub_model_summary *items;
    size_t n, cap;
};

/* Text-generation models, following Link rel="next" until query->limit
 * models arrived or the pages ran out. */
enum qb_status qb_hub_search(struct qb_hub *hub, const struct qb_hub_search_query *query,
                             struct qb_hub_search_result *out, struct qb_err *err);
void qb_hub_search_result_clear(struct qb_hub_search_result *r);

/* ---- model info ------------------------------------------------------------- */

struct qb_hub_file {
    char *path;       /* untrusted name from the Hub, as given */
    int64_t size;     /* bytes; -1 when unknown */
    char *blob_id;    /* git blob sha1 (40 hex) or NULL */
    char *lfs_sha256; /* 64 hex for LFS files, else NULL */
};

struct qb_hub_file_list {
    struct qb_hub_file *items;
    size_t n, cap;
};

/* From config.json (or its text_config); -1 / NULL when absent. */
struct qb_hub_config_summary {
    char *architecture; /* architectures[0] */
    char *model_type;
    int64_t layers, hidden, heads, kv_heads, vocab, context;
    int64_t experts;    /* num_local_experts / num_experts / n_routed_experts */
    char *quant_method; /* quantization_config.quant_method */
};

struct qb_hub_model_info {
    char *id;
    char *sha;      /* commit of the revision */
    char *revision; /* as asked ("main" by default) */
    char *gated;    /* "false", "auto", "manual"; NULL when unknown */
    char *license;  /* cardData.license, else a "license:" tag */
    char *library;
    char *pipeline_tag;
    char *last_modified;
    int64_t downloads, likes;
    int64_t parameters; /* safetensors.total */
    char *param_dtype;  /* the safetensors dtype holding most parameters ("BF16") */
    struct qb_hub_file_list files;
    int64_t total_size; /* sum of known file sizes */
    int have_config;    /* config.json was read (else only the API's config block) */
    struct qb_hub_config_summary config;
    int supported; /* our engine can run it */
    char *verdict; /* why (not) supported: "llama (dense) is supported", "MoE (...)" */
};

/* GET /api/models/REPO/revision/REV?blobs=true then config.json (skipped with
 * a note when gated without access). rev may be NULL for "main". Offline
 * (HF_HUB_OFFLINE), answers from the cached snapshot: files, sizes, config and
 * verdict only (Hub-side fields stay NULL / -1). */
enum qb_status qb_hub_model_info(struct qb_hub *hub, const char *repo, const char *rev,
                                 struct qb_hub_model_info *out, struct qb_err *err);
void qb_hub_model_info_clear(struct qb_hub_model_info *info);

/* Engine verdict for a config: returns 1 when supported; *reason is malloced. */
int qb_hub_engine_verdict(const struct qb_hub_config_summary *cfg, char **reason);

/* ---- pull ------------------------------------------------------------------- */

struct qb_hub_pull_opts {
    const char *const *include; /* globs (fnmatch, '*' crosses '/'); NULL/0 = every file */
    size_t n_include;
    const char *const *exclude; /* added to the default excludes */
    size_t n_exclude;
    int no_default_excludes;      /* 1 = do not skip *.bin, *.pt, ... */
    struct qb_progress *progress; /* may be NULL; kind QB_JOB_PULL, unit "bytes" */
};

/* The default excludes: other weight formats and original/ checkpoints. */
extern const char *const qb_hub_default_excludes[];
extern const size_t qb_hub_n_default_excludes;

/* 1 when a repo file is selected by opts (include/exclude/defaults). */
int qb_hub_file_selected(const struct qb_hub_pull_opts *opts, const char *path);

/* Download REPO@REV into the cache; *snapshot_dir (malloced, may be NULL) gets
 * the snapshot folder. On failure nothing is linked into a snapshot and no ref
 * is written; verified blobs and resumable .incomplete parts may stay. Offline,
 * returns the cached snapshot (no check of its completeness) or QB_ERR_NETWORK. */
enum qb_status qb_hub_pull(struct qb_hub *hub, const char *repo, const char *rev,
                           const struct qb_hub_pull_opts *opts, char **snapshot_dir,
                           struct qb_err *err);

/* ---- cache -------------------------------------------------------------------- */

/* Split "ORG/NAME[@REV]" (rev NULL when absent); both malloced. QB_ERR_USAGE when malformed. */
enum qb_status qb_hub_parse_repo_arg(const char *arg, char **repo, char **rev, struct qb_err *err);

/* 1 when a Hub file name is safe to place under a snapshot folder: relative,
 * no empty, "." or ".." components, no backslash or control characters. */
int qb_hub_path_is_safe(const char *path);

struct qb_hub_cached_model {
    char *id;       /* ORG/NAME */
    char *revision; /* ref name ("main") or the commit when no ref points at it */
    char *commit;
    char *path;   /* snapshot folder */
    int64_t size; /* bytes of the repo's blobs */
    int n_files;  /* files in the snapshot */
    int supported;
    char *verdict;
};

struct qb_hub_cached_list {
    struct qb_hub_cached_model *items;
    size_t n, cap;
};

/* Every snapshot of every models--* folder in the cache (sorted by id). */
enum qb_status qb_hub_list_cached(const struct qb_hub *hub, struct qb_hub_cached_list *out,
                                  struct qb_err *err);
void qb_hub_cached_list_clear(struct qb_hub_cached_list *l);

/* A local directory (returned as given) or ORG/NAME[@REV] found in the cache
 * (offline); with allow_pull and when not cached, pulls it first (default
 * selection, progress may be NULL). *dir is malloced. */
enum qb_status qb_hub_resolve_model(struct qb_hub *hub, const char *arg, int allow_pull,
                                    struct qb_progress *progress, char **dir, struct qb_err *err);

/* ---- data sets ------------------------------------------------------------------ */

struct qb_hub_text_rows {
    char **rows;
    size_t n, cap;
};
void qb_hub_text_rows_clear(struct qb_hub_text_rows *r);

/*
 * Evaluation/calibration text, fetched through the datasets-server rows API
 * (100 rows a request) and cached as a JSON array of rows under
 * opts.data_cache, reused offline:
 *   "wikitext2": Salesforce/wikitext, wikitext-2-raw-v1, split "test" or "train",
 *                every row, joined with "\n\n" (GPTQ's datautils:
 *                "\n\n".join(data['text']); empty rows included, as there).
 *   "c4":        allenai/c4, en, "validation", the first 1100 rows joined with
 *                " " (GPTQ's c4 eval slice: ' '.join(valdata[:1100]['text'])).
 *   "pileval":   mit-han-lab/pile-val-backup, default, "validation", the first
 *                1000 rows joined with "\n\n" (AWQ draws its calibration
 *                samples from this set; we take a fixed prefix instead of a
 *                seeded shuffle so the slice is reproducible offline).
 * split NULL means the set's default ("test" for wikitext2, "validation" else).
 * *text is malloced and NUL-terminated; *len excludes the NUL. rows may be
 * NULL; when given it receives the raw rows (for document-level scoring).
 */
enum qb_status qb_hub_dataset_text(struct qb_hub *hub, const char *name, const char *split,
                                   char **text, size_t *len, struct qb_hub_text_rows *rows,
                                   struct qb_err *err);
/* 1 when name is one of the sets above. */
int qb_hub_dataset_known(const char *name);

/* ---- parsers (pure; exposed for tests and the fuzzer) ------------------------- */

/* Append one /api/models page (a JSON array) to out. */
enum qb_status qb_hub_parse_search_page(const char *json, size_t len,
                                        struct qb_hub_search_result *out, struct qb_err *err);
/* Fill the API fields of info (not config/verdict) from /api/models/REPO[/revision/REV]. */
enum qb_status qb_hub_parse_model_info(const char *json, size_t len, struct qb_hub_model_info *info,
                                       struct qb_err *err);
/* Append one /tree page (a JSON array) to out; directories are skipped. */
enum qb_status qb_hub_parse_tree_page(const char *json, size_t len, struct qb_hub_file_list *out,
                                      struct qb_err *err);
/* Append the `column` strings of one /rows answer; *total gets num_rows_total (-1 if absent). */
enum qb_status qb_hub_parse_rows_page(const char *json, size_t len, const char *column,
                                      struct qb_hub_text_rows *out, int64_t *total,
                                      struct qb_err *err);
/* config.json -> summary (clears *out first). */
enum qb_status qb_hub_parse_config(const char *json, size_t len, struct qb_hub_config_summary *out,
                                   struct qb_err *err);
void qb_hub_config_summary_clear(struct qb_hub_config_summary *c);
/* The rel="next" URL of a Link header (malloced), or NULL. Only http(s) URLs. */
char *qb_hub_link_next(const char *link_header);

/* ---- sha256 ------------------------------------------------------------------- */
struct qb_sha256 {
    uint32_t h[8];
    uint64_t bytes;
    unsigned char buf[64];
    size_t fill;
};
void qb_sha256_init(struct qb_sha256 *s);
void qb_sha256_update(struct qb_sha256 *s, const void *data, size_t n);
void qb_sha256_final_hex(struct qb_sha256 *s, char hex[65]);

#endif /* QB_HUB_H */
