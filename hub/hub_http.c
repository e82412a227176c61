/*
 * hub_http.c - libcurl plumbing for the Hub client: handle setup, header
 * capture, manual redirects, bounded retries and the mapping of the Hub's
 * error answers (X-Error-Code) to one clear line.
 *
 * Redirects are never followed by curl itself (CURLOPT_FOLLOWLOCATION off,
 * CURLOPT_UNRESTRICTED_AUTH off): we read the target, and attach the
 * Authorization header only when the target has the endpoint's scheme, host
 * and port, so a token never reaches a CDN or any other host. Only http and
 * https are allowed, for the first request and every redirect.
 *
 * Every loop here is bounded: at most max_retries + 1 attempts per request,
 * at most QB_HUB_MAX_REDIRECTS hops, each attempt limited by api_timeout_s,
 * and a Retry-After is honoured only up to retry_after_cap_s.
 */
#include <ctype.h>
#include <errno.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "hub_internal.h"

#define QB_HUB_MAX_REDIRECTS 5

void qb_hub_buf_clear(struct qb_hub_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
    b->too_big = 0;
}

size_t qb_hub_buf_write(struct qb_hub_buf *b, const void *p, size_t n)
{
    if (n > b->max || b->len > b->max - n) {
        b->too_big = 1;
        return 0;
    }
    if (b->len + n + 1 > b->cap) {
        size_t ncap = b->cap ? b->cap : 4096;
        while (ncap < b->len + n + 1)
            ncap *= 2;
        char *d = realloc(b->data, ncap);
        if (!d)
            return 0;
        b->data = d;
        b->cap = ncap;
    }
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return n;
}

static size_t body_cb(char *p, size_t size, size_t n, void *ud)
{
    struct qb_hub_resp *r = ud;
    return qb_hub_buf_write(&r->body, p, size * n);
}

void qb_hub_resp_clear(struct qb_hub_resp *r)
{
    free(r->redirect_url);
    free(r->location);
    free(r->link);
    free(r->error_code);
    free(r->error_message);
    free(r->repo_commit);
    free(r->linked_etag);
    free(r->etag);
    free(r->content_range);
    size_t max = r->body.max;
    qb_hub_buf_clear(&r->body);
    memset(r, 0, sizeof *r);
    r->body.max = max;
    r->linked_size = r->content_length = -1;
    r->retry_after = -1;
}

/* Header value copy with surrounding blanks trimmed; for etags also W/ and quotes. */
static char *header_value(const char *v, size_t n, int etag)
{
    while (n > 0 && (*v == ' ' || *v == '\t')) {
        v++;
        n--;
    }
    while (n > 0 && isspace((unsigned char)v[n - 1]))
        n--;
    if (etag) {
        if (n >= 2 && v[0] == 'W' && v[1] == '/') {
            v += 2;
            n -= 2;
        }
        if (n >= 2 && v[0] == '"' && v[n - 1] == '"') {
            v++;
            n -= 2;
        }
    }
    char *s = malloc(n + 1);
    if (s) {
        memcpy(s, v, n);
        s[n] = '\0';
    }
    return s;
}

static int64_t parse_count(const char *s)
{
    char *end = NULL;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (errno || end == s || v < 0)
        return -1;
    return v;
}

static void set_str(char **dst, char *v)
{
    free(*dst);
    *dst = v;
}

size_t qb_hub_header_cb(char *line, size_t size, size_t n, void *ud)
{
    struct qb_hub_resp *r = ud;
    size_t len = size * n;
    if (len >= 5 && strncmp(line, "HTTP/", 5) == 0) {
        /* a new response (after a 100 Continue): forget the previous headers */
        struct qb_hub_buf keep = r->body;
        r->body.data = NULL;
        qb_hub_resp_clear(r);
        r->body = keep;
        return len;
    }
    const char *colon = memchr(line, ':', len);
    if (!colon)
        return len;
    size_t klen = (size_t)(colon - line);
    const char *v = colon + 1;
    size_t vlen = len - klen - 1;
#define KEY(k) (klen == strlen(k) && strncasecmp(line, k, klen) == 0)
    if (KEY("link"))
        set_str(&r->link, header_value(v, vlen, 0));
    else if (KEY("location"))
        set_str(&r->location, header_value(v, vlen, 0));
    else if (KEY("x-error-code"))
        set_str(&r->error_code, header_value(v, vlen, 0));
    else if (KEY("x-error-message"))
        set_str(&r->error_message, header_value(v, vlen, 0));
    else if (KEY("x-repo-commit"))
        set_str(&r->repo_commit, header_value(v, vlen, 0));
    else if (KEY("x-linked-etag"))
        set_str(&r->linked_etag, header_value(v, vlen, 1));
    else if (KEY("etag"))
        set_str(&r->etag, header_value(v, vlen, 1));
    else if (KEY("content-range"))
        set_str(&r->content_range, header_value(v, vlen, 0));
    else if (KEY("x-linked-size") || KEY("content-length") || KEY("retry-after")) {
        char *s = header_value(v, vlen, 0);
        int64_t c = s ? parse_count(s) : -1;
        if (KEY("x-linked-size"))
            r->linked_size = c;
        else if (KEY("content-length"))
            r->content_length = c;
        else
            r->retry_after = (double)c; /* an HTTP-date counts as absent (-1) */
        free(s);
    }
#undef KEY
    return len;
}

