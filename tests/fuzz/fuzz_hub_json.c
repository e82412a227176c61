/*
 * fuzz_hub_json.c - libFuzzer entry point for the Hub's untrusted text: the
 * search page, model info, tree page, datasets-server rows and config.json
 * parsers, the Link header and the engine verdict. The first byte picks the
 * parser, the rest is the body. Build: CC=clang cmake -DQUANTBENCH_FUZZ=ON.
 * Run: build-fuzz/fuzz_hub_json -max_total_time=300 corpus/
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "hub/hub.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct qb_err err;
    if (size < 1)
        return 0;
    const char *body = (const char *)data + 1;
    size_t len = size - 1;
    switch (data[0] % 6) {
    case 0: {
        struct qb_hub_search_result r = {0};
        qb_hub_parse_search_page(body, len, &r, &err);
        qb_hub_search_result_clear(&r);
        break;
    }
    case 1: {
        struct qb_hub_model_info m;
        memset(&m, 0, sizeof m);
        if (qb_hub_parse_model_info(body, len, &m, &err) == QB_OK) {
            char *why = NULL;
            qb_hub_engine_verdict(&m.config, &why);
            free(why);
        }
        qb_hub_model_info_clear(&m);
        break;
    }
    case 2: {
        struct qb_hub_model_info m; /* owns a file list */
        memset(&m, 0, sizeof m);
        qb_hub_parse_tree_page(body, len, &m.files, &err);
        for (size_t i = 0; i < m.files.n; i++)
            (void)qb_hub_path_is_safe(m.files.items[i].path);
        qb_hub_model_info_clear(&m);
        break;
    }
    case 3: {
        struct qb_hub_text_rows rows = {0};
        int64_t total;
        qb_hub_parse_rows_page(body, len, "text", &rows, &total, &err);
        qb_hub_text_rows_clear(&rows);
        break;
    }
    case 4: {
        struct qb_hub_config_summary c;
        memset(&c, 0, sizeof c);
        if (qb_hub_parse_config(body, len, &c, &err) == QB_OK) {
            char *why = NULL;
            qb_hub_engine_verdict(&c, &why);
            free(why);
        }
        qb_hub_config_summary_clear(&c);
        break;
    }
    default: {
        char *s = malloc(len + 1);
        if (!s)
            return 0;
        memcpy(s, body, len);
        s[len] = '\0';
        free(qb_hub_link_next(s));
        char *repo = NULL, *rev = NULL;
        if (qb_hub_parse_repo_arg(s, &repo, &rev, &err) == QB_OK) {
            free(repo);
            free(rev);
        }
        free(s);
        break;
    }
    }
    return 0;
}
