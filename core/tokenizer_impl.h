/*
 * tokenizer_impl.h - the inside of struct qb_tokenizer, shared by the tokenizer's files.
 *
 * A tokenizer is the Hugging Face `tokenizers` pipeline reduced to what BPE
 * checkpoints use, stored as flat tables:
 *
 *   text --(lossy UTF-8)--> added-token split (raw) --> normalizers --> added-token
 *   split (normalized) --> pre-tokenizers --> BPE model --> post-processor ids
 *
 * Each stage works on a list of pieces (struct tok_pieces): byte ranges of one
 * shared buffer, plus the id of an added token when the piece is one. The
 * model turns every remaining text piece into ids on its own (no merge crosses
 * a piece boundary), exactly as `tokenizers` does.
 *
 * Files:
 *   tokenizer.c        encode pipeline, accessors, free
 *   tokenizer_decode.c the decoder chain
 *   tokenizer_nfc.c    NFC normalizer (tables: tokenizer_nfc_tables.c, generated)
 *   tokenizer_json.c   tokenizer.json -> this struct (cJSON)
 *   tokenizer_spec.c   qb_tok_create: the same struct from plain arrays (GGUF)
 *   tokenizer_bpe.c    string->id hash map, pair->merge hash map, BPE and SPM merging
 *   tokenizer_regex.c  onig-compatible patterns on PCRE2, find_iter, split behaviours
 *   tokenizer_utf8.c   UTF-8 helpers and the byte-level alphabet
 *
 * Everything here is immutable after loading; encode keeps its scratch state
 * (match data, JIT stack, piece buffers) on the caller's side, so one loaded
 * tokenizer serves any number of threads.
 */
#ifndef QB_TOKENIZER_IMPL_H
#define QB_TOKENIZER_IMPL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stddef.h>
#include <stdint.h>

#include "qb_common.h"
#include "tokenizer.h"

/* ---- UTF-8 (tokenizer_utf8.c) ------------------------------------------------ */

/* Length in bytes of the valid UTF-8 sequence at s[0..n), 0 when invalid or empty. */
size_t tok_utf8_valid_len(const unsigned char *s, size_t n);
/* Code point of the valid sequence at s (length from tok_utf8_valid_len). */
uint32_t tok_utf8_decode(const unsigned char *s, size_t len);
/* Code point of the character ending at s[end] (U+FFFD when invalid); *len its bytes. */
uint32_t tok_utf8_before(const char *s, size_t end, size_t *len);
/* Writes cp as UTF-8 into out (>= 4 bytes); returns the length. */
size_t tok_utf8_encode(uint32_t cp, char *out);
/* Appends text to *buf as valid UTF-8: each maximal invalid subpart becomes U+FFFD,
 * as Rust's String::from_utf8_lossy and Python's decode('utf-8', 'replace') do. */
struct tok_buf {
    char *p;
    size_t len, cap;
};
enum qb_status tok_buf_put(struct tok_buf *b, const void *data, size_t n);
enum qb_status tok_utf8_lossy(struct tok_buf *out, const char *text, size_t len);
/* The GPT-2 byte-level alphabet: byte -> code point, and back (-1 when not in it). */
uint32_t tok_byte_to_cp(uint8_t b);
int tok_cp_to_byte(uint32_t cp);
/* Rust char::is_whitespace (Unicode White_Space). */
int tok_is_whitespace(uint32_t cp);

/* ---- NFC (tokenizer_nfc.c, tables in tokenizer_nfc_tables.c) -------------------- */

/* Appends the NFC form of the valid UTF-8 s[0..n) to out. */
enum qb_status tok_nfc(const char *s, size_t n, struct tok_buf *out);

struct tok_ccc_range {
    uint32_t first, last;
    uint8_t ccc;
};
struct tok_decomp {
    uint32_t cp;
    uint32_t offset; /* into tok_decomp_pool */
    uint32_t len;
};
struct tok_comp {
    uint32_t first, second, composite;
};
extern const char tok_nfc_unicode_version[]; /* the Unicode version of the tables */
extern const struct tok_ccc_range tok_ccc_ranges[];
extern const size_t tok_ccc_count;
extern const uint32_t tok_decomp_pool[];
extern const struct tok_decomp tok_decomps[];
extern const size_t tok_decomp_count;
extern const struct tok_comp tok_comps[];
extern const size_t tok_comp_count;

/* ---- hash maps (tokenizer_bpe.c) -------------------------------------------- */

