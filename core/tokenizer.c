/*
 * tokenizer.c - the encode pipeline, decode, accessors and freeing.
 *
 * encode follows `tokenizers`' Tokenizer::encode step by step (see
 * tokenizer_impl.h for the stages). Pieces live in a `struct pieces`: one byte
 * buffer plus (offset, length, added id, starts-at-origin) records; each stage
 * reads one and writes the next, so no stage edits text in place. Added-token
 * pieces carry their id and no text. Empty pieces are dropped after every stage,
 * as PreTokenizedString::split does.
 *
 * decode maps ids to their token strings and runs the decoder chain over the whole
 * list (added tokens included), like Tokenizer::decode(ids, skip_special_tokens =
 * false); unlike `tokenizers`, an id outside the vocabulary is an error, not skipped.
 */
#include <string.h>

#include "tokenizer_impl.h"

struct piece {
    size_t off, len;
    int32_t added; /* -1: text */
    int first;     /* starts at offset 0 of the original input */
};

struct pieces {
    struct tok_buf buf;
    struct piece *v;
    size_t n, cap;
};

struct encode_state {
    const struct qb_tokenizer *tok;
    struct tok_matcher m;
    struct tok_segs scratch, segs;
    struct tok_buf tmp;
    struct tok_merge_scratch merge;
    struct qb_err *err;
};

static void pieces_release(struct pieces *p)
{
    free(p->buf.p);
    free(p->v);
    memset(p, 0, sizeof(*p));
}

static enum qb_status nomem(struct qb_err *err)
{
    return qb_err_set(err, QB_ERR_NOMEM, "out of memory while tokenizing");
}

/* Appends a piece; text pieces copy len bytes from src (empty ones are dropped). */
static enum qb_status piece_add(struct pieces *p, const char *src, size_t len, int32_t added,
                                int first)
{
    if (added < 0 && len == 0)
        return QB_OK;
    if (p->n == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 16;
        struct piece *v = qb_realloc_array(p->v, cap, sizeof(*v));
        if (!v)
            return QB_ERR_NOMEM;
        p->v = v;
        p->cap = cap;
    }
    size_t off = p->buf.len;
    if (added < 0 && tok_buf_put(&p->buf, src, len))
        return QB_ERR_NOMEM;
    p->v[p->n++] = (struct piece){off, added < 0 ? len : 0, added, first};
    return QB_OK;
}

/* Like piece_add, but the text is two parts (a prefix, then the body). */
static enum qb_status piece_add2(struct pieces *p, const char *a, size_t alen, const char *b,
                                 size_t blen, int first)
{
    if (alen + blen == 0)
        return QB_OK;
    enum qb_status st = piece_add(p, a, alen, -1, first);
    if (st)
        return st;
    if (alen == 0)
        return piece_add(p, b, blen, -1, first);
    if (tok_buf_put(&p->buf, b, blen))
        return QB_ERR_NOMEM;
    p->v[p->n - 1].len += blen;
    return QB_OK;
}

/* ---- added tokens ------------------------------------------------------------ */

static uint32_t char_before(const char *s, size_t end, size_t *len)
{
    size_t i = end;
    while (i > 0 && ((unsigned char)s[i - 1] & 0xC0) == 0x80 && end - i < 3)
        i--;
    if (i > 0)
        i--;
    *len = end - i;
    size_t l = tok_utf8_valid_len((const unsigned char *)s + i, end - i);
    return l == end - i ? tok_utf8_decode((const unsigned char *)s + i, l) : 0xFFFD;
}

/* Is the one character s[0..n) a Rust regex \w character? */
static int word_char_at(struct encode_state *es, const char *s, size_t n)
{
    const struct qb_tokenizer *tok = es->tok;
    if (!tok->word_re.re || n == 0)
        return 0;
    int rc = pcre2_match(tok->word_re.re, (PCRE2_SPTR)s, n, 0,
                         PCRE2_ANCHORED | PCRE2_NO_UTF_CHECK, es->m.md, es->m.mc);
    return rc >= 0;
}

static size_t trailing_space_start(const char *s, size_t end)
{
    while (end > 0) {
        size_t l;
        uint32_t cp = char_before(s, end, &l);
        if (!tok_is_whitespace(cp))
            break;
        end -= l;
    }
    return end;
}

static size_t leading_space_len(const char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        size_t l = tok_utf8_valid_len((const unsigned char *)s + i, n - i);
        if (!l || !tok_is_whitespace(tok_utf8_decode((const unsigned char *)s + i, l)))
            break;
        i += l;
    }
    return i;
}

