/*
 * test_quant_fp.c - the small-float codecs (fp_formats.h) against decoders
 * written here from the bit definitions, brute-force nearest-even searches and
 * hand-computed edge cases: E4M3, E5M2, E2M1, E8M0, the NF4 table and decision
 * tree, bitsandbytes' 8-bit dynamic map.
 * qb-test-labels: arm64
 */
#include <criterion/criterion.h>
#include <float.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "fp_formats.h"

/* ---- decoders from the bit definitions ---- */

static double hand_e4m3(unsigned c)
{
    int s = (c >> 7) & 1, e = (c >> 3) & 15, m = c & 7;
    if (e == 15 && m == 7)
        return NAN;
    double v = e == 0 ? (m / 8.0) * ldexp(1.0, -6) : (1.0 + m / 8.0) * ldexp(1.0, e - 7);
    return s ? -v : v;
}

static double hand_e5m2(unsigned c)
{
    int s = (c >> 7) & 1, e = (c >> 2) & 31, m = c & 3;
    double v;
    if (e == 31)
        v = m == 0 ? INFINITY : NAN;
    else
        v = e == 0 ? (m / 4.0) * ldexp(1.0, -14) : (1.0 + m / 4.0) * ldexp(1.0, e - 15);
    return s ? -v : v;
}

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static double urand(void)
{
    rng_state = rng_state * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(rng_state >> 11) / 9007199254740992.0;
}

/* nearest finite code by brute force; ties to the code with an even mantissa lsb */
static unsigned brute_nearest(float x, double (*dec)(unsigned), unsigned n_codes, double max)
{
    double a = fmin(fabs((double)x), max);
    unsigned best = 0;
    double best_d = INFINITY;
    for (unsigned c = 0; c < n_codes / 2; c++) { /* positive half */
        double v = dec(c);
        if (!isfinite(v))
            continue;
        double d = fabs(v - a);
        if (d < best_d || (d == best_d && (c & 1) == 0)) {
            best = c;
            best_d = d;
        }
    }
    return signbit(x) ? best | (n_codes / 2) : best;
}

Test(e4m3, every_code_decodes_like_the_bit_definition)
{
    int nans = 0;
    for (unsigned c = 0; c < 256; c++) {
        double ref = hand_e4m3(c);
        float got = qb_e4m3_to_f32((uint8_t)c);
        if (isnan(ref)) {
            cr_assert(isnan(got), "code 0x%02x should be NaN", c);
            nans++;
            continue;
        }
        cr_assert(!isinf(got), "E4M3 has no Inf (code 0x%02x)", c);
        cr_assert_eq((double)got, ref, "code 0x%02x: %g vs %g", c, (double)got, ref);
        cr_assert_eq(qb_e4m3_from_f32(got), c == 0x80 ? 0x80 : c, "round trip 0x%02x", c);
    }
    cr_assert_eq(nans, 2); /* 0x7F and 0xFF only */
    cr_assert_eq(qb_e4m3_to_f32(0x7e), 448.0f);
    cr_assert_eq(qb_e4m3_to_f32(0x01), 0x1p-9f);
    cr_assert_eq(qb_e4m3_to_f32(0x08), 0x1p-6f);
}

