/*
 * tokenizer_nfc.c - Unicode NFC normalization for the tokenizer's NFC normalizer.
 *
 * Qwen2/Qwen2.5/Qwen3 tokenizer.json files normalize with {"type": "NFC"}. The usual
 * three steps (UAX #15): full canonical decomposition (tables in
 * tokenizer_nfc_tables.c, Hangul algorithmically), canonical ordering of combining
 * marks (stable by combining class), then canonical composition with the blocking
 * rule, written after the unicode-normalization crate's Recompositions that
 * `tokenizers` uses.
 *
 * Fast path: text without a byte >= 0xCC has no code point >= U+0300, and every
 * such text is already in NFC; it is copied unchanged.
 */
#include <string.h>

#include "tokenizer_impl.h"

#define S_BASE 0xAC00u
#define L_BASE 0x1100u
#define V_BASE 0x1161u
#define T_BASE 0x11A7u
#define L_COUNT 19u
#define V_COUNT 21u
#define T_COUNT 28u
#define N_COUNT (V_COUNT * T_COUNT)
#define S_COUNT (L_COUNT * N_COUNT)

static unsigned ccc_of(uint32_t cp)
{
    size_t lo = 0, hi = tok_ccc_count;
    if (cp < 0x300)
        return 0;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < tok_ccc_ranges[mid].first)
            hi = mid;
        else if (cp > tok_ccc_ranges[mid].last)
            lo = mid + 1;
        else
            return tok_ccc_ranges[mid].ccc;
    }
    return 0;
}

static const struct tok_decomp *decomp_of(uint32_t cp)
{
    size_t lo = 0, hi = tok_decomp_count;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (cp < tok_decomps[mid].cp)
            hi = mid;
        else if (cp > tok_decomps[mid].cp)
            lo = mid + 1;
        else
            return &tok_decomps[mid];
    }
    return NULL;
}

/* Primary composite of (a, b), or 0 when there is none. */
static uint32_t compose(uint32_t a, uint32_t b)
{
    if (a >= L_BASE && a < L_BASE + L_COUNT && b >= V_BASE && b < V_BASE + V_COUNT)
        return S_BASE + ((a - L_BASE) * V_COUNT + (b - V_BASE)) * T_COUNT;
    if (a >= S_BASE && a < S_BASE + S_COUNT && (a - S_BASE) % T_COUNT == 0 && b > T_BASE &&
        b < T_BASE + T_COUNT)
        return a + (b - T_BASE);
    size_t lo = 0, hi = tok_comp_count;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        const struct tok_comp *c = &tok_comps[mid];
        if (a < c->first || (a == c->first && b < c->second))
            hi = mid;
        else if (a > c->first || b > c->second)
            lo = mid + 1;
        else
            return c->composite;
    }
    return 0;
}

struct cps {
    uint32_t *v;
    size_t n, cap;
};

static int cps_push(struct cps *c, uint32_t cp)
{
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 64;
        uint32_t *v = qb_realloc_array(c->v, cap, sizeof(*v));
        if (!v)
            return -1;
        c->v = v;
        c->cap = cap;
    }
    c->v[c->n++] = cp;
    return 0;
}

static int decompose(const char *s, size_t n, struct cps *out)
{
    for (size_t i = 0; i < n;) {
        size_t l = tok_utf8_valid_len((const unsigned char *)s + i, n - i);
        uint32_t cp = l ? tok_utf8_decode((const unsigned char *)s + i, l) : 0xFFFD;
        i += l ? l : 1;
        if (cp >= S_BASE && cp < S_BASE + S_COUNT) {
            uint32_t k = cp - S_BASE, t = k % T_COUNT;
            if (cps_push(out, L_BASE + k / N_COUNT) ||
                cps_push(out, V_BASE + (k % N_COUNT) / T_COUNT) || (t && cps_push(out, T_BASE + t)))
                return -1;
            continue;
        }
        const struct tok_decomp *d = cp >= 0xC0 ? decomp_of(cp) : NULL;
        if (!d) {
            if (cps_push(out, cp))
                return -1;
            continue;
        }
        for (uint32_t k = 0; k < d->len; k++) {
            if (cps_push(out, tok_decomp_pool[d->offset + k]))
                return -1;
        }
    }
    return 0;
}

/* Stable insertion sort of each run of non-starters by combining class. */
static void canonical_order(struct cps *c)
{
    for (size_t i = 1; i < c->n; i++) {
        uint32_t cp = c->v[i];
        unsigned cc = ccc_of(cp);
        if (cc == 0)
            continue;
        size_t j = i;
        while (j > 0 && ccc_of(c->v[j - 1]) > cc) {
            c->v[j] = c->v[j - 1];
            j--;
        }
        c->v[j] = cp;
    }
}

static int put_cp(struct tok_buf *out, uint32_t cp)
{
    char u[4];
    return tok_buf_put(out, u, tok_utf8_encode(cp, u)) ? -1 : 0;
}

/* Canonical composition, streaming like the unicode-normalization crate. */
static int recompose(const struct cps *c, struct tok_buf *out)
{
    struct cps pending = {0};
    uint32_t composee = 0;
    int have_composee = 0, rc = 0;
    int last_ccc = -1; /* -1: nothing pending since the composee */
    for (size_t i = 0; i < c->n && !rc; i++) {
        uint32_t ch = c->v[i];
        int cc = (int)ccc_of(ch);
        if (!have_composee) {
            if (cc != 0) {
                rc = put_cp(out, ch);
                continue;
            }
            composee = ch;
            have_composee = 1;
            continue;
        }
        if (last_ccc >= 0 && last_ccc >= cc) { /* blocked */
            if (cc == 0) {
                rc = put_cp(out, composee);
                for (size_t k = 0; k < pending.n && !rc; k++)
                    rc = put_cp(out, pending.v[k]);
                pending.n = 0;
                last_ccc = -1;
                composee = ch;
                continue;
            }
            last_ccc = cc;
            rc = cps_push(&pending, ch);
            continue;
        }
        uint32_t k = compose(composee, ch);
        if (k) {
            composee = k;
            continue;
        }
        if (last_ccc < 0 && cc == 0) {
            rc = put_cp(out, composee);
            composee = ch;
            continue;
        }
        rc = cps_push(&pending, ch);
        last_ccc = cc;
    }
    if (!rc && have_composee)
        rc = put_cp(out, composee);
    for (size_t k = 0; k < pending.n && !rc; k++)
        rc = put_cp(out, pending.v[k]);
    free(pending.v);
    return rc;
}

enum qb_status tok_nfc(const char *s, size_t n, struct tok_buf *out)
{
    size_t i = 0;
    while (i < n && (unsigned char)s[i] < 0xCC)
        i++;
    if (i == n)
        return tok_buf_put(out, s, n);
    struct cps c = {0};
    int rc = decompose(s, n, &c);
    if (!rc) {
        canonical_order(&c);
        rc = recompose(&c, out);
    }
    free(c.v);
    return rc ? QB_ERR_NOMEM : QB_OK;
}
