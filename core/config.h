/*
 * config.h - a model's config.json, reduced to what the engines need.
 *
 * Supported families: Llama (Llama 2/3/3.1/3.2, Mistral, SmolLM, TinyLlama),
 * Qwen2/2.5 (q/k/v biases) and Qwen3 (per-head q_norm/k_norm). RoPE settings
 * are read both as transformers v4 writes them (top-level rope_theta,
 * rope_scaling) and as v5 writes them (rope_parameters); scaling types
 * default, linear and llama3. Anything else (another model_type, a MoE model)
 * is QB_ERR_UNSUPPORTED with a message naming it and listing what we support.
 */
#ifndef QB_CONFIG_H
#define QB_CONFIG_H

#include <stddef.h>

#include "qb_common.h"

enum qb_arch {
    QB_ARCH_LLAMA = 0, /* llama, mistral (dense) */
    QB_ARCH_QWEN2,     /* q/k/v biases */
    QB_ARCH_QWEN3,     /* q_norm / k_norm per head */
};

enum qb_rope_type {
    QB_ROPE_DEFAULT = 0,
    QB_ROPE_LINEAR,
    QB_ROPE_LLAMA3,
};

struct qb_config {
    enum qb_arch arch;
    char model_type[32];     /* as written in config.json */
    int n_layers;
    int hidden;              /* hidden_size */
    int intermediate;        /* intermediate_size */
    int n_heads;
    int n_kv_heads;
    int head_dim;            /* head_dim or hidden / n_heads */
    int vocab;
    int max_ctx;             /* max_position_embeddings */
    float rms_eps;
    int tie_embeddings;
    int attn_bias;           /* q/k/v carry biases (qwen2 or attention_bias) */
    int o_bias;              /* o_proj carries a bias (attention_bias=true on llama) */
    int mlp_bias;
    int qk_norm;             /* qwen3 */
    int bos_id, eos_id;      /* -1 when absent */
    /* rope */
    enum qb_rope_type rope_type;
    double rope_theta;
    double rope_factor;           /* linear / llama3 */
    double rope_low_freq_factor;  /* llama3 */
    double rope_high_freq_factor; /* llama3 */
    int rope_orig_ctx;            /* llama3 original_max_position_embeddings */
    char torch_dtype[16];         /* "bfloat16", "float16", "float32" or "" */
};

/* Parse config.json at path. err names the file and the field on failure. */
enum qb_status qb_config_load(const char *path, struct qb_config *out, struct qb_err *err);

/* Same from a buffer (len bytes, need not be NUL-terminated); origin names it in errors. */
enum qb_status qb_config_parse(const char *json, size_t len, const char *origin,
                               struct qb_config *out, struct qb_err *err);

/* Inverse frequencies for RoPE: out[head_dim/2], after the configured scaling. */
void qb_config_rope_inv_freq(const struct qb_config *cfg, double *out);

/* "llama, mistral, qwen2, qwen3": what we support, for messages. */
const char *qb_config_supported_types(void);

#endif /* QB_CONFIG_H */
