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
 * decode lives in tokenizer_decode.c.
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

/* Is the one character s[0..n) a Rust regex \w character? */
static int word_char_at(struct encode_state *es, const char *s, size_t n)
{
    const struct qb_tokenizer *tok = es->tok;
    if (!tok->word_re.re || n == 0)
        return 0;
    int rc = pcre2_match(tok->word_re.re, (PCRE2_SPTR)s, n, 0, PCRE2_ANCHORED | PCRE2_NO_UTF_CHECK,
                         es->m.md, es->m.mc);
    return rc >= 0;
}

/* single_word: no \\w character right before start nor right after stop. */
static int stands_alone(struct encode_state *es, const char *s, size_t n, size_t start, size_t stop)
{
    size_t before = 0, after = 0;
    if (start > 0) {
        tok_utf8_before(s, start, &before);
        if (word_char_at(es, s + start - before, before))
            return 0;
    }
    if (stop < n) {
        after = tok_utf8_valid_len((const unsigned char *)s + stop, n - stop);
        if (word_char_at(es, s + stop, after ? after : 1))
            return 0;
    }
    return 1;
}

static size_t trailing_space_start(const char *s, size_t end)
{
    while (end > 0) {
        size_t l;
        uint32_t cp = tok_utf8_before(s, end, &l);
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
static enum qb_status split_added_piece(struct encode_state *es, const char *s, size_t n, int first,
                                        int normalized, struct pieces *out)
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
        if (a->single_word && !stands_alone(es, s, n, start, stop))
            continue;
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
            st = piece_add(out, in->buf.p + p->off, p->len, p->added, p->first) ? nomem(es->err)
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
            if (cur.len &&
                (tok_buf_put(&next, z->text, z->text_len) || tok_buf_put(&next, cur.p, cur.len)))
                st = nomem(es->err);
            else if (!cur.len)
                continue;
        } else if (z->kind == TOK_NORM_NFC) {
            if (tok_nfc(cur.p ? cur.p : "", cur.len, &next))
                st = nomem(es->err);
        } else {
            st = tok_replace_all(&z->pat, &es->m, cur.p ? cur.p : "", cur.len, z->text, z->text_len,
                                 &next, es->err);
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
    enum qb_status st =
        tok_split(pat, &es->m, s, n, behavior, invert, &es->scratch, &es->segs, es->err);
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
        st =
            byte_level_map(es, split.buf.p + split.v[j].off, split.v[j].len, split.v[j].first, out);
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
    int prepend =
        (pt->prepend == TOK_PREPEND_ALWAYS || (pt->prepend == TOK_PREPEND_FIRST && first)) &&
        !(starts || (n > 0 && s[0] == ' '));
    if (prepend && tok_buf_put(&t, pt->replacement, pt->replacement_len))
        st = nomem(es->err);
    for (size_t i = 0; i < n && !st; i++) {
        if (s[i] == ' ' ? tok_buf_put(&t, pt->replacement, pt->replacement_len)
                        : tok_buf_put(&t, s + i, 1))
            st = nomem(es->err);
    }
    if (!st && pt->split)
        st = emit_split(es, &pt->pat, TOK_SPLIT_MERGED_WITH_NEXT, 0, t.p ? t.p : "", t.len, first,
                        out);
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

/* ---- loading support ------------------------------------------------------------ */

#define TOK_RUST_WORD "[\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\p{Join_Control}]"

enum qb_status tok_finish_added(struct qb_tokenizer *tok, const char *origin, struct qb_err *err)
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
