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
 */
#ifndef QB_ENGINE_H
#define QB_ENGINE_H

#include <stdint.h>

#include "model.h"
#include "qb_common.h"

struct qb_engine;

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
