/*
 * test_cuda_engine.c - the CUDA engine end to end on the demo model
 * (tests/data/ref-llama-10m) against the CPU reference engine: logits of a
 * two-chunk prefill and of graph-replayed decode steps, perplexity within
 * 0.1 %, determinism after reset, input errors, and no device-memory leak
 * over 100 create/destroy cycles. Skips cleanly without a GPU.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "kernels/qb_cuda.h"
#include "model.h"

#define DEMO_MODEL QB_TEST_DATA "/ref-llama-10m"

#ifdef QB_HAVE_CUDA

/* Per-row logits: bf16 linear inputs and an f16 KV cache on the GPU against
 * f32 everywhere on the CPU. */
#define TOL_LOGITS_REL 3e-2
/* The end-to-end bound: |ppl_gpu / ppl_cpu - 1|. */
#define TOL_PPL_REL 1e-3
/* Device memory that may move between cycles (driver bookkeeping). */
#define LEAK_SLACK_BYTES (8u << 20)

#define N_PREFILL 600 /* > one 512-token chunk */
#define N_DECODE 24
#define N_TOTAL (N_PREFILL + N_DECODE)
#define MAX_CTX 1024

static struct qb_err err;

#define OK(expr) cr_assert_eq((expr), QB_OK, "%s: %s", #expr, err.msg)

static struct qb_model *load_demo(void)
{
    struct qb_model *m = NULL;
    struct qb_model_load_opts lo = {.no_tokenizer = 1};
    OK(qb_model_load(DEMO_MODEL, &lo, &m, &err));
    return m;
}

/* Text the model itself writes (sampling at temperature 1 with the CPU engine,
 * fixed seed): perplexity in the range real text gives, which is what the
 * issue's 0.1 % bound is about (random ids give a huge, touchier perplexity). */
static void make_ids(const struct qb_model *m, int32_t *ids, int n)
{
    struct qb_engine_opts o = {.max_ctx = n};
    struct qb_engine *cpu = NULL;
    int vocab = m->cfg.vocab;
    float *row = malloc((size_t)vocab * sizeof *row);
    uint64_t s = 0x2545f4914f6cdd1dull;
    OK(qb_engine_create_cpu(m, &o, &cpu, &err));
    ids[0] = m->cfg.bos_id >= 0 ? m->cfg.bos_id : 0;
    for (int i = 0; i + 1 < n; i++) {
        double mx = -INFINITY, sum = 0, acc = 0, u;
        int pick = vocab - 1;
        OK(qb_engine_forward(cpu, ids + i, 1, 0, row, &err));
        for (int v = 0; v < vocab; v++)
            mx = fmax(mx, row[v]);
        for (int v = 0; v < vocab; v++)
            sum += exp(row[v] - mx);
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        u = (double)(s >> 11) / 9007199254740992.0 * sum;
        for (int v = 0; v < vocab; v++) {
            acc += exp(row[v] - mx);
            if (acc >= u) {
                pick = v;
                break;
            }
        }
        ids[i + 1] = pick;
    }
    qb_engine_free(cpu);
    free(row);
}

/* Logits of every position: one prefill call, then one call per decode token. */
static float *run(struct qb_engine *e, const int32_t *ids, int vocab)
{
    float *logits = malloc((size_t)N_TOTAL * vocab * sizeof *logits);
    cr_assert(logits);
    qb_engine_reset(e);
    OK(qb_engine_forward(e, ids, N_PREFILL, 0, logits, &err));
    for (int i = N_PREFILL; i < N_TOTAL; i++)
        OK(qb_engine_forward(e, ids + i, 1, 0, logits + (size_t)i * vocab, &err));
    return logits;
}

static double row_rel_err(const float *a, const float *b, int n)
{
    double num = 0, den = 0;
    for (int i = 0; i < n; i++) {
        if (!isfinite(a[i]))
            return INFINITY;
        num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
        den += (double)b[i] * b[i];
    }
    return sqrt(num / (den > 0 ? den : 1));
}

/* Perplexity of ids[1..n) under the logits of rows 0..n-2. */
static double perplexity(const float *logits, const int32_t *ids, int n, int vocab)
{
    double nll = 0;
    for (int i = 0; i + 1 < n; i++) {
        const float *row = logits + (size_t)i * vocab;
        double mx = row[0], sum = 0;
        for (int j = 1; j < vocab; j++)
            mx = fmax(mx, row[j]);
        for (int j = 0; j < vocab; j++)
            sum += exp(row[j] - mx);
        nll += log(sum) + mx - row[ids[i + 1]];
    }
    return exp(nll / (n - 1));
}

