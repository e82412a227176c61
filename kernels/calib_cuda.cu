/*
 * calib_cuda.cu - the calibration context of qb_cuda_calib.h: device memory for
 * the activations and one decoder layer, the per-sample layer forward with a tap
 * on a linear's input, and the Hessian accumulator. GPTQ itself is gptq_cuda.cu.
 *
 * The forward is engine_cuda.cu's prefill for one sequence at positions
 * 0..L-1 (L = seqlen), built from the same kernels (qb_cuda.h), with the layer's
 * weights uploaded by qb_cuda_weight_upload (bf16 for dtype views, the packed
 * layout once a linear is quantized) so that a quantized predecessor feeds the
 * next capture exactly as the CUDA engine would run it.
 *
 * Hessian accumulation, per call of n tokens (a sample):
 *   gram [cols][cols] f32 = X^T X    cublasGemmEx, bf16 inputs, f32 accumulate
 *   h    [cols][cols] f64 += gram    one kernel
 * The bf16 products are exact in f32, so this is the CPU's f32-per-call,
 * f64-across-calls sum (qb_hessian_add) up to summation order.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "calib_cuda.cuh"

extern "C" {
#include "config.h"
#include "engine.h"
#include "quant.h"
}

#define ADD_THREADS 256

/* ---- checks and memory bookkeeping ------------------------------------------------ */

extern "C" enum qb_status qb_cuda_calib_check(const struct qb_model *m, int seqlen,
                                              struct qb_err *err)
{
    const struct qb_config *c = &m->cfg;
    if (!qb_cuda_available())
        return qb_err_set(err, QB_ERR_NO_DEVICE, "no usable CUDA GPU for calibration; use "
                          "--backend cpu");
    if (c->head_dim != 64 && c->head_dim != 128 && c->head_dim != 256)
        return qb_err_set(err, QB_ERR_UNSUPPORTED, "GPU calibration supports head_dim 64, 128 "
                          "or 256, this model has %d; use --backend cpu", c->head_dim);
    if (c->hidden % 8 || c->intermediate % 8 || c->hidden > 8192 || c->n_kv_heads <= 0 ||
        c->n_heads % c->n_kv_heads || seqlen < 1 || seqlen > 65535)
        return qb_err_set(err, QB_ERR_UNSUPPORTED, "GPU calibration needs hidden and "
                          "intermediate sizes divisible by 8, hidden <= 8192, whole GQA groups "
                          "and at most 65535 tokens per sample; use --backend cpu");
    return QB_OK;
}

void qb_calib_note_mem(struct qb_cuda_calib *c)
{
    size_t free_b = 0, total_b = 0;
    if (cudaMemGetInfo(&free_b, &total_b) == cudaSuccess && total_b - free_b > c->peak_bytes)
        c->peak_bytes = total_b - free_b;
}

extern "C" const char *qb_cuda_calib_device_name(const struct qb_cuda_calib *c)
{
    return c->device;
}

extern "C" size_t qb_cuda_calib_peak_bytes(const struct qb_cuda_calib *c)
{
    return c->peak_bytes;
}

/* ---- creation ---------------------------------------------------------------------- */

