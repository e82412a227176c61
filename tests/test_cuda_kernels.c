/*
 * test_cuda_kernels.c - every CUDA kernel against a plain C reference on
 * fresh random data, with a named tolerance per kernel (relative L2 error
 * ||gpu - ref|| / ||ref||). Outputs are poisoned before each launch so an
 * unwritten element fails. Skips cleanly without a GPU or without CUDA.
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "qb_test_util.h"
#include "dtype.h"
#include "engine.h"
#include "kernels/qb_cuda.h"

#ifdef QB_HAVE_CUDA

/* f32 outputs that only differ from the reference in summation order */
#define TOL_F32 3e-5
/* cuBLAS GEMM: bf16 inputs, f32 accumulation in another order (split-K) */
#define TOL_GEMM 1e-4
/* outputs stored as bf16 (8-bit mantissa): rounding alone is ~1e-3 */
#define TOL_BF16_OUT 4e-3
/* the RoPE'd f32 q vs a reference that uses the same sincosf in f32 */
#define TOL_ROPE 1e-5
/* f16 cache contents (11-bit mantissa) */
#define TOL_F16_OUT 1e-3



static struct qb_err err;

/* ---- deterministic random data ---------------------------------------------- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static float frand(void) /* uniform in [-1, 1) */
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return (float)((rng_state >> 40) * (2.0 / 16777216.0) - 1.0);
}

static float *rand_f32(size_t n, float scale)
{
    float *p = malloc(n * sizeof *p);
    cr_assert(p);
    for (size_t i = 0; i < n; i++)
        p[i] = frand() * scale;
    return p;
}

/* Random bf16 bits and their exact f32 values. */
static uint16_t *rand_bf16(size_t n, float scale, float **as_f32)
{
    uint16_t *p = malloc(n * sizeof *p);
    float *f = malloc(n * sizeof *f);
    cr_assert(p && f);
    for (size_t i = 0; i < n; i++) {
        p[i] = qb_f32_to_bf16(frand() * scale);
        f[i] = qb_bf16_to_f32(p[i]);
    }
    *as_f32 = f;
    return p;
}

static void expect_close(const char *what, const float *got, const float *ref, size_t n,
                         double tol)
{
    double e = qbt_rel_l2(got, ref, n);
    size_t bad = 0;
    while (bad < n && isfinite(got[bad]))
        bad++;
    cr_log_info("%s: rel L2 error %.3g (tolerance %.3g)", what, e, tol);
    cr_assert(bad == n, "%s: element %zu of %zu is %g (never written, or NaN/Inf computed)",
              what, bad, n, bad < n ? got[bad] : 0.0);
    cr_assert(e <= tol, "%s: rel L2 error %.3g > %.3g", what, e, tol);
}

static void *dev_upload(const void *h, size_t bytes)
{
    void *d = NULL;
    QBT_OK(qb_cuda_alloc(&d, bytes, "test buffer", &err));
    QBT_OK(qb_cuda_upload(d, h, bytes, &err));
    return d;
}

static void *dev_poisoned(size_t bytes)
{
    void *d = NULL;
    unsigned char *h = malloc(bytes);
    cr_assert(h);
    memset(h, 0xff, bytes); /* NaN in f32, bf16 and f16 */
    QBT_OK(qb_cuda_alloc(&d, bytes, "test output", &err));
    QBT_OK(qb_cuda_upload(d, h, bytes, &err));
    free(h);
    return d;
}

static float *download_f32(const void *d, size_t n)
{
    float *h = malloc(n * sizeof *h);
    cr_assert(h);
    QBT_OK(qb_cuda_download(h, d, n * sizeof *h, &err));
    return h;
}

/* Download 16-bit values and widen them (bf16 or f16). */
static float *download_16(const void *d, size_t n, int is_f16)
{
    uint16_t *h = malloc(n * sizeof *h);
    float *f = malloc(n * sizeof *f);
    cr_assert(h && f);
    QBT_OK(qb_cuda_download(h, d, n * sizeof *h, &err));
    for (size_t i = 0; i < n; i++)
        f[i] = is_f16 ? qb_f16_to_f32(h[i]) : qb_bf16_to_f32(h[i]);
    free(h);
    return f;
}

static float round_bf16(float f)
{
    return qb_bf16_to_f32(qb_f32_to_bf16(f));
}

static float round_f16(float f)
{
    return qb_f16_to_f32(qb_f32_to_f16(f));
}

