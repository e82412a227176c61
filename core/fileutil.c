/*
 * fileutil.c - whole-file reads, read-only mmaps and atomic writes.
 */
#include "fileutil.h"

#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

enum qb_status qb_file_read_all(const char *path, size_t max_bytes, char **out, size_t *len,
                                struct qb_err *err)
{
    enum qb_status st = QB_OK;
    char *buf = NULL;
    *out = NULL;
    *len = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return qb_err_set(err, QB_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        st = qb_err_set(err, QB_ERR_IO, "'%s' is not a regular file", path);
        goto out;
    }
    if ((size_t)sb.st_size > max_bytes) {
        st = qb_err_set(err, QB_ERR_FORMAT, "'%s' is too large (%lld bytes, limit %zu)", path,
                        (long long)sb.st_size, max_bytes);
        goto out;
    }
    size_t size = (size_t)sb.st_size;
    buf = malloc(size + 1);
    if (!buf) {
        st = qb_err_set(err, QB_ERR_NOMEM, "cannot allocate %zu bytes to read '%s'", size, path);
        goto out;
    }
    size_t got = 0;
    while (got < size) {
        ssize_t r = read(fd, buf + got, size - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            st = qb_err_set(err, QB_ERR_IO, "cannot read '%s': %s", path,
                            r < 0 ? strerror(errno) : "unexpected end of file");
            goto out;
        }
        got += (size_t)r;
    }
    buf[size] = '\0';
    *out = buf;
    *len = size;
    buf = NULL;
out:
    free(buf);
    close(fd);
    return st;
}

enum qb_status qb_mmap_open(const char *path, struct qb_mmap *out, struct qb_err *err)
{
    memset(out, 0, sizeof *out);
    out->fd = -1;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return qb_err_set(err, QB_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return qb_err_set(err, QB_ERR_IO, "'%s' is not a regular file", path);
    }
    out->fd = fd;
    out->size = (size_t)sb.st_size;
    if (out->size == 0)
        return QB_OK;
    void *addr = mmap(NULL, out->size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (addr == MAP_FAILED) {
        close(fd);
        out->fd = -1;
        return qb_err_set(err, QB_ERR_IO, "cannot map '%s': %s", path, strerror(errno));
    }
    out->addr = addr;
    return QB_OK;
}

void qb_mmap_close(struct qb_mmap *m)
{
    if (!m)
        return;
    if (m->addr)
        munmap(m->addr, m->size);
    if (m->fd >= 0)
        close(m->fd);
    m->addr = NULL;
    m->size = 0;
    m->fd = -1;
}

void qb_mmap_release_range(const struct qb_mmap *m, size_t off, size_t len)
{
    if (!m || !m->addr || off >= m->size)
        return;
    if (len > m->size - off)
        len = m->size - off;
    long page = sysconf(_SC_PAGESIZE);
    size_t start = off & ~((size_t)page - 1);
    madvise((char *)m->addr + start, len + (off - start), MADV_DONTNEED);
    posix_fadvise(m->fd, (off_t)off, (off_t)len, POSIX_FADV_DONTNEED);
}

char *qb_path_join(const char *dir, const char *name)
{
    size_t dl = strlen(dir);
    while (dl > 1 && dir[dl - 1] == '/')
        dl--;
    return qb_asprintf("%.*s/%s", (int)dl, dir, name);
}

int qb_path_is_dir(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

int qb_path_exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

enum qb_status qb_file_write_atomic(const char *path, const void *data, size_t len,
                                    struct qb_err *err)
{
    enum qb_status st = QB_OK;
    char *tmp = qb_asprintf("%s.tmp.XXXXXX", path);
    if (!tmp)
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory writing '%s'", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        st = qb_err_set(err, QB_ERR_IO, "cannot create a file next to '%s': %s", path,
                        strerror(errno));
        free(tmp);
        return st;
    }
    const char *p = data;
    size_t left = len;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            st = qb_err_set(err, QB_ERR_IO, "cannot write '%s': %s", path, strerror(errno));
            goto out;
        }
        p += w;
        left -= (size_t)w;
    }
    if (fsync(fd) != 0) {
        st = qb_err_set(err, QB_ERR_IO, "cannot sync '%s': %s", path, strerror(errno));
        goto out;
    }
    fchmod(fd, 0644);
    if (rename(tmp, path) != 0)
        st = qb_err_set(err, QB_ERR_IO, "cannot rename into '%s': %s", path, strerror(errno));
out:
    close(fd);
    if (st)
        unlink(tmp);
    free(tmp);
    return st;
}
