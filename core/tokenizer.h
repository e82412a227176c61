/*
 * tokenizer.h - BPE tokenizers as real checkpoints ship them.
 *
 * Loads Hugging Face tokenizer.json (byte-level BPE as GPT-2 / Llama-3 / Qwen2
 * use it, SentencePiece-style BPE as Llama-2/TinyLlama ship it and with a
 * Metaspace pre-tokenizer) and can be built from GGUF tokenizer metadata
 * (qb_tok_create_from_vocab). The pre-tokenizer's Split regex runs in PCRE2
 * (UTF + UCP, JIT) exactly as written in the file.
 *
 * Ids equal the Hugging Face `tokenizers` output for the same input with
 * add_special_tokens=False (add_bos = 0), or with the post-processor's BOS
 * when add_bos = 1.
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

/* Encode len bytes of text (any bytes; invalid UTF-8 is handled like `tokenizers`
 * does for byte-level, replacement for SentencePiece). *ids is malloced (caller frees),
 * *n_ids its length. add_bos: prepend the BOS the post-processor would add
 * (nothing if the tokenizer has none). */
enum qb_status qb_tok_encode(const struct qb_tokenizer *tok, const char *text, size_t len,
                             int add_bos, int32_t **ids, size_t *n_ids, struct qb_err *err);

/* Decode ids to text as `tokenizers` decode(skip_special_tokens=False) does.
 * *text is malloced and NUL-terminated; *len excludes the NUL. */
enum qb_status qb_tok_decode(const struct qb_tokenizer *tok, const int32_t *ids, size_t n_ids,
                             char **text, size_t *len, struct qb_err *err);

int32_t qb_tok_bos(const struct qb_tokenizer *tok);    /* -1 when none */
int32_t qb_tok_eos(const struct qb_tokenizer *tok);    /* -1 when none */
int qb_tok_adds_bos(const struct qb_tokenizer *tok);   /* 1 if encode with specials adds BOS */
int32_t qb_tok_vocab_size(const struct qb_tokenizer *tok);
/* Text of a token id (the vocab string as stored); NULL when out of range. */
const char *qb_tok_piece(const struct qb_tokenizer *tok, int32_t id);

#endif /* QB_TOKENIZER_H */
