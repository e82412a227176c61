/*
 * gguf_model.h - llama.cpp's GGUF quantization as a scheme on struct qb_model,
 * and GGUF files (ours and llama.cpp's) loaded as a struct qb_model.
 *
 * Schemes gguf-f16 ... gguf-q2_k (QB_METHOD_GGUF): every weight matrix, the
 * decoder linears AND token_embd/output, gets the ggml type llama-quantize
 * (b4748, no imatrix) gives it (gguf_mix.c), after rounding to F16 as
 * llama.cpp's HF->GGUF conversion does; the quantized rows are the exact
 * bytes a GGUF file holds (QB_WFMT_GGML linears). qb_model_apply_scheme calls
 * qb_gguf_model_apply_scheme for method GGUF.
 *
 * Loading (qb_model_load on a path ending in ".gguf" calls qb_gguf_model_load):
 * general.architecture must be "llama". Config from llama.* keys (block_count,
 * embedding_length, feed_forward_length, head_count(_kv), rope.freq_base,
 * rope.dimension_count, layer_norm_rms_epsilon, context_length), vocab from
 * token_embd.weight; tied embeddings when output.weight is absent. Tensor data
 * is copied into buffers the model owns (the file is closed after loading);
 * attn_q/attn_k rows are put back in Hugging Face order (the inverse of
 * convert_hf_to_gguf's permutation, applied to whole packed rows). Weights in
 * F32/F16/BF16 become dtype views, every other decodable ggml type a
 * QB_WFMT_GGML linear; norms become f32. The tokenizer comes from the
 * tokenizer.ggml.* keys (gguf_vocab.h). m->scheme is named after
 * general.file_type ("gguf-q4_k_m") with method NONE, so compare can still
 * apply other schemes on top of the dequantized weights.
 */
#ifndef QB_GGUF_MODEL_H
#define QB_GGUF_MODEL_H

#include "gguf.h"
#include "model.h"

/* 1 when path names a GGUF file to load (ends in ".gguf", not a directory). */
int qb_gguf_is_model_path(const char *path);

enum qb_status qb_gguf_model_load(const char *path, const struct qb_model_load_opts *opts,
                                  struct qb_model **out, struct qb_err *err);

/* Apply a gguf-* scheme in memory (see above). Reports per-layer progress and
 * stops with QB_ERR_CANCELLED when cancelled (the model is then unusable). */
enum qb_status qb_gguf_model_apply_scheme(struct qb_model *m, const struct qb_scheme *scheme,
                                          struct qb_progress *progress, struct qb_err *err);

/* GGUF tensor kind of a decoder linear slot (attn_q ... ffn_down). */
enum qb_gguf_llama_tensor qb_gguf_slot_tensor(enum qb_linear_slot slot);

/* The ggml type llama-quantize gives a weight matrix named gguf_name (row
 * length ne0) of model m under ftype (enum qb_gguf_ftype). */
enum qb_status qb_gguf_model_tensor_type(const struct qb_model *m, int ftype,
                                         const char *gguf_name, int64_t ne0, int *type,
                                         struct qb_err *err);

/* Round the weights of src to F16 and quantize them to ggml `type` into a new
 * QB_WFMT_GGML linear out (out->owned holds the GGUF row bytes). */
enum qb_status qb_gguf_quantize_linear(const struct qb_linear *src, int type, const char *name,
                                       struct qb_linear *out, struct qb_err *err);

#endif /* QB_GGUF_MODEL_H */
