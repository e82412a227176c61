/*
 * wordppl.c - lm-eval-harness wikitext word perplexity (method in wordppl.h).
 *
 * Text work (documents, detokenizer, word count) is byte-level on UTF-8: every
 * pattern of lm-eval's detokenizer is ASCII or a whole character, so replacing
 * bytes equals replacing code points; only Python's `\s` needs decoding (the
 * characters str.isspace() accepts). Scoring runs one window at a time on an
 * engine, fed in pieces so the logits buffer stays [PIECE][vocab].
 */
#include "wordppl.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <string.h>

#define PIECE 256

/* ---- a growing byte buffer ---------------------------------------------------------- */

struct sbuf {
    char *p;
    size_t n, cap;
    int oom;
};

static void sb_add(struct sbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1)
            cap *= 2;
        char *q = realloc(b->p, cap);
        if (!q) {
            b->oom = 1;
            return;
        }
        b->p = q;
        b->cap = cap;
    }
    if (n)
        memcpy(b->p + b->n, s, n);
    b->n += n;
    b->p[b->n] = '\0';
}

static void sb_str(struct sbuf *b, const char *s)
{
    sb_add(b, s, strlen(s));
}

/* ---- Python whitespace (str.isspace) ------------------------------------------------ */

/* Bytes of the whitespace character at s (n bytes left), or 0. */
static size_t py_space_len(const unsigned char *s, size_t n)
{
    unsigned char c = s[0];
    if ((c >= 0x09 && c <= 0x0d) || (c >= 0x1c && c <= 0x20))
        return 1;
    if (c == 0xc2 && n >= 2 && (s[1] == 0x85 || s[1] == 0xa0))
        return 2; /* U+0085, U+00A0 */
    if (n < 3)
        return 0;
    if (c == 0xe1 && s[1] == 0x9a && s[2] == 0x80)
        return 3; /* U+1680 */
    if (c == 0xe2 && s[1] == 0x80 && (s[2] <= 0x8a || s[2] == 0xa8 || s[2] == 0xa9 ||
                                      s[2] == 0xaf) && s[2] >= 0x80)
        return 3; /* U+2000..U+200A, U+2028, U+2029, U+202F */
    if (c == 0xe2 && s[1] == 0x81 && s[2] == 0x9f)
        return 3; /* U+205F */
    if (c == 0xe3 && s[1] == 0x80 && s[2] == 0x80)
        return 3; /* U+3000 */
    return 0;
}

/* Bytes of the character at s: a valid UTF-8 sequence, else 1 (an invalid byte). */
static size_t char_len(const unsigned char *s, size_t n)
{
    size_t want = s[0] < 0x80 ? 1 : (s[0] & 0xe0) == 0xc0 ? 2 : (s[0] & 0xf0) == 0xe0 ? 3
                : (s[0] & 0xf8) == 0xf0 ? 4 : 1;
    if (want > n)
        return 1;
    for (size_t i = 1; i < want; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 1;
    }
    return want;
}

int64_t qb_wordppl_count_words(const char *s, size_t len)
{
    const unsigned char *u = (const unsigned char *)s;
    int64_t runs = 0;
    int in_space = 0;
    for (size_t i = 0; i < len;) {
        size_t sp = py_space_len(u + i, len - i);
        if (sp) {
            runs += !in_space;
            in_space = 1;
            i += sp;
        } else {
            in_space = 0;
            i += char_len(u + i, len - i);
        }
    }
    return runs + 1;
}

/* [*a, *b) without leading and trailing Python whitespace. */
static void py_strip(const char *s, size_t *a, size_t *b)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = *a, end = *a;
    size_t sp;
    while (i < *b && (sp = py_space_len(u + i, *b - i)) != 0)
        i += sp;
    *a = i;
    end = i;
    while (i < *b) {
        sp = py_space_len(u + i, *b - i);
        if (sp) {
            i += sp;
        } else {
            i += char_len(u + i, *b - i);
            end = i;
        }
    }
    *b = end;
}

static int is_blank(const char *s, size_t len)
{
    size_t a = 0, b = len;
    py_strip(s, &a, &b);
    return a == b;
}

/* ---- detokenizer passes --------------------------------------------------------------- */

