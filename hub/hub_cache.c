/*
 * hub_cache.c - the huggingface_hub cache on disk, shared with the Python
 * tools (shared/docs/HUB-TUI-TELEMETRY.md section 2.2):
 *
 *   $HF_HUB_CACHE/models--ORG--NAME/
 *       blobs/<etag>                      content (sha256 for LFS, git sha1 otherwise)
 *       blobs/<etag>.incomplete           our resumable partial download
 *       snapshots/<commit>/<path>         relative symlink -> ../../blobs/<etag>
 *       refs/<rev>                        the commit hash, no newline
 *
 * Names coming from the Hub are untrusted: qb_hub_path_is_safe() rejects
 * absolute paths, empty/"."/".." components, backslashes and control bytes,
 * and qb_hub_link_snapshot() checks the real folder it writes into is inside
 * the snapshot. Everything is written atomically (temporary name + rename).
 * Also: parsing ORG/NAME[@REV], listing the cache, resolving a MODEL argument.
 */
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hub_internal.h"

/* ---- names ---------------------------------------------------------------------- */

int qb_hub_path_is_safe(const char *path)
{
    if (!path || !path[0] || path[0] == '/' || strlen(path) > 1024)
        return 0;
    const char *comp = path;
    for (const char *p = path;; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '/' || c == '\0') {
            size_t n = (size_t)(p - comp);
            if (n == 0 || (n == 1 && comp[0] == '.') ||
                (n == 2 && comp[0] == '.' && comp[1] == '.'))
                return 0;
            if (c == '\0')
                return 1;
            comp = p + 1;
        } else if (c == '\\' || c < 0x20 || c == 0x7f) {
            return 0;
        }
    }
}

static int name_part_valid(const char *s, size_t n)
{
    if (n == 0 || n > 96 || s[0] == '-' || s[0] == '.' || s[n - 1] == '.')
        return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        int ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                 c == '-' || c == '_' || c == '.';
        if (!ok || (i > 0 && ((c == '.' && s[i - 1] == '.') || (c == '-' && s[i - 1] == '-'))))
            return 0;
    }
    return 1;
}

int qb_hub_repo_id_valid(const char *repo)
{
    const char *slash = repo ? strchr(repo, '/') : NULL;
    if (!slash || strchr(slash + 1, '/'))
        return 0;
    return name_part_valid(repo, (size_t)(slash - repo)) &&
           name_part_valid(slash + 1, strlen(slash + 1));
}

int qb_hub_rev_valid(const char *rev)
{
    if (!rev || !rev[0] || rev[0] == '-' || strlen(rev) > 255 || !qb_hub_path_is_safe(rev))
        return 0;
    for (const char *p = rev; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '-' || c == '_' || c == '.' || c == '/'))
            return 0;
    }
    return 1;
}

enum qb_status qb_hub_parse_repo_arg(const char *arg, char **repo, char **rev, struct qb_err *err)
{
    *repo = *rev = NULL;
    const char *at = strchr(arg, '@');
    size_t n = at ? (size_t)(at - arg) : strlen(arg);
    char *r = malloc(n + 1);
    if (!r)
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory");
    memcpy(r, arg, n);
    r[n] = '\0';
    if (!qb_hub_repo_id_valid(r)) {
        free(r);
        return qb_err_set(err, QB_ERR_USAGE,
                          "'%s' is not a Hub model id (expected ORG/NAME or "
                          "ORG/NAME@REVISION)",
                          arg);
    }
    if (at && !qb_hub_rev_valid(at + 1)) {
        free(r);
        return qb_err_set(err, QB_ERR_USAGE, "'%s' is not a valid revision in '%s'", at + 1, arg);
    }
    *rev = at ? qb_strdup(at + 1) : NULL;
    if (at && !*rev) {
        free(r);
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory");
    }
    *repo = r;
    return QB_OK;
}

/* ---- files ------------------------------------------------------------------------- */

char *qb_hub_repo_dir(const struct qb_hub *hub, const char *repo)
{
    const char *slash = strchr(repo, '/');
    if (!slash)
        return NULL;
    return qb_asprintf("%s/models--%.*s--%s", hub->o.hub_cache, (int)(slash - repo), repo,
                       slash + 1);
}

