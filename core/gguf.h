/*
 * gguf.h - GGUF v3 files (llama.cpp / Ollama): a validating reader, an atomic
 * writer, llama-architecture naming and metadata helpers, tokenizer
 * pre-tokenizer names, and llama.cpp's per-tensor quantization type rules.
 *
 * File layout (little-endian; ggml docs/gguf.md):
 *
 *   u32 magic "GGUF" | u32 version (3; 2 accepted) | u64 n_tensors | u64 n_kv
 *   n_kv x  { gguf_string key | u32 value_type | value }
 *   n_tensors x { gguf_string name | u32 n_dims | u64 ne[n_dims] | u32 ggml_type | u64 offset }
 *   zero padding to `alignment` (general.alignment, u32 power of two, default 32)
 *   tensor data: each tensor at data_start + offset, offset % alignment == 0
 *
 *   gguf_string = u64 len | len bytes (no NUL). value of type ARRAY =
 *   u32 elem_type | u64 count | count elements (strings are gguf_strings).
 *   ne[0] is the fastest-varying dimension: a [rows][cols] matrix has
 *   ne = {cols, rows}; quant blocks run along ne[0].
 *
 * Reader: the file is mmapped read-only and nothing in it is trusted. Every
 * count, length, type, dimension and offset is checked (with overflow checks)
 * before use; duplicate keys or tensor names, misaligned, overlapping or
 * out-of-file tensor data are rejected. Failures return QB_ERR_FORMAT with
 * one line naming the file and the field. A reader is immutable after open
 * and may be shared between threads.
 *
 * Writer: collects metadata (insertion order is kept) and tensor infos, then
 * writes everything to a temporary file next to the target, fsyncs and
 * renames it over the target: a failed write leaves nothing behind.
 */
#ifndef QB_GGUF_H
#define QB_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "ggml_quants.h"
#include "qb_common.h"

#define QB_GGUF_DEFAULT_ALIGNMENT 32u
#define QB_GGUF_MAX_DIMS 4
#define QB_GGUF_MAX_NAME 63 /* tensor name bytes (ggml GGML_MAX_NAME - 1) */

enum qb_gguf_vtype {
    QB_GGUF_U8 = 0,
    QB_GGUF_I8 = 1,
    QB_GGUF_U16 = 2,
    QB_GGUF_I16 = 3,
    QB_GGUF_U32 = 4,
    QB_GGUF_I32 = 5,
    QB_GGUF_F32 = 6,
    QB_GGUF_BOOL = 7,
    QB_GGUF_STRING = 8,
    QB_GGUF_ARRAY = 9,
    QB_GGUF_U64 = 10,
    QB_GGUF_I64 = 11,
    QB_GGUF_F64 = 12,
    QB_GGUF_VTYPE_COUNT
};

/* "u32", "string", ...; "?" for an invalid value. */
const char *qb_gguf_vtype_name(int vtype);

/* ==== reader ==================================================================== */

struct qb_gguf;

struct qb_gguf_tensor {
    const char *name;     /* NUL-terminated, owned by the reader */
    int type;             /* ggml type id (enum qb_ggml_type) */
    uint32_t n_dims;      /* 1..4 */
    int64_t ne[4];        /* ne[0] = row length; dims past n_dims are 1 */
    uint64_t offset;      /* from the start of the data section */
    const void *data;     /* into the mapping; valid until qb_gguf_close */
    size_t bytes;         /* payload size from type and shape */
};

/* An array value. Numeric elements are packed little-endian, possibly
 * unaligned: read them with the qb_gguf_array_* accessors. */
struct qb_gguf_array {
    enum qb_gguf_vtype type; /* element type */
    uint64_t n;              /* element count */
    const void *data;        /* first element inside the mapping */
    int kv;                  /* owning metadata index (for string elements) */
};

/* Open and validate path. On failure *out stays NULL and err names the file and
 * the field. Close with qb_gguf_close. */
enum qb_status qb_gguf_open(const char *path, struct qb_gguf **out, struct qb_err *err);

/* Same on a buffer the caller keeps alive and unchanged until close; origin is
 * used in messages. */
