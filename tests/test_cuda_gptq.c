/*
 * test_cuda_gptq.c - GPTQ calibration on the GPU (kernels/qb_cuda_calib.h,
 * core/quant_pipeline_gpu.c) against the CPU reference (core/gptq.c,
 * core/quant_pipeline.c), each comparison with a named tolerance below. The GPU
 * suites skip cleanly without a GPU or without CUDA; the backend-selection
 * suites run everywhere.
 *
 * Why tolerances and not bit-exactness: given the same Hessian and weights the
 * device runs the same f32 operations per column (no FMA contraction), but the
 * Cholesky factor (cuSOLVER vs the CPU's loops) and the lazy-update GEMM sum in
 * another order, so a weight sitting on a rounding tie can take the other code,
 * and that row's later error feedback then differs. The calibration forward
 * feeds bf16 linear inputs (as the CUDA engine) where the CPU engine keeps f32.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dtype.h"
#include "engine.h"
#include "eval.h"
#include "fileutil.h"
#include "kernels/qb_cuda_calib.h"
#include "qb_test_util.h"
#include "quant_pipeline.h"

/* Hessians of the same bf16 inputs: f32 Gram matrices summed in another order on
 * the tensor cores (max |difference| over max |H|; as TOL_GEMM of test_cuda_kernels). */
#define TOL_HESSIAN 1e-4
/* Fraction of codes that differ between GPU and CPU GPTQ on the same Hessian
 * and weights (ties flip; a flip changes the rest of its row). */
#define TOL_CODE_FLIPS 0.02
/* Relative difference of the reconstruction errors ||(W - W^) X^T||^2 / n of the
 * GPU and CPU results on the same Hessian and weights. */
#define TOL_RECON_SAME_H 0.01
/* The device's f64 reconstruction error vs qb_recon_error of the same weights. */
#define TOL_ERR_F64 1e-9
/* One demo-model layer: output rel L2 and the q-input Hessian rel Frobenius,
 * bf16 linear inputs on the GPU vs f32 on the CPU. */
#define TOL_LAYER_X 1e-2
#define TOL_LAYER_HESSIAN 1e-2
/* GPTQ of that layer's linears, each path on its own Hessian: reconstruction
 * errors (both measured with the CPU Hessian) within 5 %. */
#define TOL_RECON_OWN_H 0.05
/* Whole demo model: per-layer summed reconstruction errors within 10 %, and the
 * perplexities of the GPU- and CPU-calibrated models (same eval backend) apart by
 * at most half the CPU result's increase over bf16 (RTN's increase is about twice
 * GPTQ's here, so a GPU path of RTN quality fails). */
#define TOL_RECON_PIPE 0.10
#define TOL_PPL_INCREASE_SHARE 0.5

static struct qb_model *load_demo_model(void)
{
    struct qb_model *m = NULL;
    struct qb_err err = {0};
    cr_assert_eq(qb_model_load(QB_DEMO_MODEL, NULL, &m, &err), QB_OK, "%s", err.msg);
    return m;
}

/* ---- backend selection (every machine) ------------------------------------------------- */

static enum qb_status run_gptq_group(struct qb_model *m, enum qb_backend be, int samples,
                                     int seqlen, int group, struct qb_qpipe_report *rep,
                                     struct qb_err *err)
{
    struct qb_qpipe_opts o = {.calib = {.path = QB_CALIB_TEXT, .n_samples = samples,
                                        .seqlen = seqlen}};
    o.backend = be;
    cr_assert_eq(qb_qpipe_opts_from_scheme("gptq-int4", group, &o, err), QB_OK);
    return qb_qpipe_run(m, &o, NULL, rep, err);
}

static enum qb_status run_gptq(struct qb_model *m, enum qb_backend be, int samples, int seqlen,
                               struct qb_qpipe_report *rep, struct qb_err *err)
{
    return run_gptq_group(m, be, samples, seqlen, 0, rep, err);
}

