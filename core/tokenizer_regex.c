/*
 * tokenizer_regex.c - tokenizer.json patterns on PCRE2, with `tokenizers`' split rules.
 *
 * `tokenizers` compiles Split/Replace patterns with Oniguruma (Ruby syntax, UTF-8).
 * PCRE2 with PCRE2_UTF | PCRE2_UCP runs the same Perl-style syntax with the same
 * leftmost-first backtracking semantics; where the two disagree on a shorthand
 * class we rewrite the pattern to Oniguruma's meaning before compiling:
 *
 *   \s \S   Oniguruma: Unicode White_Space (includes U+0085); PCRE2 UCP: Z + \t..\r
 *           -> \p{White_Space} / \P{White_Space}
 *   \w \W   Oniguruma: L | M | N | Pc;  PCRE2 10.42 UCP: L | N | '_'
 *           -> [\p{L}\p{M}\p{N}\p{Pc}] (and its negation outside a class)
 *   \h \H   Oniguruma: hex digit; PCRE2: horizontal space -> [0-9a-fA-F]
 *   \uHHHH  Oniguruma only -> \x{HHHH}
 *   ^ $     Ruby syntax: always line anchors -> compiled with PCRE2_MULTILINE
 *   (?m)    Ruby syntax: '.' matches newlines -> (?s)
 *
 * find_matches emulates the onig crate's find_iter, including how it steps over
 * an empty match that touches the previous one, and split() reproduces
 * NormalizedString::split for the five SplitDelimiterBehavior values.
 * String patterns (Split {"String": ...}, Replace {"String": ...}) are literal.
 */
#include <string.h>

#include "tokenizer_impl.h"

#define TOK_JIT_STACK_MAX (8u << 20)

struct pat_out {
    char *p;
    size_t len, cap;
    int nomem;
};

static void pat_put(struct pat_out *o, const char *s, size_t n)
{
    if (o->nomem)
        return;
    if (o->len + n + 1 > o->cap) {
        size_t cap = (o->cap ? o->cap : 64);
        while (cap < o->len + n + 1)
            cap *= 2;
        char *p = realloc(o->p, cap);
        if (!p) {
            o->nomem = 1;
            return;
        }
        o->p = p;
        o->cap = cap;
    }
    memcpy(o->p + o->len, s, n);
    o->len += n;
    o->p[o->len] = '\0';
}

static void pat_puts(struct pat_out *o, const char *s)
{
    pat_put(o, s, strlen(s));
}

/* Rewrites one backslash escape at src[i] (src[i] == '\\'); returns bytes consumed,
 * 0 when the escape has no PCRE2 equivalent in this position. */
static size_t translate_escape(const char *src, size_t len, size_t i, int in_class,
                               struct pat_out *o)
{
    if (i + 1 >= len) {
        pat_put(o, src + i, 1);
        return 1;
    }
    char c = src[i + 1];
    switch (c) {
    case 's':
        pat_puts(o, "\\p{White_Space}");
        return 2;
    case 'S':
        pat_puts(o, "\\P{White_Space}");
        return 2;
    case 'w':
        pat_puts(o, in_class ? "\\p{L}\\p{M}\\p{N}\\p{Pc}" : "[\\p{L}\\p{M}\\p{N}\\p{Pc}]");
        return 2;
    case 'W':
        if (in_class)
            return 0;
        pat_puts(o, "[^\\p{L}\\p{M}\\p{N}\\p{Pc}]");
        return 2;
    case 'h':
        pat_puts(o, in_class ? "0-9a-fA-F" : "[0-9a-fA-F]");
        return 2;
    case 'H':
        if (in_class)
            return 0;
        pat_puts(o, "[^0-9a-fA-F]");
        return 2;
    case 'u':
        if (i + 6 <= len) {
            pat_puts(o, "\\x{");
            pat_put(o, src + i + 2, 4);
            pat_puts(o, "}");
            return 6;
        }
        return 0;
    default:
        pat_put(o, src + i, 2);
        return 2;
    }
}