enum qb_status qb_hub_mkdirs(const char *path, struct qb_err *err)
{
    char *p = qb_strdup(path);
    if (!p)
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory");
    for (char *s = p + 1;; s++) {
        if (*s == '/' || *s == '\0') {
            char c = *s;
            *s = '\0';
            if (mkdir(p, 0777) != 0 && errno != EEXIST) {
                enum qb_status st =
                    qb_err_set(err, QB_ERR_IO, "cannot create folder '%s': %s", p, strerror(errno));
                free(p);
                return st;
            }
            *s = c;
            if (c == '\0')
                break;
        }
    }
    free(p);
    return QB_OK;
}

enum qb_status qb_hub_write_atomic(const char *path, const void *data, size_t len,
                                   struct qb_err *err)
{
    enum qb_status st = QB_OK;
    char *tmp = qb_asprintf("%s.%ld.tmp", path, (long)getpid());
    FILE *f = tmp ? fopen(tmp, "wb") : NULL;
    if (!f) {
        st = qb_err_set(err, QB_ERR_IO, "cannot write '%s': %s", tmp ? tmp : path, strerror(errno));
        goto out;
    }
    int bad = (len && fwrite(data, 1, len, f) != len);
    bad |= fclose(f) != 0;
    if (bad || rename(tmp, path) != 0) {
        st = qb_err_set(err, QB_ERR_IO, "cannot write '%s': %s", path, strerror(errno));
        unlink(tmp);
    }
out:
    free(tmp);
    return st;
}

char *qb_hub_read_file(const char *path, size_t max, size_t *len)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    struct stat st;
    *len = 0;
    if (!f)
        return NULL;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode) || (size_t)st.st_size > max)
        goto out;
    buf = malloc((size_t)st.st_size + 1);
    if (!buf)
        goto out;
    *len = fread(buf, 1, (size_t)st.st_size, f);
    buf[*len] = '\0';
out:
    fclose(f);
    return buf;
}

/* 1 when `dir` (existing) resolves to a place inside `root`. */
static int inside(const char *root, const char *dir)
{
    char rr[PATH_MAX], rd[PATH_MAX];
    if (!realpath(root, rr) || !realpath(dir, rd))
        return 0;
    size_t n = strlen(rr);
    return strncmp(rr, rd, n) == 0 && (rd[n] == '\0' || rd[n] == '/');
}

enum qb_status qb_hub_link_snapshot(const char *repo_dir, const char *commit, const char *file,
                                    const char *etag, struct qb_err *err)
{
    enum qb_status st = QB_OK;
    char *snap = NULL, *full = NULL, *parent = NULL, *target = NULL, *tmp = NULL;
    if (!qb_hub_path_is_safe(file))
        return qb_err_set(err, QB_ERR_FORMAT,
                          "refusing file name '%s' from the Hub: it would "
                          "land outside the snapshot folder",
                          file);
    snap = qb_asprintf("%s/snapshots/%s", repo_dir, commit);
    full = qb_asprintf("%s/snapshots/%s/%s", repo_dir, commit, file);
    if (!snap || !full || !(parent = qb_strdup(full))) {
        st = qb_err_set(err, QB_ERR_NOMEM, "out of memory");
        goto out;
    }
    *strrchr(parent, '/') = '\0';
    st = qb_hub_mkdirs(parent, err);
    if (st)
        goto out;
    if (!inside(snap, parent)) {
        st = qb_err_set(err, QB_ERR_FORMAT,
                        "refusing file name '%s': its folder resolves "
                        "outside the snapshot '%s'",
                        file, snap);
        goto out;
    }
    size_t depth = 0;
    for (const char *p = file; *p; p++)
        depth += *p == '/';
    size_t tlen = (depth + 2) * 3 + strlen("blobs/") + strlen(etag) + 1;
    target = malloc(tlen);
    tmp = qb_asprintf("%s.%ld.qbtmp", full, (long)getpid());
    if (!target || !tmp) {
        st = qb_err_set(err, QB_ERR_NOMEM, "out of memory");
        goto out;
    }
    target[0] = '\0';
    for (size_t i = 0; i < depth + 2; i++)
        strcat(target, "../");
    strcat(target, "blobs/");
    strcat(target, etag);
    unlink(tmp);
    if (symlink(target, tmp) != 0 || rename(tmp, full) != 0) {
        st = qb_err_set(err, QB_ERR_IO, "cannot link '%s' into the snapshot: %s", full,
                        strerror(errno));
        unlink(tmp);
    }
out:
    free(snap);
    free(full);
    free(parent);
    free(target);
    free(tmp);
    return st;
}