enum qb_status qb_gguf_open_buffer(const void *buf, size_t len, const char *origin,
                                   struct qb_gguf **out, struct qb_err *err);

void qb_gguf_close(struct qb_gguf *g); /* NULL is fine */

uint32_t qb_gguf_version(const struct qb_gguf *g);
uint32_t qb_gguf_alignment(const struct qb_gguf *g);
size_t qb_gguf_data_offset(const struct qb_gguf *g); /* file offset of the data section */

/* ---- metadata ---- */
size_t qb_gguf_n_kv(const struct qb_gguf *g);
const char *qb_gguf_kv_key(const struct qb_gguf *g, size_t i);          /* NULL if out of range */
enum qb_gguf_vtype qb_gguf_kv_type(const struct qb_gguf *g, size_t i);
int qb_gguf_find_key(const struct qb_gguf *g, const char *key);         /* index or -1 */

/*
 * Typed getters. Each returns QB_OK and sets *out when the key exists with
 * exactly that type; QB_ERR_FORMAT naming the key and both types when the type
 * differs; QB_ERR_RANGE ("missing key") when absent, so optional keys can be
 * told apart with `st == QB_ERR_RANGE` (or use qb_gguf_find_key first).
 */
enum qb_status qb_gguf_get_u8(const struct qb_gguf *g, const char *key, uint8_t *out, struct qb_err *err);
enum qb_status qb_gguf_get_i8(const struct qb_gguf *g, const char *key, int8_t *out, struct qb_err *err);
enum qb_status qb_gguf_get_u16(const struct qb_gguf *g, const char *key, uint16_t *out, struct qb_err *err);
enum qb_status qb_gguf_get_i16(const struct qb_gguf *g, const char *key, int16_t *out, struct qb_err *err);
enum qb_status qb_gguf_get_u32(const struct qb_gguf *g, const char *key, uint32_t *out, struct qb_err *err);
enum qb_status qb_gguf_get_i32(const struct qb_gguf *g, const char *key, int32_t *out, struct qb_err *err);
enum qb_status qb_gguf_get_u64(const struct qb_gguf *g, const char *key, uint64_t *out, struct qb_err *err);
enum qb_status qb_gguf_get_i64(const struct qb_gguf *g, const char *key, int64_t *out, struct qb_err *err);
enum qb_status qb_gguf_get_f32(const struct qb_gguf *g, const char *key, float *out, struct qb_err *err);
enum qb_status qb_gguf_get_f64(const struct qb_gguf *g, const char *key, double *out, struct qb_err *err);
enum qb_status qb_gguf_get_bool(const struct qb_gguf *g, const char *key, int *out, struct qb_err *err);
/* *out points at a NUL-terminated copy owned by the reader; *len (may be NULL)
 * is its byte length (strings may hold no NUL). */
enum qb_status qb_gguf_get_str(const struct qb_gguf *g, const char *key, const char **out,
                               size_t *len, struct qb_err *err);
enum qb_status qb_gguf_get_array(const struct qb_gguf *g, const char *key,
                                 struct qb_gguf_array *out, struct qb_err *err);

/* Lenient integer read for counts and ids: any integer type (u8..i64) whose
 * value is >= 0 fits; QB_ERR_FORMAT for negatives or non-integers. */
enum qb_status qb_gguf_get_uint(const struct qb_gguf *g, const char *key, uint64_t *out,
                                struct qb_err *err);
/* Lenient float read: f32 or f64. */
enum qb_status qb_gguf_get_float(const struct qb_gguf *g, const char *key, double *out,
                                 struct qb_err *err);

/* Array element i as a number (any integer, float or bool element type); 0 when
 * i is out of range or the elements are strings/arrays (check arr->type). */
int64_t qb_gguf_array_i64(const struct qb_gguf_array *arr, uint64_t i);
double qb_gguf_array_f64(const struct qb_gguf_array *arr, uint64_t i);
/* String element i (not NUL-terminated: use *len); NULL when i is out of range
 * or the array does not hold strings. */
const char *qb_gguf_array_str(const struct qb_gguf *g, const struct qb_gguf_array *arr,
                              uint64_t i, size_t *len);

