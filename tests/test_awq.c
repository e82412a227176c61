/*
 * test_awq.c - AWQ building blocks: the quantizer on a hand-computed group, the
 * scale candidates' normalisation, the grid search picking the loss minimiser
 * on a constructed layer with outlier input channels, and the clip search.
 * qb-test-labels: arm64
 */
#include <criterion/criterion.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "awq.h"

Test(awq, quantizer_hand_computed_group)
{
    /* min -1, max 2: scale = 3/15 = 0.2 -> f16 0.199951171875; zero = round(1/scale) = 5 */
    float w[8] = {-1.0f, 0.0f, 0.5f, 2.0f, 1.0f, -0.3f, 0.1f, 1.9f};
    struct qb_qresult q;
    float deq[8];
    cr_assert_eq(qb_awq_quantize(w, 1, 8, 4, 8, &q, deq, NULL), QB_OK);
    cr_assert_eq(q.scales[0], 0.199951171875f);
    cr_assert_eq(q.zeros[0], 5);
    static const uint8_t codes[8] = {0, 5, 8, 15, 10, 3, 6, 15};
    for (int i = 0; i < 8; i++) {
        cr_assert_eq(q.codes[i], codes[i], "code %d: %d", i, q.codes[i]);
        cr_assert_eq(deq[i], 0.199951171875f * (codes[i] - 5));
    }
    qb_qresult_free(&q);
    qb_awq_pseudo_quantize(w, 1, 8, 4, 8);
    for (int i = 0; i < 8; i++)
        cr_assert_eq(w[i], deq[i]);
}

Test(awq, scale_candidates_are_normalised)
{
    float x[6] = {0.1f, 1, 10, 2, 3, 0.5f}, wm[6] = {0.5f, 0.2f, 0.9f, 0.4f, 0.4f, 0.3f}, s[6];
    for (int r = 0; r < 20; r++) {
        qb_awq_scales_for_ratio(x, wm, 6, r / 20.0, s);
        float mx = 0, mn = INFINITY;
        for (int i = 0; i < 6; i++)
            mx = fmaxf(mx, s[i]), mn = fminf(mn, s[i]);
        cr_assert(fabs(mx * mn - 1) < 1e-5, "ratio %d: max*min = %g", r, mx * mn);
    }
    qb_awq_scales_for_ratio(x, wm, 6, 0.5, s); /* by hand for channel 2 vs 0 */
    double e2 = sqrt(10) / (sqrt(0.9) + 1e-4), e0 = sqrt(0.1) / (sqrt(0.5) + 1e-4);
    cr_assert(fabs(s[2] / s[0] - e2 / e0) < 1e-4 * (e2 / e0));
}

static double nrand(uint64_t *st)
{
    *st = *st * 6364136223846793005ull + 1442695040888963407ull;
    double u = ((*st >> 11) + 1.0) / 9007199254740993.0;
    *st = *st * 6364136223846793005ull + 1442695040888963407ull;
    double v = (*st >> 11) / 9007199254740992.0;
    return sqrt(-2 * log(u)) * cos(6.283185307179586 * v);
}

enum { ROWS = 32, COLS = 128, N = 256 };

struct layer {
    float w[ROWS * COLS], x[N * COLS], ref[N * ROWS], trial[ROWS * COLS];
    int calls;
};

static double output_mse(struct layer *L, const float *w)
{
    double s = 0;
    for (int t = 0; t < N; t++)
        for (int r = 0; r < ROWS; r++) {
            double y = 0;
            for (int c = 0; c < COLS; c++)
                y += (double)L->x[t * COLS + c] * w[r * COLS + c];
            s += (y - L->ref[t * ROWS + r]) * (y - L->ref[t * ROWS + r]);
        }
    return s / (N * ROWS);
}

static double loss(void *ctx, const float *s)
{
    struct layer *L = ctx;
    memcpy(L->trial, L->w, sizeof L->trial);
    qb_awq_scaled_trial(L->trial, ROWS, COLS, 4, 32, s);
    L->calls++;
    return output_mse(L, L->trial);
}

static struct layer *make_layer(void)
{
    struct layer *L = calloc(1, sizeof *L);
    uint64_t st = 5;
    for (int i = 0; i < ROWS * COLS; i++)
        L->w[i] = (float)(0.02 * nrand(&st));
    for (int t = 0; t < N; t++)
        for (int c = 0; c < COLS; c++) /* a few salient channels, as in LLM activations */
            L->x[t * COLS + c] = (float)(nrand(&st) * (c % 16 == 3 ? 30.0 : 1.0));
    for (int t = 0; t < N; t++)
        for (int r = 0; r < ROWS; r++) {
            double y = 0;
            for (int c = 0; c < COLS; c++)
                y += (double)L->x[t * COLS + c] * L->w[r * COLS + c];
            L->ref[t * ROWS + r] = (float)y;
        }
    return L;
}

