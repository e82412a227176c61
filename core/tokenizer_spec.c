/*
 * tokenizer_spec.c - qb_tok_create: a tokenizer from plain arrays (GGUF metadata).
 *
 * Builds the same struct qb_tokenizer the JSON loader builds, choosing the pipeline
 * a Hugging Face tokenizer.json of that family would have:
 *
 *   QB_TOK_BPE: added = control/user-defined/unknown tokens; pre-tokenizers =
 *               Split(regex, Isolated) for each regex, then ByteLevel without its
 *               own regex; model BPE (merge rank = index); decoder ByteLevel.
 *   QB_TOK_SPM: added = the same token types; normalizers = [Prepend "▁"] +
 *               Replace " " -> "▁"; model SPM (score merging, byte fallback);
 *               decoders = Replace "▁" -> " ", ByteFallback, Fuse, Strip(" ", 1, 0).
 *
 * Post-processing: BOS before and/or EOS after when add_bos/add_eos.
 */
#include <string.h>

#include "tokenizer_impl.h"

#define SPM_SPACE "\xE2\x96\x81" /* U+2581 LOWER ONE EIGHTH BLOCK */

static enum qb_status nomem(struct qb_err *err)
{
    return qb_err_set(err, QB_ERR_NOMEM, "out of memory building a tokenizer");
}

static char *dup_str(const char *s, size_t *len)
{
    *len = strlen(s);
    char *p = malloc(*len + 1);
    if (p)
        memcpy(p, s, *len + 1);
    return p;
}

static enum qb_status copy_vocab(struct qb_tokenizer *tok, const struct qb_tok_spec *spec,
                                 struct qb_err *err)
{
    enum qb_status st = tok_alloc_vocab(tok, spec->n_vocab, err);
    if (st)
        return st;
    for (int32_t id = 0; id < spec->n_vocab; id++) {
        if (!spec->pieces[id])
            return qb_err_set(err, QB_ERR_FORMAT, "tokenizer spec: token %d has no text", id);
        size_t len;
        tok->pieces[id] = dup_str(spec->pieces[id], &len);
        if (!tok->pieces[id])
            return nomem(err);
        if (len > UINT32_MAX / 2)
            return qb_err_set(err, QB_ERR_FORMAT, "tokenizer spec: token %d is too long", id);
        tok->piece_lens[id] = (uint32_t)len;
    }
    if (spec->scores) {
        tok->scores = qb_malloc_array((size_t)spec->n_vocab, sizeof(float));
        if (!tok->scores)
            return nomem(err);
        memcpy(tok->scores, spec->scores, (size_t)spec->n_vocab * sizeof(float));
    }
    return tok_finish_vocab(tok, "tokenizer spec", err);
}

static enum qb_status copy_merges(struct qb_tokenizer *tok, const struct qb_tok_spec *spec,
                                  struct qb_err *err)
{
    for (size_t i = 0; i < spec->n_merges; i++) {
        const char *m = spec->merges[i];
        const char *sp = m ? strchr(m, ' ') : NULL;
        if (!sp)
            return qb_err_set(err, QB_ERR_FORMAT,
                              "tokenizer spec: merges[%zu] is not \"left right\"", i);
        if (i > UINT32_MAX)
            return qb_err_set(err, QB_ERR_FORMAT, "tokenizer spec: too many merges");
        enum qb_status st = tok_add_merge(tok, m, (size_t)(sp - m), sp + 1, strlen(sp + 1),
                                          (uint32_t)i, "tokenizer spec", err);
        if (st)
            return st;
    }
    return QB_OK;
}

