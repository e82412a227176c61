/*
 * model.h - a loaded decoder-only transformer: config, tokenizer and weights.
 *
 * qb_model_load() opens a Hugging Face checkpoint directory (config.json,
 * tokenizer.json, safetensors) and builds views of every weight without
 * copying: linear layers are dtype views (struct qb_linear with fmt BF16/F16/
 * F32) pointing into the mmapped shards. qb_model_apply_scheme() then
 * replaces the decoder linears (q, k, v, o, gate, up, down) with packed
 * quantized copies that the model owns; embeddings and lm_head stay in the
 * baseline dtype. Norm vectors are converted to f32 once (they are tiny).
 *
 * Shapes (HF convention, W is [out][in]):
 *   embed    [vocab][hidden]          lm_head [vocab][hidden] (aliases embed when tied)
 *   q        [n_heads*head_dim][hidden]     k, v [n_kv_heads*head_dim][hidden]
 *   o        [hidden][n_heads*head_dim]
 *   gate, up [intermediate][hidden]         down [hidden][intermediate]
 *   norms    [hidden]; q_norm/k_norm [head_dim] (qwen3)
 *   biases   q/k/v (qwen2 or attention_bias), o (attention_bias), mlp (mlp_bias)
 *
 * A model is read-only after loading/applying a scheme and may be shared by
 * several engines and threads.
 */
#ifndef QB_MODEL_H
#define QB_MODEL_H

#include "config.h"
#include "dtype.h"
#include "progress.h"
#include "qb_common.h"
#include "quant.h"
#include "safetensors.h"
#include "tokenizer.h"

enum qb_linear_slot {
    QB_LIN_Q = 0,
    QB_LIN_K,
    QB_LIN_V,
    QB_LIN_O,
    QB_LIN_GATE,
    QB_LIN_UP,
    QB_LIN_DOWN,
    QB_LIN_COUNT
};

/* "q_proj", "k_proj", ... as in HF tensor names. */
const char *qb_linear_slot_name(enum qb_linear_slot slot);

struct qb_layer {
    struct qb_linear lin[QB_LIN_COUNT];
    float *attn_norm;  /* [hidden] */
    float *ffn_norm;   /* [hidden] */
    float *q_norm;     /* [head_dim] or NULL */
    float *k_norm;     /* [head_dim] or NULL */
};

struct qb_model {
    char *dir;
    struct qb_config cfg;
    struct qb_tokenizer *tok;     /* NULL when loaded without a tokenizer */
    struct qb_ckpt *ckpt;
    enum qb_dtype base_dtype;     /* dtype of the checkpoint's decoder weights */
    struct qb_linear embed;       /* [vocab][hidden] */
    struct qb_linear lm_head;     /* [vocab][hidden] */
    float *final_norm;            /* [hidden] */
    struct qb_layer *layers;      /* [n_layers] */
    struct qb_scheme scheme;      /* the scheme the decoder linears are in */
};

struct qb_model_load_opts {
    int no_tokenizer;             /* skip tokenizer.json */
};

/* Load dir. On failure *out is NULL and err names the file and field. */
enum qb_status qb_model_load(const char *dir, const struct qb_model_load_opts *opts,
                             struct qb_model **out, struct qb_err *err);
void qb_model_free(struct qb_model *m); /* NULL-safe */

/* Quantize the decoder linears with an RTN (or baseline-cast) scheme. Calibrated
 * schemes (GPTQ/AWQ) go through their own modules. Reports per-layer progress. */
enum qb_status qb_model_apply_scheme(struct qb_model *m, const struct qb_scheme *scheme,
                                     struct qb_progress *progress, struct qb_err *err);

/* Bytes of the decoder linear payloads as they sit in memory now (packed size). */
size_t qb_model_decoder_bytes(const struct qb_model *m);
/* Number of parameters in the decoder linears. */
int64_t qb_model_decoder_params(const struct qb_model *m);
/* Bytes of every weight (embeddings, lm_head, norms, decoder) as held now. */
size_t qb_model_weight_bytes(const struct qb_model *m);

/* The f32 weights of one decoder linear (dequantized from whatever it is now);
 * out holds rows*cols floats. */
void qb_model_linear_to_f32(const struct qb_linear *lin, float *out);

#endif /* QB_MODEL_H */
