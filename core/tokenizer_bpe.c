/*
 * tokenizer_bpe.c - vocabulary hash maps and the two merge algorithms.
 *
 * Vocabulary: an open-addressing table of ids keyed by the piece bytes (FNV-1a),
 * pieces owned by the tokenizer. Merges: a table keyed by the (left id, right id)
 * pair holding the merge rank and the merged id.
 *
 * BPE (tokenizer.json, GGUF "gpt2"): exactly `tokenizers`' Word::merge_all. The word
 * starts as one symbol per character (byte-fallback tokens or unk when a character
 * is not in the vocab); a min-heap ordered by (rank, position) pops the next merge;
 * an entry is stale unless the pair at its position still merges into the same id.
 * With ignore_merges a word that is itself a vocab entry is one token.
 *
 * SPM (GGUF "llama"): llama.cpp's llm_tokenizer_spm. Symbols are characters; the
 * adjacent pair whose concatenation is a vocab entry with the highest score merges
 * first (ties: leftmost); characters left unmerged and not in the vocab become
 * <0xNN> byte tokens.
 *
 * Both run in O(n log n) per word, which matters for SentencePiece-style
 * tokenizers without a pre-tokenizer, where a whole text is one word.
 */
#include <string.h>

#include "tokenizer_impl.h"

/* ---- string map ------------------------------------------------------------- */

static uint64_t hash_bytes(const char *s, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) {
        h ^= (unsigned char)s[i];
        h *= 1099511628211ull;
    }
    return h ^ (h >> 29);
}

int32_t tok_vocab_find(const struct qb_tokenizer *tok, const char *s, size_t len)
{
    const struct tok_strmap *m = &tok->vocab;
    if (!m->cap)
        return -1;
    size_t mask = m->cap - 1;
    for (size_t i = hash_bytes(s, len) & mask;; i = (i + 1) & mask) {
        uint32_t v = m->slots[i];
        if (!v)
            return -1;
        uint32_t id = v - 1;
        if (m->key_lens[id] == len && memcmp(m->keys[id], s, len) == 0)
            return (int32_t)id;
    }
}

enum qb_status tok_alloc_vocab(struct qb_tokenizer *tok, int32_t n, struct qb_err *err)
{
    tok->n_vocab = n;
    tok->pieces = qb_calloc_array((size_t)n, sizeof(*tok->pieces));
    tok->piece_lens = qb_calloc_array((size_t)n, sizeof(*tok->piece_lens));
    tok->is_added = qb_calloc_array((size_t)n, 1);
    if (!tok->pieces || !tok->piece_lens || !tok->is_added)
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory for a vocabulary of %d tokens", n);
    return QB_OK;
}

/* Inserts every model piece (not the added-only ones) into the string map. */
static enum qb_status build_strmap(struct qb_tokenizer *tok, struct qb_err *err)
{
    size_t cap = 16;
    while (cap < (size_t)tok->n_vocab * 2)
        cap *= 2;
    struct tok_strmap *m = &tok->vocab;
    m->slots = qb_calloc_array(cap, sizeof(*m->slots));
    if (!m->slots)
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory for the vocabulary index");
    m->cap = cap;
    m->keys = (const char *const *)tok->pieces;
    m->key_lens = tok->piece_lens;
    for (int32_t id = 0; id < tok->n_vocab; id++) {
        if (!tok->pieces[id] || tok->is_added[id] == 2) /* not in the model vocab */
            continue;
        size_t i = hash_bytes(tok->pieces[id], tok->piece_lens[id]) & (cap - 1);
        while (m->slots[i]) {
            uint32_t o = m->slots[i] - 1;
            if (m->key_lens[o] == tok->piece_lens[id] &&
                memcmp(m->keys[o], tok->pieces[id], tok->piece_lens[id]) == 0)
                break; /* duplicate string: the first id keeps it */
            i = (i + 1) & (cap - 1);
        }
        if (!m->slots[i])
            m->slots[i] = (uint32_t)id + 1;
    }
    return QB_OK;
}