static enum qb_status alloc_forward(struct qb_cuda_calib *c, struct qb_err *err)
{
    enum qb_status st;
    size_t L = (size_t)c->L, a_width = (size_t)QB_MAX(c->H, c->q_dim);
    size_t cache = (size_t)c->shape.n_kv_heads * L * (size_t)c->shape.head_dim * 2;
    int half = c->m->cfg.head_dim / 2;
    double *freq = (double *)qb_malloc_array((size_t)half, sizeof(double));
    float *freq32 = (float *)qb_malloc_array((size_t)half, sizeof(float));
    int32_t zero = 0;
    c->embed_row = (float *)qb_malloc_array(L * (size_t)c->H, sizeof(float));
    if (!freq || !freq32 || !c->embed_row) {
        st = qb_err_set(err, QB_ERR_NOMEM, "out of host memory for GPU calibration");
        goto out;
    }
    st = qb_cuda_alloc((void **)&c->x, (size_t)c->S * L * c->H * sizeof(float),
                       "the calibration activations", err);
    if (!st)
        st = qb_cuda_alloc((void **)&c->work, L * c->H * sizeof(float), "a sample's copy", err);
    if (!st)
        st = qb_cuda_alloc((void **)&c->qkv, L * (c->q_dim + 2 * c->kv_dim) * sizeof(float),
                           "q/k/v activations", err);
    if (!st)
        st = qb_cuda_alloc((void **)&c->gu, L * 2 * c->inter * sizeof(float),
                           "gate/up activations", err);
    if (!st)
        st = qb_cuda_alloc((void **)&c->a, L * a_width * 2, "linear inputs", err);
    if (!st)
        st = qb_cuda_alloc((void **)&c->a2, L * c->inter * 2, "MLP activations", err);
    if (!st)
        st = qb_cuda_alloc((void **)&c->k_cache, cache, "the K cache", err);
    if (!st)
        st = qb_cuda_alloc((void **)&c->v_cache, cache, "the V cache", err);
    if (!st)
        st = qb_cuda_alloc((void **)&c->d_pos, sizeof(int32_t), "position", err);
    if (!st)
        st = qb_cuda_upload(c->d_pos, &zero, sizeof zero, err);
    if (st)
        goto out;
    qb_config_rope_inv_freq(&c->m->cfg, freq);
    for (int i = 0; i < half; i++)
        freq32[i] = (float)freq[i];
    st = qb_cuda_alloc((void **)&c->inv_freq, (size_t)half * sizeof(float), "RoPE frequencies",
                       err);
    if (!st)
        st = qb_cuda_upload(c->inv_freq, freq32, (size_t)half * sizeof(float), err);
out:
    free(freq);
    free(freq32);
    return st;
}

extern "C" enum qb_status qb_cuda_calib_create(const struct qb_model *m, int n_samples,
                                               int seqlen, struct qb_cuda_calib **out,
                                               struct qb_err *err)
{
    enum qb_status st = QB_OK;
    struct qb_cuda_calib *c = NULL;
    struct qb_cuda_device dev;
    *out = NULL;
    if (m && (st = qb_cuda_calib_check(m, seqlen, err)))
        return st;
    if (m && n_samples < 1)
        return qb_err_set(err, QB_ERR_INTERNAL, "GPU calibration with %d samples", n_samples);
    st = qb_cuda_device_query(&dev, err);
    if (st)
        return st;
    c = (struct qb_cuda_calib *)calloc(1, sizeof *c);
    if (!c)
        return qb_err_set(err, QB_ERR_NOMEM, "out of host memory for GPU calibration");
    snprintf(c->device, sizeof c->device, "%s", dev.name);
    c->layer.index = -1;
    st = qb_cuda_ctx_create(&c->ctx, err);
    if (st)
        goto out;
    CUSOLVER_CHECK(cusolverDnCreate(&c->solver));
    CUSOLVER_CHECK(cusolverDnSetStream(c->solver, c->ctx->stream));
    if (m) {
        const struct qb_config *cfg = &m->cfg;
        c->m = m;
        c->S = n_samples;
        c->L = seqlen;
        c->H = cfg->hidden;
        c->inter = cfg->intermediate;
        c->q_dim = cfg->n_heads * cfg->head_dim;
        c->kv_dim = cfg->n_kv_heads * cfg->head_dim;
        c->shape.n_heads = cfg->n_heads;
        c->shape.n_kv_heads = cfg->n_kv_heads;
        c->shape.head_dim = cfg->head_dim;
        c->shape.max_ctx = seqlen;
        c->eps = cfg->rms_eps;
        st = alloc_forward(c, err);
    }
    if (!st)
        qb_calib_note_mem(c);
out:
    if (st)
        qb_cuda_calib_free(c);
    else
        *out = c;
    return st;
}

static void layer_free(struct calib_layer *l)
{
    for (int s = 0; s < QB_LIN_COUNT; s++)
        qb_cuda_weight_free(&l->lin[s]);
    qb_cuda_free(l->attn_norm);
    qb_cuda_free(l->ffn_norm);
    qb_cuda_free(l->q_norm);
    qb_cuda_free(l->k_norm);
    memset(l, 0, sizeof *l);
    l->index = -1;
}