/* str.replace(from, to): non-overlapping, left to right. */
static void replace_all(const struct sbuf *in, const char *from, const char *to,
                        struct sbuf *out)
{
    size_t fl = strlen(from);
    out->n = 0;
    size_t i = 0;
    while (i < in->n) {
        const char *hit = fl <= in->n - i ? memmem(in->p + i, in->n - i, from, fl) : NULL;
        if (!hit) {
            sb_add(out, in->p + i, in->n - i);
            break;
        }
        size_t at = (size_t)(hit - in->p);
        sb_add(out, in->p + i, at - i);
        sb_str(out, to);
        i = at + fl;
    }
    sb_add(out, "", 0);
}

/* re.sub(r"/' [0-9]/", r"/'[0-9]/", s): the replacement is that literal text. */
static void slash_digit(const struct sbuf *in, struct sbuf *out)
{
    out->n = 0;
    size_t i = 0;
    while (i < in->n) {
        const char *p = in->p + i;
        if (in->n - i >= 5 && p[0] == '/' && p[1] == '\'' && p[2] == ' ' && p[3] >= '0' &&
            p[3] <= '9' && p[4] == '/') {
            sb_str(out, "/'[0-9]/");
            i += 5;
        } else {
            sb_add(out, p, 1);
            i++;
        }
    }
    sb_add(out, "", 0);
}

/* re.sub(r"O\s*([^C]*?)\s*C", r"O\1C", s) for one bracket or quote pair: each O is
 * matched with the first C after it and the whitespace inside both ends dropped. */
static void bracket_pass(const struct sbuf *in, char open, char close, struct sbuf *out)
{
    out->n = 0;
    size_t i = 0;
    while (i < in->n) {
        const char *o = memchr(in->p + i, open, in->n - i);
        const char *c = o ? memchr(o + 1, close, in->n - (size_t)(o + 1 - in->p)) : NULL;
        if (!c) {
            sb_add(out, in->p + i, in->n - i);
            break;
        }
        size_t a = (size_t)(o + 1 - in->p), b = (size_t)(c - in->p);
        sb_add(out, in->p + i, a - i);
        py_strip(in->p, &a, &b);
        sb_add(out, in->p + a, b - a);
        sb_add(out, c, 1);
        i = (size_t)(c + 1 - in->p);
    }
    sb_add(out, "", 0);
}

static const char *const detok_before[][2] = {
    {"s '", "s'"},
};
static const char *const detok_middle[][2] = {
    {" @-@ ", "-"}, {" @,@ ", ","}, {" @.@ ", "."}, {" : ", ": "}, {" ; ", "; "},
    {" . ", ". "}, {" ! ", "! "}, {" ? ", "? "}, {" , ", ", "},
};
static const char brackets[][2] = {{'(', ')'}, {'[', ']'}, {'{', '}'}, {'"', '"'},
                                   {'\'', '\''}};
static const char *const detok_after[][2] = {
    {"= = = =", "===="}, {"= = =", "==="}, {"= =", "=="}, {" \xc2\xb0 ", "\xc2\xb0"},
    {" \n", "\n"}, {"\n ", "\n"}, {" N ", " 1 "}, {" 's", "'s"},
};

static void swap(struct sbuf *a, struct sbuf *b)
{
    struct sbuf t = *a;
    *a = *b;
    *b = t;
}

enum qb_status qb_wordppl_detokenize(const char *s, size_t len, char **out, size_t *out_len,
                                     struct qb_err *err)
{
    struct sbuf a = {0}, b = {0};
    *out = NULL;
    *out_len = 0;
    sb_add(&a, s, len);
    replace_all(&a, detok_before[0][0], detok_before[0][1], &b);
    swap(&a, &b);
    slash_digit(&a, &b);
    swap(&a, &b);
    for (size_t k = 0; k < sizeof detok_middle / sizeof detok_middle[0]; k++) {
        replace_all(&a, detok_middle[k][0], detok_middle[k][1], &b);
        swap(&a, &b);
    }
    for (size_t k = 0; k < sizeof brackets / sizeof brackets[0]; k++) {
        bracket_pass(&a, brackets[k][0], brackets[k][1], &b);
        swap(&a, &b);
    }
    for (size_t k = 0; k < sizeof detok_after / sizeof detok_after[0]; k++) {
        replace_all(&a, detok_after[k][0], detok_after[k][1], &b);
        swap(&a, &b);
    }
    free(b.p);
    if (a.oom) {
        free(a.p);
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory detokenizing a document");
    }
    *out = a.p;
    *out_len = a.n;
    return QB_OK;
}