/* ---- origins and escaping ---------------------------------------------------------- */

static char *url_part(CURLU *u, CURLUPart part)
{
    char *v = NULL;
    if (curl_url_get(u, part, &v, part == CURLUPART_PORT ? CURLU_DEFAULT_PORT : 0) != CURLUE_OK)
        return NULL;
    return v;
}

int qb_hub_same_origin(const char *a, const char *b)
{
    int same = 0;
    CURLU *ua = curl_url(), *ub = curl_url();
    char *p[6] = {0};
    if (!ua || !ub || curl_url_set(ua, CURLUPART_URL, a, 0) ||
        curl_url_set(ub, CURLUPART_URL, b, 0))
        goto out;
    p[0] = url_part(ua, CURLUPART_SCHEME);
    p[1] = url_part(ub, CURLUPART_SCHEME);
    p[2] = url_part(ua, CURLUPART_HOST);
    p[3] = url_part(ub, CURLUPART_HOST);
    p[4] = url_part(ua, CURLUPART_PORT);
    p[5] = url_part(ub, CURLUPART_PORT);
    same = p[0] && p[1] && p[2] && p[3] && p[4] && p[5] && strcasecmp(p[0], p[1]) == 0 &&
           strcasecmp(p[2], p[3]) == 0 && strcmp(p[4], p[5]) == 0;
out:
    for (int i = 0; i < 6; i++)
        curl_free(p[i]);
    curl_url_cleanup(ua);
    curl_url_cleanup(ub);
    return same;
}

static char *escape_impl(const char *s, int keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t n = strlen(s);
    size_t cap;
    if (!qb_mul_size(n, 3, &cap))
        return NULL;
    char *out = malloc(cap + 1), *o = out;
    if (!out)
        return NULL;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (isalnum(*p) || *p == '-' || *p == '_' || *p == '.' || *p == '~' ||
            (keep_slash && *p == '/')) {
            *o++ = (char)*p;
        } else {
            *o++ = '%';
            *o++ = hex[*p >> 4];
            *o++ = hex[*p & 15];
        }
    }
    *o = '\0';
    return out;
}

char *qb_hub_escape_path(const char *s)
{
    return escape_impl(s, 1);
}
char *qb_hub_escape(const char *s)
{
    return escape_impl(s, 0);
}

/* ---- handle setup -------------------------------------------------------------------- */

enum qb_status qb_hub_curl_setup(const struct qb_hub *hub, CURL *h, const char *url,
                                 struct qb_hub_resp *resp, struct curl_slist **headers,
                                 struct qb_err *err)
{
    *headers = NULL;
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(h, CURLOPT_UNRESTRICTED_AUTH, 0L);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, hub->o.connect_timeout_s);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "quantbench/" QB_VERSION);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, qb_hub_header_cb);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, resp);
    if (hub->o.token && hub->o.token[0] && qb_hub_same_origin(url, hub->o.endpoint)) {
        char *line = qb_asprintf("Authorization: Bearer %s", hub->o.token);
        if (!line)
            return qb_err_set(err, QB_ERR_NOMEM, "out of memory building a request");
        *headers = curl_slist_append(NULL, line);
        explicit_bzero(line, strlen(line)); /* curl keeps its own copy */
        free(line);
        if (!*headers)
            return qb_err_set(err, QB_ERR_NOMEM, "out of memory building a request");
    }
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, *headers);
    return QB_OK;
}

/* ---- errors ------------------------------------------------------------------------------- */

int qb_hub_status_transient(long s)
{
    return s == 408 || s == 429 || s == 500 || s == 502 || s == 503 || s == 504;
}