/* Longest added token (of the wanted `normalized` kind) starting at s[i]; -1 if none. */
static ptrdiff_t added_at(const struct qb_tokenizer *tok, const char *s, size_t n, size_t i,
                          int normalized)
{
    unsigned char b = (unsigned char)s[i];
    ptrdiff_t best = -1;
    size_t best_len = 0;
    for (uint32_t k = tok->added_first[b]; k < tok->added_first[b + 1]; k++) {
        const struct tok_added *a = &tok->added[tok->added_order[k]];
        if (a->normalized != normalized || a->match_len > n - i || a->match_len <= best_len)
            continue;
        if (memcmp(s + i, a->match, a->match_len) == 0) {
            best = (ptrdiff_t)tok->added_order[k];
            best_len = a->match_len;
        }
    }
    return best;
}

/* AddedVocabulary::find_matches + split_with_indices on one text piece. */
static enum qb_status split_added_piece(struct encode_state *es, const char *s, size_t n,
                                        int first, int normalized, struct pieces *out)
{
    const struct qb_tokenizer *tok = es->tok;
    size_t start_offset = 0, i = 0;
    while (i < n) {
        ptrdiff_t k = added_at(tok, s, n, i, normalized);
        if (k < 0) {
            i++;
            continue;
        }
        const struct tok_added *a = &tok->added[k];
        size_t start = i, stop = i + a->match_len;
        i = stop; /* the matcher resumes after the match, whatever the flags do */
        if (a->single_word) {
            size_t cl = 0;
            int start_space = start == 0 || !(char_before(s, start, &cl), word_char_at(es, s + start - cl, cl));
            size_t nl = stop < n ? tok_utf8_valid_len((const unsigned char *)s + stop, n - stop) : 0;
            int stop_space = stop == n || !word_char_at(es, s + stop, nl ? nl : 1);
            if (!start_space || !stop_space)
                continue;
        }
        if (a->lstrip)
            start = QB_MAX(trailing_space_start(s, start), start_offset);
        if (a->rstrip)
            stop += leading_space_len(s + stop, n - stop);
        if (start_offset < start &&
            piece_add(out, s + start_offset, start - start_offset, -1, first && !start_offset))
            return nomem(es->err);
        if (piece_add(out, NULL, 0, a->id, 0))
            return nomem(es->err);
        start_offset = stop;
    }
    if (start_offset < n &&
        piece_add(out, s + start_offset, n - start_offset, -1, first && !start_offset))
        return nomem(es->err);
    return QB_OK;
}

static enum qb_status split_added(struct encode_state *es, struct pieces *in, int normalized,
                                  struct pieces *out)
{
    for (size_t k = 0; k < in->n; k++) {
        const struct piece *p = &in->v[k];
        enum qb_status st;
        if (p->added >= 0 || !es->tok->n_added)
            st = piece_add(out, in->buf.p + p->off, p->len, p->added, p->first)
                     ? nomem(es->err)
                     : QB_OK;
        else
            st = split_added_piece(es, in->buf.p + p->off, p->len, p->first, normalized, out);
        if (st)
            return st;
    }
    return QB_OK;
}

/* ---- normalizers --------------------------------------------------------------- */

static enum qb_status normalize_text(struct encode_state *es, const char *s, size_t n,
                                     struct tok_buf *out)
{
    const struct qb_tokenizer *tok = es->tok;
    struct tok_buf cur = {0}, next = {0};
    enum qb_status st = tok_buf_put(&cur, s, n) ? nomem(es->err) : QB_OK;
    for (size_t k = 0; k < tok->n_norms && !st; k++) {
        const struct tok_normalizer *z = &tok->norms[k];
        next.len = 0;
        if (z->kind == TOK_NORM_PREPEND) {
            if (cur.len && (tok_buf_put(&next, z->text, z->text_len) ||
                            tok_buf_put(&next, cur.p, cur.len)))
                st = nomem(es->err);
            else if (!cur.len)
                continue;
        } else if (z->kind == TOK_NORM_NFC) {
            if (tok_nfc(cur.p ? cur.p : "", cur.len, &next))
                st = nomem(es->err);
        } else {
            st = tok_replace_all(&z->pat, &es->m, cur.p ? cur.p : "", cur.len, z->text,
                                 z->text_len, &next, es->err);
        }
        struct tok_buf t = cur;
        cur = next;
        next = t;
    }
    if (!st && tok_buf_put(out, cur.p, cur.len))
        st = nomem(es->err);
    free(cur.p);
    free(next.p);
    return st;
}

