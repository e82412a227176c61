/*
 * fuzz_gguf.c - libFuzzer entry point for the GGUF reader: the input is a
 * whole GGUF file image. It must be accepted or rejected with an error, never
 * crash. Accepted files are walked the way a loader would (typed getters,
 * array elements, llama hyper-parameters, tensor bytes and a dequantized first
 * row), and every accepted tensor span must lie inside the buffer. Seeds:
 * tests/fuzz/corpus/gguf/.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "ggml_quants.h"
#include "gguf.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void walk_metadata(const struct qb_gguf *g)
{
    for (size_t i = 0; i < qb_gguf_n_kv(g); i++) {
        const char *key = qb_gguf_kv_key(g, i);
        uint64_t u;
        double f;
        const char *s;
        size_t len;
        struct qb_gguf_array arr;
        qb_gguf_get_uint(g, key, &u, NULL);
        qb_gguf_get_float(g, key, &f, NULL);
        qb_gguf_get_str(g, key, &s, &len, NULL);
        if (qb_gguf_get_array(g, key, &arr, NULL) != QB_OK)
            continue;
        uint64_t n = arr.n < 64 ? arr.n : 64;
        for (uint64_t k = 0; k < n; k++) {
            qb_gguf_array_i64(&arr, k);
            qb_gguf_array_f64(&arr, k);
            const char *e = qb_gguf_array_str(g, &arr, k, &len);
            if (e && len && ((const volatile char *)e)[len - 1] == 0x7f)
                continue;
        }
    }
}

static void walk_tensors(const struct qb_gguf *g, const uint8_t *data, size_t size)
{
    for (size_t i = 0; i < qb_gguf_n_tensors(g); i++) {
        const struct qb_gguf_tensor *t = qb_gguf_tensor_at(g, i);
        const uint8_t *p = t->data;
        if (p < data || p > data + size || t->bytes > (size_t)(data + size - p))
            __builtin_trap();
        const struct qb_ggml_type_info *ti = qb_ggml_type_info(t->type);
        if (ti && ti->can_dequantize && t->ne[0] <= 4096) {
            float *row = malloc((size_t)t->ne[0] * sizeof(float));
            if (row)
                qb_ggml_dequantize_row(t->type, t->data, row, t->ne[0]);
            free(row);
        }
        if (qb_gguf_find_tensor(g, t->name) != t)
            __builtin_trap();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct qb_gguf *g = NULL;
    struct qb_err err;
    if (qb_gguf_open_buffer(data, size, "fuzz.gguf", &g, &err) != QB_OK)
        return 0;
    struct qb_gguf_llama_hparams hp;
    qb_gguf_llama_read_hparams(g, &hp, NULL);
    walk_metadata(g);
    walk_tensors(g, data, size);
    qb_gguf_close(g);
    return 0;
}