int qb_hub_curl_transient(CURLcode c)
{
    switch (c) {
    case CURLE_COULDNT_CONNECT:
    case CURLE_OPERATION_TIMEDOUT:
    case CURLE_PARTIAL_FILE:
    case CURLE_RECV_ERROR:
    case CURLE_SEND_ERROR:
    case CURLE_GOT_NOTHING:
    case CURLE_COULDNT_RESOLVE_HOST:
    case CURLE_HTTP2:
    case CURLE_HTTP2_STREAM:
    case CURLE_SSL_CONNECT_ERROR:
        return 1;
    default:
        return 0;
    }
}

double qb_hub_retry_delay(const struct qb_hub *hub, int attempt, double retry_after)
{
    if (retry_after >= 0)
        return retry_after > hub->o.retry_after_cap_s ? -1 : retry_after;
    double d = hub->o.backoff_s;
    for (int i = 0; i < attempt && d < 8; i++)
        d *= 2;
    return QB_MIN(d, 8.0);
}

void qb_hub_sleep(double s)
{
    if (s <= 0)
        return;
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
    }
}

enum qb_status qb_hub_http_error(const struct qb_hub *hub, const struct qb_hub_resp *r,
                                 const struct qb_hub_ctx *ctx, const char *url, struct qb_err *err)
{
    const char *code = r->error_code ? r->error_code : "";
    const char *repo = ctx && ctx->repo ? ctx->repo : "?";
    const char *rev = ctx && ctx->rev ? ctx->rev : "main";
    const char *base = strstr(hub->o.endpoint, "://") ? hub->o.endpoint : "https://huggingface.co";
    if (strcmp(code, "GatedRepo") == 0) {
        if (qb_hub_has_token(hub))
            return qb_err_set(err, QB_ERR_HTTP,
                              "repo %s is gated and your token has no access: accept its "
                              "licence at %s/%s with the account of that token",
                              repo, base, repo);
        return qb_err_set(err, QB_ERR_HTTP,
                          "repo %s is gated: accept its licence at %s/%s and provide a token "
                          "(HF_TOKEN or huggingface-cli login)",
                          repo, base, repo);
    }
    if (strcmp(code, "RepoNotFound") == 0)
        return qb_err_set(err, QB_ERR_HTTP,
                          "repo %s not found on %s (check the name; a private repo needs a token: "
                          "HF_TOKEN or huggingface-cli login)",
                          repo, base);
    if (strcmp(code, "RevisionNotFound") == 0)
        return qb_err_set(err, QB_ERR_HTTP, "revision '%s' not found in repo %s", rev, repo);
    if (strcmp(code, "EntryNotFound") == 0)
        return qb_err_set(err, QB_ERR_HTTP, "file '%s' not found in repo %s at revision %s",
                          ctx && ctx->file ? ctx->file : "?", repo, rev);
    if (r->status == 401)
        return qb_err_set(err, QB_ERR_HTTP,
                          "the Hub refused the request for %s (401): %s; check HF_TOKEN or the "
                          "token file",
                          repo, r->error_message ? r->error_message : "authentication required");
    if (r->status == 429) {
        if (r->retry_after >= 0)
            return qb_err_set(err, QB_ERR_HTTP,
                              "rate limited by the Hub (HTTP 429) for %s: it asks to retry in "
                              "%.0f s; try again later",
                              repo, r->retry_after);
        return qb_err_set(err, QB_ERR_HTTP,
                          "rate limited by the Hub (HTTP 429) for %s: try again later", repo);
    }
    /* the path only: a query may carry a signed CDN URL's credentials */
    const char *path = strstr(url, "://");
    path = path ? strchr(path + 3, '/') : NULL;
    size_t plen = path ? strcspn(path, "?") : 0;
    return qb_err_set(err, r->status >= 400 && r->status < 500 ? QB_ERR_HTTP : QB_ERR_NETWORK,
                      "HTTP %ld from the Hub for %.*s%s%s", r->status, (int)QB_MIN(plen, 200),
                      path ? path : "", r->error_message ? ": " : "",
                      r->error_message ? r->error_message : "");
}

/* ---- one request with retries and redirects --------------------------------------------- */

