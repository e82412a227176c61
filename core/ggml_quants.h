/*
 * ggml_quants.h - ggml tensor types as GGUF files store them: ids, block
 * structs, reference quantizers, dequantizers and a fused row dot product.
 *
 * The quantizers reproduce llama.cpp's `quantize_row_*_ref` (ggml-quants.c)
 * and, for IQ4_NL, `quantize_iq4_nl` without an importance matrix, operation
 * for operation, so that block bytes equal what `llama-quantize` writes for
 * the same f32 input (no imatrix). llama.cpp's HF->GGUF path first rounds
 * weights to F16 (convert_hf_to_gguf --outtype f16), then quantizes the F16
 * values: qb_ggml_round_f16() is that step; the caller applies it.
 *
 * Bit-exactness needs IEEE single evaluation as written: ggml_quants.c
 * disables floating-point contraction (no FMA fusion) for itself.
 *
 * This header holds only plain structs and constants so that CUDA code can
 * include it too. Every struct is packed by construction (fields are u8/u16
 * arrays) and has its size asserted.
 *
 * Element order inside blocks (row elements 0..block-1):
 *
 *   Q4_0/Q4_1/IQ4_NL  qs[j] low nibble = elem j, high nibble = elem j+16
 *   Q5_0/Q5_1         same nibbles; bit 4 of elem j is bit j of qh (u32 LE)
 *   Q8_0              qs[j] = elem j
 *   Q2_K              16 sub-blocks of 16; qs[32c+l] bits 2k..2k+1 = elem 128c+32k+l
 *   Q3_K              low 2 bits as Q2_K; bit 2 of elem j = hmask[j%32] bit j/32
 *   Q4_K              8 sub-blocks of 32; qs[32c+l] low = elem 64c+l, high = elem 64c+32+l
 *   Q5_K              Q4_K nibbles; qh[l] bit 2c / 2c+1 = bit 4 of elem 64c+l / 64c+32+l
 *   Q6_K              ql[64h+l] low/high = elem 128h+l / 128h+64+l,
 *                     ql[64h+32+l] low/high = elem 128h+32+l / 128h+96+l,
 *                     qh[32h+l] bits 2k..2k+1 = bits 4..5 of elem 128h+32k+l
 *
 *   K-quant 6-bit scale packing (Q4_K/Q5_K scales[12], sub-block j):
 *     j < 4:  sc = s[j] & 63,                          m = s[j+4] & 63
 *     j >= 4: sc = (s[j+4] & 15) | (s[j-4] >> 6) << 4,  m = (s[j+4] >> 4) | (s[j] >> 6) << 4
 *   Q3_K 6-bit scales (scales[12], stored +32, sub-block j of 16):
 *     low 4 bits: j < 8 ? s[j] & 15 : s[j-8] >> 4; high 2 bits: s[8 + j%4] >> 2*(j/4)
 *
 * Thread safety: every function is pure (no state).
 */
