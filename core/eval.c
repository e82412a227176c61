/*
 * eval.c - llama.cpp-method perplexity, KL divergence and top-1 agreement
 * (see eval.h for the method).
 *
 * Baseline log-probs are written, one chunk at a time, to an anonymous
 * temporary file (tmpfile(): unlinked, gone when closed), as f32
 * [scored positions][vocab] per chunk. A quantized run reads the same chunk
 * back and compares distributions position by position. f32 keeps the KLD
 * exact to float rounding (llama.cpp stores 16-bit log-probs instead).
 */
#include "eval.h"

#include <math.h>
#include <string.h>

#include "engine.h"

struct qb_eval_baseline {
    FILE *f;
    int ctx;
    int chunks;
    int vocab;
    int scored_per_chunk;
};

void qb_eval_baseline_free(struct qb_eval_baseline *b)
{
    if (!b)
        return;
    if (b->f)
        fclose(b->f);
    free(b);
}

enum qb_status qb_eval_tokenize(const struct qb_model *m, const char *text, size_t len,
                                int32_t **ids, size_t *n_ids, struct qb_err *err)
{
    *ids = NULL;
    *n_ids = 0;
    if (!m->tok)
        return qb_err_set(err, QB_ERR_INTERNAL, "model loaded without a tokenizer");
    int32_t bos = qb_tok_bos(m->tok);
    if (bos < 0)
        bos = m->cfg.bos_id;
    if (bos < 0)
        return qb_err_set(err, QB_ERR_FORMAT, "%s: neither tokenizer.json nor config.json names "
                          "a BOS token, which perplexity needs", m->dir);
    int32_t *body = NULL;
    size_t n = 0;
    enum qb_status st = qb_tok_encode(m->tok, text, len, 0, &body, &n, err);
    if (st)
        return st;
    int32_t *all = qb_malloc_array(n + 1, sizeof *all);
    if (!all) {
        free(body);
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory");
    }
    all[0] = bos;
    if (n)
        memcpy(all + 1, body, n * sizeof *all);
    free(body);
    *ids = all;
    *n_ids = n + 1;
    return QB_OK;
}

/* Running sums over scored positions. */
struct score_acc {
    double nll, nll2;
    double kld, kld2;
    int64_t agree;
    int64_t count;
};

/* In place: logits -> log-softmax; returns argmax. */
static int log_softmax(float *l, int vocab)
{
    int arg = 0;
    float mx = l[0];
    for (int i = 1; i < vocab; i++) {
        if (l[i] > mx) {
            mx = l[i];
            arg = i;
        }
    }
    double sum = 0;
    for (int i = 0; i < vocab; i++)
        sum += exp((double)(l[i] - mx));
    float lse = mx + (float)log(sum);
    for (int i = 0; i < vocab; i++)
        l[i] -= lse;
    return arg;
}

static int argmax(const float *l, int vocab)
{
    int arg = 0;
    for (int i = 1; i < vocab; i++) {
        if (l[i] > l[arg])
            arg = i;
    }
    return arg;
}

/* KL(base || this) at one position; mathematically >= 0, so a tiny negative sum
 * (rounding, when the two distributions are equal to float precision) is 0. */
static double kl_div(const float *base_lp, const float *lp, int vocab)
{
    double kl = 0;
    for (int i = 0; i < vocab; i++) {
        double pb = exp((double)base_lp[i]);
        kl += pb * ((double)base_lp[i] - (double)lp[i]);
    }
    return kl > 0 ? kl : 0;
}

/* Score rows of log-probs for one chunk; base_lp (may be NULL) holds the baseline's. */
static void score_chunk(float *logits, const int32_t *targets, int rows, int vocab,
                        const float *base_lp, struct score_acc *acc)
{
    for (int r = 0; r < rows; r++) {
        float *lp = logits + (size_t)r * vocab;
        int top = log_softmax(lp, vocab);
        double nll = -(double)lp[targets[r]];
        acc->nll += nll;
        acc->nll2 += nll * nll;
        acc->count++;
        if (base_lp) {
            const float *b = base_lp + (size_t)r * vocab;
            double kl = kl_div(b, lp, vocab);
            acc->kld += kl;
            acc->kld2 += kl * kl;
            acc->agree += argmax(b, vocab) == top;
        }
    }
}