enum qb_status tok_finish_vocab(struct qb_tokenizer *tok, const char *origin, struct qb_err *err)
{
    (void)origin;
    enum qb_status st = build_strmap(tok, err);
    if (st)
        return st;
    for (int b = 0; b < 256; b++) {
        char name[8];
        snprintf(name, sizeof(name), "<0x%02X>", b);
        tok->byte_ids[b] = tok_vocab_find(tok, name, 6);
    }
    for (int b = 0; b < 256; b++) {
        uint32_t cp = tok_byte_to_cp((uint8_t)b);
        tok->bl_enc_len[b] = (uint8_t)tok_utf8_encode(cp, tok->bl_enc[b]);
    }
    return QB_OK;
}

/* ---- pair map --------------------------------------------------------------- */

static uint64_t pair_key(int32_t a, int32_t b)
{
    return (((uint64_t)(uint32_t)a << 32) | (uint32_t)b) + 1;
}

static size_t pair_slot(uint64_t key, size_t mask)
{
    uint64_t h = key * 0x9E3779B97F4A7C15ull;
    return (size_t)(h ^ (h >> 32)) & mask;
}

static int pair_find(const struct tok_pairmap *m, int32_t a, int32_t b, uint32_t *rank,
                     int32_t *merged)
{
    if (!m->cap)
        return 0;
    uint64_t key = pair_key(a, b);
    size_t mask = m->cap - 1;
    for (size_t i = pair_slot(key, mask);; i = (i + 1) & mask) {
        if (!m->slots[i].key)
            return 0;
        if (m->slots[i].key == key) {
            *rank = m->slots[i].rank;
            *merged = m->slots[i].merged;
            return 1;
        }
    }
}

static enum qb_status pair_grow(struct tok_pairmap *m)
{
    size_t cap = m->cap ? m->cap * 2 : 1024;
    struct tok_pair_slot *slots = qb_calloc_array(cap, sizeof(*slots));
    if (!slots)
        return QB_ERR_NOMEM;
    for (size_t i = 0; i < m->cap; i++) {
        if (!m->slots[i].key)
            continue;
        size_t j = pair_slot(m->slots[i].key, cap - 1);
        while (slots[j].key)
            j = (j + 1) & (cap - 1);
        slots[j] = m->slots[i];
    }
    free(m->slots);
    m->slots = slots;
    m->cap = cap;
    return QB_OK;
}

enum qb_status tok_add_merge(struct qb_tokenizer *tok, const char *a, size_t alen, const char *b,
                             size_t blen, uint32_t rank, const char *origin, struct qb_err *err)
{
    int32_t ia = tok_vocab_find(tok, a, alen);
    int32_t ib = tok_vocab_find(tok, b, blen);
    if (ia < 0 || ib < 0)
        return qb_err_set(
            err, QB_ERR_FORMAT, "'%s': model.merges[%u]: token '%.*s' is not in the vocabulary",
            origin, rank, (int)(ia < 0 ? QB_MIN(alen, 64) : QB_MIN(blen, 64)), ia < 0 ? a : b);
    char stackbuf[256];
    char *joined = alen + blen <= sizeof(stackbuf) ? stackbuf : malloc(alen + blen);
    if (!joined)
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory loading '%s'", origin);
    memcpy(joined, a, alen);
    memcpy(joined + alen, b, blen);
    int32_t merged = tok_vocab_find(tok, joined, alen + blen);
    if (joined != stackbuf)
        free(joined);
    if (merged < 0)
        return qb_err_set(err, QB_ERR_FORMAT,
                          "'%s': model.merges[%u]: the merged token '%.*s%.*s' is not in the "
                          "vocabulary",
                          origin, rank, (int)QB_MIN(alen, 64), a, (int)QB_MIN(blen, 64), b);
    struct tok_pairmap *m = &tok->merges;
    if ((m->count + 1) * 2 > m->cap && pair_grow(m))
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory loading '%s'", origin);
    uint64_t key = pair_key(ia, ib);
    size_t i = pair_slot(key, m->cap - 1);
    while (m->slots[i].key && m->slots[i].key != key)
        i = (i + 1) & (m->cap - 1);
    if (!m->slots[i].key)
        m->count++;
    m->slots[i] = (struct tok_pair_slot){key, rank, merged};
    return QB_OK;
}

