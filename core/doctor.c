/*
 * doctor.c - driver-update sanity check (see doctor.h).
 *
 * Steps, each reported through the progress snapshot:
 *   1. identity: GPU, compute capability, driver and CUDA versions (NVML via
 *      the telemetry module, the CUDA runtime when built with it);
 *   2. memory bandwidth: device-to-device copy on the GPU, memcpy on the CPU;
 *   3. per scheme: quantize the model, self-test, perplexity + KLD against
 *      the baseline, prefill and decode speed.
 */
#include "doctor.h"

#include <math.h>
#include <stdarg.h>
#include <string.h>

#include "engine.h"
#include "fileutil.h"
#include "kernels/cuda_version.h"
#include "kernels/qb_cuda.h"
#include "kernels/qb_w4a4.h"
#include "telemetry.h"

#define DEMO_DIR QB_SOURCE_DIR "/tests/data/ref-llama-10m"
#define DEMO_TEXT QB_SOURCE_DIR "/tests/data/eval-gutenberg.txt"
#define SELFTEST_TOKENS 64
#define SPEED_PP 512
#define SPEED_TG 64
#define SPEED_PASSES 3
#define SPEED_MAX_PASSES 50
#define SPEED_MIN_S 0.5 /* seconds of timed passes per scheme */
/* GPU logits vs CPU logits on the demo model, relative L2 error */
#define SELFTEST_GPU_TOL 2e-2
/* ... for schemes that quantize activations too (W8A8, W4A4): a last-bit difference in
 * an activation flips its FP8/FP4 code and the flips compound through the layers; the
 * CPU engine alone, with inputs perturbed by 1e-6, moves its logits by 2 % (mean) and
 * the H100 measured 2.1 %, so a real fault (wrong scale or layout) is far above this */
#define SELFTEST_GPU_ACT_TOL 5e-2
/* SIMD vs plain dot of every decoder row, relative to sum |w x| */
#define SELFTEST_CPU_TOL 1e-4

static const char *const doctor_schemes[] = {
    "bf16", "fp16", "int8", "int4", "int4-sym", "nf4", "nf4-dq", "fp8", "fp8-e5m2",
    "nvfp4", "mxfp4", "nvfp4-w4a4", "mxfp4-w4a4", "fp8-w8a8",
};

static void copy_text(char *dst, size_t n, const char *src)
{
    size_t len = src ? strlen(src) : 0;
    if (len >= n)
        len = n - 1;
    if (len)
        memcpy(dst, src, len);
    dst[len] = '\0';
}

/* ---- identity and bandwidth -------------------------------------------------- */

static void read_identity(struct qb_doctor_report *r)
{
    struct qb_tel *tel = NULL;
    struct qb_err err = {0};
    if (qb_tel_create(NULL, &tel, &err) == QB_OK) {
        struct qb_tel_snapshot snap;
        qb_tel_sample_now(tel, &snap);
        if (snap.n_gpus > 0) {
            const struct qb_tel_gpu *g = &snap.gpus[0];
            if (qb_tel_has(g, QB_TEL_NAME))
                copy_text(r->gpu_name, sizeof r->gpu_name, g->name);
            if (qb_tel_has(g, QB_TEL_COMPUTE_CAP))
                snprintf(r->compute_capability, sizeof r->compute_capability, "%d.%d",
                         g->cc_major, g->cc_minor);
            if (qb_tel_has(g, QB_TEL_DRIVER_VERSION))
                copy_text(r->driver_version, sizeof r->driver_version, g->driver_version);
            if (qb_tel_has(g, QB_TEL_CUDA_DRIVER_VERSION))
                r->cuda_driver_version = g->cuda_driver_version;
        }
    }
    qb_tel_free(tel);
    struct qb_cuda_device dev;
    if (qb_cuda_device_query(&dev, &err) == QB_OK) {
        if (!r->gpu_name[0])
            copy_text(r->gpu_name, sizeof r->gpu_name, dev.name);
        snprintf(r->compute_capability, sizeof r->compute_capability, "%d.%d", dev.cc_major,
                 dev.cc_minor);
    }
    r->cuda_runtime_version = qb_cuda_runtime_version();
}