/* ---- tensors ---- */
size_t qb_gguf_n_tensors(const struct qb_gguf *g);
const struct qb_gguf_tensor *qb_gguf_tensor_at(const struct qb_gguf *g, size_t i); /* file order */
const struct qb_gguf_tensor *qb_gguf_find_tensor(const struct qb_gguf *g, const char *name);

/* ==== writer ==================================================================== */

struct qb_gguf_writer;

/* Called at write time to produce a tensor's bytes into dst[bytes]. */
typedef enum qb_status (*qb_gguf_fill_fn)(void *ctx, void *dst, size_t bytes, struct qb_err *err);

enum qb_status qb_gguf_writer_new(struct qb_gguf_writer **out, struct qb_err *err);
void qb_gguf_writer_free(struct qb_gguf_writer *w); /* NULL is fine */

/* Alignment of tensor data (power of two, >= 8). A value other than 32 also
 * writes general.alignment (u32) when the caller did not. */
enum qb_status qb_gguf_writer_set_alignment(struct qb_gguf_writer *w, uint32_t alignment,
                                            struct qb_err *err);

/* Metadata; keys are copied, must be unique, 1..65535 bytes. */
enum qb_status qb_gguf_add_u8(struct qb_gguf_writer *w, const char *key, uint8_t v, struct qb_err *err);
enum qb_status qb_gguf_add_i8(struct qb_gguf_writer *w, const char *key, int8_t v, struct qb_err *err);
enum qb_status qb_gguf_add_u16(struct qb_gguf_writer *w, const char *key, uint16_t v, struct qb_err *err);
enum qb_status qb_gguf_add_i16(struct qb_gguf_writer *w, const char *key, int16_t v, struct qb_err *err);
enum qb_status qb_gguf_add_u32(struct qb_gguf_writer *w, const char *key, uint32_t v, struct qb_err *err);
enum qb_status qb_gguf_add_i32(struct qb_gguf_writer *w, const char *key, int32_t v, struct qb_err *err);
enum qb_status qb_gguf_add_u64(struct qb_gguf_writer *w, const char *key, uint64_t v, struct qb_err *err);
enum qb_status qb_gguf_add_i64(struct qb_gguf_writer *w, const char *key, int64_t v, struct qb_err *err);
enum qb_status qb_gguf_add_f32(struct qb_gguf_writer *w, const char *key, float v, struct qb_err *err);
enum qb_status qb_gguf_add_f64(struct qb_gguf_writer *w, const char *key, double v, struct qb_err *err);
enum qb_status qb_gguf_add_bool(struct qb_gguf_writer *w, const char *key, int v, struct qb_err *err);
enum qb_status qb_gguf_add_str(struct qb_gguf_writer *w, const char *key, const char *s, struct qb_err *err);
/* A numeric array: n elements of elem_type (not STRING/ARRAY), native layout
 * (uint32_t[] for U32, float[] for F32, uint8_t 0/1 for BOOL...). Copied. */
enum qb_status qb_gguf_add_array(struct qb_gguf_writer *w, const char *key, enum qb_gguf_vtype elem_type,
                                 const void *elems, uint64_t n, struct qb_err *err);
/* A string array from n NUL-terminated strings (lens may be NULL) or, with
 * lens, n byte strings of lens[i] bytes. Copied. */
enum qb_status qb_gguf_add_str_array(struct qb_gguf_writer *w, const char *key, const char *const *strs,
                                     const size_t *lens, uint64_t n, struct qb_err *err);

/*
 * Tensors, written in the order added. ne has n_dims (1..4) entries, ne[0] the
 * row length (a multiple of the type's block). add_tensor borrows data
 * (bytes must equal the size implied by type and shape) until write returns;
 * add_tensor_fill calls fill(ctx, dst, bytes) during write instead, so large
 * models can be produced one tensor at a time.
 */
enum qb_status qb_gguf_add_tensor(struct qb_gguf_writer *w, const char *name, int type, uint32_t n_dims,
                                  const int64_t *ne, const void *data, size_t bytes, struct qb_err *err);
enum qb_status qb_gguf_add_tensor_fill(struct qb_gguf_writer *w, const char *name, int type,
                                       uint32_t n_dims, const int64_t *ne, qb_gguf_fill_fn fill,
                                       void *ctx, struct qb_err *err);

