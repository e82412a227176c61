/*
 * engine.c - the backend choice (auto, cpu, cuda) and the one function that
 * turns it into an engine (see engine.h). The engines themselves live in
 * engine_cpu.c and kernels/engine_cuda.cu; this file only picks one, and
 * runs a model on the CPU reference when auto finds the GPU without kernels
 * for one of its weight formats.
 */
#include "engine.h"

#include <string.h>

#include "kernels/qb_cuda.h"
#include "progress.h"

enum qb_status qb_backend_parse(const char *s, enum qb_backend *out, struct qb_err *err)
{
    if (strcmp(s, "auto") == 0)
        *out = QB_BACKEND_AUTO;
    else if (strcmp(s, "cpu") == 0)
        *out = QB_BACKEND_CPU;
    else if (strcmp(s, "cuda") == 0)
        *out = QB_BACKEND_CUDA;
    else
        return qb_err_set(err, QB_ERR_USAGE, "unknown backend '%s' (auto, cpu, cuda)", s);
    return QB_OK;
}

const char *qb_backend_name(enum qb_backend b)
{
    switch (b) {
    case QB_BACKEND_AUTO: return "auto";
    case QB_BACKEND_CPU: return "cpu";
    case QB_BACKEND_CUDA: return "cuda";
    }
    return "?";
}

enum qb_backend qb_backend_resolve(enum qb_backend b)
{
    if (b != QB_BACKEND_AUTO)
        return b;
    return qb_cuda_available() ? QB_BACKEND_CUDA : QB_BACKEND_CPU;
}

/* The first weight of m the CUDA engine has no kernel for; NULL when it runs all. */
static const struct qb_linear *cuda_missing_kernel(const struct qb_model *m)
{
    if (!qb_cuda_supports(m->embed.fmt, m->embed.qp.act))
        return &m->embed;
    if (!qb_cuda_supports(m->lm_head.fmt, m->lm_head.qp.act))
        return &m->lm_head;
    for (int l = 0; l < m->cfg.n_layers; l++) {
        for (int s = 0; s < QB_LIN_COUNT; s++) {
            const struct qb_linear *lin = &m->layers[l].lin[s];
            if (!qb_cuda_supports(lin->fmt, lin->qp.act))
                return lin;
        }
    }
    return NULL;
}

enum qb_status qb_engine_create(const struct qb_model *m, enum qb_backend backend,
                                const struct qb_engine_opts *o, struct qb_progress *progress,
                                enum qb_backend *used, struct qb_engine **out,
                                struct qb_err *err)
{
    enum qb_backend be = qb_backend_resolve(backend);
    const struct qb_linear *missing = NULL;
    *out = NULL;
    if (be == QB_BACKEND_CUDA && backend == QB_BACKEND_AUTO)
        missing = cuda_missing_kernel(m);
    if (missing) {
        be = QB_BACKEND_CPU;
        qb_progress_log(progress, "no GPU kernels for %s%s: running on the CPU reference",
                        qb_wfmt_get(missing->fmt)->name,
                        missing->qp.act != QB_ACT_F32 ? " with quantized activations" : "");
    }
    if (used)
        *used = be;
    if (be == QB_BACKEND_CUDA)
        return qb_engine_create_cuda(m, o, out, err);
    return qb_engine_create_cpu(m, o, out, err);
}