/* ---- documents ---------------------------------------------------------------------- */

void qb_wordppl_docs_clear(struct qb_wordppl_docs *d)
{
    if (!d)
        return;
    for (size_t i = 0; i < d->n; i++)
        free(d->text[i]);
    free(d->text);
    free(d->len);
    memset(d, 0, sizeof *d);
}

static enum qb_status docs_push(struct qb_wordppl_docs *d, const char *s, size_t len,
                                struct qb_err *err)
{
    if (d->n == d->cap) {
        size_t cap = d->cap ? d->cap * 2 : 64;
        char **t = qb_realloc_array(d->text, cap, sizeof *t);
        if (t)
            d->text = t;
        size_t *l = t ? qb_realloc_array(d->len, cap, sizeof *l) : NULL;
        if (!l)
            return qb_err_set(err, QB_ERR_NOMEM, "out of memory for documents");
        d->len = l;
        d->cap = cap;
    }
    char *copy = malloc(len + 1);
    if (!copy)
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory for documents");
    memcpy(copy, s, len);
    copy[len] = '\0';
    d->text[d->n] = copy;
    d->len[d->n++] = len;
    return QB_OK;
}

/* wikitext_document_level's title test on one line of wiki.test.raw. */
static int is_title_line(const char *line, size_t len)
{
    struct sbuf a = {0}, b = {0};
    sb_add(&a, line, len);
    replace_all(&a, "= = =", "===", &b);
    replace_all(&b, "= =", "==", &a);
    size_t s = 0, e = a.n;
    if (!a.oom)
        py_strip(a.p, &s, &e);
    int title = !a.oom && !b.oom && e - s >= 2 && memcmp(a.p + s, "= ", 2) == 0 &&
                memcmp(a.p + e - 2, " =", 2) == 0;
    free(a.p);
    free(b.p);
    return title;
}

enum qb_status qb_wordppl_docs_from_rows(const char *const *rows, size_t n_rows,
                                         struct qb_wordppl_docs *out, struct qb_err *err)
{
    struct sbuf page = {0};
    size_t lines_in_page = 0;
    enum qb_status st = QB_OK;
    memset(out, 0, sizeof *out);
    for (size_t r = 0; r <= n_rows && !st; r++) {
        /* the raw file's line: the row without its "\n"; a blank row was " " there;
         * the file's final "\n" leaves one empty line after the last row */
        const char *line = r < n_rows ? rows[r] : "";
        size_t len = strlen(line);
        if (r < n_rows && len == 0)
            line = " ", len = 1;
        else if (len && line[len - 1] == '\n')
            len--;
        if (r < n_rows && is_title_line(line, len)) {
            if (lines_in_page && !is_blank(page.p, page.n))
                st = docs_push(out, page.p, page.n, err);
            page.n = 0;
            lines_in_page = 0;
        }
        if (lines_in_page++)
            sb_add(&page, "\n", 1);
        sb_add(&page, line, len);
        if (page.oom)
            st = qb_err_set(err, QB_ERR_NOMEM, "out of memory for documents");
    }
    if (!st)
        st = docs_push(out, page.p, page.n, err); /* the last page is always kept */
    free(page.p);
    if (st)
        qb_wordppl_docs_clear(out);
    return st;
}

enum qb_status qb_wordppl_docs_from_text(const char *text, size_t len,
                                         struct qb_wordppl_docs *out, struct qb_err *err)
{
    enum qb_status st = QB_OK;
    memset(out, 0, sizeof *out);
    size_t i = 0;
    while (!st && i <= len) {
        const char *hit = memmem(text + i, len - i, "\n\n\n", 3);
        size_t end = hit ? (size_t)(hit - text) : len;
        if (!is_blank(text + i, end - i))
            st = docs_push(out, text + i, end - i, err);
        i = end + 3;
    }
    if (st)
        qb_wordppl_docs_clear(out);
    return st;
}

/* ---- rolling windows ------------------------------------------------------------------ */

int64_t qb_wordppl_window_count(int64_t n, int max_len)
{
    if (n <= 0)
        return 0;
    int64_t first = n < max_len ? n : max_len;
    return 1 + (n - first + max_len - 1) / max_len;
}