static void finish_result(const struct score_acc *a, int has_kld, struct qb_eval_result *r)
{
    double n = (double)a->count;
    r->tokens_scored = a->count;
    r->nll_mean = a->nll / n;
    r->ppl = exp(r->nll_mean);
    double var = a->nll2 / n - r->nll_mean * r->nll_mean;
    r->ppl_stderr = a->count > 1 ? r->ppl * sqrt(fmax(var, 0) / (n - 1)) : 0;
    r->has_kld = has_kld;
    if (has_kld) {
        r->kld_mean = a->kld / n;
        double kv = a->kld2 / n - r->kld_mean * r->kld_mean;
        r->kld_stderr = a->count > 1 ? sqrt(fmax(kv, 0) / (n - 1)) : 0;
        r->top1_agreement = (double)a->agree / n;
    }
}

static enum qb_status check_inputs(const struct qb_model *m, size_t n_ids,
                                   const struct qb_eval_opts *o,
                                   const struct qb_eval_baseline *base, int *chunks,
                                   struct qb_err *err)
{
    if (o->ctx < 4 || o->ctx > m->cfg.max_ctx)
        return qb_err_set(err, QB_ERR_USAGE, "--ctx %d is outside [4, %d] (the model's "
                          "max_position_embeddings)", o->ctx, m->cfg.max_ctx);
    int n = (int)(n_ids / (size_t)o->ctx);
    if (n == 0)
        return qb_err_set(err, QB_ERR_USAGE, "the text has %zu tokens, fewer than one chunk of "
                          "--ctx %d; use a longer text or a smaller --ctx", n_ids, o->ctx);
    if (o->max_chunks > 0 && o->max_chunks < n)
        n = o->max_chunks;
    if (base && (base->ctx != o->ctx || base->chunks != n || base->vocab != m->cfg.vocab))
        return qb_err_set(err, QB_ERR_INTERNAL, "baseline was computed with other settings");
    *chunks = n;
    return QB_OK;
}

static enum qb_status baseline_new(int ctx, int chunks, int vocab, struct qb_eval_baseline **out,
                                   struct qb_err *err)
{
    struct qb_eval_baseline *b = calloc(1, sizeof *b);
    if (!b)
        return qb_err_set(err, QB_ERR_NOMEM, "out of memory");
    b->f = tmpfile();
    if (!b->f) {
        free(b);
        return qb_err_set(err, QB_ERR_IO, "cannot create a temporary file for baseline "
                          "log-probs (check TMPDIR)");
    }
    b->ctx = ctx;
    b->chunks = chunks;
    b->vocab = vocab;
    b->scored_per_chunk = ctx - 1 - ctx / 2;
    *out = b;
    return QB_OK;
}

static enum qb_status baseline_io(struct qb_eval_baseline *b, int chunk, float *buf, int write,
                                  struct qb_err *err)
{
    size_t n = (size_t)b->scored_per_chunk * (size_t)b->vocab;
    off_t off = (off_t)chunk * (off_t)n * (off_t)sizeof(float);
    if (fseeko(b->f, off, SEEK_SET) != 0)
        return qb_err_set(err, QB_ERR_IO, "cannot seek in the baseline log-prob file");
    size_t done = write ? fwrite(buf, sizeof(float), n, b->f) : fread(buf, sizeof(float), n, b->f);
    if (done != n)
        return qb_err_set(err, QB_ERR_IO, "cannot %s baseline log-probs (disk full?)",
                          write ? "write" : "read");
    return QB_OK;
}

struct eval_run {
    const struct qb_model *m;
    const int32_t *ids;
    int ctx, chunks, first, rows;
    struct qb_engine *eng;
    int32_t *chunk;
    float *logits;
    float *base_lp;
};