static struct qb_cuda_ctx *ctx_new(void)
{
    struct qb_cuda_ctx *c = NULL;
    QBT_OK(qb_cuda_ctx_create(&c, &err));
    return c;
}

/* A device weight from random bf16 values (f32 copy in *w_f32), optional bias. */
static void make_weight(int64_t rows, int64_t cols, int with_bias, struct qb_cuda_weight *w,
                        float **w_f32, float **bias)
{
    uint16_t *h = rand_bf16((size_t)(rows * cols), 0.05f, w_f32);
    struct qb_linear lin = {.fmt = QB_WFMT_BF16, .rows = rows, .cols = cols, .data = h,
                            .data_bytes = (size_t)(rows * cols) * 2};
    *bias = with_bias ? rand_f32((size_t)rows, 0.5f) : NULL;
    lin.bias = *bias;
    QBT_OK(qb_cuda_weight_upload(&lin, "test weight", w, &err));
    free(h);
}

/* y[t][r] = sum_k w[r][k] a[t][k] (+ bias), double accumulation. */
static void ref_linear(const float *w, const float *bias, int64_t rows, int64_t cols,
                       const float *a, int n, float *y, int ldy, int accumulate)
{
    for (int t = 0; t < n; t++)
        for (int64_t r = 0; r < rows; r++) {
            double s = bias ? bias[r] : 0;
            for (int64_t k = 0; k < cols; k++)
                s += (double)w[r * cols + k] * a[(size_t)t * cols + k];
            y[(size_t)t * ldy + r] = (float)(accumulate ? y[(size_t)t * ldy + r] + s : s);
        }
}

/* ---- tests ------------------------------------------------------------------------ */

Test(cuda_kernels, embed_gathers_rows)
{
    QBT_REQUIRE_GPU();
    int vocab = 300, dim = 264, n = 7;
    int32_t ids[7] = {0, 299, 5, 5, 17, 128, 1};
    float *table_f32, *ref = malloc((size_t)n * dim * sizeof *ref);
    uint16_t *table = rand_bf16((size_t)vocab * dim, 1.0f, &table_f32);
    struct qb_cuda_ctx *c = ctx_new();
    void *d_table = dev_upload(table, (size_t)vocab * dim * 2);
    void *d_ids = dev_upload(ids, sizeof ids);
    float *d_x = dev_poisoned((size_t)n * dim * 4);
    for (int t = 0; t < n; t++)
        memcpy(ref + (size_t)t * dim, table_f32 + (size_t)ids[t] * dim, dim * sizeof(float));
    QBT_OK(qb_cuda_embed(c, d_table, d_ids, n, dim, d_x, &err));
    QBT_OK(qb_cuda_sync(c, &err));
    float *got = download_f32(d_x, (size_t)n * dim);
    cr_assert_eq(memcmp(got, ref, (size_t)n * dim * sizeof(float)), 0, "embedding not exact");
    qb_cuda_free(d_table), qb_cuda_free(d_ids), qb_cuda_free(d_x), qb_cuda_ctx_free(c);
    free(table), free(table_f32), free(ref), free(got);
}

Test(cuda_kernels, rmsnorm_matches_reference)
{
    QBT_REQUIRE_GPU();
    int n = 5, dims[3] = {256, 4096, 5000};
    struct qb_cuda_ctx *c = ctx_new();
    for (int di = 0; di < 3; di++) {
        int dim = dims[di];
        float *x = rand_f32((size_t)n * dim, 3.0f), *w = rand_f32((size_t)dim, 1.0f);
        float *ref = malloc((size_t)n * dim * sizeof *ref);
        for (int t = 0; t < n; t++) {
            double ss = 0;
            for (int i = 0; i < dim; i++)
                ss += (double)x[t * dim + i] * x[t * dim + i];
            float inv = 1.0f / sqrtf((float)(ss / dim) + 1e-5f);
            for (int i = 0; i < dim; i++)
                ref[t * dim + i] = round_bf16(w[i] * (x[t * dim + i] * inv));
        }
        float *d_x = dev_upload(x, (size_t)n * dim * 4), *d_w = dev_upload(w, (size_t)dim * 4);
        uint16_t *d_out = dev_poisoned((size_t)n * dim * 2);
        QBT_OK(qb_cuda_rmsnorm(c, d_x, d_w, 1e-5f, n, dim, d_out, &err));
        QBT_OK(qb_cuda_sync(c, &err));
        float *got = download_16(d_out, (size_t)n * dim, 0);
        expect_close("rmsnorm", got, ref, (size_t)n * dim, TOL_BF16_OUT);
        qb_cuda_free(d_x), qb_cuda_free(d_w), qb_cuda_free(d_out);
        free(x), free(w), free(ref), free(got);
    }
    qb_cuda_ctx_free(c);
}

