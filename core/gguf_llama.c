/*
 * gguf_llama.c - what a llama-architecture GGUF needs beyond the container:
 * metadata keys, tensor names (and the Hugging Face -> GGUF mapping), the Q/K
 * row permutation, and the tokenizer.ggml.pre <-> split-regex tables.
 *
 * Sources (facts, paraphrased): convert_hf_to_gguf.py (LlamaModel,
 * TextModel.set_gguf_parameters, permute), gguf-py constants.py (key and
 * tensor names), llama.cpp src/llama-vocab.cpp (pre names and the regex list
 * llm_tokenizer_bpe uses for each pre type).
 *
 * Q/K permutation: HF stores each head's rows as [first halves of the rotary
 * pairs | second halves] (rotate_half); llama.cpp's LLAMA rope wants the two
 * members of a pair adjacent. For head h, head_dim hd, i < hd/2, j in {0,1}:
 *     gguf_row[h*hd + 2i + j] = hf_row[h*hd + j*hd/2 + i]
 * Q uses n_head heads, K uses n_head_kv. Quantize after permuting.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "gguf.h"

/* ---- metadata ---------------------------------------------------------------- */

enum qb_status qb_gguf_llama_add_metadata(struct qb_gguf_writer *w, const struct qb_gguf_llama_hparams *hp,
                                          struct qb_err *err)
{
    uint32_t head_dim = hp->head_dim ? hp->head_dim : (hp->n_head ? hp->n_embd / hp->n_head : 0);
    enum qb_status st = qb_gguf_add_str(w, "general.architecture", "llama", err);
    if (!st && hp->name)
        st = qb_gguf_add_str(w, "general.name", hp->name, err);
    if (!st)
        st = qb_gguf_add_u32(w, "llama.block_count", hp->n_layer, err);
    if (!st)
        st = qb_gguf_add_u32(w, "llama.context_length", hp->n_ctx, err);
    if (!st)
        st = qb_gguf_add_u32(w, "llama.embedding_length", hp->n_embd, err);
    if (!st)
        st = qb_gguf_add_u32(w, "llama.feed_forward_length", hp->n_ff, err);
    if (!st)
        st = qb_gguf_add_u32(w, "llama.attention.head_count", hp->n_head, err);
    if (!st)
        st = qb_gguf_add_u32(w, "llama.attention.head_count_kv", hp->n_head_kv, err);
    if (!st)
        st = qb_gguf_add_f32(w, "llama.rope.freq_base", hp->rope_theta, err);
    if (!st)
        st = qb_gguf_add_f32(w, "llama.attention.layer_norm_rms_epsilon", hp->rms_norm_eps, err);
    if (!st)
        st = qb_gguf_add_u32(w, "general.file_type", hp->file_type, err);
    if (!st)
        st = qb_gguf_add_u32(w, "llama.vocab_size", hp->n_vocab, err);
    if (!st)
        st = qb_gguf_add_u32(w, "llama.rope.dimension_count", head_dim, err);
    if (!st)
        st = qb_gguf_add_u32(w, "general.quantization_version", 2, err);
    return st;
}

static enum qb_status get_u32_key(const struct qb_gguf *g, const char *key, uint32_t *out, int required,
                                  struct qb_err *err)
{
    uint64_t v;
    enum qb_status st = qb_gguf_get_uint(g, key, &v, err);
    if (st == QB_ERR_RANGE && !required)
        return QB_OK;
    if (st)
        return st;
    if (v > UINT32_MAX)
        return qb_err_set(err, QB_ERR_FORMAT, "GGUF key '%s' = %llu is out of range", key,
                          (unsigned long long)v);
    *out = (uint32_t)v;
    return QB_OK;
}