Test(gptq_backend, cpu_backend_calibrates_on_the_cpu)
{
    struct qb_model *m = load_demo_model();
    struct qb_qpipe_report rep;
    struct qb_err err = {0};
    cr_assert_eq(run_gptq(m, QB_BACKEND_CPU, 2, 64, &rep, &err), QB_OK, "%s", err.msg);
    cr_assert_str_eq(rep.device, "cpu");
    cr_assert_eq(rep.peak_gpu_bytes, 0);
    cr_assert_eq(m->scheme.method, QB_METHOD_GPTQ);
    qb_qpipe_report_free(&rep);
    qb_model_free(m);
}

Test(gptq_backend, cuda_backend_without_a_gpu_is_an_error)
{
    if (qb_cuda_available())
        cr_skip_test("a GPU is present");
    struct qb_model *m = load_demo_model();
    struct qb_qpipe_report rep;
    struct qb_err err = {0};
    cr_assert_eq(run_gptq(m, QB_BACKEND_CUDA, 2, 64, &rep, &err), QB_ERR_NO_DEVICE);
    cr_assert(strstr(err.msg, "--backend cpu"), "%s", err.msg);
    cr_assert_eq(m->scheme.method, QB_METHOD_NONE, "the model is left unquantized");
    qb_model_free(m);
}

Test(gptq_backend, auto_without_a_gpu_uses_the_cpu)
{
    if (qb_cuda_available())
        cr_skip_test("a GPU is present");
    struct qb_model *m = load_demo_model();
    struct qb_qpipe_report rep;
    struct qb_err err = {0};
    cr_assert_eq(run_gptq(m, QB_BACKEND_AUTO, 2, 64, &rep, &err), QB_OK, "%s", err.msg);
    cr_assert_str_eq(rep.device, "cpu");
    qb_qpipe_report_free(&rep);
    qb_model_free(m);
}

Test(gptq_backend, quantize_rejects_a_bad_backend)
{
    const char *argv[] = {QB_BINARY, "quantize", QB_DEMO_MODEL, "--scheme", "gptq-int4",
                          "--calib", QB_CALIB_TEXT, "--backend", "tpu", "--out", "/tmp/qb-never",
                          NULL};
    struct qbt_run r;
    if (access(QB_BINARY, X_OK) != 0) /* test binaries shipped without the build tree */
        cr_skip_test("no quantbench binary at %s", QB_BINARY);
    qbt_run(argv, NULL, 60, &r);
    cr_assert_eq(r.exit_code, 2, "exit %d, stderr: %s", r.exit_code, r.err);
    cr_assert(strstr(r.err, "--backend"), "%s", r.err);
    qbt_run_free(&r);
}

#ifdef QB_HAVE_CUDA



static struct qb_err err;

/* Correlated inputs (qbt_correlated_inputs), rounded to bf16. */
static uint16_t *make_inputs_bf16(int64_t n, int64_t d, uint64_t seed, float **as_f32)
{
    uint16_t *x = malloc(sizeof(uint16_t) * n * d);
    float *f = qbt_correlated_inputs(n, d, seed);
    cr_assert(x && f);
    for (int64_t i = 0; i < n * d; i++) {
        x[i] = qb_f32_to_bf16(f[i]);
        f[i] = qb_bf16_to_f32(x[i]);
    }
    *as_f32 = f;
    return x;
}

static double *cpu_hessian(const float *x, int64_t n, int64_t d, int64_t per_call)
{
    struct qb_hessian h;
    cr_assert_eq(qb_hessian_init(&h, d, NULL), QB_OK);
    for (int64_t t0 = 0; t0 < n; t0 += per_call)
        cr_assert_eq(qb_hessian_add(&h, x + t0 * d, QB_MIN(per_call, n - t0), NULL, NULL),
                     QB_OK);
    double *H = malloc(sizeof(double) * d * d);
    cr_assert(H);
    qb_hessian_finish(&h, H);
    qb_hessian_free(&h);
    return H;
}

static float *rand_weights(int64_t rows, int64_t cols, uint64_t seed)
{
    uint64_t s = seed;
    float *w = malloc(sizeof(float) * rows * cols);
    cr_assert(w);
    for (int64_t i = 0; i < rows * cols; i++)
        w[i] = (float)(0.02 * qbt_nrand(&s));
    return w;
}

