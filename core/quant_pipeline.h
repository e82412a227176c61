/*
 * quant_pipeline.h - calibrated quantization (GPTQ, AWQ) of a loaded model, one
 * decoder layer at a time.
 *
 * The calibration windows (core/calib.h) are embedded once; then for each
 * decoder layer only that layer's weights and the activations [samples][seqlen]
 * [hidden] are live: the layer runs on the CPU engine (qb_cpu_layer_forward)
 * with a hook that sees each linear's input, the layer is quantized, the
 * activations move on to the next layer, and the layer's checkpoint pages are
 * released (qb_ckpt_release), so peak memory is about one layer plus the
 * activations rather than the model.
 *
 * GPTQ (true-sequential, as gptq.py's llama.py): Hessians of [q,k,v] inputs ->
 * quantize q,k,v; re-run the layer -> o; re-run -> gate,up; re-run -> down;
 * re-run the quantized layer to produce the next layer's inputs. When the
 * backend resolves to CUDA the same schedule runs on the GPU
 * (quant_pipeline_gpu.c over kernels/qb_cuda_calib.h): activations, the layer
 * forward (bf16 linear inputs, as the CUDA engine), Hessians, the Cholesky factor
 * and the column loop on the device; results match the CPU path within the
 * tolerances of tests/test_cuda_gptq.c.
 * AWQ (AutoAWQ's method, with the changes below): one pass with the layer in
 * full precision captures input statistics and Hessians on every calibration
 * token; scale search s = x_mean^a / w_mean^(1-a) over 20 a per group (q/k/v
 * with the input norm, o with v only when v's output dim equals o's input dim,
 * gate/up with the post-attention norm, down with up), scales folded into the
 * previous op; asymmetric clip search on every linear (q/k too); int4 g128
 * zero-point quantization. The quantized layer's output feeds the next layer
 * (as GPTQ). The searches run on the first QB_AWQ_SEARCH_TOKENS tokens' worth
 * of whole samples. Measured on the demo model (all 243 eval chunks, share of
 * RTN int4's perplexity increase; AutoAWQ as such: 71 %):
 *   - quantized layer outputs forwarded instead of AutoAWQ's fp ones: 67 %;
 *     8192 search tokens: no gain;
 *   - clipping q/k as well: 65.5 %;
 *   - clipping by awq.h's range search on the Hessian (every token, not 512),
 *     min and max shrunk separately (the quantizer has a zero point): 56.9 %
 *     (the final method with the symmetric +-max|w| grid instead: 55.2 %);
 *   - the loss target is the full-precision model: a full-precision stream of
 *     the search samples runs beside the quantized one (pipe.awq_fp), and the
 *     searches, whose inputs come from the quantized predecessors, aim at the
 *     output that restores the fp stream (o: the attention output that makes
 *     the residual equal the fp stream's; gate/up and down: the MLP output
 *     that makes the layer output equal it);
 *   - q/k/v's scales judged on the whole layer's output (the MLP in full
 *     precision) against the fp stream's instead of on the attention output;
 *     with the two above: 37.5 % (the method as it stands; GPTQ: 47.5 %).
 *   Tried and left out: scaling o with v under GQA (one scale per v row shared
 *   by the o channels of the query heads reading it; AutoAWQ skips o there):
 *   56.9 -> 53.1 % on the range search alone, but 37.5 -> 42.7 % on the final
 *   method (mean KLD 0.01185 -> 0.01180, i.e. within noise either way).
 *   Screens on 64 chunks ranked these changes wrongly on perplexity (the
 *   range search read 80 % there while its KLD fell 10 %): judge on all chunks.
 * The scale search costs 20 forwards of Ss samples through the layer per
 * layer; the fp stream 1 forward of Ss samples.
 * When the backend resolves to CUDA (and --group is 32, 64 or 128) the search's
 * other costs move to the GPU (kernels/qb_cuda_awq.h): the trial quantizations
 * and losses of the o, gate/up and down searches (f32 SGEMMs without TF32) and
 * the range search; the capture pass, the fp stream and q/k/v's whole-layer
 * loss stay on the CPU engine. Choices match the CPU path's except between
 * candidates whose losses tie within the tolerances of tests/test_cuda_awq.c.
 *
 * Result in the model: each decoder linear is replaced by its packed linear
 * (qb_linear_pack_groups: INT4, INT4_SYM or UINT_G with g_idx); the integer
 * codes, scales, zeros and g_idx of every linear also go to the optional sink
 * (the qbfmt writer) as they are produced. m->scheme becomes the calibrated
 * scheme.
 *
 * Per linear the report holds ||W X - W^ X||^2 / n over the calibration tokens
 * for the method and for RTN with the same grid (gptq.h), X being the linear's
 * input in the unquantized model's basis (for AWQ the scales are folded back).
 */
