/*
 * wordppl.h - lm-evaluation-harness's `wikitext` word perplexity.
 *
 * The number model cards print as "wikitext word_perplexity": every document is
 * scored as a whole with a rolling log-likelihood and the sum is normalised per
 * word of the original text. Method (lm-eval's lm_eval/tasks/wikitext and
 * HFLM.loglikelihood_rolling, re-implemented here from the published source):
 *
 *  1. Documents. lm-eval reads EleutherAI/wikitext_document_level (field "page"),
 *     built from wiki.test.raw: lines split on "\n"; a line that, after
 *     replacing "= = =" by "===" and "= =" by "==" and stripping, starts with
 *     "= " and ends with " =" (a level-1 heading " = Title = ") starts a new page;
 *     the lines gathered so far are joined with "\n" and kept when not blank;
 *     the last page is always kept. We rebuild the same pages from the rows of
 *     Salesforce/wikitext (wikitext-2-raw-v1): a row is one line of the raw file
 *     with its "\n" ("" for a blank line, which the raw file holds as " "), and
 *     the file ends with "\n", so one last empty line follows the rows
 *     (qb_wordppl_docs_from_rows). A plain text file is one document per piece
 *     between "\n\n\n" separators; pieces that are only whitespace are dropped
 *     (qb_wordppl_docs_from_text).
 *  2. Each page is detokenized (qb_wordppl_detokenize, lm-eval's
 *     wikitext_detokenizer: " @-@ " -> "-", " , " -> ", ", bracket and quote
 *     spacing, ...) and tokenized without special tokens.
 *  3. Rolling windows of max_length tokens (the model's context, like HFLM's
 *     max_length = max_position_embeddings): the first window is the prefix
 *     token (BOS, else EOS, as HFLM's prefix_token_id) followed by the first
 *     tokens, and scores all of them; every later window scores the next up to
 *     max_length tokens given the one token before them, and the last window is
 *     left-extended to a full max_length input (get_rolling_token_windows with
 *     context_len = 1, make_disjoint_window, then HFLM's left truncation to
 *     max_length). Every token is scored exactly once.
 *  4. words = len(re.split(r"\s+", page)) (Python's Unicode whitespace) and
 *     bytes = len(page.encode("utf-8")), both on the page BEFORE detokenization.
 *     word_perplexity = exp(-sum loglik / sum words), byte_perplexity =
 *     exp(-sum loglik / sum bytes), bits_per_byte = -sum loglik / sum bytes / ln 2.
 *
 * Numbers are comparable with lm-eval's only for the same documents, the same
 * max_length and the same prefix token; the result reports all three.
 */
#ifndef QB_WORDPPL_H
#define QB_WORDPPL_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "engine.h"
#include "eval.h"
#include "model.h"
#include "progress.h"
#include "qb_common.h"

/* ---- documents ------------------------------------------------------------------ */

struct qb_wordppl_docs {
    char **text;   /* [n] NUL-terminated pages as lm-eval sees them (before detokenizing) */
    size_t *len;   /* [n] bytes, NUL excluded */
    size_t n, cap;
};
void qb_wordppl_docs_clear(struct qb_wordppl_docs *d); /* frees and zeroes; NULL-safe */

/* Pages of wikitext_document_level rebuilt from Salesforce/wikitext rows (see 1.). */
enum qb_status qb_wordppl_docs_from_rows(const char *const *rows, size_t n_rows,
                                         struct qb_wordppl_docs *out, struct qb_err *err);
/* One document per "\n\n\n"-separated piece of text (len bytes); blank pieces dropped. */
enum qb_status qb_wordppl_docs_from_text(const char *text, size_t len,
                                         struct qb_wordppl_docs *out, struct qb_err *err);

/* ---- text --------------------------------------------------------------------------- */

/* lm-eval's wikitext_detokenizer on len bytes of UTF-8. *out is malloced and
 * NUL-terminated, *out_len excludes the NUL. Invalid UTF-8 bytes are kept and
 * count as non-whitespace characters. */
