/*
 * ggml_quants.c - reference quantizers and dequantizers for ggml block types.
 *
 * Each quantizer follows the arithmetic of llama.cpp's ggml-quants.c
 * (`quantize_row_<t>_ref`; `quantize_iq4_nl` for IQ4_NL, which is what
 * llama-quantize runs for it) statement by statement: the same float
 * operations in the same order, the same rounding helpers (nearest_int's
 * 1.5*2^23 trick, truncating casts, roundf), the same fp16 rounding of block
 * scales. That is what makes our blocks equal llama.cpp's byte for byte; do
 * not "simplify" an expression here without re-running the golden tests.
 *
 * Block layouts are drawn in ggml_quants.h. The search helpers:
 *   make_qx_quants  symmetric scale search (Q6_K), weights x^2, 19 candidates
 *   make_q3_quants  symmetric, coordinate descent on single codes (Q3_K)
 *   make_qkx2_quants asymmetric scale+min least-squares search (Q2_K/Q4_K/Q5_K)
 * The K types then quantize the per-sub-block scales to 4/6/8 bits against
 * an fp16 super-block scale and re-quantize every element with the quantized
 * scales.
 */
#include "ggml_quants.h"

#include <ctype.h>
#include <float.h>
#include <math.h>
#include <string.h>

#include "dtype.h"
#include "qb_common.h"

/* Bit-exactness needs every product rounded before it is added. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#define GROUP_MAX_EPS 1e-15f

/* ---- type table ---------------------------------------------------------------- */

static const struct qb_ggml_type_info type_table[QB_GGML_TYPE_COUNT] = {
    [QB_GGML_F32] = {"f32", 1, 4, 1, 1},
    [QB_GGML_F16] = {"f16", 1, 2, 1, 1},
    [QB_GGML_Q4_0] = {"q4_0", 32, 18, 1, 1},
    [QB_GGML_Q4_1] = {"q4_1", 32, 20, 1, 1},
    [QB_GGML_Q5_0] = {"q5_0", 32, 22, 1, 1},
    [QB_GGML_Q5_1] = {"q5_1", 32, 24, 1, 1},
    [QB_GGML_Q8_0] = {"q8_0", 32, 34, 1, 1},
    [QB_GGML_Q8_1] = {"q8_1", 32, 36, 0, 0},
    [QB_GGML_Q2_K] = {"q2_K", 256, 84, 1, 1},
    [QB_GGML_Q3_K] = {"q3_K", 256, 110, 1, 1},
    [QB_GGML_Q4_K] = {"q4_K", 256, 144, 1, 1},
    [QB_GGML_Q5_K] = {"q5_K", 256, 176, 1, 1},
    [QB_GGML_Q6_K] = {"q6_K", 256, 210, 1, 1},
    [QB_GGML_Q8_K] = {"q8_K", 256, 292, 0, 0},
    [QB_GGML_IQ2_XXS] = {"iq2_xxs", 256, 66, 0, 0},
    [QB_GGML_IQ2_XS] = {"iq2_xs", 256, 74, 0, 0},
    [QB_GGML_IQ3_XXS] = {"iq3_xxs", 256, 98, 0, 0},
    [QB_GGML_IQ1_S] = {"iq1_s", 256, 50, 0, 0},
    [QB_GGML_IQ4_NL] = {"iq4_nl", 32, 18, 1, 1},
    [QB_GGML_IQ3_S] = {"iq3_s", 256, 110, 0, 0},
    [QB_GGML_IQ2_S] = {"iq2_s", 256, 82, 0, 0},
    [QB_GGML_IQ4_XS] = {"iq4_xs", 256, 136, 0, 0},
    [QB_GGML_I8] = {"i8", 1, 1, 0, 0},
    [QB_GGML_I16] = {"i16", 1, 2, 0, 0},
    [QB_GGML_I32] = {"i32", 1, 4, 0, 0},
    [QB_GGML_I64] = {"i64", 1, 8, 0, 0},
    [QB_GGML_F64] = {"f64", 1, 8, 0, 0},
    [QB_GGML_IQ1_M] = {"iq1_m", 256, 56, 0, 0},
    [QB_GGML_BF16] = {"bf16", 1, 2, 1, 1},
    [QB_GGML_TQ1_0] = {"tq1_0", 256, 54, 0, 0},
    [QB_GGML_TQ2_0] = {"tq2_0", 256, 66, 0, 0},
    [QB_GGML_MXFP4] = {"mxfp4", 32, 17, 0, 0},
};

const struct qb_ggml_type_info *qb_ggml_type_info(int type)
{
    if (type < 0 || type >= QB_GGML_TYPE_COUNT || type_table[type].name == NULL)
        return NULL;
    return &type_table[type];
}

int qb_ggml_type_from_name(const char *name)
{
    for (int t = 0; t < QB_GGML_TYPE_COUNT; t++) {
        if (type_table[t].name && strcasecmp(type_table[t].name, name) == 0)
            return t;
    }
    return -1;
}