/* RoPE + KV store reference: rotates q in place (f32), fills f16-rounded caches. */
static void ref_rope_kv(const struct qb_cuda_attn_shape *s, float *qkv, int ldq, int n, int pos0,
                        const float *inv_freq, const float *q_norm, const float *k_norm,
                        float *kc, float *vc)
{
    int hd = s->head_dim, half = hd / 2, nq = s->n_heads, nk = s->n_kv_heads;
    for (int t = 0; t < n; t++) {
        int pos = pos0 + t;
        for (int h = 0; h < nq + 2 * nk; h++) {
            float *p = qkv + (size_t)t * ldq + (size_t)h * hd;
            if (h >= nq + nk) {
                for (int i = 0; i < hd; i++)
                    vc[((size_t)(h - nq - nk) * s->max_ctx + pos) * hd + i] = round_f16(p[i]);
                continue;
            }
            const float *norm = h < nq ? q_norm : k_norm;
            float inv = 1.0f;
            if (norm) {
                double ss = 0;
                for (int i = 0; i < hd; i++)
                    ss += (double)p[i] * p[i];
                inv = 1.0f / sqrtf((float)(ss / hd) + 1e-6f);
            }
            float tmp[256];
            for (int i = 0; i < hd; i++)
                tmp[i] = p[i] * inv * (norm ? norm[i] : 1.0f);
            for (int i = 0; i < half; i++) {
                float sn, cs;
                sincosf((float)pos * inv_freq[i], &sn, &cs);
                float r0 = tmp[i] * cs - tmp[i + half] * sn, r1 = tmp[i + half] * cs + tmp[i] * sn;
                if (h < nq) {
                    p[i] = r0;
                    p[i + half] = r1;
                } else {
                    kc[((size_t)(h - nq) * s->max_ctx + pos) * hd + i] = round_f16(r0);
                    kc[((size_t)(h - nq) * s->max_ctx + pos) * hd + i + half] = round_f16(r1);
                }
            }
        }
    }
}

static void check_rope_kv(int with_norm)
{
    struct qb_cuda_attn_shape s = {.n_heads = 8, .n_kv_heads = 2, .head_dim = 128, .max_ctx = 64};
    int n = 9, pos0 = 40, ldq = (8 + 2 * 2) * 128 + 8, half = 64;
    size_t cache_n = (size_t)2 * 64 * 128;
    float *qkv = rand_f32((size_t)n * ldq, 2.0f), *inv_freq = malloc(half * sizeof(float));
    float *qn = with_norm ? rand_f32(128, 1.0f) : NULL, *kn = with_norm ? rand_f32(128, 1.0f) : NULL;
    float *kc = calloc(cache_n, sizeof(float)), *vc = calloc(cache_n, sizeof(float));
    for (int i = 0; i < half; i++)
        inv_freq[i] = powf(10000.0f, -(float)i / half);
    struct qb_cuda_ctx *c = ctx_new();
    float *d_qkv = dev_upload(qkv, (size_t)n * ldq * 4), *d_if = dev_upload(inv_freq, half * 4);
    float *d_qn = with_norm ? dev_upload(qn, 128 * 4) : NULL;
    float *d_kn = with_norm ? dev_upload(kn, 128 * 4) : NULL;
    int32_t *d_pos = dev_upload(&pos0, sizeof pos0);
    uint16_t *d_kc = dev_upload(kc, cache_n * 2), *d_vc = dev_upload(kc, cache_n * 2); /* zeros */
    QBT_OK(qb_cuda_rope_kv(c, &s, d_qkv, ldq, n, d_pos, d_if, d_qn, d_kn, 1e-6f, d_kc, d_vc, &err));
    QBT_OK(qb_cuda_sync(c, &err));
    ref_rope_kv(&s, qkv, ldq, n, pos0, inv_freq, qn, kn, kc, vc);
    float *got_q = download_f32(d_qkv, (size_t)n * ldq), *ref_q = malloc((size_t)n * 1024 * 4);
    float *got_q_only = malloc((size_t)n * 1024 * 4);
    for (int t = 0; t < n; t++) {
        memcpy(ref_q + t * 1024, qkv + (size_t)t * ldq, 1024 * 4);
        memcpy(got_q_only + t * 1024, got_q + (size_t)t * ldq, 1024 * 4);
    }
    expect_close("rope q", got_q_only, ref_q, (size_t)n * 1024, TOL_ROPE);
    float *got_k = download_16(d_kc, cache_n, 1), *got_v = download_16(d_vc, cache_n, 1);
    expect_close("rope k cache", got_k, kc, cache_n, TOL_F16_OUT);
    expect_close("v cache", got_v, vc, cache_n, TOL_F16_OUT);
    qb_cuda_free(d_qkv), qb_cuda_free(d_if), qb_cuda_free(d_qn), qb_cuda_free(d_kn);
    qb_cuda_free(d_pos), qb_cuda_free(d_kc), qb_cuda_free(d_vc), qb_cuda_ctx_free(c);
    free(qkv), free(inv_freq), free(qn), free(kn), free(kc), free(vc);
    free(got_q), free(ref_q), free(got_q_only), free(got_k), free(got_v);
}