struct qb_wordppl_window qb_wordppl_window_get(int64_t n, int max_len, int64_t i)
{
    struct qb_wordppl_window w;
    int64_t first = n < max_len ? n : max_len;
    if (i == 0) {
        w.in_start = -1;
        w.in_len = (int)first;
        w.pred_start = 0;
        w.pred_len = (int)first;
        return w;
    }
    int64_t predicted = first + (i - 1) * max_len;
    int64_t pred = n - predicted < max_len ? n - predicted : max_len;
    int64_t end = predicted + pred;
    w.in_start = end - max_len - 1;
    w.in_len = max_len;
    w.pred_start = end - pred;
    w.pred_len = (int)pred;
    return w;
}

/* log softmax(l)[target] in double. */
static double token_logprob(const float *l, int vocab, int32_t target)
{
    float mx = l[0];
    for (int i = 1; i < vocab; i++)
        mx = l[i] > mx ? l[i] : mx;
    double sum = 0;
    for (int i = 0; i < vocab; i++)
        sum += exp((double)l[i] - (double)mx);
    return (double)l[target] - (double)mx - log(sum);
}

struct scorer {
    struct qb_engine *e;
    const int32_t *tokens;
    int32_t prefix;
    int32_t *input;  /* [max_len] */
    float *logits;   /* [PIECE][vocab] */
    int vocab;
};

static enum qb_status score_window(struct scorer *s, const struct qb_wordppl_window *w,
                                   double *loglik, float *token_lp, struct qb_err *err)
{
    for (int k = 0; k < w->in_len; k++) {
        int64_t idx = w->in_start + k;
        s->input[k] = idx < 0 ? s->prefix : s->tokens[idx];
    }
    qb_engine_reset(s->e);
    int scored_from = w->in_len - w->pred_len;
    for (int p0 = 0; p0 < w->in_len; p0 += PIECE) {
        int n = w->in_len - p0 < PIECE ? w->in_len - p0 : PIECE;
        int from = scored_from - p0 > n ? n : scored_from - p0 < 0 ? 0 : scored_from - p0;
        enum qb_status st = qb_engine_forward(s->e, s->input + p0, n, from, s->logits, err);
        if (st)
            return st;
        for (int k = from; k < n; k++) {
            int64_t target = w->in_start + p0 + k + 1;
            double lp = token_logprob(s->logits + (size_t)(k - from) * (size_t)s->vocab,
                                      s->vocab, s->tokens[target]);
            *loglik += lp;
            if (token_lp)
                token_lp[target] = (float)lp;
        }
    }
    return QB_OK;
}

static enum qb_status check_tokens(const int32_t *tokens, int64_t n, int32_t prefix, int vocab,
                                   struct qb_err *err)
{
    if (prefix < 0 || prefix >= vocab)
        return qb_err_set(err, QB_ERR_RANGE, "prefix token %d is outside the vocabulary (%d)",
                          prefix, vocab);
    for (int64_t i = 0; i < n; i++) {
        if (tokens[i] < 0 || tokens[i] >= vocab)
            return qb_err_set(err, QB_ERR_RANGE, "token %d at %lld is outside the vocabulary "
                              "(%d)", tokens[i], (long long)i, vocab);
    }
    return QB_OK;
}

enum qb_status qb_wordppl_score_tokens(struct qb_engine *e, const int32_t *tokens, int64_t n,
                                       int32_t prefix, int max_len, double *loglik,
                                       float *token_logprob, struct qb_err *err)
{
    struct scorer s = {.e = e, .tokens = tokens, .prefix = prefix, .vocab = e->model->cfg.vocab};
    *loglik = 0;
    if (max_len < 1)
        return qb_err_set(err, QB_ERR_RANGE, "max_length %d must be at least 1", max_len);
    if (n > 0 && (n < max_len ? n : max_len) > e->max_ctx)
        return qb_err_set(err, QB_ERR_INTERNAL, "engine context %d is shorter than the %d-token "
                          "windows", e->max_ctx, max_len);
    enum qb_status st = check_tokens(tokens, n, prefix, s.vocab, err);
    if (st || n == 0)
        return st;
    s.input = qb_malloc_array((size_t)max_len, sizeof *s.input);
    s.logits = qb_malloc_array((size_t)PIECE * (size_t)s.vocab, sizeof *s.logits);
    if (!s.input || !s.logits) {
        st = qb_err_set(err, QB_ERR_NOMEM, "out of memory for logits");
        goto out;
    }
    int64_t count = qb_wordppl_window_count(n, max_len);
    for (int64_t i = 0; i < count && !st; i++) {
        struct qb_wordppl_window w = qb_wordppl_window_get(n, max_len, i);
        st = score_window(&s, &w, loglik, token_logprob, err);
    }
out:
    free(s.input);
    free(s.logits);
    return st;
}