static enum qb_status copy_added(struct qb_tokenizer *tok, const struct qb_tok_spec *spec,
                                 struct qb_err *err)
{
    if (!spec->types)
        return QB_OK;
    size_t n = 0;
    for (int32_t id = 0; id < spec->n_vocab; id++) {
        int32_t t = spec->types[id];
        n += (t == QB_TOK_TYPE_UNKNOWN || t == QB_TOK_TYPE_CONTROL ||
              t == QB_TOK_TYPE_USER_DEFINED) &&
             tok->piece_lens[id] > 0;
    }
    if (!n)
        return QB_OK;
    tok->added = qb_calloc_array(n, sizeof(*tok->added));
    if (!tok->added)
        return nomem(err);
    for (int32_t id = 0; id < spec->n_vocab; id++) {
        int32_t t = spec->types[id];
        if (!(t == QB_TOK_TYPE_UNKNOWN || t == QB_TOK_TYPE_CONTROL ||
              t == QB_TOK_TYPE_USER_DEFINED) ||
            tok->piece_lens[id] == 0)
            continue;
        struct tok_added *a = &tok->added[tok->n_added++];
        a->content = dup_str(tok->pieces[id], &a->len);
        if (!a->content)
            return nomem(err);
        a->id = id;
        a->special = t != QB_TOK_TYPE_USER_DEFINED;
        tok->is_added[id] = 1;
    }
    return QB_OK;
}

static enum qb_status bpe_pipeline(struct qb_tokenizer *tok, const struct qb_tok_spec *spec,
                                   struct qb_err *err)
{
    size_t n = spec->n_split_regex + 1;
    enum qb_status st;
    tok->pretoks = qb_calloc_array(n, sizeof(*tok->pretoks));
    tok->decoders = qb_calloc_array(1, sizeof(*tok->decoders));
    if (!tok->pretoks || !tok->decoders)
        return nomem(err);
    for (size_t i = 0; i < spec->n_split_regex; i++) {
        struct tok_pretok *p = &tok->pretoks[tok->n_pretoks++];
        p->kind = TOK_PRE_SPLIT;
        p->behavior = TOK_SPLIT_ISOLATED;
        const char *re = spec->split_regex[i] ? spec->split_regex[i] : "";
        if ((st = tok_pattern_compile(&p->pat, re, strlen(re), 0, "tokenizer spec", "split_regex",
                                      err)))
            return st;
    }
    struct tok_pretok *bl = &tok->pretoks[tok->n_pretoks++];
    bl->kind = TOK_PRE_BYTE_LEVEL;
    bl->use_regex = spec->n_split_regex == 0;
    if (bl->use_regex &&
        (st = tok_pattern_compile(&bl->pat, TOK_GPT2_PATTERN, strlen(TOK_GPT2_PATTERN), 0,
                                  "tokenizer spec", "ByteLevel", err)))
        return st;
    tok->decoders[tok->n_decoders++].kind = TOK_DEC_BYTE_LEVEL;
    tok->has_decoder = 1;
    tok->model = TOK_MODEL_BPE;
    tok->ignore_merges = spec->ignore_merges != 0;
    return copy_merges(tok, spec, err);
}

static enum qb_status spm_pipeline(struct qb_tokenizer *tok, const struct qb_tok_spec *spec,
                                   struct qb_err *err)
{
    enum qb_status st;
    tok->model = TOK_MODEL_SPM;
    tok->norms = qb_calloc_array(2, sizeof(*tok->norms));
    tok->decoders = qb_calloc_array(4, sizeof(*tok->decoders));
    if (!tok->norms || !tok->decoders)
        return nomem(err);
    size_t len;
    if (spec->add_space_prefix) {
        struct tok_normalizer *p = &tok->norms[tok->n_norms++];
        p->kind = TOK_NORM_PREPEND;
        if (!(p->text = dup_str(SPM_SPACE, &p->text_len)))
            return nomem(err);
    }
    struct tok_normalizer *r = &tok->norms[tok->n_norms++];
    r->kind = TOK_NORM_REPLACE;
    if (!(r->text = dup_str(SPM_SPACE, &r->text_len)))
        return nomem(err);
    if ((st = tok_pattern_compile(&r->pat, " ", 1, 1, "tokenizer spec", "normalizer", err)))
        return st;