size_t qb_ggml_row_bytes(int type, int64_t n)
{
    const struct qb_ggml_type_info *ti = qb_ggml_type_info(type);
    if (!ti || n <= 0 || n % ti->block != 0)
        return 0;
    uint64_t blocks = (uint64_t)(n / ti->block);
    if (blocks > SIZE_MAX / (uint64_t)ti->type_size)
        return 0;
    return (size_t)(blocks * (uint64_t)ti->type_size);
}

void qb_ggml_round_f16(const float *x, float *out, size_t n)
{
    for (size_t i = 0; i < n; i++)
        out[i] = qb_f16_to_f32(qb_f32_to_f16(x[i]));
}

int64_t qb_ggml_first_nonfinite(const float *x, int64_t n)
{
    for (int64_t i = 0; i < n; i++) {
        if (!isfinite(x[i]))
            return i;
    }
    return -1;
}

/* ---- helpers ----------------------------------------------------------------- */

static inline float h2f(qb_ggml_half h) { return qb_f16_to_f32(h); }
static inline qb_ggml_half f2h(float f) { return qb_f32_to_f16(f); }

/* Round to nearest (ties to even) through the 1.5*2^23 trick, valid for
 * |f| <= 2^22; outside that it returns the same garbage llama.cpp does. */
static inline int nearest_int(float f)
{
    float v = f + 12582912.f;
    int32_t i;
    memcpy(&i, &v, sizeof i);
    return (i & 0x007fffff) - 0x00400000;
}

static inline int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* Index of the code-book entry nearest to x in the sorted table val[16];
 * a tie goes to the upper entry (2x compared with the pair sum, exact). */
static int best_index_int8(const int8_t *val, float x)
{
    float x2 = x + x;
    int idx = 0;
    for (int step = 8; step > 0; step >>= 1) {
        int j = idx + step;
        if (x2 >= (float)(val[j - 1] + val[j]))
            idx = j;
    }
    return idx;
}

/* Signed value of largest magnitude (the first one on ties) and its |.|. */
static float signed_absmax(const float *x, int n, float *amax_out)
{
    float amax = 0, max = 0;
    for (int i = 0; i < n; i++) {
        float ax = fabsf(x[i]);
        if (ax > amax) {
            amax = ax;
            max = x[i];
        }
    }
    *amax_out = amax;
    return max;
}

/* The smallest and largest of x[0..n). */
static void block_min_max(const float *x, int n, float *min_out, float *max_out)
{
    float min = FLT_MAX, max = -FLT_MAX;
    for (int i = 0; i < n; i++) {
        if (x[i] < min)
            min = x[i];
        if (x[i] > max)
            max = x[i];
    }
    *min_out = min;
    *max_out = max;
}

/* ---- 32-element block types ---------------------------------------------------- */

static void quantize_q4_0(const float *x, struct qb_block_q4_0 *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, x += 32) {
        float amax, max = signed_absmax(x, 32, &amax);
        const float d = max / -8;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = f2h(d);
        for (int j = 0; j < 16; j++) {
            int q0 = (int)(x[j] * id + 8.5f);
            int q1 = (int)(x[16 + j] * id + 8.5f);
            y[i].qs[j] = (uint8_t)(QB_MIN(15, q0) | (QB_MIN(15, q1) << 4));
        }
    }
}

static void quantize_q4_1(const float *x, struct qb_block_q4_1 *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, x += 32) {
        float min, max;
        block_min_max(x, 32, &min, &max);
        const float d = (max - min) / 15;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = f2h(d);
        y[i].m = f2h(min);
        for (int j = 0; j < 16; j++) {
            int q0 = (int)((x[j] - min) * id + 0.5f);
            int q1 = (int)((x[16 + j] - min) * id + 0.5f);
            y[i].qs[j] = (uint8_t)(QB_MIN(15, q0) | (QB_MIN(15, q1) << 4));
        }
    }
}

static void put_u32_le(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
    p[2] = (uint8_t)(v >> 16);
    p[3] = (uint8_t)(v >> 24);
}

static uint32_t get_u32_le(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Pack 32 five-bit codes: nibbles into qs, bit 4 into qh. */
static void pack_q5(const int *q, uint8_t *qs, uint8_t *qh_bytes)
{
    uint32_t qh = 0;
    for (int j = 0; j < 16; j++) {
        qs[j] = (uint8_t)((q[j] & 0x0F) | ((q[16 + j] & 0x0F) << 4));
        qh |= (((uint32_t)q[j] & 0x10u) >> 4) << j;
        qh |= (((uint32_t)q[16 + j] & 0x10u) >> 4) << (j + 16);
    }
    put_u32_le(qh_bytes, qh);
}

static void quantize_q5_0(const float *x, struct qb_block_q5_0 *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, x += 32) {
        float amax, max = signed_absmax(x, 32, &amax);
        const float d = max / -16;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = f2h(d);
        int q[32];
        for (int j = 0; j < 32; j++)
            q[j] = QB_MIN(31, (int)(x[j] * id + 16.5f));
        pack_q5(q, y[i].qs, y[i].qh);
    }
}

