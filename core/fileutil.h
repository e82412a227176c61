/*
 * fileutil.h - reading whole files and mapping them, with errors that name
 * the path. Used by every loader.
 */
#ifndef QB_FILEUTIL_H
#define QB_FILEUTIL_H

#include <stddef.h>

#include "qb_common.h"

/* Read a whole file (at most max_bytes) into a malloced, NUL-terminated buffer. */
enum qb_status qb_file_read_all(const char *path, size_t max_bytes, char **out, size_t *len,
                                struct qb_err *err);

struct qb_mmap {
    void *addr;   /* NULL for an empty file */
    size_t size;
    int fd;
};

/* Map a file read-only. */
enum qb_status qb_mmap_open(const char *path, struct qb_mmap *out, struct qb_err *err);
void qb_mmap_close(struct qb_mmap *m); /* NULL-safe, idempotent */
/* Tell the kernel we no longer need [off, off+len) (madvise DONTNEED + fadvise). */
void qb_mmap_release_range(const struct qb_mmap *m, size_t off, size_t len);

/* Join dir and name with one '/'; malloced. */
char *qb_path_join(const char *dir, const char *name);
int qb_path_is_dir(const char *path);
int qb_path_exists(const char *path);

/* Write data to path atomically (temp file in the same directory, fsync, rename). */
enum qb_status qb_file_write_atomic(const char *path, const void *data, size_t len,
                                    struct qb_err *err);

#endif /* QB_FILEUTIL_H */