    struct tok_decoder *d = &tok->decoders[tok->n_decoders++];
    d->kind = TOK_DEC_REPLACE;
    if (!(d->to = dup_str(" ", &len)))
        return nomem(err);
    d->to_len = len;
    if ((st = tok_pattern_compile(&d->pat, SPM_SPACE, 3, 1, "tokenizer spec", "decoder", err)))
        return st;
    tok->decoders[tok->n_decoders++].kind = TOK_DEC_BYTE_FALLBACK;
    tok->decoders[tok->n_decoders++].kind = TOK_DEC_FUSE;
    d = &tok->decoders[tok->n_decoders++];
    d->kind = TOK_DEC_STRIP;
    d->strip_cp = ' ';
    d->strip_start = spec->add_space_prefix ? 1 : 0;
    tok->has_decoder = 1;
    return QB_OK;
}

static enum qb_status post_ids(struct qb_tokenizer *tok, const struct qb_tok_spec *spec,
                               struct qb_err *err)
{
    if (spec->add_bos && spec->bos_id >= 0) {
        tok->prefix_ids = malloc(sizeof(int32_t));
        if (!tok->prefix_ids)
            return nomem(err);
        tok->prefix_ids[0] = spec->bos_id;
        tok->n_prefix = 1;
    }
    if (spec->add_eos && spec->eos_id >= 0) {
        tok->suffix_ids = malloc(sizeof(int32_t));
        if (!tok->suffix_ids)
            return nomem(err);
        tok->suffix_ids[0] = spec->eos_id;
        tok->n_suffix = 1;
    }
    return QB_OK;
}

static enum qb_status check_spec(const struct qb_tok_spec *spec, struct qb_err *err)
{
    if (spec->kind != QB_TOK_BPE && spec->kind != QB_TOK_SPM)
        return qb_err_set(err, QB_ERR_UNSUPPORTED, "tokenizer spec: unknown kind %d",
                          (int)spec->kind);
    if (spec->n_vocab <= 0 || !spec->pieces)
        return qb_err_set(err, QB_ERR_FORMAT, "tokenizer spec: empty vocabulary");
    if ((spec->n_merges && !spec->merges) || (spec->n_split_regex && !spec->split_regex))
        return qb_err_set(err, QB_ERR_FORMAT, "tokenizer spec: merges or regex list missing");
    const int32_t ids[3] = {spec->bos_id, spec->eos_id, spec->unk_id};
    for (int i = 0; i < 3; i++) {
        if (ids[i] < -1 || ids[i] >= spec->n_vocab)
            return qb_err_set(err, QB_ERR_FORMAT,
                              "tokenizer spec: %s id %d is outside the vocabulary (0..%d)",
                              i == 0   ? "bos"
                              : i == 1 ? "eos"
                                       : "unk",
                              ids[i], spec->n_vocab - 1);
    }
    return QB_OK;
}

enum qb_status qb_tok_create(const struct qb_tok_spec *spec, struct qb_tokenizer **out,
                             struct qb_err *err)
{
    *out = NULL;
    enum qb_status st = check_spec(spec, err);
    if (st)
        return st;
    struct qb_tokenizer *tok = calloc(1, sizeof(*tok));
    if (!tok)
        return nomem(err);
    tok->unk_id = spec->unk_id;
    tok->bos_id = spec->bos_id;
    tok->eos_id = spec->eos_id;
    if ((st = copy_vocab(tok, spec, err)) || (st = copy_added(tok, spec, err)))
        goto out;
    st = spec->kind == QB_TOK_BPE ? bpe_pipeline(tok, spec, err) : spm_pipeline(tok, spec, err);
    if (!st)
        st = post_ids(tok, spec, err);
    if (!st)
        st = tok_finish_added(tok, "tokenizer spec", err);
out:
    if (st) {
        qb_tok_free(tok);
        return st;
    }
    *out = tok;
    return QB_OK;
}
