/*
 * hfq_load.h - read quantized Hugging Face checkpoints (GPTQ incl. act-order,
 * AutoAWQ GEMM, compressed-tensors FP8 and NVFP4, ModelOpt NVFP4/FP8,
 * bitsandbytes NF4) into our packed formats, so a checkpoint pulled from the
 * Hub evaluates directly.
 *
 * qb_model_load() calls qb_hfq_detect() on the model directory: a config.json
 * "quantization_config" object (or, without one, an hf_quant_config.json as
 * ModelOpt writes) selects the method; then every decoder linear goes through
 * qb_hfq_load_linear() instead of the plain dtype view. The tensor layouts are
 * the ones hfq_export.h writes; repacking is exact (codes, f16 scales, zeros
 * and E4M3 scales are moved, never re-rounded; ModelOpt's weight_scale_2 is
 * inverted once into our 1/scale convention).
 *
 * Mapping to our formats:
 *   GPTQ bits 4 -> QB_WFMT_INT4, bits 2/3/8 -> QB_WFMT_UINT_G; group_size -1 or
 *     a multiple of 32 (records of 128/64/32 replicate the HF group's scale);
 *     v1 zeros (checkpoint_format gptq) get +1 mod 2^bits, gptq_v2 are taken as is;
 *     a non-trivial g_idx becomes our act-order g_idx.
 *   AWQ gemm -> QB_WFMT_INT4.    CT/ModelOpt FP8 -> QB_WFMT_FP8_E4M3 (a per-tensor
 *   scale is repeated per row).  NVFP4 -> QB_WFMT_NVFP4 (ModelOpt: act NVFP4,
 *   dynamic per-token; input_scale is not used).  bitsandbytes nf4 -> QB_WFMT_NF4
 *   or QB_WFMT_NF4_DQ (blocksize 64, nested 256 only).
 * Modules left unquantized (ignore lists, modules_to_not_convert) are recognised
 * by a float "P.weight" and become dtype views.
 *
 * Every inconsistency (missing key, wrong dtype or shape, group sizes that do not
 * match the config, an unknown method) is a one-line error naming the directory,
 * the tensor or key and what was expected.
 */
#ifndef QB_HFQ_LOAD_H
#define QB_HFQ_LOAD_H

#include <stddef.h>

#include "qb_common.h"
#include "quant.h"
#include "safetensors.h"

struct qb_hfq; /* a parsed quantization config */

/* Look at dir/config.json and dir/hf_quant_config.json. *out is NULL (and QB_OK)
 * for a plain checkpoint. */
enum qb_status qb_hfq_detect(const char *dir, struct qb_hfq **out, struct qb_err *err);

/* Parse config.json text (cfg, len bytes) and, when present, hf_quant_config.json
 * text (hq, hq_len; NULL if none). origin names the directory in errors. *out is
 * NULL when neither declares a quantization. The fuzz entry point. */
enum qb_status qb_hfq_config_parse(const char *cfg, size_t len, const char *hq, size_t hq_len,
                                   const char *origin, struct qb_hfq **out, struct qb_err *err);
void qb_hfq_free(struct qb_hfq *q); /* NULL-safe */

/* Build decoder linear `prefix` ("model.layers.3.mlp.down_proj") of shape
 * [rows][cols] from the checkpoint into *lin (owned payload; bias untouched). */
enum qb_status qb_hfq_load_linear(const struct qb_hfq *q, const struct qb_ckpt *ck,
                                  const char *prefix, int64_t rows, int64_t cols,
                                  struct qb_linear *lin, struct qb_err *err);

/* The scheme a loaded checkpoint is in ("gptq-int4", "awq-int4", "fp8", "nvfp4",
 * "nvfp4-w4a4", "nf4", "nf4-dq"), with its group. */
void qb_hfq_scheme(const struct qb_hfq *q, struct qb_scheme *out);

/* Short description for messages: "GPTQ 4-bit g128 (act-order)". */
const char *qb_hfq_describe(const struct qb_hfq *q);

#endif /* QB_HFQ_LOAD_H */