Test(cuda_kernels, rope_kv_plain)
{
    QBT_REQUIRE_GPU();
    check_rope_kv(0);
}

Test(cuda_kernels, rope_kv_with_qk_norm)
{
    QBT_REQUIRE_GPU();
    check_rope_kv(1);
}

/* Causal GQA attention reference over f32 caches; out rounded to bf16. */
static void ref_attention(const struct qb_cuda_attn_shape *s, const float *qkv, int ldq, int n,
                          int pos0, const float *kc, const float *vc, float *out)
{
    int hd = s->head_dim, group = s->n_heads / s->n_kv_heads;
    double *sc = malloc((size_t)(pos0 + n) * sizeof *sc);
    for (int t = 0; t < n; t++)
        for (int h = 0; h < s->n_heads; h++) {
            const float *q = qkv + (size_t)t * ldq + (size_t)h * hd;
            const float *k = kc + (size_t)(h / group) * s->max_ctx * hd;
            const float *v = vc + (size_t)(h / group) * s->max_ctx * hd;
            int last = pos0 + t;
            double mx = -INFINITY, den = 0;
            for (int j = 0; j <= last; j++) {
                double d = 0;
                for (int i = 0; i < hd; i++)
                    d += (double)q[i] * k[(size_t)j * hd + i];
                sc[j] = d / sqrt(hd);
                mx = fmax(mx, sc[j]);
            }
            for (int j = 0; j <= last; j++)
                den += (sc[j] = exp(sc[j] - mx));
            for (int i = 0; i < hd; i++) {
                double o = 0;
                for (int j = 0; j <= last; j++)
                    o += sc[j] * v[(size_t)j * hd + i];
                out[((size_t)t * s->n_heads + h) * hd + i] = round_bf16((float)(o / den));
            }
        }
    free(sc);
}

static void check_attention(int hd, int n, int pos0)
{
    struct qb_cuda_attn_shape s = {.n_heads = 8, .n_kv_heads = 2, .head_dim = hd, .max_ctx = 300};
    int ldq = (8 + 4) * hd;
    size_t cache_n = (size_t)2 * s.max_ctx * hd, out_n = (size_t)n * 8 * hd;
    float *qkv = rand_f32((size_t)n * ldq, 1.5f), *kc = malloc(cache_n * 4), *vc = malloc(cache_n * 4);
    uint16_t *kh = malloc(cache_n * 2), *vh = malloc(cache_n * 2);
    for (size_t i = 0; i < cache_n; i++) {
        kh[i] = qb_f32_to_f16(frand() * 1.5f), kc[i] = qb_f16_to_f32(kh[i]);
        vh[i] = qb_f32_to_f16(frand()), vc[i] = qb_f16_to_f32(vh[i]);
    }
    float *ref = malloc(out_n * 4);
    struct qb_cuda_ctx *c = ctx_new();
    float *d_qkv = dev_upload(qkv, (size_t)n * ldq * 4);
    uint16_t *d_kc = dev_upload(kh, cache_n * 2), *d_vc = dev_upload(vh, cache_n * 2);
    int32_t *d_pos = dev_upload(&pos0, sizeof pos0);
    uint16_t *d_out = dev_poisoned(out_n * 2);
    QBT_OK(qb_cuda_attention(c, &s, d_qkv, ldq, n, d_pos, d_kc, d_vc, d_out, &err));
    QBT_OK(qb_cuda_sync(c, &err));
    ref_attention(&s, qkv, ldq, n, pos0, kc, vc, ref);
    float *got = download_16(d_out, out_n, 0);
    char what[64];
    snprintf(what, sizeof what, "attention hd=%d n=%d pos0=%d", hd, n, pos0);
    expect_close(what, got, ref, out_n, TOL_BF16_OUT);
    qb_cuda_free(d_qkv), qb_cuda_free(d_kc), qb_cuda_free(d_vc), qb_cuda_free(d_pos);
    qb_cuda_free(d_out), qb_cuda_ctx_free(c);
    free(qkv), free(kc), free(vc), free(kh), free(vh), free(ref), free(got);
}

