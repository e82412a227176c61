/*
 * fp_formats.c - the scalar small-float codecs declared in fp_formats.h.
 *
 * One generic round-to-nearest-even encoder serves E4M3 and E5M2: it rounds the
 * fp32 mantissa to the target width with the classic "add half minus one plus
 * the lsb" trick, re-biases the exponent, and clamps the code magnitude to the
 * largest finite code (rounding is monotonic, so clamping after rounding is the
 * same as saturating before). Values below the smallest normal are scaled by an
 * exact power of two and rounded with rintf (ties to even under the default
 * rounding mode, which quantbench never changes).
 */
#include "fp_formats.h"

#include <math.h>
#include <string.h>

static uint32_t f32_bits(float x)
{
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    return u;
}

static float f32_from_bits(uint32_t u)
{
    float x;
    memcpy(&x, &u, sizeof x);
    return x;
}

/* Magnitude code (without sign) of |x| in a format with mbits mantissa bits,
 * exponent bias `bias`, largest finite magnitude code max_mag. x is finite or Inf. */
static uint32_t minifloat_mag(float x, int mbits, int bias, uint32_t max_mag)
{
    uint32_t a = f32_bits(x) & 0x7fffffffu;
    int e = (int)(a >> 23) - 127;
    int emin = 1 - bias;
    if (e < emin) {
        /* target subnormal (or zero): value = m * 2^(emin - mbits), m in [0, 2^mbits];
         * m == 2^mbits is exactly the smallest normal code (exp 1, mantissa 0) */
        float m = rintf(ldexpf(fabsf(x), mbits - emin));
        return (uint32_t)m;
    }
    uint32_t shift = 23u - (uint32_t)mbits;
    uint32_t r = a + ((1u << (shift - 1)) - 1u) + ((a >> shift) & 1u);
    r >>= shift;
    r -= (uint32_t)(127 - bias) << mbits;
    return r > max_mag ? max_mag : r;
}

static float minifloat_value(uint32_t mag, int mbits, int bias)
{
    uint32_t exp = mag >> mbits;
    uint32_t mant = mag & ((1u << mbits) - 1u);
    if (exp == 0)
        return ldexpf((float)mant, 1 - bias - mbits);
    return f32_from_bits(((exp - (uint32_t)bias + 127u) << 23) | (mant << (23 - mbits)));
}

uint8_t qb_e4m3_from_f32(float x)
{
    if (isnan(x))
        return QB_E4M3_NAN;
    uint32_t sign = (f32_bits(x) >> 31) << 7;
    return (uint8_t)(sign | minifloat_mag(x, 3, 7, 0x7e));
}

float qb_e4m3_to_f32(uint8_t code)
{
    uint32_t mag = code & 0x7fu;
    if (mag == 0x7f)
        return NAN;
    float v = minifloat_value(mag, 3, 7);
    return (code & 0x80) ? -v : v;
}

uint8_t qb_e5m2_from_f32(float x)
{
    if (isnan(x))
        return QB_E5M2_NAN;
    uint32_t sign = (f32_bits(x) >> 31) << 7;
    return (uint8_t)(sign | minifloat_mag(x, 2, 15, 0x7b));
}

float qb_e5m2_to_f32(uint8_t code)
{
    uint32_t mag = code & 0x7fu;
    float v;
    if (mag == 0x7c)
        v = INFINITY;
    else if (mag > 0x7c)
        return NAN;
    else
        v = minifloat_value(mag, 2, 15);
    return (code & 0x80) ? -v : v;
}

const float qb_e2m1_values[16] = {
    0.0f,  0.5f,  1.0f,  1.5f,  2.0f,  3.0f,  4.0f,  6.0f,
    -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f,
};

