/*
 * quantize.h - quantize a model and write the result to disk.
 *
 * One entry point for `quantbench quantize` and the dashboard's quantize job:
 *   gguf-* schemes       -> a GGUF file (+ an Ollama Modelfile beside it)
 *   format_hf            -> a Hugging Face quantized checkpoint (GPTQ, AWQ GEMM,
 *                           compressed-tensors FP8/NVFP4, ModelOpt NVFP4, bnb NF4)
 *   otherwise            -> our layout (qbfmt.h): GPTQ and AWQ schemes streamed layer by
 *                           layer from the calibration pipeline, or RTN int4/int4-sym
 * Everything is written into a temporary name and renamed at the end;
 * cancellation (qb_progress_cancel) leaves nothing behind.
 */
#ifndef QB_QUANTIZE_H
#define QB_QUANTIZE_H

#include "model.h"
#include "progress.h"
#include "quant_pipeline.h"

struct qb_quantize_opts {
    const char *model;       /* checkpoint directory */
    const char *scheme;      /* flat scheme name */
    const char *out;         /* output directory, or FILE.gguf */
    int group;               /* 0 = the scheme's default */
    int format_hf;           /* write a Hugging Face quantized checkpoint */
    int gptq_v2;             /* with format_hf: GPTQ checkpoint_format gptq_v2 */
    struct qb_qpipe_opts po; /* calibration options (calib path, samples, seqlen, seed, GPTQ
                                flags, n_threads) */
};

/* Quantize and write. On success *model_out is the quantized model for reporting
 * (caller frees with qb_model_free; NULL for GGUF), rep the pipeline's report. */
enum qb_status qb_quantize_run(struct qb_quantize_opts *o, struct qb_progress *progress,
                               struct qb_model **model_out, struct qb_qpipe_report *rep,
                               struct qb_err *err);

#endif /* QB_QUANTIZE_H */