#ifndef QB_QUANT_PIPELINE_H
#define QB_QUANT_PIPELINE_H

#include "calib.h"
#include "eval.h"
#include "gptq.h"
#include "model.h"
#include "progress.h"
#include "quant.h"

#define QB_AWQ_SEARCH_TOKENS 4096

/* Receives each quantized linear (borrowed for the call). */
typedef enum qb_status (*qb_qpipe_sink)(void *ctx, int layer, enum qb_linear_slot slot,
                                        const struct qb_qresult *q, struct qb_err *err);

struct qb_qpipe_opts {
    enum qb_method method;        /* QB_METHOD_GPTQ or QB_METHOD_AWQ */
    int bits;                     /* 2, 3, 4, 8 (AWQ: 4) */
    int group;                    /* default 128 */
    int sym, act_order, static_groups; /* GPTQ only */
    double damp;                  /* GPTQ; 0 = 0.01 */
    enum qb_backend backend;      /* auto (default) and cuda calibrate on the GPU when there
                                     is one (GPTQ wholly, AWQ its search; see
                                     quant_pipeline_impl.h), cpu never */
    struct qb_calib_opts calib;   /* seqlen 0 = method default (2048 GPTQ, 512 AWQ) */
    int n_threads;                /* 0 = all cores */
    qb_qpipe_sink sink;           /* optional */
    void *sink_ctx;
};

struct qb_qpipe_stat {
    double err;                   /* method's reconstruction error per token */
    double rtn_err;               /* RTN's, same linear and tokens */
};

struct qb_qpipe_report {
    int n_layers;
    struct qb_qpipe_stat (*stats)[QB_LIN_COUNT]; /* [n_layers][QB_LIN_COUNT] (malloced) */
    int n_samples, seqlen;
    int capped_by_ctx, capped_by_text;
    size_t packed_bytes;          /* decoder linears in the packed integer-group layout */
    double seconds;
    long peak_rss_kb;             /* getrusage ru_maxrss at the end */
    char device[160];             /* where it calibrated: "cpu" or "cuda (GPU name)" */
    size_t peak_gpu_bytes;        /* GPU memory in use at the peak (cudaMemGetInfo), or 0 */
};

/* Fill method/bits/group/sym defaults from a calibrated scheme name ("gptq-int4",
 * "gptq-int3", "gptq-int8", "gptq-int2", "awq-int4"); group 0 = 128.
 * QB_ERR_USAGE for names that are not calibrated schemes. */
enum qb_status qb_qpipe_opts_from_scheme(const char *name, int group, struct qb_qpipe_opts *o,
                                         struct qb_err *err);
/* 1 when name is a calibrated scheme. */
int qb_qpipe_is_calibrated(const char *name);

/* Quantize m (loaded with its tokenizer, unquantized) in place. */
enum qb_status qb_qpipe_run(struct qb_model *m, const struct qb_qpipe_opts *o,
                            struct qb_progress *progress, struct qb_qpipe_report *rep,
                            struct qb_err *err);
void qb_qpipe_report_free(struct qb_qpipe_report *rep);

/* Peak resident set size of this process in KiB (getrusage). */
long qb_peak_rss_kb(void);

/* Bytes of one linear in the packed integer-group layout (qbfmt.h). */
size_t qb_qresult_packed_bytes(int64_t rows, int64_t cols, int bits, int group);

#endif /* QB_QUANT_PIPELINE_H */