Test(awq, search_picks_the_loss_minimiser)
{
    struct layer *L = make_layer();
    float x_mean[COLS] = {0}, w_mean[COLS], best[COLS], s[COLS];
    double sum[COLS] = {0};
    qb_awq_abs_sum_add(sum, L->x, N, COLS);
    for (int c = 0; c < COLS; c++)
        x_mean[c] = (float)(sum[c] / N);
    const float *ws[1] = {L->w};
    int64_t rows[1] = {ROWS};
    qb_awq_weight_mean(ws, rows, 1, COLS, 32, w_mean);
    double ratio, best_loss;
    cr_assert_eq(qb_awq_search_scales(x_mean, w_mean, COLS, 20, loss, L, best, &ratio,
                                      &best_loss, NULL), QB_OK);
    cr_assert_eq(L->calls, 20);
    /* independent brute force over the same grid */
    double bf_loss = INFINITY, bf_ratio = -1;
    for (int i = 0; i < 20; i++) {
        qb_awq_scales_for_ratio(x_mean, w_mean, COLS, i / 20.0, s);
        double l = loss(L, s);
        if (l < bf_loss)
            bf_loss = l, bf_ratio = i / 20.0;
    }
    cr_assert_eq(ratio, bf_ratio);
    cr_assert_eq(best_loss, bf_loss);
    /* and it beats plain round-to-nearest (s = 1) clearly on salient channels */
    for (int c = 0; c < COLS; c++)
        s[c] = 1;
    double rtn = loss(L, s);
    cr_assert(best_loss < 0.9 * rtn, "AWQ %g vs RTN %g", best_loss, rtn);
    cr_assert(ratio > 0, "salient channels call for activation-aware scales");
    free(L);
}

Test(awq, clip_search_shrinks_an_unused_outlier)
{
    /* one huge weight on an input channel that is always 0: clipping it costs
     * nothing and refines the grid for the others */
    enum { R = 2, C = 32, T = 64 };
    float w[R * C], x[T * C], mv[R];
    uint64_t st = 9;
    for (int i = 0; i < R * C; i++)
        w[i] = (float)(0.02 * nrand(&st));
    w[7] = 1.0f;
    for (int t = 0; t < T; t++)
        for (int c = 0; c < C; c++)
            x[t * C + c] = c == 7 ? 0.0f : (float)nrand(&st);
    cr_assert_eq(qb_awq_clip_search(w, R, C, 4, 32, x, T, NULL, mv, NULL), QB_OK);
    cr_assert_lt(mv[0], 1.0f, "row 0 clipped (max %g)", mv[0]);
    cr_assert_geq(mv[0], 0.5f, "at most 50%% shrink");
    qb_awq_apply_clip(w, R, C, 32, mv);
    cr_assert_eq(w[7], mv[0]);
}

/* mean over tokens of (x . d)^2 for one group, d = Q(clamp(w, lo, hi)) - w (independent of
 * the Gram path: straight from the tokens, in f64) */
static double token_loss(const float *w, int G, float lo, float hi, const float *x, int cols,
                         int g0, int n)
{
    float cur[64];
    for (int j = 0; j < G; j++)
        cur[j] = fminf(fmaxf(w[j], lo), hi);
    qb_awq_pseudo_quantize(cur, 1, G, 4, G);
    double e = 0;
    for (int t = 0; t < n; t++) {
        double d = 0;
        for (int j = 0; j < G; j++)
            d += (double)x[t * cols + g0 + j] * ((double)cur[j] - w[j]);
        e += d * d;
    }
    return 2 * e / n;
}

static void gram_of(const float *x, int n, int cols, double *g)
{
    for (int a = 0; a < cols; a++)
        for (int b = 0; b < cols; b++) {
            double s = 0;
            for (int t = 0; t < n; t++)
                s += (double)x[t * cols + a] * x[t * cols + b];
            g[a * cols + b] = 2 * s / n;
        }
}

