/*
 * hub_pull.c - download a repo revision into the huggingface_hub cache.
 *
 * Steps (nothing is created on disk before step 4, so a gated repo, a bad
 * revision or an unsafe file name leaves the cache untouched):
 *   1. model info at REV -> the commit; 2. tree listing at the commit (Link
 *   pagination) -> files, filtered by include/exclude globs and checked with
 *   qb_hub_path_is_safe(); 3. a HEAD per file on /resolve/COMMIT/FILE (not
 *   following redirects) -> etag (X-Linked-Etag, else ETag), size
 *   (X-Linked-Size, else Content-Length of a 200), download URL (Location of
 *   a 302, else the resolve URL) and X-Repo-Commit; free space (statvfs)
 *   checked against what is missing; 4. parallel GETs (curl multi,
 *   opts.parallel at a time) into blobs/<etag>.incomplete, resumed with
 *   Range from its current size (a 200 answer to a Range restarts from zero),
 *   sha256 streamed for LFS blobs and compared with the etag, then renamed to
 *   blobs/<etag>; 5. only when every file is in blobs/: the snapshot symlinks
 *   and refs/<rev>.
 *
 * Each blob download holds flock() on .locks/models--ORG--NAME/<etag>.lock
 * (the lock file huggingface_hub's filelock uses), so two pulls of the same
 * blob do not write the same partial file. Retries: transient curl errors,
 * 408/429/5xx, bounded by max_retries per file (reset when bytes arrived,
 * with a hard cap of QB_PULL_MAX_ATTEMPTS), Retry-After honoured up to its
 * cap; a transfer moving under 1 byte/s for stall_timeout_s is aborted.
 * Redirects are followed by hand (Authorization only to the endpoint).
 */
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include "hub_internal.h"

#define QB_PULL_MAX_ATTEMPTS 50
#define QB_PULL_MAX_REDIRECTS 5
#define QB_PULL_ERRBODY_MAX 65536
#define QB_PULL_DISK_MARGIN (64ll << 20)

const char *const qb_hub_default_excludes[] = {"*.bin",     "*.pt",   "*.pth",  "*.h5",
                                               "*.msgpack", "*.onnx", "*.gguf", "original/*"};
const size_t qb_hub_n_default_excludes = QB_ARRAY_LEN(qb_hub_default_excludes);

static int glob_match(const char *pat, const char *path)
{
    size_t n = strlen(pat);
    if (n > 0 && pat[n - 1] == '/') /* "original/" = everything under that folder */
        return strncmp(path, pat, n) == 0;
    return fnmatch(pat, path, 0) == 0;
}

static int any_match(const char *const *pats, size_t n, const char *path)
{
    for (size_t i = 0; i < n; i++) {
        if (pats[i] && glob_match(pats[i], path))
            return 1;
    }
    return 0;
}

int qb_hub_file_selected(const struct qb_hub_pull_opts *o, const char *path)
{
    int included = o && o->n_include > 0 && any_match(o->include, o->n_include, path);
    if (o && o->n_include > 0 && !included)
        return 0;
    if (o && any_match(o->exclude, o->n_exclude, path))
        return 0;
    /* an explicit include wins over the default excludes */
    if (!included && !(o && o->no_default_excludes) &&
        any_match(qb_hub_default_excludes, qb_hub_n_default_excludes, path))
        return 0;
    return 1;
}

/* ---- per-file state ------------------------------------------------------------------ */

enum pf_state { PF_PENDING, PF_RUNNING, PF_DONE, PF_FAILED };
enum pf_write_fail { PF_WF_NONE, PF_WF_RANGE, PF_WF_TOO_BIG, PF_WF_DISK };