Test(e4m3, rounds_to_nearest_even_and_saturates)
{
    /* every midpoint between adjacent positive finite codes goes to the even one */
    for (unsigned c = 0; c < 0x7e; c++) {
        float a = qb_e4m3_to_f32((uint8_t)c), b = qb_e4m3_to_f32((uint8_t)(c + 1));
        float mid = (a + b) / 2; /* exact in fp32 */
        unsigned even = (c & 1) ? c + 1 : c;
        cr_assert_eq(qb_e4m3_from_f32(mid), even, "tie between 0x%02x and 0x%02x", c, c + 1);
        cr_assert_eq(qb_e4m3_from_f32(nextafterf(mid, 0)), c);
        cr_assert_eq(qb_e4m3_from_f32(nextafterf(mid, INFINITY)), c + 1);
        cr_assert_eq(qb_e4m3_from_f32(-mid), 0x80 | even);
    }
    cr_assert_eq(qb_e4m3_from_f32(448.0f), 0x7e);
    cr_assert_eq(qb_e4m3_from_f32(464.0f), 0x7e); /* the tie towards 480 saturates */
    cr_assert_eq(qb_e4m3_from_f32(1e9f), 0x7e);
    cr_assert_eq(qb_e4m3_from_f32(INFINITY), 0x7e);
    cr_assert_eq(qb_e4m3_from_f32(-INFINITY), 0xfe);
    cr_assert_eq(qb_e4m3_from_f32(NAN), 0x7f);
    cr_assert_eq(qb_e4m3_from_f32(0x1p-10f), 0x00); /* half the smallest subnormal: even */
    cr_assert_eq(qb_e4m3_from_f32(1e-30f), 0x00);
    cr_assert_eq(qb_e4m3_from_f32(1e-45f), 0x00);   /* fp32 subnormal */
    for (int i = 0; i < 4000; i++) {
        float x = (float)((urand() * 2 - 1) * ldexp(1.0, (int)(urand() * 28) - 14));
        cr_assert_eq(qb_e4m3_from_f32(x), brute_nearest(x, hand_e4m3, 256, 448.0), "x = %a",
                     (double)x);
    }
}

Test(e5m2, every_code_decodes_like_the_bit_definition)
{
    int nans = 0, infs = 0;
    for (unsigned c = 0; c < 256; c++) {
        double ref = hand_e5m2(c);
        float got = qb_e5m2_to_f32((uint8_t)c);
        if (isnan(ref)) {
            cr_assert(isnan(got), "code 0x%02x should be NaN", c);
            nans++;
            continue;
        }
        infs += isinf(ref) != 0;
        cr_assert_eq((double)got, ref, "code 0x%02x", c);
        if (!isinf(ref))
            cr_assert_eq(qb_e5m2_from_f32(got), c == 0x80 ? 0x80 : c);
    }
    cr_assert_eq(nans, 6);
    cr_assert_eq(infs, 2);
    cr_assert_eq(qb_e5m2_to_f32(0x7b), 57344.0f);
    cr_assert_eq(qb_e5m2_to_f32(0x01), 0x1p-16f);
}

Test(e5m2, rounds_to_nearest_even_and_saturates)
{
    for (unsigned c = 0; c < 0x7b; c++) {
        float a = qb_e5m2_to_f32((uint8_t)c), b = qb_e5m2_to_f32((uint8_t)(c + 1));
        float mid = (a + b) / 2;
        unsigned even = (c & 1) ? c + 1 : c;
        cr_assert_eq(qb_e5m2_from_f32(mid), even, "tie between 0x%02x and 0x%02x", c, c + 1);
        cr_assert_eq(qb_e5m2_from_f32(nextafterf(mid, 0)), c);
        cr_assert_eq(qb_e5m2_from_f32(nextafterf(mid, INFINITY)), c + 1);
    }
    cr_assert_eq(qb_e5m2_from_f32(61440.0f), 0x7b); /* tie towards 65536 saturates */
    cr_assert_eq(qb_e5m2_from_f32(INFINITY), 0x7b);
    cr_assert_eq(qb_e5m2_from_f32(-1e20f), 0xfb);
    cr_assert(isnan(qb_e5m2_to_f32(qb_e5m2_from_f32(NAN))));
    for (int i = 0; i < 4000; i++) {
        float x = (float)((urand() * 2 - 1) * ldexp(1.0, (int)(urand() * 40) - 20));
        cr_assert_eq(qb_e5m2_from_f32(x), brute_nearest(x, hand_e5m2, 256, 57344.0), "x = %a",
                     (double)x);
    }
}

