/*
 * ggml_quants_simd.c - SIMD row dot products for ggml block types.
 *
 * qb_ggml_vec_dot() computes sum_i dequant(row)[i] * x[i] like the plain C
 * qb_ggml_vec_dot_ref() in ggml_quants.c, with vector arithmetic:
 *   - Q8_0 and Q4_0 work on the integer codes directly: widen the codes to
 *     f32 lanes, multiply-add with x, reduce, then scale once by the block's d;
 *   - the other types dequantize one block (scalar, the reference code) into
 *     a 256-float buffer and run a vector dot over it.
 * Lanes reorder the additions, so results differ from _ref by rounding only;
 * tests/test_ggml_quants.c bounds the gap with QB_GGML_DOT_REL_TOL.
 *
 * Paths: AVX2+FMA on x86-64 (chosen at run time with __builtin_cpu_supports,
 * compiled with a target attribute so the default build flags suffice), NEON
 * on arm64 (always present there), otherwise the reference.
 */
#include "ggml_quants.h"

#include <math.h>
#include <string.h>

#include "dtype.h"

void qb_ggml_dequant_block_internal(int type, const void *row, int64_t i, float *y);

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define QB_HAVE_AVX2_PATH 1
#include <immintrin.h>
#elif defined(__aarch64__) && defined(__ARM_NEON)
#define QB_HAVE_NEON_PATH 1
#include <arm_neon.h>
#endif

#if defined(QB_HAVE_AVX2_PATH)

#define QB_AVX2 __attribute__((target("avx2,fma")))

QB_AVX2 static float hsum256(__m256 v)
{
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);
    lo = _mm_add_ps(lo, _mm_movehl_ps(lo, lo));
    lo = _mm_add_ss(lo, _mm_movehdup_ps(lo));
    return _mm_cvtss_f32(lo);
}

QB_AVX2 static float dot_f32_avx2(const float *a, const float *b, int n)
{
    __m256 acc = _mm256_setzero_ps();
    for (int j = 0; j < n; j += 8)
        acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + j), _mm256_loadu_ps(b + j), acc);
    return hsum256(acc);
}

/* 8 signed bytes -> 8 f32 lanes */
QB_AVX2 static __m256 i8x8_to_ps(const int8_t *p)
{
    __m128i v = _mm_loadl_epi64((const __m128i *)p);
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v));
}

QB_AVX2 static float vec_dot_avx2(int type, const void *row, const float *x, int64_t n)
{
    const struct qb_ggml_type_info *ti = qb_ggml_type_info(type);
    double total = 0;
    const int64_t nb = n / ti->block;
    if (type == QB_GGML_Q8_0 || type == QB_GGML_Q4_0) {
        for (int64_t i = 0; i < nb; i++) {
            int8_t codes[32];
            float d;
            if (type == QB_GGML_Q8_0) {
                const struct qb_block_q8_0 *b = (const struct qb_block_q8_0 *)row + i;
                memcpy(codes, b->qs, 32);
                d = qb_f16_to_f32(b->d);
            } else {
                const struct qb_block_q4_0 *b = (const struct qb_block_q4_0 *)row + i;
                for (int j = 0; j < 16; j++) {
                    codes[j] = (int8_t)((b->qs[j] & 0xF) - 8);
                    codes[j + 16] = (int8_t)((b->qs[j] >> 4) - 8);
                }
                d = qb_f16_to_f32(b->d);
            }
            __m256 acc = _mm256_setzero_ps();
            for (int j = 0; j < 32; j += 8)
                acc = _mm256_fmadd_ps(i8x8_to_ps(codes + j), _mm256_loadu_ps(x + 32 * i + j), acc);
            total += (double)(hsum256(acc) * d);
        }
        return (float)total;
    }
    float buf[256];
    for (int64_t i = 0; i < nb; i++) {
        qb_ggml_dequant_block_internal(type, row, i, buf);
        total += dot_f32_avx2(buf, x + i * ti->block, ti->block);
    }
    return (float)total;
}

static int have_avx2(void)
{
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
}

#elif defined(QB_HAVE_NEON_PATH)

static float dot_f32_neon(const float *a, const float *b, int n)
{
    float32x4_t acc = vdupq_n_f32(0);
    for (int j = 0; j < n; j += 4)
        acc = vfmaq_f32(acc, vld1q_f32(a + j), vld1q_f32(b + j));
    return vaddvq_f32(acc);
}

static float vec_dot_neon(int type, const void *row, const float *x, int64_t n)
{
    const struct qb_ggml_type_info *ti = qb_ggml_type_info(type);
    double total = 0;
    const int64_t nb = n / ti->block;
    if (type == QB_GGML_Q8_0 || type == QB_GGML_Q4_0) {
        for (int64_t i = 0; i < nb; i++) {
            int8_t codes[32];
            float d;
            if (type == QB_GGML_Q8_0) {
                const struct qb_block_q8_0 *b = (const struct qb_block_q8_0 *)row + i;
                memcpy(codes, b->qs, 32);
                d = qb_f16_to_f32(b->d);
            } else {
                const struct qb_block_q4_0 *b = (const struct qb_block_q4_0 *)row + i;
                for (int j = 0; j < 16; j++) {
                    codes[j] = (int8_t)((b->qs[j] & 0xF) - 8);
                    codes[j + 16] = (int8_t)((b->qs[j] >> 4) - 8);
                }
                d = qb_f16_to_f32(b->d);
            }
            float32x4_t acc = vdupq_n_f32(0);
            for (int j = 0; j < 32; j += 8) {
                int16x8_t w = vmovl_s8(vld1_s8(codes + j));
                float32x4_t lo = vcvtq_f32_s32(vmovl_s16(vget_low_s16(w)));
                float32x4_t hi = vcvtq_f32_s32(vmovl_s16(vget_high_s16(w)));
                acc = vfmaq_f32(acc, lo, vld1q_f32(x + 32 * i + j));
                acc = vfmaq_f32(acc, hi, vld1q_f32(x + 32 * i + j + 4));
            }
            total += (double)(vaddvq_f32(acc) * d);
        }
        return (float)total;
    }
    float buf[256];
    for (int64_t i = 0; i < nb; i++) {
        qb_ggml_dequant_block_internal(type, row, i, buf);
        total += dot_f32_neon(buf, x + i * ti->block, ti->block);
    }
    return (float)total;
}

#endif

const char *qb_ggml_simd_name(void)
{
#if defined(QB_HAVE_AVX2_PATH)
    return have_avx2() ? "avx2" : "scalar";
#elif defined(QB_HAVE_NEON_PATH)
    return "neon";
#else
    return "scalar";
#endif
}

float qb_ggml_vec_dot(int type, const void *row, const float *x, int64_t n)
{
    const struct qb_ggml_type_info *ti = qb_ggml_type_info(type);
    if (!ti || !ti->can_dequantize || n <= 0 || n % ti->block != 0)
        return NAN;
    if (ti->block == 1) /* plain types: nothing to fuse */
        return qb_ggml_vec_dot_ref(type, row, x, n);
#if defined(QB_HAVE_AVX2_PATH)
    if (have_avx2())
        return vec_dot_avx2(type, row, x, n);
#elif defined(QB_HAVE_NEON_PATH)
    return vec_dot_neon(type, row, x, n);
#endif
    return qb_ggml_vec_dot_ref(type, row, x, n);
}