static enum qb_status eval_chunk(struct eval_run *r, int c, const struct qb_eval_baseline *base,
                                 struct qb_eval_baseline *keep, struct score_acc *acc,
                                 struct qb_err *err)
{
    int vocab = r->m->cfg.vocab;
    memcpy(r->chunk, r->ids + (size_t)c * r->ctx, sizeof(int32_t) * (size_t)r->ctx);
    r->chunk[0] = r->ids[0]; /* BOS */
    qb_engine_reset(r->eng);
    /* logits for positions first .. ctx-1; the last row predicts nothing we score */
    enum qb_status st = qb_engine_forward(r->eng, r->chunk, r->ctx, r->first, r->logits, err);
    if (st)
        return st;
    if (base) {
        st = baseline_io((struct qb_eval_baseline *)base, c, r->base_lp, 0, err);
        if (st)
            return st;
    }
    score_chunk(r->logits, r->chunk + r->first + 1, r->rows, vocab, base ? r->base_lp : NULL, acc);
    if (keep)
        st = baseline_io(keep, c, r->logits, 1, err); /* rows are log-probs now */
    return st;
}

enum qb_status qb_eval_run(const struct qb_model *m, const int32_t *ids, size_t n_ids,
                           const struct qb_eval_opts *opts, const struct qb_eval_baseline *base,
                           struct qb_eval_baseline **keep, struct qb_progress *progress,
                           struct qb_eval_result *out, struct qb_err *err)
{
    struct eval_run r = {.m = m, .ids = ids, .ctx = opts->ctx};
    struct qb_eval_baseline *kept = NULL;
    struct score_acc acc = {0};
    enum qb_backend used;
    memset(out, 0, sizeof *out);
    if (keep)
        *keep = NULL;
    enum qb_status st = check_inputs(m, n_ids, opts, base, &r.chunks, err);
    if (st)
        return st;
    r.first = r.ctx / 2;
    r.rows = r.ctx - 1 - r.first;
    size_t vocab = (size_t)m->cfg.vocab;
    r.chunk = qb_malloc_array((size_t)r.ctx, sizeof(int32_t));
    r.logits = qb_malloc_array((size_t)(r.ctx - r.first) * vocab, sizeof(float));
    r.base_lp = base ? qb_malloc_array((size_t)r.rows * vocab, sizeof(float)) : NULL;
    if (!r.chunk || !r.logits || (base && !r.base_lp)) {
        st = qb_err_set(err, QB_ERR_NOMEM, "out of memory for logits");
        goto out;
    }
    struct qb_engine_opts eo = {opts->ctx, opts->n_threads};
    st = qb_engine_create(m, opts->backend, &eo, progress, &used, &r.eng, err);
    if (!st && keep)
        st = baseline_new(r.ctx, r.chunks, m->cfg.vocab, &kept, err);
    if (st)
        goto out;
    double t0 = qb_now_seconds();
    qb_progress_stage(progress, base ? "scoring vs baseline" : "perplexity");
    for (int c = 0; c < r.chunks; c++) {
        if (qb_progress_cancelled(progress)) {
            st = qb_err_set(err, QB_ERR_CANCELLED, "cancelled");
            goto out;
        }
        st = eval_chunk(&r, c, base, kept, &acc, err);
        if (st)
            goto out;
        qb_progress_update(progress, (double)(c + 1) / r.chunks, c + 1, r.chunks, "chunks");
        qb_progress_metric(progress, "ppl", exp(acc.nll / (double)acc.count));
    }
    out->seconds = qb_now_seconds() - t0;
    finish_result(&acc, base != NULL, out);
    out->chunks = r.chunks;
    out->ctx = r.ctx;
    out->backend = used;
    out->tokens_per_s = out->seconds > 0 ? (double)r.chunks * r.ctx / out->seconds : 0;
    if (keep) {
        *keep = kept;
        kept = NULL;
    }
out:
    qb_eval_baseline_free(kept);
    qb_engine_free(r.eng);
    free(r.chunk);
    free(r.logits);
    free(r.base_lp);
    return st;
}
