/*
 * tokenizer_json.c - Hugging Face tokenizer.json -> struct qb_tokenizer.
 *
 * Reads the fields `tokenizers` reads for a BPE model and nothing else:
 *
 *   model            {"type": "BPE", vocab {piece: id}, merges ["a b" | ["a", "b"]],
 *                     unk_token, byte_fallback, fuse_unk, ignore_merges, dropout,
 *                     continuing_subword_prefix, end_of_word_suffix}
 *   added_tokens     [{id, content, single_word, lstrip, rstrip, normalized, special}]
 *   normalizer       null | Sequence | Prepend | Replace | NFC
 *   pre_tokenizer    null | Sequence | Split | ByteLevel | Metaspace | Digits |
 *                    Punctuation
 *   post_processor   null | Sequence | TemplateProcessing | ByteLevel
 *   decoder          null | Sequence | ByteLevel | Replace | ByteFallback | Fuse | Strip |
 *                    Metaspace
 *
 * Anything else (another model type, an unknown component) is an error that
 * names the field and the value, so a user knows what their checkpoint needs.
 * cJSON parses a NUL-terminated private copy of the buffer (its nesting limit,
 * CJSON_NESTING_LIMIT = 1000, is far above what tokenizer.json uses).
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <string.h>
#include <sys/stat.h>

#include "tokenizer_impl.h"

#define TOK_JSON_MAX_BYTES ((size_t)1 << 31)

struct loader {
    struct qb_tokenizer *tok;
    const char *origin;
    struct qb_err *err;
};

static enum qb_status bad(struct loader *L, const char *field, const char *what)
{
    return qb_err_set(L->err, QB_ERR_FORMAT, "'%s': %s: %s", L->origin, field, what);
}

static enum qb_status unsupported(struct loader *L, const char *field, const char *value,
                                  const char *supported)
{
    return qb_err_set(L->err, QB_ERR_UNSUPPORTED,
                      "'%s': %s '%.80s' is not supported (supported: %s)", L->origin, field, value,
                      supported);
}

static enum qb_status oom(struct loader *L)
{
    return qb_err_set(L->err, QB_ERR_NOMEM, "out of memory loading '%s'", L->origin);
}

/* Optional boolean: absent or null -> def; other non-bool -> error. */
static enum qb_status get_bool(struct loader *L, const cJSON *obj, const char *key,
                               const char *field, int def, int *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    *out = def;
    if (!v || cJSON_IsNull(v))
        return QB_OK;
    if (!cJSON_IsBool(v))
        return bad(L, field, "expected true or false");
    *out = cJSON_IsTrue(v);
    return QB_OK;
}

/* Optional string: absent or null -> NULL. */
static enum qb_status get_str(struct loader *L, const cJSON *obj, const char *key,
                              const char *field, const char **out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    *out = NULL;
    if (!v || cJSON_IsNull(v))
        return QB_OK;
    if (!cJSON_IsString(v))
        return bad(L, field, "expected a string");
    *out = v->valuestring;
    return QB_OK;
}

static enum qb_status get_int(struct loader *L, const cJSON *v, const char *field, int64_t lo,
                              int64_t hi, int64_t *out)
{
    if (!cJSON_IsNumber(v))
        return bad(L, field, "expected an integer");
    double d = v->valuedouble;
    if (!(d >= (double)lo && d <= (double)hi) || d != (double)(int64_t)d)
        return qb_err_set(L->err, QB_ERR_FORMAT, "'%s': %s: %g is not an integer in %lld..%lld",
                          L->origin, field, d, (long long)lo, (long long)hi);
    *out = (int64_t)d;
    return QB_OK;
}

static const char *type_of(const cJSON *obj)
{
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(obj, "type");
    return cJSON_IsString(t) ? t->valuestring : NULL;
}

