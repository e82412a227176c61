/*
 * calib.h - calibration data for GPTQ/AWQ: token windows drawn from a text file.
 *
 * The text is tokenized once (no BOS). n_samples windows of seqlen tokens are
 * then drawn at uniformly random start positions in [0, n_tokens - seqlen]
 * with the splitmix64 generator seeded by `seed` (start = next() % span; the
 * modulo bias is below 2^-40 for any real text). Windows may overlap when the
 * text is short; that is never an error. Each window's first token is replaced
 * by BOS (when the tokenizer has one), the way the evaluation chunks start, so
 * the activation statistics match what the model sees at evaluation time.
 *
 * seqlen is capped by the model's context (max_position_embeddings) and by
 * the text length; the caps are reported in struct qb_calib_data so the CLI
 * can say so on stderr.
 */
#ifndef QB_CALIB_H
#define QB_CALIB_H

#include <stdint.h>

#include "model.h"
#include "qb_common.h"

#define QB_CALIB_DEFAULT_SAMPLES 128
#define QB_CALIB_DEFAULT_SEQLEN_GPTQ 2048
#define QB_CALIB_DEFAULT_SEQLEN_AWQ 512
#define QB_CALIB_MAX_TEXT_BYTES ((size_t)1 << 31)

struct qb_calib_opts {
    const char *path;  /* plain-text file */
    int n_samples;     /* > 0 */
    int seqlen;        /* > 1; capped as described above */
    uint64_t seed;
};

struct qb_calib_data {
    int32_t *ids;      /* [n_samples][seqlen] (malloced) */
    int n_samples;
    int seqlen;        /* after capping */
    int64_t n_text_tokens;
    int capped_by_ctx;  /* seqlen was lowered to the model's context */
    int capped_by_text; /* seqlen was lowered to the text's token count */
};

/* splitmix64 (Steele, Lea, Flood 2014): returns the next value, advances *state. */
uint64_t qb_splitmix64(uint64_t *state);

/* Start positions of n windows of len tokens in a text of n_tokens (n_tokens >= len). */
void qb_calib_draw_starts(uint64_t seed, int64_t n_tokens, int len, int n, int64_t *starts);

/* Tokenize text (len bytes) with m's tokenizer and draw the windows. */
enum qb_status qb_calib_from_text(const struct qb_model *m, const char *text, size_t len,
                                  const struct qb_calib_opts *o, struct qb_calib_data *out,
                                  struct qb_err *err);
/* Same, reading o->path. */
enum qb_status qb_calib_load(const struct qb_model *m, const struct qb_calib_opts *o,
                             struct qb_calib_data *out, struct qb_err *err);
void qb_calib_free(struct qb_calib_data *d); /* NULL-safe; zeroes */

#endif /* QB_CALIB_H */