/* String -> id, open addressing; keys point into memory the tokenizer owns. */
struct tok_strmap {
    uint32_t *slots; /* [cap] id + 1, 0 = empty */
    size_t cap;      /* power of two */
    const char *const *keys;
    const uint32_t *key_lens;
};
/* Pair (left id, right id) -> merge rank and merged id. */
struct tok_pair_slot {
    uint64_t key; /* (left << 32 | right) + 1; 0 = empty */
    uint32_t rank;
    int32_t merged;
};
struct tok_pairmap {
    struct tok_pair_slot *slots;
    size_t cap, count;
};

/* ---- pipeline pieces -------------------------------------------------------- */

enum tok_norm_kind { TOK_NORM_PREPEND, TOK_NORM_REPLACE, TOK_NORM_NFC };
enum tok_behavior {
    TOK_SPLIT_REMOVED,
    TOK_SPLIT_ISOLATED,
    TOK_SPLIT_MERGED_WITH_PREVIOUS,
    TOK_SPLIT_MERGED_WITH_NEXT,
    TOK_SPLIT_CONTIGUOUS,
};
enum tok_pre_kind { TOK_PRE_SPLIT, TOK_PRE_BYTE_LEVEL, TOK_PRE_METASPACE };
enum tok_prepend_scheme { TOK_PREPEND_ALWAYS, TOK_PREPEND_FIRST, TOK_PREPEND_NEVER };
enum tok_dec_kind {
    TOK_DEC_BYTE_LEVEL,
    TOK_DEC_REPLACE,
    TOK_DEC_BYTE_FALLBACK,
    TOK_DEC_FUSE,
    TOK_DEC_STRIP,
    TOK_DEC_METASPACE,
};

/* A compiled pattern: a PCRE2 regex, or a literal string searched with memmem. */
struct tok_pattern {
    pcre2_code *re; /* NULL for a literal */
    char *lit;
    size_t lit_len;
};

struct tok_normalizer {
    enum tok_norm_kind kind;
    struct tok_pattern pat; /* REPLACE */
    char *text;             /* PREPEND: what to prepend; REPLACE: the replacement */
    size_t text_len;
};

struct tok_pretok {
    enum tok_pre_kind kind;
    struct tok_pattern pat; /* SPLIT; BYTE_LEVEL with use_regex (the GPT-2 pattern) */
    enum tok_behavior behavior;
    int invert;
    int add_prefix_space; /* BYTE_LEVEL */
    int use_regex;        /* BYTE_LEVEL */
    char replacement[8];  /* METASPACE: UTF-8 of the replacement char */
    size_t replacement_len;
    enum tok_prepend_scheme prepend;
    int split; /* METASPACE */
};

struct tok_decoder {
    enum tok_dec_kind kind;
    struct tok_pattern pat; /* REPLACE */
    char *to;               /* REPLACE: the content */
    size_t to_len;
    uint32_t strip_cp; /* STRIP: the char to strip */
    int strip_start, strip_stop;
    char replacement[8]; /* METASPACE */
    size_t replacement_len;
    int prepend_first; /* METASPACE: drop replacement chars of the first token */
};

struct tok_added {
    char *content;
    size_t len;
    char *match; /* what is searched for: content, normalized when normalized = 1 */
    size_t match_len;
    int32_t id;
    uint8_t single_word, lstrip, rstrip, normalized, special;
};

enum tok_model_kind { TOK_MODEL_BPE, TOK_MODEL_SPM };

struct qb_tokenizer {
    /* vocabulary: id -> piece; every id in [0, n_vocab) has one */
    int32_t n_vocab;
    char **pieces;
    uint32_t *piece_lens;
    uint8_t *is_added;         /* [n_vocab] 0 model token, 1 added and in the model vocab,
                                * 2 added only (not in the model vocab) */
    struct tok_strmap vocab;   /* model vocab only */
    struct tok_pairmap merges; /* BPE */
    float *scores;             /* SPM: [n_vocab] */
    enum tok_model_kind model;
    int byte_fallback, ignore_merges, fuse_unk;
    int32_t unk_id;
    int32_t byte_ids[256]; /* <0xNN> tokens, -1 when absent */
    char bl_enc[256][4];   /* byte-level alphabet: byte -> UTF-8 of its code point */
    uint8_t bl_enc_len[256];
    char *subword_prefix, *word_suffix; /* BPE continuing_subword_prefix / end_of_word_suffix */
    size_t subword_prefix_len, word_suffix_len;

    struct tok_added *added;
    size_t n_added;
    uint32_t *added_order;      /* [n_added] indices into added, sorted by first byte */
    uint32_t added_first[257];  /* added_order[added_first[b] .. added_first[b+1]) start with b */
    struct tok_pattern word_re; /* Rust regex \w, compiled when a single_word token exists */

