/*
 * fuzz_hfq.c - libFuzzer entry point for the quantization_config parser of the
 * Hugging Face quantized checkpoint loader (core/hfq_load.h). The input is
 * split at the first NUL byte: before it config.json, after it (when present)
 * hf_quant_config.json.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "hfq_load.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *text = (const char *)data;
    const char *nul = memchr(text, 0, size);
    size_t len = nul ? (size_t)(nul - text) : size;
    const char *hq = nul ? nul + 1 : NULL;
    size_t hq_len = nul ? size - len - 1 : 0;
    struct qb_hfq *q = NULL;
    struct qb_err err;
    if (qb_hfq_config_parse(text, len, hq, hq_len, "fuzz", &q, &err) == QB_OK && q) {
        struct qb_scheme s;
        qb_hfq_scheme(q, &s);
        (void)qb_hfq_describe(q);
    }
    qb_hfq_free(q);
    return 0;
}
