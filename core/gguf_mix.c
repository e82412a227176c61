/*
 * gguf_mix.c - which ggml type llama-quantize gives each tensor of a llama
 * model for an ftype (Q4_K_M and friends), without an importance matrix.
 *
 * Source: llama.cpp build b4748 (Feb 2025), src/llama-quant.cpp:
 *   llama_model_quantize_impl   default type per ftype; get_type is consulted
 *                               only when that default is a quantized type
 *                               (so F16/F32 ftypes convert every quantizable
 *                               tensor to the default); counts n_attention_wv
 *                               (one attn_v per layer) and has_output
 *   tensor_allows_quantization  (inline in b4748) only names ending in
 *                               "weight", >= 2-D, not "*_norm.weight",
 *                               not "ffn_gate_inp.weight"
 *   llama_tensor_get_type       the rules below, then the fallback for rows
 *                               not divisible by the type's block
 * plus llama-model.cpp load_hparams (LLM_ARCH_LLAMA: 80 layers with
 * n_head != n_head_kv is LLM_TYPE_70B) and llama_hparams::n_gqa() =
 * n_head / n_head_kv.
 *
 * Per-layer counters (i_attention_wv, i_ffn_down) count tensors in the order
 * the loader sorts them (layer number, then name), so they equal the layer
 * index N of "blk.N."; we parse N from the name.
 *
 * Rules for the architectures and ftypes we support (arch != FALCON):
 *   output.weight, or token_embd.weight when there is no output.weight:
 *       Q8_0 if ne0 % block(default) != 0, else Q6_K unless default is Q8_0
 *   attn_v.weight:
 *       Q2_K:   Q4_K if n_gqa >= 4 else Q3_K
 *       Q3_K_M: Q5_K for layers 0-1, else Q4_K
 *       Q3_K_L: Q5_K
 *       Q4_K_M, Q5_K_M: Q6_K where use_more_bits(layer, n_layer)
 *       Q4_K_S: Q5_K for layers 0-3
 *       then 70B models: Q3_K/Q4_K -> Q5_K; n_expert == 8: Q8_0
 *   attn_k.weight: n_expert == 8: Q8_0
 *   ffn_down:
 *       Q2_K: Q3_K
 *       Q3_K_M: Q5_K for layer < n_layer/16, else Q4_K
 *       Q3_K_L: Q5_K
 *       Q4_K_M, Q5_K_M: Q6_K where use_more_bits(layer, n_layer)
 *       Q4_K_S: Q5_K for layer < n_layer/8
 *   attn_output.weight:
 *       n_expert == 8: Q5_K for Q2_K, Q3_K_S, Q3_K_M, Q4_K_S, Q4_K_M
 *       else Q2_K: Q3_K, Q3_K_M: Q4_K, Q3_K_L: Q5_K
 *   attn_qkv.weight: Q3_K_M/Q3_K_L: Q4_K, Q4_K_M: Q5_K, Q5_K_M: Q6_K
 *   use_more_bits(i, n) = i < n/8 || i >= 7n/8 || (i - n/8) % 3 == 2
 *   fallback when ne0 % block(type) != 0 (convert_incompatible_tensor):
 *       Q2_K, Q3_K -> IQ4_NL (b4748; Q4_0 in llama.cpp's later
 *       tensor_type_fallback), Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0,
 *       then F16 if the fallback's 32-block does not fit either; any other
 *       type (Q4_0, Q8_0) makes llama-quantize fail.
 */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "gguf.h"

struct ftype_def {
    int ftype;
    const char *name;
    int default_type;
};

static const struct ftype_def ftypes[] = {
    {QB_GGUF_FTYPE_F32, "F32", QB_GGML_F32},       {QB_GGUF_FTYPE_F16, "F16", QB_GGML_F16},
    {QB_GGUF_FTYPE_Q4_0, "Q4_0", QB_GGML_Q4_0},    {QB_GGUF_FTYPE_Q8_0, "Q8_0", QB_GGML_Q8_0},
    {QB_GGUF_FTYPE_Q2_K, "Q2_K", QB_GGML_Q2_K},    {QB_GGUF_FTYPE_Q3_K_S, "Q3_K_S", QB_GGML_Q3_K},
    {QB_GGUF_FTYPE_Q3_K_M, "Q3_K_M", QB_GGML_Q3_K}, {QB_GGUF_FTYPE_Q3_K_L, "Q3_K_L", QB_GGML_Q3_K},
    {QB_GGUF_FTYPE_Q4_K_S, "Q4_K_S", QB_GGML_Q4_K}, {QB_GGUF_FTYPE_Q4_K_M, "Q4_K_M", QB_GGML_Q4_K},
    {QB_GGUF_FTYPE_Q5_K_S, "Q5_K_S", QB_GGML_Q5_K}, {QB_GGUF_FTYPE_Q5_K_M, "Q5_K_M", QB_GGML_Q5_K},
    {QB_GGUF_FTYPE_Q6_K, "Q6_K", QB_GGML_Q6_K},
};