static void quantize_q5_1(const float *x, struct qb_block_q5_1 *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, x += 32) {
        float min, max;
        block_min_max(x, 32, &min, &max);
        const float d = (max - min) / 31;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = f2h(d);
        y[i].m = f2h(min);
        int q[32];
        for (int j = 0; j < 32; j++) /* no clamp here, as in ggml */
            q[j] = (uint8_t)(int)((x[j] - min) * id + 0.5f);
        pack_q5(q, y[i].qs, y[i].qh);
    }
}

static void quantize_q8_0(const float *x, struct qb_block_q8_0 *y, int64_t nb)
{
    for (int64_t i = 0; i < nb; i++, x += 32) {
        float amax = 0;
        for (int j = 0; j < 32; j++)
            amax = QB_MAX(amax, fabsf(x[j]));
        const float d = amax / 127;
        const float id = d ? 1.0f / d : 0.0f;
        y[i].d = f2h(d);
        for (int j = 0; j < 32; j++)
            y[i].qs[j] = (int8_t)roundf(x[j] * id);
    }
}

static const int8_t iq4nl_values[16] = QB_IQ4NL_VALUES;

/* llama.cpp quantize_iq4_nl (no imatrix): weights x^2, ntry = 7. */
static void quantize_iq4_nl_block(const float *x, struct qb_block_iq4_nl *y)
{
    const int8_t *values = iq4nl_values;
    const int ntry = 7;
    float weight[32];
    uint8_t L[32] = {0};
    for (int j = 0; j < 32; j++)
        weight[j] = x[j] * x[j];
    float amax;
    float max = signed_absmax(x, 32, &amax);
    float scale = 0;
    if (amax >= GROUP_MAX_EPS) {
        float d = -max / values[0];
        float id = 1 / d;
        float sumqx = 0, sumq2 = 0;
        for (int j = 0; j < 32; j++) {
            float q = values[best_index_int8(values, id * x[j])];
            sumqx += weight[j] * q * x[j];
            sumq2 += weight[j] * q * q;
        }
        d = sumq2 > 0 ? sumqx / sumq2 : 0.f;
        float best = d * sumqx;
        for (int itry = -ntry; itry <= ntry; itry++) {
            id = (itry + values[0]) / max;
            sumqx = sumq2 = 0;
            for (int j = 0; j < 32; j++) {
                float q = values[best_index_int8(values, id * x[j])];
                sumqx += weight[j] * q * x[j];
                sumq2 += weight[j] * q * q;
            }
            if (sumq2 > 0 && sumqx * sumqx > best * sumq2) {
                d = sumqx / sumq2;
                best = d * sumqx;
            }
        }
        scale = d;
    }
    y->d = f2h(scale);
    float id = scale ? 1 / scale : 0;
    for (int j = 0; j < 32; j++)
        L[j] = (uint8_t)best_index_int8(values, id * x[j]);
    for (int j = 0; j < 16; j++)
        y->qs[j] = (uint8_t)(L[j] | (L[16 + j] << 4));
}

/* ---- K-quant helpers --------------------------------------------------------------- */

/* Symmetric scale search, rmse_type 1 (weights x^2), no imatrix. L gets codes
 * in [0, 2*nmax). Returns the scale (x ~ scale * (L - nmax)). */
