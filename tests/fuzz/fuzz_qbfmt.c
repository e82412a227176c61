/*
 * fuzz_qbfmt.c - libFuzzer entry point for the quantized checkpoint's readers:
 * the quantbench.json metadata parser and the packed-payload checker/unpacker.
 * Input: the whole buffer is tried as quantbench.json; then, when it is at least
 * 4 bytes, byte 0 picks bits, byte 1 the rows, byte 2 the groups and the rest is
 * a payload (group 8).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "qbfmt.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct qb_qbfmt_meta meta;
    struct qb_err err;
    qb_qbfmt_parse_meta((const char *)data, size, "fuzz/quantbench.json", &meta, &err);
    if (size < 4)
        return 0;
    static const int bits_of[4] = {2, 3, 4, 8};
    int bits = bits_of[data[0] & 3];
    int64_t rows = 1 + data[1] % 8, cols = 8 * (1 + data[2] % 8);
    float *out = malloc(sizeof(float) * (size_t)(rows * cols));
    int32_t g_idx[64];
    for (int64_t c = 0; c < cols; c++)
        g_idx[c] = (int32_t)(data[3] + c) % (int32_t)(cols / 8 + (data[3] & 1));
    if (out) {
        qb_qbfmt_unpack(data + 3, size - 3, rows, cols, bits, 8, NULL, out, "fuzz", &err);
        qb_qbfmt_unpack(data + 3, size - 3, rows, cols, bits, 8, g_idx, out, "fuzz", &err);
    }
    free(out);
    return 0;
}