Test(cuda_engine, logits_and_perplexity_match_cpu)
{
    if (!qb_cuda_available())
        cr_skip_test("no CUDA GPU on this machine");
    struct qb_model *m = load_demo();
    int vocab = m->cfg.vocab;
    int32_t ids[N_TOTAL];
    struct qb_engine_opts o = {.max_ctx = MAX_CTX};
    struct qb_engine *cpu = NULL, *gpu = NULL;
    make_ids(m, ids, N_TOTAL);
    OK(qb_engine_create_cpu(m, &o, &cpu, &err));
    OK(qb_engine_create_cuda(m, &o, &gpu, &err));
    float *ref = run(cpu, ids, vocab), *got = run(gpu, ids, vocab);
    double worst = 0;
    int worst_row = 0, argmax_same = 0;
    for (int i = 0; i < N_TOTAL; i++) {
        const float *g = got + (size_t)i * vocab, *r = ref + (size_t)i * vocab;
        double e = row_rel_err(g, r, vocab);
        int ag = 0, ar = 0;
        for (int j = 1; j < vocab; j++) {
            ag = g[j] > g[ag] ? j : ag;
            ar = r[j] > r[ar] ? j : ar;
        }
        argmax_same += ag == ar;
        if (e > worst)
            worst = e, worst_row = i;
    }
    double ppl_c = perplexity(ref, ids, N_TOTAL, vocab), ppl_g = perplexity(got, ids, N_TOTAL, vocab);
    cr_log_info("logits: worst row %d rel err %.3g (tol %.3g); argmax agrees on %d/%d rows",
                worst_row, worst, TOL_LOGITS_REL, argmax_same, N_TOTAL);
    cr_log_info("perplexity: cpu %.6f gpu %.6f, rel diff %.3g (tol %.3g)", ppl_c, ppl_g,
                fabs(ppl_g / ppl_c - 1), TOL_PPL_REL);
    cr_assert(worst <= TOL_LOGITS_REL, "row %d rel err %.3g", worst_row, worst);
    cr_assert(fabs(ppl_g / ppl_c - 1) <= TOL_PPL_REL, "ppl cpu %.6f gpu %.6f", ppl_c, ppl_g);
    /* reset + the same calls: bit-identical logits (graph replay included) */
    float *again = run(gpu, ids, vocab);
    cr_assert_eq(memcmp(again, got, (size_t)N_TOTAL * vocab * sizeof(float)), 0,
                 "a second run after reset differs");
    free(ref), free(got), free(again);
    qb_engine_free(cpu), qb_engine_free(gpu), qb_model_free(m);
}

Test(cuda_engine, bad_inputs_are_errors)
{
    if (!qb_cuda_available())
        cr_skip_test("no CUDA GPU on this machine");
    struct qb_model *m = load_demo();
    struct qb_engine_opts o = {.max_ctx = 16};
    struct qb_engine *gpu = NULL;
    int32_t ids[17] = {0};
    float *logits = malloc((size_t)17 * m->cfg.vocab * sizeof(float));
    struct qb_err e = {0};
    OK(qb_engine_create_cuda(m, &o, &gpu, &err));
    cr_assert_eq(qb_engine_forward(gpu, ids, 17, 0, logits, &e), QB_ERR_RANGE);
    cr_assert(strstr(e.msg, "context"), "%s", e.msg);
    ids[3] = m->cfg.vocab;
    cr_assert_eq(qb_engine_forward(gpu, ids, 4, 0, logits, &e), QB_ERR_RANGE);
    cr_assert_eq(gpu->pos, 0, "a rejected call must not advance the position");
    ids[3] = 1;
    OK(qb_engine_forward(gpu, ids, 4, 4, NULL, &err)); /* no logits wanted */
    cr_assert_eq(gpu->pos, 4);
    free(logits);
    qb_engine_free(gpu), qb_model_free(m);
}

Test(cuda_engine, no_leak_over_100_cycles)
{
    if (!qb_cuda_available())
        cr_skip_test("no CUDA GPU on this machine");
    struct qb_model *m = load_demo();
    struct qb_engine_opts o = {.max_ctx = 128};
    struct qb_cuda_device before, after;
    int32_t ids[8];
    float *logits = malloc((size_t)m->cfg.vocab * sizeof(float));
    for (int i = 0; i < 8; i++)
        ids[i] = (i * 977) % m->cfg.vocab;
    for (int cycle = 0; cycle < 101; cycle++) {
        struct qb_engine *gpu = NULL;
        if (cycle == 1) /* after the first: lazily created driver state exists */
            OK(qb_cuda_device_query(&before, &err));
        OK(qb_engine_create_cuda(m, &o, &gpu, &err));
        OK(qb_engine_forward(gpu, ids, 7, 7, NULL, &err));
        OK(qb_engine_forward(gpu, ids + 7, 1, 0, logits, &err));
        qb_engine_free(gpu);
    }
    OK(qb_cuda_device_query(&after, &err));
    cr_log_info("free device memory: %zu before, %zu after 100 cycles", before.mem_free,
                after.mem_free);
    cr_assert(after.mem_free + LEAK_SLACK_BYTES >= before.mem_free, "leaked %zu bytes",
              before.mem_free - after.mem_free);
    free(logits);
    qb_model_free(m);
}

#else /* !QB_HAVE_CUDA */

Test(cuda_engine, no_device_without_cuda)
{
    struct qb_engine *e = (struct qb_engine *)1;
    struct qb_err e2 = {0};
    cr_assert_eq(qb_engine_create_cuda(NULL, NULL, &e, &e2), QB_ERR_NO_DEVICE);
    cr_assert_null(e);
    cr_skip_test("built without CUDA (-DQUANTBENCH_CUDA=OFF)");
}

#endif
