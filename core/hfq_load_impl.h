/*
 * hfq_load_impl.h - the parsed quantization config and the per-format
 * unpackers of the Hugging Face quantized checkpoint loader. Not public.
 */
#ifndef QB_HFQ_LOAD_IMPL_H
#define QB_HFQ_LOAD_IMPL_H

#include "hfq_load.h"

enum qb_hfq_method { QB_HFQ_GPTQ, QB_HFQ_AWQ, QB_HFQ_CT, QB_HFQ_MODELOPT, QB_HFQ_BNB };
enum qb_hfq_wkind { QB_HFQ_W_FP8, QB_HFQ_W_NVFP4 };

struct qb_hfq {
    enum qb_hfq_method method;
    int bits;                /* GPTQ/AWQ */
    int group_size;          /* GPTQ/AWQ (-1 = per channel), 16 for NVFP4 */
    int desc_act, sym, v2;   /* GPTQ */
    enum qb_hfq_wkind wkind; /* compressed-tensors / ModelOpt */
    int act;                 /* input activations quantized (W4A4 / W8A8) */
    int dq;                  /* bitsandbytes double quant (as declared) */
    char desc[96];
};

/* Our record group (128, 64 or 32) for an HF group size gs (-1: per channel over
 * cols): the largest that divides gs (or cols) and cols (cols 0: not checked). */
static inline int qb_hfq_record_group(int gs, int64_t cols)
{
    int64_t eff = gs > 0 ? gs : (cols > 0 ? cols : 128);
    for (int g = 128; g >= 32; g /= 2)
        if (eff % g == 0 && (cols == 0 || cols % g == 0))
            return g;
    return 0;
}

#define QB_HFQ_UNPACK(fn)                                                                          \
    enum qb_status fn(const struct qb_hfq *q, const struct qb_ckpt *ck, const char *prefix,        \
                      int64_t rows, int64_t cols, struct qb_linear *lin, struct qb_err *err)
QB_HFQ_UNPACK(qb_hfq_unpack_gptq);
QB_HFQ_UNPACK(qb_hfq_unpack_awq);
QB_HFQ_UNPACK(qb_hfq_unpack_nvfp4);
QB_HFQ_UNPACK(qb_hfq_unpack_fp8);
QB_HFQ_UNPACK(qb_hfq_unpack_nf4);

#endif /* QB_HFQ_LOAD_IMPL_H */