static float make_qx_quants(int n, int nmax, const float *x, int8_t *L)
{
    float amax;
    float max = signed_absmax(x, n, &amax);
    if (amax < GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.f;
    }
    float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = clampi(nearest_int(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)(l + nmax);
        float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    float scale = suml2 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; is++) {
        if (is == 0)
            continue;
        iscale = -(nmax + 0.1f * is) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; i++) {
            int l = clampi(nearest_int(iscale * x[i]), -nmax, nmax - 1);
            float w = x[i] * x[i];
            sumlx += w * x[i] * l;
            suml2 += w * l * l;
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; i++)
                L[i] = (int8_t)(nmax + clampi(nearest_int(iscale * x[i]), -nmax, nmax - 1));
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/* Symmetric 3-bit search with coordinate descent (do_rmse = true). L gets
 * codes in [0, 2*nmax). */
static float make_q3_quants(int n, int nmax, const float *x, int8_t *L)
{
    float amax;
    float max = signed_absmax(x, n, &amax);
    if (amax < GROUP_MAX_EPS) {
        memset(L, 0, (size_t)n);
        return 0.f;
    }
    float iscale = -nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = clampi(nearest_int(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)l;
        float w = x[i] * x[i];
        sumlx += w * x[i] * l;
        suml2 += w * l * l;
    }
    for (int itry = 0; itry < 5; itry++) {
        int n_changed = 0;
        for (int i = 0; i < n; i++) {
            float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * L[i];
            if (slx <= 0)
                continue;
            float sl2 = suml2 - w * L[i] * L[i];
            int new_l = clampi(nearest_int(x[i] * sl2 / slx), -nmax, nmax - 1);
            if (new_l == L[i])
                continue;
            slx += w * x[i] * new_l;
            sl2 += w * new_l * new_l;
            if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                L[i] = (int8_t)new_l;
                sumlx = slx;
                suml2 = sl2;
                n_changed++;
            }
        }
        if (!n_changed)
            break;
    }
    for (int i = 0; i < n; i++)
        L[i] = (int8_t)(L[i] + nmax);
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

/* Asymmetric scale+min search (x ~ scale * L - *the_min), L in [0, nmax].
 * Note `min` is updated by accepted candidates and feeds later iterations. */
static float make_qkx2_quants(int n, int nmax, const float *x, const float *weights, uint8_t *L,
                              float *the_min, float rmin, float rdelta, int nstep, int use_mad)
{
    uint8_t Laux[32];
    float min = x[0], max = x[0];
    float sum_w = weights[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min)
            min = x[i];
        if (x[i] > max)
            max = x[i];
        float w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if (min > 0)
        min = 0;
    if (max == min) {
        memset(L, 0, (size_t)n);
        *the_min = -min;
        return 0.f;
    }
    float iscale = nmax / (max - min);
    float scale = 1 / iscale;
    float best_error = 0;
    for (int i = 0; i < n; i++) {
        L[i] = (uint8_t)clampi(nearest_int(iscale * (x[i] - min)), 0, nmax);
        float diff = scale * L[i] + min - x[i];
        diff = use_mad ? fabsf(diff) : diff * diff;
        best_error += weights[i] * diff;
    }
    for (int is = 0; is <= nstep; is++) {
        iscale = (rmin + rdelta * is + nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            int l = clampi(nearest_int(iscale * (x[i] - min)), 0, nmax);
            Laux[i] = (uint8_t)l;
            float w = weights[i];
            sum_l += w * l;
            sum_l2 += w * l * l;
            sum_xl += w * l * x[i];
        }
        float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D <= 0)
            continue;
        float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
        float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
        if (this_min > 0) {
            this_min = 0;
            this_scale = sum_xl / sum_l2;
        }
        float cur_error = 0;
        for (int i = 0; i < n; i++) {
            float diff = this_scale * Laux[i] + this_min - x[i];
            diff = use_mad ? fabsf(diff) : diff * diff;
            cur_error += weights[i] * diff;
        }
        if (cur_error < best_error) {
            memcpy(L, Laux, (size_t)n);
            best_error = cur_error;
            scale = this_scale;
            min = this_min;
        }
    }
    *the_min = -min;
    return scale;
}

