/*
 * calib.c - calibration windows from a text file (see calib.h).
 */
#include "calib.h"

#include <string.h>

#include "fileutil.h"
#include "hub/hub.h"

uint64_t qb_splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

void qb_calib_draw_starts(uint64_t seed, int64_t n_tokens, int len, int n, int64_t *starts)
{
    uint64_t state = seed;
    uint64_t span = (uint64_t)(n_tokens - len) + 1;
    for (int i = 0; i < n; i++)
        starts[i] = (int64_t)(qb_splitmix64(&state) % span);
}

enum qb_status qb_calib_from_text(const struct qb_model *m, const char *text, size_t len,
                                  const struct qb_calib_opts *o, struct qb_calib_data *out,
                                  struct qb_err *err)
{
    int32_t *toks = NULL;
    size_t n_toks = 0;
    int64_t *starts = NULL;
    enum qb_status st;
    memset(out, 0, sizeof *out);
    if (o->n_samples <= 0 || o->seqlen < 2)
        return qb_err_set(err, QB_ERR_USAGE, "--calib-samples must be >= 1 and --calib-seqlen "
                          ">= 2 (got %d and %d)", o->n_samples, o->seqlen);
    if (!m->tok)
        return qb_err_set(err, QB_ERR_INTERNAL, "model loaded without a tokenizer");
    st = qb_tok_encode(m->tok, text, len, 0, &toks, &n_toks, err);
    if (st)
        goto out;
    int seqlen = o->seqlen;
    if (m->cfg.max_ctx > 0 && seqlen > m->cfg.max_ctx) {
        seqlen = m->cfg.max_ctx;
        out->capped_by_ctx = 1;
    }
    if (n_toks < 2) {
        st = qb_err_set(err, QB_ERR_FORMAT, "%s: the calibration text has %zu tokens; need at "
                        "least 2", o->path ? o->path : "calibration text", n_toks);
        goto out;
    }
    if ((size_t)seqlen > n_toks) {
        seqlen = (int)n_toks;
        out->capped_by_text = 1;
    }
    size_t total;
    starts = qb_malloc_array((size_t)o->n_samples, sizeof *starts);
    if (!starts || !qb_mul_size((size_t)o->n_samples, (size_t)seqlen, &total) ||
        !(out->ids = qb_malloc_array(total, sizeof(int32_t)))) {
        st = qb_err_set(err, QB_ERR_NOMEM, "out of memory for %d calibration windows of %d",
                        o->n_samples, seqlen);
        goto out;
    }
    qb_calib_draw_starts(o->seed, (int64_t)n_toks, seqlen, o->n_samples, starts);
    int32_t bos = qb_tok_bos(m->tok);
    if (bos < 0)
        bos = m->cfg.bos_id;
    for (int i = 0; i < o->n_samples; i++) {
        int32_t *w = out->ids + (size_t)i * (size_t)seqlen;
        memcpy(w, toks + starts[i], (size_t)seqlen * sizeof(int32_t));
        if (bos >= 0)
            w[0] = bos;
    }
    out->n_samples = o->n_samples;
    out->seqlen = seqlen;
    out->n_text_tokens = (int64_t)n_toks;
out:
    free(toks);
    free(starts);
    if (st)
        qb_calib_free(out);
    return st;
}

/* A text file, or a Hub data set by name: wikitext2 (its train split), c4 or pileval,
 * fetched through the datasets-server and cached for offline use (hub/hub.h). */
static enum qb_status read_calib_text(const char *path, char **text, size_t *len,
                                      struct qb_err *err)
{
    if (qb_path_exists(path) || !qb_hub_dataset_known(path))
        return qb_file_read_all(path, QB_CALIB_MAX_TEXT_BYTES, text, len, err);
    struct qb_hub *hub = NULL;
    enum qb_status st = qb_hub_open_env(&hub, err);
    if (!st)
        st = qb_hub_dataset_text(hub, path, strcmp(path, "wikitext2") == 0 ? "train" : NULL,
                                 text, len, NULL, err);
    qb_hub_free(hub);
    return st;
}

enum qb_status qb_calib_load(const struct qb_model *m, const struct qb_calib_opts *o,
                             struct qb_calib_data *out, struct qb_err *err)
{
    char *text = NULL;
    size_t len = 0;
    memset(out, 0, sizeof *out);
    enum qb_status st = read_calib_text(o->path, &text, &len, err);
    if (st)
        return st;
    st = qb_calib_from_text(m, text, len, o, out, err);
    free(text);
    return st;
}

void qb_calib_free(struct qb_calib_data *d)
{
    if (!d)
        return;
    free(d->ids);
    memset(d, 0, sizeof *d);
}
