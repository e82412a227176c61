/*
 * qb_common.h - the few things every room of quantbench shares.
 *
 * - enum qb_status: the one status type that core/, hub/ and kernels/ return.
 *   Every fallible function returns it; QB_OK is 0 so `if (st) goto out;` works.
 * - struct qb_err: the single human-readable error line that goes with a
 *   non-OK status ("what failed, which file, which field, what to do").
 *   Callers own it (usually on the stack); callees fill it with qb_err_set().
 * - Allocation wrappers with overflow checks (qb_malloc_array and friends).
 *   They return NULL on failure; core/ propagates QB_ERR_NOMEM, never aborts.
 * - CHECK (always on, for internal contracts) and ASSERT (debug only).
 *   Neither is ever used on bytes that came from a file or the network.
 */
#ifndef QB_COMMON_H
#define QB_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

enum qb_status {
    QB_OK = 0,
    QB_ERR_USAGE,      /* bad command-line usage (exit 2) */
    QB_ERR_IO,         /* open/read/write/mmap failed */
    QB_ERR_FORMAT,     /* a file's content is malformed or inconsistent */
    QB_ERR_UNSUPPORTED,/* well-formed but not something we can run */
    QB_ERR_NOMEM,      /* an allocation failed or a size overflowed */
    QB_ERR_RANGE,      /* a value is outside its allowed range */
    QB_ERR_NUMERIC,    /* NaN/Inf or another numerical failure */
    QB_ERR_NETWORK,    /* HTTP transport failure */
    QB_ERR_HTTP,       /* HTTP status the caller must act on (401/403/404/429) */
    QB_ERR_CUDA,       /* a CUDA runtime/library call failed */
    QB_ERR_NO_DEVICE,  /* no GPU / no driver where one was required */
    QB_ERR_CANCELLED,  /* the user cancelled the job */
    QB_ERR_INTERNAL,   /* a bug: an invariant did not hold */
};

/* Short fixed name of a status ("io error"); never NULL. */
const char *qb_status_str(enum qb_status st);

/* Process exit code for a status: 0 ok, 2 usage, 1 everything else. */
int qb_status_exit_code(enum qb_status st);

#define QB_ERR_MSG_MAX 512

struct qb_err {
    enum qb_status status;
    char msg[QB_ERR_MSG_MAX]; /* one line, no trailing newline */
};

/*
 * Fill *err (which may be NULL) with status and a printf-formatted message and
 * return status, so callers can write `return qb_err_set(err, QB_ERR_IO, ...)`.
 * A second call overwrites the first: the innermost caller that knows the
 * file and field should set it, outer layers pass it through unchanged.
 */
enum qb_status qb_err_set(struct qb_err *err, enum qb_status status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Clear to QB_OK with an empty message. */
void qb_err_clear(struct qb_err *err);

/* Print "quantbench: <msg>" (or the status name when msg is empty) to stderr. */
void qb_err_print(const struct qb_err *err);

/* ---- allocation -------------------------------------------------------------
 * All return NULL on failure or overflow (n * size > SIZE_MAX) and on a zero
 * total size. The caller owns the result and frees it with free(). */
void *qb_malloc_array(size_t n, size_t size);
void *qb_calloc_array(size_t n, size_t size);
void *qb_realloc_array(void *p, size_t n, size_t size);
/* Aligned (64-byte) allocation for SIMD-friendly buffers; free with free(). */
void *qb_aligned_alloc(size_t bytes);
char *qb_strdup(const char *s);
/* snprintf into a freshly malloced string; NULL on failure. */
char *qb_asprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* a * b with overflow detection: returns 0 on overflow, 1 when *out is valid. */
static inline int qb_mul_size(size_t a, size_t b, size_t *out)
{
    if (a != 0 && b > SIZE_MAX / a)
        return 0;
    *out = a * b;
    return 1;
}

/* ---- assertions ------------------------------------------------------------ */
void qb_check_failed(const char *expr, const char *file, int line) __attribute__((noreturn));

#define CHECK(x) ((x) ? (void)0 : qb_check_failed(#x, __FILE__, __LINE__))
#ifdef NDEBUG
#define ASSERT(x) ((void)0)
#else
#define ASSERT(x) CHECK(x)
#endif

#define QB_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define QB_MIN(a, b) ((a) < (b) ? (a) : (b))
#define QB_MAX(a, b) ((a) > (b) ? (a) : (b))

/* Monotonic clock in seconds. */
double qb_now_seconds(void);

#endif /* QB_COMMON_H */
