/*
 * threadpool.c - fixed pthread pool for parallel-for (see threadpool.h).
 *
 * Design: workers sleep on a condition variable until `generation` changes,
 * then run their slice (index = worker id + 1; the caller runs slice 0) and
 * count down `pending`. Slices are static and contiguous, which suits our
 * loops (matmul row blocks, heads): equal work per item, good locality.
 */
#include "threadpool.h"

#include <pthread.h>
#include <unistd.h>

struct qb_pool {
    int n_threads;
    pthread_t *threads;
    pthread_mutex_t mu;
    pthread_cond_t wake;
    pthread_cond_t done;
    uint64_t generation;
    int pending;
    int stop;
    /* the current loop */
    qb_pool_fn fn;
    void *ctx;
    int64_t n;
    int n_slices;
};

struct worker_arg {
    struct qb_pool *pool;
    int id;
};

static void slice_bounds(int64_t n, int n_slices, int slice, int64_t *b, int64_t *e)
{
    int64_t per = n / n_slices, rem = n % n_slices;
    *b = slice * per + (slice < rem ? slice : rem);
    *e = *b + per + (slice < rem ? 1 : 0);
}

static void run_slice(struct qb_pool *pool, int slice)
{
    if (slice >= pool->n_slices)
        return;
    int64_t b, e;
    slice_bounds(pool->n, pool->n_slices, slice, &b, &e);
    if (b < e)
        pool->fn(pool->ctx, b, e);
}

static void *worker_main(void *p)
{
    struct worker_arg *arg = p;
    struct qb_pool *pool = arg->pool;
    int id = arg->id;
    free(arg);
    uint64_t seen = 0;
    for (;;) {
        pthread_mutex_lock(&pool->mu);
        while (pool->generation == seen && !pool->stop)
            pthread_cond_wait(&pool->wake, &pool->mu);
        if (pool->stop) {
            pthread_mutex_unlock(&pool->mu);
            return NULL;
        }
        seen = pool->generation;
        pthread_mutex_unlock(&pool->mu);
        run_slice(pool, id);
        pthread_mutex_lock(&pool->mu);
        if (--pool->pending == 0)
            pthread_cond_signal(&pool->done);
        pthread_mutex_unlock(&pool->mu);
    }
}

int qb_cpu_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : (int)n;
}

struct qb_pool *qb_pool_create(int n_threads)
{
    if (n_threads <= 0)
        n_threads = qb_cpu_count();
    struct qb_pool *pool = calloc(1, sizeof *pool);
    if (!pool)
        return NULL;
    pool->n_threads = n_threads;
    pthread_mutex_init(&pool->mu, NULL);
    pthread_cond_init(&pool->wake, NULL);
    pthread_cond_init(&pool->done, NULL);
    if (n_threads > 1) {
        pool->threads = qb_calloc_array((size_t)n_threads - 1, sizeof(pthread_t));
        if (!pool->threads)
            goto fail;
    }
    for (int i = 1; i < n_threads; i++) {
        struct worker_arg *arg = malloc(sizeof *arg);
        if (!arg)
            goto fail_started;
        arg->pool = pool;
        arg->id = i;
        if (pthread_create(&pool->threads[i - 1], NULL, worker_main, arg) != 0) {
            free(arg);
            goto fail_started;
        }
        continue;
    fail_started:
        pool->n_threads = i;
        qb_pool_free(pool);
        return NULL;
    }
    return pool;
fail:
    free(pool->threads);
    free(pool);
    return NULL;
}

void qb_pool_free(struct qb_pool *pool)
{
    if (!pool)
        return;
    pthread_mutex_lock(&pool->mu);
    pool->stop = 1;
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->mu);
    for (int i = 1; i < pool->n_threads; i++)
        pthread_join(pool->threads[i - 1], NULL);
    pthread_mutex_destroy(&pool->mu);
    pthread_cond_destroy(&pool->wake);
    pthread_cond_destroy(&pool->done);
    free(pool->threads);
    free(pool);
}

int qb_pool_threads(const struct qb_pool *pool)
{
    return pool ? pool->n_threads : 1;
}

void qb_pool_for(struct qb_pool *pool, int64_t n, int64_t grain, qb_pool_fn fn, void *ctx)
{
    if (n <= 0)
        return;
    if (grain < 1)
        grain = 1;
    int64_t max_slices = (n + grain - 1) / grain;
    int n_slices = pool ? pool->n_threads : 1;
    if (max_slices < n_slices)
        n_slices = (int)max_slices;
    if (!pool || n_slices <= 1) {
        fn(ctx, 0, n);
        return;
    }
    pthread_mutex_lock(&pool->mu);
    pool->fn = fn;
    pool->ctx = ctx;
    pool->n = n;
    pool->n_slices = n_slices;
    pool->pending = pool->n_threads - 1;
    pool->generation++;
    pthread_cond_broadcast(&pool->wake);
    pthread_mutex_unlock(&pool->mu);
    run_slice(pool, 0);
    pthread_mutex_lock(&pool->mu);
    while (pool->pending > 0)
        pthread_cond_wait(&pool->done, &pool->mu);
    pthread_mutex_unlock(&pool->mu);
}
