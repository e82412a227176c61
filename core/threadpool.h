/*
 * threadpool.h - a fixed pool of pthreads running parallel-for loops.
 *
 * The CPU engine splits each matmul, attention head loop and norm over the
 * cores with qb_pool_for(). One pool per engine (never global); the calling
 * thread takes part in the work, so a pool of 1 thread runs inline.
 * qb_pool_for() is not re-entrant: one loop at a time per pool.
 */
#ifndef QB_THREADPOOL_H
#define QB_THREADPOOL_H

#include <stdint.h>

#include "qb_common.h"

struct qb_pool;

/* fn runs for task indices [begin, end) of one contiguous slice. */
typedef void (*qb_pool_fn)(void *ctx, int64_t begin, int64_t end);

/* Create a pool with n_threads workers in total (caller included); n_threads <= 0
 * means the number of online cores. Returns NULL on failure. */
struct qb_pool *qb_pool_create(int n_threads);
void qb_pool_free(struct qb_pool *pool); /* NULL is fine */
int qb_pool_threads(const struct qb_pool *pool);

/* Run fn over [0, n) split in contiguous slices of at least `grain` items, one
 * per thread; returns when every slice is done. pool may be NULL (runs inline). */
void qb_pool_for(struct qb_pool *pool, int64_t n, int64_t grain, qb_pool_fn fn, void *ctx);

/* Number of online CPU cores (>= 1). */
int qb_cpu_count(void);

#endif /* QB_THREADPOOL_H */