Test(awq, asym_range_search_matches_brute_force)
{
    enum { R = 4, C = 64, G = 32, T = 200, NG = C / G };
    static float w[R * C], x[T * C];
    static double gram[C * C];
    float lo[R * NG], hi[R * NG];
    uint64_t st = 11;
    for (int i = 0; i < R * C; i++)
        w[i] = (float)(0.02 * nrand(&st) + (i % 17 == 0 ? 0.05 : 0.0)); /* skewed groups */
    for (int t = 0; t < T; t++)
        for (int c = 0; c < C; c++)
            x[t * C + c] = (float)(nrand(&st) * (c % 8 == 1 ? 4.0 : 1.0) + 0.3);
    gram_of(x, T, C, gram);
    struct qb_awq_range_opts o = {.grid = 20, .steps = 10, .asym = 1};
    cr_assert_eq(qb_awq_range_search(w, R, C, 4, G, gram, &o, NULL, lo, hi, NULL), QB_OK);
    for (int r = 0; r < R; r++)
        for (int g = 0; g < NG; g++) {
            const float *v = w + r * C + g * G;
            float mn = 0, mx = 0;
            for (int j = 0; j < G; j++)
                mn = fminf(mn, v[j]), mx = fmaxf(mx, v[j]);
            double best = INFINITY;
            for (int i = 0; i < 10; i++)
                for (int k = 0; k < 10; k++) {
                    double e = token_loss(v, G, mn * (1 - i / 20.0f), mx * (1 - k / 20.0f), x,
                                          C, g * G, T);
                    best = fmin(best, e);
                }
            double got = token_loss(v, G, lo[r * NG + g], hi[r * NG + g], x, C, g * G, T);
            cr_assert(got <= best * (1 + 1e-4), "row %d group %d: %g vs brute force %g", r, g,
                      got, best);
            cr_assert(lo[r * NG + g] <= 0 && hi[r * NG + g] >= 0);
        }
}

Test(awq, asym_range_search_clips_one_side_only)
{
    /* an unused negative outlier: the low end is shrunk, the high end left alone */
    enum { R = 1, C = 32, T = 128 };
    static float w[R * C], x[T * C];
    static double gram[C * C];
    float lo, hi;
    uint64_t st = 13;
    for (int i = 0; i < R * C; i++)
        w[i] = (float)(0.02 * nrand(&st));
    w[7] = -1.0f;
    float mx = 0;
    for (int i = 0; i < C; i++)
        mx = fmaxf(mx, w[i]);
    for (int t = 0; t < T; t++)
        for (int c = 0; c < C; c++)
            x[t * C + c] = c == 7 ? 0.0f : (float)nrand(&st);
    gram_of(x, T, C, gram);
    struct qb_awq_range_opts o = {.grid = 20, .steps = 10, .asym = 1};
    cr_assert_eq(qb_awq_range_search(w, R, C, 4, C, gram, &o, NULL, &lo, &hi, NULL), QB_OK);
    cr_assert(lo > -1.0f && lo >= -0.55f - 1e-6f, "low end shrunk to the limit (%g)", lo);
    cr_assert(hi > 0.5f * mx, "high end kept near max %g (%g)", mx, hi);
    qb_awq_apply_range(w, R, C, C, &lo, &hi);
    cr_assert_eq(w[7], lo);
}

Test(awq, sym_range_search_on_the_gram_equals_the_token_clip_search)
{
    /* the Gram form d^T (2 X^T X / n) d is the token loss 2 mean_t (x_t . d)^2, so with the
     * symmetric grid the range search picks AutoAWQ's clip (the token search) */
    enum { R = 6, C = 64, G = 32, T = 300, NG = C / G };
    static float w[R * C], x[T * C];
    static double gram[C * C];
    float lo[R * NG], hi[R * NG], mv[R * NG];
    uint64_t st = 17;
    for (int i = 0; i < R * C; i++)
        w[i] = (float)(0.02 * nrand(&st) * (i % 29 == 0 ? 6.0 : 1.0));
    for (int t = 0; t < T; t++)
        for (int c = 0; c < C; c++)
            x[t * C + c] = (float)(nrand(&st) * (c % 5 == 2 ? 3.0 : 1.0));
    gram_of(x, T, C, gram);
    struct qb_awq_range_opts o = {.grid = 20, .steps = 10, .asym = 0};
    cr_assert_eq(qb_awq_range_search(w, R, C, 4, G, gram, &o, NULL, lo, hi, NULL), QB_OK);
    cr_assert_eq(qb_awq_clip_search(w, R, C, 4, G, x, T, NULL, mv, NULL), QB_OK);
    for (int i = 0; i < R * NG; i++) {
        cr_assert_eq(hi[i], mv[i], "group %d: %g vs %g", i, hi[i], mv[i]);
        cr_assert_eq(lo[i], -mv[i]);
    }
}
