/*
 * quant_simd.h - private SIMD inner loops shared by the format modules
 * (core/quant_*.c). Not part of the public API.
 *
 * Each function computes a plain sum of products over packed codes and
 * dispatches at run time: x86-64 with AVX2+FMA+F16C (checked with
 * __builtin_cpu_supports and CPUID, code compiled with __attribute__((target))), arm64
 * NEON (always present), else a scalar loop. The formats' plain C references
 * (<fmt>_vec_dot_ref) do not use these, so tests compare two independent paths.
 */
#ifndef QB_QUANT_SIMD_H
#define QB_QUANT_SIMD_H

#include <stdint.h>

enum qb_simd_level { QB_SIMD_SCALAR = 0, QB_SIMD_AVX2, QB_SIMD_NEON };

/* The path the dispatchers below take on this CPU. */
enum qb_simd_level qb_simd_level(void);
const char *qb_simd_name(void);

/* sum_i lut[code_i] * x[i] for n codes packed two per byte in qs (n a multiple
 * of 16); even_high: element 2k sits in the high nibble of qs[k] (bitsandbytes),
 * else in the low nibble. */
float qb_simd_lut4_dot(const uint8_t *qs, int64_t n, const float lut[16], const float *x,
                       int even_high);

/* sum_i q[i] * x[i] for signed / unsigned bytes, any n. */
float qb_simd_i8_dot(const int8_t *q, int64_t n, const float *x);
float qb_simd_u8_dot(const uint8_t *q, int64_t n, const float *x);

/* sum_i value(q[i]) * x[i] for FP8 codes (E4M3 when e5m2 == 0), any n; codes must
 * not be NaN (the saturating quantizers never write one). */
float qb_simd_fp8_dot(const uint8_t *q, int64_t n, const float *x, int e5m2);

#endif /* QB_QUANT_SIMD_H */