Test(cuda_gptq, hessian_matches_cpu)
{
    QBT_REQUIRE_GPU();
    enum { N = 300, D = 256, PER_CALL = 150 };
    float *xf;
    uint16_t *x = make_inputs_bf16(N, D, 11, &xf);
    double *ref = cpu_hessian(xf, N, D, PER_CALL), *got = malloc(sizeof(double) * D * D);
    struct qb_cuda_calib *c = NULL;
    QBT_OK(qb_cuda_calib_create(NULL, 0, 0, &c, &err));
    QBT_OK(qb_cuda_hessian_begin(c, D, &err));
    QBT_OK(qb_cuda_hessian_add_bf16(c, x, PER_CALL, &err));
    QBT_OK(qb_cuda_hessian_add_bf16(c, x + (size_t)PER_CALL * D, N - PER_CALL, &err));
    QBT_OK(qb_cuda_hessian_finish(c, &err));
    QBT_OK(qb_cuda_hessian_get(c, got, &err));
    double worst = 0, top = 0;
    for (int i = 0; i < D * D; i++) {
        worst = fmax(worst, fabs(got[i] - ref[i]));
        top = fmax(top, fabs(ref[i]));
    }
    cr_assert_lt(worst / top, TOL_HESSIAN, "Hessian differs by %g of its largest entry",
                 worst / top);
    qb_cuda_calib_free(c);
    free(x), free(xf), free(ref), free(got);
}

struct gptq_case {
    const char *name;
    int64_t rows, cols;
    struct qb_gptq_opts o;
    int dead;           /* zero some input channels (dead columns) */
    int64_t n_tokens;   /* fewer than cols: rank-deficient Hessian, damping makes it PD */
};

static void compare_gptq(const struct gptq_case *k)
{
    int64_t rows = k->rows, cols = k->cols, n = rows * cols;
    float *xf;
    uint16_t *xb = make_inputs_bf16(k->n_tokens, cols, 5 + (uint64_t)cols, &xf);
    if (k->dead)
        for (int64_t t = 0; t < k->n_tokens; t++)
            for (int64_t j = 3; j < cols; j += 41)
                xf[t * cols + j] = 0;
    double *h = cpu_hessian(xf, k->n_tokens, cols, 128);
    float *w = rand_weights(rows, cols, 99 + (uint64_t)rows);
    float *deq_cpu = malloc(sizeof(float) * n), *deq_gpu = malloc(sizeof(float) * n);
    struct qb_qresult rc, rg, rr;
    struct qb_cuda_calib *c = NULL;
    double recon_dev, rtn_dev;
    cr_assert(deq_cpu && deq_gpu);
    QBT_OK(qb_gptq_quantize(w, rows, cols, h, &k->o, NULL, &rc, deq_cpu, &err));
    QBT_OK(qb_cuda_calib_create(NULL, 0, 0, &c, &err));
    QBT_OK(qb_cuda_hessian_set(c, h, cols, &err));
    QBT_OK(qb_cuda_gptq_quantize(c, w, rows, cols, &k->o, &rg, deq_gpu, &recon_dev, &rtn_dev,
                             &err));
    int64_t flips = 0;
    for (int64_t i = 0; i < n; i++)
        flips += rc.codes[i] != rg.codes[i];
    cr_assert_leq((double)flips / n, TOL_CODE_FLIPS, "%s: %lld of %lld codes differ", k->name,
                  (long long)flips, (long long)n);
    cr_assert_eq(!rc.g_idx, !rg.g_idx, "%s: g_idx presence", k->name);
    for (int64_t j = 0; rc.g_idx && j < cols; j++)
        cr_assert_eq(rc.g_idx[j], rg.g_idx[j], "%s: g_idx[%lld]", k->name, (long long)j);
    float *check = malloc(sizeof(float) * n); /* deq is exactly the result's dequantization */
    qb_qresult_dequant(&rg, check);
    cr_assert(memcmp(check, deq_gpu, sizeof(float) * n) == 0, "%s: deq is not the result's "
              "dequantization", k->name);
    double e_cpu = qb_recon_error(w, deq_cpu, rows, cols, h, NULL);
    double e_gpu = qb_recon_error(w, deq_gpu, rows, cols, h, NULL);
    cr_assert_leq(fabs(e_gpu - e_cpu) / e_cpu, TOL_RECON_SAME_H, "%s: recon err gpu %g cpu %g",
                  k->name, e_gpu, e_cpu);
    cr_assert_leq(fabs(recon_dev - e_gpu) / e_gpu, TOL_ERR_F64, "%s: device recon %g vs %g",
                  k->name, recon_dev, e_gpu);
    QBT_OK(qb_rtn_group_quantize(w, rows, cols, k->o.bits, k->o.group, k->o.sym, &rr, check, &err));
    double e_rtn = qb_recon_error(w, check, rows, cols, h, NULL);
    cr_assert_leq(fabs(rtn_dev - e_rtn) / e_rtn, TOL_ERR_F64, "%s: device RTN recon %g vs %g",
                  k->name, rtn_dev, e_rtn);
    cr_assert_lt(e_gpu, e_rtn, "%s: GPU GPTQ %g is not below RTN %g", k->name, e_gpu, e_rtn);
    fprintf(stderr, "%s: %lld/%lld codes differ, recon gpu %.6g cpu %.6g rtn %.6g\n", k->name,
            (long long)flips, (long long)n, e_gpu, e_cpu, e_rtn);
    qb_qresult_free(&rc), qb_qresult_free(&rg), qb_qresult_free(&rr);
    qb_cuda_calib_free(c);
    free(xb), free(xf), free(h), free(w), free(deq_cpu), free(deq_gpu), free(check);
}