/* Returns a malloced PCRE2 pattern, NULL on allocation failure; *bad_at is set to the
 * offset of an untranslatable escape (and NULL returned) when there is one. */
static char *translate_pattern(const char *src, size_t len, size_t *bad_at, size_t *out_len)
{
    struct pat_out o = {0};
    int in_class = 0;
    size_t i = 0;
    pat_put(&o, "", 0);
    *bad_at = SIZE_MAX;
    while (i < len) {
        char c = src[i];
        if (c == '\\') {
            size_t used = translate_escape(src, len, i, in_class, &o);
            if (!used) {
                *bad_at = i;
                free(o.p);
                return NULL;
            }
            i += used;
            continue;
        }
        if (!in_class && c == '(' && i + 1 < len && src[i + 1] == '?') {
            /* an option group (?imx-imx) or (?imx-imx:...): Ruby's m is PCRE2's s */
            size_t j = i + 2;
            while (j < len && strchr("imx-", src[j]) && src[j])
                j++;
            if (j > i + 2 && j < len && (src[j] == ':' || src[j] == ')')) {
                pat_put(&o, "(?", 2);
                for (size_t k = i + 2; k < j; k++)
                    pat_put(&o, src[k] == 'm' ? "s" : src + k, 1);
                i = j;
                continue;
            }
        }
        if (!in_class && c == '[') {
            in_class = 1;
            pat_put(&o, src + i, 1);
            i++;
            if (i < len && src[i] == '^')
                pat_put(&o, src + i++, 1);
            if (i < len && src[i] == ']') /* a leading ']' is literal */
                pat_put(&o, src + i++, 1);
            continue;
        }
        if (in_class && c == '[' && i + 1 < len && src[i + 1] == ':') {
            const char *end = NULL;
            for (size_t j = i + 2; j + 1 < len; j++) {
                if (src[j] == ':' && src[j + 1] == ']') {
                    end = src + j + 2;
                    break;
                }
            }
            if (end) {
                pat_put(&o, src + i, (size_t)(end - (src + i)));
                i = (size_t)(end - src);
                continue;
            }
        }
        if (in_class && c == ']')
            in_class = 0;
        pat_put(&o, src + i, 1);
        i++;
    }
    if (o.nomem) {
        free(o.p);
        return NULL;
    }
    *out_len = o.len;
    return o.p;
}

enum qb_status tok_pattern_compile(struct tok_pattern *p, const char *src, size_t len, int literal,
                                   const char *origin, const char *field, struct qb_err *err)
{
    memset(p, 0, sizeof(*p));
    if (literal) {
        p->lit = malloc(len + 1);
        if (!p->lit)
            return qb_err_set(err, QB_ERR_NOMEM, "out of memory loading '%s'", origin);
        memcpy(p->lit, src, len);
        p->lit[len] = '\0';
        p->lit_len = len;
        return QB_OK;
    }
    size_t bad_at = SIZE_MAX, plen = 0;
    char *pcre = translate_pattern(src, len, &bad_at, &plen);
    if (!pcre && bad_at != SIZE_MAX)
        return qb_err_set(err, QB_ERR_UNSUPPORTED,
                          "'%s': %s: escape at offset %zu of the pattern has no PCRE2 "
                          "equivalent here",
                          origin, field, bad_at);
    if (!pcre)
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory loading '%s'", origin);
    int ec = 0;
    PCRE2_SIZE eo = 0;
    p->re = pcre2_compile((PCRE2_SPTR)pcre, plen, PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE, &ec, &eo,
                          NULL);
    free(pcre);
    if (!p->re) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(ec, msg, sizeof(msg));
        return qb_err_set(err, QB_ERR_FORMAT, "'%s': %s: bad regex (%s at offset %zu)", origin,
                          field, (const char *)msg, (size_t)eo);
    }
    pcre2_jit_compile(p->re, PCRE2_JIT_COMPLETE); /* the interpreter runs it otherwise */
    return QB_OK;
}