enum qb_status qb_gguf_llama_read_hparams(const struct qb_gguf *g, struct qb_gguf_llama_hparams *hp,
                                          struct qb_err *err)
{
    const char *arch;
    double f;
    memset(hp, 0, sizeof *hp);
    enum qb_status st = qb_gguf_get_str(g, "general.architecture", &arch, NULL, err);
    if (st)
        return st;
    if (strcmp(arch, "llama") != 0)
        return qb_err_set(err, QB_ERR_UNSUPPORTED,
                          "GGUF architecture '%s' is not supported (only 'llama')", arch);
    if (qb_gguf_find_key(g, "general.name") >= 0)
        qb_gguf_get_str(g, "general.name", &hp->name, NULL, NULL);
    st = get_u32_key(g, "llama.block_count", &hp->n_layer, 1, err);
    if (!st)
        st = get_u32_key(g, "llama.context_length", &hp->n_ctx, 1, err);
    if (!st)
        st = get_u32_key(g, "llama.embedding_length", &hp->n_embd, 1, err);
    if (!st)
        st = get_u32_key(g, "llama.feed_forward_length", &hp->n_ff, 1, err);
    if (!st)
        st = get_u32_key(g, "llama.attention.head_count", &hp->n_head, 1, err);
    hp->n_head_kv = hp->n_head;
    if (!st)
        st = get_u32_key(g, "llama.attention.head_count_kv", &hp->n_head_kv, 0, err);
    if (!st)
        st = get_u32_key(g, "llama.vocab_size", &hp->n_vocab, 0, err);
    if (!st)
        st = get_u32_key(g, "llama.rope.dimension_count", &hp->head_dim, 0, err);
    if (!st)
        st = get_u32_key(g, "general.file_type", &hp->file_type, 0, err);
    if (st)
        return st;
    if (!hp->head_dim && hp->n_head)
        hp->head_dim = hp->n_embd / hp->n_head;
    hp->rope_theta = 10000.0f;
    st = qb_gguf_get_float(g, "llama.rope.freq_base", &f, err);
    if (!st)
        hp->rope_theta = (float)f;
    else if (st != QB_ERR_RANGE)
        return st;
    st = qb_gguf_get_float(g, "llama.attention.layer_norm_rms_epsilon", &f, err);
    if (st)
        return st;
    hp->rms_norm_eps = (float)f;
    if (hp->n_head == 0 || hp->n_head_kv == 0 || hp->n_head % hp->n_head_kv != 0)
        return qb_err_set(err, QB_ERR_FORMAT, "GGUF head counts %u / %u (kv) are inconsistent",
                          hp->n_head, hp->n_head_kv);
    return QB_OK;
}

/* ---- tensor names -------------------------------------------------------------- */

static const char *const tensor_stems[QB_GGUF_T_COUNT] = {
    [QB_GGUF_T_TOKEN_EMBD] = "token_embd",   [QB_GGUF_T_OUTPUT_NORM] = "output_norm",
    [QB_GGUF_T_OUTPUT] = "output",           [QB_GGUF_T_ATTN_NORM] = "attn_norm",
    [QB_GGUF_T_ATTN_Q] = "attn_q",           [QB_GGUF_T_ATTN_K] = "attn_k",
    [QB_GGUF_T_ATTN_V] = "attn_v",           [QB_GGUF_T_ATTN_OUTPUT] = "attn_output",
    [QB_GGUF_T_FFN_NORM] = "ffn_norm",       [QB_GGUF_T_FFN_GATE] = "ffn_gate",
    [QB_GGUF_T_FFN_UP] = "ffn_up",           [QB_GGUF_T_FFN_DOWN] = "ffn_down",
};

char *qb_gguf_llama_tensor_name(enum qb_gguf_llama_tensor t, int layer, char *buf, size_t cap)
{
    if (t <= QB_GGUF_T_OUTPUT)
        snprintf(buf, cap, "%s.weight", tensor_stems[t]);
    else
        snprintf(buf, cap, "blk.%d.%s.weight", layer, tensor_stems[t]);
    return buf;
}

struct hf_map {
    const char *hf;   /* suffix after "model.layers.N." or a whole name */
    const char *gguf; /* stem */
};