/* ---- snapshots ------------------------------------------------------------------------ */

/* commit of rev (NULL = "main") from refs/, or rev itself when it is a commit. */
static char *ref_commit(const char *repo_dir, const char *rev)
{
    if (rev && qb_hub_is_hex(rev, 40))
        return qb_strdup(rev);
    char *path = qb_asprintf("%s/refs/%s", repo_dir, rev ? rev : "main");
    size_t len = 0;
    char *c = path ? qb_hub_read_file(path, 256, &len) : NULL;
    free(path);
    if (c) {
        while (len > 0 && (c[len - 1] == '\n' || c[len - 1] == '\r' || c[len - 1] == ' '))
            c[--len] = '\0';
        if (!qb_hub_is_hex(c, 40)) {
            free(c);
            c = NULL;
        }
    }
    return c;
}

static int is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* The snapshot folder of repo@rev when it holds a config.json; NULL otherwise.
 * *commit_out (may be NULL) receives the commit (malloced) on success. */
static char *cached_snapshot_commit(const struct qb_hub *hub, const char *repo, const char *rev,
                                    char **commit_out)
{
    char *dir = qb_hub_repo_dir(hub, repo);
    char *commit = dir ? ref_commit(dir, rev) : NULL;
    char *snap = commit ? qb_asprintf("%s/snapshots/%s", dir, commit) : NULL;
    char *cfg = snap ? qb_asprintf("%s/config.json", snap) : NULL;
    struct stat st;
    if (!cfg || stat(cfg, &st) != 0 || !S_ISREG(st.st_mode)) {
        free(snap);
        snap = NULL;
    }
    free(dir);
    if (snap && commit_out) {
        *commit_out = commit;
        commit = NULL;
    }
    free(commit);
    free(cfg);
    return snap;
}

char *qb_hub_cached_snapshot(const struct qb_hub *hub, const char *repo, const char *rev)
{
    return cached_snapshot_commit(hub, repo, rev, NULL);
}

/* Append the files under root/rel (rel "" at the top) to out, bounded depth. */
static enum qb_status walk_snapshot(const char *root, const char *rel, int depth,
                                    struct qb_hub_file_list *out, struct qb_err *err)
{
    enum qb_status st = QB_OK;
    char *dir = rel[0] ? qb_asprintf("%s/%s", root, rel) : qb_strdup(root);
    DIR *d = dir && depth < 16 ? opendir(dir) : NULL;
    struct dirent *e;
    while (!st && d && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        struct stat sb;
        char *path = rel[0] ? qb_asprintf("%s/%s", rel, e->d_name) : qb_strdup(e->d_name);
        if (!path) {
            st = qb_err_set(err, QB_ERR_NOMEM, "out of memory");
            break;
        }
        if (fstatat(dirfd(d), e->d_name, &sb, 0) == 0 && S_ISDIR(sb.st_mode)) {
            st = walk_snapshot(root, path, depth + 1, out, err);
        } else if (fstatat(dirfd(d), e->d_name, &sb, 0) == 0 && S_ISREG(sb.st_mode)) {
            struct qb_hub_file *f =
                qb_hub_vec_push((void **)&out->items, &out->n, &out->cap, sizeof *f);
            char target[PATH_MAX];
            ssize_t n = readlinkat(dirfd(d), e->d_name, target, sizeof target - 1);
            if (!f) {
                st = qb_err_set(err, QB_ERR_NOMEM, "out of memory");
            } else {
                f->path = path;
                path = NULL;
                f->size = sb.st_size;
                target[n > 0 ? n : 0] = '\0';
                const char *base = strrchr(target, '/');
                if (base && qb_hub_is_hex(base + 1, 64))
                    f->lfs_sha256 = qb_strdup(base + 1);
            }
        }
        free(path);
    }
    if (d)
        closedir(d);
    free(dir);
    return st;
}

static int cmp_files(const void *a, const void *b)
{
    return strcmp(((const struct qb_hub_file *)a)->path, ((const struct qb_hub_file *)b)->path);
}

