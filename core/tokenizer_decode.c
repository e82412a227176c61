/*
 * tokenizer_decode.c - ids -> text, as Tokenizer::decode(ids, skip_special_tokens=false).
 *
 * Ids become their token strings (added tokens included) and the decoder chain runs
 * over the whole list: each decoder maps a list of strings to a new list (ByteLevel
 * and Fuse collapse it to one), and the result is joined with "" (or with " " when
 * the tokenizer has no decoder, as `tokenizers` does). Unlike `tokenizers`, an id
 * outside the vocabulary is an error instead of being skipped silently.
 */
#include <string.h>

#include "tokenizer_impl.h"

/* The decoder chain works on a list of strings, stored as one buffer + lengths. */
struct strlist {
    struct tok_buf buf;
    size_t *ends; /* [n] end offset of string i in buf */
    size_t n, cap;
};

static enum qb_status strlist_add(struct strlist *l, const char *s, size_t n)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 64;
        size_t *e = qb_realloc_array(l->ends, cap, sizeof(*e));
        if (!e)
            return QB_ERR_NOMEM;
        l->ends = e;
        l->cap = cap;
    }
    if (tok_buf_put(&l->buf, s, n))
        return QB_ERR_NOMEM;
    l->ends[l->n++] = l->buf.len;
    return QB_OK;
}

static const char *strlist_get(const struct strlist *l, size_t i, size_t *n)
{
    size_t start = i ? l->ends[i - 1] : 0;
    *n = l->ends[i] - start;
    return l->buf.p ? l->buf.p + start : "";
}