extern "C" void qb_cuda_calib_free(struct qb_cuda_calib *c)
{
    if (!c)
        return;
    if (c->ctx)
        qb_cuda_sync(c->ctx, NULL);
    layer_free(&c->layer);
    qb_calib_factor_free(&c->fac);
    qb_cuda_free(c->x);
    qb_cuda_free(c->work);
    qb_cuda_free(c->qkv);
    qb_cuda_free(c->gu);
    qb_cuda_free(c->a);
    qb_cuda_free(c->a2);
    qb_cuda_free(c->k_cache);
    qb_cuda_free(c->v_cache);
    qb_cuda_free(c->inv_freq);
    qb_cuda_free(c->d_pos);
    qb_cuda_free(c->h);
    qb_cuda_free(c->gram);
    qb_cuda_free(c->h_stage);
    free(c->embed_row);
    if (c->solver)
        cusolverDnDestroy(c->solver);
    qb_cuda_ctx_free(c->ctx);
    free(c);
}

/* ---- embedding and layers ------------------------------------------------------------- */

extern "C" enum qb_status qb_cuda_calib_embed(struct qb_cuda_calib *c, int sample,
                                              const int32_t *ids, struct qb_err *err)
{
    const struct qb_model *m = c->m;
    const struct qb_wfmt_traits *tr = qb_wfmt_get(m->embed.fmt);
    if (sample < 0 || sample >= c->S)
        return qb_err_set(err, QB_ERR_INTERNAL, "GPU calibration: sample %d of %d", sample, c->S);
    for (int t = 0; t < c->L; t++) {
        if (ids[t] < 0 || ids[t] >= m->cfg.vocab)
            return qb_err_set(err, QB_ERR_RANGE, "token id %d at position %d is outside the "
                              "vocabulary (%d)", ids[t], t, m->cfg.vocab);
        tr->dequant_rows(&m->embed, ids[t], 1, c->embed_row + (size_t)t * c->H);
    }
    return qb_cuda_upload(c->x + (size_t)sample * c->L * c->H, c->embed_row,
                          (size_t)c->L * c->H * sizeof(float), err);
}

static enum qb_status upload_vec(float **dst, const float *src, size_t n, const char *what,
                                 struct qb_err *err)
{
    enum qb_status st;
    *dst = NULL;
    if (!src)
        return QB_OK;
    st = qb_cuda_alloc((void **)dst, n * sizeof(float), what, err);
    if (!st)
        st = qb_cuda_upload(*dst, src, n * sizeof(float), err);
    return st;
}

/* The packed-weight scratch covers every linear of the layer. */
static enum qb_status reserve_dequant(struct qb_cuda_calib *c, const struct qb_layer *l,
                                      struct qb_err *err)
{
    size_t most = 0;
    for (int s = 0; s < QB_LIN_COUNT; s++)
        most = QB_MAX(most, (size_t)l->lin[s].rows * (size_t)l->lin[s].cols);
    return qb_cuda_ctx_reserve_dequant(c->ctx, most, err);
}

static enum qb_status upload_linear(struct qb_cuda_calib *c, int layer, enum qb_linear_slot s,
                                    struct qb_err *err)
{
    char name[64];
    const struct qb_linear *lin = &c->m->layers[layer].lin[s];
    snprintf(name, sizeof name, "layer %d %s", layer, qb_linear_slot_name(s));
    if (!qb_cuda_supports(lin->fmt, lin->qp.act))
        return qb_err_set(err, QB_ERR_UNSUPPORTED, "GPU calibration: %s is in a format the GPU "
                          "has no kernels for; use --backend cpu", name);
    qb_cuda_weight_free(&c->layer.lin[s]);
    return qb_cuda_weight_upload(lin, name, &c->layer.lin[s], err);
}