struct pfile {
    const char *path; /* in the tree list */
    char *etag;       /* blob name: 40 hex (git) or 64 hex (sha256, LFS) */
    int lfs;
    int64_t size; /* expected bytes, -1 unknown */
    char *url;    /* where to GET */
    char *blob, *part, *lock;
    int lock_fd;
    FILE *fp;
    struct qb_sha256 sha;
    int64_t have, attempt_start;
    int attempts, total_attempts, redirects, first_chunk;
    enum pf_write_fail write_fail;
    double not_before;
    enum pf_state state;
    CURL *h;
    struct curl_slist *hdrs;
    struct qb_hub_resp resp;
    char curl_msg[CURL_ERROR_SIZE];
};

struct pull {
    struct qb_hub *hub;
    const char *repo, *rev, *commit;
    char *repo_dir, *locks_dir;
    struct pfile *files;
    size_t n;
    int64_t total, done_before; /* bytes of all selected files; bytes already complete */
    struct qb_progress *progress;
    double last_publish;
};

static void pf_close(struct pfile *f)
{
    if (f->fp)
        fclose(f->fp);
    f->fp = NULL;
    if (f->lock_fd >= 0)
        close(f->lock_fd); /* releases the flock */
    f->lock_fd = -1;
}

static void pf_free(struct pfile *f)
{
    pf_close(f);
    free(f->etag);
    free(f->url);
    free(f->blob);
    free(f->part);
    free(f->lock);
    qb_hub_resp_clear(&f->resp);
    free(f->resp.body.data);
}

static int file_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

/* ---- listing and HEADs ----------------------------------------------------------------- */

static enum qb_status list_tree(struct qb_hub *hub, const char *repo, const char *commit,
                                struct qb_hub_file_list *files, struct qb_err *err)
{
    enum qb_status st = QB_OK;
    struct qb_hub_resp resp = {0};
    struct qb_hub_ctx ctx = {repo, commit, NULL};
    char *erepo = qb_hub_escape_path(repo);
    char *url = erepo ? qb_asprintf("%s/api/models/%s/tree/%s?recursive=true", hub->o.endpoint,
                                    erepo, commit)
                      : NULL;
    if (!url) {
        st = qb_err_set(err, QB_ERR_NOMEM, "out of memory");
        goto out;
    }
    for (int page = 0; url && page < hub->o.max_pages; page++) {
        st = qb_hub_http_get(hub, url, 64u << 20, &ctx, &resp, err);
        if (st)
            goto out;
        size_t before = files->n;
        st = qb_hub_parse_tree_page(resp.body.data, resp.body.len, files, err);
        if (st)
            goto out;
        free(url);
        url = qb_hub_link_next(resp.link);
        if (url && (!qb_hub_same_origin(url, hub->o.endpoint) || files->n == before)) {
            free(url);
            url = NULL;
        }
    }
out:
    free(url);
    free(erepo);
    qb_hub_resp_clear(&resp);
    return st;
}

static int is_lower_hex(const char *s)
{
    for (; *s; s++) {
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f')))
            return 0;
    }
    return 1;
}