static void strlist_release(struct strlist *l)
{
    free(l->buf.p);
    free(l->ends);
    memset(l, 0, sizeof(*l));
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* "<0xNN>" as ByteFallback reads it (u8::from_str_radix, which also takes "+N"). */
static int byte_token_value(const char *s, size_t n)
{
    if (n != 6 || memcmp(s, "<0x", 3) != 0 || s[5] != '>')
        return -1;
    if (s[3] == '+')
        return hexval(s[4]);
    int hi = hexval(s[3]), lo = hexval(s[4]);
    return hi < 0 || lo < 0 ? -1 : hi * 16 + lo;
}

static enum qb_status dec_byte_level(const struct strlist *in, struct strlist *out)
{
    struct tok_buf bytes = {0}, text = {0};
    enum qb_status st = QB_OK;
    for (size_t i = 0; i < in->n && !st; i++) {
        size_t n;
        const char *s = strlist_get(in, i, &n);
        size_t mark = bytes.len;
        int all = 1;
        for (size_t j = 0; j < n && all && !st;) {
            size_t l = tok_utf8_valid_len((const unsigned char *)s + j, n - j);
            int b = l ? tok_cp_to_byte(tok_utf8_decode((const unsigned char *)s + j, l)) : -1;
            if (b < 0) {
                all = 0;
                break;
            }
            unsigned char c = (unsigned char)b;
            st = tok_buf_put(&bytes, &c, 1);
            j += l;
        }
        if (!all) {
            bytes.len = mark;
            st = tok_buf_put(&bytes, s, n);
        }
    }
    if (!st)
        st = tok_utf8_lossy(&text, bytes.p ? bytes.p : "", bytes.len);
    if (!st)
        st = strlist_add(out, text.p ? text.p : "", text.len);
    free(bytes.p);
    free(text.p);
    return st;
}

static enum qb_status dec_byte_fallback(const struct strlist *in, struct strlist *out)
{
    struct tok_buf pend = {0};
    enum qb_status st = QB_OK;
    for (size_t i = 0; i <= in->n && !st; i++) {
        size_t n = 0;
        const char *s = i < in->n ? strlist_get(in, i, &n) : NULL;
        int b = s ? byte_token_value(s, n) : -1;
        if (b >= 0) {
            unsigned char c = (unsigned char)b;
            st = tok_buf_put(&pend, &c, 1);
            continue;
        }
        if (pend.len) {
            int valid = 1;
            for (size_t j = 0; j < pend.len && valid;) {
                size_t l = tok_utf8_valid_len((const unsigned char *)pend.p + j, pend.len - j);
                valid = l > 0;
                j += l;
            }
            if (valid)
                st = strlist_add(out, pend.p, pend.len);
            for (size_t j = 0; !valid && j < pend.len && !st; j++)
                st = strlist_add(out, "\xEF\xBF\xBD", 3);
            pend.len = 0;
        }
        if (s && !st)
            st = strlist_add(out, s, n);
    }
    free(pend.p);
    return st;
}

static enum qb_status dec_strip(const struct tok_decoder *d, const struct strlist *in,
                                struct strlist *out)
{
    enum qb_status st = QB_OK;
    for (size_t i = 0; i < in->n && !st; i++) {
        size_t n;
        const char *s = strlist_get(in, i, &n);
        size_t a = 0, b = n;
        for (int k = 0; k < d->strip_start && a < b; k++) {
            size_t l = tok_utf8_valid_len((const unsigned char *)s + a, b - a);
            if (!l || tok_utf8_decode((const unsigned char *)s + a, l) != d->strip_cp)
                break;
            a += l;
        }
        for (int k = 0; k < d->strip_stop && b > a; k++) {
            size_t l;
            if (tok_utf8_before(s, b, &l) != d->strip_cp || b - l < a)
                break;
            b -= l;
        }
        st = strlist_add(out, s + a, b - a);
    }
    return st;
}

static enum qb_status dec_replace_each(const char *from, size_t from_len, const char *to,
                                       size_t to_len, int drop_all, const struct strlist *in,
                                       struct strlist *out)
{
    struct tok_buf t = {0};
    enum qb_status st = QB_OK;
    for (size_t i = 0; i < in->n && !st; i++) {
        size_t n;
        const char *s = strlist_get(in, i, &n);
        t.len = 0;
        for (size_t j = 0; j < n && !st;) {
            if (from_len && n - j >= from_len && memcmp(s + j, from, from_len) == 0) {
                if (!(drop_all && i == 0))
                    st = tok_buf_put(&t, to, to_len);
                j += from_len;
            } else {
                st = tok_buf_put(&t, s + j, 1);
                j++;
            }
        }
        if (!st)
            st = strlist_add(out, t.p ? t.p : "", t.len);
    }
    free(t.p);
    return st;
}

static enum qb_status dec_replace(const struct tok_decoder *d, struct tok_matcher *m,
                                  const struct strlist *in, struct strlist *out, struct qb_err *err)
{
    struct tok_buf t = {0};
    enum qb_status st = QB_OK;
    for (size_t i = 0; i < in->n && !st; i++) {
        size_t n;
        const char *s = strlist_get(in, i, &n);
        t.len = 0;
        st = tok_replace_all(&d->pat, m, s, n, d->to, d->to_len, &t, err);
        if (!st && strlist_add(out, t.p ? t.p : "", t.len))
            st = QB_ERR_NOMEM;
    }
    free(t.p);
    return st;
}

static enum qb_status run_decoder(const struct tok_decoder *d, struct tok_matcher *m,
                                  const struct strlist *in, struct strlist *out, struct qb_err *err)
{
    switch (d->kind) {
    case TOK_DEC_BYTE_LEVEL:
        return dec_byte_level(in, out);
    case TOK_DEC_BYTE_FALLBACK:
        return dec_byte_fallback(in, out);
    case TOK_DEC_FUSE: {
        size_t n = 0;
        const char *s = in->n ? strlist_get(in, 0, &n) : "";
        return strlist_add(out, s, in->n ? in->buf.len : 0);
    }
    case TOK_DEC_STRIP:
        return dec_strip(d, in, out);
    case TOK_DEC_REPLACE:
        return dec_replace(d, m, in, out, err);
    case TOK_DEC_METASPACE:
        return dec_replace_each(d->replacement, d->replacement_len, " ", 1, d->prepend_first, in,
                                out);
    }
    return QB_ERR_INTERNAL;
}

enum qb_status qb_tok_decode(const struct qb_tokenizer *tok, const int32_t *ids, size_t n_ids,
                             char **text, size_t *len, struct qb_err *err)
{
    struct strlist cur = {0}, next = {0};
    struct tok_matcher m;
    *text = NULL;
    *len = 0;
    enum qb_status st = tok_matcher_init(&m, err);
    if (st)
        return st;
    for (size_t i = 0; i < n_ids; i++) {
        if (ids[i] < 0 || ids[i] >= tok->n_vocab) {
            st = qb_err_set(err, QB_ERR_RANGE,
                            "token id %d at position %zu is outside the vocabulary (0..%d)", ids[i],
                            i, tok->n_vocab - 1);
            goto out;
        }
        if (strlist_add(&cur, tok->pieces[ids[i]], tok->piece_lens[ids[i]]))
            goto oom;
    }
    for (size_t k = 0; tok->has_decoder && k < tok->n_decoders; k++) {
        st = run_decoder(&tok->decoders[k], &m, &cur, &next, err);
        if (st == QB_ERR_NOMEM)
            goto oom;
        if (st)
            goto out;
        struct strlist t = cur;
        cur = next;
        next = t;
        next.buf.len = 0;
        next.n = 0;
    }
    /* the strings are joined ("" between them with a decoder, " " without one) */
    size_t total = 0;
    for (size_t i = 0; i < cur.n; i++) {
        size_t n;
        strlist_get(&cur, i, &n);
        total += n + (!tok->has_decoder && i > 0);
    }
    char *res = malloc(total + 1);
    if (!res)
        goto oom;
    size_t at = 0;
    for (size_t i = 0; i < cur.n; i++) {
        size_t n;
        const char *s = strlist_get(&cur, i, &n);
        if (!tok->has_decoder && i > 0)
            res[at++] = ' ';
        memcpy(res + at, s, n);
        at += n;
    }
    res[at] = '\0';
    *text = res;
    *len = at;
    goto out;
oom:
    st = qb_err_set(err, QB_ERR_NOMEM, "out of memory while decoding");
out:
    tok_matcher_release(&m);
    strlist_release(&cur);
    strlist_release(&next);
    return st;
}
