/*
 * qbfmt.h - quantbench's own on-disk quantized checkpoint: writer and loader.
 *
 * `quantbench quantize` writes one directory; qb_model_load() recognises it by
 * its quantbench.json and loads the decoder linears from their packed payloads.
 *
 *   DIR/
 *     config.json, tokenizer.json, tokenizer_config.json, special_tokens_map.json,
 *     generation_config.json   copied unchanged from the source model (when present)
 *     quantbench.json          what the linears hold and how they were made:
 *       {"format": "quantbench-quantized", "version": 1,
 *        "scheme": "gptq-int4", "method": "gptq"|"awq"|"rtn"|"none",
 *        "weight_format": "int4"|"int4-sym"|"uint-g", "bits": 4, "group": 128,
 *        "sym": false, "act_order": false, "static_groups": false, "damp": 0.01,
 *        "provenance": {...free-form: source model, calibration file, samples,
 *                       seqlen, seed, seconds, peak RSS, quantbench version}}
 *     model.safetensors        a standard safetensors file (safetensors.h), tensors:
 *       model.embed_tokens.weight, lm_head.weight (unless it is the embedding)
 *                                          baseline dtype (BF16/F16/F32), first
 *       model.norm.weight, model.layers.N.{input,post_attention}_layernorm.weight,
 *       model.layers.N.self_attn.{q,k}_norm.weight (qwen3)          F32 [dim]
 *       model.layers.N.<attn|mlp>.<proj>.bias                        F32 [rows]
 *       model.layers.N.<attn|mlp>.<proj>.qweight    U8 [rows][cols/G * R]
 *       model.layers.N.<attn|mlp>.<proj>.g_idx      I32 [cols]   (act-order only)
 *     Norms are F32 because AWQ folds its scales into them.
 *
 * qweight row r holds the cols/G records of that row, one per group g of G
 * consecutive input columns, R = 4 + G*b/8 bytes each (the integer-group layout
 * of the quant module, quant_blocks.h):
 *
 *   byte  0      1      2      3      4 ...                       R-1
 *        +------+------+------+------+-------------------------------+
 *        | scale (f16 LE)|  zero | bits | codes: G*b bits, LE stream  |
 *        +------+------+------+------+-------------------------------+
 *   code j of the group occupies bits [j*b, j*b + b) of the stream (b = 4: the
 *   even element in the low nibble; b = 3: 8 codes per 3 bytes).
 *   w[r][c] = f16(scale) * (code - zero) with the record of group g_idx[c]
 *   (c / G without g_idx), while the code of column c sits in record c / G at
 *   position c % G. zero <= 2^b - 1; bits repeats b (checked on load).
 *
 * Writing goes to DIR.tmp-XXXXXX next to DIR, renamed to DIR at the end; a failed
 * or cancelled run removes it, so DIR either holds a complete checkpoint or does
 * not exist. Nothing in a loaded file is trusted: every field, shape, record
 * header, zero point and g_idx entry is checked with an error naming the file.
 */
#ifndef QB_QBFMT_H
#define QB_QBFMT_H

#include <stddef.h>
#include <stdint.h>

#include "gptq.h"
#include "model.h"
#include "qb_common.h"
#include "quant.h"

#define QB_QBFMT_META "quantbench.json"
#define QB_QBFMT_VERSION 1
#define QB_QBFMT_MAX_META_BYTES (1u << 20)

struct qb_qbfmt_meta {
    int version;
    char scheme[32];
    enum qb_method method;
    int bits, group, sym, act_order, static_groups;
    double damp;
};

/* The weight format for (bits, sym): INT4, INT4_SYM or UINT_G, and its name
 * ("int4", "int4-sym", "uint-g"). */
enum qb_wfmt qb_qbfmt_wfmt(int bits, int sym);
const char *qb_qbfmt_wfmt_name(int bits, int sym);

/* Parse and check quantbench.json (len bytes); origin names it in errors. */
enum qb_status qb_qbfmt_parse_meta(const char *json, size_t len, const char *origin,
                                   struct qb_qbfmt_meta *out, struct qb_err *err);

/* Bytes of one record and of one row of records. */
size_t qb_qbfmt_record_bytes(int bits, int group);
/* Pack a result into out (rows * cols/G * R bytes). */
void qb_qbfmt_pack(const struct qb_qresult *q, uint8_t *out);
/* Check and dequantize a payload (bytes long) into out[rows][cols] (out NULL:
 * check only); g_idx may be NULL. name is the tensor's name for errors. */
enum qb_status qb_qbfmt_unpack(const uint8_t *payload, size_t bytes, int64_t rows, int64_t cols,
                               int bits, int group, const int32_t *g_idx, float *out,
                               const char *name, struct qb_err *err);

/* 1 when dir holds quantbench.json. */
int qb_qbfmt_is_dir(const char *dir);

/* Called by qb_model_load for such a directory, after config.json and the
 * safetensors are open (m->cfg, m->ckpt, m->dir set): fills embed, lm_head,
 * norms, the decoder linears (packed INT4 / INT4_SYM / UINT_G linears holding a
 * checked, aligned copy of the payload) and m->scheme. */
enum qb_status qb_qbfmt_load_weights(struct qb_model *m, struct qb_err *err);

/* ---- writer ---- */
struct qb_qbfmt_writer;

/* Start writing a checkpoint for model m (unquantized shapes, any state) into
 * out_dir, which must not exist. */
enum qb_status qb_qbfmt_writer_open(const char *out_dir, const struct qb_model *m,
                                    const struct qb_qbfmt_meta *meta,
                                    struct qb_qbfmt_writer **out, struct qb_err *err);
/* Store one quantized linear (a qb_qpipe_sink: ctx is the writer). */
enum qb_status qb_qbfmt_writer_add(void *ctx, int layer, enum qb_linear_slot slot,
                                   const struct qb_qresult *q, struct qb_err *err);
/* Store a linear already packed in the integer-group layout (an RTN int4 /
 * int4-sym / uint-g linear of the quant module); bytes must match the layout. */
enum qb_status qb_qbfmt_writer_add_payload(struct qb_qbfmt_writer *w, int layer,
                                           enum qb_linear_slot slot, const void *data,
                                           size_t bytes, struct qb_err *err);
/* Write the embeddings, norms and biases of m (as they are now), quantbench.json
 * with `provenance` (a JSON object text, may be NULL), copy the config and
 * tokenizer files and rename into place. Frees the writer either way. */
enum qb_status qb_qbfmt_writer_finish(struct qb_qbfmt_writer *w, const struct qb_model *m,
                                      const char *provenance, struct qb_err *err);
/* Remove the temporary directory and free (NULL-safe). */
void qb_qbfmt_writer_abort(struct qb_qbfmt_writer *w);

#endif /* QB_QBFMT_H */