    struct tok_normalizer *norms;
    size_t n_norms;
    struct tok_pretok *pretoks;
    size_t n_pretoks;
    struct tok_decoder *decoders;
    size_t n_decoders;
    int has_decoder; /* 0: tokens joined with " " like tokenizers without one */

    int32_t *prefix_ids, *suffix_ids; /* post-processor single-sequence template */
    size_t n_prefix, n_suffix;
    int32_t bos_id, eos_id;
};

/* ---- construction helpers shared by the JSON loader and the spec builder ----- */

/* Sets tok->pieces/piece_lens/n_vocab storage for n ids (all NULL pieces). */
enum qb_status tok_alloc_vocab(struct qb_tokenizer *tok, int32_t n, struct qb_err *err);
/* Builds tok->vocab over the model pieces (ids without a piece are skipped), byte_ids and
 * the byte-level alphabet tables. */
enum qb_status tok_finish_vocab(struct qb_tokenizer *tok, const char *origin, struct qb_err *err);
/* Adds merge (left, right) with rank; a later duplicate replaces the earlier one. */
enum qb_status tok_add_merge(struct qb_tokenizer *tok, const char *a, size_t alen, const char *b,
                             size_t blen, uint32_t rank, const char *origin, struct qb_err *err);
/* Looks up a model vocab string; -1 when absent. */
int32_t tok_vocab_find(const struct qb_tokenizer *tok, const char *s, size_t len);

/* ---- patterns (tokenizer_regex.c) ------------------------------------------- */

/* Compiles an onig-syntax pattern (as tokenizers' SysRegex reads it) into PCRE2, or a
 * literal (literal = 1). field names the JSON field in errors. */
enum qb_status tok_pattern_compile(struct tok_pattern *p, const char *src, size_t len, int literal,
                                   const char *origin, const char *field, struct qb_err *err);
void tok_pattern_free(struct tok_pattern *p);

/* Scratch state for matching; one per encode call. */
struct tok_matcher {
    pcre2_match_data *md;
    pcre2_match_context *mc;
    pcre2_jit_stack *js;
};
enum qb_status tok_matcher_init(struct tok_matcher *m, struct qb_err *err);
void tok_matcher_release(struct tok_matcher *m);

/* A segment of a piece: [off, off + len), and whether it is a match of the pattern. */
struct tok_seg {
    size_t off, len;
    int is_match;
};
struct tok_segs {
    struct tok_seg *v;
    size_t n, cap;
};
/* tokenizers' NormalizedString::split(pattern, behaviour) on s[0..n): fills out with
 * the kept sub-ranges (possibly empty ones; callers drop those). */
enum qb_status tok_split(const struct tok_pattern *p, struct tok_matcher *m, const char *s,
                         size_t n, enum tok_behavior behavior, int invert, struct tok_segs *scratch,
                         struct tok_segs *out, struct qb_err *err);
/* Every non-overlapping match replaced by rep (normalizer Replace). */
enum qb_status tok_replace_all(const struct tok_pattern *p, struct tok_matcher *m, const char *s,
                               size_t n, const char *rep, size_t rep_len, struct tok_buf *out,
                               struct qb_err *err);

/* ---- models (tokenizer_bpe.c) ----------------------------------------------- */

struct tok_ids {
    int32_t *v;
    size_t n, cap;
};
enum qb_status tok_ids_push(struct tok_ids *ids, int32_t id);

/* Scratch for merging one word. */
struct tok_merge_scratch {
    void *syms;
    size_t syms_cap;
    void *heap;
    size_t heap_cap;
    struct tok_buf tmp;
};
void tok_merge_scratch_release(struct tok_merge_scratch *s);

/* Tokenizes one pre-token (valid UTF-8) with the model, appending ids. */
enum qb_status tok_model_tokenize(const struct qb_tokenizer *tok, const char *s, size_t n,
                                  struct tok_merge_scratch *scratch, struct tok_ids *out,
                                  struct qb_err *err);

/* Builds the GPT-2 pattern used by ByteLevel with use_regex. */
#define TOK_GPT2_PATTERN                                                                           \
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"

void tok_free_internals(struct qb_tokenizer *tok);

/* After the normalizers are loaded: the normalized match strings of added tokens, their
 * first-byte index and the \w matcher for single_word ones. */
enum qb_status tok_finish_added(struct qb_tokenizer *tok, const char *origin, struct qb_err *err);
/* bos: the post-processor's first prefix id, else a well-known added token name;
 * eos: a well-known added token name. Leaves ids already set (>= 0) alone. */
void tok_guess_bos_eos(struct qb_tokenizer *tok);

#endif /* QB_TOKENIZER_IMPL_H */