static void get_scale_min_k4(int j, const uint8_t *q, uint8_t *d, uint8_t *m)
{
    if (j < 4) {
        *d = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *d = (uint8_t)((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = (uint8_t)((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

/* 2-bit codes L[256] into the Q2_K/Q3_K qs layout. */
static void pack_2bit(const uint8_t *L, uint8_t *qs)
{
    for (int j = 0; j < 256; j += 128) {
        for (int l = 0; l < 32; l++)
            qs[j / 4 + l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 2) | (L[j + l + 64] << 4) |
                                      (L[j + l + 96] << 6));
    }
}

/* ---- K types ------------------------------------------------------------------------ */

static void quantize_q2_K(const float *x, struct qb_block_q2_K *y, int64_t nb)
{
    uint8_t L[256];
    float weights[16], mins[16], scales[16];
    const float q4scale = 15.f;
    for (int64_t i = 0; i < nb; i++, x += 256) {
        float max_scale = 0, max_min = 0;
        for (int j = 0; j < 16; j++) {
            for (int l = 0; l < 16; l++)
                weights[l] = fabsf(x[16 * j + l]);
            scales[j] = make_qkx2_quants(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], -0.5f,
                                         0.1f, 15, 1);
            if (scales[j] > max_scale)
                max_scale = scales[j];
            if (mins[j] > max_min)
                max_min = mins[j];
        }
        if (max_scale > 0) {
            float iscale = q4scale / max_scale;
            for (int j = 0; j < 16; j++)
                y[i].scales[j] = (uint8_t)nearest_int(iscale * scales[j]);
            y[i].d = f2h(max_scale / q4scale);
        } else {
            memset(y[i].scales, 0, 16);
            y[i].d = f2h(0.f);
        }
        if (max_min > 0) {
            float iscale = q4scale / max_min;
            for (int j = 0; j < 16; j++)
                y[i].scales[j] |= (uint8_t)(nearest_int(iscale * mins[j]) << 4);
            y[i].dmin = f2h(max_min / q4scale);
        } else {
            y[i].dmin = f2h(0.f);
        }
        for (int j = 0; j < 16; j++) {
            const float d = h2f(y[i].d) * (y[i].scales[j] & 0xF);
            if (!d)
                continue;
            const float dm = h2f(y[i].dmin) * (y[i].scales[j] >> 4);
            for (int ii = 0; ii < 16; ii++)
                L[16 * j + ii] = (uint8_t)clampi(nearest_int((x[16 * j + ii] + dm) / d), 0, 3);
        }
        pack_2bit(L, y[i].qs);
    }
}

static void quantize_q3_K(const float *x, struct qb_block_q3_K *y, int64_t nb)
{
    int8_t L[256];
    float scales[16];
    for (int64_t i = 0; i < nb; i++, x += 256) {
        float max_scale = 0, amax = 0;
        for (int j = 0; j < 16; j++) {
            scales[j] = make_q3_quants(16, 4, x + 16 * j, L + 16 * j);
            float scale = fabsf(scales[j]);
            if (scale > amax) {
                amax = scale;
                max_scale = scales[j];
            }
        }
        memset(y[i].scales, 0, 12);
        if (max_scale) {
            float iscale = -32.f / max_scale;
            for (int j = 0; j < 16; j++) {
                int8_t l = (int8_t)nearest_int(iscale * scales[j]);
                l = (int8_t)(clampi(l, -32, 31) + 32);
                if (j < 8)
                    y[i].scales[j] = (uint8_t)(l & 0xF);
                else
                    y[i].scales[j - 8] |= (uint8_t)((l & 0xF) << 4);
                l = (int8_t)(l >> 4);
                y[i].scales[j % 4 + 8] |= (uint8_t)(l << (2 * (j / 4)));
            }
            y[i].d = f2h(1 / iscale);
        } else {
            y[i].d = f2h(0.f);
        }
        for (int j = 0; j < 16; j++) {
            int sc = j < 8 ? y[i].scales[j] & 0xF : y[i].scales[j - 8] >> 4;
            sc = (sc | (((y[i].scales[8 + j % 4] >> (2 * (j / 4))) & 3) << 4)) - 32;
            float d = h2f(y[i].d) * sc;
            if (!d)
                continue;
            for (int ii = 0; ii < 16; ii++)
                L[16 * j + ii] = (int8_t)(clampi(nearest_int(x[16 * j + ii] / d), -4, 3) + 4);
        }
        memset(y[i].hmask, 0, 32);
        uint8_t U[256];
        for (int j = 0; j < 256; j++) {
            int l = L[j];
            if (l > 3) {
                y[i].hmask[j % 32] |= (uint8_t)(1u << (j / 32));
                l -= 4;
            }
            U[j] = (uint8_t)l;
        }
        pack_2bit(U, y[i].qs);
    }
}

/* Shared by Q4_K and Q5_K: per-32 asymmetric search, 6-bit scales and mins,
 * re-quantization to [0, nmax]. Fills d, dmin, scales and L[256]. */
static void quantize_k4_like(const float *x, int nmax, float rmin, int nstep, qb_ggml_half *dh,
                             qb_ggml_half *dminh, uint8_t *sc_bytes, uint8_t *L)
{
    float weights[32], mins[8], scales[8];
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; j++) {
        float sum_x2 = 0;
        for (int l = 0; l < 32; l++)
            sum_x2 += x[32 * j + l] * x[32 * j + l];
        float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; l++)
            weights[l] = av_x + fabsf(x[32 * j + l]);
        scales[j] = make_qkx2_quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], rmin,
                                     0.1f, nstep, 0);
        if (scales[j] > max_scale)
            max_scale = scales[j];
        if (mins[j] > max_min)
            max_min = mins[j];
    }
    float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    for (int j = 0; j < 8; j++) {
        uint8_t ls = (uint8_t)nearest_int(inv_scale * scales[j]);
        uint8_t lm = (uint8_t)nearest_int(inv_min * mins[j]);
        ls = QB_MIN(63, ls);
        lm = QB_MIN(63, lm);
        if (j < 4) {
            sc_bytes[j] = ls;
            sc_bytes[j + 4] = lm;
        } else {
            sc_bytes[j + 4] = (uint8_t)((ls & 0xF) | ((lm & 0xF) << 4));
            sc_bytes[j - 4] |= (uint8_t)((ls >> 4) << 6);
            sc_bytes[j] |= (uint8_t)((lm >> 4) << 6);
        }
    }
    *dh = f2h(max_scale / 63.f);
    *dminh = f2h(max_min / 63.f);
    for (int j = 0; j < 8; j++) {
        uint8_t sc, m;
        get_scale_min_k4(j, sc_bytes, &sc, &m);
        const float d = h2f(*dh) * sc;
        if (!d)
            continue;
        const float dm = h2f(*dminh) * m;
        for (int ii = 0; ii < 32; ii++)
            L[32 * j + ii] = (uint8_t)clampi(nearest_int((x[32 * j + ii] + dm) / d), 0, nmax);
    }
}

static void quantize_q4_K(const float *x, struct qb_block_q4_K *y, int64_t nb)
{
    uint8_t L[256];
    for (int64_t i = 0; i < nb; i++, x += 256) {
        quantize_k4_like(x, 15, -1.f, 20, &y[i].d, &y[i].dmin, y[i].scales, L);
        uint8_t *q = y[i].qs;
        for (int j = 0; j < 256; j += 64, q += 32) {
            for (int l = 0; l < 32; l++)
                q[l] = (uint8_t)(L[j + l] | (L[j + l + 32] << 4));
        }
    }
}