static const struct hf_map hf_block_map[] = {
    {"input_layernorm", "attn_norm"},      {"self_attn.q_proj", "attn_q"},
    {"self_attn.k_proj", "attn_k"},        {"self_attn.v_proj", "attn_v"},
    {"self_attn.o_proj", "attn_output"},   {"post_attention_layernorm", "ffn_norm"},
    {"mlp.gate_proj", "ffn_gate"},         {"mlp.up_proj", "ffn_up"},
    {"mlp.down_proj", "ffn_down"},
};

static const struct hf_map hf_top_map[] = {
    {"model.embed_tokens", "token_embd"},
    {"model.norm", "output_norm"},
    {"lm_head", "output"},
};

/* Split "stem.weight" / "stem.bias"; returns the suffix (".weight") or NULL. */
static const char *param_suffix(const char *name, size_t *stem_len)
{
    const char *dot = strrchr(name, '.');
    if (!dot || (strcmp(dot, ".weight") != 0 && strcmp(dot, ".bias") != 0))
        return NULL;
    *stem_len = (size_t)(dot - name);
    return dot;
}

int qb_gguf_llama_name_from_hf(const char *hf_name, char *buf, size_t cap)
{
    size_t stem_len;
    const char *suffix = param_suffix(hf_name, &stem_len);
    if (!suffix)
        return -1;
    for (size_t i = 0; i < QB_ARRAY_LEN(hf_top_map); i++) {
        if (strlen(hf_top_map[i].hf) == stem_len && !strncmp(hf_name, hf_top_map[i].hf, stem_len)) {
            snprintf(buf, cap, "%s%s", hf_top_map[i].gguf, suffix);
            return 0;
        }
    }
    const char *prefix = "model.layers.";
    if (strncmp(hf_name, prefix, strlen(prefix)) != 0)
        return -1;
    const char *p = hf_name + strlen(prefix);
    char *end;
    long layer = strtol(p, &end, 10);
    if (end == p || *end != '.' || layer < 0 || layer > 100000)
        return -1;
    const char *rest = end + 1;
    size_t rest_len = (size_t)(hf_name + stem_len - rest);
    for (size_t i = 0; i < QB_ARRAY_LEN(hf_block_map); i++) {
        if (strlen(hf_block_map[i].hf) == rest_len && !strncmp(rest, hf_block_map[i].hf, rest_len)) {
            snprintf(buf, cap, "blk.%ld.%s%s", layer, hf_block_map[i].gguf, suffix);
            return 0;
        }
    }
    return -1;
}

/* ---- Q/K permutation ------------------------------------------------------------- */

static int permute_rows(const void *src, void *dst, int64_t rows, int64_t cols, int n_head,
                        size_t elem_size, int inverse)
{
    if (n_head <= 0 || rows <= 0 || cols <= 0 || rows % n_head != 0 || (rows / n_head) % 2 != 0 ||
        src == dst)
        return -1;
    const int64_t hd = rows / n_head;
    const size_t row_bytes = (size_t)cols * elem_size;
    for (int64_t h = 0; h < n_head; h++) {
        for (int64_t i = 0; i < hd / 2; i++) {
            for (int64_t j = 0; j < 2; j++) {
                int64_t gguf_row = h * hd + 2 * i + j;
                int64_t hf_row = h * hd + j * (hd / 2) + i;
                int64_t to = inverse ? hf_row : gguf_row, from = inverse ? gguf_row : hf_row;
                memcpy((char *)dst + (size_t)to * row_bytes,
                       (const char *)src + (size_t)from * row_bytes, row_bytes);
            }
        }
    }
    return 0;
}

int qb_gguf_permute_qk(const void *src, void *dst, int64_t rows, int64_t cols, int n_head,
                       size_t elem_size)
{
    return permute_rows(src, dst, rows, cols, n_head, elem_size, 0);
}

int qb_gguf_unpermute_qk(const void *src, void *dst, int64_t rows, int64_t cols, int n_head,
                         size_t elem_size)
{
    return permute_rows(src, dst, rows, cols, n_head, elem_size, 1);
}

/* ---- tokenizer.ggml.pre ------------------------------------------------------------ */

