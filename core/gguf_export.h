/*
 * gguf_export.h - write a Hugging Face Llama checkpoint as a GGUF file that
 * llama.cpp and Ollama load, quantized the way llama.cpp's own path does it
 * (convert_hf_to_gguf --outtype f16, then llama-quantize FTYPE without an
 * importance matrix), plus an Ollama Modelfile beside it.
 *
 * File contents:
 *   metadata  general.architecture "llama", general.name (the directory's
 *             base name), llama.* hyper-parameters, general.file_type,
 *             general.quantization_version 2; the tokenizer:
 *             tokenizer.ggml.model "gpt2", .pre (from the tokenizer.json split
 *             regexes, e.g. "llama-bpe" for the Llama-3 pattern), .tokens,
 *             .token_type (added special tokens CONTROL, other added tokens
 *             USER_DEFINED, padding up to vocab_size "[PADn]" UNUSED),
 *             .merges, .bos_token_id, .eos_token_id, .add_bos_token (the
 *             post-processor adds a BOS), .add_eos_token, .chat_template
 *             when tokenizer_config.json has one.
 *   tensors   token_embd, blk.N.{attn_norm,attn_q,attn_k,attn_v,attn_output,
 *             ffn_norm,ffn_gate,ffn_up,ffn_down}, output_norm, output (absent
 *             when the embeddings are tied). Norms F32; every weight matrix
 *             rounded to F16 and quantized to the ggml type of the b4748 mix
 *             rules (gguf_mix.c); attn_q/attn_k rows permuted as
 *             convert_hf_to_gguf does. Block bytes equal llama.cpp's.
 *   alignment 32 (the GGUF default).
 *
 * Supported checkpoints: config.json model_type llama/mistral without
 * biases, RoPE default or linear; byte-level BPE tokenizer.json. Others are
 * QB_ERR_UNSUPPORTED with a message naming what is not supported.
 *
 * Modelfile (Ollama), written to the GGUF's directory as "Modelfile":
 *   FROM ./NAME.gguf, a raw-prompt TEMPLATE (base models have no chat
 *   format), PARAMETER stop with the EOS token text, PARAMETER num_ctx.
 *
 * Both files are written atomically (temporary file + rename). On any error or
 * cancellation (qb_progress_cancelled between tensors) nothing is left behind.
 */
#ifndef QB_GGUF_EXPORT_H
#define QB_GGUF_EXPORT_H

#include "progress.h"
#include "qb_common.h"

/* Export model_dir (HF checkpoint directory) under scheme ("gguf-q4_k_m", or
 * the bare ftype "q4_k_m"; see qb_gguf_ftype_from_name) to out_path and its
 * Modelfile. progress may be NULL. */
enum qb_status qb_gguf_export(const char *model_dir, const char *scheme, const char *out_path,
                              struct qb_progress *progress, struct qb_err *err);

/* The Modelfile text for a GGUF file name (base name, e.g. "m.gguf"), EOS
 * token text (NULL: no stop line) and context length. Malloced; NULL on OOM. */
char *qb_gguf_modelfile_text(const char *gguf_basename, const char *eos_text, int n_ctx);

#endif /* QB_GGUF_EXPORT_H */