static double hand_e2m1(unsigned c)
{
    int s = (c >> 3) & 1, e = (c >> 1) & 3, m = c & 1;
    double v = e == 0 ? m * 0.5 : (1.0 + m / 2.0) * ldexp(1.0, e - 1);
    return s ? -v : v;
}

Test(e2m1, grid_ties_and_saturation)
{
    const float grid[8] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6};
    for (unsigned c = 0; c < 16; c++) {
        cr_assert_eq((double)qb_e2m1_to_f32((uint8_t)c), hand_e2m1(c));
        if (c < 8)
            cr_assert_eq(qb_e2m1_to_f32((uint8_t)c), grid[c]);
        cr_assert_eq(qb_e2m1_from_f32(qb_e2m1_to_f32((uint8_t)c)), c);
    }
    /* ties go to the even mantissa */
    cr_assert_eq(qb_e2m1_from_f32(0.25f), 0);
    cr_assert_eq(qb_e2m1_from_f32(0.75f), 2);
    cr_assert_eq(qb_e2m1_from_f32(1.25f), 2);
    cr_assert_eq(qb_e2m1_from_f32(1.75f), 4);
    cr_assert_eq(qb_e2m1_from_f32(2.5f), 4);
    cr_assert_eq(qb_e2m1_from_f32(3.5f), 6);
    cr_assert_eq(qb_e2m1_from_f32(5.0f), 6);
    cr_assert_eq(qb_e2m1_from_f32(-5.0f), 14);
    cr_assert_eq(qb_e2m1_from_f32(7.0f), 7);
    cr_assert_eq(qb_e2m1_from_f32(1e30f), 7);
    cr_assert_eq(qb_e2m1_from_f32(-INFINITY), 15);
    for (int i = 0; i < 4000; i++) {
        float x = (float)((urand() * 2 - 1) * 8);
        cr_assert_eq(qb_e2m1_from_f32(x), brute_nearest(x, hand_e2m1, 16, 6.0), "x = %a",
                     (double)x);
    }
}

Test(e8m0, values_and_mx_scale_edge_cases)
{
    cr_assert_eq(qb_e8m0_to_f32(127), 1.0f);
    cr_assert_eq(qb_e8m0_to_f32(0), 0x1p-127f);
    cr_assert_eq(qb_e8m0_to_f32(1), 0x1p-126f);
    cr_assert_eq(qb_e8m0_to_f32(254), 0x1p127f);
    cr_assert(isnan(qb_e8m0_to_f32(255)));
    /* all-zero block */
    cr_assert_eq(qb_e8m0_mx_scale(0.0f, 2), 0);
    /* E2M1: amax in [4, 8) maps to scale 1 */
    cr_assert_eq(qb_e8m0_mx_scale(4.0f, 2), 127);
    cr_assert_eq(qb_e8m0_mx_scale(7.99f, 2), 127);
    cr_assert_eq(qb_e8m0_mx_scale(6.0f, 2), 127);
    cr_assert_eq(qb_e8m0_mx_scale(8.0f, 2), 128);
    cr_assert_eq(qb_e8m0_mx_scale(3.9f, 2), 126);
    /* denormal range: fp32 subnormal amax and tiny normals clamp to 2^-127 */
    cr_assert_eq(qb_e8m0_mx_scale(1e-40f, 2), 0);
    cr_assert_eq(qb_e8m0_mx_scale(0x1p-149f, 2), 0);
    cr_assert_eq(qb_e8m0_mx_scale(0x1p-125f, 2), 0);
    cr_assert_eq(qb_e8m0_mx_scale(0x1p-124f, 2), 1);
    /* huge values */
    cr_assert_eq(qb_e8m0_mx_scale(FLT_MAX, 2), 252);
    cr_assert_eq(qb_e8m0_mx_scale(0x1p127f, 2), 252);
    cr_assert_eq(qb_e8m0_mx_scale(INFINITY, 2), 254);
    cr_assert_eq(qb_e8m0_mx_scale(NAN, 2), 255);
}