Test(cuda_gptq, random_linears_match_cpu)
{
    QBT_REQUIRE_GPU();
    static const struct gptq_case cases[] = {
        {"int4 g128 asym", 96, 512, {4, 128, 0, 0, 0, 0.01}, 0, 2048},
        {"int4 g32 sym, partial block", 64, 320, {4, 32, 1, 0, 0, 0.01}, 0, 1024},
        {"int3 g64 act-order, dead columns", 80, 384, {3, 64, 0, 1, 0, 0.01}, 1, 1024},
        {"int8 g128 act-order static", 48, 256, {8, 128, 0, 1, 1, 0.01}, 0, 1024},
        {"int2 g256 (groups span blocks)", 40, 512, {2, 256, 0, 0, 0, 0.01}, 0, 2048},
        {"int4 g128 rank-deficient", 64, 512, {4, 128, 0, 0, 0, 0.01}, 0, 200},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++)
        compare_gptq(&cases[i]);
}

static void assert_same_result(const struct qb_qresult *a, const struct qb_qresult *b,
                               const char *what)
{
    size_t n = (size_t)a->rows * a->cols, ng = (size_t)a->rows * (a->cols / a->group);
    cr_assert(memcmp(a->codes, b->codes, n) == 0, "%s: codes differ", what);
    cr_assert(memcmp(a->scales, b->scales, ng * sizeof(float)) == 0, "%s: scales differ", what);
    cr_assert(memcmp(a->zeros, b->zeros, ng) == 0, "%s: zeros differ", what);
}

/* Same inputs, same bytes; the cached factor is reused only for the same options. */
Test(cuda_gptq, deterministic_and_factor_cache_follows_options)
{
    QBT_REQUIRE_GPU();
    enum { R = 64, D = 384, N = 1024 };
    float *xf;
    uint16_t *xb = make_inputs_bf16(N, D, 21, &xf);
    double *h = cpu_hessian(xf, N, D, 256);
    float *w = rand_weights(R, D, 22);
    struct qb_gptq_opts plain = {4, 128, 0, 0, 0, 0.01}, act = {4, 128, 0, 1, 0, 0.01};
    struct qb_qresult r1, r2, r3, r4;
    struct qb_cuda_calib *c = NULL, *fresh = NULL;
    QBT_OK(qb_cuda_calib_create(NULL, 0, 0, &c, &err));
    QBT_OK(qb_cuda_hessian_set(c, h, D, &err));
    QBT_OK(qb_cuda_gptq_quantize(c, w, R, D, &plain, &r1, NULL, NULL, NULL, &err));
    QBT_OK(qb_cuda_gptq_quantize(c, w, R, D, &act, &r2, NULL, NULL, NULL, &err));
    QBT_OK(qb_cuda_gptq_quantize(c, w, R, D, &plain, &r3, NULL, NULL, NULL, &err));
    assert_same_result(&r1, &r3, "plain twice");
    cr_assert_null(r1.g_idx);
    cr_assert_not_null(r2.g_idx, "act-order after plain: a new factor with its permutation");
    QBT_OK(qb_cuda_calib_create(NULL, 0, 0, &fresh, &err));
    QBT_OK(qb_cuda_hessian_set(fresh, h, D, &err));
    QBT_OK(qb_cuda_gptq_quantize(fresh, w, R, D, &act, &r4, NULL, NULL, NULL, &err));
    assert_same_result(&r2, &r4, "act-order, cached context vs fresh");
    cr_assert(memcmp(r2.g_idx, r4.g_idx, D * sizeof(int32_t)) == 0);
    qb_qresult_free(&r1), qb_qresult_free(&r2), qb_qresult_free(&r3), qb_qresult_free(&r4);
    qb_cuda_calib_free(c);
    qb_cuda_calib_free(fresh);
    free(xb), free(xf), free(h), free(w);
}

