/*
 * quant_pipeline_gpu.c - GPTQ of a whole model with the calibration on the GPU
 * (kernels/qb_cuda_calib.h), the device twin of quant_pipeline.c's gptq_layer.
 *
 * Same schedule as the CPU driver, per decoder layer:
 *   upload the layer (bf16 as loaded)
 *   for each true-sequential group [q,k,v], [o], [gate,up], [down]:
 *     run every sample through the layer up to the group's input, adding it to
 *     the device Hessian; finish it (H = 2 X^T X / n)
 *     per linear: GPTQ on the device -> codes/scales/zeros (host), the
 *     reconstruction errors of GPTQ and RTN; sink; install the packed linear in
 *     the model and re-upload it, so the next group sees the quantized one
 *   run every sample through the quantized layer in place (next layer's input)
 *   release the layer's checkpoint pages
 * The activations [samples][seqlen][hidden] live on the device only; the host
 * holds one sample's embedding staging, one linear's f32 weights and its result.
 */
#include "quant_pipeline_impl.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kernels/qb_cuda.h"
#include "kernels/qb_cuda_awq.h"
#include "kernels/qb_cuda_calib.h"

int qb_qpipe_gptq_on_gpu(const struct qb_model *m, const struct qb_qpipe_opts *o, int seqlen,
                         enum qb_status *st, struct qb_err *err)
{
    struct qb_err why = {0};
    *st = QB_OK;
    if (qb_backend_resolve(o->backend) != QB_BACKEND_CUDA)
        return 0;
    enum qb_status s = qb_cuda_calib_check(m, seqlen, &why);
    for (int k = 0; !s && k < QB_LIN_COUNT; k++) /* the GPU's packed layout (weight.cu) */
        if (m->layers[0].lin[k].cols % 32 || o->group % 16)
            s = qb_err_set(&why, QB_ERR_UNSUPPORTED, "GPU calibration needs --group a multiple "
                           "of 16 and input widths a multiple of 32 (the GPU's packed "
                           "layout); use --backend cpu");
    if (s && o->backend == QB_BACKEND_CUDA) {
        *st = qb_err_set(err, s, "%s", why.msg);
        return 0;
    }
    return s == QB_OK;
}

int qb_qpipe_awq_on_gpu(const struct qb_qpipe_opts *o, enum qb_status *st, struct qb_err *err)
{
    struct qb_err why = {0};
    struct qb_cuda_device dev;
    *st = QB_OK;
    if (qb_backend_resolve(o->backend) != QB_BACKEND_CUDA)
        return 0;
    enum qb_status s = qb_cuda_device_query(&dev, &why);
    if (!s && !QB_CUDA_AWQ_GROUP_OK(o->group))
        s = qb_err_set(&why, QB_ERR_UNSUPPORTED, "the GPU AWQ search takes --group 32, 64 or "
                       "128, not %d; use --backend cpu", o->group);
    if (s && o->backend == QB_BACKEND_CUDA) {
        *st = qb_err_set(err, s, "%s", why.msg);
        return 0;
    }
    return s == QB_OK;
}

#ifdef QB_HAVE_CUDA

/* The true-sequential groups (as quant_pipeline.c's seq_groups). */
static const enum qb_linear_slot gpu_groups[4][3] = {
    {QB_LIN_Q, QB_LIN_K, QB_LIN_V}, {QB_LIN_O}, {QB_LIN_GATE, QB_LIN_UP}, {QB_LIN_DOWN}};
static const int gpu_group_counts[4] = {3, 1, 2, 1};
#define GPU_STEPS 5 /* four groups + propagation */

struct gpu_pipe {
    struct qb_model *m;
    const struct qb_qpipe_opts *o;
    struct qb_progress *progress;
    struct qb_qpipe_report *rep;
    struct qb_cuda_calib *c;
    int S, layer;
};

static void gpu_progress(struct gpu_pipe *G, int step, int sample, const char *stage)
{
    int N = G->m->cfg.n_layers;
    if (sample == 0) {
        qb_progress_stage(G->progress, stage);
        qb_progress_layer(G->progress, G->layer + 1, N);
        qb_progress_step(G->progress, step + 1, GPU_STEPS);
    }
    double f = ((double)G->layer + (step + (double)sample / G->S) / GPU_STEPS) / N;
    qb_progress_update(G->progress, f, sample, G->S, "samples");
}

/* Every sample through the loaded layer: capture a slot's input (not in place), or
 * propagate (capture -1, in place). */
static enum qb_status gpu_pass(struct gpu_pipe *G, int step, int capture, struct qb_err *err)
{
    const char *stage = capture < 0 ? "propagating (cuda)" : "gptq (cuda)";
    enum qb_status st = QB_OK;
    for (int s = 0; !st && s < G->S; s++) {
        gpu_progress(G, step, s, stage);
        if (qb_progress_cancelled(G->progress))
            return qb_err_set(err, QB_ERR_CANCELLED, "cancelled");
        st = qb_cuda_calib_forward(G->c, s, capture, capture < 0, err);
    }
    return st;
}