uint8_t qb_e2m1_from_f32(float x)
{
    if (isnan(x))
        return 0;
    uint8_t sign = (uint8_t)((f32_bits(x) >> 31) << 3);
    float a = fabsf(x);
    /* midpoints between grid values; at a tie the even code (mantissa 0) wins */
    uint8_t mag;
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

float qb_e2m1_to_f32(uint8_t code)
{
    return qb_e2m1_values[code & 0xf];
}

float qb_e8m0_to_f32(uint8_t e)
{
    if (e == 255)
        return NAN;
    return f32_from_bits(e ? (uint32_t)e << 23 : 0x00400000u);
}

uint8_t qb_e8m0_mx_scale(float amax, int emax_elem)
{
    if (isnan(amax))
        return 255;
    if (!(amax > 0.0f))
        return 0;
    if (isinf(amax))
        return 254;
    int ex;
    frexpf(amax, &ex); /* amax = f * 2^ex, f in [0.5, 1): floor(log2 amax) = ex - 1 */
    int e = ex - 1 - emax_elem + 127;
    if (e < 0)
        e = 0;
    if (e > 254)
        e = 254;
    return (uint8_t)e;
}

const float qb_nf4_values[16] = {
    -1.0f,
    -0.6961928009986877f,
    -0.5250730514526367f,
    -0.39491748809814453f,
    -0.28444138169288635f,
    -0.18477343022823334f,
    -0.09105003625154495f,
    0.0f,
    0.07958029955625534f,
    0.16093020141124725f,
    0.24611230194568634f,
    0.33791524171829224f,
    0.44070982933044434f,
    0.5626170039176941f,
    0.7229568362236023f,
    1.0f,
};

uint8_t qb_nf4_from_unit(float x)
{
    /* bitsandbytes dQuantizeNF4 (csrc/kernels.cu): a 4-level decision tree whose
     * thresholds are the midpoints of adjacent code values; NaN falls to code 0 */
    if (x > 0.03979014977812767f) {
        if (x > 0.3893125355243683f) {
            if (x > 0.6427869200706482f)
                return x > 0.8614784181118011f ? 15 : 14;
            return x > 0.5016634166240692f ? 13 : 12;
        }
        if (x > 0.2035212516784668f)
            return x > 0.2920137718319893f ? 11 : 10;
        return x > 0.1202552504837513f ? 9 : 8;
    }
    if (x > -0.33967943489551544f) {
        if (x > -0.13791173323988914f)
            return x > -0.045525018125772476f ? 7 : 6;
        return x > -0.23460740596055984f ? 5 : 4;
    }
    if (x > -0.6106329262256622f)
        return x > -0.4599952697753906f ? 3 : 2;
    return x > -0.8480964004993439f ? 1 : 0;
}

/* Generated in fp32 the way bitsandbytes' create_dynamic_map() does: for i in
 * 0..6, linspace(0.1, 1, 2^i + 1) (torch's two-sided fp32 linspace), midpoints,
 * times fp32(10^(i-6)), both signs; plus 0 and 1; sorted. */
const float qb_bnb_dynamic_map[256] = {
    -0x1.fc6666p-1f, -0x1.f53334p-1f, -0x1.ee0000p-1f, -0x1.e6ccccp-1f,
    -0x1.df999ap-1f, -0x1.d86666p-1f, -0x1.d13334p-1f, -0x1.ca0000p-1f,
    -0x1.c2ccccp-1f, -0x1.bb999ap-1f, -0x1.b46666p-1f, -0x1.ad3334p-1f,
    -0x1.a60000p-1f, -0x1.9eccccp-1f, -0x1.97999ap-1f, -0x1.906666p-1f,
    -0x1.893334p-1f, -0x1.820000p-1f, -0x1.7acccep-1f, -0x1.73999ap-1f,
    -0x1.6c6666p-1f, -0x1.653334p-1f, -0x1.5e0000p-1f, -0x1.56cccep-1f,
    -0x1.4f999ap-1f, -0x1.486666p-1f, -0x1.413334p-1f, -0x1.3a0000p-1f,
    -0x1.32cccep-1f, -0x1.2b999ap-1f, -0x1.246666p-1f, -0x1.1d3334p-1f,
    -0x1.160000p-1f, -0x1.0eccccp-1f, -0x1.07999ap-1f, -0x1.006666p-1f,
    -0x1.f26664p-2f, -0x1.e40000p-2f, -0x1.d59998p-2f, -0x1.c73332p-2f,
    -0x1.b8ccccp-2f, -0x1.aa6664p-2f, -0x1.9c0000p-2f, -0x1.8d9998p-2f,
    -0x1.7f3334p-2f, -0x1.70ccccp-2f, -0x1.626664p-2f, -0x1.540000p-2f,
    -0x1.459998p-2f, -0x1.373334p-2f, -0x1.28ccccp-2f, -0x1.1a6666p-2f,
    -0x1.0c0000p-2f, -0x1.fb3332p-3f, -0x1.de6666p-3f, -0x1.c1999ap-3f,
    -0x1.a4ccccp-3f, -0x1.880000p-3f, -0x1.6b3332p-3f, -0x1.4e6666p-3f,
    -0x1.31999ap-3f, -0x1.14ccccp-3f, -0x1.f00000p-4f, -0x1.b66668p-4f,
    -0x1.93d70ap-4f, -0x1.8851eep-4f, -0x1.7ccccep-4f, -0x1.7147aep-4f,
    -0x1.65c290p-4f, -0x1.5a3d70p-4f, -0x1.4eb854p-4f, -0x1.433334p-4f,
    -0x1.37ae16p-4f, -0x1.2c28f6p-4f, -0x1.20a3d6p-4f, -0x1.151ebap-4f,
    -0x1.09999ap-4f, -0x1.fc28f6p-5f, -0x1.e51ebap-5f, -0x1.ce147ap-5f,
    -0x1.b70a40p-5f, -0x1.a00000p-5f, -0x1.88f5c2p-5f, -0x1.71eb84p-5f,
    -0x1.5ae146p-5f, -0x1.43d70ap-5f, -0x1.2ccccep-5f, -0x1.15c28ep-5f,
    -0x1.fd70a4p-6f, -0x1.cf5c26p-6f, -0x1.a147aep-6f, -0x1.733334p-6f,
    -0x1.451eb8p-6f, -0x1.170a3ep-6f, -0x1.d1eb86p-7f, -0x1.75c290p-7f,
    -0x1.3e76c8p-7f, -0x1.2c0830p-7f, -0x1.19999ap-7f, -0x1.072b02p-7f,
    -0x1.e978d4p-8f, -0x1.c49ba6p-8f, -0x1.9fbe78p-8f, -0x1.7ae148p-8f,
    -0x1.56041ap-8f, -0x1.3126e8p-8f, -0x1.0c49bap-8f, -0x1.ced914p-9f,
    -0x1.851eb8p-9f, -0x1.3b645ap-9f, -0x1.e353f8p-10f, -0x1.4fdf3ap-10f,
    -0x1.eecbfep-11f, -0x1.b3d07cp-11f, -0x1.78d500p-11f, -0x1.3dd982p-11f,
    -0x1.02de00p-11f, -0x1.8fc504p-12f, -0x1.19ce0ap-12f, -0x1.47ae16p-13f,
    -0x1.743e96p-14f, -0x1.15df66p-14f, -0x1.6f0068p-15f, -0x1.64840cp-16f,
    -0x1.040bfep-17f, -0x1.b43528p-19f, -0x1.27476ep-21f, 0x0.0p+0f,
    0x1.27476ep-21f, 0x1.b43528p-19f, 0x1.040bfep-17f, 0x1.64840cp-16f,
    0x1.6f0068p-15f, 0x1.15df66p-14f, 0x1.743e96p-14f, 0x1.47ae16p-13f,
    0x1.19ce0ap-12f, 0x1.8fc504p-12f, 0x1.02de00p-11f, 0x1.3dd982p-11f,
    0x1.78d500p-11f, 0x1.b3d07cp-11f, 0x1.eecbfep-11f, 0x1.4fdf3ap-10f,
    0x1.e353f8p-10f, 0x1.3b645ap-9f, 0x1.851eb8p-9f, 0x1.ced914p-9f,
    0x1.0c49bap-8f, 0x1.3126e8p-8f, 0x1.56041ap-8f, 0x1.7ae148p-8f,
    0x1.9fbe78p-8f, 0x1.c49ba6p-8f, 0x1.e978d4p-8f, 0x1.072b02p-7f,
    0x1.19999ap-7f, 0x1.2c0830p-7f, 0x1.3e76c8p-7f, 0x1.75c290p-7f,
    0x1.d1eb86p-7f, 0x1.170a3ep-6f, 0x1.451eb8p-6f, 0x1.733334p-6f,
    0x1.a147aep-6f, 0x1.cf5c26p-6f, 0x1.fd70a4p-6f, 0x1.15c28ep-5f,
    0x1.2ccccep-5f, 0x1.43d70ap-5f, 0x1.5ae146p-5f, 0x1.71eb84p-5f,
    0x1.88f5c2p-5f, 0x1.a00000p-5f, 0x1.b70a40p-5f, 0x1.ce147ap-5f,
    0x1.e51ebap-5f, 0x1.fc28f6p-5f, 0x1.09999ap-4f, 0x1.151ebap-4f,
    0x1.20a3d6p-4f, 0x1.2c28f6p-4f, 0x1.37ae16p-4f, 0x1.433334p-4f,
    0x1.4eb854p-4f, 0x1.5a3d70p-4f, 0x1.65c290p-4f, 0x1.7147aep-4f,
    0x1.7ccccep-4f, 0x1.8851eep-4f, 0x1.93d70ap-4f, 0x1.b66668p-4f,
    0x1.f00000p-4f, 0x1.14ccccp-3f, 0x1.31999ap-3f, 0x1.4e6666p-3f,
    0x1.6b3332p-3f, 0x1.880000p-3f, 0x1.a4ccccp-3f, 0x1.c1999ap-3f,
    0x1.de6666p-3f, 0x1.fb3332p-3f, 0x1.0c0000p-2f, 0x1.1a6666p-2f,
    0x1.28ccccp-2f, 0x1.373334p-2f, 0x1.459998p-2f, 0x1.540000p-2f,
    0x1.626664p-2f, 0x1.70ccccp-2f, 0x1.7f3334p-2f, 0x1.8d9998p-2f,
    0x1.9c0000p-2f, 0x1.aa6664p-2f, 0x1.b8ccccp-2f, 0x1.c73332p-2f,
    0x1.d59998p-2f, 0x1.e40000p-2f, 0x1.f26664p-2f, 0x1.006666p-1f,
    0x1.07999ap-1f, 0x1.0eccccp-1f, 0x1.160000p-1f, 0x1.1d3334p-1f,
    0x1.246666p-1f, 0x1.2b999ap-1f, 0x1.32cccep-1f, 0x1.3a0000p-1f,
    0x1.413334p-1f, 0x1.486666p-1f, 0x1.4f999ap-1f, 0x1.56cccep-1f,
    0x1.5e0000p-1f, 0x1.653334p-1f, 0x1.6c6666p-1f, 0x1.73999ap-1f,
    0x1.7acccep-1f, 0x1.820000p-1f, 0x1.893334p-1f, 0x1.906666p-1f,
    0x1.97999ap-1f, 0x1.9eccccp-1f, 0x1.a60000p-1f, 0x1.ad3334p-1f,
    0x1.b46666p-1f, 0x1.bb999ap-1f, 0x1.c2ccccp-1f, 0x1.ca0000p-1f,
    0x1.d13334p-1f, 0x1.d86666p-1f, 0x1.df999ap-1f, 0x1.e6ccccp-1f,
    0x1.ee0000p-1f, 0x1.f53334p-1f, 0x1.fc6666p-1f, 0x1.p+0f,
};

uint8_t qb_bnb_dynamic_from_unit(float x)
{
    if (isnan(x))
        x = 0.0f;
    if (x < -1.0f)
        x = -1.0f;
    if (x > 1.0f)
        x = 1.0f;
    /* lo = last index with value <= x (the table is sorted, map[0] > -1) */
    int lo = 0, hi = 255;
    if (x < qb_bnb_dynamic_map[0])
        return 0;
    while (hi - lo > 1) {
        int mid = (lo + hi) / 2;
        if (qb_bnb_dynamic_map[mid] <= x)
            lo = mid;
        else
            hi = mid;
    }
    if (qb_bnb_dynamic_map[hi] <= x)
        return (uint8_t)hi;
    float dlo = x - qb_bnb_dynamic_map[lo];
    float dhi = qb_bnb_dynamic_map[hi] - x;
    return (uint8_t)(dhi < dlo ? hi : lo);
}
