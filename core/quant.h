/*
 * quant.h - weight storage formats and quantization schemes: the contract
 * between the engines (CPU in core/, CUDA in kernels/) and the format modules
 * (core/quant_<fmt>.c).
 *
 * Two names, kept apart on purpose:
 * - a *weight format* (enum qb_wfmt) is how one linear layer's weights sit in
 *   memory: a dtype view (f32/f16/bf16) or a packed block layout. Block structs
 *   shared with CUDA live in quant_blocks.h with size asserts.
 * - a *scheme* (struct qb_scheme, parsed from flat names such as "int4",
 *   "nf4-dq", "gptq-int4", "gguf-q4_k_m") is what a user picks: a method (RTN,
 *   GPTQ, AWQ, GGUF mix) plus the weight format and its options.
 *
 * Every format has a traits entry (qb_wfmt_traits) with reference quantize
 * and dequantize functions and, optionally, a fused matmul; linear.c uses the
 * traits to run any format.
 */
#ifndef QB_QUANT_H
#define QB_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "qb_common.h"

enum qb_wfmt {
    QB_WFMT_F32 = 0,
    QB_WFMT_F16,
    QB_WFMT_BF16,
    QB_WFMT_INT8,      /* per output row, symmetric; int8 codes + f32 row scale */
    QB_WFMT_INT4,      /* groups along the input, asymmetric (RTN int4, GPTQ, AWQ) */
    QB_WFMT_INT4_SYM,  /* groups along the input, symmetric */
    QB_WFMT_UINT_G,    /* GPTQ 2/3/8-bit groups, asymmetric (bits in params) */
    QB_WFMT_NF4,       /* bitsandbytes NF4, blocks of 64, f32 absmax */
    QB_WFMT_NF4_DQ,    /* NF4 with 8-bit double-quantized absmax */
    QB_WFMT_FP8_E4M3,  /* per-row scale */
    QB_WFMT_FP8_E5M2,  /* per-row scale */
    QB_WFMT_NVFP4,     /* E2M1, blocks of 16, E4M3 block scale, f32 tensor scale */
    QB_WFMT_MXFP4,     /* E2M1, blocks of 32, E8M0 block scale */
    QB_WFMT_GGML,      /* a ggml block type (q8_0, q4_K, ...; ggml type in params) */
    QB_WFMT_COUNT
};

/* How activations are treated in the matmul. */
enum qb_act_mode {
    QB_ACT_F32 = 0,    /* weight-only: activations stay fp32 */
    QB_ACT_NVFP4,      /* W4A4: dynamic NVFP4 activations (per-16 E4M3, per-token f32) */
    QB_ACT_MXFP4,      /* W4A4 MX variant */
    QB_ACT_FP8_E4M3,   /* W8A8: dynamic per-token E4M3 activations */
};

struct qb_quant_params {
    int group;            /* group/block size along the input (0 = format default) */
    int bits;             /* for QB_WFMT_UINT_G */
    int sym;              /* symmetric variant where the format has both */
    int ggml_type;        /* for QB_WFMT_GGML */
    enum qb_act_mode act; /* activation treatment */
    float global_scale;   /* NVFP4 per-tensor scale (written by quantize) */
    const int32_t *g_idx; /* act-order: group of each input column [cols], or NULL */
};

/* A quantized (or dtype-view) linear layer's weights: W is [rows][cols] =
 * [out_features][in_features], y = x W^T. */
struct qb_linear {
    enum qb_wfmt fmt;
    int64_t rows, cols;
    const void *data;          /* format payload; a dtype view may point into an mmap */
    size_t data_bytes;         /* bytes of payload (the packed size) */
    void *owned;               /* heap block behind data, or NULL when borrowed */
    const float *bias;         /* [rows] or NULL */
    float *owned_bias;
    int32_t *owned_g_idx;
    struct qb_quant_params qp;
};

struct qb_wfmt_traits {
    const char *name;          /* "int4", "nf4", ... */
    int block;                 /* elements per block along the input (1 for dtype views) */
    /* payload bytes for a [rows][cols] tensor with params p */
    size_t (*packed_bytes)(int64_t rows, int64_t cols, const struct qb_quant_params *p);
    /* quantize f32 w[rows][cols] into out->data (caller sets fmt/rows/cols/qp and
     * allocates packed_bytes); returns an error naming the tensor on NaN/Inf */
    enum qb_status (*quantize)(const float *w, struct qb_linear *out, const char *name,
                               struct qb_err *err);
    /* dequantize rows [row0, row0+n) into out[n][cols] */
    void (*dequant_rows)(const struct qb_linear *w, int64_t row0, int64_t n, float *out);
};

const struct qb_wfmt_traits *qb_wfmt_get(enum qb_wfmt fmt); /* never NULL for valid fmt */

/* Bits per weight of a format including scales/zeros, for a [rows][cols] tensor. */
double qb_wfmt_bits_per_weight(enum qb_wfmt fmt, int64_t rows, int64_t cols,
                               const struct qb_quant_params *p);

/* ---- schemes ----------------------------------------------------------------- */

enum qb_method {
    QB_METHOD_NONE = 0, /* baseline dtype */
    QB_METHOD_RTN,
    QB_METHOD_GPTQ,
    QB_METHOD_AWQ,
    QB_METHOD_GGUF,
};

struct qb_scheme {
    char name[32];           /* canonical flat name, "int4" */
    enum qb_method method;
    enum qb_wfmt fmt;
    struct qb_quant_params qp;
    int needs_calibration;   /* GPTQ/AWQ */
};

/* Parse a flat scheme name ("bf16", "int4", "gptq-int4", ...) with an optional
 * group override (0 = scheme default). QB_ERR_USAGE with a message listing the
 * known schemes when unknown. */
enum qb_status qb_scheme_parse(const char *name, int group, struct qb_scheme *out,
                               struct qb_err *err);

/* Comma-separated list of every scheme name, for --help and errors. */
const char *qb_scheme_names(void);

/* ---- linear layers ------------------------------------------------------------ */

/* Quantize f32 weights w[rows][cols] into a new linear of format fmt with params.
 * Allocates out->owned (the packed payload). */
enum qb_status qb_linear_quantize(const float *w, int64_t rows, int64_t cols, enum qb_wfmt fmt,
                                  const struct qb_quant_params *qp, const char *name,
                                  struct qb_linear *out, struct qb_err *err);

/* Free what a linear owns and zero it (NULL-safe). */
void qb_linear_release(struct qb_linear *lin);

#endif /* QB_QUANT_H */
