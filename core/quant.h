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
 * and dequantize functions and a fused dot product (SIMD with its plain C
 * reference); linear.c uses the traits to run any format. The payload layouts
 * (byte diagrams) are in quant_blocks.h; the small-float codecs in fp_formats.h.
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
    int bits;             /* for QB_WFMT_UINT_G: 2, 3, 4 or 8 (0 = 4) */
    int sym;              /* unused by the RTN formats (INT4_SYM is its own format) */
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
    int block;                 /* elements per block along the input (1 for dtype and
                                * per-row formats; the default group for int4/uint_g) */
    double nominal_bits;       /* bits/weight incl. scales/zeros at the default block,
                                * for tables; exact figures: qb_wfmt_bits_per_weight() */
    /* payload bytes for a [rows][cols] tensor with params p */
    size_t (*packed_bytes)(int64_t rows, int64_t cols, const struct qb_quant_params *p);
    /* quantize f32 w[rows][cols] into out->owned (caller sets fmt/rows/cols/qp and
     * allocates packed_bytes); returns an error naming the tensor on NaN/Inf.
     * Call through qb_linear_quantize(), which validates shapes and params. */
    enum qb_status (*quantize)(const float *w, struct qb_linear *out, const char *name,
                               struct qb_err *err);
    /* dequantize rows [row0, row0+n) into out[n][cols] */
    void (*dequant_rows)(const struct qb_linear *w, int64_t row0, int64_t n, float *out);
    /* fused dot product of row `row` of W with x[cols], reading the packed data
     * directly (the engine's GEMV path). Uses the best SIMD path the CPU has
     * (AVX2+FMA on x86-64, NEON on arm64) and agrees with vec_dot_ref within the
     * format's tolerance (see tests/test_quant_dot.c). */
    float (*vec_dot)(const struct qb_linear *w, int64_t row, const float *x);
    /* the same in plain C: the reference the SIMD paths are tested against */
    float (*vec_dot_ref)(const struct qb_linear *w, int64_t row, const float *x);
};

const struct qb_wfmt_traits *qb_wfmt_get(enum qb_wfmt fmt); /* never NULL for valid fmt */

/* Bits per weight of a format including scales/zeros, for a [rows][cols] tensor:
 * 8 * packed_bytes / (rows * cols). */
double qb_wfmt_bits_per_weight(enum qb_wfmt fmt, int64_t rows, int64_t cols,
                               const struct qb_quant_params *p);

/* Check that a [rows][cols] tensor and params suit fmt (group in {32, 64, 128} for
 * the group formats, bits in {2, 3, 4, 8} for UINT_G, cols a multiple of the
 * block for NVFP4/MXFP4/groups, g_idx entries in range). QB_ERR_UNSUPPORTED or
 * QB_ERR_RANGE with a message naming the tensor otherwise. */
enum qb_status qb_wfmt_check_shape(enum qb_wfmt fmt, int64_t rows, int64_t cols,
                                   const struct qb_quant_params *p, const char *name,
                                   struct qb_err *err);

/* ---- activation quantization (W4A4 / W8A8) ------------------------------------ */

/* Quantize activations x[n][cols] the way the low-precision tensor cores see them
 * and write the dequantized values to out[n][cols] (out may equal x):
 * - QB_ACT_NVFP4: per token (row) global g = 448*6/amax(row); per 16 consecutive
 *   columns s = e4m3(amax(block)/6 * g); v = e2m1(x / (s/g)); out = v * (s/g).
 * - QB_ACT_MXFP4: per 32 columns E8M0 scale 2^(floor(log2 amax) - 2); out = e2m1 * scale.
 * - QB_ACT_FP8_E4M3: per token s = amax(row)/448; out = e4m3(x/s) * s.
 * - QB_ACT_F32: copy.
 * A trailing partial block (cols not a multiple of 16/32) is its own block.
 * Contract for the engine: an fp32 GEMM over these values multiplies exactly the
 * element values the hardware multiplies (E2M1/E4M3 grid points) times their
 * scales. MXFP4 values are exact (power-of-two scales); for NVFP4 (factor s/g)
 * and FP8 (factor s) each value is one fp32 rounding of grid point x scale, so
 * products agree with a block-scaled tensor-core GEMM to within a few fp32 ulps
 * plus accumulation order (tests/test_quant_formats.c checks 1e-6 relative).
 * Rows that are all zero stay zero; non-finite inputs give NaN outputs. */
void qb_act_quantize_rows(enum qb_act_mode mode, const float *x, int64_t n, int64_t cols,
                          float *out);

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

/* One line on where a scheme runs natively, for the dashboard and results, e.g.
 * "native on Blackwell (sm_100/sm_120/sm_121), emulated here". Never NULL. */
const char *qb_scheme_hw_support(const struct qb_scheme *s);

/* ---- linear layers ------------------------------------------------------------ */

/* Quantize f32 weights w[rows][cols] into a new linear of format fmt with params.
 * Allocates out->owned (the packed payload). */
enum qb_status qb_linear_quantize(const float *w, int64_t rows, int64_t cols, enum qb_wfmt fmt,
                                  const struct qb_quant_params *qp, const char *name,
                                  struct qb_linear *out, struct qb_err *err);

/* Build an INT4 / INT4_SYM / UINT_G linear from codes a calibrated method (GPTQ,
 * AWQ) computed itself. qp->group (0 = 128) and, for UINT_G, qp->bits choose the
 * layout; qp->g_idx (act-order group of each input column, [cols]) may be NULL and
 * is copied into out->owned_g_idx. Inputs, row-major:
 *   codes[rows][cols]      in [0, 2^bits - 1] (INT4_SYM: q + 8)
 *   scales[rows][ngroups]  finite, >= 0; stored as f16 (rounded to nearest even,
 *                          saturated to 65504)
 *   zeros[rows][ngroups]   in [0, 2^bits - 1] (INT4_SYM: must be 8)
 * with ngroups = cols / group. Dequantization is scale * (code - zero) with the
 * f16-rounded scale, g_idx honoured. QB_ERR_RANGE naming the tensor on bad input. */
enum qb_status qb_linear_pack_groups(int64_t rows, int64_t cols, enum qb_wfmt fmt,
                                     const struct qb_quant_params *qp, const uint8_t *codes,
                                     const float *scales, const uint8_t *zeros,
                                     const char *name, struct qb_linear *out,
                                     struct qb_err *err);

/* Round-to-nearest parameters of one group of n weights on a 2^bits - 1 grid, as
 * the int4 scheme computes them (asymmetric: scale = (max-min)/maxq rounded to
 * f16, zero = clamp(round(-min/scale), 0, maxq); symmetric (bits 4 only): scale =
 * max|w|/7, zero = 8). A constant group (max == min) maps to a grid end.
 * Writes the f16-rounded scale as float. For GPTQ/AWQ implementations. */
void qb_group_params(const float *w, int64_t n, int bits, int sym, float *scale, int *zero);

/* Free what a linear owns and zero it (NULL-safe). */
void qb_linear_release(struct qb_linear *lin);

#endif /* QB_QUANT_H */
