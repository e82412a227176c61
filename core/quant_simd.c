/*
 * quant_simd.c - the SIMD inner loops of quant_simd.h, one AVX2 and one NEON
 * version of each next to the scalar fallback.
 *
 * 4-bit codes (NF4, E2M1, integer groups via a code-minus-zero table) go through
 * a 16-entry float table: on AVX2 two vpermps lookups (entries 0-7, 8-15) and a
 * blend on bit 3 of the index; on NEON four vqtbl1q byte-plane lookups re-zipped
 * into floats. FP8 codes become IEEE halves exactly (E5M2 is the top byte of a
 * half; E4M3 is a half with its exponent 8 lower, so value = half(bits) * 256)
 * and are widened with F16C / vcvt.
 */
#include "quant_simd.h"

#include <string.h>

#include "fp_formats.h"

#include <pthread.h>

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define QB_X86_SIMD 1
#include <cpuid.h>
#include <immintrin.h>
#elif defined(__aarch64__)
#define QB_NEON_SIMD 1
#include <arm_neon.h>
#endif

#if QB_X86_SIMD
/* The CPU's features never change while we run: probe once. CPUID traps to the
 * hypervisor in a VM (microseconds), far too slow for a per-call check. */
static pthread_once_t simd_once = PTHREAD_ONCE_INIT;
static enum qb_simd_level simd_detected = QB_SIMD_SCALAR;