Test(nf4, table_and_decision_tree)
{
    /* bitsandbytes get_4bit_type("nf4"), FORMATS.md 5.1 */
    const double ref[16] = {-1.0, -0.6961928009986877, -0.5250730514526367,
                            -0.39491748809814453, -0.28444138169288635, -0.18477343022823334,
                            -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
                            0.24611230194568634, 0.33791524171829224, 0.44070982933044434,
                            0.5626170039176941, 0.7229568362236023, 1.0};
    for (int k = 0; k < 16; k++) {
        cr_assert_eq(qb_nf4_values[k], (float)ref[k]);
        cr_assert_eq(qb_nf4_from_unit(qb_nf4_values[k]), k);
    }
    /* the tree picks the nearest value (thresholds are midpoints up to fp32) */
    for (int i = 0; i < 20000; i++) {
        float x = (float)(urand() * 2 - 1);
        int got = qb_nf4_from_unit(x), best = 0;
        for (int k = 1; k < 16; k++)
            if (fabs(x - ref[k]) < fabs(x - ref[best]))
                best = k;
        if (got != best) /* only at a midpoint, within fp32 rounding of it */
            cr_assert_lt(fabs(fabs(x - ref[got]) - fabs(x - ref[best])), 1e-7, "x = %a",
                         (double)x);
    }
    cr_assert_eq(qb_nf4_from_unit(-2.0f), 0);
    cr_assert_eq(qb_nf4_from_unit(2.0f), 15);
}

Test(bnb_dynamic, map_shape_and_nearest_search)
{
    int neg = 0, pos = 0, zero = 0;
    for (int k = 0; k < 256; k++) {
        if (k)
            cr_assert_lt(qb_bnb_dynamic_map[k - 1], qb_bnb_dynamic_map[k], "sorted at %d", k);
        neg += qb_bnb_dynamic_map[k] < 0;
        pos += qb_bnb_dynamic_map[k] > 0;
        zero += qb_bnb_dynamic_map[k] == 0;
        cr_assert_eq(qb_bnb_dynamic_from_unit(qb_bnb_dynamic_map[k]), k);
    }
    cr_assert_eq(neg, 127);
    cr_assert_eq(pos, 128); /* 127 + the extra 1.0 */
    cr_assert_eq(zero, 1);
    cr_assert_eq(qb_bnb_dynamic_map[255], 1.0f);
    /* hand values: i = 6 has linspace(0.1, 1, 65), step 0.9/64 */
    cr_assert_float_eq(qb_bnb_dynamic_map[254], 0.99296875f, 1e-6);
    cr_assert_float_eq(qb_bnb_dynamic_map[0], -0.99296875f, 1e-6);
    /* i = 0: one midpoint 0.55 times 1e-6 is the smallest magnitude */
    cr_assert_float_eq(qb_bnb_dynamic_map[128], 0.55e-6f, 1e-12);
    cr_assert_float_eq(qb_bnb_dynamic_map[126], -0.55e-6f, 1e-12);
    /* i = 1: linspace(0.1, 1, 3) midpoints 0.325, 0.775 times 1e-5 */
    cr_assert_float_eq(qb_bnb_dynamic_map[129], 0.325e-5f, 1e-11);
    cr_assert_float_eq(qb_bnb_dynamic_map[130], 0.775e-5f, 1e-11);
    for (int i = 0; i < 4000; i++) {
        float x = (float)(urand() * 2.2 - 1.1);
        int got = qb_bnb_dynamic_from_unit(x), best = 0;
        float xc = fminf(fmaxf(x, -1.0f), 1.0f);
        for (int k = 1; k < 256; k++)
            if (fabsf(xc - qb_bnb_dynamic_map[k]) < fabsf(xc - qb_bnb_dynamic_map[best]))
                best = k;
        cr_assert_eq(got, best, "x = %a", (double)x);
    }
}