static void quantize_q5_K(const float *x, struct qb_block_q5_K *y, int64_t nb)
{
    uint8_t L[256];
    for (int64_t i = 0; i < nb; i++, x += 256) {
        quantize_k4_like(x, 31, -0.5f, 15, &y[i].d, &y[i].dmin, y[i].scales, L);
        uint8_t *qh = y[i].qh, *ql = y[i].qs;
        memset(qh, 0, 32);
        uint8_t m1 = 1, m2 = 2;
        for (int n = 0; n < 256; n += 64, ql += 32) {
            for (int j = 0; j < 32; j++) {
                int l1 = L[n + j], l2 = L[n + j + 32];
                if (l1 > 15) {
                    l1 -= 16;
                    qh[j] |= m1;
                }
                if (l2 > 15) {
                    l2 -= 16;
                    qh[j] |= m2;
                }
                ql[j] = (uint8_t)(l1 | (l2 << 4));
            }
            m1 = (uint8_t)(m1 << 2);
            m2 = (uint8_t)(m2 << 2);
        }
    }
}

static void quantize_q6_K(const float *x, struct qb_block_q6_K *y, int64_t nb)
{
    int8_t L[256];
    float scales[16];
    for (int64_t i = 0; i < nb; i++, x += 256) {
        float max_scale = 0, max_abs_scale = 0;
        for (int ib = 0; ib < 16; ib++) {
            const float scale = make_qx_quants(16, 32, x + 16 * ib, L + 16 * ib);
            scales[ib] = scale;
            const float abs_scale = fabsf(scale);
            if (abs_scale > max_abs_scale) {
                max_abs_scale = abs_scale;
                max_scale = scale;
            }
        }
        if (max_abs_scale < GROUP_MAX_EPS) {
            memset(&y[i], 0, sizeof y[i]);
            y[i].d = f2h(0.f);
            continue;
        }
        float iscale = -128.f / max_scale;
        y[i].d = f2h(1 / iscale);
        for (int ib = 0; ib < 16; ib++)
            y[i].scales[ib] = (int8_t)QB_MIN(127, nearest_int(iscale * scales[ib]));
        for (int j = 0; j < 16; j++) {
            float d = h2f(y[i].d) * y[i].scales[j];
            if (!d)
                continue;
            for (int ii = 0; ii < 16; ii++)
                L[16 * j + ii] = (int8_t)(clampi(nearest_int(x[16 * j + ii] / d), -32, 31) + 32);
        }
        uint8_t *ql = y[i].ql, *qh = y[i].qh;
        for (int j = 0; j < 256; j += 128, ql += 64, qh += 32) {
            for (int l = 0; l < 32; l++) {
                const int q1 = L[j + l] & 0xF, q2 = L[j + l + 32] & 0xF;
                const int q3 = L[j + l + 64] & 0xF, q4 = L[j + l + 96] & 0xF;
                ql[l] = (uint8_t)(q1 | (q3 << 4));
                ql[l + 32] = (uint8_t)(q2 | (q4 << 4));
                qh[l] = (uint8_t)((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) |
                                  ((L[j + l + 64] >> 4) << 4) | ((L[j + l + 96] >> 4) << 6));
            }
        }
    }
}

int qb_ggml_quantize_row(int type, const float *x, void *out, int64_t n)
{
    const struct qb_ggml_type_info *ti = qb_ggml_type_info(type);
    if (!ti || !ti->can_quantize || n <= 0 || n % ti->block != 0)
        return -1;
    const int64_t nb = n / ti->block;
    switch (type) {
    case QB_GGML_F32:
        memcpy(out, x, (size_t)n * sizeof(float));
        return 0;
    case QB_GGML_F16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h = qb_f32_to_f16(x[i]);
            memcpy((uint8_t *)out + 2 * i, &h, 2);
        }
        return 0;
    case QB_GGML_BF16:
        for (int64_t i = 0; i < n; i++) {
            uint16_t h = qb_f32_to_bf16(x[i]);
            memcpy((uint8_t *)out + 2 * i, &h, 2);
        }
        return 0;
    case QB_GGML_Q4_0: quantize_q4_0(x, out, nb); return 0;
    case QB_GGML_Q4_1: quantize_q4_1(x, out, nb); return 0;
    case QB_GGML_Q5_0: quantize_q5_0(x, out, nb); return 0;
    case QB_GGML_Q5_1: quantize_q5_1(x, out, nb); return 0;
    case QB_GGML_Q8_0: quantize_q8_0(x, out, nb); return 0;
    case QB_GGML_IQ4_NL:
        for (int64_t i = 0; i < nb; i++)
            quantize_iq4_nl_block(x + 32 * i, (struct qb_block_iq4_nl *)out + i);
        return 0;
    case QB_GGML_Q2_K: quantize_q2_K(x, out, nb); return 0;
    case QB_GGML_Q3_K: quantize_q3_K(x, out, nb); return 0;
    case QB_GGML_Q4_K: quantize_q4_K(x, out, nb); return 0;
    case QB_GGML_Q5_K: quantize_q5_K(x, out, nb); return 0;
    case QB_GGML_Q6_K: quantize_q6_K(x, out, nb); return 0;
    default: return -1;
    }
}

