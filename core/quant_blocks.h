/*
 * quant_blocks.h - the packed payload layouts of every quantized weight format,
 * shared by the C engine (core/quant_*.c) and the CUDA kernels (kernels/).
 *
 * Plain C, no includes beyond <stdint.h>/<stddef.h>, usable from nvcc: helpers
 * are QB_HD (host+device under __CUDACC__). Every struct has a size assert,
 * because the CUDA side reads the same bytes.
 *
 * A linear layer's weight is W[rows][cols] = [out_features][in_features]. All
 * payloads are row-major over W: a row's bytes are contiguous (except the
 * NF4 formats, whose blocks run over the flattened tensor like bitsandbytes').
 * Nibble order: formats copied from a producer keep its order -- NF4 (as
 * bitsandbytes) puts the EVEN element in the HIGH nibble; NVFP4, MXFP4 (as
 * modelopt / gpt-oss) and our integer groups put the EVEN element in the LOW
 * nibble.
 *
 * INT8 / FP8 (per-row scale), rows R, cols C:
 *   [ f32 scale[R] ][ code[R][C] ]          code: int8 / E4M3 / E5M2 byte
 *   w = scale[r] * value(code)              bits/weight = 8 + 32/C
 *
 * INT4, INT4_SYM, UINT_G (groups of G consecutive input columns, G = 32/64/128,
 * b = 2, 3, 4 or 8 bits), one record per (row, group), records row-major:
 *   +--------+--------+--------+--------+------------------------------+
 *   | scale (f16, LE) |  zero  |  bits  | codes: G*b/8 bytes           |
 *   +--------+--------+--------+--------+------------------------------+
 *   w = f16(scale) * (code - zero); codes are a little-endian bit stream:
 *   element j of the group occupies bits [j*b, j*b+b) (b=4: even element in the
 *   low nibble; b=3: 8 elements per 3 bytes). INT4_SYM stores q+8 with zero 8.
 *   With act-order (g_idx), column c takes scale/zero from record g_idx[c] of its
 *   row while its code stays in record c/G.
 *   bits/weight = b + 32/G  (int4 g128: 4.25, g64: 4.5, g32: 5.0)
 *
 * NF4 (bitsandbytes, blocks of 64 consecutive weights of the flattened W):
 *   struct qb_block_nf4 { f32 absmax | 32 bytes codes (even element high) }
 *   w = nf4[code] * absmax                  bits/weight = 4.5
 * NF4_DQ: header, then nested scales, then blocks:
 *   [ qb_nf4dq_header (16 B) ][ f32 nested_absmax[ceil(nblocks/256)] ]
 *   [ qb_block_nf4dq { u8 absmax_code | 32 bytes codes } x nblocks ]
 *   absmax[b] = dyn[absmax_code] * nested_absmax[b/256] + offset
 *   bits/weight = 4 + 8/64 + 32/(64*256) (+ the 16-byte header) = 4.127
 *
 * NVFP4 (blocks of 16 along the input):
 *   [ qb_nvfp4_header { f32 global_scale, 12 B reserved } ]
 *   [ qb_block_nvfp4 { u8 E4M3 scale | 8 bytes E2M1 codes, even low } x R*C/16 ]
 *   w = e2m1(code) * (e4m3(scale) / global_scale)     bits/weight = 4.5
 *
 * MXFP4 (OCP MX, blocks of 32 along the input):
 *   [ qb_block_mxfp4 { u8 E8M0 scale | 16 bytes E2M1 codes, even low } x R*C/32 ]
 *   w = e2m1(code) * 2^(scale - 127)        bits/weight = 4.25
 */
#ifndef QB_QUANT_BLOCKS_H
#define QB_QUANT_BLOCKS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __CUDACC__
#define QB_HD __host__ __device__ __forceinline__
#else
#define QB_HD static inline
#endif

#if defined(__cplusplus) || defined(__CUDACC__)
#define QB_STATIC_ASSERT(cond, msg) static_assert(cond, msg)
#else
#define QB_STATIC_ASSERT(cond, msg) _Static_assert(cond, msg)
#endif