/* ---- ids -------------------------------------------------------------------- */

enum qb_status tok_ids_push(struct tok_ids *ids, int32_t id)
{
    if (ids->n == ids->cap) {
        size_t cap = ids->cap ? ids->cap * 2 : 64;
        int32_t *v = qb_realloc_array(ids->v, cap, sizeof(*v));
        if (!v)
            return QB_ERR_NOMEM;
        ids->v = v;
        ids->cap = cap;
    }
    ids->v[ids->n++] = id;
    return QB_OK;
}

/* ---- merging ---------------------------------------------------------------- */

struct sym {
    int32_t id;
    uint32_t off, len; /* bytes of the word; len 0 = merged away */
    int32_t prev, next;
};

struct cand {
    double key;   /* BPE: rank; SPM: -score */
    uint32_t pos; /* left symbol */
    int32_t merged;
    uint32_t size; /* SPM: bytes of the concatenation */
};

struct heap {
    struct cand *v;
    size_t n, cap;
};

static int cand_less(const struct cand *a, const struct cand *b)
{
    return a->key < b->key || (a->key == b->key && a->pos < b->pos);
}

static enum qb_status heap_push(struct heap *h, struct cand c)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        struct cand *v = qb_realloc_array(h->v, cap, sizeof(*v));
        if (!v)
            return QB_ERR_NOMEM;
        h->v = v;
        h->cap = cap;
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!cand_less(&c, &h->v[p]))
            break;
        h->v[i] = h->v[p];
        i = p;
    }
    h->v[i] = c;
    return QB_OK;
}

static struct cand heap_pop(struct heap *h)
{
    struct cand top = h->v[0];
    struct cand last = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        const struct cand *best = &last;
        if (l < h->n && cand_less(&h->v[l], best)) {
            m = l;
            best = &h->v[l];
        }
        if (r < h->n && cand_less(&h->v[r], best))
            m = r;
        if (m == i)
            break;
        h->v[i] = h->v[m];
        i = m;
    }
    if (h->n)
        h->v[i] = last;
    return top;
}

struct word {
    struct sym *syms;
    size_t n, cap;
};

static enum qb_status word_add(struct word *w, int32_t id, uint32_t off, uint32_t len)
{
    if (w->n == w->cap) {
        size_t cap = w->cap ? w->cap * 2 : 32;
        struct sym *v = qb_realloc_array(w->syms, cap, sizeof(*v));
        if (!v)
            return QB_ERR_NOMEM;
        w->syms = v;
        w->cap = cap;
    }
    int32_t i = (int32_t)w->n;
    w->syms[w->n++] = (struct sym){id, off, len, i - 1, -1};
    if (i > 0)
        w->syms[i - 1].next = i;
    return QB_OK;
}

static enum qb_status bpe_push_pair(const struct qb_tokenizer *tok, struct heap *h,
                                    const struct word *w, int32_t left)
{
    if (left < 0 || w->syms[left].next < 0)
        return QB_OK;
    uint32_t rank;
    int32_t merged;
    if (!pair_find(&tok->merges, w->syms[left].id, w->syms[w->syms[left].next].id, &rank, &merged))
        return QB_OK;
    return heap_push(h, (struct cand){rank, (uint32_t)left, merged, 0});
}

static void merge_into_left(struct word *w, int32_t left, int32_t merged)
{
    struct sym *l = &w->syms[left];
    struct sym *r = &w->syms[l->next];
    l->id = merged;
    l->len += r->len;
    r->len = 0;
    l->next = r->next;
    if (r->next >= 0)
        w->syms[r->next].prev = left;
}