/* Host memcpy bandwidth (bytes read + written per second), best of 5. */
static double host_bandwidth_gbs(void)
{
    size_t bytes = (size_t)256 << 20;
    char *a = malloc(bytes), *b = malloc(bytes);
    double best = -1;
    if (a && b) {
        memset(a, 1, bytes);
        memset(b, 2, bytes);
        for (int i = 0; i < 5; i++) {
            double t0 = qb_now_seconds();
            memcpy(b, a, bytes);
            double dt = qb_now_seconds() - t0;
            double gbs = 2.0 * (double)bytes / dt / 1e9;
            best = gbs > best ? gbs : best;
        }
    }
    free(a);
    free(b);
    return best;
}

/* ---- per-scheme checks --------------------------------------------------------- */

static enum qb_status make_engine(const struct qb_model *m, enum qb_backend be, int max_ctx,
                                  int threads, struct qb_engine **e, struct qb_err *err)
{
    struct qb_engine_opts eo = {max_ctx, threads};
    return qb_engine_create(m, be, &eo, NULL, NULL, e, err);
}

/* CPU: every decoder row's SIMD dot against the plain C dot. */
static double selftest_cpu(const struct qb_model *m)
{
    const struct qb_linear *lin = &m->layers[0].lin[QB_LIN_GATE];
    const struct qb_wfmt_traits *tr = qb_wfmt_get(lin->fmt);
    float *x = malloc(sizeof(float) * (size_t)lin->cols);
    double worst = 0;
    if (!x || !tr->vec_dot || !tr->vec_dot_ref) {
        free(x);
        return 0;
    }
    for (int64_t i = 0; i < lin->cols; i++)
        x[i] = (float)sin(0.37 * (double)i);
    for (int64_t r = 0; r < lin->rows; r++) {
        double a = tr->vec_dot(lin, r, x), b = tr->vec_dot_ref(lin, r, x);
        double rel = fabs(a - b) / (fabs(b) + 1.0);
        worst = rel > worst ? rel : worst;
    }
    free(x);
    return worst;
}

/* GPU: logits of the CUDA engine against the CPU engine's on the first tokens. */
static enum qb_status selftest_gpu(const struct qb_model *m, const int32_t *ids, int threads,
                                   double *rel, struct qb_err *err)
{
    struct qb_engine *cpu = NULL, *gpu = NULL;
    size_t n = (size_t)SELFTEST_TOKENS * (size_t)m->cfg.vocab;
    float *a = qb_malloc_array(n, sizeof(float)), *b = qb_malloc_array(n, sizeof(float));
    enum qb_status st = (a && b) ? QB_OK : qb_err_set(err, QB_ERR_NOMEM, "out of memory");
    if (!st)
        st = make_engine(m, QB_BACKEND_CPU, SELFTEST_TOKENS, threads, &cpu, err);
    if (!st)
        st = make_engine(m, QB_BACKEND_CUDA, SELFTEST_TOKENS, threads, &gpu, err);
    if (!st)
        st = qb_engine_forward(cpu, ids, SELFTEST_TOKENS, 0, a, err);
    if (!st)
        st = qb_engine_forward(gpu, ids, SELFTEST_TOKENS, 0, b, err);
    if (!st) {
        double num = 0, den = 0;
        for (size_t i = 0; i < n; i++) {
            num += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
            den += (double)a[i] * a[i];
        }
        *rel = sqrt(num / (den + 1e-30));
    }
    qb_engine_free(cpu);
    qb_engine_free(gpu);
    free(a);
    free(b);
    return st;
}

/* Prefill SPEED_PP tokens, then decode SPEED_TG more one at a time: one warm-up pass,
 * then timed passes (at least SPEED_PASSES, and for at least SPEED_MIN_S), keeping the
 * best rate of each: a demo-model prefill takes about a millisecond on a GPU, so a
 * single timing moves by 15 % between runs, more than the regression threshold. */