static char *dup_bytes(const char *s, size_t n)
{
    char *p = malloc(n + 1);
    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

/* ---- model ------------------------------------------------------------------ */

static enum qb_status count_ids(struct loader *L, const cJSON *vocab, const cJSON *added,
                                int32_t *n_out)
{
    int64_t max_id = -1, entries = 0;
    for (const cJSON *e = vocab->child; e; e = e->next) {
        int64_t id = 0;
        if (get_int(L, e, "model.vocab", 0, INT32_MAX - 1, &id))
            return L->err->status;
        max_id = QB_MAX(max_id, id);
        entries++;
    }
    for (const cJSON *a = added ? added->child : NULL; a; a = a->next) {
        const cJSON *idv = cJSON_GetObjectItemCaseSensitive(a, "id");
        int64_t id = 0;
        if (!cJSON_IsObject(a))
            return bad(L, "added_tokens", "expected an array of objects");
        if (get_int(L, idv, "added_tokens[].id", 0, INT32_MAX - 1, &id))
            return L->err->status;
        max_id = QB_MAX(max_id, id);
        entries++;
    }
    if (max_id < 0)
        return bad(L, "model.vocab", "the vocabulary is empty");
    if (max_id > 2 * entries + 1024)
        return qb_err_set(L->err, QB_ERR_FORMAT,
                          "'%s': model.vocab: id %lld is far beyond the %lld tokens listed",
                          L->origin, (long long)max_id, (long long)entries);
    *n_out = (int32_t)(max_id + 1);
    return QB_OK;
}

static enum qb_status set_piece(struct loader *L, int32_t id, const char *s, uint8_t added)
{
    struct qb_tokenizer *tok = L->tok;
    if (tok->pieces[id]) {
        if (!added)
            return qb_err_set(L->err, QB_ERR_FORMAT,
                              "'%s': model.vocab: id %d is used by two tokens", L->origin, id);
        return QB_OK;
    }
    size_t n = strlen(s);
    if (n > UINT32_MAX / 2)
        return bad(L, "model.vocab", "a token is too long");
    tok->pieces[id] = dup_bytes(s, n);
    if (!tok->pieces[id])
        return oom(L);
    tok->piece_lens[id] = (uint32_t)n;
    tok->is_added[id] = added;
    return QB_OK;
}

static enum qb_status load_merges(struct loader *L, const cJSON *merges)
{
    uint32_t rank = 0;
    for (const cJSON *m = merges->child; m; m = m->next, rank++) {
        const char *a, *b;
        size_t alen, blen;
        if (cJSON_IsString(m)) {
            const char *sp = strchr(m->valuestring, ' ');
            if (!sp)
                return qb_err_set(L->err, QB_ERR_FORMAT,
                                  "'%s': model.merges[%u]: expected \"left right\" with one space",
                                  L->origin, rank);
            a = m->valuestring;
            alen = (size_t)(sp - a);
            b = sp + 1;
            blen = strlen(b);
        } else if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 && cJSON_IsString(m->child) &&
                   cJSON_IsString(m->child->next)) {
            a = m->child->valuestring;
            alen = strlen(a);
            b = m->child->next->valuestring;
            blen = strlen(b);
        } else {
            return qb_err_set(L->err, QB_ERR_FORMAT,
                              "'%s': model.merges[%u]: expected a \"left right\" string or a "
                              "[left, right] pair of strings",
                              L->origin, rank);
        }
        enum qb_status st = tok_add_merge(L->tok, a, alen, b, blen, rank, L->origin, L->err);
        if (st)
            return st;
    }
    return QB_OK;
}

static enum qb_status load_model_flags(struct loader *L, const cJSON *model)
{
    struct qb_tokenizer *tok = L->tok;
    enum qb_status st;
    const char *unk, *prefix, *suffix;
    if ((st = get_bool(L, model, "byte_fallback", "model.byte_fallback", 0, &tok->byte_fallback)) ||
        (st = get_bool(L, model, "fuse_unk", "model.fuse_unk", 0, &tok->fuse_unk)) ||
        (st = get_bool(L, model, "ignore_merges", "model.ignore_merges", 0, &tok->ignore_merges)) ||
        (st = get_str(L, model, "unk_token", "model.unk_token", &unk)) ||
        (st = get_str(L, model, "continuing_subword_prefix", "model.continuing_subword_prefix",
                      &prefix)) ||
        (st = get_str(L, model, "end_of_word_suffix", "model.end_of_word_suffix", &suffix)))
        return st;
    const cJSON *dropout = cJSON_GetObjectItemCaseSensitive(model, "dropout");
    if (dropout && !cJSON_IsNull(dropout) &&
        !(cJSON_IsNumber(dropout) && dropout->valuedouble == 0.0))
        return unsupported(L, "model.dropout", "non-zero", "null (no BPE dropout)");
    tok->unk_id = -1;
    if (unk) {
        tok->unk_id = tok_vocab_find(tok, unk, strlen(unk));
        if (tok->unk_id < 0)
            return qb_err_set(L->err, QB_ERR_FORMAT,
                              "'%s': model.unk_token: '%.64s' is not in the vocabulary", L->origin,
                              unk);
    }
    if (prefix && *prefix) {
        tok->subword_prefix = qb_strdup(prefix);
        tok->subword_prefix_len = strlen(prefix);
        if (!tok->subword_prefix)
            return oom(L);
    }
    if (suffix && *suffix) {
        tok->word_suffix = qb_strdup(suffix);
        tok->word_suffix_len = strlen(suffix);
        if (!tok->word_suffix)
            return oom(L);
    }
    return QB_OK;
}