static void simd_detect(void)
{
    unsigned a, b, c, d;
    /* F16C is CPUID.1:ECX bit 29 (clang's __builtin_cpu_supports lacks "f16c") */
    int f16c = __get_cpuid(1, &a, &b, &c, &d) && (c & (1u << 29));
    if (f16c && __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        simd_detected = QB_SIMD_AVX2;
}
#endif

enum qb_simd_level qb_simd_level(void)
{
#if QB_X86_SIMD
    pthread_once(&simd_once, simd_detect);
    return simd_detected;
#elif QB_NEON_SIMD
    return QB_SIMD_NEON;
#else
    return QB_SIMD_SCALAR;
#endif
}

const char *qb_simd_name(void)
{
    switch (qb_simd_level()) {
    case QB_SIMD_AVX2:
        return "avx2";
    case QB_SIMD_NEON:
        return "neon";
    case QB_SIMD_SCALAR:
        return "scalar";
    }
    return "scalar";
}

/* ---- scalar fallbacks ---- */

static float lut4_dot_scalar(const uint8_t *qs, int64_t n, const float lut[16], const float *x,
                             int even_high)
{
    float acc = 0.0f;
    for (int64_t i = 0; i < n / 2; i++) {
        unsigned a = qs[i] & 0xfu, b = qs[i] >> 4;
        if (even_high) {
            unsigned t = a;
            a = b;
            b = t;
        }
        acc += lut[a] * x[2 * i] + lut[b] * x[2 * i + 1];
    }
    return acc;
}

static float fp8_value(uint8_t c, int e5m2)
{
    return e5m2 ? qb_e5m2_to_f32(c) : qb_e4m3_to_f32(c);
}

/* ---- AVX2 ---- */
#if QB_X86_SIMD
#define QB_AVX2 __attribute__((target("avx2,fma,f16c")))

QB_AVX2 static inline float hsum256(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* 8 table values for the 8 indices (0..15) in the low bytes of idx8 */
QB_AVX2 static inline __m256 lut16_8(__m128i idx8, __m256 tlo, __m256 thi)
{
    __m256i idx = _mm256_cvtepu8_epi32(idx8);
    __m256 lo = _mm256_permutevar8x32_ps(tlo, idx);
    __m256 hi = _mm256_permutevar8x32_ps(thi, idx);
    return _mm256_blendv_ps(lo, hi, _mm256_castsi256_ps(_mm256_slli_epi32(idx, 28)));
}

QB_AVX2 static float lut4_dot_avx2(const uint8_t *qs, int64_t n, const float lut[16],
                                   const float *x, int even_high)
{
    __m256 tlo = _mm256_loadu_ps(lut), thi = _mm256_loadu_ps(lut + 8);
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    const __m128i m4 = _mm_set1_epi8(0x0f);
    int64_t i = 0;
    for (; i + 32 <= n; i += 32) {
        __m128i b = _mm_loadu_si128((const __m128i *)(qs + i / 2));
        __m128i lo = _mm_and_si128(b, m4), hi = _mm_and_si128(_mm_srli_epi16(b, 4), m4);
        __m128i e0 = even_high ? _mm_unpacklo_epi8(hi, lo) : _mm_unpacklo_epi8(lo, hi);
        __m128i e1 = even_high ? _mm_unpackhi_epi8(hi, lo) : _mm_unpackhi_epi8(lo, hi);
        acc0 = _mm256_fmadd_ps(lut16_8(e0, tlo, thi), _mm256_loadu_ps(x + i), acc0);
        acc1 = _mm256_fmadd_ps(lut16_8(_mm_srli_si128(e0, 8), tlo, thi),
                               _mm256_loadu_ps(x + i + 8), acc1);
        acc0 = _mm256_fmadd_ps(lut16_8(e1, tlo, thi), _mm256_loadu_ps(x + i + 16), acc0);
        acc1 = _mm256_fmadd_ps(lut16_8(_mm_srli_si128(e1, 8), tlo, thi),
                               _mm256_loadu_ps(x + i + 24), acc1);
    }
    if (i < n) { /* one 16-element tail (n is a multiple of 16) */
        __m128i b = _mm_loadl_epi64((const __m128i *)(qs + i / 2));
        __m128i lo = _mm_and_si128(b, m4), hi = _mm_and_si128(_mm_srli_epi16(b, 4), m4);
        __m128i e0 = even_high ? _mm_unpacklo_epi8(hi, lo) : _mm_unpacklo_epi8(lo, hi);
        acc0 = _mm256_fmadd_ps(lut16_8(e0, tlo, thi), _mm256_loadu_ps(x + i), acc0);
        acc1 = _mm256_fmadd_ps(lut16_8(_mm_srli_si128(e0, 8), tlo, thi),
                               _mm256_loadu_ps(x + i + 8), acc1);
    }
    return hsum256(_mm256_add_ps(acc0, acc1));
}

QB_AVX2 static float i8_dot_avx2(const int8_t *q, int64_t n, const float *x)
{
    __m256 acc = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i b = _mm_loadl_epi64((const __m128i *)(q + i));
        __m256 v = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b));
        acc = _mm256_fmadd_ps(v, _mm256_loadu_ps(x + i), acc);
    }
    float s = hsum256(acc);
    for (; i < n; i++)
        s += (float)q[i] * x[i];
    return s;
}

QB_AVX2 static float u8_dot_avx2(const uint8_t *q, int64_t n, const float *x)
{
    __m256 acc = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        __m128i b = _mm_loadl_epi64((const __m128i *)(q + i));
        __m256 v = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(b));
        acc = _mm256_fmadd_ps(v, _mm256_loadu_ps(x + i), acc);
    }
    float s = hsum256(acc);
    for (; i < n; i++)
        s += (float)q[i] * x[i];
    return s;
}

QB_AVX2 static float fp8_dot_avx2(const uint8_t *q, int64_t n, const float *x, int e5m2)
{
    __m256 acc = _mm256_setzero_ps();
    int64_t i = 0;
    const __m128i sign = _mm_set1_epi16((short)0x80), mag = _mm_set1_epi16(0x7f);
    for (; i + 8 <= n; i += 8) {
        __m128i b = _mm_cvtepu8_epi16(_mm_loadl_epi64((const __m128i *)(q + i)));
        __m128i h;
        if (e5m2)
            h = _mm_slli_epi16(b, 8);
        else
            h = _mm_or_si128(_mm_slli_epi16(_mm_and_si128(b, sign), 8),
                             _mm_slli_epi16(_mm_and_si128(b, mag), 7));
        acc = _mm256_fmadd_ps(_mm256_cvtph_ps(h), _mm256_loadu_ps(x + i), acc);
    }
    float s = hsum256(acc);
    if (!e5m2)
        s *= 256.0f;
    for (; i < n; i++)
        s += fp8_value(q[i], e5m2) * x[i];
    return s;
}
#endif /* QB_X86_SIMD */