#define RX_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"
#define RX_CONTRACTIONS "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"
#define RX_LLAMA3 RX_CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+" \
    "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RX_QWEN2 RX_CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+" \
    "[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RX_PORO " ?[^(\\s|.,!?…。，、।۔،)]+"

static const char *const rx_llama3[] = {RX_LLAMA3};
static const char *const rx_qwen2[] = {RX_QWEN2};
static const char *const rx_gpt2[] = {RX_GPT2};
static const char *const rx_gpt2_hf[] = {RX_GPT2 "|\\s+"};
static const char *const rx_starcoder[] = {"\\p{N}", RX_GPT2};
static const char *const rx_starcoder_hf[] = {"\\p{N}", RX_GPT2 "|\\s+"};
static const char *const rx_falcon[] = {"[\\p{P}\\$\\+<=>\\^~\\|`]+", RX_GPT2, "[0-9][0-9][0-9]"};
static const char *const rx_deepseek_llm[] = {
    "[\r\n]",
    "\\s?[A-Za-zµÀ-ÖØ-öø-ƺƼ-ƿǄ-ʓʕ-ʯͰ-ͳͶͷͻ-ͽͿΆΈ-ΊΌΎ-ΡΣ-ϵϷ-ҁҊ-ԯԱ-ՖႠ-ჅᎠ-Ᏽᏸ-ᏽᲐ-ᲺᲽ-Ჿᴀ-ᴫᵫ-ᵷᵹ-ᶚḀ-ἕἘ-Ἕἠ-ὅὈ-Ὅὐ-ὗὙὛὝὟ-\\x{1f7d}ᾀ-ᾴᾶ-ᾼ\\x{1fbe}ῂ-ῄῆ-ῌῐ-\\x{1fd3}ῖ-\\x{1fdb}ῠ-Ῥῲ-ῴῶ-ῼℂℇℊ-ℓℕℙ-ℝℤ\\x{2126}ℨ\\x{212a}-ℭℯ-ℴℹℼ-ℿⅅ-ⅉⅎↃↄⰀ-ⱻⱾ-ⳤⳫ-ⳮⳲⳳꙀ-ꙭꚀ-ꚛꜢ-ꝯꝱ-ꞇꞋ-ꞎꭰ-ꮿﬀ-ﬆﬓ-ﬗＡ-Ｚａ-ｚ\U00010400-\U0001044f𐒰-𐓓𐓘-𐓻𐲀-𐲲𐳀-𐳲𑢠-𑣟𞤀-𞥃]+",
    "\\s?[!-/:-~！-／：-～‘-‟　-。]+",
    "\\s+$",
    "[一-龥ࠀ-一가-퟿]+",
    "\\p{N}+",
};
static const char *const rx_deepseek_coder[] = {
    "[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", "[一-龥ࠀ-一가-퟿]+", "\\p{N}",
};
static const char *const rx_deepseek_v3[] = {
    "\\p{N}{1,3}",
    "[一-龥぀-ゟ゠-ヿ]+",
    "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+|"
    " ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+",
};
static const char *const rx_poro[] = {RX_PORO};
static const char *const rx_viking[] = {RX_PORO, "\\p{N}"};
static const char *const rx_default[] = {
    "[\\p{P}\\$\\+<=>\\^~\\|]+", RX_GPT2, "\\p{N}+", "[0-9][0-9][0-9]",
};

struct pre_def {
    const char *const *names; /* NULL-terminated; names[0] is what we write */
    const char *const *rx;
    size_t n_rx;
};

#define NAMES(...) ((const char *const[]){__VA_ARGS__, NULL})
#define RX(a) a, QB_ARRAY_LEN(a)