static enum qb_status load_added(struct loader *L, const cJSON *added)
{
    struct qb_tokenizer *tok = L->tok;
    size_t n = added ? (size_t)cJSON_GetArraySize(added) : 0;
    if (!n)
        return QB_OK;
    tok->added = qb_calloc_array(n, sizeof(*tok->added));
    if (!tok->added)
        return oom(L);
    for (const cJSON *a = added->child; a; a = a->next) {
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(a, "content");
        int64_t id = 0;
        int sw, ls, rs, norm, special;
        enum qb_status st;
        if (!cJSON_IsString(content))
            return bad(L, "added_tokens[].content", "expected a string");
        if ((st = get_int(L, cJSON_GetObjectItemCaseSensitive(a, "id"), "added_tokens[].id", 0,
                          tok->n_vocab - 1, &id)) ||
            (st = get_bool(L, a, "single_word", "added_tokens[].single_word", 0, &sw)) ||
            (st = get_bool(L, a, "lstrip", "added_tokens[].lstrip", 0, &ls)) ||
            (st = get_bool(L, a, "rstrip", "added_tokens[].rstrip", 0, &rs)) ||
            (st = get_bool(L, a, "special", "added_tokens[].special", 0, &special)) ||
            (st = get_bool(L, a, "normalized", "added_tokens[].normalized", !special, &norm)))
            return st;
        const char *s = content->valuestring;
        size_t len = strlen(s);
        if (len == 0)
            continue; /* tokenizers ignores empty added tokens */
        int dup = 0;
        for (size_t k = 0; k < tok->n_added && !dup; k++)
            dup = tok->added[k].len == len && memcmp(tok->added[k].content, s, len) == 0;
        if (dup)
            continue;
        /* a token already in the model vocab keeps the model's id, as tokenizers does */
        int32_t model_id = tok_vocab_find(tok, s, len);
        int32_t use_id = model_id >= 0 ? model_id : (int32_t)id;
        if (model_id < 0 && tok->is_added[use_id] == 0 && tok->pieces[use_id])
            return qb_err_set(L->err, QB_ERR_FORMAT,
                              "'%s': added_tokens: '%.64s' has id %d, which model.vocab gives to "
                              "another token",
                              L->origin, s, use_id);
        if (model_id >= 0)
            tok->is_added[use_id] = 1;
        else if ((st = set_piece(L, use_id, s, 2)))
            return st;
        struct tok_added *t = &tok->added[tok->n_added++];
        t->content = dup_bytes(s, len);
        if (!t->content)
            return oom(L);
        t->len = len;
        t->id = use_id;
        t->single_word = (uint8_t)sw;
        t->lstrip = (uint8_t)ls;
        t->rstrip = (uint8_t)rs;
        t->normalized = (uint8_t)norm;
        t->special = (uint8_t)special;
    }
    return QB_OK;
}

static enum qb_status load_model(struct loader *L, const cJSON *root)
{
    struct qb_tokenizer *tok = L->tok;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(root, "model");
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(root, "added_tokens");
    enum qb_status st;
    if (!cJSON_IsObject(model))
        return bad(L, "model", "missing or not an object");
    const char *type = type_of(model);
    if (!type && cJSON_GetObjectItemCaseSensitive(model, "type"))
        return bad(L, "model.type", "expected a string");
    if (type && strcmp(type, "BPE") != 0)
        return unsupported(L, "model.type", type, "BPE");
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    if (!cJSON_IsObject(vocab))
        return bad(L, "model.vocab", "missing or not an object of token -> id");
    if (merges && !cJSON_IsNull(merges) && !cJSON_IsArray(merges))
        return bad(L, "model.merges", "expected an array");
    if (added && !cJSON_IsNull(added) && !cJSON_IsArray(added))
        return bad(L, "added_tokens", "expected an array");
    if (added && cJSON_IsNull(added))
        added = NULL;
    int32_t n = 0;
    if ((st = count_ids(L, vocab, added, &n)) || (st = tok_alloc_vocab(tok, n, L->err)))
        return st;
    for (const cJSON *e = vocab->child; e; e = e->next) {
        if ((st = set_piece(L, (int32_t)e->valuedouble, e->string, 0)))
            return st;
    }
    if ((st = tok_finish_vocab(tok, L->origin, L->err)) || (st = load_model_flags(L, model)))
        return st;
    if (merges && cJSON_IsArray(merges) && (st = load_merges(L, merges)))
        return st;
    if ((st = load_added(L, added)))
        return st;
    /* ids nobody names (holes) decode to nothing, like tokenizers' id_to_token = None */
    for (int32_t id = 0; id < n; id++) {
        if (!tok->pieces[id] && (st = set_piece(L, id, "", 2)))
            return st;
    }
    return QB_OK;
}