static enum qb_status measure_speed(const struct qb_model *m, const int32_t *ids,
                                    enum qb_backend be, int threads,
                                    struct qb_doctor_scheme *s, struct qb_err *err)
{
    struct qb_engine *e = NULL;
    float *logits = qb_malloc_array((size_t)m->cfg.vocab, sizeof(float));
    if (!logits)
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory");
    enum qb_status st = make_engine(m, be, SPEED_PP + SPEED_TG, threads, &e, err);
    s->pp_tok_s = s->tg_tok_s = 0;
    double start = qb_now_seconds();
    /* pass 0 warms up; then at least SPEED_PASSES, and until SPEED_MIN_S have passed */
    for (int pass = 0; !st && pass <= SPEED_MAX_PASSES; pass++) {
        if (pass > SPEED_PASSES && qb_now_seconds() - start >= SPEED_MIN_S)
            break;
        qb_engine_reset(e);
        double t0 = qb_now_seconds();
        st = qb_engine_forward(e, ids, SPEED_PP, SPEED_PP - 1, logits, err);
        double t1 = qb_now_seconds();
        for (int t = 0; !st && t < SPEED_TG; t++)
            st = qb_engine_forward(e, ids + SPEED_PP + t, 1, 0, logits, err);
        double t2 = qb_now_seconds();
        if (pass > 0) {
            s->pp_tok_s = QB_MAX(s->pp_tok_s, SPEED_PP / (t1 - t0));
            s->tg_tok_s = QB_MAX(s->tg_tok_s, SPEED_TG / (t2 - t1));
        }
    }
    qb_engine_free(e);
    free(logits);
    return st;
}

struct doctor_ctx {
    const struct qb_doctor_opts *o;
    enum qb_backend be;
    int cc;                  /* compute capability x10 (90 = 9.0), 0 unknown */
    const int32_t *ids;
    size_t n_ids;
    struct qb_eval_opts eval;
    struct qb_eval_baseline *base;
};

/* The matrix products run in the scheme's own precision on tensor cores: bf16/fp16
 * always, FP8 W8A8 from sm_89, FP4 W4A4 from sm_100. Weight-only formats are
 * dequantized into bf16 tensor-core products, which is not counted as native. */
static int native_on_gpu(const struct qb_scheme *s, int cc)
{
    if (s->method == QB_METHOD_NONE)
        return s->fmt != QB_WFMT_F32;
    if (s->qp.act == QB_ACT_FP8_E4M3)
        return cc >= 89;
    if (s->qp.act == QB_ACT_NVFP4 || s->qp.act == QB_ACT_MXFP4)
        return cc >= 100;
    return 0;
}

