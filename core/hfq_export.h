/*
 * hfq_export.h - write a quantized model as a Hugging Face checkpoint that the
 * serving stacks load (`quantbench quantize MODEL --scheme S --format hf`).
 *
 * The layout follows the model's scheme (m->scheme.name):
 *
 *   gptq-int2/3/4/8  AutoGPTQ / transformers / vLLM "gptq" (v1) layout per linear P:
 *                    P.qweight I32 [K*b/32][N]  codes along K, LSB first, a continuous
 *                                               b-bit stream per column (3-bit spills)
 *                    P.qzeros  I32 [K/g][N*b/32] (zero - 1) mod 2^b along N (v1 offset)
 *                    P.scales  F16 [K/g][N],  P.g_idx I32 [K] (group of each input)
 *                    quantization_config {quant_method gptq, bits, group_size, desc_act,
 *                    sym, checkpoint_format "gptq"} + quantize_config.json.
 *                    v1 cannot hold zero 0 (asymmetric groups whose minimum is
 *                    above -scale/2): it is stored as 2^b-1, which v1 readers
 *                    (AutoGPTQ, exllama, vLLM) decode as zero 2^b and our loader
 *                    wraps back to 0; such groups are counted in
 *                    qb_hfq_export_result.gptq_zero0_groups so the caller can warn.
 *                    opts.gptq_v2 writes true zeros with checkpoint_format
 *                    "gptq_v2" (GPTQModel) instead: exact for every reader of v2.
 *   awq-int4         AutoAWQ GEMM: P.qweight I32 [K][N/8], P.qzeros I32 [K/g][N/8]
 *                    (8 output columns per word in order 0,2,4,6,1,3,5,7, true zeros),
 *                    P.scales F16 [K/g][N]; {quant_method awq, version gemm, ...}.
 *   nvfp4            compressed-tensors nvfp4-pack-quantized, weight-only:
 *                    P.weight_packed U8 [N][K/2] (even element low nibble),
 *                    P.weight_scale F8_E4M3 [N][K/16], P.weight_global_scale F32 [1]
 *                    (= 448*6/amax, our convention too: w = e2m1*scale/global).
 *   nvfp4-w4a4       TensorRT Model Optimizer: P.weight U8 [N][K/2], P.weight_scale
 *                    F8_E4M3 [N][K/16], P.weight_scale_2 F32 [] (= 1/global),
 *                    P.input_scale F32 [] (= calibrated input amax / (6*448)),
 *                    hf_quant_config.json {quant_algo NVFP4, group_size 16} and
 *                    quantization_config {quant_method modelopt, ...}.
 *   fp8              compressed-tensors float-quantized: P.weight F8_E4M3 [N][K],
 *                    P.weight_scale F32 [N][1] (channel strategy).
 *   nf4, nf4-dq      bitsandbytes Linear4bit state dict: P.weight U8 [(N*K+1)/2][1]
 *                    (even element high nibble), P.weight.absmax (F32, or U8 codes with
 *                    P.weight.nested_absmax F32 + P.weight.nested_quant_map F32[256]
 *                    for nf4-dq), P.weight.quant_map F32[16],
 *                    P.weight.quant_state.bitsandbytes__nf4 (U8 bytes of the JSON).
 *
 * Embeddings, lm_head, norms and biases are copied from the source checkpoint in
 * their dtype; config.json gains quantization_config; tokenizer/generation files
 * are copied. Weights go to one model.safetensors (written atomically). The
 * conversion is exact: loading the result (hfq_load.h) gives the same packed
 * values (NVFP4 through ModelOpt's reciprocal scale: within 1 ulp of the scale).
 */
#ifndef QB_HFQ_EXPORT_H
#define QB_HFQ_EXPORT_H

#include <stddef.h>

#include "model.h"
#include "progress.h"
#include "qb_common.h"

struct qb_hfq_export_opts {
    /* nvfp4-w4a4: calibration text for the input amax (required for that scheme);
     * the first calib_chunks chunks of calib_ctx tokens are run (defaults 4 x 256). */
    const char *calib_text;
    size_t calib_len;
    int calib_chunks;
    int calib_ctx;
    int n_threads; /* CPU threads for the calibration pass, 0 = all */
    int gptq_v2;   /* write true zeros, checkpoint_format "gptq_v2" */
};

struct qb_hfq_export_result {
    char layout[32];             /* "gptq", "awq-gemm", "compressed-tensors-nvfp4", ... */
    int n_linears;               /* decoder linears written */
    long long gptq_zero0_groups; /* see above */
};

/* The layout name a scheme exports to, or NULL when --format hf does not cover it. */
const char *qb_hfq_layout_for_scheme(const char *scheme_name);

/* Write m (quantized; m->scheme names the layout) into out_dir (created if needed;
 * must differ from m->dir). QB_ERR_UNSUPPORTED names the schemes that export. */
enum qb_status qb_hfq_export(const struct qb_model *m, const char *out_dir,
                             const struct qb_hfq_export_opts *opts, struct qb_progress *progress,
                             struct qb_hfq_export_result *res, struct qb_err *err);

#endif /* QB_HFQ_EXPORT_H */