/* ---- normalizer / pre-tokenizer / decoder ----------------------------------- */

/* Grows an array of `size`-byte elements by one zeroed element; returns it or NULL. */
static void *grow(void **arr, size_t *n, size_t size)
{
    void *p = qb_realloc_array(*arr, *n + 1, size);
    if (!p)
        return NULL;
    *arr = p;
    memset((char *)p + *n * size, 0, size);
    return (char *)p + (*n)++ * size;
}

/* {"String": s} or {"Regex": r} */
static enum qb_status load_pattern(struct loader *L, const cJSON *obj, const char *field,
                                   struct tok_pattern *out)
{
    const cJSON *pat = cJSON_GetObjectItemCaseSensitive(obj, "pattern");
    const cJSON *s = cJSON_GetObjectItemCaseSensitive(pat, "String");
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(pat, "Regex");
    if (!cJSON_IsObject(pat) || (!cJSON_IsString(s) && !cJSON_IsString(r)))
        return bad(L, field, "expected {\"String\": ...} or {\"Regex\": ...}");
    const char *src = cJSON_IsString(s) ? s->valuestring : r->valuestring;
    return tok_pattern_compile(out, src, strlen(src), cJSON_IsString(s), L->origin, field, L->err);
}

static enum qb_status load_normalizer(struct loader *L, const cJSON *n, int depth)
{
    struct qb_tokenizer *tok = L->tok;
    if (!n || cJSON_IsNull(n))
        return QB_OK;
    const char *type = type_of(n);
    if (!cJSON_IsObject(n) || !type)
        return bad(L, "normalizer", "expected null or an object with a \"type\"");
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(n, "normalizers");
        if (!cJSON_IsArray(list) || depth > 8)
            return bad(L, "normalizer.normalizers", "expected an array");
        for (const cJSON *c = list->child; c; c = c->next) {
            enum qb_status st = load_normalizer(L, c, depth + 1);
            if (st)
                return st;
        }
        return QB_OK;
    }
    if (strcmp(type, "Prepend") == 0 || strcmp(type, "Replace") == 0) {
        struct tok_normalizer *z = grow((void **)&tok->norms, &tok->n_norms, sizeof(*z));
        if (!z)
            return oom(L);
        int prepend = strcmp(type, "Prepend") == 0;
        const char *key = prepend ? "prepend" : "content";
        const cJSON *text = cJSON_GetObjectItemCaseSensitive(n, key);
        if (!cJSON_IsString(text))
            return bad(L, prepend ? "normalizer.prepend" : "normalizer.content",
                       "expected a string");
        z->kind = prepend ? TOK_NORM_PREPEND : TOK_NORM_REPLACE;
        z->text_len = strlen(text->valuestring);
        z->text = dup_bytes(text->valuestring, z->text_len);
        if (!z->text)
            return oom(L);
        return prepend ? QB_OK : load_pattern(L, n, "normalizer.pattern", &z->pat);
    }
    if (strcmp(type, "NFC") == 0) {
        struct tok_normalizer *z = grow((void **)&tok->norms, &tok->n_norms, sizeof(*z));
        if (!z)
            return oom(L);
        z->kind = TOK_NORM_NFC;
        return QB_OK;
    }
    return unsupported(L, "normalizer.type", type, "Sequence, Prepend, Replace, NFC");
}