#ifndef QB_GGML_QUANTS_H
#define QB_GGML_QUANTS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
#define QB_GGML_STATIC_ASSERT(c, m) static_assert(c, m)
extern "C" {
#else
#define QB_GGML_STATIC_ASSERT(c, m) _Static_assert(c, m)
#endif

/* ggml type ids (ggml.h enum ggml_type; the GGUF tensor-info `type` field). */
enum qb_ggml_type {
    QB_GGML_F32 = 0,
    QB_GGML_F16 = 1,
    QB_GGML_Q4_0 = 2,
    QB_GGML_Q4_1 = 3,
    QB_GGML_Q5_0 = 6,
    QB_GGML_Q5_1 = 7,
    QB_GGML_Q8_0 = 8,
    QB_GGML_Q8_1 = 9,
    QB_GGML_Q2_K = 10,
    QB_GGML_Q3_K = 11,
    QB_GGML_Q4_K = 12,
    QB_GGML_Q5_K = 13,
    QB_GGML_Q6_K = 14,
    QB_GGML_Q8_K = 15,
    QB_GGML_IQ2_XXS = 16,
    QB_GGML_IQ2_XS = 17,
    QB_GGML_IQ3_XXS = 18,
    QB_GGML_IQ1_S = 19,
    QB_GGML_IQ4_NL = 20,
    QB_GGML_IQ3_S = 21,
    QB_GGML_IQ2_S = 22,
    QB_GGML_IQ4_XS = 23,
    QB_GGML_I8 = 24,
    QB_GGML_I16 = 25,
    QB_GGML_I32 = 26,
    QB_GGML_I64 = 27,
    QB_GGML_F64 = 28,
    QB_GGML_IQ1_M = 29,
    QB_GGML_BF16 = 30,
    QB_GGML_TQ1_0 = 34,
    QB_GGML_TQ2_0 = 35,
    QB_GGML_MXFP4 = 39,
    QB_GGML_TYPE_COUNT = 40 /* ids below this may be valid; ask qb_ggml_type_info() */
};

#define QB_QK4_0 32
#define QB_QK4_1 32
#define QB_QK5_0 32
#define QB_QK5_1 32
#define QB_QK8_0 32
#define QB_QK4_NL 32
#define QB_QK_K 256
#define QB_K_SCALE_SIZE 12

/* ggml_half: IEEE binary16 bits. */
typedef uint16_t qb_ggml_half;

struct qb_block_q4_0 {
    qb_ggml_half d;             /* scale */
    uint8_t qs[QB_QK4_0 / 2];   /* nibbles, x = (q - 8) * d */
};
struct qb_block_q4_1 {
    qb_ggml_half d;             /* scale */
    qb_ggml_half m;             /* min, x = q * d + m */
    uint8_t qs[QB_QK4_1 / 2];
};
struct qb_block_q5_0 {
    qb_ggml_half d;
    uint8_t qh[4];              /* 5th bits, u32 little-endian */
    uint8_t qs[QB_QK5_0 / 2];   /* x = (q - 16) * d */
};
struct qb_block_q5_1 {
    qb_ggml_half d;
    qb_ggml_half m;
    uint8_t qh[4];
    uint8_t qs[QB_QK5_1 / 2];   /* x = q * d + m */
};
struct qb_block_q8_0 {
    qb_ggml_half d;
    int8_t qs[QB_QK8_0];        /* x = q * d */
};
struct qb_block_iq4_nl {
    qb_ggml_half d;
    uint8_t qs[QB_QK4_NL / 2];  /* x = d * kvalues_iq4nl[q] */
};
struct qb_block_q2_K {
    uint8_t scales[QB_QK_K / 16]; /* low nibble scale, high nibble min */
    uint8_t qs[QB_QK_K / 4];
    qb_ggml_half d;               /* super-block scale for the scales */
    qb_ggml_half dmin;            /* super-block scale for the mins */
};
struct qb_block_q3_K {
    uint8_t hmask[QB_QK_K / 8];
    uint8_t qs[QB_QK_K / 4];
    uint8_t scales[12];           /* 16 six-bit scales, +32 */
    qb_ggml_half d;
};
struct qb_block_q4_K {
    qb_ggml_half d;
    qb_ggml_half dmin;
    uint8_t scales[QB_K_SCALE_SIZE];
    uint8_t qs[QB_QK_K / 2];
};
struct qb_block_q5_K {
    qb_ggml_half d;
    qb_ggml_half dmin;
    uint8_t scales[QB_K_SCALE_SIZE];
    uint8_t qh[QB_QK_K / 8];
    uint8_t qs[QB_QK_K / 2];
};
struct qb_block_q6_K {
    uint8_t ql[QB_QK_K / 2];
    uint8_t qh[QB_QK_K / 4];
    int8_t scales[QB_QK_K / 16];
    qb_ggml_half d;
};

QB_GGML_STATIC_ASSERT(sizeof(struct qb_block_q4_0) == 18, "q4_0 block size");
QB_GGML_STATIC_ASSERT(sizeof(struct qb_block_q4_1) == 20, "q4_1 block size");
QB_GGML_STATIC_ASSERT(sizeof(struct qb_block_q5_0) == 22, "q5_0 block size");
QB_GGML_STATIC_ASSERT(sizeof(struct qb_block_q5_1) == 24, "q5_1 block size");
QB_GGML_STATIC_ASSERT(sizeof(struct qb_block_q8_0) == 34, "q8_0 block size");
QB_GGML_STATIC_ASSERT(sizeof(struct qb_block_iq4_nl) == 18, "iq4_nl block size");
QB_GGML_STATIC_ASSERT(sizeof(struct qb_block_q2_K) == 84, "q2_K block size");
QB_GGML_STATIC_ASSERT(sizeof(struct qb_block_q3_K) == 110, "q3_K block size");
QB_GGML_STATIC_ASSERT(sizeof(struct qb_block_q4_K) == 144, "q4_K block size");
QB_GGML_STATIC_ASSERT(sizeof(struct qb_block_q5_K) == 176, "q5_K block size");
QB_GGML_STATIC_ASSERT(sizeof(struct qb_block_q6_K) == 210, "q6_K block size");

/* The IQ4_NL code book (ggml-common.h kvalues_iq4nl). */
#define QB_IQ4NL_VALUES {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113}

#ifndef __CUDACC__ /* ---- host API ------------------------------------------------ */

struct qb_ggml_type_info {
    const char *name;   /* "q4_K" as ggml_type_name() spells it */
    int block;          /* elements per block (1 for plain types) */
    int type_size;      /* bytes per block */
    int can_quantize;   /* qb_ggml_quantize_row supports it */
    int can_dequantize; /* qb_ggml_dequantize_row / vec_dot support it */
};

/* Traits of a ggml type id; NULL for ids that are not (or no longer) valid
 * (4, 5, 31-33, >= 40). Sizes cover every valid type so a reader can size
 * tensors it cannot decode. */
const struct qb_ggml_type_info *qb_ggml_type_info(int type);

/* Case-insensitive ggml name ("q4_k", "Q6_K", "f16") to id; -1 when unknown. */
int qb_ggml_type_from_name(const char *name);

/* Bytes of one row of n elements; 0 when the type is unknown or n is not a
 * multiple of its block (or n <= 0). */
size_t qb_ggml_row_bytes(int type, int64_t n);

/* llama.cpp's HF->GGUF rounding: out[i] = f16_to_f32(f32_to_f16(x[i])), round
 * to nearest even. out may equal x. */
void qb_ggml_round_f16(const float *x, float *out, size_t n);

/*
 * Quantize n consecutive f32 values (n a multiple of the block) into blocks of
 * `type` at out (qb_ggml_row_bytes(type, n) bytes). Supported: F32, F16,
 * BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL, Q2_K..Q6_K. Returns 0, or -1
 * when the type is unsupported or n does not fit the block. Inputs must be
 * finite (check with qb_ggml_first_nonfinite; NaN/Inf give unspecified bytes,
 * as in llama.cpp).
 */
int qb_ggml_quantize_row(int type, const float *x, void *out, int64_t n);

/* Index of the first NaN/Inf in x[n], or -1 when all finite. */
int64_t qb_ggml_first_nonfinite(const float *x, int64_t n);

/* Dequantize n values (a multiple of the block) of `type` into out[n], exactly
 * as ggml's dequantize_row_* computes them. Every quantizable type plus F32,
 * F16, BF16. Returns 0, or -1 when unsupported or n does not fit. */
int qb_ggml_dequantize_row(int type, const void *blocks, float *out, int64_t n);

/*
 * Fused row dot product: sum_i dequant(row)[i] * x[i] for n elements, without
 * materialising the row. _ref is the plain C reference (fixed evaluation order,
 * per-block float partial sums added into a double); qb_ggml_vec_dot uses SIMD
 * (AVX2+FMA or NEON) where built for it and falls back to _ref otherwise.
 * The two agree within QB_GGML_DOT_REL_TOL relative to sum_i |deq[i]*x[i]|.
 * Unsupported types or bad n return NAN.
 */
float qb_ggml_vec_dot_ref(int type, const void *row, const float *x, int64_t n);
float qb_ggml_vec_dot(int type, const void *row, const float *x, int64_t n);
#define QB_GGML_DOT_REL_TOL 1e-5

/* Name of the SIMD path qb_ggml_vec_dot uses ("avx2", "neon" or "scalar"). */
const char *qb_ggml_simd_name(void);

#endif /* __CUDACC__ */

#ifdef __cplusplus
}
#endif

#endif /* QB_GGML_QUANTS_H */