/* ---- NEON ---- */
#if QB_NEON_SIMD
/* 16 table values for 16 indices, as four float32x4 in element order */
static inline void lut16_16(uint8x16_t idx, const uint8x16_t planes[4], float32x4_t out[4])
{
    uint8x16_t b0 = vqtbl1q_u8(planes[0], idx), b1 = vqtbl1q_u8(planes[1], idx);
    uint8x16_t b2 = vqtbl1q_u8(planes[2], idx), b3 = vqtbl1q_u8(planes[3], idx);
    uint16x8_t z01l = vreinterpretq_u16_u8(vzip1q_u8(b0, b1));
    uint16x8_t z01h = vreinterpretq_u16_u8(vzip2q_u8(b0, b1));
    uint16x8_t z23l = vreinterpretq_u16_u8(vzip1q_u8(b2, b3));
    uint16x8_t z23h = vreinterpretq_u16_u8(vzip2q_u8(b2, b3));
    out[0] = vreinterpretq_f32_u16(vzip1q_u16(z01l, z23l));
    out[1] = vreinterpretq_f32_u16(vzip2q_u16(z01l, z23l));
    out[2] = vreinterpretq_f32_u16(vzip1q_u16(z01h, z23h));
    out[3] = vreinterpretq_f32_u16(vzip2q_u16(z01h, z23h));
}

static float lut4_dot_neon(const uint8_t *qs, int64_t n, const float lut[16], const float *x,
                           int even_high)
{
    uint8_t bytes[4][16];
    for (int j = 0; j < 16; j++) {
        uint8_t f[4];
        memcpy(f, &lut[j], 4);
        for (int k = 0; k < 4; k++)
            bytes[k][j] = f[k];
    }
    uint8x16_t planes[4] = {vld1q_u8(bytes[0]), vld1q_u8(bytes[1]), vld1q_u8(bytes[2]),
                            vld1q_u8(bytes[3])};
    float32x4_t acc0 = vdupq_n_f32(0.0f), acc1 = vdupq_n_f32(0.0f);
    const uint8x8_t m4 = vdup_n_u8(0x0f);
    for (int64_t i = 0; i < n; i += 16) {
        uint8x8_t b = vld1_u8(qs + i / 2);
        uint8x8_t lo = vand_u8(b, m4), hi = vshr_n_u8(b, 4);
        uint8x8x2_t z = even_high ? vzip_u8(hi, lo) : vzip_u8(lo, hi);
        float32x4_t v[4];
        lut16_16(vcombine_u8(z.val[0], z.val[1]), planes, v);
        acc0 = vfmaq_f32(acc0, v[0], vld1q_f32(x + i));
        acc1 = vfmaq_f32(acc1, v[1], vld1q_f32(x + i + 4));
        acc0 = vfmaq_f32(acc0, v[2], vld1q_f32(x + i + 8));
        acc1 = vfmaq_f32(acc1, v[3], vld1q_f32(x + i + 12));
    }
    return vaddvq_f32(vaddq_f32(acc0, acc1));
}

static float i8_dot_neon(const int8_t *q, int64_t n, const float *x)
{
    float32x4_t acc0 = vdupq_n_f32(0.0f), acc1 = vdupq_n_f32(0.0f);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        int16x8_t h = vmovl_s8(vld1_s8(q + i));
        acc0 = vfmaq_f32(acc0, vcvtq_f32_s32(vmovl_s16(vget_low_s16(h))), vld1q_f32(x + i));
        acc1 = vfmaq_f32(acc1, vcvtq_f32_s32(vmovl_s16(vget_high_s16(h))), vld1q_f32(x + i + 4));
    }
    float s = vaddvq_f32(vaddq_f32(acc0, acc1));
    for (; i < n; i++)
        s += (float)q[i] * x[i];
    return s;
}

