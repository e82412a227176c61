/*
 * quantize.c - quantize a model and write it to disk (see quantize.h): our
 * layout (qbfmt.h) streamed layer by layer from the calibration pipeline or
 * filled by RTN, a Hugging Face quantized checkpoint (hfq_export.h), or GGUF
 * (gguf_export.h). Shared by `quantbench quantize` and the dashboard's job.
 */
#include "quantize.h"

#include <cjson/cJSON.h>
#include <string.h>

#include "fileutil.h"
#include "gguf_export.h"
#include "hfq_export.h"
#include "qbfmt.h"

struct run_ctx {
    struct qb_qbfmt_writer *w;
    struct qb_progress *progress;
};

/* The pipeline's sink: stream into the checkpoint; notice Ctrl-C. */
static enum qb_status sink(void *ctx, int layer, enum qb_linear_slot slot,
                           const struct qb_qresult *q, struct qb_err *err)
{
    struct run_ctx *r = ctx;
    if (qb_progress_cancelled(r->progress))
        return qb_err_set(err, QB_ERR_CANCELLED, "cancelled");
    return qb_qbfmt_writer_add(r->w, layer, slot, q, err);
}

static char *provenance(const struct qb_quantize_opts *a, const struct qb_qpipe_report *rep)
{
    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "tool", "quantbench " QB_VERSION);
    cJSON_AddStringToObject(p, "source_model", a->model);
    if (a->po.calib.path) {
        cJSON_AddStringToObject(p, "calib_file", a->po.calib.path);
        cJSON_AddNumberToObject(p, "calib_samples", rep->n_samples);
        cJSON_AddNumberToObject(p, "calib_seqlen", rep->seqlen);
        cJSON_AddNumberToObject(p, "seed", (double)a->po.calib.seed);
        cJSON_AddNumberToObject(p, "seconds", rep->seconds);
        cJSON_AddNumberToObject(p, "peak_rss_kb", (double)rep->peak_rss_kb);
        if (rep->device[0])
            cJSON_AddStringToObject(p, "calib_device", rep->device);
    }
    char *s = cJSON_PrintUnformatted(p);
    cJSON_Delete(p);
    return s;
}

/* The .qbq file of writer w: finished with its provenance when st is QB_OK,
 * else removed (nothing half-written); st, or the finish's status. */
static enum qb_status finish_or_abort(struct qb_qbfmt_writer *w, enum qb_status st,
                                      const struct qb_quantize_opts *a, const struct qb_model *m,
                                      const struct qb_qpipe_report *rep, struct qb_err *err)
{
    if (st) {
        qb_qbfmt_writer_abort(w);
        return st;
    }
    char *prov = provenance(a, rep);
    st = qb_qbfmt_writer_finish(w, m, prov, err);
    free(prov);
    return st;
}

static enum qb_status quantize_calibrated(struct qb_quantize_opts *a, struct qb_model *m,
                                          struct qb_progress *progress,
                                          struct qb_qpipe_report *rep, struct qb_err *err)
{
    struct qb_qbfmt_writer *w = NULL;
    enum qb_status st = qb_qpipe_opts_from_scheme(a->scheme, a->group, &a->po, err);
    if (st)
        return st;
    struct qb_qbfmt_meta meta = {QB_QBFMT_VERSION, "", a->po.method, a->po.bits, a->po.group,
                                 a->po.sym, a->po.act_order, a->po.static_groups,
                                 a->po.damp > 0 ? a->po.damp : QB_GPTQ_DEFAULT_DAMP};
    snprintf(meta.scheme, sizeof meta.scheme, "%s", a->scheme);
    if (a->po.method == QB_METHOD_AWQ)
        meta.damp = 0;
    st = qb_qbfmt_writer_open(a->out, m, &meta, &w, err);
    if (st)
        return st;
    struct run_ctx rc = {w, progress};
    a->po.sink = sink;
    a->po.sink_ctx = &rc;
    st = qb_qpipe_run(m, &a->po, progress, rep, err);
    return finish_or_abort(w, st, a, m, rep, err);
}