static enum qb_status parse_behavior(struct loader *L, const cJSON *obj, enum tok_behavior *out)
{
    static const struct {
        const char *name;
        enum tok_behavior b;
    } names[] = {
        {"Removed", TOK_SPLIT_REMOVED},
        {"Isolated", TOK_SPLIT_ISOLATED},
        {"MergedWithPrevious", TOK_SPLIT_MERGED_WITH_PREVIOUS},
        {"MergedWithNext", TOK_SPLIT_MERGED_WITH_NEXT},
        {"Contiguous", TOK_SPLIT_CONTIGUOUS},
    };
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, "behavior");
    if (!cJSON_IsString(v))
        return bad(L, "pre_tokenizer.behavior", "expected a string");
    for (size_t i = 0; i < QB_ARRAY_LEN(names); i++) {
        if (strcmp(v->valuestring, names[i].name) == 0) {
            *out = names[i].b;
            return QB_OK;
        }
    }
    return unsupported(L, "pre_tokenizer.behavior", v->valuestring,
                       "Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous");
}

/* Metaspace's replacement char and prepend scheme (pre-tokenizer and decoder). */
static enum qb_status parse_metaspace(struct loader *L, const cJSON *obj, const char *field,
                                      char *rep, size_t *rep_len, enum tok_prepend_scheme *scheme)
{
    const cJSON *r = cJSON_GetObjectItemCaseSensitive(obj, "replacement");
    if (!cJSON_IsString(r))
        return bad(L, field, "replacement: expected a one-character string");
    size_t n = strlen(r->valuestring);
    if (n == 0 || n > 4 || tok_utf8_valid_len((const unsigned char *)r->valuestring, n) != n)
        return bad(L, field, "replacement: expected a one-character string");
    memcpy(rep, r->valuestring, n);
    *rep_len = n;
    const cJSON *ps = cJSON_GetObjectItemCaseSensitive(obj, "prepend_scheme");
    if (cJSON_IsString(ps)) {
        if (strcmp(ps->valuestring, "always") == 0)
            *scheme = TOK_PREPEND_ALWAYS;
        else if (strcmp(ps->valuestring, "first") == 0)
            *scheme = TOK_PREPEND_FIRST;
        else if (strcmp(ps->valuestring, "never") == 0)
            *scheme = TOK_PREPEND_NEVER;
        else
            return unsupported(L, "prepend_scheme", ps->valuestring, "always, first, never");
        return QB_OK;
    }
    int add_prefix;
    enum qb_status st = get_bool(L, obj, "add_prefix_space", "add_prefix_space", 1, &add_prefix);
    *scheme = add_prefix ? TOK_PREPEND_ALWAYS : TOK_PREPEND_NEVER;
    return st;
}

static enum qb_status load_split(struct loader *L, const cJSON *p, struct tok_pretok *t)
{
    enum qb_status st;
    t->kind = TOK_PRE_SPLIT;
    if ((st = load_pattern(L, p, "pre_tokenizer.pattern", &t->pat)) ||
        (st = parse_behavior(L, p, &t->behavior)))
        return st;
    return get_bool(L, p, "invert", "pre_tokenizer.invert", 0, &t->invert);
}