static const struct ftype_def *find_ftype(int ftype)
{
    for (size_t i = 0; i < QB_ARRAY_LEN(ftypes); i++) {
        if (ftypes[i].ftype == ftype)
            return &ftypes[i];
    }
    return NULL;
}

int qb_gguf_ftype_from_name(const char *name)
{
    if (!strncasecmp(name, "gguf-", 5))
        name += 5;
    for (size_t i = 0; i < QB_ARRAY_LEN(ftypes); i++) {
        if (!strcasecmp(ftypes[i].name, name))
            return ftypes[i].ftype;
    }
    return -1;
}

const char *qb_gguf_ftype_name(int ftype)
{
    const struct ftype_def *d = find_ftype(ftype);
    return d ? d->name : "?";
}

static int ends_with(const char *s, const char *suffix)
{
    size_t ls = strlen(s), lx = strlen(suffix);
    return ls >= lx && strcmp(s + ls - lx, suffix) == 0;
}

static int contains(const char *s, const char *part) { return strstr(s, part) != NULL; }

static int allows_quantization(const char *name, int n_dims)
{
    return n_dims >= 2 && ends_with(name, "weight") && !contains(name, "_norm.weight") &&
           !contains(name, "ffn_gate_inp.weight");
}

static int use_more_bits(int i, int n)
{
    return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2;
}

static int is_quantized(int type)
{
    return type != QB_GGML_F32 && type != QB_GGML_F16 && type != QB_GGML_BF16;
}

/* Layer index from "blk.N."; -1 when absent. */
static int layer_of(const char *name)
{
    int layer;
    if (sscanf(name, "blk.%d.", &layer) != 1 || layer < 0)
        return -1;
    return layer;
}

static int block_of(int type) { return qb_ggml_type_info(type)->block; }

static int attn_v_type(int ftype, int t, int layer, const struct qb_gguf_mix_arch *a)
{
    const int n_gqa = a->n_head_kv > 0 ? a->n_head / a->n_head_kv : 0;
    switch (ftype) {
    case QB_GGUF_FTYPE_Q2_K: t = n_gqa >= 4 ? QB_GGML_Q4_K : QB_GGML_Q3_K; break;
    case QB_GGUF_FTYPE_Q3_K_M: t = layer < 2 ? QB_GGML_Q5_K : QB_GGML_Q4_K; break;
    case QB_GGUF_FTYPE_Q3_K_L: t = QB_GGML_Q5_K; break;
    case QB_GGUF_FTYPE_Q4_K_M:
    case QB_GGUF_FTYPE_Q5_K_M:
        if (use_more_bits(layer, a->n_layer))
            t = QB_GGML_Q6_K;
        break;
    case QB_GGUF_FTYPE_Q4_K_S:
        if (layer < 4)
            t = QB_GGML_Q5_K;
        break;
    default: break;
    }
    int is_70b = a->n_layer == 80 && a->n_head != a->n_head_kv;
    if (is_70b && (t == QB_GGML_Q3_K || t == QB_GGML_Q4_K))
        t = QB_GGML_Q5_K;
    if (a->n_expert == 8)
        t = QB_GGML_Q8_0;
    return t;
}

static int ffn_down_type(int ftype, int t, int layer, int n_layer)
{
    switch (ftype) {
    case QB_GGUF_FTYPE_Q2_K: return QB_GGML_Q3_K;
    case QB_GGUF_FTYPE_Q3_K_M: return layer < n_layer / 16 ? QB_GGML_Q5_K : QB_GGML_Q4_K;
    case QB_GGUF_FTYPE_Q3_K_L: return QB_GGML_Q5_K;
    case QB_GGUF_FTYPE_Q4_K_M:
    case QB_GGUF_FTYPE_Q5_K_M: return use_more_bits(layer, n_layer) ? QB_GGML_Q6_K : t;
    case QB_GGUF_FTYPE_Q4_K_S: return layer < n_layer / 8 ? QB_GGML_Q5_K : t;
    default: return t;
    }
}