static enum qb_status head_file(struct pull *pl, struct pfile *f, struct qb_err *err)
{
    enum qb_status st = QB_OK;
    struct qb_hub_resp resp = {0};
    struct qb_hub_ctx ctx = {pl->repo, pl->rev, f->path};
    char *erepo = qb_hub_escape_path(pl->repo), *epath = qb_hub_escape_path(f->path);
    char *url = erepo && epath ? qb_asprintf("%s/%s/resolve/%s/%s", pl->hub->o.endpoint, erepo,
                                             pl->commit, epath)
                               : NULL;
    if (!url) {
        st = qb_err_set(err, QB_ERR_NOMEM, "out of memory");
        goto out;
    }
    st = qb_hub_http_head(pl->hub, url, &ctx, &resp, err);
    if (st)
        goto out;
    if (!resp.repo_commit) {
        st = qb_err_set(err, QB_ERR_FORMAT,
                        "the answer for '%s' of %s has no X-Repo-Commit "
                        "header: is a proxy between us and the Hub?",
                        f->path, pl->repo);
        goto out;
    }
    const char *etag = resp.linked_etag ? resp.linked_etag : resp.etag;
    if (!etag || !(strlen(etag) == 40 || strlen(etag) == 64) || !is_lower_hex(etag)) {
        st = qb_err_set(err, QB_ERR_FORMAT,
                        "the answer for '%s' of %s has no usable ETag "
                        "(expected 40 or 64 lowercase hex digits)",
                        f->path, pl->repo);
        goto out;
    }
    f->etag = qb_strdup(etag);
    f->lfs = strlen(etag) == 64;
    int redirected = resp.status >= 300 && resp.status < 400;
    f->size = resp.linked_size >= 0 ? resp.linked_size : redirected ? -1 : resp.content_length;
    if (redirected && !resp.redirect_url) {
        st = qb_err_set(err, QB_ERR_FORMAT, "redirect without a Location for '%s' of %s", f->path,
                        pl->repo);
        goto out;
    }
    f->url = qb_strdup(redirected ? resp.redirect_url : url);
    f->blob = qb_asprintf("%s/blobs/%s", pl->repo_dir, f->etag);
    f->part = qb_asprintf("%s/blobs/%s.incomplete", pl->repo_dir, f->etag);
    f->lock = qb_asprintf("%s/%s.lock", pl->locks_dir, f->etag);
    if (!f->etag || !f->url || !f->blob || !f->part || !f->lock)
        st = qb_err_set(err, QB_ERR_NOMEM, "out of memory");
out:
    free(url);
    free(erepo);
    free(epath);
    qb_hub_resp_clear(&resp);
    return st;
}

static int64_t file_size(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 ? st.st_size : 0;
}

/* Free space at the cache (or its nearest existing parent). */
static enum qb_status check_disk(struct pull *pl, struct qb_err *err)
{
    int64_t need = 0;
    for (size_t i = 0; i < pl->n; i++) {
        struct pfile *f = &pl->files[i];
        if (f->state == PF_PENDING && f->size > 0)
            need += f->size - QB_MIN(f->size, file_size(f->part));
    }
    char *dir = qb_strdup(pl->hub->o.hub_cache);
    struct statvfs vfs;
    int ok = 0;
    while (dir && !(ok = statvfs(dir, &vfs) == 0)) {
        char *slash = strrchr(dir, '/');
        if (!slash || slash == dir)
            break;
        *slash = '\0';
    }
    enum qb_status st = QB_OK;
    if (ok) {
        int64_t avail = (int64_t)vfs.f_bavail * (int64_t)vfs.f_frsize;
        if (need + QB_PULL_DISK_MARGIN > avail)
            st = qb_err_set(err, QB_ERR_IO,
                            "not enough free disk space in %s for %s: need %.2f "
                            "GiB, %.2f GiB available",
                            dir, pl->repo, (double)need / (1 << 30), (double)avail / (1 << 30));
    }
    free(dir);
    return st;
}

/* ---- transfers ---------------------------------------------------------------------------- */

/* "bytes START-END/TOTAL" -> START, or -1 */
static int64_t range_start(const char *cr)
{
    if (!cr || strncmp(cr, "bytes ", 6) != 0)
        return -1;
    char *end = NULL;
    long long v = strtoll(cr + 6, &end, 10);
    return end && *end == '-' && v >= 0 ? v : -1;
}

static void pf_reset_part(struct pfile *f)
{
    if (ftruncate(fileno(f->fp), 0) != 0 || fseek(f->fp, 0, SEEK_SET) != 0)
        f->write_fail = PF_WF_DISK;
    qb_sha256_init(&f->sha);
    f->have = 0;
}

