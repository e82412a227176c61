/*
 * bench.c - the pp/tg speed measurement and decode roofline of bench.h: one
 * engine over a model already in its scheme, warm-up plus timed repetitions,
 * then the bytes a decode step reads and the measured copy bandwidth. The CLI
 * (tui/cli_bench.c), compare and the dashboard call it; the scheme is applied
 * by the caller.
 */
#include "bench.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "kernels/qb_cuda.h"
#include "threadpool.h"

#define HOST_BW_BYTES ((size_t)256 << 20)
#define HOST_BW_REPS 5

static struct qb_bench_stat stat_of(const double *v, int n)
{
    struct qb_bench_stat s = {0, 0};
    for (int i = 0; i < n; i++)
        s.mean += v[i] / n;
    for (int i = 0; i < n && n > 1; i++)
        s.stddev += (v[i] - s.mean) * (v[i] - s.mean) / (n - 1);
    s.stddev = sqrt(s.stddev);
    return s;
}

/* Seconds for one pp test (n tokens, logits of the last). */
static enum qb_status time_pp(struct qb_engine *e, const int32_t *ids, int n, float *logits,
                              double *secs, struct qb_err *err)
{
    double t0;
    enum qb_status st;
    qb_engine_reset(e);
    t0 = qb_now_seconds();
    st = qb_engine_forward(e, ids, n, n - 1, logits, err);
    *secs = qb_now_seconds() - t0;
    return st;
}

/* Seconds for one tg test (n single-token calls with logits). */
static enum qb_status time_tg(struct qb_engine *e, const int32_t *ids, int n, float *logits,
                              double *secs, struct qb_err *err)
{
    enum qb_status st = QB_OK;
    double t0;
    qb_engine_reset(e);
    t0 = qb_now_seconds();
    for (int i = 0; i < n && !st; i++)
        st = qb_engine_forward(e, ids + i, 1, 0, logits, err);
    *secs = qb_now_seconds() - t0;
    return st;
}