/* Groups of 8 columns are not a packed layout on either backend (the packed
 * integer groups are 32, 64 or 128 wide, core/quant.c): cuda refuses up front,
 * auto ends in the CPU path's own refusal naming the group; the model is left
 * unquantized both times. (The H100 run showed auto cannot fall back here: the
 * CPU packer refuses group 8 too.) */
Test(cuda_gptq, group_no_backend_can_pack_is_refused)
{
    QBT_REQUIRE_GPU();
    struct qb_model *m = load_demo_model();
    struct qb_qpipe_report rep;
    cr_assert_eq(run_gptq_group(m, QB_BACKEND_CUDA, 2, 64, 8, &rep, &err), QB_ERR_UNSUPPORTED);
    cr_assert(strstr(err.msg, "--backend cpu"), "%s", err.msg);
    cr_assert_eq(m->scheme.method, QB_METHOD_NONE);
    cr_assert_eq(run_gptq_group(m, QB_BACKEND_AUTO, 2, 64, 8, &rep, &err), QB_ERR_RANGE);
    cr_assert(strstr(err.msg, "group 8"), "%s", err.msg);
    cr_assert_eq(m->scheme.method, QB_METHOD_NONE);
    qb_model_free(m);
}

Test(cuda_gptq, indefinite_hessian_is_a_numeric_error)
{
    QBT_REQUIRE_GPU();
    enum { D = 64, R = 8 };
    double *h = calloc(D * D, sizeof(double));
    float *w = rand_weights(R, D, 3);
    struct qb_gptq_opts o = {4, 32, 0, 0, 0, 0.01};
    struct qb_qresult r;
    struct qb_cuda_calib *c = NULL;
    for (int i = 0; i < D; i++)
        h[i * D + i] = -1.0;
    cr_assert_eq(qb_gptq_quantize(w, R, D, h, &o, NULL, &r, NULL, &err), QB_ERR_NUMERIC);
    QBT_OK(qb_cuda_calib_create(NULL, 0, 0, &c, &err));
    QBT_OK(qb_cuda_hessian_set(c, h, D, &err));
    cr_assert_eq(qb_cuda_gptq_quantize(c, w, R, D, &o, &r, NULL, NULL, NULL, &err),
                 QB_ERR_NUMERIC);
    cr_assert(strstr(err.msg, "positive definite"), "%s", err.msg);
    cr_assert_null(r.codes, "nothing is left allocated");
    qb_cuda_calib_free(c);
    free(h), free(w);
}

struct cpu_tap {
    struct qb_hessian *h;
    enum qb_linear_slot slot;
};

static void cpu_hook(void *ctx, int layer, enum qb_linear_slot slot, const float *x, int64_t n)
{
    struct cpu_tap *t = ctx;
    (void)layer;
    if (slot == t->slot)
        cr_assert_eq(qb_hessian_add(t->h, x, n, NULL, NULL), QB_OK);
}