#define QB_NF4_BLOCK 64          /* weights per NF4 block (bitsandbytes default) */
#define QB_NF4_DQ_NEST 256       /* NF4 blocks per nested absmax (bitsandbytes) */
#define QB_NVFP4_BLOCK 16
#define QB_MXFP4_BLOCK 32
#define QB_GROUP_DEFAULT 128     /* int4 / GPTQ / AWQ default group */

struct qb_block_nf4 {
    float absmax;
    uint8_t qs[QB_NF4_BLOCK / 2]; /* element 2i in the high nibble of qs[i] */
};
QB_STATIC_ASSERT(sizeof(struct qb_block_nf4) == 36, "nf4 block is 36 bytes");

struct qb_block_nf4dq {
    uint8_t absmax_code;          /* index into the bitsandbytes dynamic map */
    uint8_t qs[QB_NF4_BLOCK / 2];
};
QB_STATIC_ASSERT(sizeof(struct qb_block_nf4dq) == 33, "nf4-dq block is 33 bytes");

struct qb_nf4dq_header {
    float offset;                 /* mean of the absmax values, added back */
    uint32_t n_blocks;            /* ceil(R*C/64) */
    uint32_t n_nested;            /* ceil(n_blocks/256) */
    uint32_t reserved;
};
QB_STATIC_ASSERT(sizeof(struct qb_nf4dq_header) == 16, "nf4-dq header is 16 bytes");

struct qb_block_nvfp4 {
    uint8_t scale;                /* E4M3 block scale (non-negative) */
    uint8_t qs[QB_NVFP4_BLOCK / 2];/* element 2i in the low nibble of qs[i] */
};
QB_STATIC_ASSERT(sizeof(struct qb_block_nvfp4) == 9, "nvfp4 block is 9 bytes");

struct qb_nvfp4_header {
    float global_scale;           /* 448*6/max|W| (compressed-tensors convention) */
    uint32_t reserved[3];
};
QB_STATIC_ASSERT(sizeof(struct qb_nvfp4_header) == 16, "nvfp4 header is 16 bytes");

struct qb_block_mxfp4 {
    uint8_t scale;                /* E8M0 exponent */
    uint8_t qs[QB_MXFP4_BLOCK / 2];/* element 2i in the low nibble of qs[i] */
};
QB_STATIC_ASSERT(sizeof(struct qb_block_mxfp4) == 17, "mxfp4 block is 17 bytes");

struct qb_group_header {
    uint16_t scale_f16;           /* IEEE half, little-endian */
    uint8_t zero;                 /* in [0, 2^bits - 1] */
    uint8_t bits;                 /* 2, 3, 4 or 8 (redundant, for sanity checks) */
};
QB_STATIC_ASSERT(sizeof(struct qb_group_header) == 4, "group header is 4 bytes");

/* Bytes of one (row, group) record of the integer group formats. */
QB_HD size_t qb_group_record_bytes(int group, int bits)
{
    return sizeof(struct qb_group_header) + (size_t)group * (size_t)bits / 8;
}

/* Byte offset of record (row, g) for `cols` input columns. */
QB_HD size_t qb_group_record_offset(int64_t row, int64_t g, int64_t cols, int group, int bits)
{
    return ((size_t)row * (size_t)(cols / group) + (size_t)g) * qb_group_record_bytes(group, bits);
}

/* Code j (0 <= j < group) from a record's code stream. */
QB_HD unsigned qb_group_code(const uint8_t *codes, int j, int bits)
{
    if (bits == 8)
        return codes[j];
    if (bits == 4)
        return (codes[j >> 1] >> ((j & 1) * 4)) & 0xfu;
    if (bits == 2)
        return (codes[j >> 2] >> ((j & 3) * 2)) & 0x3u;
    /* 3 bits: little-endian bit stream, may straddle two bytes */
    unsigned bit = (unsigned)j * 3u;
    unsigned lo = codes[bit >> 3];
    unsigned hi = (bit & 7u) > 5u ? codes[(bit >> 3) + 1] : 0u;
    return ((lo | (hi << 8)) >> (bit & 7u)) & 0x7u;
}

#endif /* QB_QUANT_BLOCKS_H */