static enum qb_status load_pretok(struct loader *L, const cJSON *p, int depth)
{
    struct qb_tokenizer *tok = L->tok;
    enum qb_status st;
    if (!p || cJSON_IsNull(p))
        return QB_OK;
    const char *type = type_of(p);
    if (!cJSON_IsObject(p) || !type)
        return bad(L, "pre_tokenizer", "expected null or an object with a \"type\"");
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(p, "pretokenizers");
        if (!cJSON_IsArray(list) || depth > 8)
            return bad(L, "pre_tokenizer.pretokenizers", "expected an array");
        for (const cJSON *c = list->child; c; c = c->next) {
            if ((st = load_pretok(L, c, depth + 1)))
                return st;
        }
        return QB_OK;
    }
    int known = strcmp(type, "Split") == 0 || strcmp(type, "ByteLevel") == 0 ||
                strcmp(type, "Metaspace") == 0 || strcmp(type, "Digits") == 0 ||
                strcmp(type, "Punctuation") == 0;
    if (!known)
        return unsupported(L, "pre_tokenizer.type", type,
                           "Sequence, Split, ByteLevel, Metaspace, Digits, Punctuation");
    struct tok_pretok *t = grow((void **)&tok->pretoks, &tok->n_pretoks, sizeof(*t));
    if (!t)
        return oom(L);
    if (strcmp(type, "Split") == 0)
        return load_split(L, p, t);
    if (strcmp(type, "Digits") == 0) {
        int individual;
        if ((st = get_bool(L, p, "individual_digits", "pre_tokenizer.individual_digits", 0,
                           &individual)))
            return st;
        const char *re = individual ? "\\p{N}" : "\\p{N}+";
        t->kind = TOK_PRE_SPLIT;
        t->behavior = TOK_SPLIT_ISOLATED;
        return tok_pattern_compile(&t->pat, re, strlen(re), 0, L->origin, "Digits", L->err);
    }
    if (strcmp(type, "Punctuation") == 0) {
        /* Rust char::is_ascii_punctuation || Unicode P*, one character per match */
        const char *re = "[\\p{P}!-/:-@\\[-`{-~]";
        t->kind = TOK_PRE_SPLIT;
        t->behavior = TOK_SPLIT_ISOLATED;
        if (cJSON_GetObjectItemCaseSensitive(p, "behavior") &&
            (st = parse_behavior(L, p, &t->behavior)))
            return st;
        return tok_pattern_compile(&t->pat, re, strlen(re), 0, L->origin, "Punctuation", L->err);
    }
    if (strcmp(type, "ByteLevel") == 0) {
        t->kind = TOK_PRE_BYTE_LEVEL;
        if ((st = get_bool(L, p, "add_prefix_space", "pre_tokenizer.add_prefix_space", 1,
                           &t->add_prefix_space)) ||
            (st = get_bool(L, p, "use_regex", "pre_tokenizer.use_regex", 1, &t->use_regex)))
            return st;
        if (!t->use_regex)
            return QB_OK;
        return tok_pattern_compile(&t->pat, TOK_GPT2_PATTERN, strlen(TOK_GPT2_PATTERN), 0,
                                   L->origin, "ByteLevel", L->err);
    }
    t->kind = TOK_PRE_METASPACE;
    if ((st = parse_metaspace(L, p, "pre_tokenizer", t->replacement, &t->replacement_len,
                              &t->prepend)) ||
        (st = get_bool(L, p, "split", "pre_tokenizer.split", 1, &t->split)))
        return st;
    return tok_pattern_compile(&t->pat, t->replacement, t->replacement_len, 1, L->origin,
                               "Metaspace", L->err);
}

static enum qb_status load_decoder(struct loader *L, const cJSON *d, int depth)
{
    struct qb_tokenizer *tok = L->tok;
    enum qb_status st;
    if (!d || cJSON_IsNull(d))
        return QB_OK;
    const char *type = type_of(d);
    if (!cJSON_IsObject(d) || !type)
        return bad(L, "decoder", "expected null or an object with a \"type\"");
    tok->has_decoder = 1;
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(d, "decoders");
        if (!cJSON_IsArray(list) || depth > 8)
            return bad(L, "decoder.decoders", "expected an array");
        for (const cJSON *c = list->child; c; c = c->next) {
            if ((st = load_decoder(L, c, depth + 1)))
                return st;
        }
        return QB_OK;
    }
    static const struct {
        const char *name;
        enum tok_dec_kind kind;
    } names[] = {
        {"ByteLevel", TOK_DEC_BYTE_LEVEL},
        {"Replace", TOK_DEC_REPLACE},
        {"ByteFallback", TOK_DEC_BYTE_FALLBACK},
        {"Fuse", TOK_DEC_FUSE},
        {"Strip", TOK_DEC_STRIP},
        {"Metaspace", TOK_DEC_METASPACE},
    };
    size_t k = 0;
    while (k < QB_ARRAY_LEN(names) && strcmp(type, names[k].name) != 0)
        k++;
    if (k == QB_ARRAY_LEN(names))
        return unsupported(L, "decoder.type", type,
                           "Sequence, ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace");
    struct tok_decoder *x = grow((void **)&tok->decoders, &tok->n_decoders, sizeof(*x));
    if (!x)
        return oom(L);
    x->kind = names[k].kind;
    if (x->kind == TOK_DEC_REPLACE) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(d, "content");
        if (!cJSON_IsString(c))
            return bad(L, "decoder.content", "expected a string");
        x->to_len = strlen(c->valuestring);
        x->to = dup_bytes(c->valuestring, x->to_len);
        if (!x->to)
            return oom(L);
        return load_pattern(L, d, "decoder.pattern", &x->pat);
    }
    if (x->kind == TOK_DEC_STRIP) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(d, "content");
        int64_t start = 0, stop = 0;
        size_t n = cJSON_IsString(c) ? strlen(c->valuestring) : 0;
        if (!n || tok_utf8_valid_len((const unsigned char *)c->valuestring, n) != n)
            return bad(L, "decoder.content", "expected a one-character string");
        x->strip_cp = tok_utf8_decode((const unsigned char *)c->valuestring, n);
        if ((st = get_int(L, cJSON_GetObjectItemCaseSensitive(d, "start"), "decoder.start", 0,
                          1 << 20, &start)) ||
            (st = get_int(L, cJSON_GetObjectItemCaseSensitive(d, "stop"), "decoder.stop", 0,
                          1 << 20, &stop)))
            return st;
        x->strip_start = (int)start;
        x->strip_stop = (int)stop;
        return QB_OK;
    }
    if (x->kind == TOK_DEC_METASPACE) {
        enum tok_prepend_scheme scheme;
        st = parse_metaspace(L, d, "decoder", x->replacement, &x->replacement_len, &scheme);
        x->prepend_first = scheme != TOK_PREPEND_NEVER;
        return st;
    }
    return QB_OK;
}

