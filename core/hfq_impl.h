/*
 * hfq_impl.h - internals shared by the Hugging Face quantized checkpoint
 * exporter (hfq_export.c, hfq_pack.c) and loader (hfq_load.c, hfq_unpack.c).
 * Not a public header.
 */
#ifndef QB_HFQ_IMPL_H
#define QB_HFQ_IMPL_H

#include <stdint.h>

#include "quant.h"
#include "safetensors_write.h"

/* AutoAWQ's order_map: nibble i of a word holds output column 8c + awq_order[i]. */
extern const int qb_hfq_awq_order[8];

/* A decoder linear's integer groups unpacked from our record layout. */
struct qb_hfq_groups {
    int bits, group; /* group = our record size (32/64/128) */
    int64_t rows, cols, ngroups;
    uint8_t *codes;   /* [rows][cols] */
    uint16_t *scales; /* [ngroups][rows] f16 bits (HF orientation) */
    uint8_t *zeros;   /* [ngroups][rows] */
    int32_t *g_idx;   /* [cols] */
};
enum qb_status qb_hfq_groups_from_linear(const struct qb_linear *lin, const char *name,
                                         struct qb_hfq_groups *g, struct qb_err *err);
void qb_hfq_groups_free(struct qb_hfq_groups *g);

/* Packers: add the tensors of one linear, prefix "model.layers.N.self_attn.q_proj". */
enum qb_status qb_hfq_pack_gptq(struct qb_stw *w, const char *prefix, const struct qb_linear *lin,
                                int v2, long long *zero0, struct qb_err *err);
enum qb_status qb_hfq_pack_awq(struct qb_stw *w, const char *prefix, const struct qb_linear *lin,
                               struct qb_err *err);
enum qb_status qb_hfq_pack_fp8(struct qb_stw *w, const char *prefix, const struct qb_linear *lin,
                               struct qb_err *err);
/* modelopt = 0: compressed-tensors names; 1: ModelOpt names with input_scale. */
enum qb_status qb_hfq_pack_nvfp4(struct qb_stw *w, const char *prefix, const struct qb_linear *lin,
                                 int modelopt, float input_amax, struct qb_err *err);
/* dtype_name: "bfloat16" etc. for the quant_state JSON. */
enum qb_status qb_hfq_pack_nf4(struct qb_stw *w, const char *prefix, const struct qb_linear *lin,
                               const char *dtype_name, struct qb_err *err);

/* Bit-stream helpers (LSB first, 32-bit words) used by GPTQ packing. */
static inline void qb_hfq_put_bits(uint32_t *words, int64_t stride, int64_t idx, int bits,
                                   uint32_t v)
{
    int64_t bit = idx * bits, w = bit / 32;
    int sh = (int)(bit % 32);
    words[w * stride] |= v << sh;
    if (sh + bits > 32)
        words[(w + 1) * stride] |= v >> (32 - sh);
}

static inline uint32_t qb_hfq_get_bits(const uint32_t *words, int64_t stride, int64_t idx, int bits)
{
    int64_t bit = idx * bits, w = bit / 32;
    int sh = (int)(bit % 32);
    uint64_t v = words[w * stride] >> sh;
    if (sh + bits > 32)
        v |= (uint64_t)words[(w + 1) * stride] << (32 - sh);
    return (uint32_t)(v & ((1u << bits) - 1u));
}

#endif /* QB_HFQ_IMPL_H */