enum qb_status qb_wordppl_detokenize(const char *s, size_t len, char **out, size_t *out_len,
                                     struct qb_err *err);
/* len(re.split(r"\s+", s)) for a Python str: runs of Unicode whitespace + 1. */
int64_t qb_wordppl_count_words(const char *s, size_t len);

/* ---- rolling windows --------------------------------------------------------------- */

/* One model call. The input is in_len tokens starting at document index in_start,
 * where index -1 stands for the prefix token; its last pred_len positions are
 * scored: input position k predicts document token in_start + k + 1, so the
 * scored tokens are pred_start .. pred_start + pred_len - 1. */
struct qb_wordppl_window {
    int64_t in_start;
    int in_len;
    int64_t pred_start;
    int pred_len;
};

/* Number of windows for n_tokens (0 for an empty document), max_len >= 1. */
int64_t qb_wordppl_window_count(int64_t n_tokens, int max_len);
/* Window i (0 <= i < count) of a document of n_tokens tokens. */
struct qb_wordppl_window qb_wordppl_window_get(int64_t n_tokens, int max_len, int64_t i);

/* Sum of log p(token) over one document with its rolling windows on engine e
 * (e->max_ctx >= min(max_len, n)); token_logprob (may be NULL) receives each
 * token's log-probability, [n]. Resets the engine's KV cache per window and
 * asks for logits only at the scored positions, piece by piece. */
enum qb_status qb_wordppl_score_tokens(struct qb_engine *e, const int32_t *tokens, int64_t n,
                                       int32_t prefix, int max_len, double *loglik,
                                       float *token_logprob, struct qb_err *err);

/* ---- whole run ------------------------------------------------------------------------ */

struct qb_wordppl_opts {
    int max_length;         /* tokens per window; 0 = the model's max_position_embeddings */
    int max_docs;           /* score the first N documents; 0 = all */
    int n_threads;          /* CPU threads, 0 = all cores */
    enum qb_backend backend;
};

struct qb_wordppl_result {
    double word_perplexity;
    double byte_perplexity;
    double bits_per_byte;
    double loglik;           /* sum over documents, nats */
    int64_t documents, words, bytes, tokens;
    int max_length;
    int32_t prefix_token;
    double seconds;
    double tokens_per_s;     /* tokens scored per second */
    enum qb_backend backend;
};

/* Fill the three metrics of r from loglik, words and bytes (already in r). */
void qb_wordppl_aggregate(struct qb_wordppl_result *r);

/* The prefix token HFLM would use: BOS (tokenizer, else config.json), else EOS. */
int32_t qb_wordppl_prefix_token(const struct qb_model *m);

/* Score docs with model m (loaded with its tokenizer). Progress in tokens;
 * cancellation is checked between windows. */
enum qb_status qb_wordppl_run(const struct qb_model *m, const struct qb_wordppl_docs *docs,
                              const struct qb_wordppl_opts *o, struct qb_progress *progress,
                              struct qb_wordppl_result *out, struct qb_err *err);

/* Load the checkpoint at model_dir, quantize it in memory with scheme (NULL = as
 * stored; group 0 = the scheme's default) and run qb_wordppl_run. */
enum qb_status qb_wordppl_run_dir(const char *model_dir, const char *scheme, int group,
                                  const struct qb_wordppl_docs *docs,
                                  const struct qb_wordppl_opts *o, struct qb_progress *progress,
                                  struct qb_wordppl_result *out, struct qb_err *err);

/* Output: the result's fields into a cJSON object ("word_perplexity",
 * "byte_perplexity", "bits_per_byte", "documents", "words", "bytes", "tokens",
 * "loglikelihood", "max_length", "prefix_token", "seconds", "backend"), and the
 * same as text lines. */
struct cJSON;
void qb_wordppl_add_json(struct cJSON *o, const struct qb_wordppl_result *r);
void qb_wordppl_print(FILE *f, const struct qb_wordppl_result *r);

#endif /* QB_WORDPPL_H */