/* ---- post-processor ----------------------------------------------------------- */

static enum qb_status template_ids(struct loader *L, const cJSON *post, const cJSON *item,
                                   int after_seq)
{
    struct qb_tokenizer *tok = L->tok;
    const cJSON *sp = cJSON_GetObjectItemCaseSensitive(item, "SpecialToken");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(sp, "id");
    const cJSON *specials = cJSON_GetObjectItemCaseSensitive(post, "special_tokens");
    if (!cJSON_IsString(name))
        return bad(L, "post_processor.single", "expected SpecialToken or Sequence items");
    const cJSON *entry = cJSON_GetObjectItemCaseSensitive(specials, name->valuestring);
    const cJSON *ids = cJSON_GetObjectItemCaseSensitive(entry, "ids");
    if (!cJSON_IsArray(ids))
        return qb_err_set(L->err, QB_ERR_FORMAT,
                          "'%s': post_processor.special_tokens: no ids for '%.64s'", L->origin,
                          name->valuestring);
    for (const cJSON *v = ids->child; v; v = v->next) {
        int64_t id = 0;
        enum qb_status st =
            get_int(L, v, "post_processor.special_tokens[].ids", 0, tok->n_vocab - 1, &id);
        if (st)
            return st;
        int32_t **arr = after_seq ? &tok->suffix_ids : &tok->prefix_ids;
        size_t *n = after_seq ? &tok->n_suffix : &tok->n_prefix;
        int32_t *slot = grow((void **)arr, n, sizeof(int32_t));
        if (!slot)
            return oom(L);
        *slot = (int32_t)id;
    }
    return QB_OK;
}

static enum qb_status load_post(struct loader *L, const cJSON *p, int depth)
{
    if (!p || cJSON_IsNull(p))
        return QB_OK;
    const char *type = type_of(p);
    if (!cJSON_IsObject(p) || !type)
        return bad(L, "post_processor", "expected null or an object with a \"type\"");
    if (strcmp(type, "ByteLevel") == 0)
        return QB_OK; /* only trims offsets */
    if (strcmp(type, "Sequence") == 0) {
        const cJSON *list = cJSON_GetObjectItemCaseSensitive(p, "processors");
        if (!cJSON_IsArray(list) || depth > 8)
            return bad(L, "post_processor.processors", "expected an array");
        for (const cJSON *c = list->child; c; c = c->next) {
            enum qb_status st = load_post(L, c, depth + 1);
            if (st)
                return st;
        }
        return QB_OK;
    }
    if (strcmp(type, "TemplateProcessing") != 0)
        return unsupported(L, "post_processor.type", type,
                           "TemplateProcessing, ByteLevel, Sequence");
    const cJSON *single = cJSON_GetObjectItemCaseSensitive(p, "single");
    if (!cJSON_IsArray(single))
        return bad(L, "post_processor.single", "expected an array");
    int after_seq = 0;
    for (const cJSON *it = single->child; it; it = it->next) {
        if (cJSON_GetObjectItemCaseSensitive(it, "Sequence")) {
            after_seq = 1;
            continue;
        }
        enum qb_status st = template_ids(L, p, it, after_seq);
        if (st)
            return st;
    }
    return QB_OK;
}

/* ---- BOS / EOS ------------------------------------------------------------------ */