enum qb_status qb_hub_model_info_cached(const struct qb_hub *hub, const char *repo, const char *rev,
                                        struct qb_hub_model_info *out, struct qb_err *err)
{
    enum qb_status st = QB_OK;
    char *commit = NULL;
    char *snap = cached_snapshot_commit(hub, repo, rev, &commit);
    if (!snap)
        return qb_err_set(err, QB_ERR_IO,
                          "model %s%s%s is not in the cache (%s) and "
                          "HF_HUB_OFFLINE is set",
                          repo, rev ? "@" : "", rev ? rev : "", hub->o.hub_cache);
    out->id = qb_strdup(repo);
    out->revision = qb_strdup(rev ? rev : "main");
    out->sha = commit;
    commit = NULL;
    st = walk_snapshot(snap, "", 0, &out->files, err);
    if (st)
        goto out;
    if (out->files.n > 1)
        qsort(out->files.items, out->files.n, sizeof *out->files.items, cmp_files);
    for (size_t i = 0; i < out->files.n; i++)
        out->total_size += out->files.items[i].size;
    char *cfg_path = qb_asprintf("%s/config.json", snap);
    size_t len = 0;
    char *cfg = cfg_path ? qb_hub_read_file(cfg_path, 4u << 20, &len) : NULL;
    struct qb_err ignored;
    out->have_config = cfg && qb_hub_parse_config(cfg, len, &out->config, &ignored) == QB_OK;
    free(cfg);
    free(cfg_path);
    out->supported = qb_hub_engine_verdict(&out->config, &out->verdict);
    if (!out->id || !out->revision || !out->verdict)
        st = qb_err_set(err, QB_ERR_NOMEM, "out of memory");
out:
    free(snap);
    free(commit);
    return st;
}

enum qb_status qb_hub_resolve_model(struct qb_hub *hub, const char *arg, int allow_pull,
                                    struct qb_progress *progress, char **dir, struct qb_err *err)
{
    enum qb_status st = QB_OK;
    char *repo = NULL, *rev = NULL;
    *dir = NULL;
    if (is_dir(arg)) {
        *dir = qb_strdup(arg);
        return *dir ? QB_OK : qb_err_set(err, QB_ERR_NOMEM, "out of memory");
    }
    st = qb_hub_parse_repo_arg(arg, &repo, &rev, err);
    if (st) {
        st = qb_err_set(err, QB_ERR_USAGE,
                        "model '%s' is neither a directory nor a Hub id "
                        "(ORG/NAME[@REVISION])",
                        arg);
        goto out;
    }
    *dir = qb_hub_cached_snapshot(hub, repo, rev);
    if (*dir)
        goto out;
    if (!allow_pull || hub->o.offline) {
        st = qb_err_set(err, QB_ERR_IO,
                        "model %s is not in the cache (%s)%s: run 'quantbench "
                        "pull %s' first%s",
                        arg, hub->o.hub_cache, hub->o.offline ? " and HF_HUB_OFFLINE is set" : "",
                        arg, hub->o.offline ? "" : " or pass --pull");
        goto out;
    }
    struct qb_hub_pull_opts po = {.progress = progress};
    st = qb_hub_pull(hub, repo, rev, &po, dir, err);
out:
    free(repo);
    free(rev);
    return st;
}

/* ---- listing ---------------------------------------------------------------------------- */

void qb_hub_cached_list_clear(struct qb_hub_cached_list *l)
{
    if (!l)
        return;
    for (size_t i = 0; i < l->n; i++) {
        struct qb_hub_cached_model *m = &l->items[i];
        free(m->id);
        free(m->revision);
        free(m->commit);
        free(m->path);
        free(m->verdict);
    }
    free(l->items);
    memset(l, 0, sizeof *l);
}

/* Bytes of blobs/ (complete blobs only) */
static int64_t blobs_size(const char *repo_dir)
{
    char *path = qb_asprintf("%s/blobs", repo_dir);
    DIR *d = path ? opendir(path) : NULL;
    int64_t total = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        struct stat st;
        size_t n = strlen(e->d_name);
        if (e->d_name[0] == '.' || (n > 11 && strcmp(e->d_name + n - 11, ".incomplete") == 0))
            continue;
        if (fstatat(dirfd(d), e->d_name, &st, 0) == 0 && S_ISREG(st.st_mode))
            total += st.st_size;
    }
    if (d)
        closedir(d);
    free(path);
    return total;
}