static enum qb_status bpe_merge_all(const struct qb_tokenizer *tok, struct word *w, struct heap *h)
{
    enum qb_status st = QB_OK;
    h->n = 0;
    for (size_t i = 0; i + 1 < w->n && !st; i++)
        st = bpe_push_pair(tok, h, w, (int32_t)i);
    while (!st && h->n) {
        struct cand c = heap_pop(h);
        struct sym *l = &w->syms[c.pos];
        if (l->len == 0 || l->next < 0)
            continue;
        uint32_t rank;
        int32_t merged;
        if (!pair_find(&tok->merges, l->id, w->syms[l->next].id, &rank, &merged) ||
            merged != c.merged)
            continue;
        merge_into_left(w, (int32_t)c.pos, c.merged);
        st = bpe_push_pair(tok, h, w, w->syms[c.pos].prev);
        if (!st)
            st = bpe_push_pair(tok, h, w, (int32_t)c.pos);
    }
    return st;
}

/* One character's symbol(s), as BPE::merge_word does it (unk and byte fallback). */
struct unk_state {
    int pending;
    uint32_t off, len;
};

static enum qb_status bpe_add_char(const struct qb_tokenizer *tok, struct word *w,
                                   struct unk_state *unk, const char *piece, size_t piece_len,
                                   uint32_t off, uint32_t byte_len)
{
    enum qb_status st;
    int32_t id = tok_vocab_find(tok, piece, piece_len);
    if (id >= 0) {
        if (unk->pending) {
            st = word_add(w, tok->unk_id, unk->off, unk->len);
            if (st)
                return st;
            unk->pending = 0;
        }
        return word_add(w, id, off, byte_len);
    }
    if (tok->byte_fallback) {
        int all = 1;
        for (size_t i = 0; i < piece_len; i++)
            all &= tok->byte_ids[(unsigned char)piece[i]] >= 0;
        if (all) {
            /* like tokenizers, a pending unk stays pending across byte tokens */
            for (size_t i = 0; i < piece_len; i++) {
                st = word_add(w, tok->byte_ids[(unsigned char)piece[i]], off, 1);
                if (st)
                    return st;
            }
            return QB_OK;
        }
    }
    if (tok->unk_id < 0)
        return QB_OK; /* no unk token: the character is dropped, as tokenizers does */
    if (unk->pending && tok->fuse_unk) {
        unk->len += byte_len;
        return QB_OK;
    }
    if (unk->pending) {
        st = word_add(w, tok->unk_id, unk->off, unk->len);
        if (st)
            return st;
    }
    *unk = (struct unk_state){1, off, byte_len};
    return QB_OK;
}

static enum qb_status bpe_word(const struct qb_tokenizer *tok, const char *s, size_t n,
                               struct word *w, struct tok_buf *tmp)
{
    struct unk_state unk = {0};
    enum qb_status st = QB_OK;
    w->n = 0;
    int affix = tok->subword_prefix || tok->word_suffix;
    for (size_t i = 0; i < n && !st;) {
        size_t cl = tok_utf8_valid_len((const unsigned char *)s + i, n - i);
        if (!cl)
            cl = 1;
        const char *piece = s + i;
        size_t piece_len = cl;
        if (affix) {
            tmp->len = 0;
            if (i > 0 && tok->subword_prefix)
                st = tok_buf_put(tmp, tok->subword_prefix, tok->subword_prefix_len);
            if (!st)
                st = tok_buf_put(tmp, s + i, cl);
            if (!st && i + cl == n && tok->word_suffix)
                st = tok_buf_put(tmp, tok->word_suffix, tok->word_suffix_len);
            if (st)
                break;
            piece = tmp->p;
            piece_len = tmp->len;
        }
        st = bpe_add_char(tok, w, &unk, piece, piece_len, (uint32_t)i, (uint32_t)cl);
        i += cl;
    }
    if (!st && unk.pending)
        st = word_add(w, tok->unk_id, unk.off, unk.len);
    return st;
}

/* ---- SPM (llama.cpp) -------------------------------------------------------- */