static enum qb_status normalize_pieces(struct encode_state *es, struct pieces *in,
                                       struct pieces *out)
{
    for (size_t k = 0; k < in->n; k++) {
        const struct piece *p = &in->v[k];
        enum qb_status st;
        if (p->added >= 0 || !es->tok->n_norms) {
            if (piece_add(out, in->buf.p + p->off, p->len, p->added, p->first))
                return nomem(es->err);
            continue;
        }
        es->tmp.len = 0;
        st = normalize_text(es, in->buf.p + p->off, p->len, &es->tmp);
        if (st)
            return st;
        if (piece_add(out, es->tmp.p, es->tmp.len, -1, p->first))
            return nomem(es->err);
    }
    return QB_OK;
}

/* ---- pre-tokenizers ------------------------------------------------------------ */

static enum qb_status emit_split(struct encode_state *es, const struct tok_pattern *pat,
                                 enum tok_behavior behavior, int invert, const char *s, size_t n,
                                 int first, struct pieces *out)
{
    enum qb_status st = tok_split(pat, &es->m, s, n, behavior, invert, &es->scratch, &es->segs,
                                  es->err);
    for (size_t j = 0; j < es->segs.n && !st; j++) {
        const struct tok_seg *g = &es->segs.v[j];
        if (piece_add(out, s + g->off, g->len, -1, first && g->off == 0))
            st = nomem(es->err);
    }
    return st;
}

static enum qb_status byte_level_map(struct encode_state *es, const char *s, size_t n, int first,
                                     struct pieces *out)
{
    const struct qb_tokenizer *tok = es->tok;
    es->tmp.len = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char b = (unsigned char)s[i];
        if (tok_buf_put(&es->tmp, tok->bl_enc[b], tok->bl_enc_len[b]))
            return nomem(es->err);
    }
    return piece_add(out, es->tmp.p, es->tmp.len, -1, first) ? nomem(es->err) : QB_OK;
}

static enum qb_status pretok_byte_level(struct encode_state *es, const struct tok_pretok *pt,
                                        const char *s, size_t n, int first, struct pieces *out)
{
    struct pieces tmp = {0};
    enum qb_status st = QB_OK;
    int prefix = pt->add_prefix_space && (n == 0 || s[0] != ' ');
    if (!pt->use_regex && !prefix)
        return byte_level_map(es, s, n, first, out);
    if (piece_add2(&tmp, " ", prefix ? 1 : 0, s, n, first))
        return nomem(es->err);
    if (tmp.n == 0)
        goto out;
    struct pieces split = {0};
    const char *text = tmp.buf.p;
    size_t len = tmp.v[0].len;
    if (pt->use_regex)
        st = emit_split(es, &pt->pat, TOK_SPLIT_ISOLATED, 0, text, len, first, &split);
    else if (piece_add(&split, text, len, -1, first))
        st = nomem(es->err);
    for (size_t j = 0; j < split.n && !st; j++)
        st = byte_level_map(es, split.buf.p + split.v[j].off, split.v[j].len, split.v[j].first,
                            out);
    pieces_release(&split);
out:
    pieces_release(&tmp);
    return st;
}

static enum qb_status pretok_metaspace(struct encode_state *es, const struct tok_pretok *pt,
                                       const char *s, size_t n, int first, struct pieces *out)
{
    struct tok_buf t = {0};
    enum qb_status st = QB_OK;
    int starts = n >= pt->replacement_len && memcmp(s, pt->replacement, pt->replacement_len) == 0;
    int prepend = (pt->prepend == TOK_PREPEND_ALWAYS ||
                   (pt->prepend == TOK_PREPEND_FIRST && first)) &&
                  !(starts || (n > 0 && s[0] == ' '));
    if (prepend && tok_buf_put(&t, pt->replacement, pt->replacement_len))
        st = nomem(es->err);
    for (size_t i = 0; i < n && !st; i++) {
        if (s[i] == ' ' ? tok_buf_put(&t, pt->replacement, pt->replacement_len)
                        : tok_buf_put(&t, s + i, 1))
            st = nomem(es->err);
    }
    if (!st && pt->split)
        st = emit_split(es, &pt->pat, TOK_SPLIT_MERGED_WITH_NEXT, 0, t.p ? t.p : "", t.len,
                        first, out);
    else if (!st && piece_add(out, t.p, t.len, -1, first))
        st = nomem(es->err);
    free(t.p);
    return st;
}

