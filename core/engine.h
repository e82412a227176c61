/*
 * engine.h - the forward pass behind one interface, CPU or CUDA.
 *
 * An engine runs a loaded model (struct qb_model, read-only, in any weight
 * format) over token ids with a KV cache of max_ctx positions:
 *
 *   qb_engine_reset(e);                                   empty the KV cache
 *   qb_engine_forward(e, ids, n, logits_from, logits)     append n tokens at
 *       positions pos .. pos+n-1 (pos = tokens already in the cache) and write
 *       logits for positions logits_from .. n-1 of this call into
 *       logits[(n - logits_from)][vocab] (f32). logits_from = n skips lm_head.
 *
 * Prefill (n > 1) and decode (n = 1) are the same call. Backends:
 * engine_cpu.c (the plain, multithreaded reference every other path is
 * compared with) and kernels/engine_cuda.cu (when built with CUDA).
 * qb_engine_create (engine.c) picks one from a backend choice (auto, cpu,
 * cuda): eval, bench, doctor and word perplexity all create engines there.
 */
#ifndef QB_ENGINE_H
#define QB_ENGINE_H

#include <stdint.h>

#include "model.h"
#include "qb_common.h"

struct qb_engine;
struct qb_progress;

/* Where the forward pass runs. */
enum qb_backend {
    QB_BACKEND_AUTO = 0, /* cuda when this build has CUDA and a GPU is present, else cpu */
    QB_BACKEND_CPU,
    QB_BACKEND_CUDA,
};

/* Parse "auto|cpu|cuda" (QB_ERR_USAGE naming the choices otherwise). */
enum qb_status qb_backend_parse(const char *s, enum qb_backend *out, struct qb_err *err);
const char *qb_backend_name(enum qb_backend b); /* "auto", "cpu", "cuda" */
/* Resolve auto to cpu or cuda (cuda when built with CUDA and a GPU is present);
 * cpu and cuda are returned as they are. */
enum qb_backend qb_backend_resolve(enum qb_backend b);

struct qb_engine_ops {
    const char *name; /* "cpu", "cuda" */
    enum qb_status (*forward)(struct qb_engine *e, const int32_t *ids, int n, int logits_from,
                              float *logits, struct qb_err *err);
    void (*reset)(struct qb_engine *e);
    void (*destroy)(struct qb_engine *e);
};

/* Every backend's engine struct starts with this header. */
struct qb_engine {
    const struct qb_engine_ops *ops;
    const struct qb_model *model;
    int max_ctx;   /* KV cache capacity in positions */
    int pos;       /* positions filled */
};

struct qb_engine_opts {
    int max_ctx;    /* KV capacity; 0 = 512 */
    int n_threads;  /* CPU threads; 0 = all cores */
};

enum qb_status qb_engine_create_cpu(const struct qb_model *m, const struct qb_engine_opts *o,
                                    struct qb_engine **out, struct qb_err *err);
/* QB_ERR_NO_DEVICE when built without CUDA or no GPU is usable. */
enum qb_status qb_engine_create_cuda(const struct qb_model *m, const struct qb_engine_opts *o,
                                     struct qb_engine **out, struct qb_err *err);
/* 1 when this build has CUDA and a GPU is present. */
int qb_cuda_available(void);

/* The engine for m on backend (the one place engines are chosen):
 *   cpu   the CPU reference;
 *   cuda  the CUDA engine (QB_ERR_NO_DEVICE without CUDA or a GPU; the CUDA
 *         engine's error when it has no kernel for one of m's formats);
 *   auto  cuda when qb_backend_resolve says so AND the GPU has kernels for every
 *         weight of m (qb_cuda_supports), else cpu. When only the kernels are
 *         missing, the CPU reference runs m and a notice naming the format goes
 *         to progress's log (progress may be NULL).
 * *used (may be NULL) gets the backend that runs m (cpu or cuda), also when
 * creation fails. *out is NULL on failure. */
enum qb_status qb_engine_create(const struct qb_model *m, enum qb_backend backend,
                                const struct qb_engine_opts *o, struct qb_progress *progress,
                                enum qb_backend *used, struct qb_engine **out,
                                struct qb_err *err);

/* ---- layer-level access for calibration (CPU engine only) ----------------------
 * The GPTQ/AWQ pipeline runs calibration activations through one decoder layer
 * at a time. A hook sees the input of every decoder linear just before it is
 * multiplied (q, k and v share one input, as do gate and up). */
typedef void (*qb_linear_input_hook)(void *ctx, int layer, enum qb_linear_slot slot,
                                     const float *x /* [n][cols] */, int64_t n);

/* x[n][hidden] = embedding rows of ids. */
enum qb_status qb_cpu_embed(struct qb_engine *e, const int32_t *ids, int n, float *x,
                            struct qb_err *err);
/* Run decoder layer `layer` over x[n][hidden] in place as one sequence at positions
 * 0..n-1 (n <= max_ctx; the layer's KV cache slot is overwritten). hook may be NULL. */
enum qb_status qb_cpu_layer_forward(struct qb_engine *e, int layer, float *x, int n,
                                    qb_linear_input_hook hook, void *hook_ctx,
                                    struct qb_err *err);

static inline enum qb_status qb_engine_forward(struct qb_engine *e, const int32_t *ids, int n,
                                               int logits_from, float *logits, struct qb_err *err)
{
    return e->ops->forward(e, ids, n, logits_from, logits, err);
}

static inline void qb_engine_reset(struct qb_engine *e)
{
    e->ops->reset(e);
}

static inline void qb_engine_free(struct qb_engine *e)
{
    if (e)
        e->ops->destroy(e);
}

#endif /* QB_ENGINE_H */