static size_t pf_write(char *p, size_t sz, size_t n, void *ud)
{
    struct pfile *f = ud;
    size_t len = sz * n;
    long status = 0;
    curl_easy_getinfo(f->h, CURLINFO_RESPONSE_CODE, &status);
    if (status != 200 && status != 206) /* an error page: keep a little for the message */
        return qb_hub_buf_write(&f->resp.body, p, len) == len || f->resp.body.too_big ? len : 0;
    if (f->first_chunk) {
        f->first_chunk = 0;
        if (status == 200 && f->have > 0) {
            pf_reset_part(f); /* the server ignored Range: start over */
        } else if (status == 206 && range_start(f->resp.content_range) != f->have) {
            f->write_fail = PF_WF_RANGE;
            return 0;
        }
    }
    if (f->size >= 0 && f->have + (int64_t)len > f->size) {
        f->write_fail = PF_WF_TOO_BIG;
        return 0;
    }
    if (fwrite(p, 1, len, f->fp) != len) {
        f->write_fail = PF_WF_DISK;
        return 0;
    }
    if (f->lfs)
        qb_sha256_update(&f->sha, p, len);
    f->have += (int64_t)len;
    return len;
}

/* Open (or create) the partial file under its lock and hash what it holds. */
static enum qb_status pf_open(struct pull *pl, struct pfile *f, struct qb_err *err)
{
    f->lock_fd = open(f->lock, O_RDWR | O_CREAT | O_CLOEXEC, 0666);
    if (f->lock_fd < 0)
        return qb_err_set(err, QB_ERR_IO, "cannot create lock '%s': %s", f->lock, strerror(errno));
    if (flock(f->lock_fd, LOCK_EX | LOCK_NB) != 0)
        return qb_err_set(err, QB_ERR_IO,
                          "another process is downloading '%s' of %s (lock %s): "
                          "try again when it is done",
                          f->path, pl->repo, f->lock);
    f->fp = fopen(f->part, "r+b");
    if (!f->fp)
        f->fp = fopen(f->part, "w+b");
    if (!f->fp)
        return qb_err_set(err, QB_ERR_IO, "cannot write '%s': %s", f->part, strerror(errno));
    qb_sha256_init(&f->sha);
    f->have = 0;
    unsigned char buf[1 << 16];
    size_t got;
    while ((got = fread(buf, 1, sizeof buf, f->fp)) > 0) {
        if (f->lfs)
            qb_sha256_update(&f->sha, buf, got);
        f->have += (int64_t)got;
    }
    if (f->size >= 0 && f->have > f->size)
        pf_reset_part(f);
    if (fseek(f->fp, 0, SEEK_END) != 0)
        return qb_err_set(err, QB_ERR_IO, "cannot seek in '%s'", f->part);
    return QB_OK;
}