Test(cuda_gptq, demo_layer_forward_hessian_and_gptq_match_cpu, .timeout = 600)
{
    QBT_REQUIRE_GPU();
    enum { S = 2, L = 256 };
    struct qb_model *m = load_demo_model();
    struct qb_calib_opts co = {.path = QB_CALIB_TEXT, .n_samples = S, .seqlen = L};
    struct qb_calib_data cd;
    struct qb_engine *e = NULL;
    struct qb_engine_opts eo = {.max_ctx = L};
    struct qb_cuda_calib *c = NULL;
    int64_t H = m->cfg.hidden;
    size_t elems = (size_t)L * H;
    float *xc = malloc(sizeof(float) * S * elems), *xg = malloc(sizeof(float) * elems);
    float *x0 = malloc(sizeof(float) * elems);
    double *hg = malloc(sizeof(double) * H * H), *hc = malloc(sizeof(double) * H * H);
    struct qb_hessian hs;
    struct cpu_tap tap = {&hs, QB_LIN_Q};
    QBT_OK(qb_calib_load(m, &co, &cd, &err));
    QBT_OK(qb_engine_create_cpu(m, &eo, &e, &err));
    QBT_OK(qb_cuda_calib_create(m, S, L, &c, &err));
    QBT_OK(qb_hessian_init(&hs, H, &err));
    QBT_OK(qb_cuda_calib_load_layer(c, 0, &err));
    QBT_OK(qb_cuda_hessian_begin(c, H, &err));
    for (int s = 0; s < S; s++) {
        float *x = xc + s * elems;
        QBT_OK(qb_cpu_embed(e, cd.ids + s * L, L, x, &err));
        QBT_OK(qb_cuda_calib_embed(c, s, cd.ids + s * L, &err));
        QBT_OK(qb_cuda_calib_get_x(c, s, x0, &err));
        cr_assert(memcmp(x, x0, sizeof(float) * elems) == 0, "embedding of sample %d", s);
        QBT_OK(qb_cpu_layer_forward(e, 0, x, L, cpu_hook, &tap, &err));
        QBT_OK(qb_cuda_calib_forward(c, s, QB_LIN_Q, 0, &err));
        QBT_OK(qb_cuda_calib_get_x(c, s, xg, &err));
        cr_assert(memcmp(x0, xg, sizeof(float) * elems) == 0, "a capture leaves x alone");
        QBT_OK(qb_cuda_calib_forward(c, s, -1, 1, &err));
        QBT_OK(qb_cuda_calib_get_x(c, s, xg, &err));
        double d = qbt_rel_l2(xg, x, elems);
        cr_assert_lt(d, TOL_LAYER_X, "layer 0 output of sample %d: rel L2 %g", s, d);
    }
    QBT_OK(qb_cuda_hessian_finish(c, &err));
    QBT_OK(qb_cuda_hessian_get(c, hg, &err));
    qb_hessian_finish(&hs, hc);
    double num = 0, den = 0;
    for (int64_t i = 0; i < H * H; i++) {
        num += (hg[i] - hc[i]) * (hg[i] - hc[i]);
        den += hc[i] * hc[i];
    }
    cr_assert_lt(sqrt(num / den), TOL_LAYER_HESSIAN, "q-input Hessian rel Frobenius %g",
                 sqrt(num / den));
    for (int s = QB_LIN_Q; s <= QB_LIN_V; s++) { /* q, k, v: one Hessian, one factor */
        const struct qb_linear *lin = &m->layers[0].lin[s];
        size_t n = (size_t)lin->rows * lin->cols;
        float *w = malloc(sizeof(float) * n), *dc = malloc(sizeof(float) * n);
        float *dg = malloc(sizeof(float) * n);
        struct qb_gptq_opts o = {4, 128, 0, 0, 0, 0.01};
        struct qb_qresult rc, rg;
        qb_model_linear_to_f32(lin, w);
        QBT_OK(qb_gptq_quantize(w, lin->rows, lin->cols, hc, &o, NULL, &rc, dc, &err));
        QBT_OK(qb_cuda_gptq_quantize(c, w, lin->rows, lin->cols, &o, &rg, dg, NULL, NULL, &err));
        double ec = qb_recon_error(w, dc, lin->rows, lin->cols, hc, NULL);
        double eg = qb_recon_error(w, dg, lin->rows, lin->cols, hc, NULL);
        cr_assert_leq(fabs(eg - ec) / ec, TOL_RECON_OWN_H, "layer 0 %s: recon gpu %g cpu %g",
                      qb_linear_slot_name(s), eg, ec);
        qb_qresult_free(&rc), qb_qresult_free(&rg);
        free(w), free(dc), free(dg);
    }
    qb_hessian_free(&hs);
    qb_cuda_calib_free(c);
    qb_engine_free(e);
    qb_calib_free(&cd);
    qb_model_free(m);
    free(xc), free(xg), free(x0), free(hg), free(hc);
}

