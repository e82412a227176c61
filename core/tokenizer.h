/*
 * tokenizer.h - BPE tokenizers as real checkpoints ship them.
 *
 * Loads Hugging Face tokenizer.json (byte-level BPE as GPT-2 / Llama-3 / Qwen2
 * use it, SentencePiece-style BPE as Llama-2/TinyLlama ship it and with a
 * Metaspace pre-tokenizer) and can be built from GGUF tokenizer metadata
 * (qb_tok_create). The pre-tokenizer's Split regex runs in PCRE2 (UTF + UCP,
 * JIT) as written in the file; the few shorthand classes where PCRE2 and
 * Oniguruma (what `tokenizers` uses) disagree (\s \w \h) are rewritten to
 * Oniguruma's meaning first.
 *
 * Ids equal the Hugging Face `tokenizers` output for the same input with
 * add_special_tokens=False (add_bos = 0), or add_special_tokens=True (add_bos = 1).
 *
 * Supported tokenizer.json parts (anything else is a QB_ERR_UNSUPPORTED error that
 * names the field and value): model BPE (vocab, merges as "a b" or ["a", "b"],
 * unk_token, byte_fallback, fuse_unk, ignore_merges, continuing_subword_prefix,
 * end_of_word_suffix); added_tokens with single_word/lstrip/rstrip/normalized;
 * normalizer Sequence/Prepend/Replace/NFC; pre_tokenizer Sequence/Split (all five
 * behaviours, invert)/ByteLevel/Metaspace/Digits/Punctuation; post_processor
 * TemplateProcessing/ByteLevel/Sequence; decoder Sequence/ByteLevel/Replace/
 * ByteFallback/Fuse/Strip/Metaspace.
 *
 * A loaded tokenizer is immutable and may be used from several threads.
 */
#ifndef QB_TOKENIZER_H
#define QB_TOKENIZER_H

#include <stddef.h>
#include <stdint.h>

#include "qb_common.h"

struct qb_tokenizer;

/* Load tokenizer.json at path. On failure *out stays NULL and err names the file
 * and the field that is wrong. */
enum qb_status qb_tok_load_hf(const char *path, struct qb_tokenizer **out, struct qb_err *err);

/* Same, from a JSON document already in memory (len bytes, need not be NUL-terminated);
 * `origin` is used in error messages. */
enum qb_status qb_tok_load_hf_buffer(const char *json, size_t len, const char *origin,
                                     struct qb_tokenizer **out, struct qb_err *err);

void qb_tok_free(struct qb_tokenizer *tok); /* NULL is fine */

/* Encode len bytes of text. Any bytes are accepted: invalid UTF-8 is first replaced
 * as Python's bytes.decode('utf-8', 'replace') does (one U+FFFD per maximal invalid
 * subpart), which is the str a Python caller would hand to `tokenizers`.
 * OUT: *ids is malloced (caller frees; never NULL on success, even for 0 ids),
 * *n_ids its length. add_bos: add the special tokens the post-processor adds
 * (its BOS prefix, and a suffix if its template has one; nothing if it has none). */
enum qb_status qb_tok_encode(const struct qb_tokenizer *tok, const char *text, size_t len,
                             int add_bos, int32_t **ids, size_t *n_ids, struct qb_err *err);

/* Decode ids to text as `tokenizers` decode(skip_special_tokens=False) does.
 * An id outside [0, vocab size) is a QB_ERR_RANGE error (tokenizers skips it).
 * OUT: *text is malloced and NUL-terminated; *len excludes the NUL. */
enum qb_status qb_tok_decode(const struct qb_tokenizer *tok, const int32_t *ids, size_t n_ids,
                             char **text, size_t *len, struct qb_err *err);

int32_t qb_tok_bos(const struct qb_tokenizer *tok);  /* -1 when none */
int32_t qb_tok_eos(const struct qb_tokenizer *tok);  /* -1 when none */
int qb_tok_adds_bos(const struct qb_tokenizer *tok); /* 1 if encode with specials adds BOS */
int32_t qb_tok_vocab_size(const struct qb_tokenizer *tok);
/* Text of a token id (the vocab string as stored); NULL when out of range. */
const char *qb_tok_piece(const struct qb_tokenizer *tok, int32_t id);

/* ---- building a tokenizer without tokenizer.json (GGUF metadata) ---------------
 *
 * qb_tok_create builds the same pipeline from plain arrays, the shape GGUF's
 * tokenizer.ggml.* keys have. Two kinds:
 *
 *   QB_TOK_BPE  byte-level BPE (GGUF model "gpt2": Llama-3, Qwen2, GPT-2...):
 *               control/user-defined tokens are matched first (like added tokens),
 *               then each split_regex runs in order (Split, Isolated), then the
 *               ByteLevel mapping, then merges by rank (their order in `merges`).
 *               With no split_regex the GPT-2 pattern is used. Decoder: ByteLevel.
 *   QB_TOK_SPM  SentencePiece vocab merged by score (GGUF model "llama": Llama-2,
 *               TinyLlama, Mistral v0.1): llama.cpp's llm_tokenizer_spm. Spaces become
 *               "▁", "▁" is prepended when add_space_prefix, characters left unmerged
 *               and not in the vocab become <0xNN> byte tokens (unk_id without one).
 *               Decoder: "▁" -> " ", byte tokens -> bytes, leading space stripped when
 *               add_space_prefix.
 *
 * Unknown/control/user-defined tokens (types 2, 3, 4) are matched in the input
 * before anything else, as `tokenizers` does for added tokens. All arrays are
 * copied; the spec may be freed after the call. Errors: QB_ERR_FORMAT for
 * inconsistent input (bad id, merge naming an unknown token, bad regex...). */

enum qb_tok_kind { QB_TOK_BPE = 1, QB_TOK_SPM = 2 };

/* GGUF tokenizer.ggml.token_type values. */
enum qb_tok_type {
    QB_TOK_TYPE_NORMAL = 1,
    QB_TOK_TYPE_UNKNOWN = 2,
    QB_TOK_TYPE_CONTROL = 3,
    QB_TOK_TYPE_USER_DEFINED = 4,
    QB_TOK_TYPE_UNUSED = 5,
    QB_TOK_TYPE_BYTE = 6,
};

struct qb_tok_spec {
    enum qb_tok_kind kind;
    int32_t n_vocab;
    const char *const *pieces; /* [n_vocab] UTF-8, NUL-terminated (tokenizer.ggml.tokens) */
    const float *scores;       /* [n_vocab] or NULL; SPM merge priority (higher first) */
    const int32_t *types;      /* [n_vocab] enum qb_tok_type, or NULL for all normal */
    const char *const *merges; /* [n_merges] "left right", rank = index (BPE) */
    size_t n_merges;
    const char *const *split_regex; /* [n_split_regex] pre-tokenizer patterns (BPE) */
    size_t n_split_regex;
    int ignore_merges;              /* BPE: a pre-token that is a vocab entry is one token */
    int add_space_prefix;           /* SPM: prepend "▁" to the text */
    int add_bos, add_eos;           /* what add_bos = 1 in qb_tok_encode adds */
    int32_t bos_id, eos_id, unk_id; /* -1 when none */
};

/* Build a tokenizer from spec. OUT: *out (free with qb_tok_free); NULL on failure. */
enum qb_status qb_tok_create(const struct qb_tok_spec *spec, struct qb_tokenizer **out,
                             struct qb_err *err);

#endif /* QB_TOKENIZER_H */