static enum qb_status pf_start(struct pull *pl, CURLM *m, struct pfile *f, struct qb_err *err)
{
    enum qb_status st = QB_OK;
    char range[48];
    if (!f->fp) {
        st = pf_open(pl, f, err);
        if (st)
            return st;
    }
    f->h = curl_easy_init();
    if (!f->h)
        return qb_err_set(err, QB_ERR_NOMEM, "cannot create a libcurl handle");
    qb_hub_resp_clear(&f->resp);
    f->resp.body.max = QB_PULL_ERRBODY_MAX;
    st = qb_hub_curl_setup(pl->hub, f->h, f->url, &f->resp, &f->hdrs, err);
    if (st)
        return st;
    curl_easy_setopt(f->h, CURLOPT_WRITEFUNCTION, pf_write);
    curl_easy_setopt(f->h, CURLOPT_WRITEDATA, f);
    curl_easy_setopt(f->h, CURLOPT_PRIVATE, f);
    curl_easy_setopt(f->h, CURLOPT_ERRORBUFFER, f->curl_msg);
    curl_easy_setopt(f->h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(f->h, CURLOPT_LOW_SPEED_TIME, pl->hub->o.stall_timeout_s);
    if (f->have > 0) {
        snprintf(range, sizeof range, "%lld-", (long long)f->have);
        curl_easy_setopt(f->h, CURLOPT_RANGE, range);
    }
    f->curl_msg[0] = '\0';
    f->first_chunk = 1;
    f->write_fail = PF_WF_NONE;
    f->attempt_start = f->have;
    f->total_attempts++;
    if (curl_multi_add_handle(m, f->h) != CURLM_OK)
        return qb_err_set(err, QB_ERR_INTERNAL, "cannot start the download of '%s'", f->path);
    f->state = PF_RUNNING;
    return QB_OK;
}

static void pf_detach(CURLM *m, struct pfile *f)
{
    if (f->h) {
        curl_multi_remove_handle(m, f->h);
        curl_easy_cleanup(f->h);
    }
    f->h = NULL;
    curl_slist_free_all(f->hdrs);
    f->hdrs = NULL;
}

/* Size and hash verified: move the part into blobs/. */
static enum qb_status pf_finalize(struct pull *pl, struct pfile *f, struct qb_err *err)
{
    if (fflush(f->fp) != 0)
        return qb_err_set(err, QB_ERR_IO, "cannot write '%s': %s", f->part, strerror(errno));
    if (f->size >= 0 && f->have != f->size)
        return qb_err_set(err, QB_ERR_NETWORK, "'%s' of %s: got %lld bytes, expected %lld", f->path,
                          pl->repo, (long long)f->have, (long long)f->size);
    if (f->lfs) {
        char hex[65];
        qb_sha256_final_hex(&f->sha, hex);
        if (strcmp(hex, f->etag) != 0) {
            pf_close(f);
            unlink(f->part);
            return qb_err_set(err, QB_ERR_FORMAT,
                              "sha256 mismatch for '%s' of %s: expected %s, "
                              "got %s; the download was deleted, pull again",
                              f->path, pl->repo, f->etag, hex);
        }
    }
    fclose(f->fp); /* the lock stays held until the blob is in place */
    f->fp = NULL;
    int moved = rename(f->part, f->blob) == 0;
    int saved = errno;
    pf_close(f);
    if (!moved)
        return qb_err_set(err, QB_ERR_IO, "cannot move '%s' into place: %s", f->part,
                          strerror(saved));
    f->state = PF_DONE;
    qb_progress_log(pl->progress, "%s (%lld bytes)", f->path, (long long)f->have);
    return QB_OK;
}

/* What to do after one transfer ended: done, retry later, or fail. */
static enum qb_status pf_finished(struct pull *pl, CURLM *m, struct pfile *f, CURLcode cc,
                                  struct qb_err *err)
{
    long status = 0;
    curl_easy_getinfo(f->h, CURLINFO_RESPONSE_CODE, &status);
    char *redirect = NULL, *target = NULL;
    if (cc == CURLE_OK && status >= 300 && status < 400 &&
        curl_easy_getinfo(f->h, CURLINFO_REDIRECT_URL, &target) == CURLE_OK && target)
        redirect = qb_strdup(target);
    pf_detach(m, f);
    f->state = PF_PENDING;
    f->not_before = 0;
    struct qb_hub_ctx ctx = {pl->repo, pl->rev, f->path};
    if (f->have > f->attempt_start)
        f->attempts = 0; /* bytes arrived: the retry budget starts again */
    if (cc == CURLE_OK && (status == 200 || status == 206)) {
        if (f->size < 0 || f->have >= f->size)
            return pf_finalize(pl, f, err);
        cc = CURLE_PARTIAL_FILE; /* closed early without an error: resume */
    }
    if (cc == CURLE_OK && status >= 300 && status < 400) {
        if (!redirect || ++f->redirects > QB_PULL_MAX_REDIRECTS) {
            free(redirect);
            return qb_err_set(err, QB_ERR_NETWORK, "too many redirects downloading '%s' of %s",
                              f->path, pl->repo);
        }
        free(f->url);
        f->url = redirect;
        return QB_OK;
    }
    free(redirect);
    if (cc == CURLE_OK && status == 416) {
        if (f->size >= 0 && f->have == f->size)
            return pf_finalize(pl, f, err);
        pf_reset_part(f);
    } else if (cc == CURLE_WRITE_ERROR && f->write_fail == PF_WF_RANGE) {
        pf_reset_part(f); /* the server resumed from elsewhere: start over */
    } else if (cc == CURLE_WRITE_ERROR && f->write_fail == PF_WF_TOO_BIG) {
        pf_close(f);
        unlink(f->part);
        return qb_err_set(err, QB_ERR_FORMAT,
                          "'%s' of %s is larger than the %lld bytes the Hub "
                          "announced; the download was deleted",
                          f->path, pl->repo, (long long)f->size);
    } else if (cc == CURLE_WRITE_ERROR) {
        return qb_err_set(err, QB_ERR_IO, "cannot write '%s': %s", f->part, strerror(errno));
    } else if (!(cc != CURLE_OK ? qb_hub_curl_transient(cc) : qb_hub_status_transient(status))) {
        if (cc != CURLE_OK)
            return qb_err_set(err, QB_ERR_NETWORK, "download of '%s' of %s failed: %s", f->path,
                              pl->repo, f->curl_msg[0] ? f->curl_msg : curl_easy_strerror(cc));
        return qb_hub_http_error(pl->hub, &f->resp, &ctx, f->url, err);
    }
    double ra = (cc == CURLE_OK && status == 429) ? f->resp.retry_after : -1;
    double delay = qb_hub_retry_delay(pl->hub, f->attempts, ra);
    if (f->attempts >= pl->hub->o.max_retries || delay < 0 ||
        f->total_attempts >= QB_PULL_MAX_ATTEMPTS) {
        if (cc == CURLE_OK)
            return qb_hub_http_error(pl->hub, &f->resp, &ctx, f->url, err);
        return qb_err_set(err, QB_ERR_NETWORK, "download of '%s' of %s failed after %d tries: %s",
                          f->path, pl->repo, f->total_attempts,
                          f->curl_msg[0] ? f->curl_msg : curl_easy_strerror(cc));
    }
    f->attempts++;
    f->not_before = qb_now_seconds() + delay;
    return QB_OK;
}

static void publish(struct pull *pl, int force)
{
    double now = qb_now_seconds();
    if (!pl->progress || (!force && now - pl->last_publish < 0.1))
        return;
    pl->last_publish = now;
    int64_t done = 0;
    for (size_t i = 0; i < pl->n; i++) {
        const struct pfile *f = &pl->files[i];
        done += f->state == PF_DONE && f->size >= 0 ? f->size : f->have;
    }
    double frac = pl->total > 0 ? (double)done / (double)pl->total : 0;
    qb_progress_update(pl->progress, QB_MIN(frac, 1.0), done, pl->total, "bytes");
}

static enum qb_status download_all(struct pull *pl, struct qb_err *err)
{
    enum qb_status st = QB_OK;
    CURLM *m = curl_multi_init();
    if (!m)
        return qb_err_set(err, QB_ERR_NOMEM, "cannot create a libcurl multi handle");
    for (;;) {
        if (qb_progress_cancelled(pl->progress)) {
            st = qb_err_set(err, QB_ERR_CANCELLED, "pull of %s cancelled", pl->repo);
            break;
        }
        double now = qb_now_seconds();
        int running = 0, pending = 0;
        for (size_t i = 0; i < pl->n; i++)
            running += pl->files[i].state == PF_RUNNING;
        for (size_t i = 0; i < pl->n && !st; i++) {
            struct pfile *f = &pl->files[i];
            if (f->state != PF_PENDING)
                continue;
            pending++;
            if (running < pl->hub->o.parallel && f->not_before <= now) {
                st = pf_start(pl, m, f, err);
                running++;
            }
        }
        if (st || (running == 0 && pending == 0))
            break;
        int still = 0;
        curl_multi_perform(m, &still);
        curl_multi_poll(m, NULL, 0, 100, NULL);
        curl_multi_perform(m, &still);
        CURLMsg *msg;
        int left;
        while (!st && (msg = curl_multi_info_read(m, &left)) != NULL) {
            if (msg->msg != CURLMSG_DONE)
                continue;
            struct pfile *f = NULL;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&f);
            st = pf_finished(pl, m, f, msg->data.result, err);
            if (st)
                f->state = PF_FAILED;
        }
        publish(pl, 0);
        if (st)
            break;
    }
    for (size_t i = 0; i < pl->n; i++) {
        pf_detach(m, &pl->files[i]);
        pf_close(&pl->files[i]);
    }
    curl_multi_cleanup(m);
    publish(pl, 1);
    return st;
}