static float u8_dot_neon(const uint8_t *q, int64_t n, const float *x)
{
    float32x4_t acc0 = vdupq_n_f32(0.0f), acc1 = vdupq_n_f32(0.0f);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint16x8_t h = vmovl_u8(vld1_u8(q + i));
        acc0 = vfmaq_f32(acc0, vcvtq_f32_u32(vmovl_u16(vget_low_u16(h))), vld1q_f32(x + i));
        acc1 = vfmaq_f32(acc1, vcvtq_f32_u32(vmovl_u16(vget_high_u16(h))), vld1q_f32(x + i + 4));
    }
    float s = vaddvq_f32(vaddq_f32(acc0, acc1));
    for (; i < n; i++)
        s += (float)q[i] * x[i];
    return s;
}

static float fp8_dot_neon(const uint8_t *q, int64_t n, const float *x, int e5m2)
{
    float32x4_t acc0 = vdupq_n_f32(0.0f), acc1 = vdupq_n_f32(0.0f);
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint16x8_t b = vmovl_u8(vld1_u8(q + i));
        uint16x8_t h;
        if (e5m2)
            h = vshlq_n_u16(b, 8);
        else
            h = vorrq_u16(vshlq_n_u16(vandq_u16(b, vdupq_n_u16(0x80)), 8),
                          vshlq_n_u16(vandq_u16(b, vdupq_n_u16(0x7f)), 7));
        float16x8_t hf = vreinterpretq_f16_u16(h);
        acc0 = vfmaq_f32(acc0, vcvt_f32_f16(vget_low_f16(hf)), vld1q_f32(x + i));
        acc1 = vfmaq_f32(acc1, vcvt_f32_f16(vget_high_f16(hf)), vld1q_f32(x + i + 4));
    }
    float s = vaddvq_f32(vaddq_f32(acc0, acc1));
    if (!e5m2)
        s *= 256.0f;
    for (; i < n; i++)
        s += fp8_value(q[i], e5m2) * x[i];
    return s;
}
#endif /* QB_NEON_SIMD */

/* ---- dispatch ---- */

float qb_simd_lut4_dot(const uint8_t *qs, int64_t n, const float lut[16], const float *x,
                       int even_high)
{
#if QB_X86_SIMD
    if (qb_simd_level() == QB_SIMD_AVX2)
        return lut4_dot_avx2(qs, n, lut, x, even_high);
#elif QB_NEON_SIMD
    return lut4_dot_neon(qs, n, lut, x, even_high);
#endif
    return lut4_dot_scalar(qs, n, lut, x, even_high);
}

float qb_simd_i8_dot(const int8_t *q, int64_t n, const float *x)
{
#if QB_X86_SIMD
    if (qb_simd_level() == QB_SIMD_AVX2)
        return i8_dot_avx2(q, n, x);
#elif QB_NEON_SIMD
    return i8_dot_neon(q, n, x);
#endif
    float s = 0.0f;
    for (int64_t i = 0; i < n; i++)
        s += (float)q[i] * x[i];
    return s;
}

float qb_simd_u8_dot(const uint8_t *q, int64_t n, const float *x)
{
#if QB_X86_SIMD
    if (qb_simd_level() == QB_SIMD_AVX2)
        return u8_dot_avx2(q, n, x);
#elif QB_NEON_SIMD
    return u8_dot_neon(q, n, x);
#endif
    float s = 0.0f;
    for (int64_t i = 0; i < n; i++)
        s += (float)q[i] * x[i];
    return s;
}

float qb_simd_fp8_dot(const uint8_t *q, int64_t n, const float *x, int e5m2)
{
#if QB_X86_SIMD
    if (qb_simd_level() == QB_SIMD_AVX2)
        return fp8_dot_avx2(q, n, x, e5m2);
#elif QB_NEON_SIMD
    return fp8_dot_neon(q, n, x, e5m2);
#endif
    float s = 0.0f;
    for (int64_t i = 0; i < n; i++)
        s += fp8_value(q[i], e5m2) * x[i];
    return s;
}
