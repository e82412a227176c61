/*
 * eval.h - perplexity, KL divergence and side-by-side comparison.
 *
 * Perplexity is computed the way llama-perplexity does it: the whole text is
 * tokenized once with BOS in front, cut into floor(N/ctx) chunks, each chunk's
 * first token overwritten with BOS, and the predictions of tokens
 * ctx/2+1 .. ctx-1 scored. PPL = exp(mean NLL); the standard error follows
 * llama.cpp's formula.
 *
 * With a baseline (compare, or eval --scheme), the baseline's log-softmax over
 * the scored positions is computed once and kept (a temporary file for large
 * runs), and each quantized model is scored against it: mean KL divergence
 * KL(base || quant) and top-1 agreement over the same positions.
 *
 * Engines are chosen by backend ("cpu", "cuda", "auto"; see qb_engine_create
 * in engine.h, which also owns enum qb_backend). Progress is reported
 * through struct qb_progress (chunks done), and cancellation is checked
 * between chunks.
 */
#ifndef QB_EVAL_H
#define QB_EVAL_H

#include <stdint.h>

#include "engine.h"
#include "model.h"
#include "progress.h"
#include "qb_common.h"

struct qb_eval_opts {
    int ctx;                 /* tokens per chunk (default 512) */
    int max_chunks;          /* 0 = all chunks */
    int n_threads;           /* CPU threads, 0 = all cores */
    enum qb_backend backend;
};

struct qb_eval_result {
    double ppl;
    double ppl_stderr;
    double nll_mean;
    int64_t tokens_scored;
    int chunks;
    int ctx;
    double seconds;          /* wall time of the forward passes and scoring */
    double tokens_per_s;     /* tokens processed (chunks * ctx) per second */
    int has_kld;             /* the fields below are valid */
    double kld_mean;         /* mean KL(base || this), nats */
    double kld_stderr;
    double top1_agreement;   /* fraction of scored positions where argmax agrees */
    enum qb_backend backend; /* the backend actually used */
};

struct qb_eval_baseline;      /* stored baseline log-probs over the scored positions */

/* Tokens of text with BOS in front (caller frees *ids). */
enum qb_status qb_eval_tokenize(const struct qb_model *m, const char *text, size_t len,
                                int32_t **ids, size_t *n_ids, struct qb_err *err);

/* Perplexity of model m over the tokens. If base is non-NULL, also KLD and top-1
 * agreement against it. If keep is non-NULL, the baseline log-probs of this run
 * are stored into a new *keep (caller frees with qb_eval_baseline_free). */
enum qb_status qb_eval_run(const struct qb_model *m, const int32_t *ids, size_t n_ids,
                           const struct qb_eval_opts *opts, const struct qb_eval_baseline *base,
                           struct qb_eval_baseline **keep, struct qb_progress *progress,
                           struct qb_eval_result *out, struct qb_err *err);

void qb_eval_baseline_free(struct qb_eval_baseline *b);

#endif /* QB_EVAL_H */