/* Write the file atomically (temp file in the same directory, fsync, rename). */
enum qb_status qb_gguf_write(struct qb_gguf_writer *w, const char *path, struct qb_err *err);

/* ==== llama architecture helpers (core/gguf_llama.c) ============================== */

/* HF hyper-parameters of a Llama-family model, as the GGUF llama.* keys need. */
struct qb_gguf_llama_hparams {
    const char *name;            /* general.name (may be NULL) */
    uint32_t n_vocab;            /* vocab_size */
    uint32_t n_ctx;              /* max_position_embeddings -> context_length */
    uint32_t n_embd;             /* hidden_size -> embedding_length */
    uint32_t n_ff;               /* intermediate_size -> feed_forward_length */
    uint32_t n_layer;            /* num_hidden_layers -> block_count */
    uint32_t n_head;             /* num_attention_heads -> attention.head_count */
    uint32_t n_head_kv;          /* num_key_value_heads -> attention.head_count_kv */
    uint32_t head_dim;           /* rope.dimension_count (0: n_embd / n_head) */
    float rope_theta;            /* rope.freq_base */
    float rms_norm_eps;          /* attention.layer_norm_rms_epsilon */
    uint32_t file_type;          /* general.file_type (enum qb_gguf_ftype) */
};

/* Write general.architecture = "llama", general.name, the llama.* hyper-
 * parameter keys (u32 / f32 as convert_hf_to_gguf writes them),
 * general.file_type and general.quantization_version = 2. */
enum qb_status qb_gguf_llama_add_metadata(struct qb_gguf_writer *w, const struct qb_gguf_llama_hparams *hp,
                                          struct qb_err *err);

/* Read the same keys back ("llama.*"; integer keys may be any integer type). */
enum qb_status qb_gguf_llama_read_hparams(const struct qb_gguf *g, struct qb_gguf_llama_hparams *hp,
                                          struct qb_err *err);

/* Per-block tensor kinds of a llama model. */
enum qb_gguf_llama_tensor {
    QB_GGUF_T_TOKEN_EMBD = 0, /* token_embd.weight */
    QB_GGUF_T_OUTPUT_NORM,    /* output_norm.weight */
    QB_GGUF_T_OUTPUT,         /* output.weight */
    QB_GGUF_T_ATTN_NORM,      /* blk.N.attn_norm.weight */
    QB_GGUF_T_ATTN_Q,         /* blk.N.attn_q.weight */
    QB_GGUF_T_ATTN_K,
    QB_GGUF_T_ATTN_V,
    QB_GGUF_T_ATTN_OUTPUT,
    QB_GGUF_T_FFN_NORM,
    QB_GGUF_T_FFN_GATE,
    QB_GGUF_T_FFN_UP,
    QB_GGUF_T_FFN_DOWN,
    QB_GGUF_T_COUNT
};

/* Write the GGUF tensor name into buf (>= 64 bytes); layer is ignored for
 * the non-block tensors. Returns buf. */
char *qb_gguf_llama_tensor_name(enum qb_gguf_llama_tensor t, int layer, char *buf, size_t cap);

/* Map a Hugging Face Llama tensor name ("model.layers.3.self_attn.q_proj.weight",
 * "lm_head.weight", ...) to its GGUF name in buf. Returns 0, or -1 when the
 * name is not part of a Llama checkpoint. */
int qb_gguf_llama_name_from_hf(const char *hf_name, char *buf, size_t cap);

/*
 * The Q/K row permutation of convert_hf_to_gguf (LlamaModel.permute): HF
 * rotate-half rows -> llama.cpp's interleaved-pair rows. w is [rows][cols]
 * with rows = n_head * head_dim (n_head = n_head_kv for K); elem_size bytes
 * per element (any dtype). dst[h*hd + 2i + j] = src[h*hd + j*hd/2 + i].
 * qb_gguf_unpermute_qk is the inverse (for reading GGUF into HF order).
 * Returns -1 when rows is not n_head * an even head_dim.
 */
int qb_gguf_permute_qk(const void *src, void *dst, int64_t rows, int64_t cols, int n_head,
                       size_t elem_size);
