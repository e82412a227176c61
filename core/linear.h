/*
 * linear.h - y = x W^T (+ b) for a linear layer in any weight format, on CPU.
 *
 * x is [n][cols] f32 (n tokens), W is the layer's [rows][cols] weights in
 * their storage format, y is [n][rows] f32. The optimised path dequantizes
 * tiles of W rows to f32 (the format's dequant_rows) and multiplies them with
 * a register-blocked SIMD kernel (GCC/Clang vector extensions: AVX2+FMA chosen
 * at run time on x86-64, NEON on arm64, plain C elsewhere). The reference
 * qb_gemm_f32_ref is the plain triple loop every optimised path is tested
 * against.
 */
#ifndef QB_LINEAR_H
#define QB_LINEAR_H

#include <stdint.h>

#include "quant.h"
#include "threadpool.h"

/* y[n][rows] = x[n][cols] . W^T + bias, split over the pool's threads by row tiles. */
void qb_linear_matmul(const struct qb_linear *w, const float *x, int64_t n, float *y,
                      struct qb_pool *pool);

/* Plain reference: y[n][m] = x[n][k] . w[m][k]^T. */
void qb_gemm_f32_ref(const float *x, const float *w, int64_t n, int64_t m, int64_t k, float *y,
                     int64_t ldy);

/* Optimised kernel, same contract as the reference (ldy = row stride of y). */
void qb_gemm_f32(const float *x, const float *w, int64_t n, int64_t m, int64_t k, float *y,
                 int64_t ldy);

/* Dot product of two f32 vectors (SIMD). */
float qb_dot_f32(const float *a, const float *b, int64_t n);

#endif /* QB_LINEAR_H */
