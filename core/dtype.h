/*
 * dtype.h - storage dtypes of checkpoint tensors and scalar conversions.
 *
 * The names follow safetensors ("F32", "BF16", ...). Conversions are plain C,
 * exact, and usable from CUDA host code. fp16 <-> fp32 handles subnormals,
 * Inf and NaN; fp32 -> bf16/fp16 round to nearest even.
 */
#ifndef QB_DTYPE_H
#define QB_DTYPE_H

#include <stdint.h>
#include <string.h>

enum qb_dtype {
    QB_DTYPE_F32 = 0,
    QB_DTYPE_F16,
    QB_DTYPE_BF16,
    QB_DTYPE_F64,
    QB_DTYPE_I8,
    QB_DTYPE_U8,
    QB_DTYPE_I16,
    QB_DTYPE_I32,
    QB_DTYPE_I64,
    QB_DTYPE_F8_E4M3,
    QB_DTYPE_F8_E5M2,
    QB_DTYPE_BOOL,
    QB_DTYPE_COUNT
};

/* Bytes per element; 0 never happens for a valid dtype. */
size_t qb_dtype_size(enum qb_dtype dt);
/* safetensors name ("BF16"); never NULL. */
const char *qb_dtype_name(enum qb_dtype dt);
/* Parse a safetensors dtype name; returns 0 and sets *out on success, -1 if unknown. */
int qb_dtype_parse(const char *name, enum qb_dtype *out);

static inline float qb_bf16_to_f32(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline uint16_t qb_f32_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) /* NaN: keep it quiet */
        return (uint16_t)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

static inline float qb_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t exp = (h >> 10) & 0x1fu;
    uint32_t mant = h & 0x3ffu;
    uint32_t u;
    if (exp == 0) {
        if (mant == 0) {
            u = sign;
        } else { /* subnormal: normalise */
            int e = -1;
            do {
                e++;
                mant <<= 1;
            } while ((mant & 0x400u) == 0);
            mant &= 0x3ffu;
            u = sign | ((uint32_t)(127 - 15 - e) << 23) | (mant << 13);
        }
    } else if (exp == 31) {
        u = sign | 0x7f800000u | (mant << 13);
    } else {
        u = sign | ((exp + 127 - 15) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static inline uint16_t qb_f32_to_f16(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    uint32_t sign = (u >> 16) & 0x8000u;
    uint32_t absu = u & 0x7fffffffu;
    if (absu > 0x7f800000u)
        return (uint16_t)(sign | 0x7e00u);
    if (absu >= 0x477ff000u) /* rounds to >= 65520 -> inf */
        return (uint16_t)(sign | 0x7c00u);
    if (absu < 0x38800000u) { /* below the smallest normal half: subnormal or zero */
        if (absu < 0x33000000u)
            return (uint16_t)sign;
        uint32_t e = absu >> 23;
        uint32_t m = (absu & 0x7fffffu) | 0x800000u;
        /* value = m * 2^(e-150); the half subnormal unit is 2^-24 */
        uint32_t s = 126 - e; /* bits to drop, 14..24 */
        uint32_t q = m >> s;
        uint32_t rem = m & ((1u << s) - 1u);
        uint32_t half = 1u << (s - 1);
        if (rem > half || (rem == half && (q & 1u)))
            q++;
        return (uint16_t)(sign | q);
    }
    uint32_t r = absu + 0xfffu + ((absu >> 13) & 1u);
    r -= (uint32_t)(127 - 15) << 23;
    return (uint16_t)(sign | (r >> 13));
}

#endif /* QB_DTYPE_H */