/* Files under a snapshot folder (symlinks that resolve), to a bounded depth. */
static int count_files(const char *dir, int depth)
{
    DIR *d = depth < 16 ? opendir(dir) : NULL;
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        struct stat st;
        if (fstatat(dirfd(d), e->d_name, &st, 0) != 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            char *sub = qb_asprintf("%s/%s", dir, e->d_name);
            n += sub ? count_files(sub, depth + 1) : 0;
            free(sub);
        } else if (S_ISREG(st.st_mode)) {
            n++;
        }
    }
    if (d)
        closedir(d);
    return n;
}

/* The first ref name (refs/NAME, one level) pointing at commit; NULL when none. */
static char *ref_for(const char *repo_dir, const char *commit)
{
    char *path = qb_asprintf("%s/refs", repo_dir);
    DIR *d = path ? opendir(path) : NULL;
    char *found = NULL;
    struct dirent *e;
    while (d && !found && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char *c = ref_commit(repo_dir, e->d_name);
        if (c && strcmp(c, commit) == 0)
            found = qb_strdup(e->d_name);
        free(c);
    }
    if (d)
        closedir(d);
    free(path);
    return found;
}

static enum qb_status add_snapshot(struct qb_hub_cached_list *out, const char *id,
                                   const char *repo_dir, const char *commit, int64_t size,
                                   struct qb_err *err)
{
    struct qb_hub_cached_model *m =
        qb_hub_vec_push((void **)&out->items, &out->n, &out->cap, sizeof *m);
    if (!m)
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory listing the cache");
    m->id = qb_strdup(id);
    m->commit = qb_strdup(commit);
    m->revision = ref_for(repo_dir, commit);
    if (!m->revision)
        m->revision = qb_strdup(commit);
    m->path = qb_asprintf("%s/snapshots/%s", repo_dir, commit);
    m->size = size;
    m->n_files = m->path ? count_files(m->path, 0) : 0;
    char *cfg_path = m->path ? qb_asprintf("%s/config.json", m->path) : NULL;
    size_t len = 0;
    char *cfg = cfg_path ? qb_hub_read_file(cfg_path, 4u << 20, &len) : NULL;
    struct qb_hub_config_summary c;
    memset(&c, 0, sizeof c);
    struct qb_err ignored;
    if (!cfg)
        m->verdict = qb_strdup("no config.json in the snapshot");
    else if (qb_hub_parse_config(cfg, len, &c, &ignored) != QB_OK)
        m->verdict = qb_strdup("config.json is malformed");
    else
        m->supported = qb_hub_engine_verdict(&c, &m->verdict);
    qb_hub_config_summary_clear(&c);
    free(cfg);
    free(cfg_path);
    if (!m->id || !m->commit || !m->revision || !m->path || !m->verdict)
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory listing the cache");
    return QB_OK;
}

static int cmp_cached(const void *a, const void *b)
{
    const struct qb_hub_cached_model *x = a, *y = b;
    int c = strcmp(x->id, y->id);
    return c ? c : strcmp(x->revision, y->revision);
}

enum qb_status qb_hub_list_cached(const struct qb_hub *hub, struct qb_hub_cached_list *out,
                                  struct qb_err *err)
{
    enum qb_status st = QB_OK;
    memset(out, 0, sizeof *out);
    DIR *d = opendir(hub->o.hub_cache);
    if (!d)
        return QB_OK; /* no cache yet: nothing cached */
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strncmp(e->d_name, "models--", 8) != 0)
            continue;
        char *id = qb_strdup(e->d_name + 8);
        char *sep = id ? strstr(id, "--") : NULL;
        if (!sep) {
            free(id);
            continue;
        }
        sep[0] = '/';
        memmove(sep + 1, sep + 2, strlen(sep + 2) + 1);
        char *repo_dir = qb_asprintf("%s/%s", hub->o.hub_cache, e->d_name);
        char *snaps = repo_dir ? qb_asprintf("%s/snapshots", repo_dir) : NULL;
        DIR *sd = snaps ? opendir(snaps) : NULL;
        int64_t size = repo_dir ? blobs_size(repo_dir) : 0;
        struct dirent *s;
        while (!st && sd && (s = readdir(sd)) != NULL) {
            if (s->d_name[0] != '.')
                st = add_snapshot(out, id, repo_dir, s->d_name, size, err);
        }
        if (sd)
            closedir(sd);
        free(snaps);
        free(repo_dir);
        free(id);
        if (st)
            break;
    }
    closedir(d);
    if (st)
        qb_hub_cached_list_clear(out);
    else if (out->n > 1)
        qsort(out->items, out->n, sizeof *out->items, cmp_cached);
    return st;
}