/* n > 1 with head_dim 64/128 runs the tensor-core kernel (f16 Q and P: the
 * same tolerance holds), the rest the CUDA-core one. */
Test(cuda_kernels, attention_prefill_and_decode)
{
    QBT_REQUIRE_GPU();
    check_attention(64, 37, 0);    /* tensor cores: one partial query block */
    check_attention(128, 20, 13);  /* tensor cores: after earlier tokens */
    check_attention(128, 130, 70); /* tensor cores: 3 query blocks, 4 key tiles */
    check_attention(64, 200, 0);
    check_attention(128, 1, 250);  /* decode, long-ish context */
    check_attention(256, 3, 2);    /* CUDA cores: head_dim 256 */
}

/* Decode in one kernel (attention_decode.cu) against rope_kv's and
 * attention's references composed: out, and k/v stored at pos. Random f16
 * caches before pos; 8 query heads over n_kv kv heads (only the first head of
 * each group stores). */
static void check_attention_decode(int hd, int n_kv, int pos, int with_norm)
{
    struct qb_cuda_attn_shape s = {
        .n_heads = 8, .n_kv_heads = n_kv, .head_dim = hd, .max_ctx = 300};
    int ldq = (8 + 2 * n_kv) * hd, half = hd / 2;
    size_t cache_n = (size_t)n_kv * s.max_ctx * hd, out_n = (size_t)8 * hd;
    float *qkv = rand_f32((size_t)ldq, 2.0f), *inv_freq = malloc(half * sizeof(float));
    float *qn = with_norm ? rand_f32(hd, 1.0f) : NULL, *kn = with_norm ? rand_f32(hd, 1.0f) : NULL;
    float *kc = calloc(cache_n, 4), *vc = calloc(cache_n, 4), *ref = malloc(out_n * 4);
    uint16_t *kh = calloc(cache_n, 2), *vh = calloc(cache_n, 2);
    for (int i = 0; i < half; i++)
        inv_freq[i] = powf(500000.0f, -(float)i / half);
    for (int kv = 0; kv < n_kv; kv++)
        for (size_t i = 0; i < (size_t)pos * hd; i++) {
            size_t at = (size_t)kv * s.max_ctx * hd + i;
            kh[at] = qb_f32_to_f16(frand() * 1.5f), kc[at] = qb_f16_to_f32(kh[at]);
            vh[at] = qb_f32_to_f16(frand()), vc[at] = qb_f16_to_f32(vh[at]);
        }
    struct qb_cuda_ctx *c = ctx_new();
    float *d_qkv = dev_upload(qkv, (size_t)ldq * 4), *d_if = dev_upload(inv_freq, half * 4);
    float *d_qn = with_norm ? dev_upload(qn, hd * 4) : NULL;
    float *d_kn = with_norm ? dev_upload(kn, hd * 4) : NULL;
    int32_t *d_pos = dev_upload(&pos, sizeof pos);
    uint16_t *d_kc = dev_upload(kh, cache_n * 2), *d_vc = dev_upload(vh, cache_n * 2);
    uint16_t *d_out = dev_poisoned(out_n * 2);
    QBT_OK(qb_cuda_attention_decode(c, &s, d_qkv, d_pos, d_if, d_qn, d_kn, 1e-6f, d_kc, d_vc,
                                    d_out, &err));
    QBT_OK(qb_cuda_sync(c, &err));
    ref_rope_kv(&s, qkv, ldq, 1, pos, inv_freq, qn, kn, kc, vc);
    ref_attention(&s, qkv, ldq, 1, pos, kc, vc, ref);
    char what[80];
    snprintf(what, sizeof what, "decode attention hd=%d kv=%d pos=%d norm=%d", hd, n_kv, pos,
             with_norm);
    float *got = download_16(d_out, out_n, 0);
    expect_close(what, got, ref, out_n, TOL_BF16_OUT);
    float *got_k = download_16(d_kc, cache_n, 1), *got_v = download_16(d_vc, cache_n, 1);
    expect_close("decode k cache", got_k, kc, cache_n, TOL_F16_OUT);
    expect_close("decode v cache", got_v, vc, cache_n, TOL_F16_OUT);
    qb_cuda_free(d_qkv), qb_cuda_free(d_if), qb_cuda_free(d_qn), qb_cuda_free(d_kn);
    qb_cuda_free(d_pos), qb_cuda_free(d_kc), qb_cuda_free(d_vc), qb_cuda_free(d_out);
    qb_cuda_ctx_free(c);
    free(qkv), free(inv_freq), free(qn), free(kn), free(kc), free(vc), free(ref);
    free(kh), free(vh), free(got), free(got_k), free(got_v);
}