/* RTN in an integer-group format (when the quant module provides it). */
static enum qb_status quantize_rtn(struct qb_quantize_opts *a, struct qb_model *m,
                                   struct qb_progress *progress, struct qb_qpipe_report *rep,
                                   struct qb_err *err)
{
    struct qb_scheme s;
    struct qb_qbfmt_writer *w = NULL;
    double t0 = qb_now_seconds();
    enum qb_status st = qb_scheme_parse(a->scheme, a->group, &s, err);
    if (st)
        return st;
    int bits = s.fmt == QB_WFMT_UINT_G ? s.qp.bits : 4;
    if (s.method != QB_METHOD_RTN ||
        (s.fmt != QB_WFMT_INT4 && s.fmt != QB_WFMT_INT4_SYM && s.fmt != QB_WFMT_UINT_G))
        return qb_err_set(err, QB_ERR_UNSUPPORTED, "quantize writes the integer-group schemes "
                          "(gptq-*, awq-int4, and RTN int4 / int4-sym / uint-g); '%s' is "
                          "evaluated in memory with eval --scheme", a->scheme);
    st = qb_model_apply_scheme(m, &s, progress, err);
    struct qb_qbfmt_meta meta = {QB_QBFMT_VERSION, "", QB_METHOD_RTN, bits, s.qp.group,
                                 s.fmt == QB_WFMT_INT4_SYM, 0, 0, 0};
    snprintf(meta.scheme, sizeof meta.scheme, "%s", s.name);
    if (!st)
        st = qb_qbfmt_writer_open(a->out, m, &meta, &w, err);
    for (int i = 0; !st && i < m->cfg.n_layers; i++)
        for (int k = 0; !st && k < QB_LIN_COUNT; k++)
            st = qb_qbfmt_writer_add_payload(w, i, k, m->layers[i].lin[k].data,
                                             m->layers[i].lin[k].data_bytes, err);
    rep->seconds = qb_now_seconds() - t0;
    rep->peak_rss_kb = qb_peak_rss_kb();
    return finish_or_abort(w, st, a, m, rep, err);
}

/* A Hugging Face quantized checkpoint: quantize in memory, then export. */
static enum qb_status quantize_hf(struct qb_quantize_opts *a, struct qb_model *m,
                                  struct qb_progress *progress, struct qb_qpipe_report *rep,
                                  struct qb_err *err)
{
    char *calib = NULL;
    size_t calib_len = 0;
    double t0 = qb_now_seconds();
    enum qb_status st = QB_OK;
    if (qb_qpipe_is_calibrated(a->scheme)) {
        st = qb_qpipe_opts_from_scheme(a->scheme, a->group, &a->po, err);
        if (!st)
            st = qb_qpipe_run(m, &a->po, progress, rep, err); /* packs in memory */
    } else {
        struct qb_scheme s;
        st = qb_scheme_parse(a->scheme, a->group, &s, err);
        if (!st)
            st = qb_model_apply_scheme(m, &s, progress, err);
    }
    if (!st && a->po.calib.path)
        st = qb_file_read_all(a->po.calib.path, (size_t)1 << 30, &calib, &calib_len, err);
    struct qb_hfq_export_opts o = {.calib_text = calib, .calib_len = calib_len,
                                   .n_threads = a->po.n_threads, .gptq_v2 = a->gptq_v2};
    struct qb_hfq_export_result r;
    if (!st)
        st = qb_hfq_export(m, a->out, &o, progress, &r, err);
    if (!st && r.gptq_zero0_groups)
        fprintf(stderr, "quantbench quantize: note: %lld GPTQ groups have zero 0; v1 readers "
                "decode them with zero 2^bits; use --gptq-v2 for an exact checkpoint\n",
                (long long)r.gptq_zero0_groups);
    rep->seconds = qb_now_seconds() - t0;
    rep->peak_rss_kb = qb_peak_rss_kb();
    free(calib);
    return st;
}

enum qb_status qb_quantize_run(struct qb_quantize_opts *a, struct qb_progress *progress,
                               struct qb_model **model_out, struct qb_qpipe_report *rep,
                               struct qb_err *err)
{
    struct qb_model *m = NULL;
    enum qb_status st;
    *model_out = NULL;
    if (strncmp(a->scheme, "gguf-", 5) == 0) {
        double t0 = qb_now_seconds();
        st = qb_gguf_export(a->model, a->scheme, a->out, progress, err);
        rep->seconds = qb_now_seconds() - t0;
        rep->peak_rss_kb = qb_peak_rss_kb();
        return st;
    }
    st = qb_model_load(a->model, NULL, &m, err);
    if (!st && a->format_hf)
        st = quantize_hf(a, m, progress, rep, err);
    else if (!st)
        st = qb_qpipe_is_calibrated(a->scheme) ? quantize_calibrated(a, m, progress, rep, err)
                                               : quantize_rtn(a, m, progress, rep, err);
    if (st) {
        qb_model_free(m);
        return st;
    }
    *model_out = m;
    return QB_OK;
}
