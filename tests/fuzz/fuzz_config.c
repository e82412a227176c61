/*
 * fuzz_config.c - libFuzzer entry point for the config.json parser.
 */
#include <stddef.h>
#include <stdint.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct qb_config cfg;
    struct qb_err err;
    if (qb_config_parse((const char *)data, size, "fuzz/config.json", &cfg, &err) == QB_OK) {
        double inv[4096];
        if (cfg.head_dim / 2 <= 4096)
            qb_config_rope_inv_freq(&cfg, inv);
    }
    return 0;
}