/* ---- whole run -------------------------------------------------------------------------- */

void qb_wordppl_aggregate(struct qb_wordppl_result *r)
{
    r->word_perplexity = r->words > 0 ? exp(-r->loglik / (double)r->words) : NAN;
    r->byte_perplexity = r->bytes > 0 ? exp(-r->loglik / (double)r->bytes) : NAN;
    r->bits_per_byte = r->bytes > 0 ? -r->loglik / (double)r->bytes / log(2.0) : NAN;
}

int32_t qb_wordppl_prefix_token(const struct qb_model *m)
{
    int32_t bos = m->tok ? qb_tok_bos(m->tok) : -1;
    if (bos < 0)
        bos = m->cfg.bos_id;
    if (bos >= 0)
        return bos;
    int32_t eos = m->tok ? qb_tok_eos(m->tok) : -1;
    return eos >= 0 ? eos : m->cfg.eos_id;
}

struct doc_tokens {
    int32_t **ids;
    int64_t *n;
    size_t count;
};

static void doc_tokens_free(struct doc_tokens *t)
{
    for (size_t i = 0; t->ids && i < t->count; i++)
        free(t->ids[i]);
    free(t->ids);
    free(t->n);
}

static enum qb_status tokenize_docs(const struct qb_model *m, const struct qb_wordppl_docs *d,
                                    size_t count, struct doc_tokens *t, struct qb_err *err)
{
    t->count = count;
    t->ids = qb_calloc_array(count ? count : 1, sizeof *t->ids);
    t->n = qb_calloc_array(count ? count : 1, sizeof *t->n);
    if (!t->ids || !t->n)
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory for tokens");
    enum qb_status st = QB_OK;
    for (size_t i = 0; i < count && !st; i++) {
        char *text = NULL;
        size_t len = 0, n = 0;
        st = qb_wordppl_detokenize(d->text[i], d->len[i], &text, &len, err);
        if (!st)
            st = qb_tok_encode(m->tok, text, len, 0, &t->ids[i], &n, err);
        t->n[i] = (int64_t)n;
        free(text);
    }
    return st;
}

static enum qb_status check_run(const struct qb_model *m, const struct qb_wordppl_docs *docs,
                                const struct qb_wordppl_opts *o, int *max_len,
                                struct qb_err *err)
{
    if (!m->tok)
        return qb_err_set(err, QB_ERR_INTERNAL, "model loaded without a tokenizer");
    *max_len = o->max_length > 0 ? o->max_length : m->cfg.max_ctx;
    if (*max_len < 1 || *max_len > m->cfg.max_ctx)
        return qb_err_set(err, QB_ERR_USAGE, "max_length %d is outside [1, %d] (the model's "
                          "max_position_embeddings)", *max_len, m->cfg.max_ctx);
    if (docs->n == 0)
        return qb_err_set(err, QB_ERR_USAGE, "no documents to score (an empty text?)");
    return QB_OK;
}