/* ---- the whole pull ------------------------------------------------------------------------- */

static enum qb_status select_files(struct pull *pl, const struct qb_hub_file_list *tree,
                                   const struct qb_hub_pull_opts *opts, struct qb_err *err)
{
    pl->files = qb_calloc_array(tree->n ? tree->n : 1, sizeof *pl->files);
    if (!pl->files)
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory");
    for (size_t i = 0; i < tree->n; i++) {
        const char *path = tree->items[i].path;
        if (!qb_hub_file_selected(opts, path))
            continue;
        if (!qb_hub_path_is_safe(path))
            return qb_err_set(err, QB_ERR_FORMAT,
                              "refusing file name '%s' listed by the Hub for "
                              "%s: it would land outside the snapshot folder",
                              path, pl->repo);
        struct pfile *f = &pl->files[pl->n++];
        f->path = path;
        f->lock_fd = -1;
        f->size = -1;
    }
    if (pl->n == 0)
        return qb_err_set(err, QB_ERR_USAGE,
                          "no file of %s matches the include/exclude "
                          "selection",
                          pl->repo);
    return QB_OK;
}

static enum qb_status make_dirs(struct pull *pl, struct qb_err *err)
{
    static const char *const subs[] = {"blobs", "snapshots", "refs"};
    static const char tag[] = "Signature: 8a477f597d28d172789f06886806bc55\n"
                              "# This file is a cache directory tag created by quantbench.\n"
                              "# For information about cache directory tags, see:\n"
                              "#\thttps://bford.info/cachedir/\n";
    enum qb_status st = qb_hub_mkdirs(pl->locks_dir, err);
    char *tag_path = qb_asprintf("%s/CACHEDIR.TAG", pl->hub->o.hub_cache);
    if (!st && tag_path && !file_exists(tag_path)) /* as huggingface_hub does; best effort */
        qb_hub_write_atomic(tag_path, tag, sizeof tag - 1, NULL);
    free(tag_path);
    for (size_t i = 0; !st && i < QB_ARRAY_LEN(subs); i++) {
        char *d = qb_asprintf("%s/%s", pl->repo_dir, subs[i]);
        st = d ? qb_hub_mkdirs(d, err) : qb_err_set(err, QB_ERR_NOMEM, "out of memory");
        free(d);
    }
    return st;
}