/* pos 0 (only the new key), a partial batch of keys, a long-ish context, the
 * last cache slot; groups of 4 heads, of 1 (every block stores) and of 8. */
Test(cuda_kernels, attention_decode_matches_rope_and_attention)
{
    QBT_REQUIRE_GPU();
    check_attention_decode(128, 2, 0, 0);
    check_attention_decode(128, 2, 37, 1);
    check_attention_decode(64, 2, 250, 0);
    check_attention_decode(256, 2, 33, 1);
    check_attention_decode(128, 2, 299, 0);
    check_attention_decode(128, 8, 70, 1);
    check_attention_decode(64, 1, 131, 0);
}

Test(cuda_kernels, swiglu_matches_reference)
{
    QBT_REQUIRE_GPU();
    int n = 3, inter = 1000;
    float *gu = rand_f32((size_t)n * 2 * inter, 4.0f), *ref = malloc((size_t)n * inter * 4);
    for (int t = 0; t < n; t++)
        for (int i = 0; i < inter; i++) {
            float g = gu[(size_t)t * 2 * inter + i], u = gu[(size_t)t * 2 * inter + inter + i];
            ref[(size_t)t * inter + i] = round_bf16(g / (1.0f + expf(-g)) * u);
        }
    struct qb_cuda_ctx *c = ctx_new();
    float *d_gu = dev_upload(gu, (size_t)n * 2 * inter * 4);
    uint16_t *d_out = dev_poisoned((size_t)n * inter * 2);
    QBT_OK(qb_cuda_swiglu(c, d_gu, n, inter, d_out, &err));
    QBT_OK(qb_cuda_sync(c, &err));
    float *got = download_16(d_out, (size_t)n * inter, 0);
    expect_close("swiglu", got, ref, (size_t)n * inter, TOL_BF16_OUT);
    qb_cuda_free(d_gu), qb_cuda_free(d_out), qb_cuda_ctx_free(c);
    free(gu), free(ref), free(got);
}

/* q|k|v in one GEMV launch with biases, then an accumulating GEMV, at the
 * 8B model's shapes (rows 4096/1024/1024 and a 14336-wide down projection). */
Test(cuda_kernels, gemv_multi_bias_and_accumulate)
{
    QBT_REQUIRE_GPU();
    int64_t cols = 4096, rows[3] = {4096, 1024, 1000}, total = 4096 + 1024 + 1000;
    struct qb_cuda_weight w[3];
    float *wf[3], *bias[3], *xf;
    uint16_t *x = rand_bf16((size_t)cols, 1.0f, &xf);
    float *ref = malloc((size_t)total * 4);
    struct qb_cuda_ctx *c = ctx_new();
    for (int i = 0; i < 3; i++)
        make_weight(rows[i], cols, i != 1, &w[i], &wf[i], &bias[i]);
    const struct qb_cuda_weight *ws[3] = {&w[0], &w[1], &w[2]};
    uint16_t *d_x = dev_upload(x, (size_t)cols * 2);
    float *d_y = dev_poisoned((size_t)total * 4);
    QBT_OK(qb_cuda_gemv(c, ws, 3, d_x, d_y, 0, &err));
    QBT_OK(qb_cuda_sync(c, &err));
    for (int i = 0, off = 0; i < 3; off += (int)rows[i], i++)
        ref_linear(wf[i], bias[i], rows[i], cols, xf, 1, ref + off, (int)rows[i], 0);
    float *got = download_f32(d_y, (size_t)total);
    expect_close("gemv q|k|v", got, ref, (size_t)total, TOL_F32);
    /* accumulate: y += W0 x + b0 on top of what is there */
    QBT_OK(qb_cuda_gemv(c, ws, 1, d_x, d_y, 1, &err));
    QBT_OK(qb_cuda_sync(c, &err));
    ref_linear(wf[0], bias[0], rows[0], cols, xf, 1, ref, (int)rows[0], 1);
    free(got);
    got = download_f32(d_y, (size_t)rows[0]);
    expect_close("gemv accumulate", got, ref, (size_t)rows[0], TOL_F32);
    for (int i = 0; i < 3; i++)
        qb_cuda_weight_free(&w[i]), free(wf[i]), free(bias[i]);
    qb_cuda_free(d_x), qb_cuda_free(d_y), qb_cuda_ctx_free(c);
    free(x), free(xf), free(ref), free(got);
}

