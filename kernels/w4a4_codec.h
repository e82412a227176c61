/*
 * w4a4_codec.h - the FP4 activation encoders of core (fp_formats.c,
 * quant_fp4.c) restated as host+device inline functions, so the GPU quantizer
 * (w4a4.cu) performs the very same fp32 operations in the same order and its
 * codes and scales are bit-identical to the CPU reference.
 *
 * Compiled as C (tests compare every function here with core's on many inputs,
 * including subnormals, ties and out-of-range values) and as CUDA (w4a4.cu).
 * Only IEEE-exact operations are used: comparisons, integer bit work, fp32
 * division (correctly rounded: the CUDA build uses no fast-math), and products
 * by powers of two.
 *
 *   NVFP4 row:    g = qb_nvfp4_global_scale(max|x|) = 2688 / amax (1 if amax = 0,
 *                 FLT_MAX if that overflows)
 *   NVFP4 block:  sc = e4m3(max|block| / 6 * g);  s = e4m3(sc) / g
 *                 code_i = s > 0 ? e2m1(x_i / s) : 0
 *   MXFP4 block:  e = floor(log2 max|block|) - 2 + 127 clamped to [0, 254]
 *                 (0 for an all-zero block); code_i = e2m1(x_i / 2^(e-127))
 */
#ifndef QB_W4A4_CODEC_H
#define QB_W4A4_CODEC_H

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__CUDACC__)
#define QB_W4_HD static __host__ __device__ __forceinline__
#else
#define QB_W4_HD static inline
#endif

QB_W4_HD uint32_t qb_w4_bits(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

QB_W4_HD float qb_w4_float(uint32_t u)
{
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

QB_W4_HD int qb_w4_isnan(float x)
{
    return (qb_w4_bits(x) & 0x7fffffffu) > 0x7f800000u;
}

/* E4M3 (fn): round to nearest even, saturating to 448, NaN -> 0x7f. */
QB_W4_HD uint8_t qb_w4_e4m3_from_f32(float x)
{
    if (qb_w4_isnan(x))
        return 0x7f;
    uint32_t u = qb_w4_bits(x);
    uint32_t sign = (u >> 31) << 7, a = u & 0x7fffffffu, mag;
    int e = (int)(a >> 23) - 127;
    if (e < -6) {
        /* subnormal target: m * 2^-9, m = rint(|x| * 2^9) (an exact product) */
        mag = (uint32_t)rintf(fabsf(x) * 512.0f);
    } else {
        uint32_t r = a + ((1u << 19) - 1u) + ((a >> 20) & 1u);
        r >>= 20;
        r -= (uint32_t)(127 - 7) << 3;
        mag = r > 0x7eu ? 0x7eu : r;
    }
    return (uint8_t)(sign | mag);
}

QB_W4_HD float qb_w4_e4m3_to_f32(uint8_t code)
{
    uint32_t mag = code & 0x7fu, exp = mag >> 3, mant = mag & 7u;
    float v;
    if (mag == 0x7f)
        return qb_w4_float(0x7fc00000u);
    if (exp == 0)
        v = (float)mant * (1.0f / 512.0f);
    else
        v = qb_w4_float(((exp - 7u + 127u) << 23) | (mant << 20));
    return (code & 0x80) ? -v : v;
}

/* E2M1 code of x (bit 3 = sign), nearest with ties to the even code; NaN -> 0. */
QB_W4_HD uint8_t qb_w4_e2m1_from_f32(float x)
{
    if (qb_w4_isnan(x))
        return 0;
    uint8_t sign = (uint8_t)((qb_w4_bits(x) >> 31) << 3), mag;
    float a = fabsf(x);
    if (a <= 0.25f)
        mag = 0;
    else if (a < 0.75f)
        mag = 1;
    else if (a <= 1.25f)
        mag = 2;
    else if (a < 1.75f)
        mag = 3;
    else if (a <= 2.5f)
        mag = 4;
    else if (a < 3.5f)
        mag = 5;
    else if (a <= 5.0f)
        mag = 6;
    else
        mag = 7;
    return (uint8_t)(sign | mag);
}

QB_W4_HD float qb_w4_e2m1_to_f32(uint8_t code)
{
    /* 0 0.5 1 1.5 2 3 4 6: mantissa m, exponent e -> (e ? (2 + m) * 2^(e-2) : m / 2) */
    uint32_t e = (code >> 1) & 3u, m = code & 1u;
    float v = e ? (float)(2u + m) * (float)(1u << e) * 0.25f : (float)m * 0.5f;
    return (code & 8u) ? -v : v;
}

/* E8M0 value 2^(e-127) (e = 0: 2^-127, a subnormal), 255 NaN. */
QB_W4_HD float qb_w4_e8m0_to_f32(uint8_t e)
{
    if (e == 255)
        return qb_w4_float(0x7fc00000u);
    return qb_w4_float(e ? (uint32_t)e << 23 : 0x00400000u);
}

QB_W4_HD int qb_w4_clz32(uint32_t v)
{
#if defined(__CUDA_ARCH__)
    return __clz((int)v);
#else
    return __builtin_clz(v);
#endif
}

/* OCP MX scale for E2M1 (emax 2) of a block with largest magnitude amax. */
QB_W4_HD uint8_t qb_w4_mx_scale(float amax)
{
    if (qb_w4_isnan(amax))
        return 255;
    if (!(amax > 0.0f))
        return 0;
    uint32_t a = qb_w4_bits(amax) & 0x7fffffffu;
    if (a == 0x7f800000u)
        return 254;
    int fl = a >= 0x00800000u ? (int)(a >> 23) - 127 : (31 - qb_w4_clz32(a)) - 149;
    int e = fl - 2 + 127;
    return (uint8_t)(e < 0 ? 0 : e > 254 ? 254 : e);
}

QB_W4_HD float qb_w4_amax(const float *x, int n)
{
    float m = 0.0f;
    for (int i = 0; i < n; i++)
        m = fmaxf(m, fabsf(x[i]));
    return m;
}

/* NVFP4 per-row (per-token) global scale. */
QB_W4_HD float qb_w4_nvfp4_global(float amax)
{
    if (!(amax > 0.0f))
        return 1.0f;
    float g = 448.0f * 6.0f / amax;
    return (qb_w4_bits(g) & 0x7f800000u) != 0x7f800000u ? g : FLT_MAX;
}

/* One NVFP4 block of n values: codes (low 4 bits each); returns the E4M3 scale. */
QB_W4_HD uint8_t qb_w4_nvfp4_block(const float *x, int n, float g, uint8_t *codes)
{
    uint8_t sc = qb_w4_e4m3_from_f32(qb_w4_amax(x, n) / 6.0f * g);
    float s = qb_w4_e4m3_to_f32(sc) / g;
    for (int i = 0; i < n; i++)
        codes[i] = s > 0.0f ? qb_w4_e2m1_from_f32(x[i] / s) : (uint8_t)0;
    return sc;
}

/* One MXFP4 block of n values; returns the E8M0 scale. */
QB_W4_HD uint8_t qb_w4_mxfp4_block(const float *x, int n, uint8_t *codes)
{
    uint8_t e = qb_w4_mx_scale(qb_w4_amax(x, n));
    float s = qb_w4_e8m0_to_f32(e);
    for (int i = 0; i < n; i++)
        codes[i] = qb_w4_e2m1_from_f32(x[i] / s);
    return e;
}

#endif /* QB_W4A4_CODEC_H */