static enum qb_status check_scheme(struct doctor_ctx *c, const char *name,
                                   struct qb_progress *progress, struct qb_doctor_scheme *s,
                                   struct qb_err *err)
{
    struct qb_model *m = NULL;
    struct qb_scheme scheme;
    struct qb_model_load_opts lo = {.no_tokenizer = 1};
    struct qb_eval_result res;
    copy_text(s->scheme, sizeof s->scheme, name);
    enum qb_status st = qb_scheme_parse(name, 0, &scheme, err);
    if (!st)
        st = qb_model_load(c->o->model_dir, &lo, &m, err);
    if (!st)
        st = qb_model_apply_scheme(m, &scheme, NULL, err);
    if (st)
        goto out;
    s->bits_per_weight = 8.0 * (double)qb_model_decoder_bytes(m) /
                         (double)qb_model_decoder_params(m);
    copy_text(s->support, sizeof s->support, qb_scheme_hw_support(&scheme));
    /* a format the GPU has no kernel for is checked on the CPU reference instead */
    enum qb_backend be = c->be;
    if (be == QB_BACKEND_CUDA && !qb_cuda_supports(scheme.fmt, scheme.qp.act)) {
        const char *fp4 = qb_w4a4_status_note(scheme.qp.act, c->cc / 10); /* W4A4 below sm_100 */
        be = QB_BACKEND_CPU;
        snprintf(s->support, sizeof s->support, "%.80s; checked on the CPU%s",
                 fp4 ? fp4 : qb_scheme_hw_support(&scheme), fp4 ? "" : " (no GPU kernel)");
    }
    s->native = be == QB_BACKEND_CUDA && native_on_gpu(&scheme, c->cc);
    if (be == QB_BACKEND_CUDA) {
        s->selftest_tol = scheme.qp.act == QB_ACT_F32 ? SELFTEST_GPU_TOL : SELFTEST_GPU_ACT_TOL;
        st = selftest_gpu(m, c->ids, c->o->n_threads, &s->selftest_err, err);
    } else {
        s->selftest_tol = SELFTEST_CPU_TOL;
        s->selftest_err = selftest_cpu(m);
    }
    s->selftest_ok = !st && s->selftest_err <= s->selftest_tol;
    qb_progress_log(progress, "%s self-test %s (%.2g)", name, s->selftest_ok ? "ok" : "FAILED",
                    s->selftest_err);
    struct qb_eval_opts eo = c->eval;
    eo.backend = be;
    if (!st)
        st = qb_eval_run(m, c->ids, c->n_ids, &eo, c->base, c->base ? NULL : &c->base, NULL,
                         &res, err);
    if (!st) {
        s->ppl = res.ppl;
        s->kld = res.has_kld ? res.kld_mean : 0;
        st = measure_speed(m, c->ids, be, c->o->n_threads, s, err);
    }
out:
    if (st)
        copy_text(s->error, sizeof s->error, err->msg);
    qb_model_free(m);
    return st;
}

static enum qb_status load_text_tokens(const struct qb_doctor_opts *o, int32_t **ids, size_t *n,
                                       struct qb_err *err)
{
    struct qb_model *m = NULL;
    char *text = NULL;
    size_t len = 0;
    enum qb_status st = qb_model_load(o->model_dir, NULL, &m, err);
    if (!st)
        st = qb_file_read_all(o->data_path, (size_t)1 << 30, &text, &len, err);
    if (!st)
        st = qb_eval_tokenize(m, text, len, ids, n, err);
    if (!st && *n < (size_t)(SPEED_PP + SPEED_TG))
        st = qb_err_set(err, QB_ERR_USAGE, "%s is too short for the speed test (%d tokens)",
                        o->data_path, SPEED_PP + SPEED_TG);
    free(text);
    qb_model_free(m);
    return st;
}

enum qb_status qb_doctor_run(const struct qb_doctor_opts *opts, struct qb_progress *progress,
                             struct qb_doctor_report *out, struct qb_err *err)
{
    struct qb_doctor_opts o = *opts;
    int32_t *ids = NULL;
    size_t n_ids = 0;
    double t0 = qb_now_seconds();
    memset(out, 0, sizeof *out);
    o.model_dir = o.model_dir ? o.model_dir : DEMO_DIR;
    o.data_path = o.data_path ? o.data_path : DEMO_TEXT;
    o.chunks = o.chunks > 0 ? o.chunks : 2;
    struct doctor_ctx c = {.o = &o, .be = qb_backend_resolve(o.backend)};
    copy_text(out->version, sizeof out->version, QB_VERSION);
    copy_text(out->backend, sizeof out->backend, qb_backend_name(c.be));
    qb_progress_stage(progress, "identity");
    read_identity(out);
    qb_progress_stage(progress, "bandwidth");
    if (c.be == QB_BACKEND_CUDA) {
        if (qb_cuda_measure_bandwidth(&out->bandwidth_gbs, err))
            out->bandwidth_gbs = -1;
    } else {
        out->bandwidth_gbs = host_bandwidth_gbs();
    }
    int ma = 0, mi = 0;
    if (sscanf(out->compute_capability, "%d.%d", &ma, &mi) == 2)
        c.cc = ma * 10 + mi;
    enum qb_status st = load_text_tokens(&o, &ids, &n_ids, err);
    c.ids = ids;
    c.n_ids = n_ids;
    c.eval = (struct qb_eval_opts){512, o.chunks, o.n_threads, c.be};
    int n = (int)QB_ARRAY_LEN(doctor_schemes);
    for (int i = 0; !st && i < n; i++) {
        if (qb_progress_cancelled(progress)) {
            st = qb_err_set(err, QB_ERR_CANCELLED, "cancelled");
            break;
        }
        qb_progress_stage(progress, doctor_schemes[i]);
        qb_progress_update(progress, (double)i / n, i, n, "schemes");
        struct qb_doctor_scheme *s = &out->schemes[out->n_schemes++];
        struct qb_err scheme_err = {0};
        if (check_scheme(&c, doctor_schemes[i], progress, s, &scheme_err) && i == 0)
            st = qb_err_set(err, scheme_err.status, "%s", scheme_err.msg); /* no baseline */
    }
    qb_eval_baseline_free(c.base);
    free(ids);
    out->seconds = qb_now_seconds() - t0;
    return st;
}