static enum qb_status perform_once(struct qb_hub *hub, const char *url, int head,
                                   struct qb_hub_resp *resp, CURLcode *cc, char *curl_msg,
                                   struct qb_err *err)
{
    enum qb_status st = QB_OK;
    struct curl_slist *headers = NULL;
    CURL *h = curl_easy_init();
    if (!h)
        return qb_err_set(err, QB_ERR_NOMEM, "cannot create a libcurl handle");
    qb_hub_resp_clear(resp);
    st = qb_hub_curl_setup(hub, h, url, resp, &headers, err);
    if (st)
        goto out;
    curl_easy_setopt(h, CURLOPT_TIMEOUT, hub->o.api_timeout_s);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, curl_msg);
    curl_msg[0] = '\0';
    if (head) {
        curl_easy_setopt(h, CURLOPT_NOBODY, 1L);
    } else {
        curl_easy_setopt(h, CURLOPT_ACCEPT_ENCODING, "");
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, body_cb);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, resp);
    }
    *cc = curl_easy_perform(h);
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &resp->status);
    char *target = NULL;
    if (*cc == CURLE_OK && resp->status >= 300 && resp->status < 400 &&
        curl_easy_getinfo(h, CURLINFO_REDIRECT_URL, &target) == CURLE_OK && target)
        resp->redirect_url = qb_strdup(target);
out:
    curl_slist_free_all(headers);
    curl_easy_cleanup(h);
    return st;
}

static enum qb_status request(struct qb_hub *hub, const char *url0, int head, size_t max_body,
                              const struct qb_hub_ctx *ctx, struct qb_hub_resp *resp,
                              struct qb_err *err)
{
    enum qb_status st = QB_OK;
    char curl_msg[CURL_ERROR_SIZE];
    char *url = qb_strdup(url0);
    int redirects = 0;
    if (!url)
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory");
    if (hub->o.offline) {
        st = qb_err_set(err, QB_ERR_NETWORK,
                        "offline mode (HF_HUB_OFFLINE=1): cannot reach the "
                        "Hub for %s",
                        ctx && ctx->repo ? ctx->repo : url);
        goto out;
    }
    resp->body.max = max_body;
    CURLcode cc = CURLE_OK;
    for (int attempt = 0;; attempt++) {
        st = perform_once(hub, url, head, resp, &cc, curl_msg, err);
        if (st)
            goto out;
        if (resp->body.too_big) {
            st = qb_err_set(err, QB_ERR_FORMAT, "the Hub's answer for %s is over %zu bytes",
                            ctx && ctx->repo ? ctx->repo : "a request", max_body);
            goto out;
        }
        int transient =
            cc != CURLE_OK ? qb_hub_curl_transient(cc) : qb_hub_status_transient(resp->status);
        /* GET follows every redirect; HEAD only relative ones (a renamed repo), like
         * huggingface_hub, so a 302 to the CDN keeps its X-Linked-* headers */
        int relative = resp->location && !strstr(resp->location, "://");
        if (cc == CURLE_OK && resp->status >= 300 && resp->status < 400 && (!head || relative)) {
            if (!resp->redirect_url || ++redirects > QB_HUB_MAX_REDIRECTS) {
                st = qb_err_set(err, QB_ERR_NETWORK,
                                "too many or malformed redirects from the "
                                "Hub for %s",
                                ctx && ctx->repo ? ctx->repo : "a request");
                goto out;
            }
            free(url);
            url = resp->redirect_url;
            resp->redirect_url = NULL;
            attempt--; /* a hop is not a retry */
            continue;
        }
        if (!transient)
            break;
        double delay =
            qb_hub_retry_delay(hub, attempt, resp->status == 429 ? resp->retry_after : -1);
        if (attempt >= hub->o.max_retries || delay < 0)
            break;
        qb_hub_sleep(delay);
    }
    if (cc != CURLE_OK || resp->status >= 400 || resp->status < 200) {
        if (cc != CURLE_OK || resp->status == 0) {
            st = qb_err_set(err, QB_ERR_NETWORK, "cannot reach the Hub at %s for %s: %s",
                            hub->o.endpoint, ctx && ctx->repo ? ctx->repo : "a request",
                            curl_msg[0] ? curl_msg : "transfer failed");
            goto out;
        }
        st = qb_hub_http_error(hub, resp, ctx, url, err);
        goto out;
    }
out:
    free(url);
    return st;
}

enum qb_status qb_hub_http_get(struct qb_hub *hub, const char *url, size_t max_body,
                               const struct qb_hub_ctx *ctx, struct qb_hub_resp *resp,
                               struct qb_err *err)
{
    enum qb_status st = request(hub, url, 0, max_body, ctx, resp, err);
    if (st == QB_OK && resp->status >= 300) /* cannot happen: redirects are followed */
        st = qb_err_set(err, QB_ERR_NETWORK, "unexpected redirect from the Hub");
    return st;
}

enum qb_status qb_hub_http_head(struct qb_hub *hub, const char *url, const struct qb_hub_ctx *ctx,
                                struct qb_hub_resp *resp, struct qb_err *err)
{
    return request(hub, url, 1, 0, ctx, resp, err);
}