static enum qb_status pretokenize(struct encode_state *es, const struct tok_pretok *pt,
                                  struct pieces *in, struct pieces *out)
{
    enum qb_status st = QB_OK;
    for (size_t k = 0; k < in->n && !st; k++) {
        const struct piece *p = &in->v[k];
        const char *s = in->buf.p + p->off;
        if (p->added >= 0) {
            st = piece_add(out, NULL, 0, p->added, 0) ? nomem(es->err) : QB_OK;
            continue;
        }
        switch (pt->kind) {
        case TOK_PRE_SPLIT:
            st = emit_split(es, &pt->pat, pt->behavior, pt->invert, s, p->len, p->first, out);
            break;
        case TOK_PRE_BYTE_LEVEL:
            st = pretok_byte_level(es, pt, s, p->len, p->first, out);
            break;
        case TOK_PRE_METASPACE:
            st = pretok_metaspace(es, pt, s, p->len, p->first, out);
            break;
        }
    }
    return st;
}

/* ---- encode -------------------------------------------------------------------- */

static void swap_pieces(struct pieces *a, struct pieces *b)
{
    struct pieces t = *a;
    *a = *b;
    *b = t;
    b->buf.len = 0;
    b->n = 0;
}

static enum qb_status run_pipeline(struct encode_state *es, const char *text, size_t len,
                                   struct tok_ids *ids)
{
    const struct qb_tokenizer *tok = es->tok;
    struct pieces cur = {0}, next = {0};
    enum qb_status st = QB_OK;
    es->tmp.len = 0;
    if (tok_utf8_lossy(&es->tmp, text, len) || piece_add(&cur, es->tmp.p, es->tmp.len, -1, 1)) {
        st = nomem(es->err);
        goto out;
    }
    st = split_added(es, &cur, 0, &next);
    swap_pieces(&cur, &next);
    if (!st)
        st = normalize_pieces(es, &cur, &next);
    swap_pieces(&cur, &next);
    if (!st)
        st = split_added(es, &cur, 1, &next);
    swap_pieces(&cur, &next);
    for (size_t k = 0; k < tok->n_pretoks && !st; k++) {
        st = pretokenize(es, &tok->pretoks[k], &cur, &next);
        swap_pieces(&cur, &next);
    }
    for (size_t k = 0; k < cur.n && !st; k++) {
        const struct piece *p = &cur.v[k];
        if (p->added >= 0)
            st = tok_ids_push(ids, p->added) ? nomem(es->err) : QB_OK;
        else
            st = tok_model_tokenize(tok, cur.buf.p + p->off, p->len, &es->merge, ids, es->err);
    }
out:
    pieces_release(&cur);
    pieces_release(&next);
    return st;
}

enum qb_status qb_tok_encode(const struct qb_tokenizer *tok, const char *text, size_t len,
                             int add_bos, int32_t **ids_out, size_t *n_out, struct qb_err *err)
{
    struct encode_state es = {.tok = tok, .err = err};
    struct tok_ids ids = {0};
    *ids_out = NULL;
    *n_out = 0;
    enum qb_status st = tok_matcher_init(&es.m, err);
    if (st)
        return st;
    for (size_t k = 0; add_bos && k < tok->n_prefix && !st; k++)
        st = tok_ids_push(&ids, tok->prefix_ids[k]) ? nomem(err) : QB_OK;
    if (!st)
        st = run_pipeline(&es, text ? text : "", text ? len : 0, &ids);
    for (size_t k = 0; add_bos && k < tok->n_suffix && !st; k++)
        st = tok_ids_push(&ids, tok->suffix_ids[k]) ? nomem(err) : QB_OK;
    /* callers always get an array they can free, even for no ids */
    if (!st && !ids.v && tok_ids_push(&ids, 0) == QB_OK)
        ids.n = 0;
    else if (!st && !ids.v)
        st = nomem(err);
    tok_matcher_release(&es.m);
    free(es.scratch.v);
    free(es.segs.v);
    free(es.tmp.p);
    tok_merge_scratch_release(&es.merge);
    if (st) {
        free(ids.v);
        return st;
    }
    *ids_out = ids.v;
    *n_out = ids.n;
    return QB_OK;
}

/* ---- decode -------------------------------------------------------------------- */

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
            if (char_before(s, b, &l) != d->strip_cp || b - l < a)
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
                                  const struct strlist *in, struct strlist *out,
                                  struct qb_err *err)
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
                                  const struct strlist *in, struct strlist *out,
                                  struct qb_err *err)
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