static enum qb_status spm_push_pair(const struct qb_tokenizer *tok, struct heap *h,
                                    const struct word *w, const char *s, int32_t left)
{
    if (left < 0 || w->syms[left].next < 0)
        return QB_OK;
    const struct sym *l = &w->syms[left];
    const struct sym *r = &w->syms[l->next];
    int32_t id = tok_vocab_find(tok, s + l->off, (size_t)l->len + r->len);
    if (id < 0)
        return QB_OK;
    float score = tok->scores ? tok->scores[id] : 0.0f;
    return heap_push(h, (struct cand){-(double)score, (uint32_t)left, id, l->len + r->len});
}

static enum qb_status spm_tokenize(const struct qb_tokenizer *tok, const char *s, size_t n,
                                   struct word *w, struct heap *h, struct tok_ids *out)
{
    enum qb_status st = QB_OK;
    w->n = 0;
    h->n = 0;
    for (size_t i = 0; i < n && !st;) {
        size_t cl = tok_utf8_valid_len((const unsigned char *)s + i, n - i);
        if (!cl)
            cl = 1;
        st = word_add(w, -1, (uint32_t)i, (uint32_t)cl);
        i += cl;
    }
    for (size_t i = 0; i + 1 < w->n && !st; i++)
        st = spm_push_pair(tok, h, w, s, (int32_t)i);
    while (!st && h->n) {
        struct cand c = heap_pop(h);
        struct sym *l = &w->syms[c.pos];
        if (l->len == 0 || l->next < 0 || w->syms[l->next].len == 0 ||
            l->len + w->syms[l->next].len != c.size)
            continue;
        merge_into_left(w, (int32_t)c.pos, c.merged);
        st = spm_push_pair(tok, h, w, s, w->syms[c.pos].prev);
        if (!st)
            st = spm_push_pair(tok, h, w, s, (int32_t)c.pos);
    }
    for (int32_t i = w->n ? 0 : -1; i >= 0 && !st; i = w->syms[i].next) {
        const struct sym *y = &w->syms[i];
        int32_t id = tok_vocab_find(tok, s + y->off, y->len);
        if (id >= 0) {
            st = tok_ids_push(out, id);
            continue;
        }
        for (uint32_t k = 0; k < y->len && !st; k++) {
            int32_t b = tok->byte_ids[(unsigned char)s[y->off + k]];
            if (b < 0)
                b = tok->unk_id;
            if (b >= 0)
                st = tok_ids_push(out, b);
        }
    }
    return st;
}

/* ---- entry ------------------------------------------------------------------ */

void tok_merge_scratch_release(struct tok_merge_scratch *s)
{
    free(s->syms);
    free(s->heap);
    free(s->tmp.p);
    memset(s, 0, sizeof(*s));
}

enum qb_status tok_model_tokenize(const struct qb_tokenizer *tok, const char *s, size_t n,
                                  struct tok_merge_scratch *scratch, struct tok_ids *out,
                                  struct qb_err *err)
{
    if (n == 0)
        return QB_OK;
    if (n > UINT32_MAX / 2)
        return qb_err_set(err, QB_ERR_RANGE, "a single pre-token of %zu bytes is too long", n);
    struct word w = {scratch->syms, 0, scratch->syms_cap};
    struct heap h = {scratch->heap, 0, scratch->heap_cap};
    enum qb_status st = QB_OK;
    if (tok->model == TOK_MODEL_SPM) {
        st = spm_tokenize(tok, s, n, &w, &h, out);
        goto out;
    }
    if (tok->ignore_merges) {
        int32_t id = tok_vocab_find(tok, s, n);
        if (id >= 0) {
            st = tok_ids_push(out, id);
            goto out;
        }
    }
    st = bpe_word(tok, s, n, &w, &scratch->tmp);
    if (!st)
        st = bpe_merge_all(tok, &w, &h);
    for (int32_t i = w.n ? 0 : -1; i >= 0 && !st; i = w.syms[i].next)
        st = tok_ids_push(out, w.syms[i].id);
out:
    scratch->syms = w.syms;
    scratch->syms_cap = w.cap;
    scratch->heap = h.v;
    scratch->heap_cap = h.cap;
    if (st && st != QB_ERR_RANGE)
        st = qb_err_set(err, QB_ERR_NOMEM, "out of memory while tokenizing");
    return st;
}
