/*
 * quant_pipeline_impl.h - what the calibrated pipeline's drivers share inside
 * core/: quant_pipeline.c (the CPU reference, and the AWQ driver, whose search calls
 * kernels/qb_cuda_awq.h when qb_qpipe_awq_on_gpu says so) and quant_pipeline_gpu.c
 * (GPTQ with the layer forward, Hessians and GPTQ on the GPU).
 */
#ifndef QB_QUANT_PIPELINE_IMPL_H
#define QB_QUANT_PIPELINE_IMPL_H

#include "quant_pipeline.h"

/* Replace lin by the packed linear of q (bit-exact to qb_qresult_dequant); keeps the bias. */
enum qb_status qb_qpipe_install_packed(struct qb_linear *lin, const struct qb_qresult *q,
                                       const char *name, struct qb_err *err);
/* Release the checkpoint pages of decoder layer `layer` (madvise DONTNEED). */
void qb_qpipe_release_layer(const struct qb_model *m, int layer);

/* 1 when GPTQ of m with options o and seqlen calibrates on the GPU: the backend
 * resolves to CUDA and the GPU path takes the model. QB_BACKEND_CUDA that cannot
 * is an error (*st set, 0 returned); auto falls back to the CPU silently. */
int qb_qpipe_gptq_on_gpu(const struct qb_model *m, const struct qb_qpipe_opts *o, int seqlen,
                         enum qb_status *st, struct qb_err *err);

/* 1 when AWQ with options o runs its search on the GPU (kernels/qb_cuda_awq.h; the
 * layer forwards stay on the CPU): the backend resolves to CUDA, a GPU is present
 * and the group is one the kernels take. Errors and fallback as for GPTQ above. */
int qb_qpipe_awq_on_gpu(const struct qb_qpipe_opts *o, enum qb_status *st, struct qb_err *err);

/* GPTQ of m, true-sequential as the CPU driver, on the GPU (quant_pipeline_gpu.c).
 * rep->stats is allocated by the caller; fills the rest of rep except seconds
 * and peak RSS. QB_ERR_NO_DEVICE in a build without CUDA. */
enum qb_status qb_qpipe_gptq_gpu(struct qb_model *m, const struct qb_qpipe_opts *o,
                                 const struct qb_calib_data *cd, struct qb_progress *progress,
                                 struct qb_qpipe_report *rep, struct qb_err *err);

#endif /* QB_QUANT_PIPELINE_IMPL_H */