/* ---- loading support ------------------------------------------------------------ */

#define TOK_RUST_WORD "[\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\p{Join_Control}]"

enum qb_status tok_finish_added(struct qb_tokenizer *tok, const char *origin,
                                struct qb_err *err)
{
    struct encode_state es = {.tok = tok, .err = err};
    enum qb_status st = QB_OK;
    int single_word = 0;
    if (!tok->n_added)
        return QB_OK;
    tok->added_order = qb_malloc_array(tok->n_added, sizeof(*tok->added_order));
    if (!tok->added_order)
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory loading '%s'", origin);
    if ((st = tok_matcher_init(&es.m, err)))
        return st;
    for (size_t k = 0; k < tok->n_added && !st; k++) {
        struct tok_added *a = &tok->added[k];
        struct tok_buf b = {0};
        single_word |= a->single_word;
        if (a->normalized)
            st = normalize_text(&es, a->content, a->len, &b);
        else if (tok_buf_put(&b, a->content, a->len))
            st = qb_err_set(err, QB_ERR_NOMEM, "out of memory loading '%s'", origin);
        a->match = b.p;
        a->match_len = b.len;
    }
    tok_matcher_release(&es.m);
    free(es.tmp.p);
    if (st)
        return st;
    /* counting sort by first byte (tokens whose match is empty are never matched) */
    memset(tok->added_first, 0, sizeof(tok->added_first));
    for (size_t k = 0; k < tok->n_added; k++) {
        if (tok->added[k].match_len)
            tok->added_first[(unsigned char)tok->added[k].match[0] + 1]++;
    }
    for (int b = 0; b < 256; b++)
        tok->added_first[b + 1] += tok->added_first[b];
    uint32_t fill[256];
    memcpy(fill, tok->added_first, sizeof(fill));
    for (size_t k = 0; k < tok->n_added; k++) {
        if (tok->added[k].match_len)
            tok->added_order[fill[(unsigned char)tok->added[k].match[0]]++] = (uint32_t)k;
    }
    if (single_word)
        st = tok_pattern_compile(&tok->word_re, TOK_RUST_WORD, strlen(TOK_RUST_WORD), 0, origin,
                                 "single_word", err);
    return st;
}

/* ---- accessors and free -------------------------------------------------------- */

int32_t qb_tok_bos(const struct qb_tokenizer *tok)
{
    return tok->bos_id;
}

int32_t qb_tok_eos(const struct qb_tokenizer *tok)
{
    return tok->eos_id;
}

int qb_tok_adds_bos(const struct qb_tokenizer *tok)
{
    return tok->n_prefix > 0;
}

int32_t qb_tok_vocab_size(const struct qb_tokenizer *tok)
{
    return tok->n_vocab;
}

const char *qb_tok_piece(const struct qb_tokenizer *tok, int32_t id)
{
    if (id < 0 || id >= tok->n_vocab)
        return NULL;
    return tok->pieces[id];
}

void tok_free_internals(struct qb_tokenizer *tok)
{
    for (int32_t i = 0; tok->pieces && i < tok->n_vocab; i++)
        free(tok->pieces[i]);
    free(tok->pieces);
    free(tok->piece_lens);
    free(tok->is_added);
    free(tok->vocab.slots);
    free(tok->merges.slots);
    free(tok->scores);
    free(tok->subword_prefix);
    free(tok->word_suffix);
    for (size_t i = 0; i < tok->n_added; i++) {
        free(tok->added[i].content);
        free(tok->added[i].match);
    }
    free(tok->added);
    free(tok->added_order);
    tok_pattern_free(&tok->word_re);
    for (size_t i = 0; i < tok->n_norms; i++) {
        tok_pattern_free(&tok->norms[i].pat);
        free(tok->norms[i].text);
    }
    free(tok->norms);
    for (size_t i = 0; i < tok->n_pretoks; i++)
        tok_pattern_free(&tok->pretoks[i].pat);
    free(tok->pretoks);
    for (size_t i = 0; i < tok->n_decoders; i++) {
        tok_pattern_free(&tok->decoders[i].pat);
        free(tok->decoders[i].to);
    }
    free(tok->decoders);
    free(tok->prefix_ids);
    free(tok->suffix_ids);
}

void qb_tok_free(struct qb_tokenizer *tok)
{
    if (!tok)
        return;
    tok_free_internals(tok);
    free(tok);
}