void tok_pattern_free(struct tok_pattern *p)
{
    if (!p)
        return;
    pcre2_code_free(p->re);
    free(p->lit);
    memset(p, 0, sizeof(*p));
}

enum qb_status tok_matcher_init(struct tok_matcher *m, struct qb_err *err)
{
    memset(m, 0, sizeof(*m));
    m->md = pcre2_match_data_create(1, NULL);
    m->mc = pcre2_match_context_create(NULL);
    m->js = pcre2_jit_stack_create(32 * 1024, TOK_JIT_STACK_MAX, NULL);
    if (!m->md || !m->mc || !m->js) {
        tok_matcher_release(m);
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory for the tokenizer's regex state");
    }
    pcre2_jit_stack_assign(m->mc, NULL, m->js);
    return QB_OK;
}

void tok_matcher_release(struct tok_matcher *m)
{
    if (!m)
        return;
    pcre2_match_data_free(m->md);
    pcre2_match_context_free(m->mc);
    pcre2_jit_stack_free(m->js);
    memset(m, 0, sizeof(*m));
}

static enum qb_status segs_push(struct tok_segs *s, size_t off, size_t len, int is_match)
{
    if (s->n == s->cap) {
        size_t cap = s->cap ? s->cap * 2 : 16;
        struct tok_seg *v = qb_realloc_array(s->v, cap, sizeof(*v));
        if (!v)
            return QB_ERR_NOMEM;
        s->v = v;
        s->cap = cap;
    }
    s->v[s->n++] = (struct tok_seg){off, len, is_match};
    return QB_OK;
}

/* Next match at or after `from`: 1 found, 0 none, <0 error (status in *st). */
static int next_match(const struct tok_pattern *p, struct tok_matcher *m, const char *s, size_t n,
                      size_t from, size_t *ms, size_t *me, enum qb_status *st, struct qb_err *err)
{
    if (!p->re) {
        if (p->lit_len == 0 || from > n)
            return 0;
        const char *hit = memmem(s + from, n - from, p->lit, p->lit_len);
        if (!hit)
            return 0;
        *ms = (size_t)(hit - s);
        *me = *ms + p->lit_len;
        return 1;
    }
    int rc = pcre2_match(p->re, (PCRE2_SPTR)s, n, from, PCRE2_NO_UTF_CHECK, m->md, m->mc);
    if (rc == PCRE2_ERROR_NOMATCH)
        return 0;
    if (rc < 0) {
        PCRE2_UCHAR msg[160];
        pcre2_get_error_message(rc, msg, sizeof(msg));
        *st = qb_err_set(err, QB_ERR_RANGE, "tokenizer regex failed on the input: %s",
                         (const char *)msg);
        return -1;
    }
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(m->md);
    *ms = ov[0];
    *me = ov[1];
    return 1;
}

static size_t char_len_at(const char *s, size_t n, size_t at)
{
    size_t l = tok_utf8_valid_len((const unsigned char *)s + at, n - at);
    return l ? l : 1;
}