static int attn_output_type(int ftype, int t, const struct qb_gguf_mix_arch *a)
{
    if (a->n_expert == 8) {
        if (ftype == QB_GGUF_FTYPE_Q2_K || ftype == QB_GGUF_FTYPE_Q3_K_S ||
            ftype == QB_GGUF_FTYPE_Q3_K_M || ftype == QB_GGUF_FTYPE_Q4_K_S ||
            ftype == QB_GGUF_FTYPE_Q4_K_M)
            return QB_GGML_Q5_K;
        return t;
    }
    switch (ftype) {
    case QB_GGUF_FTYPE_Q2_K: return QB_GGML_Q3_K;
    case QB_GGUF_FTYPE_Q3_K_M: return QB_GGML_Q4_K;
    case QB_GGUF_FTYPE_Q3_K_L: return QB_GGML_Q5_K;
    default: return t;
    }
}

static int attn_qkv_type(int ftype, int t)
{
    switch (ftype) {
    case QB_GGUF_FTYPE_Q3_K_M:
    case QB_GGUF_FTYPE_Q3_K_L: return QB_GGML_Q4_K;
    case QB_GGUF_FTYPE_Q4_K_M: return QB_GGML_Q5_K;
    case QB_GGUF_FTYPE_Q5_K_M: return QB_GGML_Q6_K;
    default: return t;
    }
}

/* llama_tensor_get_type before the shape fallback. */
static int rule_type(int ftype, int t, const struct qb_gguf_mix_arch *a, const char *name,
                     int64_t ne0)
{
    const int layer = layer_of(name);
    if (!strcmp(name, "output.weight") || (!a->has_output && !strcmp(name, "token_embd.weight"))) {
        if (ne0 % block_of(t) != 0)
            return QB_GGML_Q8_0;
        return t != QB_GGML_Q8_0 ? QB_GGML_Q6_K : t;
    }
    if (!strcmp(name, "token_embd.weight"))
        return t;
    if (contains(name, "attn_v.weight"))
        return attn_v_type(ftype, t, layer, a);
    if (contains(name, "attn_k.weight"))
        return a->n_expert == 8 ? QB_GGML_Q8_0 : t;
    if (contains(name, "ffn_down"))
        return ffn_down_type(ftype, t, layer, a->n_layer);
    if (contains(name, "attn_output.weight"))
        return attn_output_type(ftype, t, a);
    if (contains(name, "attn_qkv.weight"))
        return attn_qkv_type(ftype, t);
    return t;
}

enum qb_status qb_gguf_mix_type(int ftype, const struct qb_gguf_mix_arch *arch, const char *name,
                                int n_dims, int64_t ne0, int keep_type, int *out,
                                struct qb_err *err)
{
    const struct ftype_def *fd = find_ftype(ftype);
    if (!fd)
        return qb_err_set(err, QB_ERR_USAGE, "unknown GGUF file type %d", ftype);
    if (!allows_quantization(name, n_dims)) {
        *out = keep_type;
        return QB_OK;
    }
    int t = fd->default_type;
    if (!is_quantized(t)) {
        *out = t;
        return QB_OK;
    }
    t = rule_type(ftype, t, arch, name, ne0);
    if (ne0 % block_of(t) == 0) {
        *out = t;
        return QB_OK;
    }
    int fb;
    switch (t) {
    case QB_GGML_Q2_K:
    case QB_GGML_Q3_K: fb = arch->modern_fallback ? QB_GGML_Q4_0 : QB_GGML_IQ4_NL; break;
    case QB_GGML_Q4_K: fb = QB_GGML_Q5_0; break;
    case QB_GGML_Q5_K: fb = QB_GGML_Q5_1; break;
    case QB_GGML_Q6_K: fb = QB_GGML_Q8_0; break;
    default:
        return qb_err_set(err, QB_ERR_UNSUPPORTED,
                          "tensor '%s': row length %lld is not a multiple of %d, which %s needs "
                          "(llama-quantize refuses this shape too)", name, (long long)ne0,
                          block_of(t), qb_ggml_type_info(t)->name);
    }
    *out = ne0 % block_of(fb) == 0 ? fb : QB_GGML_F16;
    return QB_OK;
}