static enum qb_status gpu_linear(struct gpu_pipe *G, enum qb_linear_slot slot, struct qb_err *err)
{
    struct qb_linear *lin = &G->m->layers[G->layer].lin[slot];
    struct qb_qpipe_stat *stat = &G->rep->stats[G->layer][slot];
    const struct qb_qpipe_opts *o = G->o;
    struct qb_gptq_opts go = {o->bits, o->group, o->sym, o->act_order, o->static_groups, o->damp};
    struct qb_qresult q = {0};
    float *w = qb_aligned_alloc((size_t)lin->rows * (size_t)lin->cols * sizeof(float));
    enum qb_status st = QB_OK;
    if (!w)
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory quantizing layer %d %s", G->layer,
                          qb_linear_slot_name(slot));
    qb_model_linear_to_f32(lin, w);
    st = qb_cuda_gptq_quantize(G->c, w, lin->rows, lin->cols, &go, &q, NULL, &stat->err,
                               &stat->rtn_err, err);
    free(w);
    if (!st && !isfinite(stat->err))
        st = qb_err_set(err, QB_ERR_NUMERIC, "GPU GPTQ of layer %d %s: reconstruction error is "
                        "%g; use --backend cpu", G->layer, qb_linear_slot_name(slot), stat->err);
    if (st)
        goto out;
    G->rep->packed_bytes += qb_qresult_packed_bytes(q.rows, q.cols, q.bits, q.group);
    if (o->sink)
        st = o->sink(o->sink_ctx, G->layer, slot, &q, err);
    if (st)
        goto out;
    qb_progress_metric(G->progress, "recon err", stat->err);
    qb_progress_log(G->progress, "layer %d %s: recon err %.4g (rtn %.4g, %.0f%%)", G->layer,
                    qb_linear_slot_name(slot), stat->err, stat->rtn_err,
                    stat->rtn_err > 0 ? 100.0 * stat->err / stat->rtn_err : 0.0);
    st = qb_qpipe_install_packed(lin, &q, qb_linear_slot_name(slot), err);
    if (!st)
        st = qb_cuda_calib_reload_linear(G->c, slot, err);
out:
    qb_qresult_free(&q);
    return st;
}

static enum qb_status gpu_layer(struct gpu_pipe *G, struct qb_err *err)
{
    enum qb_status st = qb_cuda_calib_load_layer(G->c, G->layer, err);
    for (int g = 0; !st && g < 4; g++) {
        enum qb_linear_slot first = gpu_groups[g][0];
        st = qb_cuda_hessian_begin(G->c, G->m->layers[G->layer].lin[first].cols, err);
        if (!st)
            st = gpu_pass(G, g, (int)first, err);
        if (!st)
            st = qb_cuda_hessian_finish(G->c, err);
        for (int k = 0; !st && k < gpu_group_counts[g]; k++)
            st = gpu_linear(G, gpu_groups[g][k], err);
    }
    if (!st)
        st = gpu_pass(G, GPU_STEPS - 1, -1, err);
    return st;
}

enum qb_status qb_qpipe_gptq_gpu(struct qb_model *m, const struct qb_qpipe_opts *o,
                                 const struct qb_calib_data *cd, struct qb_progress *progress,
                                 struct qb_qpipe_report *rep, struct qb_err *err)
{
    struct gpu_pipe G = {m, o, progress, rep, NULL, cd->n_samples, 0};
    enum qb_status st = qb_cuda_calib_create(m, cd->n_samples, cd->seqlen, &G.c, err);
    if (st)
        return st;
    snprintf(rep->device, sizeof rep->device, "cuda (%s)", qb_cuda_calib_device_name(G.c));
    qb_progress_log(progress, "calibrating on the GPU: %s", qb_cuda_calib_device_name(G.c));
    qb_progress_stage(progress, "calibrating (cuda)");
    for (int s = 0; !st && s < cd->n_samples; s++)
        st = qb_cuda_calib_embed(G.c, s, cd->ids + (size_t)s * cd->seqlen, err);
    for (int i = 0; !st && i < m->cfg.n_layers; i++) {
        G.layer = i;
        st = gpu_layer(&G, err);
        qb_qpipe_release_layer(m, i);
    }
    rep->peak_gpu_bytes = qb_cuda_calib_peak_bytes(G.c);
    qb_cuda_calib_free(G.c);
    return st;
}

#else

enum qb_status qb_qpipe_gptq_gpu(struct qb_model *m, const struct qb_qpipe_opts *o,
                                 const struct qb_calib_data *cd, struct qb_progress *progress,
                                 struct qb_qpipe_report *rep, struct qb_err *err)
{
    (void)m, (void)o, (void)cd, (void)progress, (void)rep;
    return qb_err_set(err, QB_ERR_NO_DEVICE, "this quantbench was built without CUDA; use "
                      "--backend cpu");
}

#endif /* QB_HAVE_CUDA */