int qb_gguf_unpermute_qk(const void *src, void *dst, int64_t rows, int64_t cols, int n_head,
                         size_t elem_size);

/* ---- tokenizer.ggml.pre ---- */

/*
 * Choose the tokenizer.ggml.pre name for a byte-level BPE tokenizer from its
 * pre-tokenizer split regexes, in order (HF tokenizer.json Split patterns;
 * a ByteLevel pre-tokenizer with use_regex contributes the GPT-2 pattern,
 * a Digits(individual_digits) one "\\p{N}"). Both the HF originals and
 * llama.cpp's adapted spellings are recognised. Returns a static name
 * ("llama-bpe", "qwen2", "gpt-2", "deepseek-llm", ...) or NULL when unknown.
 */
const char *qb_gguf_pre_from_regexes(const char *const *regexes, size_t n);

/*
 * The split regexes llama.cpp's llm_tokenizer_bpe uses for a pre name, in
 * order (PCRE-compatible spellings as in llama-vocab.cpp). *n gets the count.
 * Unknown names get llama.cpp's default BPE list with *known = 0 (known may be
 * NULL). Returns a static array.
 */
const char *const *qb_gguf_pre_regexes(const char *pre, size_t *n, int *known);

/* ==== llama.cpp quantization mixes (core/gguf_mix.c) ============================== */

/* llama_ftype values (general.file_type) for the schemes we write. */
enum qb_gguf_ftype {
    QB_GGUF_FTYPE_F32 = 0,
    QB_GGUF_FTYPE_F16 = 1,
    QB_GGUF_FTYPE_Q4_0 = 2,
    QB_GGUF_FTYPE_Q8_0 = 7,
    QB_GGUF_FTYPE_Q2_K = 10,
    QB_GGUF_FTYPE_Q3_K_S = 11,
    QB_GGUF_FTYPE_Q3_K_M = 12,
    QB_GGUF_FTYPE_Q3_K_L = 13,
    QB_GGUF_FTYPE_Q4_K_S = 14,
    QB_GGUF_FTYPE_Q4_K_M = 15,
    QB_GGUF_FTYPE_Q5_K_S = 16,
    QB_GGUF_FTYPE_Q5_K_M = 17,
    QB_GGUF_FTYPE_Q6_K = 18,
};

/* "q4_k_m" (case-insensitive, optional "gguf-" prefix) -> ftype; -1 if unknown.
 * Known: f16 q8_0 q6_k q5_k_m q5_k_s q4_k_m q4_k_s q4_0 q3_k_l q3_k_m q3_k_s q2_k. */
int qb_gguf_ftype_from_name(const char *name);
const char *qb_gguf_ftype_name(int ftype); /* "Q4_K_M"; "?" if unknown */

struct qb_gguf_mix_arch {
    int n_layer;
    int n_head;
    int n_head_kv;
    int n_expert;      /* 0 or 1 for dense models */
    int has_output;    /* 1 when output.weight exists (untied embeddings) */
    int modern_fallback; /* 0: b4748 fallbacks (Q2_K/Q3_K -> IQ4_NL); 1: current
                            llama.cpp's tensor_type_fallback (Q2_K/Q3_K -> Q4_0) */
};

/*
 * ggml type llama-quantize (build b4748, no imatrix, llama architecture) gives
 * tensor `name` with row length ne0 under ftype, including the fallbacks for
 * rows not divisible by the chosen block. Tensors llama.cpp does not quantize
 * (1-D, *_norm.weight, names not ending in "weight") get `keep_type` (their
 * input type, normally F32). Returns QB_OK and sets *out, or QB_ERR_UNSUPPORTED
 * naming the tensor when llama.cpp would refuse it (Q4_0/Q8_0 rows not
 * divisible by 32), QB_ERR_USAGE for an unknown ftype. Rules and their source
 * lines are listed in gguf_mix.c.
 */
enum qb_status qb_gguf_mix_type(int ftype, const struct qb_gguf_mix_arch *arch, const char *name,
                                int n_dims, int64_t ne0, int keep_type, int *out,
                                struct qb_err *err);

#endif /* QB_GGUF_H */
