/*
 * gguf_vocab.h - a tokenizer rebuilt from a GGUF file's tokenizer.ggml.* keys,
 * so `tokenize`, `eval` and `compare` work on a GGUF alone (ours or llama.cpp's).
 *
 *   tokenizer.ggml.model "gpt2"   byte-level BPE: tokens, token_type, merges
 *                                 (rank = index); tokenizer.ggml.pre names the
 *                                 split regexes (qb_gguf_pre_regexes; unknown or
 *                                 absent names get llama.cpp's default list)
 *   tokenizer.ggml.model "llama"  SentencePiece vocabulary merged by score
 *                                 (tokens, scores, token_type), add_space_prefix
 *                                 (default 1 as in llama.cpp)
 *
 * Special ids from tokenizer.ggml.{bos,eos,unknown}_token_id, add_bos/add_eos
 * from tokenizer.ggml.add_{bos,eos}_token with llama.cpp's defaults (SPM: BOS
 * 1, EOS 2, UNK 0, add_bos on; BPE: add_bos only for the Llama-3 pre-tokenizer
 * family, which also ignores merges for whole-vocab pre-tokens as llama.cpp does).
 * Other tokenizer models (bert, t5, rwkv) are QB_ERR_UNSUPPORTED.
 */
#ifndef QB_GGUF_VOCAB_H
#define QB_GGUF_VOCAB_H

#include "gguf.h"
#include "tokenizer.h"

/* Build the tokenizer of an open GGUF; origin names the file in errors.
 * OUT: *out (free with qb_tok_free), NULL on failure. */
enum qb_status qb_gguf_vocab_load(const struct qb_gguf *g, const char *origin,
                                  struct qb_tokenizer **out, struct qb_err *err);

/* Open path and build its tokenizer (the tensors are not needed). */
enum qb_status qb_gguf_vocab_load_file(const char *path, struct qb_tokenizer **out,
                                       struct qb_err *err);

#endif /* QB_GGUF_VOCAB_H */