Test(cuda_kernels, gemv_swiglu_matches_reference)
{
    QBT_REQUIRE_GPU();
    int64_t cols = 2048 + 8, rows = 777; /* odd shapes: partial chunks and blocks */
    struct qb_cuda_weight g, u;
    float *gf, *uf, *gb, *ub, *xf, *yg = malloc(rows * 4), *yu = malloc(rows * 4);
    float *ref = malloc(rows * 4);
    uint16_t *x = rand_bf16((size_t)cols, 1.0f, &xf);
    struct qb_cuda_ctx *c = ctx_new();
    make_weight(rows, cols, 0, &g, &gf, &gb);
    make_weight(rows, cols, 0, &u, &uf, &ub);
    ref_linear(gf, NULL, rows, cols, xf, 1, yg, (int)rows, 0);
    ref_linear(uf, NULL, rows, cols, xf, 1, yu, (int)rows, 0);
    for (int64_t i = 0; i < rows; i++)
        ref[i] = round_bf16(yg[i] / (1.0f + expf(-yg[i])) * yu[i]);
    uint16_t *d_x = dev_upload(x, (size_t)cols * 2), *d_out = dev_poisoned((size_t)rows * 2);
    QBT_OK(qb_cuda_gemv_swiglu(c, &g, &u, d_x, d_out, &err));
    QBT_OK(qb_cuda_sync(c, &err));
    float *got = download_16(d_out, (size_t)rows, 0);
    expect_close("gemv swiglu", got, ref, (size_t)rows, TOL_BF16_OUT);
    qb_cuda_weight_free(&g), qb_cuda_weight_free(&u), qb_cuda_free(d_x), qb_cuda_free(d_out);
    qb_cuda_ctx_free(c);
    free(gf), free(uf), free(xf), free(x), free(yg), free(yu), free(ref), free(got);
}

/* Prefill linear through cuBLAS: strided output, bias, then accumulate. */
Test(cuda_kernels, linear_cublas_matches_reference)
{
    QBT_REQUIRE_GPU();
    int n = 33, ldy = 700;
    int64_t rows = 640, cols = 1024;
    struct qb_cuda_weight w;
    float *wf, *bias, *af, *ref = malloc((size_t)n * ldy * 4);
    uint16_t *a = rand_bf16((size_t)n * cols, 1.0f, &af);
    struct qb_cuda_ctx *c = ctx_new();
    make_weight(rows, cols, 1, &w, &wf, &bias);
    uint16_t *d_a = dev_upload(a, (size_t)n * cols * 2);
    float *d_y = dev_poisoned((size_t)n * ldy * 4);
    QBT_OK(qb_cuda_linear(c, &w, d_a, n, d_y, ldy, 0, &err));
    QBT_OK(qb_cuda_linear(c, &w, d_a, n, d_y, ldy, 1, &err));
    QBT_OK(qb_cuda_sync(c, &err));
    ref_linear(wf, bias, rows, cols, af, n, ref, ldy, 0);
    ref_linear(wf, bias, rows, cols, af, n, ref, ldy, 1);
    float *got = download_f32(d_y, (size_t)n * ldy);
    float *g2 = malloc((size_t)n * rows * 4), *r2 = malloc((size_t)n * rows * 4);
    for (int t = 0; t < n; t++) { /* compare the written columns only */
        memcpy(g2 + t * rows, got + (size_t)t * ldy, rows * 4);
        memcpy(r2 + t * rows, ref + (size_t)t * ldy, rows * 4);
    }
    expect_close("cuBLAS linear", g2, r2, (size_t)(n * rows), TOL_GEMM);
    qb_cuda_weight_free(&w), qb_cuda_free(d_a), qb_cuda_free(d_y), qb_cuda_ctx_free(c);
    free(wf), free(bias), free(af), free(a), free(ref), free(got), free(g2), free(r2);
}