/* ---- JSON and comparison --------------------------------------------------------- */

static void add_num_or_null(cJSON *o, const char *key, double v, int valid)
{
    if (valid && isfinite(v))
        cJSON_AddNumberToObject(o, key, v);
    else
        cJSON_AddNullToObject(o, key);
}

cJSON *qb_doctor_to_json(const struct qb_doctor_report *r)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "quantbench_version", r->version);
    cJSON_AddStringToObject(o, "backend", r->backend);
    cJSON *gpu = r->gpu_name[0] ? cJSON_AddObjectToObject(o, "gpu") : NULL;
    if (!gpu)
        cJSON_AddNullToObject(o, "gpu");
    if (gpu) {
        cJSON_AddStringToObject(gpu, "name", r->gpu_name);
        cJSON_AddStringToObject(gpu, "compute_capability", r->compute_capability);
        cJSON_AddStringToObject(gpu, "driver_version", r->driver_version);
        add_num_or_null(gpu, "cuda_driver_version", r->cuda_driver_version,
                        r->cuda_driver_version > 0);
    }
    add_num_or_null(o, "cuda_runtime_version", r->cuda_runtime_version,
                    r->cuda_runtime_version > 0);
    add_num_or_null(o, "bandwidth_gbs", r->bandwidth_gbs, r->bandwidth_gbs > 0);
    cJSON_AddNumberToObject(o, "seconds", r->seconds);
    cJSON *arr = cJSON_AddArrayToObject(o, "schemes");
    for (int i = 0; i < r->n_schemes; i++) {
        const struct qb_doctor_scheme *s = &r->schemes[i];
        cJSON *e = cJSON_CreateObject();
        cJSON_AddStringToObject(e, "scheme", s->scheme);
        cJSON_AddNumberToObject(e, "bits_per_weight", s->bits_per_weight);
        cJSON_AddBoolToObject(e, "native", s->native);
        cJSON_AddStringToObject(e, "support", s->support);
        cJSON_AddBoolToObject(e, "selftest_ok", s->selftest_ok);
        add_num_or_null(e, "selftest_err", s->selftest_err, 1);
        cJSON_AddNumberToObject(e, "selftest_tol", s->selftest_tol);
        add_num_or_null(e, "ppl", s->ppl, !s->error[0]);
        add_num_or_null(e, "kld", s->kld, !s->error[0]);
        add_num_or_null(e, "pp_tok_s", s->pp_tok_s, !s->error[0]);
        add_num_or_null(e, "tg_tok_s", s->tg_tok_s, !s->error[0]);
        if (s->error[0])
            cJSON_AddStringToObject(e, "error", s->error);
        else
            cJSON_AddNullToObject(e, "error");
        cJSON_AddItemToArray(arr, e);
    }
    return o;
}

static double json_num(const cJSON *o, const char *key)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(it) ? it->valuedouble : NAN;
}

static const char *json_str(const cJSON *o, const char *key)
{
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsString(it) ? it->valuestring : "";
}