static enum qb_status link_all(struct pull *pl, struct qb_err *err)
{
    enum qb_status st = QB_OK;
    for (size_t i = 0; i < pl->n && !st; i++)
        st = qb_hub_link_snapshot(pl->repo_dir, pl->commit, pl->files[i].path, pl->files[i].etag,
                                  err);
    if (!st && strcmp(pl->rev, pl->commit) != 0) {
        char *ref = qb_asprintf("%s/refs/%s", pl->repo_dir, pl->rev);
        char *parent = ref ? qb_strdup(ref) : NULL;
        if (!ref || !parent) {
            st = qb_err_set(err, QB_ERR_NOMEM, "out of memory");
        } else {
            *strrchr(parent, '/') = '\0';
            st = qb_hub_mkdirs(parent, err);
            if (!st)
                st = qb_hub_write_atomic(ref, pl->commit, strlen(pl->commit), err);
        }
        free(ref);
        free(parent);
    }
    return st;
}

enum qb_status qb_hub_pull(struct qb_hub *hub, const char *repo, const char *rev,
                           const struct qb_hub_pull_opts *opts, char **snapshot_dir,
                           struct qb_err *err)
{
    enum qb_status st = QB_OK;
    struct qb_hub_model_info info;
    struct qb_hub_file_list tree = {0};
    struct pull pl = {.hub = hub, .repo = repo, .rev = rev ? rev : "main"};
    struct qb_progress *prog = opts ? opts->progress : NULL;
    memset(&info, 0, sizeof info);
    if (snapshot_dir)
        *snapshot_dir = NULL;
    pl.progress = prog;
    qb_progress_begin(prog, QB_JOB_PULL, "listing files");
    if (hub->o.offline) { /* like snapshot_download: the cached snapshot, if any */
        char *cached = qb_hub_cached_snapshot(hub, repo, rev);
        if (!cached)
            st = qb_err_set(err, QB_ERR_NETWORK,
                            "offline mode (HF_HUB_OFFLINE=1): cannot pull %s%s%s and it is not "
                            "in the cache",
                            repo, rev ? "@" : "", rev ? rev : "");
        if (snapshot_dir)
            *snapshot_dir = cached;
        else
            free(cached);
        goto out;
    }
    st = qb_hub_model_info(hub, repo, rev, &info, err);
    if (st)
        goto out;
    pl.commit = info.sha;
    pl.repo_dir = qb_hub_repo_dir(hub, repo);
    pl.locks_dir = pl.repo_dir ? qb_asprintf("%s/.locks/models--%s", hub->o.hub_cache,
                                             strrchr(pl.repo_dir, '/') + 9)
                               : NULL;
    if (!pl.repo_dir || !pl.locks_dir) {
        st = qb_err_set(err, QB_ERR_NOMEM, "out of memory");
        goto out;
    }
    st = list_tree(hub, repo, pl.commit, &tree, err);
    if (!st)
        st = select_files(&pl, &tree, opts, err);
    for (size_t i = 0; !st && i < pl.n; i++) {
        if (qb_progress_cancelled(prog))
            st = qb_err_set(err, QB_ERR_CANCELLED, "pull of %s cancelled", repo);
        else
            st = head_file(&pl, &pl.files[i], err);
    }
    if (st)
        goto out;
    for (size_t i = 0; i < pl.n; i++) {
        struct pfile *f = &pl.files[i];
        int dup = 0;
        for (size_t j = 0; j < i && !dup; j++)
            dup = strcmp(pl.files[j].etag, f->etag) == 0;
        if (dup || file_exists(f->blob))
            f->state = PF_DONE; /* same content as an earlier file, or already cached */
        if (f->size > 0 && !dup)
            pl.total += f->size;
    }
    st = check_disk(&pl, err);
    if (!st)
        st = make_dirs(&pl, err);
    if (st)
        goto out;
    qb_progress_stage(prog, "downloading");
    st = download_all(&pl, err);
    if (!st)
        st = link_all(&pl, err);
    if (!st && snapshot_dir) {
        *snapshot_dir = qb_asprintf("%s/snapshots/%s", pl.repo_dir, pl.commit);
        if (!*snapshot_dir)
            st = qb_err_set(err, QB_ERR_NOMEM, "out of memory");
    }
out:
    qb_progress_finish(prog, st, st ? err : NULL);
    for (size_t i = 0; i < pl.n; i++)
        pf_free(&pl.files[i]);
    free(pl.files);
    free(pl.repo_dir);
    free(pl.locks_dir);
    qb_hub_file_list_clear(&tree);
    qb_hub_model_info_clear(&info);
    return st;
}