extern "C" enum qb_status qb_cuda_calib_load_layer(struct qb_cuda_calib *c, int layer,
                                                   struct qb_err *err)
{
    const struct qb_layer *l = &c->m->layers[layer];
    enum qb_status st = qb_cuda_sync(c->ctx, err); /* the old layer may still be in use */
    if (st)
        return st;
    layer_free(&c->layer);
    for (int s = 0; s < QB_LIN_COUNT && !st; s++)
        st = upload_linear(c, layer, (enum qb_linear_slot)s, err);
    if (!st)
        st = upload_vec(&c->layer.attn_norm, l->attn_norm, c->H, "attention norm", err);
    if (!st)
        st = upload_vec(&c->layer.ffn_norm, l->ffn_norm, c->H, "MLP norm", err);
    if (!st)
        st = upload_vec(&c->layer.q_norm, l->q_norm, c->shape.head_dim, "q_norm", err);
    if (!st)
        st = upload_vec(&c->layer.k_norm, l->k_norm, c->shape.head_dim, "k_norm", err);
    if (!st)
        st = reserve_dequant(c, l, err);
    if (!st)
        c->layer.index = layer;
    qb_calib_note_mem(c);
    return st;
}

extern "C" enum qb_status qb_cuda_calib_reload_linear(struct qb_cuda_calib *c,
                                                      enum qb_linear_slot slot,
                                                      struct qb_err *err)
{
    if (c->layer.index < 0)
        return qb_err_set(err, QB_ERR_INTERNAL, "GPU calibration: no layer loaded");
    enum qb_status st = qb_cuda_sync(c->ctx, err); /* the old weights may still be in use */
    return st ? st : upload_linear(c, c->layer.index, slot, err);
}

/* ---- Hessian ---------------------------------------------------------------------------- */

static __global__ void add_gram_kernel(double *h, const float *g, size_t n)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (; i < n; i += stride)
        h[i] += (double)g[i];
}

static __global__ void scale_kernel(double *h, double f, size_t n)
{
    size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    size_t stride = (size_t)gridDim.x * blockDim.x;
    for (; i < n; i += stride)
        h[i] *= f;
}

static unsigned grid_for(size_t n)
{
    size_t g = (n + ADD_THREADS - 1) / ADD_THREADS;
    return (unsigned)QB_MIN(g, (size_t)65535 * 8);
}

static enum qb_status hessian_reserve(struct qb_cuda_calib *c, int64_t cols, struct qb_err *err)
{
    enum qb_status st = QB_OK;
    size_t nn = (size_t)cols * (size_t)cols;
    if (cols <= c->h_cap)
        return QB_OK;
    qb_cuda_free(c->h);
    qb_cuda_free(c->gram);
    c->h = NULL;
    c->gram = NULL;
    c->h_cap = 0;
    st = qb_cuda_alloc((void **)&c->h, nn * sizeof(double), "a Hessian", err);
    if (!st)
        st = qb_cuda_alloc((void **)&c->gram, nn * sizeof(float), "a Hessian's Gram scratch",
                           err);
    if (!st)
        c->h_cap = cols;
    return st;
}

extern "C" enum qb_status qb_cuda_hessian_begin(struct qb_cuda_calib *c, int64_t cols,
                                                struct qb_err *err)
{
    enum qb_status st = hessian_reserve(c, cols, err);
    if (st)
        return st;
    c->h_cols = cols;
    c->h_n = 0;
    c->h_finished = 0;
    c->h_gen++;
    CUDA_CHECK(cudaMemsetAsync(c->h, 0, (size_t)cols * (size_t)cols * sizeof(double),
                               c->ctx->stream));
out:
    return st;
}

