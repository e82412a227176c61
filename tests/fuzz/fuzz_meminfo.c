/*
 * fuzz_meminfo.c - libFuzzer entry for the /proc/meminfo parser that the
 * telemetry module uses for unified-memory GPUs (qb_tel_parse_meminfo).
 * The input is not NUL-terminated: the parser must stay within len.
 */
#include <stddef.h>
#include <stdint.h>

#include "telemetry.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint64_t total = 0, avail = 0;
    struct qb_err err;
    if (qb_tel_parse_meminfo((const char *)data, size, "fuzz", &total, &avail, &err) == QB_OK)
        CHECK(avail <= total);
    return 0;
}