/* Pattern::find_matches: segments covering s[0..n), matches and the gaps between. */
static enum qb_status find_matches(const struct tok_pattern *p, struct tok_matcher *m,
                                   const char *s, size_t n, struct tok_segs *out,
                                   struct qb_err *err)
{
    enum qb_status st = QB_OK;
    out->n = 0;
    if (n == 0)
        return segs_push(out, 0, 0, 0) ? qb_err_set(err, QB_ERR_NOMEM, "out of memory") : QB_OK;
    size_t prev = 0, last_end = 0, last_match_end = SIZE_MAX;
    while (last_end <= n) {
        size_t ms, me;
        int found = next_match(p, m, s, n, last_end, &ms, &me, &st, err);
        if (found < 0)
            return st;
        if (!found)
            break;
        if (ms == me && last_match_end == me) {
            if (last_end >= n)
                break;
            last_end += char_len_at(s, n, last_end);
            continue;
        }
        last_end = me;
        last_match_end = me;
        if (prev != ms && segs_push(out, prev, ms - prev, 0))
            goto nomem;
        if (segs_push(out, ms, me - ms, 1))
            goto nomem;
        prev = me;
    }
    if (prev != n && segs_push(out, prev, n - prev, 0))
        goto nomem;
    return QB_OK;
nomem:
    return qb_err_set(err, QB_ERR_NOMEM, "out of memory splitting text");
}

static enum qb_status apply_behavior(const struct tok_segs *in, enum tok_behavior behavior,
                                     int invert, struct tok_segs *out)
{
    int prev_match = 0;
    out->n = 0;
    if (behavior == TOK_SPLIT_MERGED_WITH_NEXT) {
        /* fold from the right: a match glues onto the piece after it */
        for (size_t k = in->n; k-- > 0;) {
            struct tok_seg s = in->v[k];
            int is_match = invert ? !s.is_match : s.is_match;
            if (is_match && !prev_match && out->n > 0) {
                struct tok_seg *last = &out->v[out->n - 1];
                last->len += last->off - s.off;
                last->off = s.off;
            } else if (segs_push(out, s.off, s.len, 0)) {
                return QB_ERR_NOMEM;
            }
            prev_match = is_match;
        }
        for (size_t a = 0, b = out->n ? out->n - 1 : 0; a < b; a++, b--) {
            struct tok_seg t = out->v[a];
            out->v[a] = out->v[b];
            out->v[b] = t;
        }
        return QB_OK;
    }
    for (size_t k = 0; k < in->n; k++) {
        struct tok_seg s = in->v[k];
        int is_match = invert ? !s.is_match : s.is_match;
        int glue = 0;
        if (behavior == TOK_SPLIT_CONTIGUOUS)
            glue = k > 0 && is_match == prev_match;
        else if (behavior == TOK_SPLIT_MERGED_WITH_PREVIOUS)
            glue = is_match && !prev_match && out->n > 0;
        prev_match = is_match;
        if (behavior == TOK_SPLIT_REMOVED && is_match)
            continue;
        if (glue && out->n > 0) {
            struct tok_seg *last = &out->v[out->n - 1];
            last->len = s.off + s.len - last->off;
            continue;
        }
        if (segs_push(out, s.off, s.len, 0))
            return QB_ERR_NOMEM;
    }
    return QB_OK;
}

enum qb_status tok_split(const struct tok_pattern *p, struct tok_matcher *m, const char *s,
                         size_t n, enum tok_behavior behavior, int invert, struct tok_segs *scratch,
                         struct tok_segs *out, struct qb_err *err)
{
    enum qb_status st = find_matches(p, m, s, n, scratch, err);
    if (st)
        return st;
    if (apply_behavior(scratch, behavior, invert, out))
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory splitting text");
    return QB_OK;
}

enum qb_status tok_replace_all(const struct tok_pattern *p, struct tok_matcher *m, const char *s,
                               size_t n, const char *rep, size_t rep_len, struct tok_buf *out,
                               struct qb_err *err)
{
    struct tok_segs segs = {0};
    enum qb_status st = find_matches(p, m, s, n, &segs, err);
    if (st)
        goto out;
    for (size_t k = 0; k < segs.n && !st; k++) {
        const struct tok_seg *g = &segs.v[k];
        st = g->is_match ? tok_buf_put(out, rep, rep_len) : tok_buf_put(out, s + g->off, g->len);
    }
    if (st)
        st = qb_err_set(err, QB_ERR_NOMEM, "out of memory normalizing text");
out:
    free(segs.v);
    return st;
}