/* sum += X^T X for device bf16 x [n][cols] (row-major = column-major x^T [cols][n]). */
static enum qb_status hessian_add_device(struct qb_cuda_calib *c, const uint16_t *x, int64_t n,
                                         int64_t cols, struct qb_err *err)
{
    enum qb_status st = QB_OK;
    const float one = 1.0f, zero = 0.0f;
    size_t nn = (size_t)cols * (size_t)cols;
    if (cols != c->h_cols || c->h_finished)
        return qb_err_set(err, QB_ERR_INTERNAL, "Hessian of %lld columns fed %lld (finished %d)",
                          (long long)c->h_cols, (long long)cols, c->h_finished);
    CUBLAS_CHECK(cublasGemmEx(c->ctx->blas, CUBLAS_OP_N, CUBLAS_OP_T, (int)cols, (int)cols,
                              (int)n, &one, x, CUDA_R_16BF, (int)cols, x, CUDA_R_16BF,
                              (int)cols, &zero, c->gram, CUDA_R_32F, (int)cols,
                              CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
    add_gram_kernel<<<grid_for(nn), ADD_THREADS, 0, c->ctx->stream>>>(c->h, c->gram, nn);
    LAUNCH_CHECK();
    c->h_n += n;
out:
    return st;
}

extern "C" enum qb_status qb_cuda_hessian_add_bf16(struct qb_cuda_calib *c, const uint16_t *x,
                                                   int64_t n, struct qb_err *err)
{
    enum qb_status st = QB_OK;
    size_t elems = (size_t)n * (size_t)c->h_cols;
    if (elems > c->h_stage_elems) {
        qb_cuda_free(c->h_stage);
        c->h_stage = NULL;
        c->h_stage_elems = 0;
        st = qb_cuda_alloc((void **)&c->h_stage, elems * 2, "Hessian inputs", err);
        if (st)
            return st;
        c->h_stage_elems = elems;
    }
    st = qb_cuda_upload(c->h_stage, x, elems * 2, err);
    if (!st)
        st = hessian_add_device(c, c->h_stage, n, c->h_cols, err);
    return st;
}

extern "C" enum qb_status qb_cuda_hessian_finish(struct qb_cuda_calib *c, struct qb_err *err)
{
    enum qb_status st = QB_OK;
    size_t nn = (size_t)c->h_cols * (size_t)c->h_cols;
    double f = c->h_n > 0 ? 2.0 / (double)c->h_n : 0.0;
    scale_kernel<<<grid_for(nn), ADD_THREADS, 0, c->ctx->stream>>>(c->h, f, nn);
    LAUNCH_CHECK();
    c->h_finished = 1;
    qb_calib_note_mem(c);
out:
    return st;
}

extern "C" enum qb_status qb_cuda_hessian_set(struct qb_cuda_calib *c, const double *h,
                                              int64_t cols, struct qb_err *err)
{
    enum qb_status st = hessian_reserve(c, cols, err);
    if (st)
        return st;
    c->h_cols = cols;
    c->h_n = 0;
    c->h_finished = 1;
    c->h_gen++;
    return qb_cuda_upload(c->h, h, (size_t)cols * (size_t)cols * sizeof(double), err);
}

extern "C" enum qb_status qb_cuda_hessian_get(struct qb_cuda_calib *c, double *h,
                                              struct qb_err *err)
{
    return qb_cuda_download(h, c->h, (size_t)c->h_cols * (size_t)c->h_cols * sizeof(double),
                            err);
}

/* ---- the layer forward --------------------------------------------------------------------- */

/* Tap the input of `slot` when it is the captured one: 1 = stop the pass. */
static enum qb_status tap(struct qb_cuda_calib *c, int capture, int in_place,
                          enum qb_linear_slot slot, const uint16_t *x, int64_t cols, int *stop,
                          struct qb_err *err)
{
    *stop = 0;
    if (capture != (int)slot)
        return QB_OK;
    *stop = !in_place;
    return hessian_add_device(c, x, c->L, cols, err);
}

static enum qb_status attention_part(struct qb_cuda_calib *c, float *x, int capture,
                                     int in_place, int *stop, struct qb_err *err)
{
    struct calib_layer *l = &c->layer;
    int L = c->L, ldq = c->q_dim + 2 * c->kv_dim;
    enum qb_status st = qb_cuda_rmsnorm(c->ctx, x, l->attn_norm, c->eps, L, c->H, c->a, err);
    for (int s = QB_LIN_Q; !st && !*stop && s <= QB_LIN_V; s++)
        st = tap(c, capture, in_place, (enum qb_linear_slot)s, c->a, c->H, stop, err);
    if (st || *stop)
        return st;
    st = qb_cuda_linear(c->ctx, &l->lin[QB_LIN_Q], c->a, L, c->qkv, ldq, 0, err);
    if (!st)
        st = qb_cuda_linear(c->ctx, &l->lin[QB_LIN_K], c->a, L, c->qkv + c->q_dim, ldq, 0, err);
    if (!st)
        st = qb_cuda_linear(c->ctx, &l->lin[QB_LIN_V], c->a, L, c->qkv + c->q_dim + c->kv_dim,
                            ldq, 0, err);
    if (!st)
        st = qb_cuda_rope_kv(c->ctx, &c->shape, c->qkv, ldq, L, c->d_pos, c->inv_freq,
                             l->q_norm, l->k_norm, c->eps, c->k_cache, c->v_cache, err);
    if (!st)
        st = qb_cuda_attention(c->ctx, &c->shape, c->qkv, ldq, L, c->d_pos, c->k_cache,
                               c->v_cache, c->a, err);
    if (!st)
        st = tap(c, capture, in_place, QB_LIN_O, c->a, c->q_dim, stop, err);
    if (st || *stop)
        return st;
    return qb_cuda_linear(c->ctx, &l->lin[QB_LIN_O], c->a, L, x, c->H, 1, err);
}

static enum qb_status mlp_part(struct qb_cuda_calib *c, float *x, int capture, int in_place,
                               int *stop, struct qb_err *err)
{
    struct calib_layer *l = &c->layer;
    int L = c->L;
    enum qb_status st = qb_cuda_rmsnorm(c->ctx, x, l->ffn_norm, c->eps, L, c->H, c->a, err);
    if (!st)
        st = tap(c, capture, in_place, QB_LIN_GATE, c->a, c->H, stop, err);
    if (!st && !*stop)
        st = tap(c, capture, in_place, QB_LIN_UP, c->a, c->H, stop, err);
    if (st || *stop)
        return st;
    st = qb_cuda_linear(c->ctx, &l->lin[QB_LIN_GATE], c->a, L, c->gu, 2 * c->inter, 0, err);
    if (!st)
        st = qb_cuda_linear(c->ctx, &l->lin[QB_LIN_UP], c->a, L, c->gu + c->inter, 2 * c->inter,
                            0, err);
    if (!st)
        st = qb_cuda_swiglu(c->ctx, c->gu, L, c->inter, c->a2, err);
    if (!st)
        st = tap(c, capture, in_place, QB_LIN_DOWN, c->a2, c->inter, stop, err);
    if (st || *stop)
        return st;
    return qb_cuda_linear(c->ctx, &l->lin[QB_LIN_DOWN], c->a2, L, x, c->H, 1, err);
}

extern "C" enum qb_status qb_cuda_calib_forward(struct qb_cuda_calib *c, int sample, int capture,
                                                int in_place, struct qb_err *err)
{
    enum qb_status st = QB_OK;
    float *x = c->x + (size_t)sample * c->L * c->H;
    int stop = 0;
    if (c->layer.index < 0 || sample < 0 || sample >= c->S)
        return qb_err_set(err, QB_ERR_INTERNAL, "GPU calibration forward: layer %d sample %d",
                          c->layer.index, sample);
    if (!in_place) {
        CUDA_CHECK(cudaMemcpyAsync(c->work, x, (size_t)c->L * c->H * sizeof(float),
                                   cudaMemcpyDeviceToDevice, c->ctx->stream));
        x = c->work;
    }
    st = attention_part(c, x, capture, in_place, &stop, err);
    if (!st && !stop)
        st = mlp_part(c, x, capture, in_place, &stop, err);
    if (!st && sample == 0)
        qb_calib_note_mem(c);
out:
    return st;
}

extern "C" enum qb_status qb_cuda_calib_get_x(struct qb_cuda_calib *c, int sample, float *out,
                                              struct qb_err *err)
{
    return qb_cuda_download(out, c->x + (size_t)sample * c->L * c->H,
                            (size_t)c->L * c->H * sizeof(float), err);
}
