/*
 * fp_formats.h - scalar codecs for the small float formats the quantizers use:
 * FP8 E4M3 ("fn", OCP), FP8 E5M2, FP4 E2M1 (OCP/NVIDIA order), the E8M0
 * power-of-two scale of OCP MX, plus the two bitsandbytes code books (NF4 and
 * the signed 8-bit "dynamic" map used by double quantization).
 *
 * Bit definitions (sign is always the top bit of the code):
 *   E4M3  s eeee mmm   bias 7,  max 448 (0x7E), NaN only s.1111.111, no Inf,
 *                      subnormals m * 2^-9
 *   E5M2  s eeeee mm   bias 15, max 57344 (0x7B), Inf s.11111.00,
 *                      NaN s.11111.{01,10,11}, subnormals m * 2^-16
 *   E2M1  s ee m       bias 1,  codes 0..7 = 0 0.5 1 1.5 2 3 4 6, no Inf/NaN
 *   E8M0  eeeeeeee     value 2^(e-127), e = 255 is NaN, no sign, no zero
 *
 * Every encoder rounds to nearest, ties to even, and saturates: values beyond
 * the largest finite magnitude (Inf included) become +-max, like CUDA's
 * __NV_SATFINITE. NaN encodes to the format's NaN (E2M1 has none: 0).
 * Decoders are exact. All functions are pure; tables are const.
 */
#ifndef QB_FP_FORMATS_H
#define QB_FP_FORMATS_H

#include <stdint.h>

#define QB_E4M3_MAX 448.0f
#define QB_E5M2_MAX 57344.0f
#define QB_E2M1_MAX 6.0f
#define QB_E4M3_NAN 0x7Fu
#define QB_E5M2_NAN 0x7Eu

uint8_t qb_e4m3_from_f32(float x);
float qb_e4m3_to_f32(uint8_t code);
uint8_t qb_e5m2_from_f32(float x);
float qb_e5m2_to_f32(uint8_t code);

/* E2M1 code (4 bits, bit 3 = sign) of x; -0 and tiny negatives give code 8. */
uint8_t qb_e2m1_from_f32(float x);
float qb_e2m1_to_f32(uint8_t code);      /* low 4 bits of code */
extern const float qb_e2m1_values[16];   /* code -> value */

/* E8M0 value 2^(e-127); e = 0 gives 2^-127 (an fp32 subnormal), 255 NaN. */
float qb_e8m0_to_f32(uint8_t e);
/* OCP MX shared scale for a block whose largest magnitude is amax, for an element
 * format whose largest power of two is 2^emax_elem (2 for E2M1):
 * e = floor(log2(amax)) - emax_elem + 127 clamped to [0, 254] (exact, also for
 * fp32 subnormal amax). amax == 0 (an all-zero block) gives 0, +Inf gives 254,
 * NaN gives 255 (the NaN scale). */
uint8_t qb_e8m0_mx_scale(float amax, int emax_elem);

/* bitsandbytes NF4 code book (functional.py get_4bit_type("nf4")), index = nibble. */
extern const float qb_nf4_values[16];
/* NF4 code of x already divided by the block absmax, with bitsandbytes' decision
 * tree (dQuantizeNF4: thresholds are the midpoints of adjacent code values). */
uint8_t qb_nf4_from_unit(float x);

/* bitsandbytes create_dynamic_map(signed=True, max_exponent_bits=7, total_bits=8):
 * 256 sorted values in [-1, 1], built in fp32 as bitsandbytes does. */
extern const float qb_bnb_dynamic_map[256];
/* Index of the value of qb_bnb_dynamic_map nearest to x (ties: the lower index,
 * like the argmin of bitsandbytes' default backend); x is clamped to [-1, 1]. */
uint8_t qb_bnb_dynamic_from_unit(float x);

#endif /* QB_FP_FORMATS_H */
