/*
 * hub_internal.h - what the hub/ files share and nothing outside hub/ sees:
 * the client struct, the HTTP layer (hub_http.c), cache paths (hub_cache.c).
 */
#ifndef QB_HUB_INTERNAL_H
#define QB_HUB_INTERNAL_H

#include <curl/curl.h>

#include "hub.h"

struct qb_hub {
    struct qb_hub_opts o; /* owned copies */
};

/* ---- growable vectors and small helpers (hub_json.c) -------------------------- */
void *qb_hub_vec_push(void **items, size_t *n, size_t *cap, size_t elem);
void qb_hub_file_list_clear(struct qb_hub_file_list *l);
int qb_hub_is_hex(const char *s, size_t n);
enum qb_status qb_hub_text_rows_push(struct qb_hub_text_rows *r, const char *s, struct qb_err *err);

/* ---- HTTP (hub_http.c) ------------------------------------------------------------ */

/* A body buffer with a hard maximum; over it the transfer is aborted. */
struct qb_hub_buf {
    char *data; /* NUL-terminated when len > 0 */
    size_t len, cap, max;
    int too_big;
};
void qb_hub_buf_clear(struct qb_hub_buf *b);
size_t qb_hub_buf_write(struct qb_hub_buf *b, const void *p, size_t n); /* returns n or 0 */

/* Headers of one response that the Hub client cares about. */
struct qb_hub_resp {
    long status;
    char *redirect_url;     /* absolute target of a 3xx, resolved by curl */
    char *location;         /* Location as sent (relative or absolute) */
    char *link;             /* Link */
    char *error_code;       /* X-Error-Code */
    char *error_message;    /* X-Error-Message */
    char *repo_commit;      /* X-Repo-Commit */
    char *linked_etag;      /* X-Linked-Etag, quotes and W/ stripped */
    char *etag;             /* ETag, quotes and W/ stripped */
    int64_t linked_size;    /* X-Linked-Size, -1 if absent */
    int64_t content_length; /* -1 if absent */
    char *content_range;
    double retry_after; /* seconds; -1 if absent */
    struct qb_hub_buf body;
};
void qb_hub_resp_clear(struct qb_hub_resp *r);
size_t qb_hub_header_cb(char *line, size_t size, size_t n, void *resp);

/* What an error message should name. Any field may be NULL. */
struct qb_hub_ctx {
    const char *repo, *rev, *file;
};

/* Options common to every handle: protocols, no automatic redirects, timeouts,
 * user agent, and the Authorization header when url is on the endpoint's origin.
 * *headers receives the list to free with curl_slist_free_all after the transfer. */
enum qb_status qb_hub_curl_setup(const struct qb_hub *hub, CURL *h, const char *url,
                                 struct qb_hub_resp *resp, struct curl_slist **headers,
                                 struct qb_err *err);

/* 1 when a and b have the same scheme, host and port. */
int qb_hub_same_origin(const char *a, const char *b);

/* GET a JSON (or small text) document with retries, following redirects by
 * hand (Authorization only to the endpoint's origin). QB_OK only for 2xx;
 * max_body bounds the body. */
enum qb_status qb_hub_http_get(struct qb_hub *hub, const char *url, size_t max_body,
                               const struct qb_hub_ctx *ctx, struct qb_hub_resp *resp,
                               struct qb_err *err);
/* HEAD without following redirects: 2xx and 3xx are QB_OK (headers in resp). */
enum qb_status qb_hub_http_head(struct qb_hub *hub, const char *url, const struct qb_hub_ctx *ctx,
                                struct qb_hub_resp *resp, struct qb_err *err);

/* The error for a non-2xx answer (gated, not found, rate limited...). */
enum qb_status qb_hub_http_error(const struct qb_hub *hub, const struct qb_hub_resp *resp,
                                 const struct qb_hub_ctx *ctx, const char *url, struct qb_err *err);
/* 1 for answers worth retrying (408, 429, 500, 502, 503, 504). */
int qb_hub_status_transient(long status);
int qb_hub_curl_transient(CURLcode c);
/* Delay before retry number `attempt` (0-based), honouring Retry-After. -1: over the cap. */
double qb_hub_retry_delay(const struct qb_hub *hub, int attempt, double retry_after);
void qb_hub_sleep(double seconds);

/* URL-escape each '/'-separated segment of s (malloced). */
char *qb_hub_escape_path(const char *s);
char *qb_hub_escape(const char *s); /* every reserved char, '/' included */

/* ---- cache (hub_cache.c) ------------------------------------------------------------ */

/* $HF_HUB_CACHE/models--ORG--NAME (malloced). */
char *qb_hub_repo_dir(const struct qb_hub *hub, const char *repo);
/* mkdir -p; QB_ERR_IO with the folder named. */
enum qb_status qb_hub_mkdirs(const char *path, struct qb_err *err);
/* Write `data` to path through path.tmp + rename. */
enum qb_status qb_hub_write_atomic(const char *path, const void *data, size_t len,
                                   struct qb_err *err);
/* Read a whole (small) file; NULL when missing or over max bytes. */
char *qb_hub_read_file(const char *path, size_t max, size_t *len);
/* Place a relative symlink snapshots/COMMIT/FILE -> ../../blobs/ETAG (atomic). */
enum qb_status qb_hub_link_snapshot(const char *repo_dir, const char *commit, const char *file,
                                    const char *etag, struct qb_err *err);
/* The cached snapshot folder of repo@rev (rev NULL = main) holding a config.json,
 * malloced; NULL when not cached. */
char *qb_hub_cached_snapshot(const struct qb_hub *hub, const char *repo, const char *rev);
/* Model info from the cache only (offline): files, sizes and config of the snapshot. */
enum qb_status qb_hub_model_info_cached(const struct qb_hub *hub, const char *repo, const char *rev,
                                        struct qb_hub_model_info *out, struct qb_err *err);
/* Repo id check: ORG/NAME with [A-Za-z0-9._-], no "..", no leading '-' or '.'. */
int qb_hub_repo_id_valid(const char *repo);
/* Revision check: a branch, tag or commit that is also a safe refs/ path. */
int qb_hub_rev_valid(const char *rev);

#endif /* QB_HUB_INTERNAL_H */