/* A captured graph replays with new inputs (what the decode path relies on). */
Test(cuda_kernels, graph_replay_sees_new_inputs)
{
    QBT_REQUIRE_GPU();
    int64_t rows = 512, cols = 512;
    struct qb_cuda_weight w;
    float *wf, *bias, *xf, *ref = malloc(rows * 4);
    uint16_t *x = rand_bf16((size_t)cols, 1.0f, &xf);
    struct qb_cuda_ctx *c = ctx_new();
    void *graph = NULL;
    make_weight(rows, cols, 0, &w, &wf, &bias);
    const struct qb_cuda_weight *ws[1] = {&w};
    uint16_t *d_x = dev_poisoned((size_t)cols * 2);
    float *d_y = dev_poisoned((size_t)rows * 4);
    QBT_OK(qb_cuda_graph_begin(c, &err));
    QBT_OK(qb_cuda_gemv(c, ws, 1, d_x, d_y, 0, &err));
    QBT_OK(qb_cuda_graph_end(c, &graph, &err));
    for (int rep = 0; rep < 2; rep++) {
        for (int64_t i = 0; i < cols; i++) { /* the reference sees the bf16 the GPU reads */
            x[i] = qb_f32_to_bf16(frand());
            xf[i] = qb_bf16_to_f32(x[i]);
        }
        QBT_OK(qb_cuda_upload(d_x, x, (size_t)cols * 2, &err));
        QBT_OK(qb_cuda_graph_launch(c, graph, &err));
        QBT_OK(qb_cuda_sync(c, &err));
        ref_linear(wf, NULL, rows, cols, xf, 1, ref, (int)rows, 0);
        float *got = download_f32(d_y, (size_t)rows);
        expect_close("graph replay", got, ref, (size_t)rows, TOL_F32);
        free(got);
    }
    qb_cuda_graph_free(graph), qb_cuda_weight_free(&w), qb_cuda_free(d_x), qb_cuda_free(d_y);
    qb_cuda_ctx_free(c);
    free(wf), free(xf), free(x), free(ref);
}

/* CUDA failures come back as our status with a readable line, never a crash. */
Test(cuda_kernels, errors_become_qb_status)
{
    QBT_REQUIRE_GPU();
    void *p = NULL;
    struct qb_err e = {0};
    cr_assert_eq(qb_cuda_alloc(&p, (size_t)1 << 50, "a petabyte", &e), QB_ERR_NOMEM);
    cr_assert_null(p);
    cr_assert(strstr(e.msg, "a petabyte"), "%s", e.msg);
    cr_assert_eq(qb_cuda_upload((void *)16, &e, 8, &e), QB_ERR_CUDA);
    cr_assert(strstr(e.msg, "cudaMemcpy"), "%s", e.msg);
    struct qb_cuda_ctx *c = ctx_new(); /* the context still works after the errors */
    QBT_OK(qb_cuda_sync(c, &err));
    qb_cuda_ctx_free(c);
}

/* The comparator itself fires on a seeded mismatch and on NaN. */
Test(cuda_kernels, comparator_self_check)
{
    float a[4] = {1, 2, 3, 4}, b[4] = {1, 2, 3, 4.1f}, c[4] = {1, NAN, 3, 4};
    cr_assert(qbt_rel_l2(a, a, 4) == 0);
    cr_assert(qbt_rel_l2(b, a, 4) > TOL_BF16_OUT);
    cr_assert(!(qbt_rel_l2(c, a, 4) <= 1));
}

Test(cuda_kernels, device_query_and_bandwidth)
{
    QBT_REQUIRE_GPU();
    struct qb_cuda_device d;
    double gbs = 0;
    QBT_OK(qb_cuda_device_query(&d, &err));
    QBT_OK(qb_cuda_measure_bandwidth(&gbs, &err));
    cr_log_info("%s: sm_%d%d, %d SMs, %.1f GiB, copy bandwidth %.0f GB/s (bus estimate %.0f)",
                d.name, d.cc_major, d.cc_minor, d.sm_count, d.mem_total / 1073741824.0, gbs,
                d.peak_bw_gbs);
    cr_assert(gbs > 10 && d.sm_count > 0);
}

#else /* !QB_HAVE_CUDA */

Test(cuda_kernels, skipped_without_cuda)
{
    struct qb_err e = {0};
    struct qb_cuda_device d;
    cr_assert_eq(qb_cuda_available(), 0);
    cr_assert_eq(qb_cuda_device_query(&d, &e), QB_ERR_NO_DEVICE);
    cr_skip_test("built without CUDA (-DQUANTBENCH_CUDA=OFF)");
}

#endif
