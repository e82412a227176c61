/*
 * fuzz_safetensors.c - libFuzzer entry point: the input is a whole
 * safetensors file image (8-byte header length, JSON header, data section).
 * Any input must be accepted or rejected with an error, never crash.
 */
#include <stddef.h>
#include <stdint.h>

#include "safetensors.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct qb_st_tensor *ts = NULL;
    size_t n = 0, data_start = 0;
    struct qb_err err;
    if (qb_st_parse_buffer(data, size, "fuzz.safetensors", &data_start, &ts, &n, &err) == QB_OK) {
        for (size_t i = 0; i < n; i++) {
            /* every accepted span must lie inside the buffer */
            if (data_start + ts[i].end > size || ts[i].begin > ts[i].end)
                __builtin_trap();
        }
    }
    qb_st_tensors_free(ts, n);
    return 0;
}