/* ---- dequantization (ggml dequantize_row_*) -------------------------------------- */

static void dequant_q4_0(const struct qb_block_q4_0 *b, float *y)
{
    const float d = h2f(b->d);
    for (int j = 0; j < 16; j++) {
        y[j] = ((b->qs[j] & 0x0F) - 8) * d;
        y[j + 16] = ((b->qs[j] >> 4) - 8) * d;
    }
}

static void dequant_q4_1(const struct qb_block_q4_1 *b, float *y)
{
    const float d = h2f(b->d), m = h2f(b->m);
    for (int j = 0; j < 16; j++) {
        y[j] = (b->qs[j] & 0x0F) * d + m;
        y[j + 16] = (b->qs[j] >> 4) * d + m;
    }
}

static void dequant_q5_0(const struct qb_block_q5_0 *b, float *y)
{
    const float d = h2f(b->d);
    const uint32_t qh = get_u32_le(b->qh);
    for (int j = 0; j < 16; j++) {
        int h0 = (int)((qh >> j) << 4) & 0x10, h1 = (int)(qh >> (j + 12)) & 0x10;
        y[j] = (((b->qs[j] & 0x0F) | h0) - 16) * d;
        y[j + 16] = (((b->qs[j] >> 4) | h1) - 16) * d;
    }
}

static void dequant_q5_1(const struct qb_block_q5_1 *b, float *y)
{
    const float d = h2f(b->d), m = h2f(b->m);
    const uint32_t qh = get_u32_le(b->qh);
    for (int j = 0; j < 16; j++) {
        int h0 = (int)((qh >> j) << 4) & 0x10, h1 = (int)(qh >> (j + 12)) & 0x10;
        y[j] = ((b->qs[j] & 0x0F) | h0) * d + m;
        y[j + 16] = ((b->qs[j] >> 4) | h1) * d + m;
    }
}

static void dequant_q8_0(const struct qb_block_q8_0 *b, float *y)
{
    const float d = h2f(b->d);
    for (int j = 0; j < 32; j++)
        y[j] = b->qs[j] * d;
}

static void dequant_iq4_nl(const struct qb_block_iq4_nl *b, float *y)
{
    const float d = h2f(b->d);
    for (int j = 0; j < 16; j++) {
        y[j] = d * iq4nl_values[b->qs[j] & 0xF];
        y[j + 16] = d * iq4nl_values[b->qs[j] >> 4];
    }
}

static void dequant_q2_K(const struct qb_block_q2_K *b, float *y)
{
    const float d = h2f(b->d), min = h2f(b->dmin);
    const uint8_t *q = b->qs;
    int is = 0;
    for (int n = 0; n < 256; n += 128, q += 32) {
        for (int shift = 0; shift < 8; shift += 2) {
            for (int half = 0; half < 2; half++) {
                uint8_t sc = b->scales[is++];
                float dl = d * (sc & 0xF), ml = min * (sc >> 4);
                for (int l = 0; l < 16; l++)
                    *y++ = dl * ((q[l + 16 * half] >> shift) & 3) - ml;
            }
        }
    }
}

static void dequant_q3_K(const struct qb_block_q3_K *b, float *y)
{
    const float d_all = h2f(b->d);
    const uint8_t *q = b->qs, *hm = b->hmask;
    uint8_t m = 1;
    int is = 0;
    for (int n = 0; n < 256; n += 128, q += 32) {
        for (int shift = 0; shift < 8; shift += 2, m = (uint8_t)(m << 1)) {
            for (int half = 0; half < 2; half++, is++) {
                int sc = is < 8 ? b->scales[is] & 0xF : b->scales[is - 8] >> 4;
                sc |= ((b->scales[8 + is % 4] >> (2 * (is / 4))) & 3) << 4;
                float dl = d_all * (sc - 32);
                for (int l = 0; l < 16; l++) {
                    int k = l + 16 * half;
                    *y++ = dl * (((q[k] >> shift) & 3) - ((hm[k] & m) ? 0 : 4));
                }
            }
        }
    }
}

static void dequant_q4_K(const struct qb_block_q4_K *b, float *y)
{
    const float d = h2f(b->d), min = h2f(b->dmin);
    const uint8_t *q = b->qs;
    for (int j = 0, is = 0; j < 256; j += 64, q += 32, is += 2) {
        uint8_t sc, m;
        get_scale_min_k4(is, b->scales, &sc, &m);
        const float d1 = d * sc, m1 = min * m;
        get_scale_min_k4(is + 1, b->scales, &sc, &m);
        const float d2 = d * sc, m2 = min * m;
        for (int l = 0; l < 32; l++)
            *y++ = d1 * (q[l] & 0xF) - m1;
        for (int l = 0; l < 32; l++)
            *y++ = d2 * (q[l] >> 4) - m2;
    }
}