/* Warm-up then r timed runs of one test; tokens/s statistics into *out. */
static enum qb_status run_test(struct qb_engine *e, int is_pp, const int32_t *ids, int n, int r,
                               float *logits, struct qb_progress *progress,
                               struct qb_bench_stat *out, struct qb_err *err)
{
    enum qb_status st;
    double secs, *tps = qb_malloc_array((size_t)r, sizeof *tps);
    if (!tps)
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory for timings");
    qb_progress_stage(progress, is_pp ? "prefill (pp) warm-up" : "decode (tg) warm-up");
    st = is_pp ? time_pp(e, ids, n, logits, &secs, err) : time_tg(e, ids, n, logits, &secs, err);
    qb_progress_stage(progress, is_pp ? "prefill (pp)" : "decode (tg)");
    for (int i = 0; i < r && !st; i++) {
        if (qb_progress_cancelled(progress)) {
            st = qb_err_set(err, QB_ERR_CANCELLED, "bench cancelled");
            break;
        }
        st = is_pp ? time_pp(e, ids, n, logits, &secs, err)
                   : time_tg(e, ids, n, logits, &secs, err);
        tps[i] = n / secs;
        qb_progress_update(progress, (double)(i + 1) / r, i + 1, r, "runs");
        qb_progress_metric(progress, "t/s", tps[i]);
    }
    if (!st)
        *out = stat_of(tps, r);
    free(tps);
    return st;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Host memcpy bandwidth (read + write), median of HOST_BW_REPS, GB/s; 0 on OOM. */
static double host_bandwidth(void)
{
    char *src = malloc(HOST_BW_BYTES), *dst = malloc(HOST_BW_BYTES);
    double t[HOST_BW_REPS], gbs = 0;
    if (src && dst) {
        memset(src, 1, HOST_BW_BYTES);
        memcpy(dst, src, HOST_BW_BYTES);
        for (int i = 0; i < HOST_BW_REPS; i++) {
            double t0 = qb_now_seconds();
            memcpy(dst, src, HOST_BW_BYTES);
            t[i] = qb_now_seconds() - t0;
            src[i] = dst[HOST_BW_BYTES - 1 - i]; /* keep the copies observable */
        }
        qsort(t, HOST_BW_REPS, sizeof t[0], cmp_double);
        gbs = 2.0 * HOST_BW_BYTES / t[HOST_BW_REPS / 2] / 1e9;
    }
    free(src);
    free(dst);
    return gbs;
}

/* Bytes a decode step reads: every linear, norms, one embedding row, KV. */
static void decode_bytes(const struct qb_model *m, int n_tg, struct qb_bench_result *res)
{
    const struct qb_config *c = &m->cfg;
    double norms = (double)c->hidden * 4 * (2.0 * c->n_layers + 1);
    double emb_row = (double)m->embed.data_bytes / (double)m->embed.rows;
    double kv_per_pos = 2.0 * c->n_layers * c->n_kv_heads * c->head_dim * 2; /* f16 K and V */
    res->decode_weight_bytes = (double)qb_model_decoder_bytes(m) + (double)m->lm_head.data_bytes +
                               norms + emb_row;
    res->kv_bytes = kv_per_pos * (n_tg + 1) / 2.0;
}

static enum qb_status measure_device(enum qb_backend be, struct qb_bench_result *res,
                                     struct qb_err *err)
{
    struct qb_cuda_device d;
    enum qb_status st;
    if (be == QB_BACKEND_CPU) {
        snprintf(res->device, sizeof res->device, "CPU (%d threads)", qb_cpu_count());
        res->bandwidth_gbs = host_bandwidth();
        return QB_OK;
    }
    st = qb_cuda_device_query(&d, err);
    if (!st)
        st = qb_cuda_measure_bandwidth(&res->bandwidth_gbs, err);
    if (st)
        return st;
    snprintf(res->device, sizeof res->device, "%.200s (sm_%d%d, %d SMs)", d.name, d.cc_major,
             d.cc_minor, d.sm_count);
    res->gpu_used_bytes = d.mem_total - d.mem_free;
    return QB_OK;
}

static enum qb_status check_opts(const struct qb_bench_opts *o, struct qb_err *err)
{
    if (o->p < 0 || o->p > QB_BENCH_MAX_TOKENS || o->n < 0 || o->n > QB_BENCH_MAX_TOKENS ||
        o->p + o->n == 0 || o->r < 1)
        return qb_err_set(err, QB_ERR_RANGE, "bench: p=%d n=%d r=%d (p and n 0..%d, not both "
                          "0; r >= 1)", o->p, o->n, o->r, QB_BENCH_MAX_TOKENS);
    return QB_OK;
}

enum qb_status qb_bench_run(const struct qb_model *m, const struct qb_bench_opts *o,
                            struct qb_progress *progress, struct qb_bench_result *res,
                            struct qb_err *err)
{
    enum qb_status st;
    int max_tok = QB_MAX(o->p, o->n);
    struct qb_engine_opts eo = {.max_ctx = max_tok, .n_threads = o->threads};
    struct qb_engine *e = NULL;
    int32_t *ids = NULL;
    float *logits = NULL;
    uint64_t rs = 0x853c49e6748fea9bull;
    memset(res, 0, sizeof *res);
    res->backend = qb_backend_resolve(o->backend);
    st = check_opts(o, err);
    if (st)
        goto out;
    ids = qb_malloc_array((size_t)max_tok, sizeof *ids);
    logits = qb_malloc_array((size_t)m->cfg.vocab, sizeof *logits);
    if (!ids || !logits) {
        st = qb_err_set(err, QB_ERR_NOMEM, "out of memory for bench buffers");
        goto out;
    }
    for (int i = 0; i < max_tok; i++) { /* fixed pseudo-random ids */
        rs = rs * 6364136223846793005ull + 1442695040888963407ull;
        ids[i] = (int32_t)((rs >> 33) % (uint64_t)m->cfg.vocab);
    }
    st = qb_engine_create(m, o->backend, &eo, progress, &res->backend, &e, err);
    if (!st && o->p > 0)
        st = run_test(e, 1, ids, o->p, o->r, logits, progress, &res->pp, err);
    if (!st && o->n > 0)
        st = run_test(e, 0, ids, o->n, o->r, logits, progress, &res->tg, err);
    if (!st) { /* with the engine alive: gpu_used_bytes includes the model and its cache */
        qb_progress_stage(progress, "bandwidth");
        st = measure_device(res->backend, res, err);
    }
    if (st)
        goto out;
    res->weight_bytes = qb_model_weight_bytes(m);
    decode_bytes(m, o->n, res);
    res->roofline_tps = res->bandwidth_gbs * 1e9 / (res->decode_weight_bytes + res->kv_bytes);
    res->roofline_frac = o->n > 0 && res->roofline_tps > 0 ? res->tg.mean / res->roofline_tps : 0;
out:
    qb_engine_free(e);
    free(ids);
    free(logits);
    return st;
}
