/*
 * qb_common.c - status names, the error line, checked allocation, clocks.
 * See qb_common.h for the contracts.
 */
#include "qb_common.h"

#include <stdarg.h>
#include <string.h>
#include <time.h>

const char *qb_status_str(enum qb_status st)
{
    switch (st) {
    case QB_OK: return "ok";
    case QB_ERR_USAGE: return "usage error";
    case QB_ERR_IO: return "i/o error";
    case QB_ERR_FORMAT: return "malformed input";
    case QB_ERR_UNSUPPORTED: return "unsupported";
    case QB_ERR_NOMEM: return "out of memory";
    case QB_ERR_RANGE: return "value out of range";
    case QB_ERR_NUMERIC: return "numerical error";
    case QB_ERR_NETWORK: return "network error";
    case QB_ERR_HTTP: return "http error";
    case QB_ERR_CUDA: return "cuda error";
    case QB_ERR_NO_DEVICE: return "no gpu";
    case QB_ERR_CANCELLED: return "cancelled";
    case QB_ERR_INTERNAL: return "internal error";
    }
    return "unknown status";
}

int qb_status_exit_code(enum qb_status st)
{
    if (st == QB_OK)
        return 0;
    return st == QB_ERR_USAGE ? 2 : 1;
}

enum qb_status qb_err_set(struct qb_err *err, enum qb_status status, const char *fmt, ...)
{
    if (!err)
        return status;
    err->status = status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    for (char *p = err->msg; *p; p++) {
        if (*p == '\n' || *p == '\r')
            *p = ' ';
    }
    return status;
}

void qb_err_clear(struct qb_err *err)
{
    if (!err)
        return;
    err->status = QB_OK;
    err->msg[0] = '\0';
}

void qb_err_print(const struct qb_err *err)
{
    if (!err)
        return;
    if (err->msg[0])
        fprintf(stderr, "quantbench: %s\n", err->msg);
    else
        fprintf(stderr, "quantbench: %s\n", qb_status_str(err->status));
}

void *qb_malloc_array(size_t n, size_t size)
{
    size_t total;
    if (!qb_mul_size(n, size, &total) || total == 0)
        return NULL;
    return malloc(total);
}

void *qb_calloc_array(size_t n, size_t size)
{
    size_t total;
    if (!qb_mul_size(n, size, &total) || total == 0)
        return NULL;
    return calloc(n, size);
}

void *qb_realloc_array(void *p, size_t n, size_t size)
{
    size_t total;
    if (!qb_mul_size(n, size, &total) || total == 0)
        return NULL;
    return realloc(p, total);
}

void *qb_aligned_alloc(size_t bytes)
{
    if (bytes == 0 || bytes > SIZE_MAX - 64)
        return NULL;
    size_t rounded = (bytes + 63) & ~(size_t)63;
    return aligned_alloc(64, rounded);
}

char *qb_strdup(const char *s)
{
    if (!s)
        return NULL;
    size_t n = strlen(s) + 1;
    char *d = malloc(n);
    if (d)
        memcpy(d, s, n);
    return d;
}

char *qb_asprintf(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return NULL;
    char *s = malloc((size_t)n + 1);
    if (!s)
        return NULL;
    va_start(ap, fmt);
    vsnprintf(s, (size_t)n + 1, fmt, ap);
    va_end(ap);
    return s;
}

void qb_check_failed(const char *expr, const char *file, int line)
{
    fprintf(stderr, "quantbench: internal check failed: %s (%s:%d)\n", expr, file, line);
    abort();
}

double qb_now_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