static void dequant_q5_K(const struct qb_block_q5_K *b, float *y)
{
    const float d = h2f(b->d), min = h2f(b->dmin);
    const uint8_t *ql = b->qs, *qh = b->qh;
    uint8_t u1 = 1, u2 = 2;
    for (int j = 0, is = 0; j < 256; j += 64, ql += 32, is += 2) {
        uint8_t sc, m;
        get_scale_min_k4(is, b->scales, &sc, &m);
        const float d1 = d * sc, m1 = min * m;
        get_scale_min_k4(is + 1, b->scales, &sc, &m);
        const float d2 = d * sc, m2 = min * m;
        for (int l = 0; l < 32; l++)
            *y++ = d1 * ((ql[l] & 0xF) + (qh[l] & u1 ? 16 : 0)) - m1;
        for (int l = 0; l < 32; l++)
            *y++ = d2 * ((ql[l] >> 4) + (qh[l] & u2 ? 16 : 0)) - m2;
        u1 = (uint8_t)(u1 << 2);
        u2 = (uint8_t)(u2 << 2);
    }
}

static void dequant_q6_K(const struct qb_block_q6_K *b, float *y)
{
    const float d = h2f(b->d);
    const uint8_t *ql = b->ql, *qh = b->qh;
    const int8_t *sc = b->scales;
    for (int n = 0; n < 256; n += 128, y += 128, ql += 64, qh += 32, sc += 8) {
        for (int l = 0; l < 32; l++) {
            int is = l / 16;
            const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
            const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
            const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            y[l] = d * sc[is] * q1;
            y[l + 32] = d * sc[is + 2] * q2;
            y[l + 64] = d * sc[is + 4] * q3;
            y[l + 96] = d * sc[is + 6] * q4;
        }
    }
}

/* Dequantize block i of a row of `type` into y[block]. */
static void dequant_block(int type, const void *row, int64_t i, float *y)
{
    const uint8_t *p = row;
    switch (type) {
    case QB_GGML_F32: memcpy(y, p + 4 * i, 4); break;
    case QB_GGML_F16: {
        uint16_t h;
        memcpy(&h, p + 2 * i, 2);
        y[0] = qb_f16_to_f32(h);
        break;
    }
    case QB_GGML_BF16: {
        uint16_t h;
        memcpy(&h, p + 2 * i, 2);
        y[0] = qb_bf16_to_f32(h);
        break;
    }
    case QB_GGML_Q4_0: dequant_q4_0((const struct qb_block_q4_0 *)row + i, y); break;
    case QB_GGML_Q4_1: dequant_q4_1((const struct qb_block_q4_1 *)row + i, y); break;
    case QB_GGML_Q5_0: dequant_q5_0((const struct qb_block_q5_0 *)row + i, y); break;
    case QB_GGML_Q5_1: dequant_q5_1((const struct qb_block_q5_1 *)row + i, y); break;
    case QB_GGML_Q8_0: dequant_q8_0((const struct qb_block_q8_0 *)row + i, y); break;
    case QB_GGML_IQ4_NL: dequant_iq4_nl((const struct qb_block_iq4_nl *)row + i, y); break;
    case QB_GGML_Q2_K: dequant_q2_K((const struct qb_block_q2_K *)row + i, y); break;
    case QB_GGML_Q3_K: dequant_q3_K((const struct qb_block_q3_K *)row + i, y); break;
    case QB_GGML_Q4_K: dequant_q4_K((const struct qb_block_q4_K *)row + i, y); break;
    case QB_GGML_Q5_K: dequant_q5_K((const struct qb_block_q5_K *)row + i, y); break;
    case QB_GGML_Q6_K: dequant_q6_K((const struct qb_block_q6_K *)row + i, y); break;
    default: break;
    }
}

int qb_ggml_dequantize_row(int type, const void *blocks, float *out, int64_t n)
{
    const struct qb_ggml_type_info *ti = qb_ggml_type_info(type);
    if (!ti || !ti->can_dequantize || n <= 0 || n % ti->block != 0)
        return -1;
    const int64_t nb = n / ti->block;
    for (int64_t i = 0; i < nb; i++)
        dequant_block(type, blocks, i, out + i * ti->block);
    return 0;
}

/* Exposed to ggml_quants_simd.c through this prototype only. */
void qb_ggml_dequant_block_internal(int type, const void *row, int64_t i, float *y);
void qb_ggml_dequant_block_internal(int type, const void *row, int64_t i, float *y)
{
    dequant_block(type, row, i, y);
}

float qb_ggml_vec_dot_ref(int type, const void *row, const float *x, int64_t n)
{
    const struct qb_ggml_type_info *ti = qb_ggml_type_info(type);
    if (!ti || !ti->can_dequantize || n <= 0 || n % ti->block != 0)
        return NAN;
    float buf[256];
    double total = 0;
    const int64_t nb = n / ti->block;
    for (int64_t i = 0; i < nb; i++) {
        dequant_block(type, row, i, buf);
        float part = 0;
        for (int j = 0; j < ti->block; j++)
            part += buf[j] * x[i * ti->block + j];
        total += part;
    }
    return (float)total;
}