/* llama-vocab.cpp: pre name -> pre type -> regex list. */
static const struct pre_def pre_defs[] = {
    {NAMES("llama-bpe", "llama3", "llama-v3", "dbrx", "smaug-bpe", "falcon3", "falcon-h1", "pixtral",
           "chatglm-bpe"), RX(rx_llama3)},
    {NAMES("qwen2", "stablelm2", "deepseek-r1-qwen", "megrez", "hunyuan"), RX(rx_qwen2)},
    {NAMES("gpt-2", "mpt", "olmo", "jais", "phi-2", "jina-es", "jina-de", "jina-v2-es",
           "jina-v2-de", "gigachat", "trillion"), RX(rx_gpt2)},
    {NAMES("starcoder", "refact", "command-r", "smollm", "codeshell", "exaone", "minerva-7b"),
     RX(rx_starcoder)},
    {NAMES("falcon"), RX(rx_falcon)},
    {NAMES("deepseek-llm"), RX(rx_deepseek_llm)},
    {NAMES("deepseek-coder"), RX(rx_deepseek_coder)},
    {NAMES("deepseek-v3", "hunyuan-dense"), RX(rx_deepseek_v3)},
    {NAMES("poro-chat", "bloom", "gpt3-finnish"), RX(rx_poro)},
    {NAMES("viking"), RX(rx_viking)},
    {NAMES("default"), RX(rx_default)},
};

/* Hugging Face spellings that llama.cpp rewrote (forward lookup only). */
static const struct pre_def pre_hf_aliases[] = {
    {NAMES("gpt-2"), RX(rx_gpt2_hf)},
    {NAMES("starcoder"), RX(rx_starcoder_hf)},
};

const char *const *qb_gguf_pre_regexes(const char *pre, size_t *n, int *known)
{
    for (size_t d = 0; pre && d < QB_ARRAY_LEN(pre_defs); d++) {
        for (const char *const *nm = pre_defs[d].names; *nm; nm++) {
            if (strcmp(*nm, pre) == 0) {
                *n = pre_defs[d].n_rx;
                if (known)
                    *known = 1;
                return pre_defs[d].rx;
            }
        }
    }
    if (known)
        *known = 0;
    *n = QB_ARRAY_LEN(rx_default);
    return rx_default;
}

/* Canonical spelling for comparison: (?i:'s|...) expanded as llama.cpp does,
 * literal CR/LF written as \r / \n escapes. Returns malloced text or NULL. */
static char *normalize_regex(const char *rx)
{
    static const char ci_contr[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)";
    size_t cap = 2 * strlen(rx) + sizeof RX_CONTRACTIONS + 1, o = 0;
    char *out = malloc(cap);
    if (!out)
        return NULL;
    for (const char *p = rx; *p;) {
        if (!strncmp(p, ci_contr, sizeof ci_contr - 1)) {
            o += (size_t)snprintf(out + o, cap - o, "%s", RX_CONTRACTIONS);
            p += sizeof ci_contr - 1;
        } else if (*p == '\r' || *p == '\n') {
            out[o++] = '\\';
            out[o++] = *p == '\r' ? 'r' : 'n';
            p++;
        } else {
            out[o++] = *p++;
        }
    }
    out[o] = 0;
    return out;
}

static int regex_list_equal(const char *const *a, size_t na, const char *const *b, size_t nb)
{
    if (na != nb)
        return 0;
    for (size_t i = 0; i < na; i++) {
        char *x = normalize_regex(a[i]), *y = normalize_regex(b[i]);
        int same = x && y && strcmp(x, y) == 0;
        free(x);
        free(y);
        if (!same)
            return 0;
    }
    return 1;
}

const char *qb_gguf_pre_from_regexes(const char *const *regexes, size_t n)
{
    for (size_t d = 0; d < QB_ARRAY_LEN(pre_defs); d++) {
        if (strcmp(pre_defs[d].names[0], "default") != 0 &&
            regex_list_equal(regexes, n, pre_defs[d].rx, pre_defs[d].n_rx))
            return pre_defs[d].names[0];
    }
    for (size_t d = 0; d < QB_ARRAY_LEN(pre_hf_aliases); d++) {
        if (regex_list_equal(regexes, n, pre_hf_aliases[d].rx, pre_hf_aliases[d].n_rx))
            return pre_hf_aliases[d].names[0];
    }
    return NULL;
}