static int32_t find_added(const struct qb_tokenizer *tok, const char *const *names, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        for (size_t k = 0; k < tok->n_added; k++) {
            if (strcmp(tok->added[k].content, names[i]) == 0)
                return tok->added[k].id;
        }
    }
    return -1;
}

void tok_guess_bos_eos(struct qb_tokenizer *tok)
{
    static const char *const bos[] = {"<|begin_of_text|>", "<s>", "<bos>", "<|startoftext|>"};
    static const char *const eos[] = {"<|end_of_text|>", "</s>", "<eos>", "<|endoftext|>",
                                      "<|im_end|>"};
    if (tok->bos_id < 0)
        tok->bos_id = tok->n_prefix ? tok->prefix_ids[0] : find_added(tok, bos, 4);
    if (tok->eos_id < 0)
        tok->eos_id = find_added(tok, eos, 5);
}

/* ---- entry points ------------------------------------------------------------- */

enum qb_status qb_tok_load_hf_buffer(const char *json, size_t len, const char *origin,
                                     struct qb_tokenizer **out, struct qb_err *err)
{
    struct loader L = {.origin = origin ? origin : "tokenizer.json", .err = err};
    cJSON *root = NULL;
    enum qb_status st = QB_OK;
    *out = NULL;
    char *copy = malloc(len + 1);
    L.tok = calloc(1, sizeof(*L.tok));
    if (!copy || !L.tok) {
        st = oom(&L);
        goto out;
    }
    if (len)
        memcpy(copy, json, len);
    copy[len] = '\0';
    const char *end = NULL;
    root = cJSON_ParseWithOpts(copy, &end, 1);
    if (!root) {
        size_t at = end && end >= copy ? (size_t)(end - copy) : 0;
        st = qb_err_set(err, QB_ERR_FORMAT,
                        "'%s': not valid JSON (parse error near byte %zu of %zu)%s", L.origin, at,
                        len, at + 64 >= len ? ": the document ends early (truncated?)" : "");
        goto out;
    }
    if (!cJSON_IsObject(root)) {
        st = bad(&L, "(top level)", "expected a JSON object");
        goto out;
    }
    L.tok->bos_id = L.tok->eos_id = -1;
    if ((st = load_model(&L, root)) ||
        (st = load_normalizer(&L, cJSON_GetObjectItemCaseSensitive(root, "normalizer"), 0)) ||
        (st = load_pretok(&L, cJSON_GetObjectItemCaseSensitive(root, "pre_tokenizer"), 0)) ||
        (st = load_post(&L, cJSON_GetObjectItemCaseSensitive(root, "post_processor"), 0)) ||
        (st = load_decoder(&L, cJSON_GetObjectItemCaseSensitive(root, "decoder"), 0)) ||
        (st = tok_finish_added(L.tok, L.origin, err)))
        goto out;
    tok_guess_bos_eos(L.tok);
    *out = L.tok;
    L.tok = NULL;
out:
    cJSON_Delete(root);
    free(copy);
    qb_tok_free(L.tok);
    return st;
}

enum qb_status qb_tok_load_hf(const char *path, struct qb_tokenizer **out, struct qb_err *err)
{
    *out = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return qb_err_set(err, QB_ERR_IO, "cannot open '%s': %s", path, strerror(errno));
    enum qb_status st = QB_OK;
    char *buf = NULL;
    struct stat sb;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode)) {
        st = qb_err_set(err, QB_ERR_IO, "cannot read '%s': not a regular file", path);
        goto out;
    }
    if ((size_t)sb.st_size > TOK_JSON_MAX_BYTES) {
        st = qb_err_set(err, QB_ERR_FORMAT, "'%s' is %lld bytes, too large for a tokenizer.json",
                        path, (long long)sb.st_size);
        goto out;
    }
    size_t size = (size_t)sb.st_size;
    buf = malloc(size + 1);
    if (!buf) {
        st = qb_err_set(err, QB_ERR_NOMEM, "out of memory reading '%s'", path);
        goto out;
    }
    if (fread(buf, 1, size, f) != size) {
        st = qb_err_set(err, QB_ERR_IO, "cannot read '%s': %s", path,
                        ferror(f) ? strerror(errno) : "file shrank while reading");
        goto out;
    }
    st = qb_tok_load_hf_buffer(buf, size, path, out, err);
out:
    free(buf);
    fclose(f);
    return st;
}