static double eval_ppl(const struct qb_model *m, const int32_t *ids, size_t n)
{
    struct qb_eval_opts eo = {.ctx = 512, .backend = QB_BACKEND_CUDA};
    struct qb_eval_result r;
    QBT_OK(qb_eval_run(m, ids, n, &eo, NULL, NULL, NULL, &r, &err));
    return r.ppl;
}

Test(cuda_gptq, demo_model_gptq_on_gpu_matches_cpu, .timeout = 1800)
{
    QBT_REQUIRE_GPU();
    enum { S = 32, L = 512 };
    struct qb_model *mg = load_demo_model(), *mc = load_demo_model();
    struct qb_qpipe_report rg, rc;
    char *text;
    size_t len, n_ids;
    int32_t *ids;
    double t0 = qb_now_seconds();
    QBT_OK(run_gptq(mg, QB_BACKEND_CUDA, S, L, &rg, &err));
    double t_gpu = qb_now_seconds() - t0;
    t0 = qb_now_seconds();
    QBT_OK(run_gptq(mc, QB_BACKEND_CPU, S, L, &rc, &err));
    double t_cpu = qb_now_seconds() - t0;
    cr_assert(strncmp(rg.device, "cuda (", 6) == 0, "device %s", rg.device);
    cr_assert_str_eq(rc.device, "cpu");
    cr_assert_gt(rg.peak_gpu_bytes, 0);
    cr_assert_eq(rg.packed_bytes, rc.packed_bytes);
    for (int i = 0; i < mg->cfg.n_layers; i++) {
        double eg = 0, ec = 0;
        for (int s = 0; s < QB_LIN_COUNT; s++) {
            const struct qb_qpipe_stat *g = &rg.stats[i][s];
            cr_expect_lt(g->err, g->rtn_err, "GPU layer %d %s: %g >= RTN %g", i,
                         qb_linear_slot_name(s), g->err, g->rtn_err);
            eg += g->err;
            ec += rc.stats[i][s].err;
        }
        cr_expect_leq(fabs(eg - ec) / ec, TOL_RECON_PIPE, "layer %d recon err gpu %g cpu %g",
                      i, eg, ec);
        fprintf(stderr, "layer %d recon err gpu %.5g cpu %.5g\n", i, eg, ec);
    }
    QBT_OK(qb_file_read_all(QB_EVAL_TEXT, 1 << 26, &text, &len, &err));
    QBT_OK(qb_eval_tokenize(mg, text, len, &ids, &n_ids, &err));
    struct qb_model *m0 = load_demo_model();
    double p0 = eval_ppl(m0, ids, n_ids), pg = eval_ppl(mg, ids, n_ids);
    double pc = eval_ppl(mc, ids, n_ids);
    qb_model_free(m0);
    fprintf(stderr, "gptq-int4 %dx%d: bf16 ppl %.4f; GPU-calibrated ppl %.4f (%.1f s, %s, peak "
            "GPU %.2f GiB); CPU-calibrated ppl %.4f (%.1f s)\n", S, L, p0, pg, t_gpu, rg.device,
            rg.peak_gpu_bytes / 1073741824.0, pc, t_cpu);
    cr_assert_gt(pc, p0, "GPTQ int4 must cost perplexity for the comparison to mean anything");
    cr_assert_leq(fabs(pg - pc), TOL_PPL_INCREASE_SHARE * (pc - p0),
                  "ppl gpu %.4f cpu %.4f bf16 %.4f", pg, pc, p0);
    free(text), free(ids);
    qb_qpipe_report_free(&rg), qb_qpipe_report_free(&rc);
    qb_model_free(mg), qb_model_free(mc);
}

#else

Test(cuda_gptq, skipped_without_cuda)
{
    cr_skip_test("built without CUDA (-DQUANTBENCH_CUDA=OFF)");
}

#endif /* QB_HAVE_CUDA */