enum qb_status qb_doctor_from_json(const char *json, size_t len, const char *origin,
                                   struct qb_doctor_report *out, struct qb_err *err)
{
    memset(out, 0, sizeof *out);
    cJSON *root = cJSON_ParseWithLength(json, len);
    const cJSON *arr = root ? cJSON_GetObjectItemCaseSensitive(root, "schemes") : NULL;
    if (!root || !cJSON_IsArray(arr)) {
        cJSON_Delete(root);
        return qb_err_set(err, QB_ERR_FORMAT, "%s: not a doctor report (no 'schemes' array); "
                          "save one with --save-baseline", origin);
    }
    copy_text(out->version, sizeof out->version, json_str(root, "quantbench_version"));
    copy_text(out->backend, sizeof out->backend, json_str(root, "backend"));
    out->bandwidth_gbs = json_num(root, "bandwidth_gbs");
    const cJSON *e;
    cJSON_ArrayForEach(e, arr)
    {
        if (out->n_schemes == QB_DOCTOR_MAX_SCHEMES || !cJSON_IsObject(e))
            break;
        struct qb_doctor_scheme *s = &out->schemes[out->n_schemes++];
        copy_text(s->scheme, sizeof s->scheme, json_str(e, "scheme"));
        s->ppl = json_num(e, "ppl");
        s->kld = json_num(e, "kld");
        s->pp_tok_s = json_num(e, "pp_tok_s");
        s->tg_tok_s = json_num(e, "tg_tok_s");
        s->selftest_ok = cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(e, "selftest_ok"));
    }
    cJSON_Delete(root);
    return QB_OK;
}

static const struct qb_doctor_scheme *find_scheme(const struct qb_doctor_report *r,
                                                  const char *name)
{
    for (int i = 0; i < r->n_schemes; i++) {
        if (strcmp(r->schemes[i].scheme, name) == 0)
            return &r->schemes[i];
    }
    return NULL;
}

__attribute__((format(printf, 4, 5))) static void add_line(char (*lines)[160], int max, int *n,
                                                           const char *fmt, ...)
{
    if (*n < max) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(lines[*n], 160, fmt, ap);
        va_end(ap);
    }
    (*n)++;
}

int qb_doctor_compare(const struct qb_doctor_report *now, const struct qb_doctor_report *base,
                      char (*lines)[160], int max_lines)
{
    int n = 0;
    for (int i = 0; i < now->n_schemes; i++) {
        const struct qb_doctor_scheme *s = &now->schemes[i];
        const struct qb_doctor_scheme *b = find_scheme(base, s->scheme);
        if (s->error[0] || !isfinite(s->ppl) || !isfinite(s->kld)) {
            add_line(lines, max_lines, &n, "%s: no result (error or NaN) %g %g", s->scheme,
                     s->ppl, s->kld);
            continue;
        }
        if (!s->selftest_ok)
            add_line(lines, max_lines, &n, "%s: self-test failed (error %.3g > %.3g)", s->scheme,
                     s->selftest_err, s->selftest_tol);
        if (!b || !isfinite(b->ppl))
            continue;
        if (fabs(s->ppl - b->ppl) > QB_DOCTOR_PPL_RTOL * b->ppl)
            add_line(lines, max_lines, &n, "%s: perplexity %.4f drifted from %.4f", s->scheme,
                     s->ppl, b->ppl);
        if (isfinite(b->pp_tok_s) && s->pp_tok_s < (1.0 - QB_DOCTOR_SPEED_DROP) * b->pp_tok_s)
            add_line(lines, max_lines, &n, "%s: prefill %.0f tok/s, was %.0f", s->scheme,
                     s->pp_tok_s, b->pp_tok_s);
        if (isfinite(b->tg_tok_s) && s->tg_tok_s < (1.0 - QB_DOCTOR_SPEED_DROP) * b->tg_tok_s)
            add_line(lines, max_lines, &n, "%s: decode %.0f tok/s, was %.0f", s->scheme,
                     s->tg_tok_s, b->tg_tok_s);
    }
    return n;
}