enum qb_status qb_wordppl_run(const struct qb_model *m, const struct qb_wordppl_docs *docs,
                              const struct qb_wordppl_opts *o, struct qb_progress *progress,
                              struct qb_wordppl_result *out, struct qb_err *err)
{
    struct doc_tokens t = {0};
    struct qb_engine *e = NULL;
    int max_len = 0;
    memset(out, 0, sizeof *out);
    enum qb_status st = check_run(m, docs, o, &max_len, err);
    if (st)
        return st;
    size_t count = o->max_docs > 0 && (size_t)o->max_docs < docs->n ? (size_t)o->max_docs
                                                                       : docs->n;
    qb_progress_stage(progress, "tokenizing documents");
    st = tokenize_docs(m, docs, count, &t, err);
    int64_t longest = 0;
    for (size_t i = 0; !st && i < count; i++) {
        out->tokens += t.n[i];
        out->words += qb_wordppl_count_words(docs->text[i], docs->len[i]);
        out->bytes += (int64_t)docs->len[i];
        longest = t.n[i] > longest ? t.n[i] : longest;
    }
    if (!st && out->tokens == 0)
        st = qb_err_set(err, QB_ERR_USAGE, "the documents hold no tokens to score");
    if (!st) {
        struct qb_engine_opts eo = {(int)(longest < max_len ? longest : max_len), o->n_threads};
        st = qb_engine_create(m, o->backend, &eo, progress, &out->backend, &e, err);
    }
    if (st)
        goto out;
    out->prefix_token = qb_wordppl_prefix_token(m);
    out->max_length = max_len;
    out->documents = (int64_t)count;
    qb_progress_stage(progress, "word perplexity");
    double t0 = qb_now_seconds();
    int64_t done = 0;
    for (size_t i = 0; i < count && !st; i++) {
        if (qb_progress_cancelled(progress)) {
            st = qb_err_set(err, QB_ERR_CANCELLED, "cancelled");
            break;
        }
        double ll = 0;
        st = qb_wordppl_score_tokens(e, t.ids[i], t.n[i], out->prefix_token, max_len, &ll, NULL,
                                     err);
        out->loglik += ll;
        done += t.n[i];
        qb_progress_update(progress, (double)done / (double)out->tokens, done, out->tokens,
                           "tokens");
        qb_progress_metric(progress, "loglik/token", out->loglik / (double)(done ? done : 1));
    }
    out->seconds = qb_now_seconds() - t0;
    out->tokens_per_s = out->seconds > 0 ? (double)out->tokens / out->seconds : 0;
    if (!st)
        qb_wordppl_aggregate(out);
out:
    qb_engine_free(e);
    doc_tokens_free(&t);
    return st;
}

enum qb_status qb_wordppl_run_dir(const char *model_dir, const char *scheme, int group,
                                  const struct qb_wordppl_docs *docs,
                                  const struct qb_wordppl_opts *o, struct qb_progress *progress,
                                  struct qb_wordppl_result *out, struct qb_err *err)
{
    struct qb_model *m = NULL;
    struct qb_scheme s;
    enum qb_status st = scheme ? qb_scheme_parse(scheme, group, &s, err) : QB_OK;
    if (!st)
        st = qb_model_load(model_dir, NULL, &m, err);
    if (!st && scheme) {
        qb_progress_log(progress, "quantizing %s", s.name);
        st = qb_model_apply_scheme(m, &s, progress, err);
    }
    if (!st)
        st = qb_wordppl_run(m, docs, o, progress, out, err);
    qb_model_free(m);
    return st;
}

void qb_wordppl_add_json(struct cJSON *o, const struct qb_wordppl_result *r)
{
    cJSON_AddNumberToObject(o, "word_perplexity", r->word_perplexity);
    cJSON_AddNumberToObject(o, "byte_perplexity", r->byte_perplexity);
    cJSON_AddNumberToObject(o, "bits_per_byte", r->bits_per_byte);
    cJSON_AddNumberToObject(o, "documents", (double)r->documents);
    cJSON_AddNumberToObject(o, "words", (double)r->words);
    cJSON_AddNumberToObject(o, "bytes", (double)r->bytes);
    cJSON_AddNumberToObject(o, "tokens", (double)r->tokens);
    cJSON_AddNumberToObject(o, "loglikelihood", r->loglik);
    cJSON_AddNumberToObject(o, "max_length", r->max_length);
    cJSON_AddNumberToObject(o, "prefix_token", r->prefix_token);
    cJSON_AddNumberToObject(o, "seconds", r->seconds);
    cJSON_AddStringToObject(o, "backend", qb_backend_name(r->backend));
}

void qb_wordppl_print(FILE *f, const struct qb_wordppl_result *r)
{
    fprintf(f, "documents %lld (%lld words, %lld bytes, %lld tokens)\n",
            (long long)r->documents, (long long)r->words, (long long)r->bytes,
            (long long)r->tokens);
    fprintf(f, "windows   %d tokens, prefix token %d, %s backend\n", r->max_length,
            r->prefix_token, qb_backend_name(r->backend));
    fprintf(f, "word_perplexity = %.4f\nbyte_perplexity = %.4f\nbits_per_byte = %.4f\n",
            r->word_perplexity, r->byte_perplexity, r->bits_per_byte);
    fprintf(f, "%.2f s, %.0f tokens/s\n", r->seconds, r->tokens_per_s);
}
